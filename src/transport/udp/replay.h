// Sliding replay window over packet numbers: each authenticated packet number is accepted
// once; duplicates, and numbers too far below the highest seen, are refused.
//
// A bitmap of `size` bits (a multiple of 64; 2048 by default) remembers which of the last
// `size` packet numbers up to the highest accepted one have been seen. A number above the
// highest slides the window forward, clearing the bits it passes; a jump of `size` or more
// clears all of them. Numbers at or below highest - size are refused as too old: their bit
// has been reused, so a duplicate could not be told from a first arrival.
//
// Use: check() before decrypting (cheap, refuses most replays without spending an AEAD
// open), then mark() only after the packet authenticated, so forged packets cannot burn
// numbers. The window also gives the largest authenticated number, which packet number
// decoding needs (crypto.h).
//
// Thread safety: none; one per receive direction of a connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace slip::transport::udp {

enum class ReplayVerdict : std::uint8_t {
  kFresh,      // never seen: may be accepted
  kDuplicate,  // seen before
  kTooOld,     // below the window: cannot tell, refused
};

class ReplayWindow {
 public:
  static constexpr std::size_t kDefaultSize = 2048;

  // `size` is rounded up to a multiple of 64 (at least 64).
  explicit ReplayWindow(std::size_t size = kDefaultSize);

  ReplayVerdict check(std::uint64_t pn) const;
  // Records `pn` as seen. Precondition: check(pn) == kFresh.
  void mark(std::uint64_t pn);
  // check() then mark() when fresh.
  ReplayVerdict check_and_mark(std::uint64_t pn);

  std::size_t size() const { return (bits_.size() - 1) * 64; }
  bool empty() const { return !any_; }
  // The highest number marked; meaningless while empty().
  std::uint64_t largest() const { return top_; }

 private:
  bool test_bit(std::uint64_t pn) const { return (bits_[word_of(pn)] >> (pn & 63)) & 1; }
  std::size_t word_of(std::uint64_t pn) const { return static_cast<std::size_t>((pn >> 6) % bits_.size()); }

  std::vector<std::uint64_t> bits_;
  std::uint64_t top_ = 0;
  bool any_ = false;
};

}  // namespace slip::transport::udp
