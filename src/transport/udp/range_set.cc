#include "transport/udp/range_set.h"

#include <algorithm>

namespace slip::transport::udp {

// Both calls run once per packet on the data path (received stream bytes, acknowledged ranges),
// nearly always growing or trimming one range at an end: they change the range's node in place
// (a new key goes through extract() and back) instead of erasing and allocating a node.
std::uint64_t RangeSet::insert(std::uint64_t start, std::uint64_t end) {
  if (start >= end) return 0;
  std::uint64_t added = end - start;
  auto it = m_.upper_bound(start);  // the first range starting after start
  Map::iterator keep;
  if (it != m_.begin() && std::prev(it)->second >= start) {
    // A range starting at or before start touches [start, end): it grows, its key stays.
    keep = std::prev(it);
    if (keep->second >= end) return 0;  // already covered
    if (keep->second > start) added -= keep->second - start;
  } else if (it != m_.end() && it->first <= end) {
    // The first range touching [start, end) starts after start: its node takes start as key.
    auto node = m_.extract(it);
    added -= std::min(node.mapped(), end) - node.key();
    node.key() = start;
    node.mapped() = std::max(node.mapped(), end);
    keep = m_.insert(std::move(node)).position;
  } else {
    m_.emplace_hint(it, start, end);
    return added;
  }
  // Ranges after `keep` that start at or before end merge into it.
  std::uint64_t hi = std::max(keep->second, end);
  for (it = std::next(keep); it != m_.end() && it->first <= end; it = m_.erase(it)) {
    const std::uint64_t ov_lo = std::max(it->first, start);
    const std::uint64_t ov_hi = std::min(it->second, end);
    if (ov_hi > ov_lo) added -= ov_hi - ov_lo;
    hi = std::max(hi, it->second);
  }
  keep->second = hi;
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
    if (r_lo < start) {
      // The part below start stays in this node.
      it->second = start;
      if (r_hi > end) {
        m_.emplace_hint(std::next(it), end, r_hi);
        break;
      }
      ++it;
      continue;
    }
    if (r_hi > end) {
      // The part above end stays: this node takes end as its key.
      auto node = m_.extract(it);
      node.key() = end;
      m_.insert(std::move(node));
      break;
    }
    it = m_.erase(it);
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
