// The state machines a client channel over several endpoints uses to stay up when some of them
// are not: a retry budget, a circuit breaker per endpoint and the retry backoff (docs/rpc.md,
// "Channels over several endpoints").
//
// None of them reads a clock: every method takes the time (nanoseconds of a monotonic clock) as
// a parameter, so tests drive them with a ManualClock and get exact answers. None is
// thread-safe: a BalancedChannel uses them on its loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

namespace slip::rpc {

// Counts of two kinds of event over a sliding window of time, kept in `buckets` equal buckets:
// an event is forgotten once its bucket is a whole window old, so "the last window" is exact to
// one bucket's width.
class WindowCounter {
 public:
  WindowCounter(std::chrono::nanoseconds window, std::size_t buckets);

  void add_a(std::int64_t now_ns, std::uint64_t n = 1);
  void add_b(std::int64_t now_ns, std::uint64_t n = 1);
  // Totals over the buckets still inside the window at `now_ns`.
  std::uint64_t a(std::int64_t now_ns);
  std::uint64_t b(std::int64_t now_ns);
  void clear();
  std::chrono::nanoseconds window() const { return std::chrono::nanoseconds(width_ns_ * std::int64_t(slots_.size())); }

 private:
  struct Slot {
    std::int64_t index = -1;  // which bucket of time (now / width) it counts
    std::uint64_t a = 0;
    std::uint64_t b = 0;
  };
  Slot& slot_at(std::int64_t now_ns);

  std::int64_t width_ns_;
  std::vector<Slot> slots_;
};

struct RetryBudgetOptions {
  // Retries and hedges may add this fraction of the calls made in the window...
  double ratio = 0.1;
  // ...plus this many per second of the window, so that a channel with little traffic can retry.
  double min_per_second = 10;
  std::chrono::milliseconds window{10000};
};

// The retry budget: over the last `window`,
//     retries + hedges <= ratio * calls + min_per_second * window_seconds.
// Every call deposits `ratio` tokens (on_call); a retry or hedge spends one whole token
// (try_spend), and is refused when less than one is left. Deposits and spends leave the window
// with the bucket they were counted in, so a burst of failures cannot spend the budget of the
// future, and an old burst of calls cannot pay for retries now.
class RetryBudget {
 public:
  explicit RetryBudget(RetryBudgetOptions options = {});

  void on_call(std::int64_t now_ns);
  // Spends one token; false (nothing spent) when the budget cannot pay for it.
  bool try_spend(std::int64_t now_ns);
  // Tokens left now (may be fractional).
  double available(std::int64_t now_ns);

  static constexpr std::size_t kBuckets = 10;

 private:
  RetryBudgetOptions options_;
  WindowCounter counts_;  // a: calls, b: retries and hedges
};

enum class BreakerState : std::uint8_t { kClosed, kOpen, kHalfOpen };
const char* breaker_state_name(BreakerState s);

struct BreakerOptions {
  bool enabled = true;
  // Opens after this many failures in a row; 0: never for this reason.
  std::uint32_t consecutive_failures = 5;
  // Opens when failures / calls reach this ratio over `ratio_window`, once at least
  // `ratio_min_calls` ended in it; 0: never for this reason.
  double failure_ratio = 0.5;
  std::uint32_t ratio_min_calls = 20;
  std::chrono::milliseconds ratio_window{10000};
  // How long it stays open before letting trial calls through.
  std::chrono::milliseconds cool_down{5000};
  // Trial calls let through when half-open; all must succeed to close it.
  std::uint32_t half_open_trials = 1;
};

// A circuit breaker for one endpoint.
//
//   closed --(consecutive failures, or failure ratio over the window)--> open
//   open --(cool_down elapsed)--> half-open
//   half-open --(half_open_trials trial calls all succeeded)--> closed
//   half-open --(a trial call failed)--> open (a new cool-down)
//
// Open takes no calls. Half-open admits up to half_open_trials trial calls; the others are
// refused as if open. Outcomes of calls admitted before the breaker left the closed state are
// ignored once it is open or half-open: only trials decide. What counts as a failure is the
// caller's choice (BalancedChannelOptions::breaker_failure_codes).
class CircuitBreaker {
 public:
  enum class Admission : std::uint8_t { kRefused, kAdmitted, kTrial };

  explicit CircuitBreaker(BreakerOptions options = {});

  // The state at `now_ns` (open turns half-open here when its cool-down has passed).
  BreakerState state(std::int64_t now_ns);
  // Whether admit() would let a call through now, without taking a trial slot.
  bool would_admit(std::int64_t now_ns);
  // Lets a call through or not. kTrial: the call holds a trial slot; pass trial = true to
  // exactly one of on_success, on_failure or on_abandoned when it ends.
  Admission admit(std::int64_t now_ns);
  void on_success(std::int64_t now_ns, bool trial);
  void on_failure(std::int64_t now_ns, bool trial);
  // The call ended without telling anything about the endpoint (cancelled by the caller or by
  // a hedge): a trial gives its slot back.
  void on_abandoned(bool trial);

  // When an open breaker turns half-open (meaningful while open).
  std::int64_t reopens_at_ns() const { return opened_at_ns_ + cool_down_ns_; }

  // Transitions so far.
  std::uint64_t opens() const { return opens_; }
  std::uint64_t half_opens() const { return half_opens_; }
  std::uint64_t closes() const { return closes_; }

 private:
  void open(std::int64_t now_ns);

  BreakerOptions options_;
  std::int64_t cool_down_ns_;
  BreakerState state_ = BreakerState::kClosed;
  std::uint32_t consecutive_ = 0;
  WindowCounter outcomes_;  // a: calls ended, b: failures (closed state only)
  std::int64_t opened_at_ns_ = 0;
  std::uint32_t trials_admitted_ = 0;  // this half-open period
  std::uint32_t trials_succeeded_ = 0;
  std::uint64_t opens_ = 0;
  std::uint64_t half_opens_ = 0;
  std::uint64_t closes_ = 0;
};

struct RetryPolicy {
  // Attempts per call, the first included (retries and hedges both count); 1: no retries.
  std::uint32_t max_attempts = 3;
  // Wait before retry n (0-based): min(initial_backoff * multiplier^n, max_backoff), then
  // uniformly in [d/2, d] when jitter is on.
  std::chrono::microseconds initial_backoff{5000};
  std::chrono::microseconds max_backoff{250000};
  double multiplier = 2.0;
  bool jitter = true;
};

// The wait before retry `retry` (0 for the first).
std::chrono::microseconds retry_backoff(const RetryPolicy& p, std::uint32_t retry, std::mt19937_64& rng);

}  // namespace slip::rpc
