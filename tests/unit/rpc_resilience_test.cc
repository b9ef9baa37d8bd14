// The retry budget, circuit breaker and backoff of rpc/resilience.h, driven by a ManualClock:
// every assertion is an exact count or state at an exact time.
#include "rpc/resilience.h"

#include <gtest/gtest.h>

#include "core/clock.h"

namespace slip::rpc {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(WindowCounter, CountsInsideTheWindowAndForgetsWholeBuckets) {
  ManualClock clock;
  WindowCounter w(seconds(10), 10);  // 1 s buckets
  w.add_a(clock.now_ns(), 3);
  clock.advance(milliseconds(4500));
  w.add_a(clock.now_ns());
  w.add_b(clock.now_ns(), 2);
  EXPECT_EQ(w.a(clock.now_ns()), 4u);
  EXPECT_EQ(w.b(clock.now_ns()), 2u);
  // At 10.0 s the bucket of 0 s is a whole window old: its 3 leave, the rest stay.
  clock.advance(milliseconds(5500));
  EXPECT_EQ(w.a(clock.now_ns()), 1u);
  EXPECT_EQ(w.b(clock.now_ns()), 2u);
  clock.advance(seconds(5));
  EXPECT_EQ(w.a(clock.now_ns()), 0u);
  EXPECT_EQ(w.b(clock.now_ns()), 0u);
  // A slot reused for a later bucket starts from zero.
  w.add_a(clock.now_ns());
  EXPECT_EQ(w.a(clock.now_ns()), 1u);
}

TEST(RetryBudget, RatioOfCallsPaysForRetries) {
  ManualClock clock;
  RetryBudget b({.ratio = 0.1, .min_per_second = 0, .window = seconds(10)});
  EXPECT_FALSE(b.try_spend(clock.now_ns()));  // nothing deposited yet
  for (int i = 0; i < 9; ++i) b.on_call(clock.now_ns());
  EXPECT_FALSE(b.try_spend(clock.now_ns()));  // 0.9 tokens
  b.on_call(clock.now_ns());
  EXPECT_TRUE(b.try_spend(clock.now_ns()));  // 10 calls: one retry
  EXPECT_FALSE(b.try_spend(clock.now_ns()));
  for (int i = 0; i < 90; ++i) b.on_call(clock.now_ns());
  int spent = 0;
  while (b.try_spend(clock.now_ns())) ++spent;
  EXPECT_EQ(spent, 9);  // 100 calls pay for 10 retries in all
  EXPECT_NEAR(b.available(clock.now_ns()), 0.0, 1e-9);
}

TEST(RetryBudget, MinimumPerSecondIsAReserveOverTheWindow) {
  ManualClock clock;
  RetryBudget b({.ratio = 0.1, .min_per_second = 2, .window = seconds(5)});
  EXPECT_DOUBLE_EQ(b.available(clock.now_ns()), 10.0);  // 2/s x 5 s, no calls
  int spent = 0;
  while (b.try_spend(clock.now_ns())) ++spent;
  EXPECT_EQ(spent, 10);
  for (int i = 0; i < 20; ++i) b.on_call(clock.now_ns());
  EXPECT_TRUE(b.try_spend(clock.now_ns()));
  EXPECT_TRUE(b.try_spend(clock.now_ns()));
  EXPECT_FALSE(b.try_spend(clock.now_ns()));
}

TEST(RetryBudget, SpendingLeavesTheWindowWithItsBucket) {
  ManualClock clock;
  RetryBudget b({.ratio = 0, .min_per_second = 1, .window = seconds(10)});
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.try_spend(clock.now_ns()));
  EXPECT_FALSE(b.try_spend(clock.now_ns()));
  clock.advance(milliseconds(9999));
  EXPECT_FALSE(b.try_spend(clock.now_ns()));  // still inside the window
  clock.advance(milliseconds(1));
  EXPECT_DOUBLE_EQ(b.available(clock.now_ns()), 10.0);
  EXPECT_TRUE(b.try_spend(clock.now_ns()));
}

TEST(RetryBudget, OldCallsStopPayingForRetries) {
  ManualClock clock;
  RetryBudget b({.ratio = 0.5, .min_per_second = 0, .window = seconds(10)});
  for (int i = 0; i < 4; ++i) b.on_call(clock.now_ns());
  EXPECT_DOUBLE_EQ(b.available(clock.now_ns()), 2.0);
  clock.advance(seconds(10));
  EXPECT_DOUBLE_EQ(b.available(clock.now_ns()), 0.0);
  EXPECT_FALSE(b.try_spend(clock.now_ns()));
}

BreakerOptions consecutive(std::uint32_t k, milliseconds cool_down, std::uint32_t trials = 1) {
  BreakerOptions o;
  o.consecutive_failures = k;
  o.failure_ratio = 0;
  o.cool_down = cool_down;
  o.half_open_trials = trials;
  return o;
}

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresOnly) {
  ManualClock clock;
  CircuitBreaker b(consecutive(3, seconds(1)));
  b.on_failure(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);
  b.on_success(clock.now_ns(), false);  // resets the run
  b.on_failure(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kClosed);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kAdmitted);
  b.on_failure(clock.now_ns(), false);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
  EXPECT_EQ(b.opens(), 1u);
  EXPECT_FALSE(b.would_admit(clock.now_ns()));
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kRefused);
}

TEST(CircuitBreaker, OpensOnFailureRatioOnceEnoughCalls) {
  ManualClock clock;
  BreakerOptions o;
  o.consecutive_failures = 0;
  o.failure_ratio = 0.5;
  o.ratio_min_calls = 10;
  o.ratio_window = seconds(10);
  CircuitBreaker b(o);
  // Alternating: never two failures in a row, half of them failures.
  for (int i = 0; i < 4; ++i) {
    b.on_success(clock.now_ns(), false);
    b.on_failure(clock.now_ns(), false);
  }
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kClosed);  // 8 calls < 10
  b.on_success(clock.now_ns(), false);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kClosed);  // 4 of 9
  b.on_failure(clock.now_ns(), false);                         // 5 of 10
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
}

TEST(CircuitBreaker, FailureRatioForgetsOldOutcomes) {
  ManualClock clock;
  BreakerOptions o;
  o.consecutive_failures = 0;
  o.failure_ratio = 0.5;
  o.ratio_min_calls = 4;
  o.ratio_window = seconds(10);
  CircuitBreaker b(o);
  b.on_failure(clock.now_ns(), false);
  b.on_success(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);
  clock.advance(seconds(10));  // those three leave the window
  b.on_success(clock.now_ns(), false);
  b.on_success(clock.now_ns(), false);
  b.on_success(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);  // 1 of 4
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kClosed);
}

TEST(CircuitBreaker, HalfOpensAfterCoolDownAndClosesWhenTrialsSucceed) {
  ManualClock clock;
  CircuitBreaker b(consecutive(1, milliseconds(100), 2));
  b.on_failure(clock.now_ns(), false);
  ASSERT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
  clock.advance(milliseconds(99));
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
  clock.advance(milliseconds(1));
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kHalfOpen);
  EXPECT_EQ(b.half_opens(), 1u);
  // Two trial slots, then refused.
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kTrial);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kTrial);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kRefused);
  EXPECT_FALSE(b.would_admit(clock.now_ns()));
  // A call admitted before the breaker opened says nothing now.
  b.on_success(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kHalfOpen);
  b.on_success(clock.now_ns(), true);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kHalfOpen);
  b.on_success(clock.now_ns(), true);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kClosed);
  EXPECT_EQ(b.closes(), 1u);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kAdmitted);
}

TEST(CircuitBreaker, FailedTrialReopensForAFullCoolDown) {
  ManualClock clock;
  CircuitBreaker b(consecutive(2, milliseconds(100)));
  b.on_failure(clock.now_ns(), false);
  b.on_failure(clock.now_ns(), false);
  clock.advance(milliseconds(150));
  ASSERT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kTrial);
  b.on_failure(clock.now_ns(), true);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
  EXPECT_EQ(b.opens(), 2u);
  EXPECT_EQ(b.reopens_at_ns(), clock.now_ns() + 100'000'000);
  clock.advance(milliseconds(99));
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kOpen);
  clock.advance(milliseconds(1));
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kHalfOpen);
  EXPECT_EQ(b.half_opens(), 2u);
}

TEST(CircuitBreaker, AbandonedTrialGivesItsSlotBack) {
  ManualClock clock;
  CircuitBreaker b(consecutive(1, milliseconds(10)));
  b.on_failure(clock.now_ns(), false);
  clock.advance(milliseconds(10));
  ASSERT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kTrial);
  EXPECT_FALSE(b.would_admit(clock.now_ns()));
  b.on_abandoned(true);
  EXPECT_EQ(b.state(clock.now_ns()), BreakerState::kHalfOpen);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kTrial);
}

TEST(CircuitBreaker, DisabledAlwaysAdmits) {
  ManualClock clock;
  BreakerOptions o = consecutive(1, seconds(1));
  o.enabled = false;
  CircuitBreaker b(o);
  for (int i = 0; i < 10; ++i) b.on_failure(clock.now_ns(), false);
  EXPECT_EQ(b.admit(clock.now_ns()), CircuitBreaker::Admission::kAdmitted);
  EXPECT_EQ(b.opens(), 0u);
}

TEST(RetryBackoff, GrowsByTheMultiplierUpToTheCap) {
  RetryPolicy p;
  p.initial_backoff = std::chrono::microseconds(1000);
  p.max_backoff = std::chrono::microseconds(5000);
  p.multiplier = 2;
  p.jitter = false;
  std::mt19937_64 rng(1);
  EXPECT_EQ(retry_backoff(p, 0, rng).count(), 1000);
  EXPECT_EQ(retry_backoff(p, 1, rng).count(), 2000);
  EXPECT_EQ(retry_backoff(p, 2, rng).count(), 4000);
  EXPECT_EQ(retry_backoff(p, 3, rng).count(), 5000);
  EXPECT_EQ(retry_backoff(p, 1000, rng).count(), 5000);
}

TEST(RetryBackoff, JitterStaysInTheUpperHalf) {
  RetryPolicy p;
  p.initial_backoff = std::chrono::microseconds(8000);
  p.max_backoff = std::chrono::microseconds(8000);
  std::mt19937_64 rng(7);
  bool varied = false;
  std::int64_t first = retry_backoff(p, 0, rng).count();
  for (int i = 0; i < 1000; ++i) {
    const std::int64_t d = retry_backoff(p, 0, rng).count();
    ASSERT_GE(d, 4000);
    ASSERT_LE(d, 8000);
    varied = varied || d != first;
  }
  EXPECT_TRUE(varied);
}

}  // namespace
}  // namespace slip::rpc
