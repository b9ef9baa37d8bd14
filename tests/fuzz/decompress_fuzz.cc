// libFuzzer target for src/compress: untrusted compressed messages, and round trips.
//
// Input: one selector byte, then the message.
//   selector & 0x03  the codec (0 none, 1 lz4, 2 zstd, 3 reserved);
//   selector & 0x04  also compress the message with that codec (forced, whatever its size or
//                    ratio) and check it decompresses to itself.
// Decompression is capped at 64 KiB, so bombs are refused, not allocated. Any result other
// than a bounded output or a kInvalidArgument / kOverloaded / kCorruption error aborts.
//
// Run: build/asan/tests/fuzz/decompress_fuzz -max_len=70000 -rss_limit_mb=512
#include <cstddef>
#include <cstdint>
#include <limits>

#include "compress/compressor.h"
#include "compress/decompressor.h"
#include "core/assert.h"

namespace {

using slip::compress::Codec;

constexpr std::size_t kMaxOutput = 64 * 1024;

bool acceptable_error(const slip::Status& s) {
  switch (s.code()) {
    case slip::StatusCode::kInvalidArgument:
    case slip::StatusCode::kOverloaded:
    case slip::StatusCode::kCorruption:
      return !s.message().empty();
    default:
      return false;
  }
}

slip::compress::Compressor make_forced(Codec codec) {
  slip::compress::CompressOptions o;
  o.codecs = slip::compress::codec_bit(codec);
  o.preferred = codec;
  o.min_size = 0;
  o.max_ratio = std::numeric_limits<double>::infinity();
  o.estimate = false;
  return slip::compress::Compressor(o);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t selector = data[0];
  const Codec codec = static_cast<Codec>(selector & 0x03);
  const slip::ByteView message(data + 1, size - 1);

  // Long-lived like a shard's, so output blocks are reused across inputs (arena.h).
  static slip::compress::Decompressor decompressor;

  slip::Result<slip::Slice> out = decompressor.decompress(codec, message, kMaxOutput);
  if (out.is_ok()) {
    SLIP_ASSERT(out->size() <= kMaxOutput);
  } else {
    SLIP_ASSERT(acceptable_error(out.status()));
  }

  if ((selector & 0x04) != 0 && (codec == Codec::kLz4 || codec == Codec::kZstd)) {
    static slip::compress::Compressor lz4 = make_forced(Codec::kLz4);
    static slip::compress::Compressor zstd = make_forced(Codec::kZstd);
    slip::Slice input = slip::Slice::copy_of(message);
    auto packed = (codec == Codec::kLz4 ? lz4 : zstd).compress(input);
    SLIP_ASSERT(packed.is_ok());
    SLIP_ASSERT(packed->codec == codec);
    auto back = decompressor.decompress(codec, packed->bytes.flatten(), message.size());
    SLIP_ASSERT(back.is_ok());
    SLIP_ASSERT(back->view() == message);
  }
  return 0;
}
