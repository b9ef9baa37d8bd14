// Percentiles of recorded samples (sorted, nearest rank: every sample is kept, so there is no
// histogram bucket error) and medians of per-run figures.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace slip::bench {

struct Percentiles {
  double min = 0, p50 = 0, p99 = 0, p999 = 0, max = 0;  // microseconds
  std::size_t n = 0;
};

// `samples_ns` is sorted in place.
inline Percentiles percentiles_us(std::vector<std::int64_t>& samples_ns) {
  Percentiles p;
  p.n = samples_ns.size();
  if (samples_ns.empty()) return p;
  std::sort(samples_ns.begin(), samples_ns.end());
  auto rank = [&](double q) {
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples_ns.size())));
    i = std::clamp<std::size_t>(i, 1, samples_ns.size());
    return static_cast<double>(samples_ns[i - 1]) / 1000.0;
  };
  p.min = static_cast<double>(samples_ns.front()) / 1000.0;
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.p999 = rank(0.999);
  p.max = static_cast<double>(samples_ns.back()) / 1000.0;
  return p;
}

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

}  // namespace slip::bench
