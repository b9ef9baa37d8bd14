// Rate limits for RPC servers: a token bucket, a sliding-window counter, and the interceptor
// that applies them globally or per method (docs/rpc.md, "Rate limiting").
//
// Both limiters take the time as a parameter (monotonic nanoseconds), so tests drive them with a
// fake clock, and both may be used from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "rpc/interceptor.h"

namespace slip::rpc {

// A token bucket of `burst` tokens refilled at `rate` tokens per second; a call takes one.
//
// Kept as the generic cell rate algorithm (GCRA), which admits exactly what the bucket admits
// but needs one number: the theoretical arrival time (TAT) of the next call, when the bucket
// would be full again. A call at `now` is admitted if max(TAT, now) + 1/rate - now <= burst/rate,
// and then moves TAT there. One compare-and-swap, no lock. rate 0: `burst` calls, never refilled.
// 1/rate and burst/rate are capped at about 73 years (a quarter of the int64 nanosecond range).
class TokenBucket {
 public:
  TokenBucket(double rate_per_second, std::uint64_t burst);

  // Takes a token if one is there. Any thread.
  bool try_acquire(std::int64_t now_ns);
  // Whole tokens available at `now_ns`.
  std::uint64_t available(std::int64_t now_ns) const;
  // How long until a token is there (0 if one is); nanoseconds::max() if never (rate 0).
  std::chrono::nanoseconds wait_time(std::int64_t now_ns) const;

  double rate() const { return rate_; }
  std::uint64_t burst() const { return burst_; }

 private:
  const double rate_;
  const std::uint64_t burst_;
  const std::int64_t interval_ns_;   // 1/rate; 0 when rate is 0
  const std::int64_t tolerance_ns_;  // burst/rate
  std::atomic<std::int64_t> tat_;    // rate > 0
  std::atomic<std::uint64_t> used_{0};  // rate == 0
};

// At most `max_calls` in any window of length `window`, estimated with two counters (the
// sliding-window counter): the calls of the current fixed window plus those of the previous one
// weighted by how much of it the sliding window still covers. Memory is constant; the estimate
// assumes the previous window's calls were evenly spread, which can admit a few more or fewer
// calls than an exact log of timestamps would at the window's edges, and never more than
// 2 * max_calls in any window. An exact log costs memory proportional to max_calls per limit.
// The window is at least 1 ns and at most about 73 years.
class SlidingWindow {
 public:
  SlidingWindow(std::uint64_t max_calls, std::chrono::nanoseconds window);

  // Counts the call if the window has room. Any thread.
  bool try_acquire(std::int64_t now_ns);
  // The estimated number of calls in the window ending at `now_ns`.
  double estimate(std::int64_t now_ns) const;

  std::uint64_t max_calls() const { return max_calls_; }
  std::chrono::nanoseconds window() const { return std::chrono::nanoseconds(window_ns_); }

 private:
  void advance(std::int64_t now_ns);  // mu_ held
  double estimate_locked(std::int64_t now_ns) const;

  const std::uint64_t max_calls_;
  const std::int64_t window_ns_;
  mutable std::mutex mu_;
  bool started_ = false;
  std::int64_t start_ns_ = 0;  // start of the current fixed window
  std::uint64_t current_ = 0;
  std::uint64_t previous_ = 0;
};

// One limit: a token bucket (rate, burst) or a sliding window (max_calls per window).
struct RateLimit {
  enum class Kind : std::uint8_t { kTokenBucket, kSlidingWindow };
  Kind kind = Kind::kTokenBucket;
  double rate = 0;          // token bucket: tokens per second
  std::uint64_t burst = 0;  // token bucket: capacity (and the calls admitted at once)
  std::uint64_t max_calls = 0;  // sliding window
  std::chrono::nanoseconds window = std::chrono::seconds(1);  // sliding window

  static RateLimit token_bucket(double rate, std::uint64_t burst) {
    RateLimit r;
    r.rate = rate;
    r.burst = burst;
    return r;
  }
  static RateLimit sliding_window(std::uint64_t max_calls, std::chrono::nanoseconds window) {
    RateLimit r;
    r.kind = Kind::kSlidingWindow;
    r.max_calls = max_calls;
    r.window = window;
    return r;
  }
  // "100/s burst 20" or "1000 per 1s window".
  std::string describe() const;
};

struct RateLimitOptions {
  // One budget for all calls of the server (or of the service the interceptor is added to).
  std::optional<RateLimit> global;
  // A budget of its own for each method listed ("/pkg.Service/Method").
  std::map<std::string, RateLimit> methods;
  // A budget of its own, of this size, for every other method.
  std::optional<RateLimit> each_method;
  // Monotonic nanoseconds; empty: the time the call arrived (no extra clock read).
  std::function<std::int64_t()> clock;
};

// Refuses calls over budget with RESOURCE_EXHAUSTED ("rate limit of ... exceeded") and a
// `retry-after-ms` trailer when a token bucket knows when the next call would pass. A call must
// pass the global budget and then its method's.
class RateLimitInterceptor final : public ServerInterceptor {
 public:
  explicit RateLimitInterceptor(RateLimitOptions options);
  ~RateLimitInterceptor() override;

  void on_attach(const ServerLayout& layout) override;
  Status on_call_start(ServerCall& call) override;

  // Calls refused so far. Any thread.
  std::uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  struct Limiter;
  Status check(Limiter& l, ServerCall& call, std::int64_t now_ns, const std::string& scope);

  RateLimitOptions options_;
  std::unique_ptr<Limiter> global_;
  std::vector<std::unique_ptr<Limiter>> per_method_;  // by method index; null: no limit
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace slip::rpc
