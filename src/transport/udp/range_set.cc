#include "transport/udp/range_set.h"

#include <algorithm>

namespace slip::transport::udp {

std::uint64_t RangeSet::insert(std::uint64_t start, std::uint64_t end) {
  if (start >= end) return 0;
  std::uint64_t added = end - start;
  // The first range that could touch [start, end): the last one starting at or before start.
  auto it = m_.upper_bound(start);
  if (it != m_.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= start) it = prev;
  }
  std::uint64_t lo = start;
  std::uint64_t hi = end;
  while (it != m_.end() && it->first <= end) {
    // Overlap (not mere adjacency) with [start, end) reduces what is new.
    const std::uint64_t ov_lo = std::max(it->first, start);
    const std::uint64_t ov_hi = std::min(it->second, end);
    if (ov_hi > ov_lo) added -= ov_hi - ov_lo;
    lo = std::min(lo, it->first);
    hi = std::max(hi, it->second);
    it = m_.erase(it);
  }
  m_.emplace(lo, hi);
  return added;
}

std::uint64_t RangeSet::erase(std::uint64_t start, std::uint64_t end) {
  if (start >= end) return 0;
  std::uint64_t removed = 0;
  auto it = m_.upper_bound(start);
  if (it != m_.begin()) {
    auto prev = std::prev(it);
    if (prev->second > start) it = prev;
  }
  while (it != m_.end() && it->first < end) {
    const std::uint64_t r_lo = it->first;
    const std::uint64_t r_hi = it->second;
    removed += std::min(r_hi, end) - std::max(r_lo, start);
    it = m_.erase(it);
    if (r_lo < start) m_.emplace(r_lo, start);
    if (r_hi > end) {
      m_.emplace(end, r_hi);
      break;
    }
  }
  return removed;
}

void RangeSet::erase_all(const RangeSet& other, std::uint64_t start, std::uint64_t end) {
  if (start >= end || m_.empty()) return;
  auto it = other.m_.upper_bound(start);
  if (it != other.m_.begin()) --it;
  for (; it != other.m_.end() && it->first < end; ++it) {
    erase(std::max(it->first, start), std::min(it->second, end));
  }
}

bool RangeSet::contains(std::uint64_t v) const {
  auto it = m_.upper_bound(v);
  if (it == m_.begin()) return false;
  --it;
  return v < it->second;
}

bool RangeSet::covers(std::uint64_t start, std::uint64_t end) const {
  if (start >= end) return true;
  auto it = m_.upper_bound(start);
  if (it == m_.begin()) return false;
  --it;
  return it->second >= end;
}

}  // namespace slip::transport::udp
