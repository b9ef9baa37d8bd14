#include "rpc/resilience.h"

#include <algorithm>
#include <cmath>

namespace slip::rpc {

namespace {
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
}  // namespace

// ---- WindowCounter --------------------------------------------------------------------------

WindowCounter::WindowCounter(std::chrono::nanoseconds window, std::size_t buckets)
    : width_ns_(std::max<std::int64_t>(1, window.count() / std::int64_t(std::max<std::size_t>(1, buckets)))),
      slots_(std::max<std::size_t>(1, buckets)) {}

WindowCounter::Slot& WindowCounter::slot_at(std::int64_t now_ns) {
  const std::int64_t index = floor_div(now_ns, width_ns_);
  const auto n = static_cast<std::int64_t>(slots_.size());
  Slot& s = slots_[static_cast<std::size_t>((index % n + n) % n)];
  if (s.index != index) s = Slot{index, 0, 0};
  return s;
}

void WindowCounter::add_a(std::int64_t now_ns, std::uint64_t n) { slot_at(now_ns).a += n; }
void WindowCounter::add_b(std::int64_t now_ns, std::uint64_t n) { slot_at(now_ns).b += n; }

std::uint64_t WindowCounter::a(std::int64_t now_ns) {
  const std::int64_t index = floor_div(now_ns, width_ns_);
  std::uint64_t sum = 0;
  for (const Slot& s : slots_) {
    if (s.index > index - std::int64_t(slots_.size()) && s.index <= index) sum += s.a;
  }
  return sum;
}

std::uint64_t WindowCounter::b(std::int64_t now_ns) {
  const std::int64_t index = floor_div(now_ns, width_ns_);
  std::uint64_t sum = 0;
  for (const Slot& s : slots_) {
    if (s.index > index - std::int64_t(slots_.size()) && s.index <= index) sum += s.b;
  }
  return sum;
}

void WindowCounter::clear() {
  for (Slot& s : slots_) s = Slot{};
}

// ---- RetryBudget ----------------------------------------------------------------------------

RetryBudget::RetryBudget(RetryBudgetOptions options)
    : options_(options), counts_(std::chrono::nanoseconds(options.window), kBuckets) {}

void RetryBudget::on_call(std::int64_t now_ns) { counts_.add_a(now_ns); }

double RetryBudget::available(std::int64_t now_ns) {
  const double seconds = std::chrono::duration<double>(counts_.window()).count();
  return options_.ratio * static_cast<double>(counts_.a(now_ns)) + options_.min_per_second * seconds -
         static_cast<double>(counts_.b(now_ns));
}

bool RetryBudget::try_spend(std::int64_t now_ns) {
  // A small tolerance so that 10 calls at ratio 0.1 pay for one retry despite rounding.
  if (available(now_ns) < 1.0 - 1e-9) return false;
  counts_.add_b(now_ns);
  return true;
}

// ---- CircuitBreaker -------------------------------------------------------------------------

const char* breaker_state_name(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "?";
}

CircuitBreaker::CircuitBreaker(BreakerOptions options)
    : options_(options),
      cool_down_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(options.cool_down).count()),
      outcomes_(std::chrono::nanoseconds(options.ratio_window), 10) {}

BreakerState CircuitBreaker::state(std::int64_t now_ns) {
  if (state_ == BreakerState::kOpen && now_ns >= reopens_at_ns()) {
    state_ = BreakerState::kHalfOpen;
    trials_admitted_ = 0;
    trials_succeeded_ = 0;
    ++half_opens_;
  }
  return state_;
}

bool CircuitBreaker::would_admit(std::int64_t now_ns) {
  if (!options_.enabled) return true;
  switch (state(now_ns)) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      return false;
    case BreakerState::kHalfOpen:
      return trials_admitted_ < std::max<std::uint32_t>(1, options_.half_open_trials);
  }
  return false;
}

CircuitBreaker::Admission CircuitBreaker::admit(std::int64_t now_ns) {
  if (!would_admit(now_ns)) return Admission::kRefused;
  if (!options_.enabled || state_ == BreakerState::kClosed) return Admission::kAdmitted;
  ++trials_admitted_;
  return Admission::kTrial;
}

void CircuitBreaker::open(std::int64_t now_ns) {
  state_ = BreakerState::kOpen;
  opened_at_ns_ = now_ns;
  consecutive_ = 0;
  outcomes_.clear();
  ++opens_;
}

void CircuitBreaker::on_success(std::int64_t now_ns, bool trial) {
  if (!options_.enabled) return;
  if (state_ == BreakerState::kClosed) {
    consecutive_ = 0;
    outcomes_.add_a(now_ns);
    return;
  }
  if (!trial || state_ != BreakerState::kHalfOpen) return;
  if (++trials_succeeded_ >= std::max<std::uint32_t>(1, options_.half_open_trials)) {
    state_ = BreakerState::kClosed;
    consecutive_ = 0;
    outcomes_.clear();
    ++closes_;
  }
}

void CircuitBreaker::on_failure(std::int64_t now_ns, bool trial) {
  if (!options_.enabled) return;
  if (state_ == BreakerState::kClosed) {
    ++consecutive_;
    outcomes_.add_a(now_ns);
    outcomes_.add_b(now_ns);
    if (options_.consecutive_failures > 0 && consecutive_ >= options_.consecutive_failures) {
      open(now_ns);
      return;
    }
    if (options_.failure_ratio > 0) {
      const std::uint64_t calls = outcomes_.a(now_ns);
      const std::uint64_t failures = outcomes_.b(now_ns);
      if (calls >= std::max<std::uint32_t>(1, options_.ratio_min_calls) &&
          static_cast<double>(failures) >= options_.failure_ratio * static_cast<double>(calls)) {
        open(now_ns);
      }
    }
    return;
  }
  if (trial && state_ == BreakerState::kHalfOpen) open(now_ns);
}

void CircuitBreaker::on_abandoned(bool trial) {
  if (trial && state_ == BreakerState::kHalfOpen && trials_admitted_ > 0) --trials_admitted_;
}

// ---- Backoff --------------------------------------------------------------------------------

std::chrono::microseconds retry_backoff(const RetryPolicy& p, std::uint32_t retry, std::mt19937_64& rng) {
  const double growth = std::pow(p.multiplier, static_cast<double>(std::min(retry, 62u)));
  const double base = static_cast<double>(p.initial_backoff.count()) * growth;
  const double capped = std::min(base, static_cast<double>(p.max_backoff.count()));
  double d = capped;
  if (p.jitter && capped > 0) {
    std::uniform_real_distribution<double> u(capped / 2, capped);
    d = u(rng);
  }
  return std::chrono::microseconds(static_cast<std::int64_t>(d));
}

}  // namespace slip::rpc
