// Token bucket and sliding-window limiters driven by a fake clock (times are passed in), and
// their admission counts under threads racing for the same budget.
#include "rpc/rate_limit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace slip::rpc {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1'000 * kMs;

TEST(TokenBucket, AdmitsBurstThenRefusesUntilATokenIsRefilled) {
  TokenBucket b(10, 3);  // one token per 100 ms
  EXPECT_EQ(b.available(0), 3u);
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_FALSE(b.try_acquire(0));
  EXPECT_EQ(b.available(0), 0u);
  EXPECT_EQ(b.wait_time(0), std::chrono::milliseconds(100));
  EXPECT_FALSE(b.try_acquire(99 * kMs));
  EXPECT_EQ(b.wait_time(99 * kMs), std::chrono::milliseconds(1));
  EXPECT_TRUE(b.try_acquire(100 * kMs));
  EXPECT_FALSE(b.try_acquire(100 * kMs));
}

TEST(TokenBucket, RefillsUpToTheBurstAndNoFurther) {
  TokenBucket b(10, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b.try_acquire(0));
  const std::int64_t later = 3600 * kSec;
  EXPECT_EQ(b.available(later), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(b.try_acquire(later));
  EXPECT_FALSE(b.try_acquire(later));
}

TEST(TokenBucket, SpacedCallsAtTheRateAllPass) {
  TokenBucket b(1000, 1);  // one per millisecond, no burst beyond one
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(b.try_acquire(i * kMs)) << i;
  EXPECT_FALSE(b.try_acquire(999 * kMs + kMs / 2));
}

TEST(TokenBucket, FractionalRate) {
  TokenBucket b(0.5, 1);  // one token per two seconds
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_FALSE(b.try_acquire(2 * kSec - 1));
  EXPECT_TRUE(b.try_acquire(2 * kSec));
}

TEST(TokenBucket, RateZeroAdmitsTheBurstOnceAndNeverRefills) {
  TokenBucket b(0, 2);
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_TRUE(b.try_acquire(0));
  EXPECT_FALSE(b.try_acquire(0));
  EXPECT_FALSE(b.try_acquire(1'000'000 * kSec));
  EXPECT_EQ(b.available(1'000'000 * kSec), 0u);
  EXPECT_EQ(b.wait_time(0), std::chrono::nanoseconds::max());
}

TEST(TokenBucket, ZeroBurstAdmitsNothing) {
  TokenBucket b(100, 0);
  EXPECT_FALSE(b.try_acquire(0));
  EXPECT_FALSE(b.try_acquire(10 * kSec));
}

TEST(TokenBucket, ExtremeSettingsDoNotOverflow) {
  // burst / rate is capped at about 73 years: here that is one call.
  TokenBucket slow(1e-30, ~std::uint64_t{0});
  EXPECT_TRUE(slow.try_acquire(0));
  EXPECT_FALSE(slow.try_acquire(0));
  TokenBucket fast(1e18, ~std::uint64_t{0});
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(fast.try_acquire(i));
  TokenBucket late(1, 1);
  EXPECT_TRUE(late.try_acquire(std::numeric_limits<std::int64_t>::max() / 2));
  EXPECT_FALSE(late.try_acquire(std::numeric_limits<std::int64_t>::max() / 2));
}

TEST(SlidingWindow, AdmitsMaxCallsInAWindow) {
  SlidingWindow w(3, std::chrono::seconds(1));
  EXPECT_TRUE(w.try_acquire(0));
  EXPECT_TRUE(w.try_acquire(100 * kMs));
  EXPECT_TRUE(w.try_acquire(900 * kMs));
  EXPECT_FALSE(w.try_acquire(999 * kMs));
  EXPECT_DOUBLE_EQ(w.estimate(999 * kMs), 3.0);
}

TEST(SlidingWindow, PreviousWindowCountsByHowMuchItStillOverlaps) {
  SlidingWindow w(3, std::chrono::seconds(1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.try_acquire(0));
  // At 1 s the sliding window still covers all of the first window: 3 * 1.0 + 0.
  EXPECT_FALSE(w.try_acquire(1 * kSec));
  // At 1.5 s half of it: 3 * 0.5 = 1.5, room for one more (2.5), not two (3.5).
  EXPECT_DOUBLE_EQ(w.estimate(1500 * kMs), 1.5);
  EXPECT_TRUE(w.try_acquire(1500 * kMs));
  EXPECT_FALSE(w.try_acquire(1500 * kMs));
  // At 2 s the first window is gone; the second held one call: 1 * 1.0, room for two.
  EXPECT_TRUE(w.try_acquire(2 * kSec));
  EXPECT_TRUE(w.try_acquire(2 * kSec));
  EXPECT_FALSE(w.try_acquire(2 * kSec));
}

TEST(SlidingWindow, ExactlyAtTheLimitEdgeIsDecidedInIntegers) {
  SlidingWindow w(2, std::chrono::seconds(1));
  ASSERT_TRUE(w.try_acquire(0));
  ASSERT_TRUE(w.try_acquire(0));
  // 2 * 0.5 + 1 = 2: exactly the limit, admitted.
  EXPECT_TRUE(w.try_acquire(1500 * kMs));
  EXPECT_FALSE(w.try_acquire(1500 * kMs));
}

TEST(SlidingWindow, ForgetsEverythingAfterTwoQuietWindows) {
  SlidingWindow w(3, std::chrono::seconds(1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(w.try_acquire(0));
  EXPECT_DOUBLE_EQ(w.estimate(5 * kSec), 0.0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(w.try_acquire(5 * kSec));
  EXPECT_FALSE(w.try_acquire(5 * kSec));
}

TEST(SlidingWindow, ZeroMaxAdmitsNothingAndAClockGoingBackIsHarmless) {
  SlidingWindow none(0, std::chrono::seconds(1));
  EXPECT_FALSE(none.try_acquire(0));
  SlidingWindow w(1, std::chrono::seconds(1));
  EXPECT_TRUE(w.try_acquire(10 * kSec));
  EXPECT_FALSE(w.try_acquire(5 * kSec));
}

TEST(RateLimit, DescribesItself) {
  EXPECT_EQ(RateLimit::token_bucket(100, 20).describe(), "100/s burst 20");
  EXPECT_EQ(RateLimit::token_bucket(0.5, 1).describe(), "0.5/s burst 1");
  EXPECT_EQ(RateLimit::sliding_window(1000, std::chrono::seconds(1)).describe(), "1000 per 1s window");
  EXPECT_EQ(RateLimit::sliding_window(5, std::chrono::milliseconds(250)).describe(), "5 per 250ms window");
}

// Threads racing for one budget at one instant: exactly the budget passes.
template <typename Limiter>
int race(Limiter& l, std::int64_t now) {
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (l.try_acquire(now)) admitted.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  return admitted.load();
}

TEST(RateLimitConcurrency, TokenBucketAdmitsExactlyTheBurstUnderRaces) {
  TokenBucket refilling(1, 300);
  EXPECT_EQ(race(refilling, 5 * kSec), 300);
  TokenBucket fixed(0, 300);
  EXPECT_EQ(race(fixed, 0), 300);
}

TEST(RateLimitConcurrency, SlidingWindowAdmitsExactlyMaxCallsUnderRaces) {
  SlidingWindow w(300, std::chrono::seconds(1));
  EXPECT_EQ(race(w, 0), 300);
}

}  // namespace
}  // namespace slip::rpc
