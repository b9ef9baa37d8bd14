// Decompressor: turns a received message back into its original bytes (format.h).
//
// Input is untrusted. The size a message states is checked against the caller's max_output
// (and kMaxMessageSize) before anything is allocated, so a 30-byte message claiming 4 GiB costs
// an error (kOverloaded), not memory. Malformed bytes of any kind (truncated, lengthened,
// flipped, a block decoding to a size other than the stated one) are kCorruption with a message
// naming the codec and what was wrong; the codec libraries' safe decoders never write past the
// output they are given nor read past the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "compress/format.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::compress {

// Decompresses messages one at a time, reusing its zstd context (~95 KiB, created on first use)
// and output blocks (arena.h). Like Compressor, one per shard is enough. Not thread-safe.
class Decompressor {
 public:
  // `codecs`: the codecs this side advertised (codec_bit() mask); others are refused.
  explicit Decompressor(std::uint32_t codecs = kAllCodecs);
  ~Decompressor();
  Decompressor(Decompressor&&) noexcept;
  Decompressor& operator=(Decompressor&&) noexcept;

  // The original bytes of a message received with `codec`, at most max_output of them.
  // Errors: kInvalidArgument for a reserved or not advertised codec, kOverloaded when the
  // stated size exceeds max_output, kCorruption when the bytes do not decode. kNone copies.
  Result<Slice> decompress(Codec codec, ByteView input, std::size_t max_output);
  // The same, but kNone returns `input` itself, uncopied.
  Result<Slice> decompress(Codec codec, const Slice& input, std::size_t max_output);

 private:
  struct State;

  Status check_codec(Codec codec) const;

  std::uint32_t codecs_;
  std::unique_ptr<State> state_;
};

}  // namespace slip::compress
