#include "core/histogram.h"

#include <algorithm>
#include <cmath>

namespace slip {

void Histogram::record_concurrent(std::uint64_t v) {
  counts_[HistogramLayout::index(v)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  std::uint64_t seen = max_.load(std::memory_order_relaxed);
  while (v > seen && !max_.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
  seen = min_.load(std::memory_order_relaxed);
  while (v < seen && !min_.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

void Histogram::merge_into(HistogramSnapshot& into) const {
  // Buckets are read one by one while the owner may record: the copy's count is recomputed
  // from the buckets so that quantiles stay consistent with them.
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < HistogramLayout::kBuckets; ++i) {
    const std::uint64_t c = counts_[i].load(std::memory_order_relaxed);
    into.counts_[i] += c;
    n += c;
  }
  if (n == 0) return;
  into.count_ += n;
  into.sum_ += sum_.load(std::memory_order_relaxed);
  into.min_ = std::min(into.min_, min_.load(std::memory_order_relaxed));
  into.max_ = std::max(into.max_, max_.load(std::memory_order_relaxed));
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot s;
  merge_into(s);
  return s;
}

void HistogramSnapshot::record(std::uint64_t v, std::uint64_t times) {
  if (times == 0) return;
  counts_[HistogramLayout::index(v)] += times;
  count_ += times;
  sum_ += v * times;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < HistogramLayout::kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

HistogramSnapshot HistogramSnapshot::since(const HistogramSnapshot& earlier) const {
  HistogramSnapshot d;
  for (std::size_t i = 0; i < HistogramLayout::kBuckets; ++i) {
    const std::uint64_t c = counts_[i] > earlier.counts_[i] ? counts_[i] - earlier.counts_[i] : 0;
    if (c == 0) continue;
    d.counts_[i] = c;
    d.count_ += c;
    d.min_ = std::min(d.min_, HistogramLayout::lowest(i));
    d.max_ = std::max(d.max_, std::min(HistogramLayout::highest(i), max_));
  }
  d.sum_ = sum_ > earlier.sum_ ? sum_ - earlier.sum_ : 0;
  return d;
}

std::uint64_t HistogramSnapshot::quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least q of the values at or below it.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < HistogramLayout::kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(HistogramLayout::highest(i), min(), max_);
  }
  return max_;
}

std::uint64_t HistogramSnapshot::count_at_or_below(std::uint64_t bound) const {
  const std::size_t last = HistogramLayout::index(bound);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < last; ++i) n += counts_[i];
  if (HistogramLayout::highest(last) <= bound) n += counts_[last];
  return n;
}

}  // namespace slip
