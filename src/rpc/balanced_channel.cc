#include "rpc/balanced_channel.h"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <future>

#include "core/assert.h"
#include "core/clock.h"
#include "core/logging.h"

namespace slip::rpc {
namespace detail {

// One server address: its pooled sessions and what the balancer knows of it. Loop only.
struct Endpoint {
  Endpoint(std::string a, const BalancedChannelOptions& o)
      : address(std::move(a)), breaker(o.breaker), ewma(o.ewma_alpha, o.ewma_idle_decay) {}

  // A session for the next call: ready ones in turn, else one still connecting; null when all
  // are in transient failure.
  Channel* session() {
    constexpr std::size_t kNone = ~std::size_t{0};
    std::size_t connecting = kNone;
    for (std::size_t i = 0; i < sessions.size(); ++i) {
      const std::size_t k = (next_session + i) % sessions.size();
      const ConnectivityState st = sessions[k]->state();
      if (st == ConnectivityState::kReady) {
        next_session = k + 1;
        counts.session_attempts[k]++;
        return sessions[k].get();
      }
      if (st == ConnectivityState::kConnecting && connecting == kNone) connecting = k;
    }
    if (connecting == kNone) return nullptr;
    counts.session_attempts[connecting]++;
    return sessions[connecting].get();
  }
  bool reachable() const {
    return std::any_of(sessions.begin(), sessions.end(),
                       [](const auto& c) { return c->state() != ConnectivityState::kTransientFailure; });
  }

  std::string address;
  std::vector<std::unique_ptr<Channel>> sessions;
  std::size_t next_session = 0;
  CircuitBreaker breaker;
  LatencyEwma ewma;
  std::uint32_t in_flight = 0;
  std::uint64_t half_opens_seen = 0;  // the breaker's half-opens the EWMA was reset for
  EndpointStats counts;  // the counters only
};

enum class AttemptKind : std::uint8_t { kFirst, kRetry, kHedge };

// One try of a call on one endpoint.
struct Attempt {
  Endpoint* endpoint = nullptr;
  CallPtr call;
  std::int64_t started_ns = 0;
  bool trial = false;      // holds a half-open breaker's trial slot
  bool live = true;
  bool abandoned = false;  // cancelled by us: lost to another attempt, or the caller gave up
  bool has_headers = false;
  Metadata headers;
};
using AttemptPtr = std::shared_ptr<Attempt>;

// A call over the balanced channel: a sequence of attempts (see balanced_channel.h). Its state
// lives on the channel's loop; write(), writes_done() and cancel() hand their work to it.
class BalancedCall final : public Call, public std::enable_shared_from_this<BalancedCall> {
 public:
  BalancedCall(BalancedChannel& ch, std::string method, CallOptions options, CallCallbacks callbacks,
               std::vector<std::string> requests, bool half_close)
      : ch_(ch),
        method_(std::move(method)),
        options_(std::move(options)),
        callbacks_(std::move(callbacks)),
        sent_(std::move(requests)),
        half_closed_(half_close) {
    for (const auto& m : sent_) sent_bytes_ += m.size();
  }

  void write(std::string message) override {
    ch_.loop().post([self = shared_from_this(), m = std::move(message)]() mutable { self->do_write(std::move(m)); });
  }
  void writes_done() override {
    ch_.loop().post([self = shared_from_this()] { self->do_writes_done(); });
  }
  void cancel() override {
    ch_.loop().post([self = shared_from_this()] { self->abort(cancelled("cancelled by the caller")); });
  }

  // On the loop: the first attempt, or the reason there is none.
  void begin();
  // On the loop: ends the call with `status`, cancelling its attempts.
  void abort(const Status& status);

 private:
  std::int64_t now() const { return ch_.now_ns(); }
  std::size_t live_attempts() const {
    return static_cast<std::size_t>(
        std::count_if(attempts_.begin(), attempts_.end(), [](const AttemptPtr& a) { return a->live; }));
  }
  void launch(Endpoint* ep, AttemptKind kind);
  void on_headers(const AttemptPtr& a, const Metadata& h);
  // A message of attempt `a` arrived: true when it is the caller's (the first attempt to answer
  // wins the call; its headers go first).
  bool take_message(const AttemptPtr& a);
  void on_done(const AttemptPtr& a, const Status& st, const Metadata& trailers);
  void commit(const AttemptPtr& a);
  void retry_or_finish();
  void retry_now();
  void arm_hedge();
  void hedge_now();
  void finish(const Status& st, const Metadata& trailers);
  void deliver_headers();
  void do_write(std::string m);
  void do_writes_done();

  BalancedChannel& ch_;
  std::string method_;
  CallOptions options_;
  CallCallbacks callbacks_;
  std::chrono::steady_clock::time_point deadline_;
  // Requests so far, kept to send again on a retry or hedge while `replayable_`.
  std::vector<std::string> sent_;
  std::size_t sent_bytes_ = 0;
  bool replayable_ = true;
  bool half_closed_;
  bool hedgeable_ = false;
  std::vector<AttemptPtr> attempts_;
  std::vector<Endpoint*> tried_;
  std::uint32_t retries_ = 0;
  AttemptPtr winner_;  // set once committed
  bool headers_delivered_ = false;
  AttemptPtr last_failed_;
  Status last_failure_;
  Metadata last_trailers_;
  std::unique_ptr<boost::asio::steady_timer> retry_timer_;
  std::unique_ptr<boost::asio::steady_timer> hedge_timer_;
  bool done_ = false;
};

void BalancedCall::begin() {
  if (ch_.closing_) {
    finish(cancelled("channel closed"), {});
    return;
  }
  ch_.live_.insert(shared_from_this());
  ch_.counters_.calls++;
  ch_.budget_.on_call(now());
  deadline_ = options_.effective_deadline(std::chrono::steady_clock::now());
  hedgeable_ = ch_.options_.hedging.enabled && half_closed_ && ch_.options_.retry.max_attempts > 1 &&
               ch_.idempotent(method_, options_);
  if (sent_bytes_ > ch_.options_.max_replay_bytes) replayable_ = false;
  Endpoint* ep = ch_.pick({}, false);
  if (ep == nullptr) {
    ch_.counters_.no_endpoint++;
    finish(disconnected(ch_.why_none()), {});
    return;
  }
  launch(ep, AttemptKind::kFirst);
}

void BalancedCall::launch(Endpoint* ep, AttemptKind kind) {
  auto a = std::make_shared<Attempt>();
  a->endpoint = ep;
  a->started_ns = now();
  a->trial = ep->breaker.admit(a->started_ns) == CircuitBreaker::Admission::kTrial;
  attempts_.push_back(a);
  tried_.push_back(ep);
  ++ep->in_flight;
  ep->counts.attempts++;
  if (kind == AttemptKind::kRetry) {
    ep->counts.retries++;
    ch_.counters_.retries++;
  } else if (kind == AttemptKind::kHedge) {
    ep->counts.hedges++;
    ch_.counters_.hedges++;
  }

  CallOptions o;
  o.deadline = deadline_;
  o.metadata = options_.metadata;
  o.idempotent = options_.idempotent;
  CallCallbacks cb;
  std::weak_ptr<BalancedCall> weak = weak_from_this();
  cb.on_headers = [weak, a](const Metadata& h) {
    if (auto self = weak.lock()) self->on_headers(a, h);
  };
  if (callbacks_.on_message_bytes) {
    cb.on_message_bytes = [weak, a](Slice m) {
      if (auto self = weak.lock(); self && self->take_message(a)) self->callbacks_.on_message_bytes(std::move(m));
    };
  } else {
    cb.on_message = [weak, a](std::string m) {
      if (auto self = weak.lock(); self && self->take_message(a) && self->callbacks_.on_message) {
        self->callbacks_.on_message(std::move(m));
      }
    };
  }
  cb.on_done = [ch = &ch_, weak, a](const Status& st, const Metadata& trailers) {
    ch->attempt_ended(*a, st);
    if (auto self = weak.lock()) self->on_done(a, st, trailers);
  };
  // Nothing can be replayed later: hand the requests over instead of copying them.
  const bool last_chance = !replayable_ || tried_.size() >= ch_.options_.retry.max_attempts;
  std::vector<std::string> requests = last_chance ? std::move(sent_) : sent_;
  if (last_chance) {
    sent_.clear();
    replayable_ = false;
  }
  // pick() chose `ep` in this loop turn because one of its sessions can take a call.
  Channel* session = ep->session();
  SLIP_ASSERT(session != nullptr);
  a->call = session->start_call(method_, std::move(o), std::move(cb), std::move(requests), half_closed_);
  if (hedgeable_) arm_hedge();
}

void BalancedCall::on_headers(const AttemptPtr& a, const Metadata& h) {
  if (done_) return;
  if (winner_ == a && !headers_delivered_) {
    headers_delivered_ = true;
    if (callbacks_.on_headers) callbacks_.on_headers(h);
    return;
  }
  a->headers = h;
  a->has_headers = true;
}

bool BalancedCall::take_message(const AttemptPtr& a) {
  if (done_) return false;
  if (winner_ == nullptr) commit(a);
  if (winner_ != a) return false;
  deliver_headers();
  return true;
}

void BalancedCall::on_done(const AttemptPtr& a, const Status& st, const Metadata& trailers) {
  if (done_) return;
  if (winner_ != nullptr) {
    if (winner_ == a) finish(st, trailers);
    return;
  }
  if (st.is_ok() || !ch_.retryable(st.code())) {
    commit(a);
    finish(st, trailers);
    return;
  }
  last_failed_ = a;
  last_failure_ = st;
  last_trailers_ = trailers;
  // Another attempt (a hedge) may still answer.
  if (live_attempts() > 0) return;
  retry_or_finish();
}

void BalancedCall::commit(const AttemptPtr& a) {
  winner_ = a;
  retry_timer_.reset();
  hedge_timer_.reset();
  sent_.clear();
  replayable_ = false;
  for (auto& o : attempts_) {
    if (o != a && o->live && !o->abandoned) {
      o->abandoned = true;
      o->call->cancel();
    }
  }
}

void BalancedCall::retry_or_finish() {
  hedge_timer_.reset();
  const auto attempts = static_cast<std::uint32_t>(attempts_.size());
  auto give_up = [&](const std::string& why) {
    commit(last_failed_);
    finish(last_failure_.with_context(why), last_trailers_);
  };
  if (attempts >= ch_.options_.retry.max_attempts) {
    if (attempts > 1) {
      give_up("after " + std::to_string(attempts) + " attempts");
    } else {
      commit(last_failed_);
      finish(last_failure_, last_trailers_);
    }
    return;
  }
  if (!replayable_) {
    give_up("not retried (the requests exceed max_replay_bytes)");
    return;
  }
  const auto wait = retry_backoff(ch_.options_.retry, retries_, ch_.rng_);
  if (deadline_ != std::chrono::steady_clock::time_point::max() &&
      std::chrono::steady_clock::now() + wait >= deadline_) {
    give_up("not retried (the deadline is too close)");
    return;
  }
  if (!ch_.budget_.try_spend(now())) {
    ch_.counters_.budget_refusals++;
    give_up("not retried (retry budget exhausted)");
    return;
  }
  ++retries_;
  retry_timer_ = std::make_unique<boost::asio::steady_timer>(ch_.loop().context());
  retry_timer_->expires_after(wait);
  retry_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->done_) return;
    self->retry_now();
  });
}

void BalancedCall::retry_now() {
  retry_timer_.reset();
  if (winner_ != nullptr) return;
  Endpoint* ep = ch_.pick(tried_, false);
  if (ep == nullptr) {
    ch_.counters_.no_endpoint++;
    std::string why = ch_.why_none();
    why.append("; last attempt: ").append(last_failure_.to_string());
    commit(last_failed_);
    finish(disconnected(why), {});
    return;
  }
  launch(ep, AttemptKind::kRetry);
}

void BalancedCall::arm_hedge() {
  if (winner_ != nullptr || attempts_.size() >= ch_.options_.retry.max_attempts || !replayable_) return;
  hedge_timer_ = std::make_unique<boost::asio::steady_timer>(ch_.loop().context());
  hedge_timer_->expires_after(ch_.hedge_delay());
  hedge_timer_->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->done_) return;
    self->hedge_now();
  });
}

void BalancedCall::hedge_now() {
  hedge_timer_.reset();
  // Only while an attempt is still out: after a failure the retry path decides.
  if (winner_ != nullptr || live_attempts() == 0) return;
  Endpoint* ep = ch_.pick(tried_, true);
  if (ep == nullptr) return;  // no other endpoint to ask
  if (!ch_.budget_.try_spend(now())) {
    ch_.counters_.budget_refusals++;
    return;
  }
  launch(ep, AttemptKind::kHedge);
}

void BalancedCall::deliver_headers() {
  if (headers_delivered_ || winner_ == nullptr) return;
  headers_delivered_ = true;
  if (winner_->has_headers && callbacks_.on_headers) callbacks_.on_headers(winner_->headers);
}

void BalancedCall::finish(const Status& st, const Metadata& trailers) {
  if (done_) return;
  done_ = true;
  retry_timer_.reset();
  hedge_timer_.reset();
  for (auto& o : attempts_) {
    if (o->live && o != winner_ && !o->abandoned) {
      o->abandoned = true;
      o->call->cancel();
    }
  }
  deliver_headers();
  auto cb = std::move(callbacks_.on_done);
  callbacks_ = {};
  // The attempts end by themselves (their callbacks hold what they need); dropping them here
  // leaves nothing tied to the channel's loop in a call the caller may keep.
  attempts_.clear();
  tried_.clear();
  winner_.reset();
  last_failed_.reset();
  sent_.clear();
  auto self = shared_from_this();
  ch_.live_.erase(self);
  if (cb) cb(st, trailers);
}

void BalancedCall::abort(const Status& status) {
  if (done_) return;
  for (auto& o : attempts_) {
    if (o->live && !o->abandoned) {
      o->abandoned = true;
      o->call->cancel();
    }
  }
  finish(status, {});
}

void BalancedCall::do_write(std::string m) {
  if (done_ || half_closed_) return;
  if (winner_ == nullptr && replayable_) {
    sent_bytes_ += m.size();
    if (sent_bytes_ <= ch_.options_.max_replay_bytes) {
      sent_.push_back(m);
    } else {
      // Too much to replay: the call stays with the attempt it has, or, between attempts, ends.
      replayable_ = false;
      sent_.clear();
      AttemptPtr live;
      for (auto& a : attempts_) {
        if (a->live) live = a;
      }
      if (live == nullptr) {
        commit(last_failed_);
        finish(last_failure_.with_context("not retried (the requests exceed max_replay_bytes)"), last_trailers_);
        return;
      }
      commit(live);
    }
  }
  for (auto& a : attempts_) {
    if (a->live && !a->abandoned) a->call->write(m);
  }
}

void BalancedCall::do_writes_done() {
  if (done_ || half_closed_) return;
  half_closed_ = true;
  for (auto& a : attempts_) {
    if (a->live && !a->abandoned) a->call->writes_done();
  }
}

}  // namespace detail

using detail::Attempt;
using detail::BalancedCall;
using detail::Endpoint;

// ---- BalancedChannel -----------------------------------------------------------------------

BalancedChannel::BalancedChannel(std::vector<std::string> addresses, BalancedChannelOptions options)
    : options_(std::move(options)),
      loops_(1, options_.channel.loop),
      budget_(options_.retry_budget),
      rng_(options_.seed != 0 ? options_.seed : std::random_device{}()),
      hedge_delay_(options_.hedging.delay) {
  if (!options_.clock) options_.clock = [] { return mono_now_ns(); };
  loops_.start();
  ChannelOptions co = options_.channel;
  co.wait_for_ready = false;
  for (auto& address : addresses) {
    auto ep = std::make_unique<Endpoint>(address, options_);
    for (std::size_t i = 0; i < std::max<std::size_t>(1, options_.connections_per_endpoint); ++i) {
      ep->sessions.push_back(std::make_unique<Channel>(address, loop(), co));
    }
    ep->counts.session_attempts.assign(ep->sessions.size(), 0);
    endpoints_.push_back(std::move(ep));
  }
}

BalancedChannel::~BalancedChannel() {
  std::promise<void> done;
  loop().post([&] {
    closing_ = true;
    auto all = live_;
    for (const auto& c : all) c->abort(cancelled("channel closed"));
    live_.clear();
    done.set_value();
  });
  done.get_future().wait();
  // Each session ends its attempts (their bookkeeping runs on the loop, which still runs).
  for (auto& ep : endpoints_) ep->sessions.clear();
  for (int i = 0; i < 2; ++i) {
    std::promise<void> turn;
    loop().post([&] { turn.set_value(); });
    turn.get_future().wait();
  }
  loops_.stop();
}

CallPtr BalancedChannel::start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                                    std::vector<std::string> requests, bool half_close) {
  auto c = std::make_shared<BalancedCall>(*this, std::move(method), std::move(options), std::move(callbacks),
                                          std::move(requests), half_close);
  loop().post([c] { c->begin(); });
  return c;
}

std::int64_t BalancedChannel::now_ns() const { return options_.clock(); }

bool BalancedChannel::retryable(StatusCode c) const {
  return std::find(options_.retryable_codes.begin(), options_.retryable_codes.end(), c) !=
         options_.retryable_codes.end();
}

bool BalancedChannel::breaker_failure(StatusCode c) const {
  return std::find(options_.breaker_failure_codes.begin(), options_.breaker_failure_codes.end(), c) !=
         options_.breaker_failure_codes.end();
}

bool BalancedChannel::idempotent(const std::string& method, const CallOptions& o) const {
  return o.idempotent || std::find(options_.idempotent_methods.begin(), options_.idempotent_methods.end(), method) !=
                             options_.idempotent_methods.end();
}

Endpoint* BalancedChannel::pick(const std::vector<Endpoint*>& avoid, bool strict) {
  const std::int64_t now = now_ns();
  // TODO(perf): two small vectors per pick; fixed-capacity storage once the endpoint count is bounded.
  std::vector<std::size_t> eligible;
  std::vector<std::size_t> preferred;
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    Endpoint& ep = *endpoints_[i];
    if (!ep.reachable() || !ep.breaker.would_admit(now)) continue;
    if (ep.breaker.half_opens() != ep.half_opens_seen) {
      // Its failures made it look slow; that says nothing of it now that it may have recovered:
      // starting over lets the balancer send it the trial calls that can close the breaker.
      ep.half_opens_seen = ep.breaker.half_opens();
      ep.ewma = LatencyEwma(options_.ewma_alpha, options_.ewma_idle_decay);
    }
    eligible.push_back(i);
    if (std::find(avoid.begin(), avoid.end(), &ep) == avoid.end()) preferred.push_back(i);
  }
  const std::vector<std::size_t>& from = !preferred.empty() || strict ? preferred : eligible;
  if (from.empty()) return nullptr;
  if (options_.policy == LbPolicy::kRoundRobin) return endpoints_[round_robin_.pick(from)].get();
  // An endpoint without a latency sample yet counts as the fastest one that has one: it is
  // tried soon, but calls in flight on it still count, so a new endpoint does not draw every
  // call until its first answer.
  double fastest = -1;
  for (std::size_t i : from) {
    if (!endpoints_[i]->ewma.has_value()) continue;
    const double v = endpoints_[i]->ewma.value(now);
    if (fastest < 0 || v < fastest) fastest = v;
  }
  std::vector<LbCandidate> candidates(endpoints_.size());
  for (std::size_t i : from) {
    const LatencyEwma& e = endpoints_[i]->ewma;
    candidates[i] = {e.has_value() ? e.value(now) : std::max(0.0, fastest), endpoints_[i]->in_flight};
  }
  return endpoints_[pick_p2c(candidates, from, rng_)].get();
}

std::string BalancedChannel::why_none() const {
  if (endpoints_.empty()) return "no endpoint can take the call: the channel has no endpoints";
  const std::int64_t now = now_ns();
  std::string m = "no endpoint can take the call (";
  m.append(std::to_string(endpoints_.size())).append(" unavailable):");
  for (const auto& ep : endpoints_) {
    m.append(" ").append(ep->address).append(": ");
    // state() on a copy: explaining must not change the breaker.
    CircuitBreaker b = ep->breaker;
    const BreakerState bs = b.state(now);
    if (bs == BreakerState::kOpen) {
      const auto left_ms = std::max<std::int64_t>(0, (b.reopens_at_ns() - now) / 1000000);
      m.append("circuit breaker open (cool-down ends in ").append(std::to_string(left_ms)).append(" ms);");
    } else if (bs == BreakerState::kHalfOpen && !b.would_admit(now)) {
      m.append("circuit breaker half-open, trial calls in flight;");
    } else {
      m.append("not connected");
      for (const auto& s : ep->sessions) {
        if (!s->last_error().is_ok()) {
          m.append(" (").append(s->last_error().to_string()).append(")");
          break;
        }
      }
      m.append(";");
    }
  }
  m.pop_back();
  return m;
}

void BalancedChannel::attempt_ended(Attempt& a, const Status& status) {
  a.live = false;
  Endpoint& ep = *a.endpoint;
  if (ep.in_flight > 0) --ep.in_flight;
  const std::int64_t now = now_ns();
  const auto elapsed = static_cast<double>(std::max<std::int64_t>(0, now - a.started_ns));
  if (a.abandoned && status.code() == StatusCode::kCancelled) {
    ep.counts.abandoned++;
    ep.breaker.on_abandoned(a.trial);
    ep.ewma.record_at_least(now, elapsed);
    return;
  }
  if (breaker_failure(status.code())) {
    ep.counts.failures++;
    ep.breaker.on_failure(now, a.trial);
    ep.ewma.record(now, std::max(elapsed, options_.ewma_failure_penalty * ep.ewma.value(now)));
    return;
  }
  ep.counts.successes++;
  ep.breaker.on_success(now, a.trial);
  ep.ewma.record(now, elapsed);
  if (status.is_ok()) record_latency(static_cast<std::int64_t>(elapsed));
}

void BalancedChannel::record_latency(std::int64_t ns) {
  const HedgingPolicy& h = options_.hedging;
  if (!h.enabled || h.percentile <= 0) return;
  latencies_.record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, ns / 1000)));
  // A quantile walks every bucket: refresh it every 64 samples, and start over now and then so
  // that it follows the endpoints' latency as it changes.
  constexpr std::uint64_t kRefreshEvery = 64;
  constexpr std::uint64_t kWindowSamples = 4096;
  const std::uint64_t n = latencies_.count();
  if (n >= std::max<std::uint64_t>(1, h.min_samples) && n % kRefreshEvery == 0) {
    const auto q = std::chrono::microseconds(static_cast<std::int64_t>(latencies_.quantile(h.percentile)));
    hedge_delay_ = std::max(h.delay, q);
  }
  if (n >= kWindowSamples) latencies_ = HistogramSnapshot();
}

BalancedChannelStats BalancedChannel::snapshot() {
  BalancedChannelStats s = counters_;
  const std::int64_t now = now_ns();
  s.budget_available = budget_.available(now);
  for (const auto& ep : endpoints_) {
    EndpointStats e = ep->counts;
    e.address = ep->address;
    e.in_flight = ep->in_flight;
    e.breaker = ep->breaker.state(now);
    e.breaker_opens = ep->breaker.opens();
    e.breaker_half_opens = ep->breaker.half_opens();
    e.breaker_closes = ep->breaker.closes();
    e.ewma_us = ep->ewma.value(now) / 1000.0;
    e.sessions = ep->sessions.size();
    for (const auto& c : ep->sessions) {
      if (c->state() == ConnectivityState::kReady) ++e.sessions_ready;
    }
    s.endpoints.push_back(std::move(e));
  }
  return s;
}

BalancedChannelStats BalancedChannel::stats() {
  if (loop().in_loop_thread()) return snapshot();
  std::promise<BalancedChannelStats> p;
  loop().post([&] { p.set_value(snapshot()); });
  return p.get_future().get();
}

}  // namespace slip::rpc
