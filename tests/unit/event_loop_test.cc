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

TEST(EventLoop, SpinWindowComesBackWhenASpinFindsWork) {
  LoopGroup loops(1, spin_options(true));
  loops.start();
  EventLoop& loop = loops.loop(0);
  sparse_work(loop, 3);
  ASSERT_LT(loop.spin_window(), kSpin);
  // Work handed over without pause: within one probe period a full spin catches the next
  // handler, and the window is whole again (until spins run dry again, so it is looked at once).
  bool restored = false;
  for (std::uint64_t i = 0; i < 4 * EventLoop::kSpinProbeEvery && !restored; ++i) {
    round_trip(loop);
    restored = loop.spin_window() == kSpin;
  }
  EXPECT_TRUE(restored);
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
