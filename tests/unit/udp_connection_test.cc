// The reliable-UDP connection state machine against hand-made packets: packing, pacing, ACK
// timing, and what a misbehaving peer gets (CLOSE with a reason, never a crash).
#include "transport/udp/connection.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "net_sim.h"
#include "transport/udp/aead_protector.h"
#include "transport/udp/packet.h"

namespace slip::transport::udp {
namespace {

using namespace std::chrono_literals;

const Instant kConnT0 = Instant(std::chrono::hours(2));

// A packet as the peer would send it with the identity protector.
class PacketBuilder {
 public:
  explicit PacketBuilder(std::uint64_t pn) : buf_(2000) {
    header_ = encode_packet_header(buf_.data(), pn);
    w_.emplace(buf_.data() + header_, buf_.size() - header_);
  }
  FrameWriter& w() { return *w_; }
  std::string bytes() const { return std::string(reinterpret_cast<const char*>(buf_.data()), header_ + w_->size()); }

 private:
  std::vector<std::uint8_t> buf_;
  std::size_t header_ = 0;
  std::optional<FrameWriter> w_;
};

std::vector<Frame> frames_of(ByteView packet, std::vector<std::string>& keep) {
  Result<PacketHeader> h = decode_packet_header(packet);
  EXPECT_TRUE(h.is_ok());
  if (!h.is_ok()) return {};
  keep.emplace_back(packet.sub(h->length).as_string_view());
  FrameReader r(ByteView(keep.back()));
  std::vector<Frame> out;
  Frame f;
  while (true) {
    Result<bool> more = r.next(f);
    EXPECT_TRUE(more.is_ok()) << more.status().to_string();
    if (!more.is_ok() || !*more) break;
    out.push_back(f);
  }
  return out;
}

template <typename T>
std::size_t count_of(const std::vector<Frame>& frames) {
  std::size_t n = 0;
  for (const Frame& f : frames) n += std::holds_alternative<T>(f);
  return n;
}

ConnectionOptions server_options() {
  ConnectionOptions o;
  o.role = Role::kServer;
  return o;
}

std::vector<Event> events_of(Connection& c) {
  std::vector<Event> v;
  while (auto e = c.poll_event()) v.push_back(std::move(*e));
  return v;
}

Status closed_status(Connection& c) {
  for (Event& e : events_of(c)) {
    if (e.type == EventType::kClosed) return e.status;
  }
  return Status();
}

TEST(UdpConnectionTest, SmallMessagesOnManyStreamsShareOnePacket) {
  NullProtector prot;
  Connection c(ConnectionOptions{}, &prot, kConnT0);
  for (int i = 0; i < 20; ++i) {
    Result<std::uint64_t> id = c.open_stream(Priority::kInteractive);
    ASSERT_TRUE(id.is_ok());
    EXPECT_EQ(*id, static_cast<std::uint64_t>(i) * 2);  // client streams are even
    ASSERT_TRUE(c.send(*id, ByteView("0123456789")).is_ok());
  }
  std::optional<ByteView> p = c.poll_transmit(kConnT0);
  ASSERT_TRUE(p.has_value());
  std::vector<std::string> keep;
  const std::vector<Frame> frames = frames_of(*p, keep);
  EXPECT_EQ(count_of<StreamFrame>(frames), 20u);
  EXPECT_LE(p->size(), 1200u);
  EXPECT_FALSE(c.poll_transmit(kConnT0).has_value());
  EXPECT_EQ(c.stats().packets_sent, 1u);
}

TEST(UdpConnectionTest, TheCongestionWindowBoundsWhatIsInFlight) {
  NullProtector prot;
  Connection c(ConnectionOptions{}, &prot, kConnT0);
  Result<std::uint64_t> id = c.open_stream();
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(c.send(*id, ByteView(std::string(100000, 'z'))).is_ok());
  std::size_t packets = 0;
  while (auto p = c.poll_transmit(kConnT0)) {
    EXPECT_LE(p->size(), 1200u);
    ++packets;
    ASSERT_LT(packets, 100u);
  }
  EXPECT_EQ(packets, 10u);  // the initial window: 10 packets of 1200 bytes
  EXPECT_EQ(c.stats().bytes_in_flight, 12000u);
  // Blocked by the window, not the pacer: the next timer is the probe timeout.
  EXPECT_EQ(c.next_timeout(), kConnT0 + 333ms + 4 * 166500us + 25ms);
}

TEST(UdpConnectionTest, ThePacerSpacesPacketsAfterTheBurst) {
  NullProtector prot;
  ConnectionOptions o;
  o.pacing_burst_packets = 2;
  Connection c(o, &prot, kConnT0);
  Result<std::uint64_t> id = c.open_stream();
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(c.send(*id, ByteView(std::string(20000, 'z'))).is_ok());
  ASSERT_TRUE(c.poll_transmit(kConnT0).has_value());
  ASSERT_TRUE(c.poll_transmit(kConnT0).has_value());
  EXPECT_FALSE(c.poll_transmit(kConnT0).has_value());
  // 1.25 x 12000 bytes per 333 ms initial RTT: a 1200-byte packet every ~26.6 ms.
  const Instant release = c.next_timeout();
  EXPECT_GT(release, kConnT0 + 26ms);
  EXPECT_LT(release, kConnT0 + 27ms);
  EXPECT_FALSE(c.poll_transmit(release - 1ms).has_value());
  c.on_timeout(release);
  EXPECT_TRUE(c.poll_transmit(release).has_value());
  EXPECT_FALSE(c.poll_transmit(release).has_value());
}

TEST(UdpConnectionTest, AckOnlyPacketsDoNotDrawFromThePacer) {
  NullProtector prot;
  ConnectionOptions o = server_options();
  o.pacing_burst_packets = 2;
  Connection s(o, &prot, kConnT0);
  // The peer sends 600 packets; every second one earns an ACK-only packet at once. At the
  // initial RTT the bucket refills at ~45 bytes/s, so had the ACKs drawn from it, it would be
  // deep in debt now.
  std::size_t acks = 0;
  for (std::uint64_t pn = 0; pn < 600; ++pn) {
    PacketBuilder b(pn);
    ASSERT_TRUE(b.w().add_ping());
    s.on_datagram(kConnT0, ByteView(b.bytes()));
    while (s.poll_transmit(kConnT0)) ++acks;
  }
  EXPECT_EQ(acks, 300u);
  Result<std::uint64_t> id = s.open_stream();
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(s.send(*id, ByteView(std::string(5000, 'q'))).is_ok());
  // The burst of two packets is still there for the first data.
  EXPECT_TRUE(s.poll_transmit(kConnT0).has_value());
  EXPECT_TRUE(s.poll_transmit(kConnT0).has_value());
  EXPECT_FALSE(s.poll_transmit(kConnT0).has_value());
}

TEST(UdpConnectionTest, OneAckElicitingPacketIsAcknowledgedAfterTheMaxAckDelay) {
  NullProtector prot;
  Connection s(server_options(), &prot, kConnT0);
  PacketBuilder b(0);
  ASSERT_TRUE(b.w().add_stream(0, 0, ByteView("hi"), false));
  s.on_datagram(kConnT0, ByteView(b.bytes()));
  EXPECT_EQ(s.stats().packets_received, 1u);
  EXPECT_FALSE(s.poll_transmit(kConnT0).has_value());
  EXPECT_EQ(s.next_timeout(), kConnT0 + 25ms);
  EXPECT_FALSE(s.poll_transmit(kConnT0 + 24ms).has_value());
  std::optional<ByteView> p = s.poll_transmit(kConnT0 + 25ms);
  ASSERT_TRUE(p.has_value());
  std::vector<std::string> keep;
  const std::vector<Frame> frames = frames_of(*p, keep);
  ASSERT_EQ(frames.size(), 1u);
  const AckFrame& a = std::get<AckFrame>(frames[0]);
  EXPECT_EQ(a.ranges, (std::vector<AckRange>{{0, 0}}));
  EXPECT_EQ(a.ack_delay_us, 25000u);
}

TEST(UdpConnectionTest, AGapIsAcknowledgedAtOnce) {
  NullProtector prot;
  Connection s(server_options(), &prot, kConnT0);
  for (std::uint64_t pn : {0, 2}) {
    PacketBuilder b(pn);
    ASSERT_TRUE(b.w().add_ping());
    s.on_datagram(kConnT0, ByteView(b.bytes()));
    if (pn == 0) {
      EXPECT_FALSE(s.poll_transmit(kConnT0).has_value());
    }
  }
  std::optional<ByteView> p = s.poll_transmit(kConnT0);
  ASSERT_TRUE(p.has_value());
  std::vector<std::string> keep;
  const std::vector<Frame> frames = frames_of(*p, keep);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(std::get<AckFrame>(frames[0]).ranges, (std::vector<AckRange>{{2, 2}, {0, 0}}));
}

TEST(UdpConnectionTest, DuplicatePacketsAreDroppedAndCounted) {
  NullProtector prot;
  Connection s(server_options(), &prot, kConnT0);
  PacketBuilder b(0);
  ASSERT_TRUE(b.w().add_datagram(ByteView("once")));
  s.on_datagram(kConnT0, ByteView(b.bytes()));
  s.on_datagram(kConnT0, ByteView(b.bytes()));
  EXPECT_EQ(s.stats().packets_duplicate, 1u);
  EXPECT_EQ(s.read_datagram(), std::optional<std::string>("once"));
  EXPECT_EQ(s.read_datagram(), std::nullopt);
}

TEST(UdpConnectionTest, OpeningAPeerStreamOpensTheLowerOnes) {
  NullProtector prot;
  Connection s(server_options(), &prot, kConnT0);
  PacketBuilder b(0);
  ASSERT_TRUE(b.w().add_stream(4, 0, ByteView("x"), false));
  s.on_datagram(kConnT0, ByteView(b.bytes()));
  std::vector<std::uint64_t> opened;
  for (const Event& e : events_of(s)) {
    if (e.type == EventType::kStreamOpened) opened.push_back(e.stream_id);
  }
  EXPECT_EQ(opened, (std::vector<std::uint64_t>{0, 2, 4}));
  EXPECT_EQ(s.state(), ConnectionState::kOpen);
}

// The endpoint hands each packet over in its receive buffer to be opened there: the stream
// bytes arrive as sent, and a damaged or replayed packet is still refused and counted.
TEST(UdpConnectionTest, PacketsOpenedInTheReceiveBufferDeliverTheirBytes) {
  CipherKey k1{}, k2{};
  k1[0] = 1;
  k2[0] = 2;
  AeadProtector client_prot(k1, k2), server_prot(k2, k1);
  Connection c(ConnectionOptions{}, &client_prot, kConnT0);
  Connection s(server_options(), &server_prot, kConnT0);
  Result<std::uint64_t> id = c.open_stream();
  ASSERT_TRUE(id.is_ok());
  std::string sent;
  for (int i = 0; i < 3000; ++i) sent.push_back(static_cast<char>('a' + i % 26));
  ASSERT_TRUE(c.send(*id, ByteView(sent)).is_ok());
  std::vector<std::vector<std::uint8_t>> packets;
  while (auto p = c.poll_transmit(kConnT0)) packets.emplace_back(p->begin(), p->end());
  ASSERT_GE(packets.size(), 2u);

  // A flipped bit in the first packet: refused, and the buffer is not trusted afterwards.
  std::vector<std::uint8_t> rx = packets[0];
  rx[rx.size() / 2] ^= 0x10;
  s.on_datagram_in_place(kConnT0, std::span<std::uint8_t>(rx));
  EXPECT_EQ(s.stats().packets_rejected, 1u);
  EXPECT_EQ(s.stats().packets_received, 0u);

  for (const auto& p : packets) {
    rx = p;
    s.on_datagram_in_place(kConnT0, std::span<std::uint8_t>(rx));
  }
  EXPECT_EQ(s.stats().packets_received, packets.size());
  // Replayed: it opens (the copy is intact) and is dropped as a duplicate.
  rx = packets[1];
  s.on_datagram_in_place(kConnT0, std::span<std::uint8_t>(rx));
  EXPECT_EQ(s.stats().packets_duplicate, 1u);
  EXPECT_EQ(s.stats().packets_rejected, 1u);

  std::vector<std::uint8_t> got(sent.size() + 10);
  bool fin = false;
  Result<std::size_t> n = s.read(*id, std::span<std::uint8_t>(got), fin);
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got.data()), *n), sent);
}

TEST(UdpConnectionTest, GarbageIsCountedWithoutClosing) {
  NullProtector prot;
  Connection s(server_options(), &prot, kConnT0);
  s.on_datagram(kConnT0, ByteView("\x00garbage"));
  s.on_datagram(kConnT0, ByteView(""));
  s.on_datagram(kConnT0, ByteView("\x40\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"));  // overlong packet number
  EXPECT_EQ(s.stats().packets_rejected, 3u);
  EXPECT_EQ(s.state(), ConnectionState::kOpen);
  ChecksumProtector crc;
  Connection t(server_options(), &crc, kConnT0);
  PacketBuilder b(0);
  ASSERT_TRUE(b.w().add_ping());
  t.on_datagram(kConnT0, ByteView(b.bytes() + "junk"));  // a checksum that does not match
  EXPECT_EQ(t.stats().packets_rejected, 1u);
  EXPECT_EQ(t.stats().packets_received, 0u);
  EXPECT_EQ(t.state(), ConnectionState::kOpen);
}

// A peer that breaks the protocol in an authentic packet gets a CLOSE with the reason, and
// the connection drains and ends.
void expect_violation_in(const std::string& packet, StatusCode code, std::string_view fragment,
                         const ConnectionOptions& options = server_options()) {
  NullProtector prot;
  Connection s(options, &prot, kConnT0);
  s.on_datagram(kConnT0, ByteView(packet));
  EXPECT_EQ(s.state(), ConnectionState::kClosing);
  const Status st = closed_status(s);
  EXPECT_EQ(st.code(), code) << st.to_string();
  EXPECT_NE(st.message().find(fragment), std::string_view::npos) << st.to_string();
  std::optional<ByteView> p = s.poll_transmit(kConnT0);
  ASSERT_TRUE(p.has_value());
  std::vector<std::string> keep;
  const std::vector<Frame> frames = frames_of(*p, keep);
  ASSERT_EQ(frames.size(), 1u);
  const CloseFrame& c = std::get<CloseFrame>(frames[0]);
  EXPECT_EQ(c.code, static_cast<std::uint64_t>(code));
  EXPECT_NE(c.reason.find(fragment), std::string_view::npos);
  EXPECT_FALSE(s.poll_transmit(kConnT0).has_value());
  // A later packet from the peer earns one more CLOSE.
  PacketBuilder again(1);
  ASSERT_TRUE(again.w().add_ping());
  s.on_datagram(kConnT0 + 1ms, ByteView(again.bytes()));
  EXPECT_TRUE(s.poll_transmit(kConnT0 + 1ms).has_value());
  const Instant end = s.next_timeout();
  EXPECT_GT(end, kConnT0);
  s.on_timeout(end);
  EXPECT_TRUE(s.is_closed());
  EXPECT_EQ(s.next_timeout(), kNever);
}

void expect_violation(const std::function<void(FrameWriter&)>& build, StatusCode code, std::string_view fragment,
                      const ConnectionOptions& options = server_options()) {
  PacketBuilder b(0);
  build(b.w());
  expect_violation_in(b.bytes(), code, fragment, options);
}

TEST(UdpConnectionTest, DataBeyondTheStreamCreditClosesTheConnection) {
  ConnectionOptions o = server_options();
  o.stream_receive_window = 100;
  const std::string data(101, 'a');
  expect_violation([&](FrameWriter& w) { ASSERT_TRUE(w.add_stream(0, 0, ByteView(data), false)); },
                   StatusCode::kOverloaded, "beyond its credit 100", o);
}

TEST(UdpConnectionTest, DataBeyondTheConnectionCreditClosesTheConnection) {
  ConnectionOptions o = server_options();
  o.stream_receive_window = 100;
  o.connection_receive_window = 150;
  const std::string data(80, 'a');
  expect_violation(
      [&](FrameWriter& w) {
        ASSERT_TRUE(w.add_stream(0, 0, ByteView(data), false));
        ASSERT_TRUE(w.add_stream(2, 0, ByteView(data), false));
      },
      StatusCode::kOverloaded, "connection data beyond its credit 150", o);
}

TEST(UdpConnectionTest, AnAckOfAPacketNeverSentClosesTheConnection) {
  expect_violation(
      [](FrameWriter& w) {
        const AckRange r{0, 0};
        ASSERT_TRUE(w.add_ack(0, &r, 1));
      },
      StatusCode::kInvalidArgument, "never sent");
}

TEST(UdpConnectionTest, AnUnknownFrameClosesTheConnection) {
  // Short header: flags (1-byte packet number), a zero connection id, packet number 0; then PING
  // and a frame of type 3.
  std::string packet("\x40", 1);
  packet.append(8, '\0');
  packet.append(std::string("\x00\x01\x03", 3));
  expect_violation_in(packet, StatusCode::kInvalidArgument, "unknown frame type 3");
}

TEST(UdpConnectionTest, TooManyPeerStreamsCloseTheConnection) {
  ConnectionOptions o = server_options();
  o.max_peer_streams = 4;
  expect_violation([](FrameWriter& w) { ASSERT_TRUE(w.add_stream(8, 0, ByteView("x"), false)); },
                   StatusCode::kOverloaded, "more streams than allowed", o);
}

TEST(UdpConnectionTest, AStreamFrameChangingTheFinalSizeClosesTheConnection) {
  expect_violation(
      [](FrameWriter& w) {
        ASSERT_TRUE(w.add_stream(0, 0, ByteView("abc"), true));
        ASSERT_TRUE(w.add_stream(0, 3, ByteView("d"), false));
      },
      StatusCode::kInvalidArgument, "final size");
}

TEST(UdpConnectionTest, SendRefusesBeyondTheBufferAndSignalsWhenItDrains) {
  ConnectionOptions co;
  co.stream_send_buffer = 1000;
  ConnectionOptions so = server_options();
  sim::Network net(sim::LinkOptions{}, sim::LinkOptions{}, 1);
  NullProtector p1, p2;
  Connection c(co, &p1, net.now());
  Connection s(so, &p2, net.now());
  net.attach(&c, &s);
  Result<std::uint64_t> id = c.open_stream();
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(c.send(*id, ByteView(std::string(800, 'a'))).is_ok());
  EXPECT_EQ(c.send_capacity(*id), 200u);
  EXPECT_EQ(c.send(*id, ByteView(std::string(300, 'b'))).code(), StatusCode::kOverloaded);
  bool writable = false;
  ASSERT_TRUE(net.run_until(
      [&] {
        for (const Event& e : events_of(c)) writable |= e.type == EventType::kStreamWritable && e.stream_id == *id;
        return writable;
      },
      5s));
  EXPECT_EQ(c.send_capacity(*id), 1000u);
  EXPECT_TRUE(c.send(*id, ByteView(std::string(300, 'b')), true).is_ok());
  EXPECT_EQ(c.send(*id, ByteView("more")).code(), StatusCode::kFailedPrecondition);
}

TEST(UdpConnectionTest, FinishedStreamsAreForgotten) {
  sim::Network net(sim::LinkOptions{}, sim::LinkOptions{}, 1);
  NullProtector p1, p2;
  Connection c(ConnectionOptions{}, &p1, net.now());
  Connection s(server_options(), &p2, net.now());
  net.attach(&c, &s);
  Result<std::uint64_t> id = c.open_stream();
  ASSERT_TRUE(id.is_ok());
  ASSERT_TRUE(c.send(*id, ByteView("request"), true).is_ok());
  std::string got_s, got_c;
  bool fin_s = false, fin_c = false, replied = false;
  auto drain = [](Connection& x, std::uint64_t sid, std::string& out, bool& fin) {
    std::uint8_t buf[64];
    for (;;) {
      bool f = false;
      Result<std::size_t> n = x.read(sid, std::span<std::uint8_t>(buf), f);
      if (!n.is_ok()) return;
      out.append(reinterpret_cast<const char*>(buf), *n);
      fin |= f;
      if (*n == 0 || f) return;
    }
  };
  ASSERT_TRUE(net.run_until(
      [&] {
        if (!fin_s) drain(s, *id, got_s, fin_s);
        if (fin_s && !replied) replied = s.send(*id, ByteView("response"), true).is_ok();
        if (!fin_c) drain(c, *id, got_c, fin_c);
        return fin_c && fin_s && c.is_quiescent() && s.is_quiescent();
      },
      5s));
  EXPECT_EQ(got_s, "request");
  EXPECT_EQ(got_c, "response");
  EXPECT_FALSE(c.stream_receive_limits_for_test(*id).has_value());
  EXPECT_FALSE(s.stream_receive_limits_for_test(*id).has_value());
  bool fin = false;
  std::uint8_t buf[4];
  EXPECT_EQ(c.read(*id, std::span<std::uint8_t>(buf), fin).status().code(), StatusCode::kNotFound);
}

TEST(UdpConnectionTest, DatagramsLargerThanAPacketAreRefused) {
  NullProtector prot;
  Connection c(ConnectionOptions{}, &prot, kConnT0);
  const std::size_t max = c.max_datagram_size();
  EXPECT_GT(max, 1100u);
  EXPECT_EQ(c.send_datagram(ByteView(std::string(max + 1, 'd'))).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(c.send_datagram(ByteView(std::string(max, 'd'))).is_ok());
  std::optional<ByteView> p = c.poll_transmit(kConnT0);
  ASSERT_TRUE(p.has_value());
  EXPECT_LE(p->size(), 1200u);
}

}  // namespace
}  // namespace slip::transport::udp
