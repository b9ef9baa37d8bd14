// A set of unsigned integers kept as disjoint, non-adjacent half-open ranges [start, end):
// received packet numbers, acknowledged or lost stream bytes, received stream bytes.
#pragma once

#include <cstdint>
#include <map>

namespace slip::transport::udp {

class RangeSet {
 public:
  struct Range {
    std::uint64_t start;
    std::uint64_t end;  // exclusive
  };

  // Adds [start, end); returns how many values were not in the set before.
  std::uint64_t insert(std::uint64_t start, std::uint64_t end);
  // Removes [start, end); returns how many values were in the set.
  std::uint64_t erase(std::uint64_t start, std::uint64_t end);
  // Removes from this set every value of `other` that lies in [start, end).
  void erase_all(const RangeSet& other, std::uint64_t start, std::uint64_t end);
  // Removes every value below v.
  void erase_below(std::uint64_t v) { erase(0, v); }

  bool contains(std::uint64_t v) const;
  // True when all of [start, end) is in the set (an empty range always is).
  bool covers(std::uint64_t start, std::uint64_t end) const;
  bool empty() const { return m_.empty(); }
  std::size_t range_count() const { return m_.size(); }
  // Precondition: !empty().
  Range front() const { return {m_.begin()->first, m_.begin()->second}; }
  Range back() const { return {m_.rbegin()->first, m_.rbegin()->second}; }
  void pop_front() { m_.erase(m_.begin()); }
  void clear() { m_.clear(); }

  // Ranges in increasing order: `for (auto [start, end] : set)`.
  auto begin() const { return m_.begin(); }
  auto end() const { return m_.end(); }
  auto rbegin() const { return m_.rbegin(); }
  auto rend() const { return m_.rend(); }

 private:
  using Map = std::map<std::uint64_t, std::uint64_t>;
  Map m_;  // start -> end
};

}  // namespace slip::transport::udp
