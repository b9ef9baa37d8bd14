#include "compress/compressor.h"

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "compress/arena.h"
#include "compress/estimate.h"
#include "core/varint.h"

namespace slip::compress {
namespace {

// Extra predicted ratio the estimate grants before skipping a codec: trying in vain costs
// time, skipping in vain costs bandwidth, and the estimate is rough.
constexpr double kEstimateSlack = 0.05;

bool has(std::uint32_t codecs, Codec c) { return (codecs & codec_bit(c)) != 0; }

// Output bytes allowed for an n-byte input: max_ratio * n, capped where every codec's own
// bound is lower anyway (max_ratio may be huge, to force compression in tests).
std::size_t allowed_output(std::size_t n, double max_ratio) {
  const double cap = 2.0 * static_cast<double>(kMaxMessageSize);
  double allowed = max_ratio * static_cast<double>(n);  // NaN for infinity * 0: the cap
  return allowed < cap ? static_cast<std::size_t>(allowed) : static_cast<std::size_t>(cap);
}

// What zstd spends on any message besides the coded bytes, roughly: frame and block headers
// and the Huffman table. It decides for small messages, where a few hundred random bytes can
// look compressible to a sample that small.
constexpr double kZstdFixedBytes = 48;

// LZ4 candidates smaller than this skip the estimate and just run. Measured (compress_bench):
// on random bytes LZ4 gives up after ~0.3 us + 33 ps/byte (0.84 us at 16 KiB) while the
// estimate costs ~0.3 us at any size; on compressible input the estimate is pure overhead,
// ~0.5 us against LZ4's ~0.47 us per KiB of JSON: 7% at 16 KiB, less above.
constexpr std::size_t kLz4DirectBelow = 16 * 1024;

// Codec libraries get a real pointer even for an empty input.
constexpr std::uint8_t kNothing[1] = {0};
ByteView non_null(ByteView v) { return v.data() != nullptr ? v : ByteView(kNothing, 0); }

}  // namespace

struct Compressor::State {
  LZ4_stream_t lz4;  // a union aligned as LZ4 requires
  ZSTD_CCtx* zstd = nullptr;
  detail::OutputArena arena;
  std::uint8_t sample[detail::kSampleBytes];

  State() { LZ4_initStream(&lz4, sizeof(lz4)); }
  ~State() { ZSTD_freeCCtx(zstd); }  // accepts null
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // Empty when the output would not fit in `room` bytes.
  std::optional<Slice> lz4_compress(ByteView in, std::size_t room, int acceleration) {
    const std::size_t prefix = varint_size(in.size());
    const std::size_t bound = prefix + static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(in.size())));
    room = std::min(room, bound);
    if (room <= prefix) return std::nullopt;
    std::uint8_t* out = arena.reserve(room);
    std::uint8_t* block = encode_varint(out, in.size());
    // resetStream_fast + continue with no history: an independent block like
    // LZ4_compress_fast_extState, without its 16 KiB memset per message.
    LZ4_resetStream_fast(&lz4);
    int n = LZ4_compress_fast_continue(&lz4, reinterpret_cast<const char*>(in.data()),
                                       reinterpret_cast<char*>(block), static_cast<int>(in.size()),
                                       static_cast<int>(room - prefix), acceleration);
    if (n <= 0) return std::nullopt;
    return arena.commit(prefix + static_cast<std::size_t>(n));
  }

  // Empty when the output would not fit in `room` bytes.
  Result<std::optional<Slice>> zstd_compress(ByteView in, std::size_t room, int level) {
    if (zstd == nullptr) {
      zstd = ZSTD_createCCtx();
      if (zstd == nullptr) return overloaded("zstd: cannot allocate a compression context");
      // Frame_Content_Size is what receivers check before allocating (format.h).
      ZSTD_CCtx_setParameter(zstd, ZSTD_c_contentSizeFlag, 1);
      ZSTD_CCtx_setParameter(zstd, ZSTD_c_checksumFlag, 0);
      ZSTD_CCtx_setParameter(zstd, ZSTD_c_compressionLevel, level);
    }
    room = std::min(room, ZSTD_compressBound(in.size()));
    if (room == 0) return std::optional<Slice>();
    std::uint8_t* out = arena.reserve(room);
    std::size_t n = ZSTD_compress2(zstd, out, room, in.data(), in.size());
    if (ZSTD_isError(n)) {
      if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall) return std::optional<Slice>();
      return internal_error(std::string("zstd: ") + ZSTD_getErrorName(n));
    }
    return std::optional<Slice>(arena.commit(n));
  }
};

Compressor::Compressor(CompressOptions options) : options_(options), state_(std::make_unique<State>()) {
  options_.codecs &= kAllCodecs;
  options_.zstd_level = std::clamp(options_.zstd_level, ZSTD_minCLevel(), ZSTD_maxCLevel());
  options_.lz4_acceleration = std::max(options_.lz4_acceleration, 1);
  if (!(options_.max_ratio > 0)) options_.max_ratio = 0;  // also catches NaN: nothing compresses
  limit_ = options_.max_ratio + kEstimateSlack;
}

Compressor::~Compressor() = default;
Compressor::Compressor(Compressor&&) noexcept = default;
Compressor& Compressor::operator=(Compressor&&) noexcept = default;

CompressedMessage Compressor::raw(const Chain& input, std::uint64_t& counter) {
  ++counter;
  stats_.bytes_out += input.size();
  return CompressedMessage{Codec::kNone, input};
}

Result<CompressedMessage> Compressor::compress(const Chain& input) {
  const std::size_t n = input.size();
  ++stats_.messages;
  stats_.bytes_in += n;
  if (n < options_.min_size || n > kMaxMessageSize || options_.codecs == 0) {
    return raw(input, stats_.raw_skipped);
  }

  Codec order[2] = {Codec::kLz4, Codec::kZstd};
  if (options_.preferred == Codec::kZstd) std::swap(order[0], order[1]);
  // The estimate (estimate.h), computed only as far as a decision needs it.
  std::size_t sampled = 0;
  bool have_sample = false;
  auto sample = [&] {
    if (!have_sample) sampled = detail::gather_sample(input, state_->sample);
    have_sample = true;
    return ByteView(state_->sample, sampled);
  };
  std::optional<double> lz4_predicted;  // LZ4's ratio on the sample; 1 once LZ4 failed for real
  auto predict = [&](Codec codec) {
    if (!lz4_predicted) lz4_predicted = detail::lz4_ratio(sample(), &state_->lz4);
    // zstd = LZ matching, then entropy coding of what is left; when the matches alone reach
    // the limit, entropy cannot make it worse.
    if (codec == Codec::kLz4 || *lz4_predicted <= limit_) return *lz4_predicted;
    return *lz4_predicted * detail::entropy(sample()) / 8.0 + kZstdFixedBytes / static_cast<double>(n);
  };

  Slice flat;  // the input in one piece, made on the first attempt
  bool attempted = false;
  for (Codec codec : order) {
    if (!has(options_.codecs, codec)) continue;
    // Small messages go straight to LZ4: it gives up on incompressible input as fast as the
    // estimate would run (bench/compress_bench.cc).
    const bool direct = codec == Codec::kLz4 && n < kLz4DirectBelow;
    if (options_.estimate && !direct && predict(codec) > limit_) continue;

    // TODO(perf): zstd could take a multi-slice chain slice by slice (ZSTD_compressStream2)
    // instead of this copy; LZ4's block format needs contiguous input.
    if (!attempted) flat = input.flatten();
    attempted = true;
    const ByteView in = non_null(flat);
    const std::size_t room = allowed_output(n, options_.max_ratio);
    std::optional<Slice> out;
    if (codec == Codec::kLz4) {
      out = state_->lz4_compress(in, room, options_.lz4_acceleration);
    } else {
      SLIP_ASSIGN_OR_RETURN(out, state_->zstd_compress(in, room, options_.zstd_level));
    }
    if (!out) {  // missed max_ratio: the other codec may still pay
      if (codec == Codec::kLz4) lz4_predicted = 1.0;
      continue;
    }

    ++(codec == Codec::kLz4 ? stats_.lz4 : stats_.zstd);
    stats_.bytes_out += out->size();
    return CompressedMessage{codec, Chain(std::move(*out))};
  }
  return raw(input, attempted ? stats_.raw_ratio : stats_.raw_estimate);
}

}  // namespace slip::compress
