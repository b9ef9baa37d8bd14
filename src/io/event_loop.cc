#include "io/event_loop.h"

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
  SpinWindow window(spin_ns, options_.spin_adaptive);  // mirrored in spin_window_ns_
  spin_window_ns_.store(window.window_ns(), std::memory_order_relaxed);
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
        const std::int64_t limit = window.next_limit();
        bool worked = false;
        if (limit > 0) {
          const std::int64_t idle_since = mono_now_ns();
          while (!stopped() && mono_now_ns() - idle_since < limit) {
            if (ctx_.poll() > 0) {
              worked = true;
              break;
            }
          }
        }
        const std::int64_t before = window.window_ns();
        if (window.update(worked) != before) spin_window_ns_.store(window.window_ns(), std::memory_order_relaxed);
        if (!worked && !stopped()) {
          if (limit > 0) spins_expired_.store(spins_expired_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
          ctx_.run_one();
        }
        break;
      }
    }
    if (ctx_.stopped() && !stopped()) ctx_.restart();
  }
  thread_id_.store(std::thread::id(), std::memory_order_release);
}

}  // namespace slip::io
