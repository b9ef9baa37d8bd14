// libFuzzer target: what the udp:// transport parses beyond the handshake and the core: the
// transport parameters carried in the handshake's payloads (udp.h), the Refused packet
// (handshake.h) and the protected packet's header with packet number recovery (packet.h).
//
// Input: byte 0 is the expected packet number's low byte for the header decoder (times 2^20,
// so recovery around large numbers is reached too); the rest goes to every parser.
// Checks: decoded parameters re-encode to bytes that decode to the same values; a Refused
// packet that parses re-encodes to the same bytes; a decoded header's packet number, encoded
// against the number before it, decodes back to itself.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "transport/udp/handshake.h"
#include "transport/udp/packet.h"
#include "transport/udp/udp.h"

using namespace slip;
using namespace slip::transport::udp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint64_t expected = std::uint64_t{data[0]} << 20;
  const ByteView in(data + 1, size - 1);

  Result<TransportParams> p = decode_transport_params(in);
  if (p.is_ok()) {
    const std::vector<std::uint8_t> again = encode_transport_params(*p);
    Result<TransportParams> q = decode_transport_params(ByteView(again.data(), again.size()));
    if (!q.is_ok() || q->stream_receive_window != p->stream_receive_window ||
        q->connection_receive_window != p->connection_receive_window || q->max_ack_delay_us != p->max_ack_delay_us ||
        q->idle_timeout_ms != p->idle_timeout_ms || q->fec != p->fec) {
      std::abort();
    }
  }

  Result<RefusedPacket> r = parse_refused(in);
  if (r.is_ok()) {
    std::vector<std::uint8_t> again;
    encode_refused(*r, again);
    if (again.size() != in.size() || !(ByteView(again.data(), again.size()) == in)) std::abort();
  }

  Result<PacketHeader> h = decode_packet_header(in, expected);
  if (h.is_ok()) {
    if (h->length > in.size() || h->packet_number > kMaxPacketNumber) std::abort();
    if (h->packet_number > 0) {
      std::uint8_t buf[kMaxPacketHeaderSize];
      const std::size_t n = encode_packet_header(buf, h->dcid, h->packet_number, h->packet_number - 1);
      Result<PacketHeader> back = decode_packet_header(ByteView(buf, n), h->packet_number);
      if (n == 0 || !back.is_ok() || back->packet_number != h->packet_number || back->dcid != h->dcid) std::abort();
    }
  }
  return 0;
}
