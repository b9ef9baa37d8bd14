#include "rpc/balancer.h"

#include <cmath>

namespace slip::rpc {

const char* lb_policy_name(LbPolicy p) {
  switch (p) {
    case LbPolicy::kRoundRobin:
      return "round_robin";
    case LbPolicy::kPowerOfTwo:
      return "p2c";
  }
  return "?";
}

// ---- LatencyEwma ----------------------------------------------------------------------------

double LatencyEwma::value(std::int64_t now_ns) const {
  if (!has_value_) return 0;
  if (idle_decay_ns_ <= 0 || now_ns <= last_ns_) return value_;
  const double idle = static_cast<double>(now_ns - last_ns_) / static_cast<double>(idle_decay_ns_);
  return value_ * std::exp(-idle);
}

void LatencyEwma::record(std::int64_t now_ns, double sample_ns) {
  if (!has_value_) {
    value_ = sample_ns;
    has_value_ = true;
  } else {
    value_ = alpha_ * sample_ns + (1.0 - alpha_) * value(now_ns);
  }
  last_ns_ = now_ns;
}

void LatencyEwma::record_at_least(std::int64_t now_ns, double elapsed_ns) {
  if (has_value_ && elapsed_ns <= value(now_ns)) return;
  record(now_ns, elapsed_ns);
}

// ---- Choices --------------------------------------------------------------------------------

std::size_t pick_p2c(const std::vector<LbCandidate>& candidates, const std::vector<std::size_t>& eligible,
                     std::mt19937_64& rng) {
  if (eligible.size() == 1) return eligible[0];
  std::uniform_int_distribution<std::size_t> first(0, eligible.size() - 1);
  std::uniform_int_distribution<std::size_t> second(0, eligible.size() - 2);
  const std::size_t i = first(rng);
  std::size_t j = second(rng);
  if (j >= i) ++j;  // distinct from i, uniform over the others
  const std::size_t a = eligible[i];
  const std::size_t b = eligible[j];
  const double sa = p2c_score(candidates[a]);
  const double sb = p2c_score(candidates[b]);
  if (sb < sa) return b;
  if (sa < sb) return a;
  return candidates[b].in_flight < candidates[a].in_flight ? b : a;
}

std::size_t RoundRobin::pick(const std::vector<std::size_t>& eligible) {
  std::size_t chosen = eligible.front();
  for (std::size_t e : eligible) {
    if (e >= cursor_) {
      chosen = e;
      break;
    }
  }
  cursor_ = chosen + 1;
  return chosen;
}

}  // namespace slip::rpc
