#include "rpc/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/logging.h"
#include "rpc/server.h"

namespace slip::rpc {

namespace {

__extension__ typedef unsigned __int128 U128;

// Keeps TAT arithmetic far from overflow whatever rate and burst are configured.
constexpr std::int64_t kMaxSpanNs = std::numeric_limits<std::int64_t>::max() / 4;

std::int64_t interval_for(double rate) {
  if (!(rate > 0)) return 0;
  const double ns = 1e9 / rate;
  if (ns >= static_cast<double>(kMaxSpanNs)) return kMaxSpanNs;
  return std::max<std::int64_t>(1, std::llround(ns));
}

std::int64_t tolerance_for(std::int64_t interval, std::uint64_t burst) {
  if (interval == 0) return 0;
  std::int64_t t = 0;
  if (burst > static_cast<std::uint64_t>(kMaxSpanNs) ||
      __builtin_mul_overflow(interval, static_cast<std::int64_t>(burst), &t) || t > kMaxSpanNs) {
    return kMaxSpanNs;
  }
  return t;
}

std::string format_number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string format_duration(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  const auto ns = d.count();
  if (ns % 1'000'000'000 == 0) return std::to_string(ns / 1'000'000'000) + "s";
  if (ns % 1'000'000 == 0) return std::to_string(ns / 1'000'000) + "ms";
  if (ns % 1'000 == 0) return std::to_string(ns / 1'000) + "us";
  return std::to_string(ns) + "ns";
}

}  // namespace

// ---- TokenBucket ---------------------------------------------------------------------------

TokenBucket::TokenBucket(double rate_per_second, std::uint64_t burst)
    : rate_(rate_per_second > 0 ? rate_per_second : 0),
      burst_(burst),
      interval_ns_(interval_for(rate_per_second)),
      tolerance_ns_(tolerance_for(interval_ns_, burst)),
      tat_(std::numeric_limits<std::int64_t>::min()) {}

bool TokenBucket::try_acquire(std::int64_t now_ns) {
  if (interval_ns_ == 0) {
    std::uint64_t used = used_.load(std::memory_order_relaxed);
    while (used < burst_) {
      if (used_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }
  std::int64_t tat = tat_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t next = std::max(tat, now_ns) + interval_ns_;
    if (next - now_ns > tolerance_ns_) return false;
    if (tat_.compare_exchange_weak(tat, next, std::memory_order_relaxed)) return true;
  }
}

std::uint64_t TokenBucket::available(std::int64_t now_ns) const {
  if (interval_ns_ == 0) {
    const std::uint64_t used = used_.load(std::memory_order_relaxed);
    return used < burst_ ? burst_ - used : 0;
  }
  const std::int64_t tat = tat_.load(std::memory_order_relaxed);
  const std::int64_t backlog = tat > now_ns ? tat - now_ns : 0;
  const std::int64_t free = tolerance_ns_ - backlog;
  return free > 0 ? static_cast<std::uint64_t>(free / interval_ns_) : 0;
}

std::chrono::nanoseconds TokenBucket::wait_time(std::int64_t now_ns) const {
  if (available(now_ns) > 0) return std::chrono::nanoseconds(0);
  if (interval_ns_ == 0) return std::chrono::nanoseconds::max();
  const std::int64_t tat = tat_.load(std::memory_order_relaxed);
  return std::chrono::nanoseconds(std::max<std::int64_t>(0, tat + interval_ns_ - tolerance_ns_ - now_ns));
}

// ---- SlidingWindow -------------------------------------------------------------------------

SlidingWindow::SlidingWindow(std::uint64_t max_calls, std::chrono::nanoseconds window)
    : max_calls_(max_calls), window_ns_(std::clamp<std::int64_t>(window.count(), 1, kMaxSpanNs)) {}

void SlidingWindow::advance(std::int64_t now_ns) {
  const std::int64_t aligned = now_ns - (((now_ns % window_ns_) + window_ns_) % window_ns_);
  if (!started_) {
    started_ = true;
    start_ns_ = aligned;
    return;
  }
  if (now_ns < start_ns_) return;  // a clock that went back: stay in the current window
  const std::int64_t elapsed = now_ns - start_ns_;
  if (elapsed >= 2 * window_ns_) {
    previous_ = 0;
    current_ = 0;
    start_ns_ = aligned;
  } else if (elapsed >= window_ns_) {
    previous_ = current_;
    current_ = 0;
    start_ns_ += window_ns_;
  }
}

double SlidingWindow::estimate_locked(std::int64_t now_ns) const {
  if (!started_) return 0;
  const std::int64_t into = std::clamp<std::int64_t>(now_ns - start_ns_, 0, window_ns_);
  const double weight = static_cast<double>(window_ns_ - into) / static_cast<double>(window_ns_);
  return static_cast<double>(previous_) * weight + static_cast<double>(current_);
}

bool SlidingWindow::try_acquire(std::int64_t now_ns) {
  std::lock_guard lock(mu_);
  advance(now_ns);
  // previous * (window - into) / window + current + 1 <= max, in integers so that the edges
  // (e.g. exactly half a window) are decided exactly.
  const std::int64_t into = std::clamp<std::int64_t>(now_ns - start_ns_, 0, window_ns_);
  const U128 w = static_cast<U128>(window_ns_);
  const U128 used = static_cast<U128>(previous_) * static_cast<U128>(window_ns_ - into) +
                    static_cast<U128>(current_ + 1) * w;
  if (used > static_cast<U128>(max_calls_) * w) return false;
  ++current_;
  return true;
}

double SlidingWindow::estimate(std::int64_t now_ns) const {
  std::lock_guard lock(mu_);
  // Read-only: a window that has rolled over is accounted for without moving it.
  if (!started_) return 0;
  const std::int64_t elapsed = now_ns - start_ns_;
  if (elapsed >= 2 * window_ns_) return 0;
  if (elapsed >= window_ns_) {
    const std::int64_t into = elapsed - window_ns_;
    return static_cast<double>(current_) * static_cast<double>(window_ns_ - into) / static_cast<double>(window_ns_);
  }
  return estimate_locked(now_ns);
}

// ---- RateLimitInterceptor ------------------------------------------------------------------

std::string RateLimit::describe() const {
  std::string s;
  if (kind == Kind::kTokenBucket) {
    s.append(format_number(rate)).append("/s burst ").append(std::to_string(burst));
  } else {
    s.append(std::to_string(max_calls)).append(" per ").append(format_duration(window)).append(" window");
  }
  return s;
}

struct RateLimitInterceptor::Limiter {
  explicit Limiter(const RateLimit& l) : limit(l), description(l.describe()) {
    if (l.kind == RateLimit::Kind::kTokenBucket) {
      bucket.emplace(l.rate, l.burst);
    } else {
      window = std::make_unique<SlidingWindow>(l.max_calls, l.window);
    }
  }
  RateLimit limit;
  std::string description;
  std::optional<TokenBucket> bucket;
  std::unique_ptr<SlidingWindow> window;
};

RateLimitInterceptor::RateLimitInterceptor(RateLimitOptions options) : options_(std::move(options)) {}
RateLimitInterceptor::~RateLimitInterceptor() = default;

void RateLimitInterceptor::on_attach(const ServerLayout& layout) {
  if (options_.global) global_ = std::make_unique<Limiter>(*options_.global);
  per_method_.clear();
  per_method_.resize(layout.methods.size());
  std::size_t matched = 0;
  for (std::size_t i = 0; i < layout.methods.size(); ++i) {
    if (auto it = options_.methods.find(layout.methods[i]); it != options_.methods.end()) {
      per_method_[i] = std::make_unique<Limiter>(it->second);
      ++matched;
    } else if (options_.each_method) {
      per_method_[i] = std::make_unique<Limiter>(*options_.each_method);
    }
  }
  if (matched < options_.methods.size()) {
    for (const auto& [name, limit] : options_.methods) {
      if (std::find(layout.methods.begin(), layout.methods.end(), name) == layout.methods.end()) {
        SLIP_LOG_WARN("rpc rate limit: no method {} on this server (names are \"/package.Service/Method\")", name);
      }
    }
  }
}

Status RateLimitInterceptor::check(Limiter& l, ServerCall& call, std::int64_t now_ns, const std::string& scope) {
  if (l.bucket) {
    if (l.bucket->try_acquire(now_ns)) return Status();
    const auto wait = l.bucket->wait_time(now_ns);
    if (wait != std::chrono::nanoseconds::max()) {
      const auto ms = (wait.count() + 999'999) / 1'000'000;
      call.add_trailer("retry-after-ms", std::to_string(ms));
    }
  } else if (l.window->try_acquire(now_ns)) {
    return Status();
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  std::string msg = "rate limit of ";
  msg.append(scope).append(" exceeded (").append(l.description).append(")");
  return overloaded(msg);
}

Status RateLimitInterceptor::on_call_start(ServerCall& call) {
  const std::int64_t now =
      options_.clock ? options_.clock()
                     : std::chrono::duration_cast<std::chrono::nanoseconds>(call.started().time_since_epoch()).count();
  if (global_) {
    static const std::string kScope = "the server";
    SLIP_TRY(check(*global_, call, now, kScope));
  }
  if (call.method_index() < per_method_.size()) {
    if (Limiter* l = per_method_[call.method_index()].get()) SLIP_TRY(check(*l, call, now, call.method()));
  }
  return Status();
}

}  // namespace slip::rpc
