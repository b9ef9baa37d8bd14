#include "transport/udp/replay.h"

#include <algorithm>

#include "core/assert.h"

namespace slip::transport::udp {

// One word more than the window: numbers (top - size, top] can span size / 64 + 1 words when
// top is not the last number of its word, and every one of them needs its own bit.
ReplayWindow::ReplayWindow(std::size_t size) : bits_(std::max<std::size_t>(1, (size + 63) / 64) + 1, 0) {}

ReplayVerdict ReplayWindow::check(std::uint64_t pn) const {
  if (!any_ || pn > top_) return ReplayVerdict::kFresh;
  if (top_ - pn >= size()) return ReplayVerdict::kTooOld;
  return test_bit(pn) ? ReplayVerdict::kDuplicate : ReplayVerdict::kFresh;
}

void ReplayWindow::mark(std::uint64_t pn) {
  SLIP_ASSERT(check(pn) == ReplayVerdict::kFresh);
  if (!any_) {
    std::fill(bits_.begin(), bits_.end(), 0);
    top_ = pn;
    any_ = true;
  } else if (pn > top_) {
    // Clear every bit the window slides past: whole words between the old top's word and the
    // new one, then the low bits of the new top's word. Bits of a word are indexed by pn & 63,
    // so a word holds 64 consecutive numbers and clearing word by word is exact.
    const std::uint64_t old_word = top_ >> 6;
    const std::uint64_t new_word = pn >> 6;
    if (new_word - old_word >= bits_.size()) {
      std::fill(bits_.begin(), bits_.end(), 0);
    } else {
      for (std::uint64_t w = old_word + 1; w <= new_word; ++w) bits_[static_cast<std::size_t>(w % bits_.size())] = 0;
    }
    top_ = pn;
  }
  bits_[word_of(pn)] |= std::uint64_t{1} << (pn & 63);
}

ReplayVerdict ReplayWindow::check_and_mark(std::uint64_t pn) {
  const ReplayVerdict v = check(pn);
  if (v == ReplayVerdict::kFresh) mark(pn);
  return v;
}

}  // namespace slip::transport::udp
