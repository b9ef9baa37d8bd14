// EventLoop: one Asio io_context run by one thread, with a choice of what to do when idle.
//
// Thread-per-core: every connection lives on exactly one loop and is touched only from that
// loop's thread; other threads hand work over with post(). On these VMs waking a blocked core
// costs ~100 us against a ~15 us loopback round trip, so the idle strategy is the biggest
// latency lever there is:
//   kBlock     sleep in epoll until work arrives (lowest CPU, highest wake-up latency)
//   kSpin      poll for `spin` after the last work, then sleep (the default: 50 us); between
//              polls it yields the core (sched_yield) so that a peer waiting for the same core,
//              e.g. the other end of a round trip, runs at once instead of after the spin
//   kBusyPoll  never sleep (lowest latency, one core at 100%)
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>
#include <utility>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::io {

enum class IdleStrategy : std::uint8_t { kBlock, kSpin, kBusyPoll };

// "block", "spin" or "busy"; anything else is kInvalidArgument.
Result<IdleStrategy> parse_idle_strategy(std::string_view s);
std::string_view idle_strategy_name(IdleStrategy s);

struct LoopOptions {
  IdleStrategy idle = IdleStrategy::kSpin;
  std::chrono::microseconds spin{50};  // kSpin: how long to poll after the last work
  // kSpin: sched_yield() between polls. Without it, two spinning loops sharing a core hold it
  // from each other for the whole spin window on every hand-over.
  bool spin_yield = true;
};

class EventLoop {
 public:
  explicit EventLoop(LoopOptions options = {});
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  boost::asio::io_context& context() { return ctx_; }

  // Runs handlers on the calling thread until stop(). Call from one thread only.
  void run();
  // Makes run() return after the handler it is running; safe from any thread.
  void stop();
  bool stopped() const { return stop_.load(std::memory_order_acquire); }

  // Runs fn on the loop's thread, after the handlers already queued. Safe from any thread.
  template <typename Fn>
  void post(Fn&& fn) {
    boost::asio::post(ctx_, std::forward<Fn>(fn));
  }

  // True while a thread is inside run().
  bool running() const { return thread_id_.load(std::memory_order_acquire) != std::thread::id(); }
  // True when called from the thread inside run().
  bool in_loop_thread() const { return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire); }

  const LoopOptions& options() const { return options_; }
  // Times the spin strategy gave the core away between polls. Safe from any thread.
  std::uint64_t spin_yields() const { return spin_yields_.load(std::memory_order_relaxed); }

  // Pooled 64 KiB blocks for socket reads. Call on the loop thread only.
  BufferPool& read_pool();
  static constexpr std::size_t kReadBlockSize = 64 * 1024;

 private:
  LoopOptions options_;
  boost::asio::io_context ctx_;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<std::uint64_t> spin_yields_{0};  // written by the loop thread only
  std::unique_ptr<BufferPool> read_pool_;  // made on first use, so its owner is the loop thread
};

}  // namespace slip::io
