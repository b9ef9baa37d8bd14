// Compression micro-benchmarks (src/compress), with the baselines they are read against measured
// in the same run.
//
//   BM_Compress / BM_Decompress  per codec, on JSON-like 1 KiB and 64 KiB messages: throughput
//                                of input (or output) bytes, and the compressed ratio;
//   BM_CompressRandom            64 KiB of random bytes with the default options: the estimate
//                                sends it raw, and the time per call is read against
//   BM_Memcpy                    copying the same 64 KiB once, and against
//   BM_CompressRandomNoEstimate  the same message when each codec has to find out by trying;
//   BM_Estimate                  the estimate alone;
//   BM_Lz4ExtState               plain LZ4_compress_fast_extState (a 16 KiB table reset per
//                                call), against which the Compressor's LZ4 path is read.
//
// Run: build/release/bench/compress_bench --benchmark_repetitions=5
//        --benchmark_report_aggregates_only=true   (quote medians; these machines are noisy)
#include <benchmark/benchmark.h>
#include <lz4.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "compress/compressor.h"
#include "compress/decompressor.h"
#include "compress/estimate.h"

namespace slip::compress {
namespace {

enum class Data { kJson, kRandom };

// Records like a telemetry or market-data service publishes (the same shape as the tests').
std::string json_like(std::size_t n) {
  static const char* const kActions[] = {"click", "view", "buy", "scroll", "login"};
  std::mt19937 rng(1);
  std::string s;
  while (s.size() < n) {
    s += "{\"id\":" + std::to_string(rng() % 1000000) + ",\"user\":\"user_" + std::to_string(rng() % 5000) +
         "\",\"action\":\"" + kActions[rng() % 5] + "\",\"price\":" + std::to_string(rng() % 10000) + "." +
         std::to_string(rng() % 100) + ",\"tags\":[\"eu\",\"mobile\"],\"ts\":" +
         std::to_string(1700000000 + rng() % 100000) + "}\n";
  }
  s.resize(n);
  return s;
}

Slice make(Data data, std::size_t n) {
  std::string s;
  if (data == Data::kJson) {
    s = json_like(n);
  } else {
    std::mt19937_64 rng(7);
    s.resize(n);
    for (auto& c : s) c = static_cast<char>(rng());
  }
  return Slice::copy_of(ByteView(s));
}

CompressOptions only(Codec codec) {
  CompressOptions o;
  o.codecs = codec_bit(codec);
  o.preferred = codec;
  return o;
}

void BM_Compress(benchmark::State& state, Codec codec, Data data, std::size_t n) {
  Slice input = make(data, n);
  Compressor c(only(codec));
  std::size_t out = 0;
  for (auto _ : state) {
    auto r = c.compress(input);
    benchmark::DoNotOptimize(r);
    out = r->bytes.size();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["ratio"] = static_cast<double>(out) / static_cast<double>(n);
  if (c.stats().raw_estimate + c.stats().raw_ratio + c.stats().raw_skipped > 0) state.SetLabel("sent raw");
}

void BM_Decompress(benchmark::State& state, Codec codec, Data data, std::size_t n) {
  Slice input = make(data, n);
  Compressor c(only(codec));
  Slice packed = c.compress(input)->bytes.flatten();
  Decompressor d;
  for (auto _ : state) {
    auto r = d.decompress(codec, packed.view(), n);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));  // output bytes
}

BENCHMARK_CAPTURE(BM_Compress, lz4_json_1K, Codec::kLz4, Data::kJson, 1024);
BENCHMARK_CAPTURE(BM_Compress, zstd_json_1K, Codec::kZstd, Data::kJson, 1024);
BENCHMARK_CAPTURE(BM_Compress, lz4_json_64K, Codec::kLz4, Data::kJson, 64 * 1024);
BENCHMARK_CAPTURE(BM_Compress, zstd_json_64K, Codec::kZstd, Data::kJson, 64 * 1024);
BENCHMARK_CAPTURE(BM_Decompress, lz4_json_1K, Codec::kLz4, Data::kJson, 1024);
BENCHMARK_CAPTURE(BM_Decompress, zstd_json_1K, Codec::kZstd, Data::kJson, 1024);
BENCHMARK_CAPTURE(BM_Decompress, lz4_json_64K, Codec::kLz4, Data::kJson, 64 * 1024);
BENCHMARK_CAPTURE(BM_Decompress, zstd_json_64K, Codec::kZstd, Data::kJson, 64 * 1024);

// Random bytes with the defaults (both codecs, estimate on): raw, no compressor runs.
void BM_CompressRandom(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Slice input = make(Data::kRandom, n);
  Compressor c;
  for (auto _ : state) {
    auto r = c.compress(input);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
  if (c.stats().lz4 + c.stats().zstd != 0) state.SkipWithError("random bytes were compressed");
  // 64 KiB: decided by the estimate; 1 KiB: by one LZ4 pass that gives up (compressor.h).
  state.SetLabel(c.stats().raw_estimate != 0 ? "estimate" : "lz4 gave up");
}
BENCHMARK(BM_CompressRandom)->Arg(1024)->Arg(64 * 1024);

// The same, when a codec has to try: compress until the output overflows max_ratio.
void BM_CompressRandomNoEstimate(benchmark::State& state, Codec codec) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Slice input = make(Data::kRandom, n);
  CompressOptions o = only(codec);
  o.estimate = false;
  Compressor c(o);
  for (auto _ : state) {
    auto r = c.compress(input);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK_CAPTURE(BM_CompressRandomNoEstimate, lz4, Codec::kLz4)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_CAPTURE(BM_CompressRandomNoEstimate, zstd, Codec::kZstd)->Arg(1024)->Arg(64 * 1024);

// Baseline: one copy of the message.
void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Slice input = make(Data::kRandom, n);
  std::vector<std::uint8_t> out(n);
  for (auto _ : state) {
    std::memcpy(out.data(), input.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Memcpy)->Arg(1024)->Arg(64 * 1024);

// The estimate alone (gather the sample, measure it), on each kind of data; with the entropy
// (what zstd needs when LZ4 finds nothing) and without (LZ4 only).
void BM_Estimate(benchmark::State& state, Data data, bool with_entropy) {
  Chain input(make(data, 64 * 1024));
  std::uint8_t sample[detail::kSampleBytes];
  LZ4_stream_t lz4;
  LZ4_initStream(&lz4, sizeof(lz4));
  for (auto _ : state) {
    std::size_t n = detail::gather_sample(input, sample);
    double r = detail::lz4_ratio(ByteView(sample, n), &lz4);
    if (with_entropy) r *= detail::entropy(ByteView(sample, n)) / 8;
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK_CAPTURE(BM_Estimate, json_64K, Data::kJson, false);
BENCHMARK_CAPTURE(BM_Estimate, random_64K, Data::kRandom, false);
BENCHMARK_CAPTURE(BM_Estimate, random_64K_with_entropy, Data::kRandom, true);

// Baseline for the LZ4 path: the plain one-shot API with its per-call table reset.
void BM_Lz4ExtState(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Slice input = make(Data::kJson, n);
  LZ4_stream_t lz4;
  std::vector<char> out(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(n))));
  for (auto _ : state) {
    int r = LZ4_compress_fast_extState(&lz4, reinterpret_cast<const char*>(input.data()), out.data(),
                                       static_cast<int>(n), static_cast<int>(out.size()), 1);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * n));
}
BENCHMARK(BM_Lz4ExtState)->Arg(1024)->Arg(64 * 1024);

}  // namespace
}  // namespace slip::compress

BENCHMARK_MAIN();
