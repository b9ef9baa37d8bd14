// EventLoop: one Asio io_context run by one thread, with a choice of what to do when idle.
//
// Thread-per-core: every connection lives on exactly one loop and is touched only from that
// loop's thread; other threads hand work over with post(). On these VMs waking a blocked core
// costs ~100 us against a ~15 us loopback round trip, so the idle strategy is the biggest
// latency lever there is:
//   kBlock     sleep in epoll until work arrives (lowest CPU, highest wake-up latency)
//   kSpin      poll for up to `spin` after the last work, then sleep (the default: 50 us)
//   kBusyPoll  never sleep (lowest latency, one core at 100%)
//
// The spin window adapts: a spin that ends without work halves the next one (down to none: the
// loop then blocks at once), a spin that finds work restores it to `spin`, and every
// kSpinProbeEvery-th idle period spins the full window again to find out whether spinning pays.
// A spin that keeps expiring is either waiting for traffic that comes too rarely to catch, or
// holding the core its peer needs: two spinning loops on one core (both ends of a round trip on
// a busy machine) otherwise cost each other the whole window on every hand-over. sched_yield()
// between polls is no cure: a scheduler that charges each yield (Linux EEVDF pushes the
// yielder's deadline back a slice) starves a loop that yields thousands of times a second while
// other work runs.
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
  // kSpin: adapt the spin window (see above); false always spins the full `spin`.
  bool spin_adaptive = true;
};

// The adaptive spin window's rule, apart from the clock so that it can be tested exactly.
class SpinWindow {
 public:
  // Below this a spin is not worth a clock read: the loop blocks at once.
  static constexpr std::int64_t kMinNs = 1000;
  // Every this many idle periods the full window is tried again.
  static constexpr std::uint64_t kProbeEvery = 64;

  SpinWindow(std::int64_t full_ns, bool adaptive) : full_ns_(full_ns), window_ns_(full_ns), adaptive_(adaptive) {}

  // How long the next idle period may spin.
  std::int64_t next_limit() {
    if (!adaptive_ || ++idle_periods_ % kProbeEvery == 0) return full_ns_;
    return window_ns_;
  }
  // After the spin: whether it found work. Returns the window now in force.
  std::int64_t update(bool worked) {
    if (adaptive_) window_ns_ = worked ? full_ns_ : (window_ns_ / 2 < kMinNs ? 0 : window_ns_ / 2);
    return window_ns_;
  }
  std::int64_t window_ns() const { return window_ns_; }

 private:
  std::int64_t full_ns_;
  std::int64_t window_ns_;
  bool adaptive_;
  std::uint64_t idle_periods_ = 0;
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
  // Spins that ended without work, and the current spin window. Safe from any thread.
  std::uint64_t spins_expired() const { return spins_expired_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds spin_window() const {
    return std::chrono::nanoseconds(spin_window_ns_.load(std::memory_order_relaxed));
  }
  // Every this many idle periods an adaptive spin tries the full window again.
  static constexpr std::uint64_t kSpinProbeEvery = SpinWindow::kProbeEvery;

  // Pooled 64 KiB blocks for socket reads. Call on the loop thread only.
  BufferPool& read_pool();
  static constexpr std::size_t kReadBlockSize = 64 * 1024;

 private:
  LoopOptions options_;
  boost::asio::io_context ctx_;
  std::atomic<bool> stop_{false};
  std::atomic<std::thread::id> thread_id_{};
  // Written by the loop thread only.
  std::atomic<std::uint64_t> spins_expired_{0};
  std::atomic<std::int64_t> spin_window_ns_{0};
  std::unique_ptr<BufferPool> read_pool_;  // made on first use, so its owner is the loop thread
};

}  // namespace slip::io
