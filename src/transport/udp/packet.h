// The header of a protected packet (docs/udp.md, "Packets and frames").
//
//   byte 0   0x40: a data packet of an established connection (other values are reserved for
//            the handshake's packets)
//   varint   packet number, full width (0 to 2^62-1)
//
// The header is the associated data of the packet protection; the payload that follows is
// sealed. TODO(perf): send a truncated packet number (RFC 9000 section 17.1) once the
// header is final.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/varint.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/frames.h"

namespace slip::transport::udp {

inline constexpr std::uint8_t kDataPacketType = 0x40;
// The largest header: the type and a 9-byte varint (values up to 2^62-1).
inline constexpr std::size_t kMaxPacketHeaderSize = 1 + 9;

struct PacketHeader {
  std::uint64_t packet_number = 0;
  std::size_t length = 0;  // header bytes
};

// Writes the header at out (room for kMaxPacketHeaderSize); returns its length.
inline std::size_t encode_packet_header(std::uint8_t* out, std::uint64_t packet_number) {
  out[0] = kDataPacketType;
  return static_cast<std::size_t>(encode_varint(out + 1, packet_number) - out);
}

inline Result<PacketHeader> decode_packet_header(ByteView packet) {
  if (packet.empty()) return invalid_argument("empty packet");
  if (packet[0] != kDataPacketType) return invalid_argument("not a data packet");
  VarintResult r = decode_varint(packet.data() + 1, packet.size() - 1);
  if (r.error != VarintError::kOk || r.value > kMaxVarintValue) return invalid_argument("bad packet number");
  return PacketHeader{r.value, 1 + r.length};
}

}  // namespace slip::transport::udp
