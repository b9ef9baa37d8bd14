#include "io/event_loop.h"

#include <sched.h>

#include <boost/asio/executor_work_guard.hpp>

#include "core/clock.h"

namespace slip::io {

Result<IdleStrategy> parse_idle_strategy(std::string_view s) {
  if (s == "block") return IdleStrategy::kBlock;
  if (s == "spin") return IdleStrategy::kSpin;
  if (s == "busy") return IdleStrategy::kBusyPoll;
  return invalid_argument("unknown idle strategy '" + std::string(s) + "' (use block, spin or busy)");
}

std::string_view idle_strategy_name(IdleStrategy s) {
  switch (s) {
    case IdleStrategy::kBlock: return "block";
    case IdleStrategy::kSpin: return "spin";
    case IdleStrategy::kBusyPoll: return "busy";
  }
  return "?";
}

// One thread runs each context: the hint lets Asio drop its internal locking where it can.
EventLoop::EventLoop(LoopOptions options) : options_(options), ctx_(1) {}

BufferPool& EventLoop::read_pool() {
  if (!read_pool_) read_pool_ = std::make_unique<BufferPool>(kReadBlockSize, 256);
  return *read_pool_;
}

void EventLoop::stop() {
  stop_.store(true, std::memory_order_release);
  ctx_.stop();
}

void EventLoop::run() {
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  auto guard = boost::asio::make_work_guard(ctx_);
  const std::int64_t spin_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.spin).count();
  while (!stopped()) {
    switch (options_.idle) {
      case IdleStrategy::kBlock:
        ctx_.run();
        break;
      case IdleStrategy::kBusyPoll:
        ctx_.poll();
        break;
      case IdleStrategy::kSpin: {
        if (ctx_.poll() > 0) break;
        const std::int64_t idle_since = mono_now_ns();
        bool worked = false;
        while (!stopped() && mono_now_ns() - idle_since < spin_ns) {
          if (ctx_.poll() > 0) {
            worked = true;
            break;
          }
          // With nothing else runnable on this CPU this returns at once (one syscall); with a
          // runnable peer, the peer gets the core now.
          if (options_.spin_yield) {
            ::sched_yield();
            spin_yields_.store(spin_yields_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
          }
        }
        if (!worked && !stopped()) ctx_.run_one();
        break;
      }
    }
    if (ctx_.stopped() && !stopped()) ctx_.restart();
  }
  thread_id_.store(std::thread::id(), std::memory_order_release);
}

}  // namespace slip::io
