// EventLoop idle strategies: what the spin window does between handlers (counted, never timed).
#include "io/event_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "eventually.h"
#include "io/loop_group.h"

namespace slip::io {
namespace {

// Posts an empty handler to `loop` and waits until it ran.
void round_trip(EventLoop& loop) {
  std::promise<void> ran;
  loop.post([&] { ran.set_value(); });
  ran.get_future().wait();
}

// Long, so that a handler posted right after the last one is surely caught, and the gaps of
// sparse_work() are surely missed.
constexpr std::chrono::milliseconds kSpin{100};

LoopOptions spin_options(bool adaptive) {
  LoopOptions o;
  o.idle = IdleStrategy::kSpin;
  o.spin = kSpin;
  o.spin_adaptive = adaptive;
  return o;
}

// Handlers far apart: every spin between them runs out without work.
void sparse_work(EventLoop& loop, int handlers) {
  for (int i = 0; i < handlers; ++i) {
    round_trip(loop);
    std::this_thread::sleep_for(kSpin + std::chrono::milliseconds(50));
  }
}

TEST(EventLoop, SpinWindowShrinksWhileSpinsFindNoWork) {
  LoopGroup loops(1, spin_options(true));
  loops.start();
  sparse_work(loops.loop(0), 3);
  EXPECT_GT(loops.loop(0).spins_expired(), 0u);
  EXPECT_LT(loops.loop(0).spin_window(), kSpin);
}

// The rule itself, without a clock.
TEST(SpinWindow, HalvesWhileSpinsFindNothingThenBlocksAtOnce) {
  SpinWindow w(50000, true);
  EXPECT_EQ(w.next_limit(), 50000);
  EXPECT_EQ(w.update(false), 25000);
  EXPECT_EQ(w.update(false), 12500);
  for (int i = 0; i < 10; ++i) w.update(false);
  EXPECT_EQ(w.window_ns(), 0);  // below SpinWindow::kMinNs: no spin at all
}

TEST(SpinWindow, WorkRestoresTheFullWindow) {
  SpinWindow w(50000, true);
  for (int i = 0; i < 20; ++i) w.update(false);
  ASSERT_EQ(w.window_ns(), 0);
  EXPECT_EQ(w.update(true), 50000);
}

TEST(SpinWindow, EveryProbePeriodTriesTheFullWindow) {
  SpinWindow w(50000, true);
  for (int i = 0; i < 20; ++i) w.update(false);
  std::uint64_t full = 0;
  for (std::uint64_t i = 0; i < 4 * SpinWindow::kProbeEvery; ++i) {
    if (w.next_limit() == 50000) ++full;
    w.update(false);
  }
  EXPECT_EQ(full, 4u);
}

TEST(SpinWindow, FixedWindowNeverChanges) {
  SpinWindow w(50000, false);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(w.next_limit(), 50000);
    EXPECT_EQ(w.update(i % 3 == 0), 50000);
  }
}

TEST(EventLoop, FixedSpinWindowNeverShrinks) {
  LoopGroup loops(1, spin_options(false));
  loops.start();
  sparse_work(loops.loop(0), 3);
  EXPECT_GT(loops.loop(0).spins_expired(), 0u);
  EXPECT_EQ(loops.loop(0).spin_window(), kSpin);
}

// skip_next_spin(): the next idle period blocks at once and is not an expired spin; the hint
// is used up by that period, and keep_next_spin() in the same busy stretch wins over it.
TEST(EventLoop, SkipHintBlocksTheNextIdlePeriodAtOnce) {
  LoopGroup loops(1, spin_options(false));
  loops.start();
  EventLoop& loop = loops.loop(0);
  // After its first spin ran out the loop blocks until work comes.
  ASSERT_TRUE(slip::test::eventually([&] { return loop.spins_expired() >= 1; }));
  const std::uint64_t expired = loop.spins_expired();

  loop.post([&] { loop.skip_next_spin(); });
  ASSERT_TRUE(slip::test::eventually([&] { return loop.spins_skipped() == 1; }));
  EXPECT_EQ(loop.spins_expired(), expired);  // it blocks without spinning

  round_trip(loop);  // no hint: the loop spins again, and the spin runs out
  ASSERT_TRUE(slip::test::eventually([&] { return loop.spins_expired() == expired + 1; }));
  EXPECT_EQ(loop.spins_skipped(), 1u);

  loop.post([&] {
    loop.keep_next_spin();
    loop.skip_next_spin();
  });
  ASSERT_TRUE(slip::test::eventually([&] { return loop.spins_expired() == expired + 2; }));
  EXPECT_EQ(loop.spins_skipped(), 1u);
}

}  // namespace
}  // namespace slip::io
