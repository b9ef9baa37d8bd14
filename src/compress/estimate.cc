#include "compress/estimate.h"

#include <lz4.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

namespace slip::compress::detail {
namespace {

// Copies input[pos, pos + len). Precondition: pos + len <= input.size().
void copy_range(const Chain& input, std::size_t pos, std::size_t len, std::uint8_t* out) {
  for (const Slice& s : input) {
    if (len == 0) return;
    if (pos >= s.size()) {
      pos -= s.size();
      continue;
    }
    std::size_t n = std::min(len, s.size() - pos);
    std::memcpy(out, s.data() + pos, n);
    out += n;
    len -= n;
    pos = 0;
  }
}

}  // namespace

std::size_t gather_sample(const Chain& input, std::uint8_t* out) {
  const std::size_t n = input.size();
  if (n <= kSampleBytes) return input.copy_to(out, n);
  // Chunk k starts at k/(chunks-1) of the way to the last chunk. n > kSampleBytes, so starts
  // are at least a chunk apart: chunks never overlap.
  for (std::size_t k = 0; k < kSampleChunks; ++k) {
    copy_range(input, k * (n - kSampleChunk) / (kSampleChunks - 1), kSampleChunk, out + k * kSampleChunk);
  }
  return kSampleBytes;
}

double lz4_ratio(ByteView sample, LZ4_stream_u* lz4) {
  const std::size_t n = std::min(sample.size(), kSampleBytes);
  if (n == 0) return 1;
  // Room for no more than the input: LZ4 abandons incompressible samples as soon as they
  // overflow it.
  char out[kSampleBytes];
  LZ4_resetStream_fast(lz4);
  int size = LZ4_compress_fast_continue(lz4, reinterpret_cast<const char*>(sample.data()), out,
                                        static_cast<int>(n), static_cast<int>(n), 1);
  return size <= 0 ? 1.0 : static_cast<double>(size) / static_cast<double>(n);
}

double entropy(ByteView sample) {
  // Two tables, so runs of equal bytes do not wait on each other's increments.
  std::array<std::array<std::uint16_t, 256>, 2> h{};
  const std::size_t size = std::min(sample.size(), kSampleBytes);
  // All of a short sample, else kEntropyBytes in kSampleChunks pieces spread over it.
  const std::size_t pieces = size <= kEntropyBytes ? 1 : kSampleChunks;
  const std::size_t piece = size <= kEntropyBytes ? size : kEntropyBytes / kSampleChunks;
  for (std::size_t k = 0; k < pieces; ++k) {
    const std::uint8_t* p = sample.data() + k * size / pieces;
    std::size_t i = 0;
    for (; i + 2 <= piece; i += 2) {
      h[0][p[i]]++;
      h[1][p[i + 1]]++;
    }
    if (i < piece) h[0][p[i]]++;
  }
  const std::size_t n = pieces * piece;
  if (n < 2) return 8;  // nothing to measure, nothing to gain

  // Pairs of positions holding the same byte value, over all pairs: an unbiased estimate of
  // the collision probability sum(p^2). A plain loop, so it vectorizes.
  std::uint64_t pairs = 0;
  for (int b = 0; b < 256; ++b) {
    std::uint32_t c = 0u + h[0][b] + h[1][b];
    pairs += c * (c - (c != 0));
  }
  if (pairs == 0) return 8;  // no value repeats: as random as this sample can show
  const double p2 = static_cast<double>(pairs) / (static_cast<double>(n) * static_cast<double>(n - 1));
  return std::clamp(-std::log2(p2), 0.0, 8.0);
}

}  // namespace slip::compress::detail
