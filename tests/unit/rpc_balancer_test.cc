// Latency EWMA, power-of-two-choices and round robin of rpc/balancer.h: exact values with a
// ManualClock and a seeded generator.
#include "rpc/balancer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/clock.h"

namespace slip::rpc {
namespace {

using std::chrono::milliseconds;

TEST(LatencyEwma, FirstSampleSetsThenEachMovesAlphaOfTheWay) {
  ManualClock clock;
  LatencyEwma e(0.25, std::chrono::nanoseconds(0));  // no idle decay
  EXPECT_FALSE(e.has_value());
  EXPECT_EQ(e.value(clock.now_ns()), 0.0);
  e.record(clock.now_ns(), 1000);
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 1000);
  e.record(clock.now_ns(), 2000);
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 1250);
  e.record(clock.now_ns(), 250);
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 1000);
  clock.advance(std::chrono::seconds(100));
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 1000);
}

TEST(LatencyEwma, DecaysTowardsZeroWhileIdle) {
  ManualClock clock;
  LatencyEwma e(0.5, milliseconds(100));
  e.record(clock.now_ns(), 8000);
  clock.advance(milliseconds(100));
  EXPECT_NEAR(e.value(clock.now_ns()), 8000 * std::exp(-1.0), 1e-6);
  clock.advance(milliseconds(100));
  EXPECT_NEAR(e.value(clock.now_ns()), 8000 * std::exp(-2.0), 1e-6);
  // A new sample blends with the decayed value, and restarts the idle time.
  const double decayed = e.value(clock.now_ns());
  e.record(clock.now_ns(), 1000);
  EXPECT_NEAR(e.value(clock.now_ns()), 0.5 * 1000 + 0.5 * decayed, 1e-6);
}

TEST(LatencyEwma, AbandonedCallOnlyRaisesTheAverage) {
  ManualClock clock;
  LatencyEwma e(0.5, std::chrono::nanoseconds(0));
  e.record_at_least(clock.now_ns(), 300);  // no value yet: taken as is
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 300);
  e.record_at_least(clock.now_ns(), 100);  // below: says nothing
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 300);
  e.record_at_least(clock.now_ns(), 900);
  EXPECT_DOUBLE_EQ(e.value(clock.now_ns()), 600);
}

TEST(PowerOfTwo, ScoreIsLatencyTimesLoadPlusOne) {
  EXPECT_DOUBLE_EQ(p2c_score({100, 0}), 100);
  EXPECT_DOUBLE_EQ(p2c_score({100, 3}), 400);
  EXPECT_DOUBLE_EQ(p2c_score({0, 9}), 0);
}

TEST(PowerOfTwo, WorstEndpointIsNeverChosen) {
  // The slowest of three loses every pair it is drawn into; the other two share the rest.
  std::vector<LbCandidate> c{{1000, 0}, {50000, 0}, {1200, 0}};
  std::vector<std::size_t> eligible{0, 1, 2};
  std::mt19937_64 rng(42);
  std::map<std::size_t, int> got;
  for (int i = 0; i < 3000; ++i) got[pick_p2c(c, eligible, rng)]++;
  EXPECT_EQ(got[1], 0);
  // Pairs {0,1} and {0,2} go to 0, {1,2} to 2: about two thirds and one third.
  EXPECT_GT(got[0], got[2]);
  EXPECT_GT(got[2], 0);
  EXPECT_EQ(got[0] + got[2], 3000);
}

TEST(PowerOfTwo, LoadCountsAgainstAFastEndpoint) {
  // 1000 x (9+1) = 10000 > 3000 x (0+1): the busy fast one loses to the idle slower one.
  std::vector<LbCandidate> c{{1000, 9}, {3000, 0}};
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(pick_p2c(c, {0, 1}, rng), 1u);
}

TEST(PowerOfTwo, TiesGoToFewerInFlight) {
  std::vector<LbCandidate> c{{0, 5}, {0, 2}};  // both without samples
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(pick_p2c(c, {0, 1}, rng), 1u);
}

TEST(PowerOfTwo, OnlyEligibleAreDrawnAndTheSeedDecides) {
  std::vector<LbCandidate> c{{1, 0}, {500, 0}, {700, 0}, {900, 0}};
  // Endpoint 0 (the best) is not eligible.
  std::vector<std::size_t> eligible{1, 2, 3};
  std::mt19937_64 a(99);
  std::mt19937_64 b(99);
  for (int i = 0; i < 200; ++i) {
    const std::size_t x = pick_p2c(c, eligible, a);
    ASSERT_NE(x, 0u);
    ASSERT_NE(x, 3u);  // the worst eligible one never wins a pair
    ASSERT_EQ(x, pick_p2c(c, eligible, b));  // same seed, same choices
  }
  std::mt19937_64 rng(5);
  EXPECT_EQ(pick_p2c(c, {2}, rng), 2u);
}

TEST(RoundRobin, TakesEachInTurnAndSkipsTheIneligible) {
  RoundRobin rr;
  std::vector<std::size_t> all{0, 1, 2};
  EXPECT_EQ(rr.pick(all), 0u);
  EXPECT_EQ(rr.pick(all), 1u);
  EXPECT_EQ(rr.pick(all), 2u);
  EXPECT_EQ(rr.pick(all), 0u);
  EXPECT_EQ(rr.pick({0, 2}), 2u);  // 1 is out: next at or after the cursor
  EXPECT_EQ(rr.pick({0, 2}), 0u);  // wraps
  EXPECT_EQ(rr.pick(all), 1u);
  EXPECT_EQ(rr.pick({1}), 1u);
}

}  // namespace
}  // namespace slip::rpc
