// Log-linear histograms for latencies and sizes.
//
// Values (nanoseconds, bytes, any non-negative integer) fall into buckets whose width grows with
// the value: the first 128 values have a bucket each, and every power-of-two range above is cut
// into 64 equal buckets. A value is therefore known to within 1/64 (1.6%) of itself, over the
// whole range up to kMaxValue (2^44 - 1, about 4.9 hours in nanoseconds), in 2,496 buckets.
//
// Histogram is recorded by one thread (its owner: a shard's loop) with plain relaxed stores,
// no read-modify-write, and read by any thread at any time: a reader sees each bucket either
// before or after a concurrent record, never a torn value. record_concurrent() is for the rare
// histogram written from several threads. Readers take a HistogramSnapshot, which merges the
// shards' histograms and answers quantiles.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace slip {

struct HistogramLayout {
  static constexpr int kSubBits = 7;                                 // 128 exact values at the bottom
  static constexpr std::uint64_t kHalf = std::uint64_t{1} << (kSubBits - 1);  // buckets per power of two
  static constexpr int kMaxBits = 44;
  static constexpr std::uint64_t kMaxValue = (std::uint64_t{1} << kMaxBits) - 1;
  static constexpr std::size_t kBuckets = (kMaxBits - kSubBits) * kHalf + 2 * kHalf;

  // The bucket of `v`; values above kMaxValue land in the last bucket.
  static constexpr std::size_t index(std::uint64_t v) {
    if (v > kMaxValue) v = kMaxValue;
    if (v < 2 * kHalf) return static_cast<std::size_t>(v);
    const int shift = std::bit_width(v) - kSubBits;  // >= 1
    return static_cast<std::size_t>(static_cast<std::uint64_t>(shift) * kHalf + (v >> shift));
  }
  // The smallest and largest value of bucket `i`.
  static constexpr std::uint64_t lowest(std::size_t i) {
    if (i < 2 * kHalf) return i;
    const std::uint64_t shift = i / kHalf - 1;
    return (i % kHalf + kHalf) << shift;
  }
  static constexpr std::uint64_t highest(std::size_t i) {
    if (i < 2 * kHalf) return i;
    const std::uint64_t shift = i / kHalf - 1;
    return ((i % kHalf + kHalf + 1) << shift) - 1;
  }
};

class HistogramSnapshot;

class Histogram {
 public:
  Histogram() : counts_(std::make_unique<std::atomic<std::uint64_t>[]>(HistogramLayout::kBuckets)) {}
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Owner thread only.
  void record(std::uint64_t v) {
    bump(counts_[HistogramLayout::index(v)]);
    bump(count_);
    sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    if (v > max_.load(std::memory_order_relaxed)) max_.store(v, std::memory_order_relaxed);
    if (v < min_.load(std::memory_order_relaxed)) min_.store(v, std::memory_order_relaxed);
  }
  // Any thread.
  void record_concurrent(std::uint64_t v);

  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Adds this histogram's buckets to `into`.
  void merge_into(HistogramSnapshot& into) const;
  HistogramSnapshot snapshot() const;

 private:
  static void bump(std::atomic<std::uint64_t>& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_{0};
  std::atomic<std::uint64_t> min_{~std::uint64_t{0}};
  std::atomic<std::uint64_t> max_{0};
};

// A plain copy of one or more histograms, for reading.
class HistogramSnapshot {
 public:
  HistogramSnapshot() : counts_(HistogramLayout::kBuckets, 0) {}

  void record(std::uint64_t v, std::uint64_t times = 1);
  void merge(const HistogramSnapshot& other);
  // What was recorded after `earlier`, a snapshot of the same histograms taken before this one
  // (e.g. the last second's values). min and max are the bounds of the outermost non-empty
  // buckets, capped by this snapshot's max.
  HistogramSnapshot since(const HistogramSnapshot& earlier) const;

  std::uint64_t count() const { return count_; }
  std::uint64_t sum() const { return sum_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  // The value at quantile q in [0, 1] (nearest rank): the highest value of the bucket holding
  // that rank, capped by the largest value recorded. 0 when empty.
  std::uint64_t quantile(double q) const;
  // How many recorded values are <= `bound` (exact when `bound` is a bucket's highest value;
  // otherwise counts the whole bucket holding `bound` only if its highest value is <= bound).
  std::uint64_t count_at_or_below(std::uint64_t bound) const;

 private:
  friend class Histogram;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = ~std::uint64_t{0};
  std::uint64_t max_ = 0;
};

}  // namespace slip
