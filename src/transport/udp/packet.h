// The header of a protected packet: the short header of the security layer (crypto.h; docs/udp.md,
// "Protected packet (short header)").
//
//   flags (1): 0 1 0 0 0 K L L  |  dcid (8)  |  packet number, low (LL + 1) bytes
//
// The header is the associated data of the packet protection; the payload that follows is
// sealed. The sender truncates the packet number against the largest one the peer has
// acknowledged, the receiver recovers it from the largest it has accepted (RFC 9000, section
// 17.1 and Appendix A).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/crypto.h"

namespace slip::transport::udp {

inline constexpr std::size_t kMaxPacketHeaderSize = kMaxShortHeaderLen;

struct PacketHeader {
  std::uint64_t packet_number = 0;
  std::size_t length = 0;  // header bytes
  ConnectionId dcid{};
};

// Writes the header at `out` (room for kMaxPacketHeaderSize); returns its length. The packet
// number is truncated against `largest_acked`; when even 4 bytes cannot carry it (2^31 packets
// unacknowledged) returns 0.
inline std::size_t encode_packet_header(std::uint8_t* out, const ConnectionId& dcid, std::uint64_t packet_number,
                                        std::optional<std::uint64_t> largest_acked) {
  const std::size_t pn_len = packet_number_length(packet_number, largest_acked);
  if (pn_len == 0) return 0;
  return write_short_header(out, dcid, packet_number, pn_len);
}

// A header with a zero connection id and nothing acknowledged (tests and fuzzers).
inline std::size_t encode_packet_header(std::uint8_t* out, std::uint64_t packet_number) {
  return encode_packet_header(out, ConnectionId{}, packet_number, std::nullopt);
}

// Parses the header and recovers the full packet number from `expected_pn` (the largest
// accepted plus one, 0 before any). The protection's tag is not required here: open() refuses
// a payload too short for it.
inline Result<PacketHeader> decode_packet_header(ByteView packet, std::uint64_t expected_pn = 0) {
  if (packet.empty()) return invalid_argument("empty packet");
  const std::uint8_t b0 = packet[0];
  if ((b0 & kLongHeaderBit) || !(b0 & kFixedBit)) return invalid_argument("not a protected packet");
  if (b0 & kShortReservedBits) return invalid_argument("reserved header bits are set");
  if (b0 & kKeyPhaseBit) return invalid_argument("key phase 1 (key update is not supported)");
  const std::size_t pn_len = static_cast<std::size_t>(b0 & kPacketNumberLenMask) + 1;
  const std::size_t len = 1 + kConnectionIdLen + pn_len;
  if (packet.size() < len) return invalid_argument("packet shorter than its header");
  PacketHeader h;
  std::memcpy(h.dcid.data(), packet.data() + 1, kConnectionIdLen);
  std::uint64_t truncated = 0;
  for (std::size_t i = 0; i < pn_len; ++i) truncated = (truncated << 8) | packet[1 + kConnectionIdLen + i];
  h.packet_number = decode_packet_number(expected_pn, truncated, static_cast<unsigned>(8 * pn_len));
  if (h.packet_number > kMaxPacketNumber) return invalid_argument("bad packet number");
  h.length = len;
  return h;
}

}  // namespace slip::transport::udp
