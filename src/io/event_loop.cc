#include "io/event_loop.h"

#include <algorithm>
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
  if (options_.lendable) {
    { std::lock_guard lock(lend_mu_); }
    lend_cv_.notify_all();
  }
}

void EventLoop::run() {
  running_.store(true, std::memory_order_release);
  if (options_.lendable) {
    run_lendable();
    running_.store(false, std::memory_order_release);
    return;
  }
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
        if (take_skip_hint()) {
          if (!stopped()) ctx_.run_one();
          break;
        }
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
  running_.store(false, std::memory_order_release);
}

bool EventLoop::take_skip_hint() {
  const bool skip = skip_spin_ && !keep_spin_;
  skip_spin_ = false;
  keep_spin_ = false;
  if (!skip) return false;
  spins_skipped_.store(spins_skipped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return true;
}

// ---- Lending -------------------------------------------------------------------------------

void EventLoop::run_lendable() {
  auto guard = boost::asio::make_work_guard(ctx_);
  const std::int64_t spin_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.spin).count();
  SpinWindow window(spin_ns, options_.spin_adaptive);
  spin_window_ns_.store(window.window_ns(), std::memory_order_relaxed);
  // While a borrower runs the loop, this thread looks again now and then: a borrower gives the
  // loop back without a word unless work is waiting for it.
  const auto recheck = std::max<std::chrono::microseconds>(options_.lend_linger * 10, std::chrono::milliseconds(1));
  std::unique_lock lock(lend_mu_);
  while (!stopped()) {
    if (driver_.load(std::memory_order_relaxed) != kNone || want_.load(std::memory_order_relaxed) > 0) {
      lend_cv_.wait_for(lock, recheck);
      continue;
    }
    if (!urgent_) {
      const std::int64_t left = linger_until_ns_ - mono_now_ns();
      if (left > 0) {
        lend_cv_.wait_for(lock, std::chrono::nanoseconds(left));
        continue;
      }
    }
    urgent_ = false;
    driver_.store(kOwner, std::memory_order_seq_cst);
    thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
    lock.unlock();
    own_turns(window);
    lock.lock();
    thread_id_.store(std::thread::id(), std::memory_order_release);
    driver_.store(kNone, std::memory_order_seq_cst);
    lend_cv_.notify_all();
  }
}

void EventLoop::own_turns(SpinWindow& window) {
  auto wanted = [this] { return want_.load(std::memory_order_acquire) > 0; };
  while (!stopped() && !wanted()) {
    if (ctx_.stopped() && !stopped()) ctx_.restart();
    if (ctx_.poll() > 0 || options_.idle == IdleStrategy::kBusyPoll) continue;
    if (options_.idle == IdleStrategy::kSpin && !take_skip_hint()) {
      const std::int64_t limit = window.next_limit();
      bool worked = false;
      if (limit > 0) {
        const std::int64_t idle_since = mono_now_ns();
        while (!stopped() && mono_now_ns() - idle_since < limit) {
          // A borrower asking for the loop counts as work: the window stays open for the next.
          if (wanted() || ctx_.poll() > 0) {
            worked = true;
            break;
          }
        }
      }
      const std::int64_t before = window.window_ns();
      if (window.update(worked) != before) spin_window_ns_.store(window.window_ns(), std::memory_order_relaxed);
      if (worked) continue;
      if (limit > 0) spins_expired_.store(spins_expired_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    owner_block();
  }
}

void EventLoop::owner_block() {
  {
    std::lock_guard lock(lend_mu_);
    if (want_.load(std::memory_order_relaxed) > 0 || stopped()) return;
    owner_blocked_ = true;
  }
  ctx_.run_one();
  std::lock_guard lock(lend_mu_);
  owner_blocked_ = false;
}

bool EventLoop::borrow() {
  if (!options_.lendable || in_loop_thread()) return false;
  std::unique_lock lock(lend_mu_);
  if (stopped() || !running()) return false;
  Driver d = driver_.load(std::memory_order_relaxed);
  if (d == kBorrower) return false;
  if (d == kOwner) {
    // The loop's own thread lets go after the handler it runs; if it sleeps in the reactor, an
    // empty handler wakes it.
    want_.fetch_add(1, std::memory_order_acq_rel);
    const bool kick = owner_blocked_;
    lock.unlock();
    if (kick) boost::asio::post(ctx_, [] {});
    // It usually lets go within a handler: wait for that without sleeping first.
    const std::int64_t spin_until = mono_now_ns() + 20000;
    while (driver_.load(std::memory_order_acquire) == kOwner && !stopped() && mono_now_ns() < spin_until) {
    }
    lock.lock();
    lend_cv_.wait(lock, [&] { return driver_.load(std::memory_order_relaxed) != kOwner || stopped(); });
    want_.fetch_sub(1, std::memory_order_acq_rel);
    if (driver_.load(std::memory_order_relaxed) != kNone || stopped()) {
      lend_cv_.notify_all();
      return false;
    }
  }
  driver_.store(kBorrower, std::memory_order_seq_cst);
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  loans_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void EventLoop::run_until(const std::function<bool()>& done) {
  if (!borrow_window_) {
    borrow_window_ = std::make_unique<SpinWindow>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.spin).count(), options_.spin_adaptive);
  }
  while (!done() && !stopped()) {
    if (ctx_.stopped()) ctx_.restart();
    seen_posted_ = posted_.load(std::memory_order_seq_cst);
    if (ctx_.poll() > 0 || options_.idle == IdleStrategy::kBusyPoll) continue;
    if (options_.idle == IdleStrategy::kSpin) {
      const std::int64_t limit = borrow_window_->next_limit();
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
      borrow_window_->update(worked);
      if (worked) continue;
    }
    // Sleeps in the reactor until a handler is ready: the response, a timer (the call's
    // deadline), or a post from another thread (a cancel).
    ctx_.run_one();
  }
}

void EventLoop::give_back(const std::function<bool()>& busy) {
  if (ctx_.stopped() && !stopped()) ctx_.restart();
  seen_posted_ = posted_.load(std::memory_order_seq_cst);
  ctx_.poll();
  bool urgent = busy && busy();
  std::unique_lock lock(lend_mu_);
  thread_id_.store(std::thread::id(), std::memory_order_release);
  driver_.store(kNone, std::memory_order_seq_cst);
  // A post after the last batch either sees kNone (and wakes the loop's thread itself) or is
  // seen here.
  if (posted_.load(std::memory_order_seq_cst) != seen_posted_) urgent = true;
  if (urgent || want_.load(std::memory_order_relaxed) > 0 || options_.lend_linger.count() <= 0) {
    urgent_ = true;
    lock.unlock();
    lend_cv_.notify_all();
    return;
  }
  linger_until_ns_ = mono_now_ns() + std::chrono::duration_cast<std::chrono::nanoseconds>(options_.lend_linger).count();
}

void EventLoop::posted_from_outside() {
  if (in_loop_thread()) return;
  posted_.fetch_add(1, std::memory_order_seq_cst);
  if (driver_.load(std::memory_order_seq_cst) != kNone) return;
  {
    std::lock_guard lock(lend_mu_);
    urgent_ = true;
  }
  lend_cv_.notify_all();
}

}  // namespace slip::io
