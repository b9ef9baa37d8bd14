#include "core/histogram.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

namespace slip {
namespace {

using L = HistogramLayout;

TEST(HistogramLayoutTest, BucketsTileTheRangeWithoutGapsOrOverlap) {
  EXPECT_EQ(L::lowest(0), 0u);
  for (std::size_t i = 0; i < L::kBuckets; ++i) {
    ASSERT_EQ(L::index(L::lowest(i)), i) << i;
    ASSERT_EQ(L::index(L::highest(i)), i) << i;
    if (i + 1 < L::kBuckets) {
      ASSERT_EQ(L::highest(i) + 1, L::lowest(i + 1)) << i;
    }
  }
  EXPECT_EQ(L::highest(L::kBuckets - 1), L::kMaxValue);
}

TEST(HistogramLayoutTest, EveryBucketIsWithinOneSixtyFourthOfItsValues) {
  for (std::size_t i = 2 * L::kHalf; i < L::kBuckets; ++i) {
    const double lo = static_cast<double>(L::lowest(i));
    const double width = static_cast<double>(L::highest(i) - L::lowest(i) + 1);
    ASSERT_LE(width / lo, 1.0 / 64) << i;
  }
}

TEST(HistogramLayoutTest, SmallValuesHaveABucketEachAndHugeOnesAreClamped) {
  for (std::uint64_t v = 0; v < 128; ++v) EXPECT_EQ(L::index(v), v);
  EXPECT_EQ(L::index(~std::uint64_t{0}), L::kBuckets - 1);
  EXPECT_EQ(L::index(L::kMaxValue + 1), L::kBuckets - 1);
}

TEST(HistogramTest, EmptyHistogramAnswersZero) {
  Histogram h;
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.quantile(0.5), 0u);
  EXPECT_EQ(s.min(), 0u);
  EXPECT_EQ(s.max(), 0u);
  EXPECT_EQ(s.mean(), 0.0);
}

TEST(HistogramTest, QuantilesOfAUniformRangeAreWithinTheBucketPrecision) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100000; ++v) h.record(v);
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 100000u);
  EXPECT_EQ(s.min(), 1u);
  EXPECT_EQ(s.max(), 100000u);
  EXPECT_EQ(s.sum(), 100000ull * 100001 / 2);
  for (double q : {0.01, 0.25, 0.5, 0.9, 0.99, 0.999}) {
    const double exact = q * 100000;
    const double got = static_cast<double>(s.quantile(q));
    EXPECT_GE(got, exact) << q;  // the bucket's highest value: never below the true rank
    EXPECT_LE(got, exact * (1 + 1.0 / 64)) << q;
  }
  EXPECT_EQ(s.quantile(1.0), 100000u);
  EXPECT_EQ(s.quantile(0.0), 1u);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (int i = 0; i < 99; ++i) h.record(10);
  h.record(90);
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.quantile(0.5), 10u);
  EXPECT_EQ(s.quantile(0.99), 10u);
  EXPECT_EQ(s.quantile(0.999), 90u);
}

TEST(HistogramTest, MergingShardsEqualsRecordingEverythingInOne) {
  Histogram a, b;
  HistogramSnapshot all;
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(10.0, 2.0);
  for (int i = 0; i < 20000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng));
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  HistogramSnapshot merged;
  a.merge_into(merged);
  b.merge_into(merged);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.sum(), all.sum());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double q : {0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(merged.quantile(q), all.quantile(q)) << q;
}

TEST(HistogramTest, CountAtOrBelowCountsWholeBucketsOnly) {
  HistogramSnapshot s;
  s.record(5);
  s.record(1000);
  s.record(1000000, 3);
  EXPECT_EQ(s.count_at_or_below(4), 0u);
  EXPECT_EQ(s.count_at_or_below(5), 1u);
  EXPECT_EQ(s.count_at_or_below(L::highest(L::index(1000))), 2u);
  EXPECT_EQ(s.count_at_or_below(L::kMaxValue), 5u);
}

// Under ThreadSanitizer: the owner records while another thread reads, and several threads
// record into one histogram with record_concurrent.
TEST(HistogramTest, ReadersSeeConsistentCountsWhileTheOwnerRecords) {
  Histogram h;
  std::atomic<bool> done{false};
  std::thread owner([&] {
    for (std::uint64_t i = 0; i < 200000; ++i) h.record(i % 5000);
    done = true;
  });
  std::uint64_t last = 0;
  while (!done) {
    HistogramSnapshot s = h.snapshot();
    ASSERT_GE(s.count(), last);  // counts only grow
    last = s.count();
  }
  owner.join();
  EXPECT_EQ(h.snapshot().count(), 200000u);
}

TEST(HistogramTest, ConcurrentRecordersLoseNothing) {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < 50000; ++i) h.record_concurrent(i + static_cast<std::uint64_t>(t));
    });
  }
  for (auto& t : threads) t.join();
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 200000u);
  EXPECT_EQ(s.min(), 0u);
  EXPECT_EQ(s.max(), 50002u);
}

}  // namespace
}  // namespace slip
