// Reliable-UDP building blocks: range sets, ACK tracking, RTT estimation, loss detection,
// NewReno and the pacer, each against the numbers RFC 9002 gives.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <vector>

#include "transport/udp/ack_tracker.h"
#include "transport/udp/congestion.h"
#include "transport/udp/range_set.h"
#include "transport/udp/recovery.h"
#include "transport/udp/rtt.h"

namespace slip::transport::udp {
namespace {

using namespace std::chrono_literals;

const Instant T0 = Instant(std::chrono::hours(1));

std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges_of(const RangeSet& s) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> v;
  for (auto [a, b] : s) v.emplace_back(a, b);
  return v;
}

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

TEST(UdpRangeSetTest, InsertMergesOverlappingAndAdjacentRanges) {
  RangeSet s;
  EXPECT_EQ(s.insert(10, 20), 10u);
  EXPECT_EQ(s.insert(30, 40), 10u);
  EXPECT_EQ(s.insert(20, 25), 5u);  // adjacent: merges
  EXPECT_EQ(ranges_of(s), (Ranges{{10, 25}, {30, 40}}));
  EXPECT_EQ(s.insert(5, 35), 10u);  // 5..10 and 25..30 are new
  EXPECT_EQ(ranges_of(s), (Ranges{{5, 40}}));
  EXPECT_EQ(s.insert(7, 9), 0u);
  EXPECT_EQ(s.insert(9, 9), 0u);
  EXPECT_TRUE(s.contains(5));
  EXPECT_TRUE(s.contains(39));
  EXPECT_FALSE(s.contains(40));
  EXPECT_FALSE(s.contains(4));
}

// Random inserts and erases against a set of single values: every call returns how many values
// it changed, and the ranges stay disjoint, non-adjacent and exactly the model's values.
TEST(UdpRangeSetTest, RandomOperationsMatchAModel) {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 200; ++round) {
    RangeSet s;
    std::set<std::uint64_t> model;
    for (int op = 0; op < 60; ++op) {
      const std::uint64_t a = rng() % 200;
      const std::uint64_t b = a + rng() % 40;
      std::uint64_t changed = 0;
      if (rng() % 3 == 0) {
        for (std::uint64_t v = a; v < b; ++v) changed += model.erase(v);
        ASSERT_EQ(s.erase(a, b), changed) << "erase " << a << ".." << b;
      } else {
        for (std::uint64_t v = a; v < b; ++v) changed += model.insert(v).second ? 1 : 0;
        ASSERT_EQ(s.insert(a, b), changed) << "insert " << a << ".." << b;
      }
      std::set<std::uint64_t> seen;
      std::uint64_t prev_end = 0;
      bool first = true;
      for (auto [lo, hi] : s) {
        ASSERT_LT(lo, hi);
        if (!first) {
          ASSERT_GT(lo, prev_end) << "ranges must not touch";
        }
        first = false;
        prev_end = hi;
        for (std::uint64_t v = lo; v < hi; ++v) seen.insert(v);
      }
      ASSERT_EQ(seen, model);
    }
  }
}

TEST(UdpRangeSetTest, EraseSplitsRanges) {
  RangeSet s;
  s.insert(0, 100);
  EXPECT_EQ(s.erase(10, 20), 10u);
  EXPECT_EQ(s.erase(50, 60), 10u);
  EXPECT_EQ(ranges_of(s), (Ranges{{0, 10}, {20, 50}, {60, 100}}));
  EXPECT_EQ(s.erase(5, 65), 40u);  // 5 + 30 + 5
  EXPECT_EQ(ranges_of(s), (Ranges{{0, 5}, {65, 100}}));
  EXPECT_TRUE(s.covers(70, 100));
  EXPECT_FALSE(s.covers(4, 66));
  s.erase_below(80);
  EXPECT_EQ(ranges_of(s), (Ranges{{80, 100}}));
  RangeSet other;
  other.insert(85, 87);
  other.insert(90, 200);
  s.erase_all(other, 0, 95);
  EXPECT_EQ(ranges_of(s), (Ranges{{80, 85}, {87, 90}, {95, 100}}));
}

TEST(UdpAckTrackerTest, AcksEverySecondPacketAndDelaysTheFirst) {
  AckTracker t;
  t.on_packet(T0, 0, true);
  EXPECT_FALSE(t.ack_due(T0));
  EXPECT_TRUE(t.ack_pending());
  ASSERT_TRUE(t.ack_deadline().has_value());
  EXPECT_EQ(*t.ack_deadline(), T0 + 25ms);
  EXPECT_TRUE(t.ack_due(T0 + 25ms));
  t.on_packet(T0 + 1ms, 1, true);
  EXPECT_TRUE(t.ack_due(T0 + 1ms));
  t.on_ack_sent();
  EXPECT_FALSE(t.ack_pending());
  EXPECT_FALSE(t.ack_due(T0 + 1s));
  // Packets that do not elicit ACKs are recorded but never make one due.
  t.on_packet(T0 + 2ms, 2, false);
  EXPECT_FALSE(t.ack_pending());
  EXPECT_FALSE(t.ack_due(T0 + 1s));
  AckRange r[4];
  ASSERT_EQ(t.fill_ranges(r, 4), 1u);
  EXPECT_EQ(r[0], (AckRange{0, 2}));
}

TEST(UdpAckTrackerTest, ReorderingAndGapsAreAcknowledgedAtOnce) {
  AckTracker t;
  t.on_packet(T0, 0, true);
  t.on_ack_sent();
  t.on_packet(T0, 2, true);  // 1 is missing
  EXPECT_TRUE(t.ack_due(T0));
  t.on_ack_sent();
  t.on_packet(T0, 1, true);  // arrives late
  EXPECT_TRUE(t.ack_due(T0));
  EXPECT_EQ(t.range_count(), 1u);
  t.on_ack_sent();
  t.on_packet(T0, 5, true);
  t.on_packet(T0, 9, true);
  AckRange r[8];
  ASSERT_EQ(t.fill_ranges(r, 8), 3u);
  EXPECT_EQ(r[0], (AckRange{9, 9}));
  EXPECT_EQ(r[1], (AckRange{5, 5}));
  EXPECT_EQ(r[2], (AckRange{0, 2}));
  EXPECT_EQ(t.ack_delay_us(T0 + 3ms), 3000u);
}

TEST(UdpAckTrackerTest, DuplicatesAndForgottenPacketsAreRecognised) {
  AckOptions o;
  o.max_ranges = 3;
  AckTracker t(o);
  for (std::uint64_t pn : {0, 2, 4, 6, 8}) t.on_packet(T0, pn, true);
  EXPECT_EQ(t.range_count(), 3u);
  EXPECT_TRUE(t.is_duplicate(4));
  EXPECT_FALSE(t.is_duplicate(5));
  // The two oldest ranges were forgotten: everything below 4 now counts as seen.
  EXPECT_TRUE(t.is_duplicate(0));
  EXPECT_TRUE(t.is_duplicate(3));
  // The peer saw our ACK up to 6: ranges below [6, 6] go.
  t.on_ack_acked(6);
  EXPECT_EQ(t.range_count(), 2u);
  EXPECT_TRUE(t.is_duplicate(5));
  EXPECT_FALSE(t.is_duplicate(7));
}

TEST(UdpRttTest, FollowsRfc9002) {
  RttEstimator r(333ms);
  EXPECT_FALSE(r.has_sample());
  EXPECT_EQ(r.smoothed(), 333ms);
  EXPECT_EQ(r.pto(25ms), 333ms + 4 * 166500us + 25ms);
  r.on_sample(100ms, 10ms);  // the first sample ignores the ACK delay
  EXPECT_EQ(r.smoothed(), 100ms);
  EXPECT_EQ(r.var(), 50ms);
  EXPECT_EQ(r.min(), 100ms);
  r.on_sample(120ms, 10ms);  // 110 after the delay
  EXPECT_EQ(r.min(), 100ms);
  EXPECT_EQ(r.var(), 40ms);           // (3*50 + |100-110|) / 4
  EXPECT_EQ(r.smoothed(), 101250us);  // (7*100 + 110) / 8
  r.on_sample(105ms, 10ms);           // subtracting would go below min + 0: kept at 105
  EXPECT_EQ(r.smoothed(), (Duration(101250us) * 7 + Duration(105ms)) / 8);
  r.on_sample(90ms, 0ms);
  EXPECT_EQ(r.min(), 90ms);
  EXPECT_EQ(r.latest(), 90ms);
  EXPECT_EQ(r.pto(25ms), r.smoothed() + 4 * r.var() + 25ms);
}

TEST(UdpRttTest, ConvergesToAConstantRtt) {
  RttEstimator r;
  for (int i = 0; i < 100; ++i) r.on_sample(42ms, 0ms);
  EXPECT_LE(r.smoothed() - 42ms, 1us);
  EXPECT_LE(r.var(), 1ms);
}

struct Recorder : RecoveryHandler {
  void on_packet_acked(const SentPacket& p) override { acked.push_back(p.packet_number); }
  void on_packets_lost(const std::vector<const SentPacket*>& l, bool p) override {
    for (const SentPacket* s : l) lost.push_back(s->packet_number);
    persistent |= p;
    ++loss_events;
  }
  std::vector<std::uint64_t> acked;
  std::vector<std::uint64_t> lost;
  bool persistent = false;
  int loss_events = 0;
};

SentPacket packet(std::uint64_t pn, Instant t) {
  SentPacket p;
  p.packet_number = pn;
  p.time_sent = t;
  p.size = 1000;
  p.ack_eliciting = true;
  p.in_flight = true;
  return p;
}

AckFrame ack_of(std::vector<AckRange> ranges, std::uint64_t delay_us = 0) {
  AckFrame a;
  a.ack_delay_us = delay_us;
  a.ranges = std::move(ranges);
  return a;
}

TEST(UdpLossDetectorTest, PacketThresholdThenTimeThreshold) {
  LossDetector d;
  RttEstimator rtt;
  Recorder rec;
  for (std::uint64_t pn = 0; pn < 6; ++pn) d.on_packet_sent(packet(pn, T0 + pn * 1ms));
  ASSERT_TRUE(d.on_ack(T0 + 100ms, ack_of({{5, 5}}), rtt, rec).is_ok());
  EXPECT_EQ(rec.acked, (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(rtt.latest(), 95ms);
  // 0, 1, 2 are 3 or more below the largest acknowledged; 3 and 4 wait for the time threshold.
  EXPECT_EQ(rec.lost, (std::vector<std::uint64_t>{0, 1, 2}));
  const Duration loss_delay = Duration(95ms) * 9 / 8;
  ASSERT_TRUE(d.timer(rtt).has_value());
  EXPECT_EQ(*d.timer(rtt), T0 + 3ms + loss_delay);
  EXPECT_FALSE(d.on_timeout(T0 + 3ms + loss_delay - 1ns, rtt, rec));
  EXPECT_EQ(rec.lost.size(), 3u);
  EXPECT_FALSE(d.on_timeout(T0 + 3ms + loss_delay, rtt, rec));
  EXPECT_EQ(rec.lost, (std::vector<std::uint64_t>{0, 1, 2, 3}));
  EXPECT_EQ(*d.timer(rtt), T0 + 4ms + loss_delay);
  EXPECT_FALSE(d.on_timeout(T0 + 4ms + loss_delay, rtt, rec));
  EXPECT_EQ(rec.lost, (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(d.timer(rtt).has_value());
  // Lost packets are kept for two PTOs: an ACK that arrives late still finds them.
  EXPECT_EQ(d.tracked(), 6u);
  ASSERT_TRUE(d.on_ack(T0 + 120ms, ack_of({{5, 5}, {3, 3}}), rtt, rec).is_ok());
  EXPECT_EQ(rec.acked, (std::vector<std::uint64_t>{5, 3}));
  EXPECT_EQ(d.spurious_losses(), 1u);
  EXPECT_EQ(d.tracked(), 6u);
  // Two PTOs later they are forgotten.
  d.on_packet_sent(packet(6, T0 + 10s));
  ASSERT_TRUE(d.on_ack(T0 + 10s, ack_of({{6, 6}}), rtt, rec).is_ok());
  EXPECT_EQ(d.tracked(), 0u);
}

TEST(UdpLossDetectorTest, ReorderingWithinTheThresholdsIsNotLoss) {
  LossDetector d;
  RttEstimator rtt;
  Recorder rec;
  for (std::uint64_t pn = 0; pn < 3; ++pn) d.on_packet_sent(packet(pn, T0));
  ASSERT_TRUE(d.on_ack(T0 + 50ms, ack_of({{1, 2}}), rtt, rec).is_ok());
  EXPECT_TRUE(rec.lost.empty());  // 2 - 0 < 3 and 50 ms < 9/8 RTT
  ASSERT_TRUE(d.timer(rtt).has_value());
  EXPECT_EQ(*d.timer(rtt), T0 + Duration(50ms) * 9 / 8);
  ASSERT_TRUE(d.on_ack(T0 + 51ms, ack_of({{0, 2}}), rtt, rec).is_ok());
  EXPECT_TRUE(rec.lost.empty());
  EXPECT_EQ(rec.acked, (std::vector<std::uint64_t>{1, 2, 0}));
  EXPECT_FALSE(d.timer(rtt).has_value());
}

TEST(UdpLossDetectorTest, AckOfAPacketNeverSentIsAProtocolViolation) {
  LossDetector d;
  RttEstimator rtt;
  Recorder rec;
  d.on_packet_sent(packet(0, T0));
  Status s = d.on_ack(T0, ack_of({{1, 1}}), rtt, rec);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(rec.acked.empty());
}

TEST(UdpLossDetectorTest, ProbeTimeoutBacksOffExponentiallyAndResetsOnAck) {
  LossDetector d;
  RttEstimator rtt(100ms);  // pto = 100 + 4 * 50 + 25 = 325 ms
  Recorder rec;
  d.on_packet_sent(packet(0, T0));
  ASSERT_EQ(*d.timer(rtt), T0 + 325ms);
  EXPECT_FALSE(d.on_timeout(T0 + 324ms, rtt, rec));
  EXPECT_TRUE(d.on_timeout(T0 + 325ms, rtt, rec));
  EXPECT_EQ(d.pto_count(), 1u);
  EXPECT_EQ(*d.timer(rtt), T0 + 650ms);
  d.on_packet_sent(packet(1, T0 + 325ms));  // the probe
  EXPECT_EQ(*d.timer(rtt), T0 + 325ms + 650ms);
  EXPECT_TRUE(d.on_timeout(T0 + 975ms, rtt, rec));
  EXPECT_EQ(*d.timer(rtt), T0 + 325ms + 1300ms);
  ASSERT_TRUE(d.on_ack(T0 + 1s, ack_of({{1, 1}}), rtt, rec).is_ok());
  EXPECT_EQ(d.pto_count(), 0u);
  // 0 is 1 below the largest, sent long ago: lost by time.
  EXPECT_EQ(rec.lost, (std::vector<std::uint64_t>{0}));
  EXPECT_FALSE(d.timer(rtt).has_value());
}

TEST(UdpLossDetectorTest, PersistentCongestionNeedsALongRunOfLossesWithNoAckBetween) {
  for (bool ack_in_between : {false, true}) {
    SCOPED_TRACE(ack_in_between ? "ack in between" : "all lost");
    LossDetector d;
    RttEstimator rtt;
    Recorder rec;
    d.on_packet_sent(packet(0, T0));
    ASSERT_TRUE(d.on_ack(T0 + 100ms, ack_of({{0, 0}}), rtt, rec).is_ok());  // srtt 100, var 50
    // Persistent congestion period: (100 + 4*50 + 25) * 3 = 975 ms.
    d.on_packet_sent(packet(1, T0 + 200ms));
    d.on_packet_sent(packet(2, T0 + 700ms));
    d.on_packet_sent(packet(3, T0 + 1400ms));
    d.on_packet_sent(packet(4, T0 + 1500ms));
    std::vector<AckRange> r = {{4, 4}};
    if (ack_in_between) r.push_back({2, 2});
    ASSERT_TRUE(d.on_ack(T0 + 1600ms, ack_of(r), rtt, rec).is_ok());
    EXPECT_EQ(rec.persistent, !ack_in_between);
    EXPECT_EQ(rec.lost, ack_in_between ? (std::vector<std::uint64_t>{1, 3}) : (std::vector<std::uint64_t>{1, 2, 3}));
  }
}

TEST(UdpNewRenoTest, SlowStartGrowsByTheBytesAcknowledged) {
  NewReno cc;
  EXPECT_EQ(cc.window(), 12000u);
  EXPECT_TRUE(cc.in_slow_start());
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  EXPECT_FALSE(cc.can_send(1));
  cc.on_packet_acked(T0, 1200);
  EXPECT_EQ(cc.window(), 13200u);
  EXPECT_EQ(cc.bytes_in_flight(), 10800u);
  EXPECT_TRUE(cc.can_send(2400));
}

TEST(UdpNewRenoTest, LossHalvesTheWindowOncePerRecoveryPeriod) {
  NewReno cc;
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  cc.on_packets_lost(T0 + 100ms, T0 + 10ms, 1200, false);
  EXPECT_EQ(cc.window(), 6000u);
  EXPECT_EQ(cc.ssthresh(), 6000u);
  EXPECT_EQ(cc.congestion_events(), 1u);
  EXPECT_FALSE(cc.in_slow_start());
  // Another packet of the same flight, sent before recovery began: same event.
  cc.on_packets_lost(T0 + 110ms, T0 + 20ms, 1200, false);
  EXPECT_EQ(cc.window(), 6000u);
  EXPECT_EQ(cc.congestion_events(), 1u);
  // ACKs of packets sent before recovery do not grow the window.
  cc.on_packet_acked(T0 + 50ms, 1200);
  EXPECT_EQ(cc.window(), 6000u);
  // A packet sent after recovery began and then lost: a new event.
  cc.on_packets_lost(T0 + 300ms, T0 + 200ms, 1200, false);
  EXPECT_EQ(cc.window(), 3000u);
  EXPECT_EQ(cc.congestion_events(), 2u);
  // Never below the minimum window.
  cc.on_packets_lost(T0 + 500ms, T0 + 400ms, 0, false);
  EXPECT_EQ(cc.window(), 2400u);
}

// Every packet of the latest congestion event acknowledged after all (FEC rebuilt them, or
// reordering): the reduction is undone. One real loss among them keeps it.
TEST(UdpNewRenoTest, ReductionIsUndoneWhenEveryLossOfTheEventWasSpurious) {
  NewReno cc;
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  cc.on_packets_lost(T0 + 100ms, T0 + 10ms, 2400, false, 2);
  cc.on_packets_lost(T0 + 110ms, T0 + 20ms, 1200, false, 1);  // same event
  EXPECT_EQ(cc.window(), 6000u);
  EXPECT_FALSE(cc.on_spurious_loss(T0 + 100ms));
  EXPECT_FALSE(cc.on_spurious_loss(T0 + 100ms));
  EXPECT_EQ(cc.window(), 6000u);
  EXPECT_TRUE(cc.on_spurious_loss(T0 + 110ms));  // the third and last
  EXPECT_EQ(cc.window(), 12000u);
  EXPECT_TRUE(cc.in_slow_start());  // the threshold is back too
  EXPECT_EQ(cc.congestion_events(), 1u);
  EXPECT_EQ(cc.congestion_events_undone(), 1u);
  EXPECT_FALSE(cc.in_recovery(T0 + 50ms));  // growth resumes at once
  // Nothing left to undo.
  EXPECT_FALSE(cc.on_spurious_loss(T0 + 110ms));

  // An older event's spurious loss does not undo the latest one.
  cc.on_packets_lost(T0 + 300ms, T0 + 200ms, 1200, false, 1);
  EXPECT_EQ(cc.window(), 6000u);
  EXPECT_FALSE(cc.on_spurious_loss(T0 + 250ms));
  EXPECT_EQ(cc.window(), 6000u);

  // Persistent congestion is never undone.
  cc.on_packets_lost(T0 + 900ms, T0 + 800ms, 1200, true, 1);
  EXPECT_EQ(cc.window(), 2400u);
  EXPECT_FALSE(cc.on_spurious_loss(T0 + 900ms));
  EXPECT_EQ(cc.window(), 2400u);
  EXPECT_EQ(cc.congestion_events_undone(), 1u);
}

TEST(UdpNewRenoTest, LossReductionIsConfigurable) {
  CongestionOptions o;
  o.loss_reduction = 0.85;
  NewReno cc(o);
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  cc.on_packets_lost(T0 + 100ms, T0 + 10ms, 1200, false);
  EXPECT_EQ(cc.window(), 10200u);
  EXPECT_EQ(cc.ssthresh(), 10200u);
}

TEST(UdpNewRenoTest, CongestionAvoidanceAddsOnePacketPerWindow) {
  NewReno cc;
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  cc.on_packets_lost(T0, T0, 1200, false);  // window 6000, in flight 10800
  const Instant after = T0 + 1s;
  std::uint64_t acked = 0;
  while (acked < 6000) {
    cc.on_packet_sent(1200);
    cc.on_packet_acked(after, 1200);
    acked += 1200;
  }
  EXPECT_EQ(cc.window(), 7200u);
}

TEST(UdpNewRenoTest, PersistentCongestionCollapsesToTheMinimumWindow) {
  NewReno cc;
  for (int i = 0; i < 10; ++i) cc.on_packet_sent(1200);
  cc.on_packets_lost(T0, T0, 6000, true);
  EXPECT_EQ(cc.window(), cc.minimum_window());
  EXPECT_EQ(cc.window(), 2400u);
}

TEST(UdpNewRenoTest, AnIdleSenderDoesNotGrowTheWindow) {
  NewReno cc;
  cc.on_packet_sent(1200);  // far below half the window
  cc.on_packet_acked(T0, 1200);
  EXPECT_EQ(cc.window(), 12000u);
}

TEST(UdpPacerTest, ReleasesABurstThenSpacesPacketsAtTheRate) {
  Pacer p(1200, 10);
  p.set_rate(12000, 100ms);  // 150,000 bytes/s: one 1200-byte packet every 8 ms
  EXPECT_DOUBLE_EQ(p.rate_bytes_per_sec(), 150000.0);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(p.release_time(T0, 1200), T0) << i;
    p.on_sent(T0, 1200);
  }
  const Instant next = p.release_time(T0, 1200);
  EXPECT_GE(next, T0 + 8ms);
  EXPECT_LE(next, T0 + 8ms + 1us);
  EXPECT_EQ(p.next_release(1200), next);
  EXPECT_EQ(p.release_time(next, 1200), next);
  p.on_sent(next, 1200);
  EXPECT_GE(p.release_time(next, 1200), next + 7999us);
}

TEST(UdpPacerTest, TheBucketHoldsOneTimerGranularityOfAFastRate) {
  Pacer p(1200, 10);
  // A 12 MB window over a 1 ms RTT: 15 GB/s, far more than 10 packets per millisecond.
  p.set_rate(12'000'000, 1ms);
  std::size_t burst = 0;
  while (p.release_time(T0, 1200) == T0 && burst < 100000) {
    p.on_sent(T0, 1200);
    ++burst;
  }
  EXPECT_EQ(burst, 10u);  // the configured burst to begin with
  // A timer cannot wake the sender sooner than its granularity: after one, the bucket holds
  // what the rate earned in it (capped by the window), not just the configured burst.
  const Instant later = T0 + kPacerGranularity;
  std::size_t after = 0;
  while (p.release_time(later, 1200) == later && after < 100000) {
    p.on_sent(later, 1200);
    ++after;
  }
  EXPECT_EQ(after, 10000u);  // 12 MB / 1200 B
}

}  // namespace
}  // namespace slip::transport::udp
