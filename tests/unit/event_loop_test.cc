// EventLoop idle strategies: what each one does between handlers (counted, never timed).
#include "io/event_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "io/loop_group.h"

namespace slip::io {
namespace {

constexpr auto kLiveness = std::chrono::seconds(30);

// Posts an empty handler to `loop` and waits until it ran.
void round_trip(EventLoop& loop) {
  std::promise<void> ran;
  loop.post([&] { ran.set_value(); });
  ran.get_future().wait();
}

TEST(EventLoop, SpinYieldsTheCoreBetweenPolls) {
  LoopOptions o;
  o.idle = IdleStrategy::kSpin;
  o.spin = std::chrono::milliseconds(5);
  LoopGroup loops(1, o);
  loops.start();
  EventLoop& loop = loops.loop(0);
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  // Every handler is followed by a spin: it polls, and yields between polls.
  while (loop.spin_yields() == 0 && std::chrono::steady_clock::now() < deadline) {
    round_trip(loop);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_GT(loop.spin_yields(), 0u);
}

TEST(EventLoop, SpinWithoutYieldNeverYields) {
  LoopOptions o;
  o.idle = IdleStrategy::kSpin;
  o.spin = std::chrono::milliseconds(5);
  o.spin_yield = false;
  LoopGroup loops(1, o);
  loops.start();
  EventLoop& loop = loops.loop(0);
  for (int i = 0; i < 20; ++i) {
    round_trip(loop);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(loop.spin_yields(), 0u);
}

TEST(EventLoop, BlockAndBusyPollNeverYield) {
  for (IdleStrategy idle : {IdleStrategy::kBlock, IdleStrategy::kBusyPoll}) {
    LoopOptions o;
    o.idle = idle;
    LoopGroup loops(1, o);
    loops.start();
    for (int i = 0; i < 20; ++i) round_trip(loops.loop(0));
    EXPECT_EQ(loops.loop(0).spin_yields(), 0u) << idle_strategy_name(idle);
  }
}

}  // namespace
}  // namespace slip::io
