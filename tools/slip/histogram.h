// LatencyHistogram: a log-linear histogram of nanosecond values, in the manner of HdrHistogram.
//
// Values below 2^kSubBits are counted exactly; above, each power of two is split into
// 2^kSubBits equal buckets, so a reported value is within 1/2^kSubBits (1.6%) of the true one,
// from nanoseconds to hours, in a fixed 32 KiB. Not thread-safe: one per thread, merged after.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

namespace slip::cli {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 6;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;
  static constexpr std::size_t kBuckets = (64 - kSubBits + 1) * kSub;

  // Negative values (clock steps, bad stamps) count as 0.
  void record(std::int64_t value_ns) {
    const auto v = static_cast<std::uint64_t>(std::max<std::int64_t>(0, value_ns));
    ++counts_[index(v)];
    ++total_;
    min_ = std::min(min_, v);
    max_ = std::max(max_, v);
  }

  void merge(const LatencyHistogram& o) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    min_ = std::min(min_, o.min_);
    max_ = std::max(max_, o.max_);
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t min() const { return total_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }

  // Nearest rank: the smallest recorded value with at least q of the values at or below it,
  // reported as the top of its bucket (never above max()). q in [0, 1]; 0 when empty.
  std::uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<std::uint64_t>(rank, 1, total_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::clamp(bucket_top(i), min(), max_);
    }
    return max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return static_cast<std::size_t>(v);
    const unsigned exp = 63u - static_cast<unsigned>(std::countl_zero(v));  // >= kSubBits
    const unsigned shift = exp - kSubBits;
    return static_cast<std::size_t>((shift + 1) * kSub + ((v >> shift) - kSub));
  }
  // The largest value that falls in bucket i.
  static std::uint64_t bucket_top(std::size_t i) {
    if (i < kSub) return i;
    const std::uint64_t shift = i / kSub - 1;
    const std::uint64_t base = (i % kSub + kSub) << shift;
    return base + ((std::uint64_t{1} << shift) - 1);
  }

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace slip::cli
