// Unsigned LEB128 varints: 7 bits per byte, low bits first, high bit set on every byte but the
// last. A 64-bit value takes 1 to 10 bytes. Decoding rejects truncated input, encodings longer
// than the caller allows, and bits past 64 (docs/protocol.md, "Varints").
#pragma once

#include <cstddef>
#include <cstdint>

namespace slip {

inline constexpr std::size_t kMaxVarint64Bytes = 10;

// Bytes needed to encode v.
constexpr std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes v at out (which has room for varint_size(v) bytes); returns the byte after it.
inline std::uint8_t* encode_varint(std::uint8_t* out, std::uint64_t v) {
  while (v >= 0x80) {
    *out++ = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  *out++ = static_cast<std::uint8_t>(v);
  return out;
}

enum class VarintError : std::uint8_t {
  kOk,
  kTruncated,  // input ended inside the varint: wait for more bytes
  kTooLong,    // more than max_bytes bytes, or bits beyond 64
};

struct VarintResult {
  std::uint64_t value = 0;
  std::size_t length = 0;  // bytes consumed when kOk
  VarintError error = VarintError::kOk;
};

// Decodes one varint from [p, p+n) using at most max_bytes bytes (1..10).
inline VarintResult decode_varint(const std::uint8_t* p, std::size_t n,
                                  std::size_t max_bytes = kMaxVarint64Bytes) {
  VarintResult r;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < max_bytes; ++i) {
    if (i == n) {
      r.error = VarintError::kTruncated;
      return r;
    }
    std::uint8_t b = p[i];
    if (i == 9 && b > 1) {  // the 10th byte may only carry bit 63
      r.error = VarintError::kTooLong;
      return r;
    }
    v |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      r.value = v;
      r.length = i + 1;
      return r;
    }
  }
  r.error = VarintError::kTooLong;
  return r;
}

}  // namespace slip
