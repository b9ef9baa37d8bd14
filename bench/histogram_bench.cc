// Recording into a log-linear histogram (src/core/histogram.h) against the floor of one relaxed
// counter increment, in the same run.
#include <benchmark/benchmark.h>

#include <atomic>
#include <random>
#include <vector>

#include "core/histogram.h"

namespace {

std::vector<std::uint64_t> latencies() {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(9.5, 1.0);  // ~13 us median, in ns
  std::vector<std::uint64_t> v(4096);
  for (auto& x : v) x = static_cast<std::uint64_t>(dist(rng));
  return v;
}

void BM_CounterIncrement(benchmark::State& state) {
  std::atomic<std::uint64_t> c{0};
  for (auto _ : state) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(c.load());
}
BENCHMARK(BM_CounterIncrement);

void BM_HistogramRecord(benchmark::State& state) {
  slip::Histogram h;
  const auto values = latencies();
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & 4095]);
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramRecordConcurrent(benchmark::State& state) {
  static slip::Histogram h;
  const auto values = latencies();
  std::size_t i = 0;
  for (auto _ : state) h.record_concurrent(values[i++ & 4095]);
}
BENCHMARK(BM_HistogramRecordConcurrent)->Threads(1)->Threads(2);

void BM_SnapshotQuantiles(benchmark::State& state) {
  slip::Histogram h;
  for (auto v : latencies()) h.record(v);
  for (auto _ : state) {
    slip::HistogramSnapshot s = h.snapshot();
    benchmark::DoNotOptimize(s.quantile(0.99));
  }
}
BENCHMARK(BM_SnapshotQuantiles);

}  // namespace

BENCHMARK_MAIN();
