// Compressor: picks a codec for each outgoing message and compresses it (format.h).
//
// Per message, cheapest test first:
//   1. size: below min_size (or above kMaxMessageSize), or no codec negotiated -> raw;
//   2. the negotiated codecs in order of preference; each is skipped when the estimate
//      (estimate.h, on a 1 KiB sample) predicts it will miss max_ratio by more than 0.05.
//      LZ4 only removes repeats, zstd also entropy-codes, so text with few repeats (base64,
//      hex) goes to zstd even when LZ4 is preferred. Below 16 KiB LZ4 skips the estimate and
//      just runs: it gives up on incompressible input nearly as fast;
//   3. a codec compresses into room for max_ratio * size bytes: output that does not fit is
//      abandoned (LZ4 stops as soon as it overflows) and the next codec, if any, is considered;
//   4. none left -> raw. Incompressible input costs the estimate (constant, ~0.5 us) and,
//      below 16 KiB, one LZ4 pass that gives up early (under 0.9 us).
// Raw messages leave as the caller's own slices: no copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "compress/format.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::compress {

struct CompressOptions {
  // Codecs the peer accepts (codec_bit() mask, from the handshake). 0: everything goes raw.
  std::uint32_t codecs = kAllCodecs;
  // Tried first when the estimate says it pays; the other negotiated codec is the fallback.
  Codec preferred = Codec::kLz4;
  // Smaller messages go raw: the gain is a few bytes, the cost a microsecond.
  std::size_t min_size = 256;
  // zstd level (clamped to zstd's range); 1 is the fastest of the regular levels.
  int zstd_level = 1;
  // LZ4 acceleration, at least 1: higher is faster and compresses less.
  int lz4_acceleration = 1;
  // Compressed bytes are sent only when at most this fraction of the input; otherwise raw.
  double max_ratio = 0.9;
  // Skip codecs the estimate predicts will miss max_ratio. false: always try (tests, benches).
  bool estimate = true;
};

// An outgoing message: what goes in the DATA frames, and the codec their flags carry.
struct CompressedMessage {
  Codec codec = Codec::kNone;
  Chain bytes;  // kNone: the input's own slices, uncopied
};

// Counters since construction, for metrics. Every message compress() returned counts in
// exactly one of the raw_* fields or in lz4 or zstd.
struct CompressStats {
  std::uint64_t messages = 0;
  std::uint64_t raw_skipped = 0;   // below min_size, above kMaxMessageSize, or no codec
  std::uint64_t raw_estimate = 0;  // the estimate predicted no codec reaches max_ratio
  std::uint64_t raw_ratio = 0;     // compressed, but missed max_ratio: wasted attempts
  std::uint64_t lz4 = 0;
  std::uint64_t zstd = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;  // as sent, raw or compressed
};

// Compresses messages one at a time, reusing its LZ4 state (16 KiB), zstd context (created on
// first use, up to ~570 KiB at level 1) and output blocks (arena.h). Messages are independent,
// so a shard may share one Compressor among its connections that negotiated the same options.
// Not thread-safe.
//
// TODO(perf): zstd dictionaries trained on a subject's or method's recent small JSON-like
// messages (DESIGN.md item 6) would compress sub-KiB messages that today gain little; they need
// a dictionary id in the format and an exchange of dictionaries between peers.
class Compressor {
 public:
  // Out-of-range options are clamped.
  explicit Compressor(CompressOptions options = {});
  ~Compressor();
  Compressor(Compressor&&) noexcept;
  Compressor& operator=(Compressor&&) noexcept;

  // Compresses `input` as one message, or passes it through raw (see the top of this file).
  // A multi-slice input is copied into one block before compressing (not when sent raw).
  // Fails only when zstd cannot allocate its context (kOverloaded) or reports an unexpected
  // error (kInternal); the caller may then send the message raw.
  Result<CompressedMessage> compress(const Chain& input);
  Result<CompressedMessage> compress(const Slice& input) { return compress(Chain(input)); }

  const CompressOptions& options() const { return options_; }
  const CompressStats& stats() const { return stats_; }

 private:
  struct State;

  CompressedMessage raw(const Chain& input, std::uint64_t& counter);

  CompressOptions options_;
  double limit_;  // the highest predicted ratio worth an attempt
  CompressStats stats_;
  std::unique_ptr<State> state_;  // codec contexts and the output arena
};

}  // namespace slip::compress
