// A client channel over several endpoints (docs/rpc.md, "Channels over several endpoints"):
// a pool of sessions per endpoint, load balancing (round robin or power of two choices on a
// latency EWMA), retries of retryable codes under a retry budget, a circuit breaker per
// endpoint, hedged requests for idempotent calls, and statistics per endpoint.
//
// A BalancedChannel is a ChannelInterface: the typed stubs, BlockingCall and call_unary take it
// wherever they take a Channel. It owns one event-loop thread; its sessions (one Channel per
// pooled connection, without wait_for_ready) and all of its state live on that loop, so the
// balancing, retry and breaker decisions take no lock.
//
// A call is a sequence of attempts, each on one endpoint. Until the call is committed to one
// attempt it may start another: a retry after an attempt failed with a retryable code, or a
// hedge when the first is slow. The first attempt to deliver a response message, or to end with
// a code that is not retried, wins; the others are cancelled (the server sees CANCEL). Response
// headers are held until the winner is known, so a retried call looks like one call.
//
// Threading: the public methods may be called from any thread; callbacks run on the channel's
// loop and must not block. Do not destroy the channel on its own loop (from a callback);
// stats() may be called anywhere, the loop included.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/histogram.h"
#include "io/loop_group.h"
#include "rpc/balancer.h"
#include "rpc/call.h"
#include "rpc/channel.h"
#include "rpc/resilience.h"

namespace slip::rpc {

struct HedgingPolicy {
  // Hedge idempotent calls whose requests are all known when they start (unary and
  // server-streaming calls).
  bool enabled = false;
  // Wait before each hedge: `delay`, or, when `percentile` > 0 and at least `min_samples`
  // attempts succeeded, that quantile of their latencies (recent ones; never below `delay`).
  std::chrono::microseconds delay{10000};
  double percentile = 0;
  std::uint32_t min_samples = 100;
};

struct BalancedChannelOptions {
  // Options of each pooled session (wait_for_ready is forced off; `loop` is the options of the
  // channel's one loop).
  ChannelOptions channel;
  // Sessions per endpoint; calls to an endpoint take its sessions in turn.
  std::size_t connections_per_endpoint = 1;

  LbPolicy policy = LbPolicy::kPowerOfTwo;
  // Latency EWMA (rpc/balancer.h): weight of a new sample, idle decay, and how a failed
  // attempt counts: as max(its latency, failure_penalty x the average), so that an endpoint
  // that fails fast does not look fast.
  double ewma_alpha = 0.3;
  std::chrono::milliseconds ewma_idle_decay{10000};
  double ewma_failure_penalty = 2.0;

  RetryPolicy retry;
  // Codes a failed attempt is retried for (gRPC's UNAVAILABLE by default: the request was not
  // processed, or can safely be sent again).
  std::vector<StatusCode> retryable_codes{StatusCode::kDisconnected};
  RetryBudgetOptions retry_budget;
  // Request bytes kept per call to send again on a retry; a streaming call that writes more
  // is not retried (nor hedged) any more.
  std::size_t max_replay_bytes = 64 * 1024;

  BreakerOptions breaker;
  // Codes that count as a failure of the endpoint for its breaker; every other answer is a
  // success (an INVALID_ARGUMENT or NOT_FOUND says nothing bad about the server).
  std::vector<StatusCode> breaker_failure_codes{StatusCode::kDisconnected, StatusCode::kTimeout,
                                                StatusCode::kOverloaded};

  HedgingPolicy hedging;
  // Full method names ("/pkg.Service/Method") that may be hedged; CallOptions::idempotent marks
  // one call.
  std::vector<std::string> idempotent_methods;

  // Time for the breakers, the retry budget and the EWMAs (monotonic nanoseconds); null:
  // mono_now_ns. Timers (backoff, hedge delay) run on the loop's real clock.
  std::function<std::int64_t()> clock;
  // Seeds the choices and the backoff jitter; 0: a random seed.
  std::uint64_t seed = 0;
};

struct EndpointStats {
  std::string address;
  std::uint64_t attempts = 0;   // sent here: first attempts, retries and hedges
  std::uint64_t retries = 0;    // of which retries
  std::uint64_t hedges = 0;     // of which hedges
  std::uint64_t successes = 0;  // answers that are not breaker failures
  std::uint64_t failures = 0;   // answers with a breaker failure code
  std::uint64_t abandoned = 0;  // cancelled: lost to another attempt, or by the caller
  std::uint32_t in_flight = 0;
  BreakerState breaker = BreakerState::kClosed;
  std::uint64_t breaker_opens = 0;
  std::uint64_t breaker_half_opens = 0;
  std::uint64_t breaker_closes = 0;
  double ewma_us = 0;           // latency average now (after idle decay)
  std::size_t sessions_ready = 0;
  std::size_t sessions = 0;
  std::vector<std::uint64_t> session_attempts;  // attempts sent on each pooled session
};

struct BalancedChannelStats {
  std::uint64_t calls = 0;
  std::uint64_t retries = 0;
  std::uint64_t hedges = 0;
  std::uint64_t budget_refusals = 0;  // retries and hedges the budget did not pay for
  std::uint64_t no_endpoint = 0;      // calls failed fast: no endpoint could take them
  double budget_available = 0;
  std::vector<EndpointStats> endpoints;
};

namespace detail {
class BalancedCall;
struct Attempt;
struct Endpoint;
}  // namespace detail

class BalancedChannel final : public ChannelInterface {
 public:
  // `addresses` are "host:port" (at least one). Connects to all at once, in the background.
  explicit BalancedChannel(std::vector<std::string> addresses, BalancedChannelOptions options = {});
  ~BalancedChannel() override;  // ends calls in flight with CANCELLED
  BalancedChannel(const BalancedChannel&) = delete;
  BalancedChannel& operator=(const BalancedChannel&) = delete;

  // ChannelInterface. Any thread.
  CallPtr start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                     std::vector<std::string> requests = {}, bool half_close = false) override;

  // A consistent snapshot. Any thread, including the loop's.
  BalancedChannelStats stats();

  io::EventLoop& loop() { return loops_.loop(0); }
  const BalancedChannelOptions& options() const { return options_; }

 private:
  friend class detail::BalancedCall;
  std::int64_t now_ns() const;
  // The endpoint for an attempt (loop only): eligible ones are those whose breaker admits a
  // call and that have a session not in transient failure; `avoid` are skipped while another
  // is eligible (all of them when `strict`). Null when none is.
  detail::Endpoint* pick(const std::vector<detail::Endpoint*>& avoid, bool strict);
  // Why no endpoint can take a call, for the caller's UNAVAILABLE.
  std::string why_none() const;
  bool retryable(StatusCode c) const;
  bool breaker_failure(StatusCode c) const;
  bool idempotent(const std::string& method, const CallOptions& o) const;
  std::chrono::microseconds hedge_delay() const { return hedge_delay_; }
  // Bookkeeping when an attempt ends: in flight, breaker, EWMA, counts (loop only).
  void attempt_ended(detail::Attempt& a, const Status& status);
  void record_latency(std::int64_t ns);
  BalancedChannelStats snapshot();

  BalancedChannelOptions options_;
  io::LoopGroup loops_;
  std::vector<std::unique_ptr<detail::Endpoint>> endpoints_;
  // Loop-only state.
  std::unordered_set<std::shared_ptr<detail::BalancedCall>> live_;
  RetryBudget budget_;
  RoundRobin round_robin_;
  std::mt19937_64 rng_;
  HistogramSnapshot latencies_;  // successful attempts, microseconds (hedge percentile)
  std::chrono::microseconds hedge_delay_;
  bool closing_ = false;
  BalancedChannelStats counters_;  // channel-wide counters (endpoints empty)
};

}  // namespace slip::rpc
