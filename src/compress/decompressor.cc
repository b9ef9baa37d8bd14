#include "compress/decompressor.h"

#include <lz4.h>
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "compress/arena.h"
#include "core/varint.h"

namespace slip::compress {
namespace {

std::string too_large(std::string_view codec, std::uint64_t size, std::size_t limit) {
  return std::string(codec) + ": decompressed size " + std::to_string(size) + " exceeds the limit " +
         std::to_string(limit);
}

}  // namespace

struct Decompressor::State {
  ZSTD_DCtx* zstd = nullptr;
  detail::OutputArena arena;

  State() = default;
  ~State() { ZSTD_freeDCtx(zstd); }  // accepts null
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  Result<Slice> lz4(ByteView in, std::size_t limit) {
    VarintResult size = decode_varint(in.data(), in.size());
    if (size.error == VarintError::kTruncated) return corruption("lz4: truncated size prefix");
    if (size.error != VarintError::kOk) return corruption("lz4: malformed size prefix");
    if (size.value > limit) return overloaded(too_large("lz4", size.value, limit));
    ByteView block = in.sub(size.length);
    if (block.size() > static_cast<std::size_t>(INT_MAX)) return corruption("lz4: block too large");

    // limit <= kMaxMessageSize < INT_MAX, so the stated size fits an int.
    const int expected = static_cast<int>(size.value);
    std::uint8_t* out = arena.reserve(size.value);
    int n = LZ4_decompress_safe(reinterpret_cast<const char*>(block.data()), reinterpret_cast<char*>(out),
                                static_cast<int>(block.size()), expected);
    if (n < 0) return corruption("lz4: malformed or truncated block");
    if (n != expected) {
      return corruption("lz4: block decodes to " + std::to_string(n) + " bytes, not the stated " +
                        std::to_string(expected));
    }
    return arena.commit(size.value);
  }

  Result<Slice> zstd_frame(ByteView in, std::size_t limit) {
    // Only standard frames: no skippable frames, no legacy formats (format.h).
    std::uint32_t magic = 0;
    if (in.size() >= 4) std::memcpy(&magic, in.data(), 4);
    if (in.size() < 4 || magic != ZSTD_MAGICNUMBER) return corruption("zstd: not a zstd frame");
    unsigned long long size = ZSTD_getFrameContentSize(in.data(), in.size());
    if (size == ZSTD_CONTENTSIZE_ERROR) return corruption("zstd: malformed or truncated frame header");
    if (size == ZSTD_CONTENTSIZE_UNKNOWN) return corruption("zstd: frame does not state its content size");
    if (size > limit) return overloaded(too_large("zstd", size, limit));
    std::size_t frame = ZSTD_findFrameCompressedSize(in.data(), in.size());
    if (ZSTD_isError(frame)) return corruption(std::string("zstd: truncated or malformed frame: ") +
                                               ZSTD_getErrorName(frame));
    if (frame != in.size()) {
      return corruption("zstd: " + std::to_string(in.size() - frame) + " bytes after the frame");
    }

    if (zstd == nullptr) {
      zstd = ZSTD_createDCtx();
      if (zstd == nullptr) return overloaded("zstd: cannot allocate a decompression context");
    }
    std::uint8_t* out = arena.reserve(size);
    std::size_t n = ZSTD_decompressDCtx(zstd, out, size, in.data(), in.size());
    if (ZSTD_isError(n)) return corruption(std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n != size) {  // zstd checks this itself; kept as a guard on the invariant we rely on
      return corruption("zstd: frame decodes to " + std::to_string(n) + " bytes, not the stated " +
                        std::to_string(size));
    }
    return arena.commit(n);
  }
};

Decompressor::Decompressor(std::uint32_t codecs)
    : codecs_(codecs & kAllCodecs), state_(std::make_unique<State>()) {}
Decompressor::~Decompressor() = default;
Decompressor::Decompressor(Decompressor&&) noexcept = default;
Decompressor& Decompressor::operator=(Decompressor&&) noexcept = default;

Status Decompressor::check_codec(Codec codec) const {
  if (static_cast<std::uint8_t>(codec) > wire::kMaxCodec) {
    return invalid_argument("reserved codec " + std::to_string(static_cast<unsigned>(codec)));
  }
  if (codec != Codec::kNone && (codecs_ & codec_bit(codec)) == 0) {
    return invalid_argument("codec " + std::string(codec_name(codec)) + " was not negotiated");
  }
  return Status::ok();
}

Result<Slice> Decompressor::decompress(Codec codec, ByteView input, std::size_t max_output) {
  SLIP_TRY(check_codec(codec));
  const std::size_t limit = std::min(max_output, kMaxMessageSize);
  switch (codec) {
    case Codec::kNone:
      if (input.size() > limit) return overloaded(too_large("none", input.size(), limit));
      return Slice::copy_of(input);
    case Codec::kLz4:
      return state_->lz4(input, limit);
    case Codec::kZstd:
      return state_->zstd_frame(input, limit);
  }
  return internal_error("unreachable codec");
}

Result<Slice> Decompressor::decompress(Codec codec, const Slice& input, std::size_t max_output) {
  if (codec != Codec::kNone) return decompress(codec, input.view(), max_output);
  const std::size_t limit = std::min(max_output, kMaxMessageSize);
  if (input.size() > limit) return overloaded(too_large("none", input.size(), limit));
  return input;
}

}  // namespace slip::compress
