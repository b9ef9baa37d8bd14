// Shared by the reliable UDP fuzz targets: reading fields off the fuzz input, and applying a
// list of byte mutations to a genuine packet.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "slipstream/buffer.h"

namespace slip::transport::udp::fuzz {

[[noreturn]] inline void fail(const char* target, const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "%s: %s %s\n", target, what, detail.c_str());
  std::abort();
}

// Reads little-endian fields; past the end every read is 0.
class Input {
 public:
  explicit Input(ByteView in) : in_(in) {}
  std::uint8_t u8() { return pos_ < in_.size() ? in_[pos_++] : 0; }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() | u8() << 8); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(u16() | static_cast<std::uint32_t>(u16()) << 16); }
  std::uint64_t u64() { return u32() | static_cast<std::uint64_t>(u32()) << 32; }
  ByteView bytes(std::size_t n) {
    n = std::min(n, in_.size() - pos_);
    ByteView v = in_.sub(pos_, n);
    pos_ += n;
    return v;
  }
  ByteView rest() { return bytes(in_.size() - pos_); }

 private:
  ByteView in_;
  std::size_t pos_ = 0;
};

// Mutation list: count (u8, at most 8), then per mutation offset (u16, taken modulo the packet
// size) and a byte to XOR there. Returns true when the packet changed.
inline bool mutate(Input& in, std::vector<std::uint8_t>& packet) {
  const std::vector<std::uint8_t> before = packet;
  const unsigned count = in.u8() % 9;
  for (unsigned i = 0; i < count; ++i) {
    const std::uint16_t off = in.u16();
    const std::uint8_t x = in.u8();
    if (!packet.empty()) packet[off % packet.size()] ^= x;
  }
  // A trailing byte count to cut (low 7 bits) or, with the top bit, to append as zeros.
  const std::uint8_t cut = in.u8();
  const std::size_t n = cut & 0x7f;
  if (cut & 0x80) {
    packet.resize(packet.size() + n, 0);
  } else {
    packet.resize(packet.size() - std::min(n, packet.size()));
  }
  return packet != before;
}

}  // namespace slip::transport::udp::fuzz
