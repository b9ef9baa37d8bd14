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
//
// Lending (LoopOptions::lendable): a thread that would otherwise sleep until the loop tells it
// something (a blocking RPC waiting for its response) may borrow the loop and run its handlers
// itself, so that the request leaves from, and the response wakes, the thread that waits for it:
// no hand-off between threads. One thread at a time runs the handlers: the loop's own thread
// when nobody borrows, otherwise the borrower (handing over is done under a mutex, so each runner
// sees everything the previous one did). A borrower asks for the loop with borrow(): granted at
// once when the loop is free, after the loop's own thread has finished the handler it runs
// (waking it from epoll if it sleeps there), and refused while another thread has borrowed it.
// After give_back() the loop's own thread stays away for lend_linger, so that a thread making
// calls back to back finds the loop free every time; work posted from another thread, or a
// give_back(urgent), ends that wait at once. Socket events and timers that arrive while nobody
// runs the loop wait for the linger to end (callers with calls in flight give back urgently).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
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
  // Other threads may borrow the loop to run its handlers (see above).
  bool lendable = false;
  // How long the loop's own thread leaves the loop free after a borrower gave it back.
  std::chrono::microseconds lend_linger{1000};
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
    if (options_.lendable) posted_from_outside();
  }

  // True while a thread is inside run().
  bool running() const { return running_.load(std::memory_order_acquire); }
  // True when called from the thread that runs the loop's handlers now (inside run(), or a
  // borrower between borrow() and give_back()).
  bool in_loop_thread() const { return std::this_thread::get_id() == thread_id_.load(std::memory_order_acquire); }

  // Lending (lendable loops only). Any thread but the one running the loop: true when the
  // calling thread now runs the loop (in_loop_thread() holds) until it calls give_back(); false
  // when the loop cannot be lent now (not lendable, stopped, or borrowed by another thread).
  bool borrow();
  // Borrower only: runs handlers, idling as the loop's strategy says, until done() holds (checked
  // before and after each batch of handlers) or the loop stops.
  void run_until(const std::function<bool()>& done);
  // Borrower only: runs what is already queued, then hands the loop back. The loop's own thread
  // takes it over at once if `busy()` (asked after that last batch: work is still in flight) or
  // something was posted meanwhile; otherwise after lend_linger.
  void give_back(const std::function<bool()>& busy);
  // True when the calling thread has borrowed the loop.
  bool borrowed_here() const { return driver_.load(std::memory_order_acquire) == kBorrower && in_loop_thread(); }
  // Loans granted so far. Safe from any thread.
  std::uint64_t loans() const { return loans_.load(std::memory_order_relaxed); }

  const LoopOptions& options() const { return options_; }
  // Spins that ended without work, and the current spin window. Safe from any thread.
  std::uint64_t spins_expired() const { return spins_expired_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds spin_window() const {
    return std::chrono::nanoseconds(spin_window_ns_.load(std::memory_order_relaxed));
  }
  // Every this many idle periods an adaptive spin tries the full window again.
  static constexpr std::uint64_t kSpinProbeEvery = SpinWindow::kProbeEvery;

  // Idle hints, loop thread only, for the next idle period (each idle period uses them up).
  // skip_next_spin(): the work just done handed its result to another thread (a message passed
  // to another loop), so whatever answers it comes back through that thread, later than a spin
  // lasts: the next idle period blocks at once instead of spinning, and is not counted as a
  // spin that found nothing, so the window stays open for the short gaps (a local client's
  // answer) in between. keep_next_spin(): the work wrote to a client of this loop, whose answer
  // may come within the spin: it wins over skip_next_spin() until the next idle period.
  void skip_next_spin() { skip_spin_ = true; }
  void keep_next_spin() { keep_spin_ = true; }
  // Idle periods that blocked at once because of skip_next_spin(). Safe from any thread.
  std::uint64_t spins_skipped() const { return spins_skipped_.load(std::memory_order_relaxed); }

  // Pooled 64 KiB blocks for socket reads. Call on the loop thread only.
  BufferPool& read_pool();
  static constexpr std::size_t kReadBlockSize = 64 * 1024;

 private:
  enum Driver : std::uint8_t { kNone, kOwner, kBorrower };
  void run_lendable();
  // The loop's own thread runs handlers until a borrower asks for the loop or it stops.
  void own_turns(SpinWindow& window);
  // Blocks in the reactor for one handler unless a borrower waits (owner only).
  void owner_block();
  void posted_from_outside();
  // Uses up the idle hints: true when the idle period should block at once (and counts it).
  bool take_skip_hint();

  LoopOptions options_;
  boost::asio::io_context ctx_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};
  std::atomic<std::thread::id> thread_id_{};
  // Lending. driver_ and thread_id_ change under lend_mu_ only.
  std::mutex lend_mu_;
  std::condition_variable lend_cv_;
  std::atomic<Driver> driver_{kNone};
  std::atomic<int> want_{0};            // borrowers waiting for the loop's own thread to let go
  bool owner_blocked_ = false;          // the loop's own thread sleeps in the reactor (lend_mu_)
  bool urgent_ = false;                 // the loop's own thread should take the loop now (lend_mu_)
  std::int64_t linger_until_ns_ = 0;    // until then it leaves the loop free (lend_mu_)
  std::atomic<std::uint64_t> posted_{0};  // posts from threads not running the loop
  std::uint64_t seen_posted_ = 0;       // posted_ before the runner's last batch (runner only)
  std::unique_ptr<SpinWindow> borrow_window_;  // borrowers' spin window (runner only)
  std::atomic<std::uint64_t> loans_{0};
  bool skip_spin_ = false;  // skip_next_spin() (runner only)
  bool keep_spin_ = false;  // keep_next_spin() (runner only)
  // Written by the loop thread only.
  std::atomic<std::uint64_t> spins_expired_{0};
  std::atomic<std::uint64_t> spins_skipped_{0};
  std::atomic<std::int64_t> spin_window_ns_{0};
  std::unique_ptr<BufferPool> read_pool_;  // made on first use, so its owner is the loop thread
};

}  // namespace slip::io
