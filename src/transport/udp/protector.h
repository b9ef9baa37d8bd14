// The seam between the reliability core and packet protection (docs/udp.md).
//
// The core builds a packet as header + payload, asks a PacketProtector to seal the payload,
// and, for a received packet, asks it to open the payload before decoding any frame. The
// encrypted transport implements it with an AEAD (the packet number as nonce, the header as
// associated data); this file has two stand-ins with no security at all: NullProtector (the
// identity) and ChecksumProtector (a CRC32C trailer, so that a simulated link's bit flips are
// caught as they would be by an AEAD's tag).
#pragma once

#include <cstddef>
#include <cstdint>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::transport::udp {

class PacketProtector {
 public:
  virtual ~PacketProtector() = default;

  // Bytes seal() adds to a payload (an AEAD tag).
  virtual std::size_t overhead() const = 0;
  // Seals payload[0, len) in place; the buffer has room for len + overhead() bytes, and the
  // sealed payload is exactly that long. `header` is authenticated, not encrypted.
  virtual Status seal(std::uint64_t packet_number, ByteView header, std::uint8_t* payload, std::size_t len) = 0;
  // Opens payload[0, len) in place and returns the plaintext length. A packet that fails
  // authentication is kCorruption: the caller drops and counts it; it is never an error of the
  // connection (anyone can send a bad packet).
  virtual Result<std::size_t> open(std::uint64_t packet_number, ByteView header, std::uint8_t* payload,
                                   std::size_t len) = 0;
};

// Leaves payloads as they are.
class NullProtector final : public PacketProtector {
 public:
  std::size_t overhead() const override { return 0; }
  Status seal(std::uint64_t, ByteView, std::uint8_t*, std::size_t) override { return Status(); }
  Result<std::size_t> open(std::uint64_t, ByteView, std::uint8_t*, std::size_t len) override { return len; }
};

// Appends CRC32C(packet number, header, payload): detects corruption, not forgery.
class ChecksumProtector final : public PacketProtector {
 public:
  std::size_t overhead() const override { return 4; }
  Status seal(std::uint64_t packet_number, ByteView header, std::uint8_t* payload, std::size_t len) override;
  Result<std::size_t> open(std::uint64_t packet_number, ByteView header, std::uint8_t* payload,
                           std::size_t len) override;
};

}  // namespace slip::transport::udp
