// The transport handshake (src/transport/udp/handshake.h): packets, client and server through
// Initial, Retry and Response on an in-memory "network", then packet protection with the keys.
#include "transport/udp/handshake.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>

#include "core/clock.h"
#include "udp_test_util.h"

namespace slip::transport::udp {
namespace {

using std::chrono::seconds;

const PeerAddress kClientAddr = PeerAddress::ipv4(0xc0a80002, 50000);  // 192.168.0.2:50000

struct Fixture {
  KeyPair server_key = KeyPair::generate();
  KeyPair client_key = KeyPair::generate();
  ManualClock clock;

  ClientHandshakeConfig client_config() const {
    ClientHandshakeConfig c;
    c.static_key = client_key;
    c.server_key = server_key.public_key;
    c.transport_params = {'c', 'p'};
    return c;
  }
  ServerHandshakeConfig server_config(CookiePolicy policy) const {
    ServerHandshakeConfig s;
    s.static_key = server_key;
    s.cookies = policy;
    s.load_threshold = 10;
    return s;
  }
};

// A server as the transport will run it: connection state only after respond() succeeds.
struct TestServer {
  ServerHandshake hs;
  std::map<ConnectionId, ServerHandshake::Accepted> connections;

  TestServer(ServerHandshakeConfig c, std::int64_t now) : hs(std::move(c), now) {}

  // Returns the datagram to send back, if any.
  std::vector<std::uint8_t> receive(ByteView d, const PeerAddress& from, std::size_t load, std::int64_t now) {
    ServerHandshake::Decision dec = hs.on_initial(d, from, load, now);
    if (dec.action == ServerHandshake::Decision::Action::kRetry) return dec.retry;
    if (dec.action != ServerHandshake::Decision::Action::kAccept) return {};
    const ConnectionId cid = random_connection_id();
    Result<ServerHandshake::Accepted> a = hs.respond(dec.initial, cid, ByteView("sp"));
    if (!a.is_ok()) return {};
    std::vector<std::uint8_t> out = a->response;
    connections.emplace(cid, std::move(*a));
    return out;
  }
};

// Both sides' packet protection agree: a packet each way opens.
void expect_keys_work(const ClientHandshakeResult& c, const ServerHandshake::Accepted& s) {
  PacketProtection client(c.keys), server(s.keys);
  std::vector<std::uint8_t> buf(64), out(64);
  Result<std::size_t> n = client.seal_packet(c.server_cid, 0, std::nullopt, ByteView("hi server"), buf);
  ASSERT_TRUE(n.is_ok());
  Result<OpenedPacket> p = server.open_packet(ByteView(buf.data(), *n), out);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->dcid, s.local_cid);
  EXPECT_EQ(ByteView(out.data(), p->payload_len), ByteView("hi server"));
  n = server.seal_packet(s.client_cid, 0, std::nullopt, ByteView("hi client"), buf);
  ASSERT_TRUE(n.is_ok());
  p = client.open_packet(ByteView(buf.data(), *n), out);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->dcid, c.local_cid);
}

TEST(UdpHandshake, CompletesInOneRoundTripWithoutCookies) {
  Fixture f;
  ClientHandshake client(f.client_config());
  TestServer server(f.server_config(CookiePolicy::kUnderLoad), f.clock.now_ns());
  Result<std::vector<std::uint8_t>> initial = client.initial_datagram();
  ASSERT_TRUE(initial.is_ok());
  EXPECT_EQ(initial->size(), kMinInitialDatagram);
  const auto reply = server.receive(view(*initial), kClientAddr, /*load=*/0, f.clock.now_ns());
  ASSERT_EQ(server.connections.size(), 1u);
  Result<ClientHandshake::Event> e = client.on_datagram(view(reply));
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(*e, ClientHandshake::Event::kComplete);
  ASSERT_TRUE(client.complete());

  const ServerHandshake::Accepted& s = server.connections.begin()->second;
  const ClientHandshakeResult& c = client.result();
  EXPECT_EQ(s.client_static, f.client_key.public_key);
  EXPECT_EQ(s.client_params, (std::vector<std::uint8_t>{'c', 'p'}));
  EXPECT_EQ(c.server_params, (std::vector<std::uint8_t>{'s', 'p'}));
  EXPECT_EQ(c.server_cid, s.local_cid);
  EXPECT_EQ(s.client_cid, c.local_cid);
  EXPECT_EQ(c.keys.send.key(), s.keys.receive.key());
  EXPECT_EQ(c.keys.receive.key(), s.keys.send.key());
  EXPECT_EQ(c.keys.handshake_hash, s.keys.handshake_hash);
  expect_keys_work(c, s);
}

TEST(UdpHandshake, RetryThenCompleteUnderLoad) {
  Fixture f;
  ClientHandshake client(f.client_config());
  TestServer server(f.server_config(CookiePolicy::kUnderLoad), f.clock.now_ns());
  auto initial = client.initial_datagram();
  ASSERT_TRUE(initial.is_ok());
  // Load at the threshold: the server answers with a Retry and keeps nothing.
  const auto retry = server.receive(view(*initial), kClientAddr, /*load=*/10, f.clock.now_ns());
  ASSERT_FALSE(retry.empty());
  EXPECT_EQ(classify_packet(view(retry)).value_or(PacketKind::kProtected), PacketKind::kRetry);
  EXPECT_LT(retry.size(), initial->size());  // no amplification
  EXPECT_TRUE(server.connections.empty());
  Result<ClientHandshake::Event> e = client.on_datagram(view(retry));
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(*e, ClientHandshake::Event::kResend);

  auto again = client.initial_datagram();
  ASSERT_TRUE(again.is_ok());
  Result<InitialPacket> parsed = parse_initial(view(*again));
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ(parsed->token.size(), kCookieLen);
  f.clock.advance(seconds(2));
  const auto reply = server.receive(view(*again), kClientAddr, /*load=*/50, f.clock.now_ns());
  ASSERT_EQ(server.connections.size(), 1u);
  e = client.on_datagram(view(reply));
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ(*e, ClientHandshake::Event::kComplete);
  expect_keys_work(client.result(), server.connections.begin()->second);
  EXPECT_EQ(server.hs.counters().retries_sent, 1u);
}

TEST(UdpHandshake, CookieFromAnotherAddressOrExpiredIsDropped) {
  Fixture f;
  ClientHandshake client(f.client_config());
  TestServer server(f.server_config(CookiePolicy::kAlways), f.clock.now_ns());
  auto initial = client.initial_datagram();
  const auto retry = server.receive(view(*initial), kClientAddr, 0, f.clock.now_ns());
  ASSERT_TRUE(client.on_datagram(view(retry)).is_ok());
  auto again = client.initial_datagram();

  // The same Initial with its cookie, from another address.
  const PeerAddress elsewhere = PeerAddress::ipv4(0xc0a80003, 50000);
  ServerHandshake::Decision d = server.hs.on_initial(view(*again), elsewhere, 0, f.clock.now_ns());
  EXPECT_EQ(d.action, ServerHandshake::Decision::Action::kDrop);
  EXPECT_EQ(d.reason.code(), StatusCode::kUnauthenticated) << d.reason.to_string();

  // From the right address, after the cookie's lifetime.
  f.clock.advance(seconds(31));
  d = server.hs.on_initial(view(*again), kClientAddr, 0, f.clock.now_ns());
  EXPECT_EQ(d.action, ServerHandshake::Decision::Action::kDrop);
  EXPECT_EQ(d.reason.code(), StatusCode::kTimeout) << d.reason.to_string();
  EXPECT_EQ(server.hs.counters().bad_cookies, 2u);
  EXPECT_TRUE(server.connections.empty());
}

// A flood of Initials from spoofed addresses, cookies required: every one gets a Retry (or is
// dropped), no connection state is created and no Noise responder runs.
TEST(UdpHandshake, SpoofedFloodAllocatesNoPerPeerState) {
  Fixture f;
  TestServer server(f.server_config(CookiePolicy::kAlways), f.clock.now_ns());
  ClientHandshake template_client(f.client_config());
  auto initial = template_client.initial_datagram();
  ASSERT_TRUE(initial.is_ok());
  std::mt19937 rng(1);
  std::size_t retries = 0;
  for (int i = 0; i < 5000; ++i) {
    const PeerAddress spoofed = PeerAddress::ipv4(static_cast<std::uint32_t>(rng()), static_cast<std::uint16_t>(rng()));
    std::vector<std::uint8_t> d = *initial;
    // Vary the connection id, and for a third of them carry a made-up cookie.
    d[5] = static_cast<std::uint8_t>(i);
    d[6] = static_cast<std::uint8_t>(i >> 8);
    if (i % 3 == 0) {
      Result<InitialPacket> p = parse_initial(view(*initial));
      ASSERT_TRUE(p.is_ok());
      std::vector<std::uint8_t> token(kCookieLen);
      for (auto& b : token) b = static_cast<std::uint8_t>(rng());
      InitialPacket forged = *p;
      forged.scid[0] = static_cast<std::uint8_t>(i);
      forged.token = view(token);
      d.clear();
      encode_initial(forged, kMinInitialDatagram, d);
    }
    const auto reply = server.receive(view(d), spoofed, 0, f.clock.now_ns());
    if (!reply.empty()) {
      ++retries;
      ASSERT_EQ(classify_packet(view(reply)).value_or(PacketKind::kProtected), PacketKind::kRetry);
    }
    ASSERT_EQ(server.connections.size(), 0u);
  }
  EXPECT_EQ(server.connections.size(), 0u);
  EXPECT_EQ(server.hs.counters().completed, 0u);
  EXPECT_EQ(server.hs.counters().noise_failures, 0u);
  EXPECT_EQ(server.hs.counters().accepted, 0u);
  EXPECT_EQ(retries, server.hs.counters().retries_sent);
  EXPECT_EQ(server.hs.counters().retries_sent + server.hs.counters().bad_cookies, 5000u);
  EXPECT_EQ(server.hs.counters().bad_cookies, 1667u);
}

TEST(UdpHandshake, ClientPinningAnotherKeyFailsAtTheServerWithAClearStatus) {
  Fixture f;
  ClientHandshakeConfig cc = f.client_config();
  cc.server_key = KeyPair::generate().public_key;
  ClientHandshake client(cc);
  ServerHandshake server(f.server_config(CookiePolicy::kNever), f.clock.now_ns());
  auto initial = client.initial_datagram();
  ServerHandshake::Decision d = server.on_initial(view(*initial), kClientAddr, 0, f.clock.now_ns());
  ASSERT_EQ(d.action, ServerHandshake::Decision::Action::kAccept);
  Result<ServerHandshake::Accepted> a = server.respond(d.initial, random_connection_id(), {});
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(a.status().message().find("pinned another server key"), std::string_view::npos) << a.status().to_string();
  EXPECT_EQ(server.counters().noise_failures, 1u);
}

TEST(UdpHandshake, ClientRefusesAnImpostorsResponseAndStillAcceptsTheRealOne) {
  Fixture f;
  ClientHandshake client(f.client_config());
  auto initial = client.initial_datagram();
  ServerHandshake real(f.server_config(CookiePolicy::kNever), f.clock.now_ns());
  ServerHandshakeConfig impostor_config = f.server_config(CookiePolicy::kNever);
  impostor_config.static_key = KeyPair::generate();
  ServerHandshake impostor(impostor_config, f.clock.now_ns());

  // The impostor cannot read message 1 at all.
  ServerHandshake::Decision d = impostor.on_initial(view(*initial), kClientAddr, 0, f.clock.now_ns());
  ASSERT_EQ(d.action, ServerHandshake::Decision::Action::kAccept);
  EXPECT_FALSE(impostor.respond(d.initial, random_connection_id(), {}).is_ok());

  // A made-up response for the client's connection id does not authenticate.
  ResponsePacket fake;
  fake.dcid = client.local_cid();
  std::vector<std::uint8_t> junk(32 + 16, 0x5a);
  fake.message = view(junk);
  std::vector<std::uint8_t> fake_d;
  encode_response(fake, fake_d);
  Result<ClientHandshake::Event> e = client.on_datagram(view(fake_d));
  EXPECT_EQ(e.status().code(), StatusCode::kUnauthenticated) << e.status().to_string();
  EXPECT_FALSE(client.complete());

  d = real.on_initial(view(*initial), kClientAddr, 0, f.clock.now_ns());
  Result<ServerHandshake::Accepted> a = real.respond(d.initial, random_connection_id(), {});
  ASSERT_TRUE(a.is_ok());
  e = client.on_datagram(view(a->response));
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_TRUE(client.complete());
  EXPECT_EQ(client.refused(), 1u);
}

TEST(UdpHandshake, EveryFlippedByteOfTheInitialOrResponseFails) {
  Fixture f;
  ClientHandshake client(f.client_config());
  ServerHandshake server(f.server_config(CookiePolicy::kNever), f.clock.now_ns());
  auto initial = client.initial_datagram();
  Result<InitialPacket> ip = parse_initial(view(*initial));
  ASSERT_TRUE(ip.is_ok());
  // Every byte of the header and message 1 (the padding after them is checked separately).
  const std::size_t used = 1 + 4 + 8 + 2 + 2 + ip->message.size();
  for (std::size_t i = 0; i < used; ++i) {
    std::vector<std::uint8_t> bad = *initial;
    bad[i] ^= 0x10;
    ServerHandshake::Decision d = server.on_initial(view(bad), kClientAddr, 0, f.clock.now_ns());
    if (d.action != ServerHandshake::Decision::Action::kAccept) continue;  // refused by the gate
    EXPECT_FALSE(server.respond(d.initial, random_connection_id(), {}).is_ok()) << "byte " << i;
  }
  std::vector<std::uint8_t> padded = *initial;
  padded.back() = 1;
  EXPECT_EQ(server.on_initial(view(padded), kClientAddr, 0, f.clock.now_ns()).action,
            ServerHandshake::Decision::Action::kDrop);

  ServerHandshake::Decision d = server.on_initial(view(*initial), kClientAddr, 0, f.clock.now_ns());
  Result<ServerHandshake::Accepted> a = server.respond(d.initial, random_connection_id(), ByteView("params"));
  ASSERT_TRUE(a.is_ok());
  for (std::size_t i = 0; i < a->response.size(); ++i) {
    std::vector<std::uint8_t> bad = a->response;
    bad[i] ^= 0x10;
    EXPECT_FALSE(client.on_datagram(view(bad)).is_ok()) << "byte " << i;
    EXPECT_FALSE(client.complete());
  }
  EXPECT_TRUE(client.on_datagram(view(a->response)).is_ok());
  EXPECT_TRUE(client.complete());
}

TEST(UdpHandshake, ClientRefusesForgedRetries) {
  Fixture f;
  ClientHandshake client(f.client_config());
  auto initial = client.initial_datagram();
  Result<InitialPacket> ip = parse_initial(view(*initial));
  ASSERT_TRUE(ip.is_ok());
  const Cookie token{};
  // Without the client's ephemeral key (an off-path forger) the tag is wrong.
  std::vector<std::uint8_t> forged;
  encode_retry(kUdpVersion, client.local_cid(), view(token), f.server_key.public_key, ByteView("not the key"), forged);
  EXPECT_EQ(client.on_datagram(view(forged)).status().code(), StatusCode::kUnauthenticated);
  // For another connection id.
  std::vector<std::uint8_t> other;
  encode_retry(kUdpVersion, random_connection_id(), view(token), f.server_key.public_key, ip->message.sub(0, 32), other);
  EXPECT_FALSE(client.on_datagram(view(other)).is_ok());
  // The genuine one works once; a second is ignored.
  std::vector<std::uint8_t> real;
  encode_retry(kUdpVersion, client.local_cid(), view(token), f.server_key.public_key, ip->message.sub(0, 32), real);
  EXPECT_TRUE(client.on_datagram(view(real)).is_ok());
  EXPECT_EQ(client.on_datagram(view(real)).status().code(), StatusCode::kFailedPrecondition);
}

TEST(UdpHandshake, ServerDropsSmallInitialsAndOtherVersions) {
  Fixture f;
  ServerHandshake server(f.server_config(CookiePolicy::kNever), f.clock.now_ns());
  ClientHandshakeConfig cc = f.client_config();
  cc.min_initial_datagram = 600;
  ClientHandshake client(cc);
  auto small = client.initial_datagram();
  ServerHandshake::Decision d = server.on_initial(view(*small), kClientAddr, 0, 0);
  EXPECT_EQ(d.action, ServerHandshake::Decision::Action::kDrop);
  EXPECT_NE(d.reason.message().find("below 1200"), std::string_view::npos) << d.reason.to_string();

  ClientHandshake client2(f.client_config());
  auto initial = client2.initial_datagram();
  (*initial)[4] = 2;  // version 2
  d = server.on_initial(view(*initial), kClientAddr, 0, 0);
  EXPECT_EQ(d.action, ServerHandshake::Decision::Action::kDrop);
  EXPECT_EQ(d.reason.code(), StatusCode::kUnimplemented);
}

TEST(UdpHandshake, ResponseNeverExceedsTheSmallestInitial) {
  Fixture f;
  ClientHandshake client(f.client_config());
  ServerHandshake server(f.server_config(CookiePolicy::kNever), f.clock.now_ns());
  auto initial = client.initial_datagram();
  ServerHandshake::Decision d = server.on_initial(view(*initial), kClientAddr, 0, 0);
  ASSERT_EQ(d.action, ServerHandshake::Decision::Action::kAccept);
  const std::vector<std::uint8_t> fits(1129, 1), too_big(1130, 1);
  Result<ServerHandshake::Accepted> a = server.respond(d.initial, random_connection_id(), view(too_big));
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  a = server.respond(d.initial, random_connection_id(), view(fits));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->response.size(), kMinInitialDatagram);
  ASSERT_TRUE(client.on_datagram(view(a->response)).is_ok());
  EXPECT_EQ(client.result().server_params, fits);
}

TEST(UdpHandshake, PacketParsersRefuseTruncationAndTrailingBytes) {
  ResponsePacket r;
  r.dcid = random_connection_id();
  std::vector<std::uint8_t> msg(48, 7);
  r.message = view(msg);
  std::vector<std::uint8_t> d;
  encode_response(r, d);
  ASSERT_TRUE(parse_response(view(d)).is_ok());
  for (std::size_t n = 0; n < d.size(); ++n) EXPECT_FALSE(parse_response(ByteView(d.data(), n)).is_ok()) << n;
  d.push_back(0);
  EXPECT_FALSE(parse_response(view(d)).is_ok());

  std::vector<std::uint8_t> retry;
  const Cookie token{};
  encode_retry(kUdpVersion, r.dcid, view(token), PublicKey{}, ByteView(), retry);
  ASSERT_TRUE(parse_retry(view(retry)).is_ok());
  for (std::size_t n = 0; n < retry.size(); ++n) EXPECT_FALSE(parse_retry(ByteView(retry.data(), n)).is_ok()) << n;
  retry.push_back(0);
  EXPECT_FALSE(parse_retry(view(retry)).is_ok());

  InitialPacket ip;
  ip.scid = random_connection_id();
  ip.message = view(msg);
  std::vector<std::uint8_t> init;
  encode_initial(ip, 0, init);
  ASSERT_TRUE(parse_initial(view(init)).is_ok());
  for (std::size_t n = 0; n < init.size(); ++n) EXPECT_FALSE(parse_initial(ByteView(init.data(), n)).is_ok()) << n;

  // Wrong types for each parser, and first bytes that fit no packet.
  EXPECT_FALSE(parse_initial(view(d)).is_ok());
  EXPECT_FALSE(parse_retry(view(init)).is_ok());
  for (std::uint8_t b : {0x00, 0x80, 0xC4, 0xCF, 0xD0, 0xE0}) {
    const std::uint8_t one[1] = {b};
    EXPECT_FALSE(classify_packet(ByteView(one, 1)).is_ok()) << int(b);
  }
  const std::uint8_t refused[1] = {0xC3};
  EXPECT_EQ(classify_packet(ByteView(refused, 1)).value_or(PacketKind::kInitial), PacketKind::kRefused);
  const std::uint8_t short_hdr[1] = {0x40};
  EXPECT_EQ(classify_packet(ByteView(short_hdr, 1)).value_or(PacketKind::kInitial), PacketKind::kProtected);
}

}  // namespace
}  // namespace slip::transport::udp
