// Load balancing for a channel over several endpoints: the latency average each endpoint keeps
// and the two ways of choosing one (docs/rpc.md, "Channels over several endpoints").
//
// Like rpc/resilience.h, nothing here reads a clock or owns a thread: time and randomness are
// parameters, so tests get exact answers from a seeded generator.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace slip::rpc {

enum class LbPolicy : std::uint8_t {
  kRoundRobin,  // each endpoint in turn
  kPowerOfTwo,  // two at random, the one with the lower latency EWMA x (in flight + 1)
};
const char* lb_policy_name(LbPolicy p);

// An exponentially weighted moving average of an endpoint's latency.
//
// Each sample moves the average `alpha` of the way towards it. While no sample arrives the
// average decays towards zero with time constant `idle_decay` (multiplied by
// exp(-idle / idle_decay)): an endpoint that lost every choice because it was once slow is
// tried again after a while, and keeps its traffic only if it answers faster now. Without a
// sample yet the value is 0 and has_value() false (the channel then substitutes the fastest
// endpoint's average).
class LatencyEwma {
 public:
  LatencyEwma(double alpha, std::chrono::nanoseconds idle_decay) : alpha_(alpha), idle_decay_ns_(idle_decay.count()) {}

  void record(std::int64_t now_ns, double sample_ns);
  // A call abandoned after `elapsed_ns` (cancelled): its latency is at least that, so it can
  // only raise the average; recorded when it does.
  void record_at_least(std::int64_t now_ns, double elapsed_ns);
  double value(std::int64_t now_ns) const;
  bool has_value() const { return has_value_; }

 private:
  double alpha_;
  std::int64_t idle_decay_ns_;  // <= 0: no decay
  bool has_value_ = false;
  double value_ = 0;
  std::int64_t last_ns_ = 0;
};

// What the power-of-two-choices rule compares.
struct LbCandidate {
  double ewma_ns = 0;
  std::uint32_t in_flight = 0;
};

// Lower is better: the expected wait if this endpoint served the calls it has and one more,
// each at its average latency.
inline double p2c_score(const LbCandidate& c) { return c.ewma_ns * (static_cast<double>(c.in_flight) + 1.0); }

// Power of two choices among `eligible` (indices into `candidates`, not empty): two distinct
// ones at random, the lower p2c_score; on a tie the one with fewer calls in flight, then the
// first drawn. One eligible: that one.
std::size_t pick_p2c(const std::vector<LbCandidate>& candidates, const std::vector<std::size_t>& eligible,
                     std::mt19937_64& rng);

// Round robin over endpoints 0..n-1: the first of `eligible` (ascending, not empty) at or after
// the cursor, wrapping; the cursor moves past it.
class RoundRobin {
 public:
  std::size_t pick(const std::vector<std::size_t>& eligible);

 private:
  std::size_t cursor_ = 0;
};

}  // namespace slip::rpc
