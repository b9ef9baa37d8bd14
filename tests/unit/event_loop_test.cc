// EventLoop idle strategies: what the spin window does between handlers (counted, never timed).
#include "io/event_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

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

}  // namespace
}  // namespace slip::io
