// ReplayWindow (src/transport/udp/replay.h): exhaustive small cases and a long randomized
// comparison with an obviously correct model (a set of everything seen).
#include "transport/udp/replay.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace slip::transport::udp {
namespace {

// The rule, stated without a bitmap: fresh when above the highest seen, or within `size` below
// it and never seen.
class Model {
 public:
  explicit Model(std::uint64_t size) : size_(size) {}
  ReplayVerdict check_and_mark(std::uint64_t pn) {
    if (!seen_.empty()) {
      const std::uint64_t top = *seen_.rbegin();
      if (pn <= top && top - pn >= size_) return ReplayVerdict::kTooOld;
      if (seen_.count(pn)) return ReplayVerdict::kDuplicate;
    }
    seen_.insert(pn);
    return ReplayVerdict::kFresh;
  }

 private:
  std::uint64_t size_;
  std::set<std::uint64_t> seen_;
};

TEST(UdpReplayWindow, AcceptsEachNumberOnce) {
  ReplayWindow w;
  EXPECT_EQ(w.size(), 2048u);
  EXPECT_TRUE(w.empty());
  for (std::uint64_t pn = 0; pn < 10000; ++pn) ASSERT_EQ(w.check_and_mark(pn), ReplayVerdict::kFresh) << pn;
  EXPECT_EQ(w.largest(), 9999u);
  for (std::uint64_t pn = 9999 - 2047; pn < 10000; ++pn) ASSERT_EQ(w.check(pn), ReplayVerdict::kDuplicate) << pn;
  EXPECT_EQ(w.check(9999 - 2048), ReplayVerdict::kTooOld);
  EXPECT_EQ(w.check(0), ReplayVerdict::kTooOld);
  EXPECT_EQ(w.check(10000), ReplayVerdict::kFresh);
}

TEST(UdpReplayWindow, FirstPacketMayHaveAnyNumber) {
  ReplayWindow w;
  EXPECT_EQ(w.check_and_mark(1ull << 50), ReplayVerdict::kFresh);
  EXPECT_EQ(w.check_and_mark(1ull << 50), ReplayVerdict::kDuplicate);
  EXPECT_EQ(w.check_and_mark((1ull << 50) - 2047), ReplayVerdict::kFresh);
  EXPECT_EQ(w.check_and_mark((1ull << 50) - 2048), ReplayVerdict::kTooOld);
}

TEST(UdpReplayWindow, EdgeOfTheWindowExactly) {
  for (std::uint64_t top : {std::uint64_t{2047}, std::uint64_t{2048}, std::uint64_t{5000}, std::uint64_t{4095},
                            std::uint64_t{4096} + 63}) {
    ReplayWindow w;
    ASSERT_EQ(w.check_and_mark(top), ReplayVerdict::kFresh);
    // Everything in (top - 2048, top) is fresh once, then a duplicate.
    const std::uint64_t low = top >= 2047 ? top - 2047 : 0;
    for (std::uint64_t pn = low; pn < top; ++pn) ASSERT_EQ(w.check_and_mark(pn), ReplayVerdict::kFresh) << top << " " << pn;
    for (std::uint64_t pn = low; pn <= top; ++pn) ASSERT_EQ(w.check(pn), ReplayVerdict::kDuplicate) << top << " " << pn;
    if (top >= 2048) {
      EXPECT_EQ(w.check(top - 2048), ReplayVerdict::kTooOld) << top;
    }
  }
}

// The window slides by whole and partial words: after a jump of d, numbers seen before and
// still in the window stay duplicates, and the ones slid past are forgotten (too old), for
// every jump up to a bit more than two windows.
TEST(UdpReplayWindow, SlidesCorrectlyForEveryJumpSize) {
  for (std::uint64_t start : {std::uint64_t{0}, std::uint64_t{37}, std::uint64_t{64 * 5 - 1}}) {
    for (std::uint64_t jump = 1; jump <= 2 * 256 + 130; ++jump) {
      ReplayWindow w(256);
      // Fill the window behind `start + 300` completely.
      const std::uint64_t top = start + 300;
      for (std::uint64_t pn = top - 255; pn <= top; ++pn) ASSERT_EQ(w.check_and_mark(pn), ReplayVerdict::kFresh);
      ASSERT_EQ(w.check_and_mark(top + jump), ReplayVerdict::kFresh);
      const std::uint64_t new_top = top + jump;
      for (std::uint64_t pn = top - 300; pn <= new_top + 1; ++pn) {
        const bool seen = (pn >= top - 255 && pn <= top) || pn == new_top;
        const bool fresh = pn > new_top || (!seen && new_top - pn < 256);
        ASSERT_EQ(w.check(pn) == ReplayVerdict::kFresh, fresh) << "start " << start << " jump " << jump << " pn " << pn;
      }
    }
  }
}

TEST(UdpReplayWindow, HugeJumpForgetsEverything) {
  ReplayWindow w;
  for (std::uint64_t pn = 0; pn < 3000; ++pn) w.mark(pn);
  ASSERT_EQ(w.check_and_mark(1ull << 61), ReplayVerdict::kFresh);
  EXPECT_EQ(w.check(2999), ReplayVerdict::kTooOld);
  EXPECT_EQ(w.check((1ull << 61) - 1), ReplayVerdict::kFresh);
  EXPECT_EQ(w.check((1ull << 61) - 2047), ReplayVerdict::kFresh);
  EXPECT_EQ(w.check((1ull << 61) - 2048), ReplayVerdict::kTooOld);
}

TEST(UdpReplayWindow, RoundsSizesUpToWholeWords) {
  EXPECT_EQ(ReplayWindow(1).size(), 64u);
  EXPECT_EQ(ReplayWindow(64).size(), 64u);
  EXPECT_EQ(ReplayWindow(65).size(), 128u);
  EXPECT_EQ(ReplayWindow(0).size(), 64u);
}

// Random traffic with duplication, reordering, small and large jumps, against the model, for
// several window sizes; the ring wraps many times.
TEST(UdpReplayWindow, AgreesWithTheModelOnRandomTraffic) {
  for (std::size_t size : {64u, 128u, 192u, 2048u}) {
    std::mt19937_64 rng(size);
    ReplayWindow w(size);
    Model m(size);
    std::uint64_t top = 0;
    for (int i = 0; i < 50000; ++i) {
      std::uint64_t pn;
      const unsigned r = rng() % 100;
      if (r < 40) {
        pn = top + 1 + rng() % 4;  // in order, small loss
      } else if (r < 75) {
        pn = top - std::min<std::uint64_t>(top, rng() % (size + 64));  // late or duplicate, near the edge
      } else if (r < 95) {
        pn = top - std::min<std::uint64_t>(top, rng() % 16);  // recent duplicate
      } else if (r < 99) {
        pn = top + 1 + rng() % (3 * size);  // a jump of up to three windows
      } else {
        pn = top + (rng() % (1ull << 20));  // a big jump
      }
      const ReplayVerdict got = w.check_and_mark(pn);
      ASSERT_EQ(got, m.check_and_mark(pn)) << "size " << size << " step " << i << " pn " << pn << " top " << top;
      if (got == ReplayVerdict::kFresh && pn > top) top = pn;
    }
  }
}

}  // namespace
}  // namespace slip::transport::udp
