// libFuzzer target: the reliable-UDP connection state machine (transport/udp/connection.h)
// fed a script of datagrams, timer expiries and application calls.
//
// Input layout:
//   byte 0   options: bit 0 role, bit 1 small windows and limits, bit 2 pacing off, bit 3 path MTU
//            probing on (both ends, up to 1472 bytes; reprobing after 1 s)
//   then records: an op byte and a length byte, then that many bytes of argument
//     op % 6 == 0  a raw datagram (the argument as is)
//     op % 6 == 1  a datagram with a valid header and the next packet number: the argument is
//                  the payload, so the frame decoder and the frame handlers see it
//     op % 6 == 2  time passes (argument bytes as milliseconds) and due timers fire
//     op % 6 == 3  the application: open a stream, send, finish, read, send a datagram, close
//     op % 6 == 4  a well-behaved peer's packets are exchanged with the connection
//     op % 6 == 5  a packet number far ahead or behind (duplicates, ancient packets)
//
// Checks, beyond "no crash, no hang, no sanitizer report": packets never exceed the maximum
// size (the size in use, or the probed maximum for an MTU probe), poll_transmit stops, time-outs never lie in the past after on_timeout unless work is
// due, and a closed connection stays closed.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "transport/udp/connection.h"
#include "transport/udp/packet.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;
using namespace std::chrono_literals;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "udp_connection_fuzz: %s\n", what);
  std::abort();
}

ConnectionOptions options_for(std::uint8_t flags, bool peer) {
  ConnectionOptions o;
  o.role = ((flags & 1) != 0) != peer ? Role::kServer : Role::kClient;
  if (flags & 2) {
    o.stream_receive_window = o.peer_stream_receive_window = 64;
    o.connection_receive_window = o.peer_connection_receive_window = 128;
    o.max_peer_streams = 3;
    o.stream_send_buffer = 256;
    o.max_incoming_datagrams = 2;
    o.max_outgoing_datagrams = 2;
    o.ack.max_ranges = 3;
    o.frame_limits.max_ack_ranges = 3;
    o.idle_timeout = 2s;
    o.keepalive_interval = 500ms;
  }
  if (flags & 4) o.pacing = false;
  if (flags & 8) {
    o.mtu.enabled = true;
    o.mtu.max_packet_size = 1472;
    o.mtu.reprobe_interval = 1s;
  }
  return o;
}

void drain(Connection& c, Instant now, std::vector<std::string>* out) {
  for (int i = 0;; ++i) {
    if (i > 10000) fail("poll_transmit does not stop");
    std::optional<ByteView> p = c.poll_transmit(now);
    if (!p) break;
    if (p->size() > c.packet_buffer_size()) fail("packet over the probed maximum");
    if (p->size() > c.current_max_packet_size() && c.stats().mtu_probes_sent == 0) fail("packet over max_packet_size");
    if (c.current_max_packet_size() < c.options().max_packet_size) fail("packet size below the base");
    if (out && out->size() < 256) out->emplace_back(p->as_string_view());
  }
  for (int i = 0; c.poll_event(); ++i) {
    if (i > 100000) fail("poll_event does not stop");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  NullProtector prot_a, prot_b;
  Instant now = Instant(std::chrono::hours(1));
  Connection c(options_for(flags, false), &prot_a, now);
  Connection peer(options_for(flags, true), &prot_b, now);
  std::uint64_t next_pn = 0;
  std::vector<std::string> to_peer, to_c;
  std::vector<std::uint64_t> streams;
  std::vector<std::uint8_t> buf(2048);
  std::uint8_t read_buf[512];

  std::size_t pos = 1;
  while (pos + 2 <= size) {
    const std::uint8_t op = data[pos];
    const std::size_t len = std::min<std::size_t>(data[pos + 1], size - pos - 2);
    const ByteView arg(data + pos + 2, len);
    pos += 2 + len;
    const bool was_closed = c.is_closed();
    switch (op % 6) {
      case 0:
        c.on_datagram(now, arg);
        break;
      case 1:
      case 5: {
        std::uint64_t pn = next_pn++;
        if (op % 6 == 5 && len > 0) pn = arg[0] < 128 ? arg[0] : pn + (std::uint64_t{arg[0]} << 20);
        const std::size_t h = encode_packet_header(buf.data(), pn);
        const std::size_t body = std::min(len, buf.size() - h);
        std::copy(arg.begin(), arg.begin() + body, buf.begin() + h);
        c.on_datagram(now, ByteView(buf.data(), h + body));
        break;
      }
      case 2: {
        std::uint64_t ms = 0;
        for (std::size_t i = 0; i < len && i < 3; ++i) ms = ms * 256 + arg[i];
        now += std::chrono::milliseconds(ms);
        if (c.next_timeout() <= now) c.on_timeout(now);
        if (peer.next_timeout() <= now) peer.on_timeout(now);
        break;
      }
      case 3: {
        const std::uint8_t what = len > 0 ? arg[0] : 0;
        const ByteView payload = len > 1 ? arg.sub(1) : ByteView();
        const std::uint64_t id = streams.empty() ? (what >> 3) : streams[(what >> 3) % streams.size()];
        switch (what & 7) {
          case 0:
            if (auto r = c.open_stream(static_cast<Priority>((what >> 3) & 3)); r.is_ok()) streams.push_back(*r);
            break;
          case 1:
            (void)c.send(id, payload);
            break;
          case 2:
            (void)c.send(id, payload, true);
            break;
          case 3: {
            bool fin = false;
            (void)c.read(id, std::span<std::uint8_t>(read_buf, sizeof read_buf), fin);
            break;
          }
          case 4:
            (void)c.send_datagram(payload);
            while (c.read_datagram()) {
            }
            break;
          case 5:
            (void)c.set_priority(id, static_cast<Priority>(what >> 6));
            break;
          case 6:
            if (auto r = peer.open_stream(); r.is_ok()) (void)peer.send(*r, payload, (what & 8) != 0);
            break;
          case 7:
            c.close(now, Status(StatusCode::kCancelled, "fuzz"));
            break;
        }
        break;
      }
      case 4:
        for (const std::string& p : to_peer) peer.on_datagram(now, ByteView(p));
        to_peer.clear();
        for (const std::string& p : to_c) c.on_datagram(now, ByteView(p));
        to_c.clear();
        break;
    }
    drain(c, now, &to_peer);
    drain(peer, now, &to_c);
    if (was_closed && !c.is_closed()) fail("a closed connection reopened");
    (void)c.stats();
    (void)c.is_quiescent();
  }
  return 0;
}
