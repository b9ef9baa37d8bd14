// The compressibility estimate: a look at a small sample of a message that predicts whether
// LZ4 or zstd would shrink it, so that incompressible messages (random bytes, media, data that
// is already compressed) skip the compressor and go raw at a cost that does not grow with the
// message size (bench/compress_bench.cc, 64 KiB of random bytes: ~0.3 us when only LZ4 is
// negotiated, ~0.5 us with zstd; about what one memcpy of the message costs).
//
// The sample is up to kSampleChunks chunks of kSampleChunk bytes (1 KiB) spread evenly over the
// message (all of it when it is small). Two measures come out of it:
//   lz4_ratio  LZ4's own ratio on the sample: what an LZ matcher (LZ4, zstd's first stage) can
//              replace by references. LZ4 gives up early on input without repeats, which is
//              what makes this cheap on incompressible samples;
//   entropy    the order-2 Renyi (collision) entropy of the byte values in part of the
//              sample: what an entropy coder (zstd's Huffman and FSE stages) can save on the
//              bytes left. It never exceeds the Shannon entropy that bounds Huffman coding, so
//              it errs towards trying zstd, and it needs one multiply-add per byte value where
//              Shannon's needs a logarithm. zstd's predicted ratio is lz4_ratio * entropy / 8,
//              plus its fixed costs.
// Blind spots, by design: repeats farther apart than the sample spacing (a random 4 KiB block
// sent twice in one message), and matches a small sample has not seen yet (it underrates long
// messages of repetitive records). Mistakes cost either a wasted compression attempt (caught
// by max_ratio) or a missed saving, never correctness.
#pragma once

#include <cstddef>
#include <cstdint>

#include "slipstream/buffer.h"

union LZ4_stream_u;  // lz4.h: LZ4_stream_t

namespace slip::compress::detail {

inline constexpr std::size_t kSampleChunk = 256;
inline constexpr std::size_t kSampleChunks = 4;
inline constexpr std::size_t kSampleBytes = kSampleChunk * kSampleChunks;
// Bytes of the sample that the entropy histogram counts: a histogram costs about a cycle per
// byte, and 512 bytes measure random bytes within about 0.1 bit (2 sigma). A larger sample
// would cost more on every compressible message than it saves on the rare borderline one.
inline constexpr std::size_t kEntropyBytes = 512;

// Copies the sample of `input` into out[0, kSampleBytes) and returns its length: all of the
// input when it fits, else kSampleChunks chunks from the first byte to the last.
std::size_t gather_sample(const Chain& input, std::uint8_t* out);

// LZ4's compressed / original size on `sample` (at most kSampleBytes), capped at 1. `lz4` is an
// initialized scratch LZ4 state; its history is reset.
double lz4_ratio(ByteView sample, LZ4_stream_u* lz4);

// Collision entropy in bits per byte (0..8) of kEntropyBytes of `sample` (at most kSampleBytes),
// in kSampleChunks pieces spread over it, or of all of a shorter sample; 8 when fewer than 2
// bytes or no repeated value.
double entropy(ByteView sample);

}  // namespace slip::compress::detail
