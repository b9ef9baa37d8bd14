// BalancedChannel over real rpc::Server instances on 127.0.0.1 in this process: round robin,
// power of two choices, retries and the retry budget, circuit breakers, hedging, session pools,
// an endpoint stopped and restarted. Assertions are about codes and counts; waits for a state
// are bounded polls, never timing thresholds.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <thread>

#include "rpc/balanced_channel.h"
#include "rpc/blocking.h"
#include "eventually.h"
#include "rpc/server.h"

namespace slip::rpc {
namespace {

using test::eventually;

// One server whose behaviour the test changes while it runs.
class Backend {
 public:
  explicit Backend(std::string name) : name_(std::move(name)) {
    // Unary, on the worker pool: answers its name, or fails with `fail`, after `delay_ms`.
    service_.add_method({"Get", MethodKind::kUnary,
                         [this](const ServerCallPtr& c, std::string) {
                           ++calls;
                           if (const int d = delay_ms.load(); d > 0) {
                             std::this_thread::sleep_for(std::chrono::milliseconds(d));
                           }
                           const StatusCode code = fail.load();
                           if (code != StatusCode::kOk) {
                             c->finish(Status(code, name_ + " fails"));
                           } else {
                             c->finish(Status(), name_);
                           }
                         },
                         {},
                         MethodOptions{true, 0}});
    // Unary: with `hang`, never answers and counts the cancellation it sees; else answers.
    service_.add_method({"Maybe", MethodKind::kUnary,
                         [this](const ServerCallPtr& c, std::string) {
                           ++calls;
                           if (!hang.load()) {
                             c->finish(Status(), name_);
                             return;
                           }
                           c->on_cancel([this] { ++cancelled; });
                         },
                         {},
                         {}});
    // Server-streaming: one message unless `fail_before_message`, then ends with `fail`.
    service_.add_method({"List", MethodKind::kServerStreaming,
                         [this](const ServerCallPtr& c, std::string) {
                           ++calls;
                           if (!fail_before_message.load()) c->write(name_ + ":0");
                           const StatusCode code = fail.load();
                           c->finish(code == StatusCode::kOk ? Status() : Status(code, name_ + " fails"));
                         },
                         {},
                         {}});
    // Client-streaming: the sum of the numbers sent, or `fail` once the requests ended.
    service_.add_method({"Sum", MethodKind::kClientStreaming, {},
                         [this](const ServerCallPtr& c) {
                           ++calls;
                           auto sum = std::make_shared<long>(0);
                           c->on_read([sum](std::string m) { *sum += std::stol(m); },
                                      [this, c, sum] {
                                        const StatusCode code = fail.load();
                                        if (code != StatusCode::kOk) {
                                          c->finish(Status(code, name_ + " fails"));
                                        } else {
                                          c->finish(Status(), name_ + "=" + std::to_string(*sum));
                                        }
                                      });
                         },
                         {}});
    start(0);
  }
  ~Backend() { stop(); }

  // A new server on `port` (0: any).
  void start(std::uint16_t port) {
    ServerOptions o;
    o.listen = "127.0.0.1:" + std::to_string(port);
    o.workers = 8;
    o.drain_timeout = std::chrono::milliseconds(2000);
    server_ = std::make_unique<Server>(o);
    server_->add_service(service_);
    ASSERT_TRUE(server_->start().is_ok());
    port_ = server_->port();
  }
  void stop() {
    if (server_) server_->shutdown();
    server_.reset();
  }
  void restart() { start(port_); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& name() const { return name_; }

  std::atomic<int> calls{0};
  std::atomic<int> cancelled{0};
  std::atomic<StatusCode> fail{StatusCode::kOk};
  std::atomic<int> delay_ms{0};
  std::atomic<bool> hang{false};
  std::atomic<bool> fail_before_message{false};

 private:
  std::string name_;
  Service service_{"test.Lb"};
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

class BalancedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) backends_.push_back(std::make_unique<Backend>("b" + std::to_string(i)));
  }
  void TearDown() override {
    channel_.reset();
    backends_.clear();
  }

  // Options every test starts from: quick reconnects and small backoffs for a test's pace.
  static BalancedChannelOptions base_options(LbPolicy policy) {
    BalancedChannelOptions o;
    o.policy = policy;
    o.seed = 12345;
    o.channel.reconnect.initial = std::chrono::milliseconds(5);
    o.channel.reconnect.max = std::chrono::milliseconds(50);
    o.retry.initial_backoff = std::chrono::microseconds(500);
    o.retry.max_backoff = std::chrono::microseconds(5000);
    return o;
  }
  void make_channel(BalancedChannelOptions o, std::size_t n = 3) {
    std::vector<std::string> addresses;
    for (std::size_t i = 0; i < n; ++i) addresses.push_back(backends_[i]->address());
    channel_ = std::make_unique<BalancedChannel>(std::move(addresses), std::move(o));
  }
  Result<std::string> get(const std::string& method = "/test.Lb/Get", CallOptions opts = {}) {
    if (opts.timeout.count() == 0) opts.timeout = std::chrono::seconds(30);
    return call_unary(*channel_, method, "x", opts);
  }
  int total_calls() const {
    int n = 0;
    for (const auto& b : backends_) n += b->calls.load();
    return n;
  }

  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<BalancedChannel> channel_;
};

TEST_F(BalancedTest, RoundRobinSpreadsCallsEvenly) {
  make_channel(base_options(LbPolicy::kRoundRobin));
  for (int i = 0; i < 30; ++i) {
    auto r = get();
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r, "b" + std::to_string(i % 3));
  }
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.calls, 30u);
  EXPECT_EQ(s.retries, 0u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(backends_[i]->calls.load(), 10);
    EXPECT_EQ(s.endpoints[i].attempts, 10u);
    EXPECT_EQ(s.endpoints[i].successes, 10u);
    EXPECT_EQ(s.endpoints[i].address, backends_[i]->address());
    EXPECT_EQ(s.endpoints[i].breaker, BreakerState::kClosed);
  }
}

TEST_F(BalancedTest, PoolSpreadsCallsOverTheEndpointSessions) {
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.connections_per_endpoint = 3;
  make_channel(o, 1);
  // Ready sessions are preferred over connecting ones: wait for all three.
  ASSERT_TRUE(eventually([&] { return channel_->stats().endpoints[0].sessions_ready == 3; }));
  for (int i = 0; i < 12; ++i) ASSERT_TRUE(get().is_ok());
  BalancedChannelStats s = channel_->stats();
  ASSERT_EQ(s.endpoints[0].sessions, 3u);
  EXPECT_EQ(s.endpoints[0].session_attempts, (std::vector<std::uint64_t>{4, 4, 4}));
  EXPECT_EQ(backends_[0]->calls.load(), 12);
}

TEST_F(BalancedTest, RetriesAroundAFailingEndpointWhoseBreakerOpensThenCloses) {
  // The breaker's time is the test's: it stays open until the test moves the clock.
  auto now = std::make_shared<std::atomic<std::int64_t>>(1'000'000'000);
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.breaker.consecutive_failures = 3;
  o.breaker.cool_down = std::chrono::milliseconds(50);
  o.clock = [now] { return now->load(); };
  make_channel(o);
  backends_[1]->fail = StatusCode::kDisconnected;  // UNAVAILABLE from the handler

  for (int i = 0; i < 60; ++i) {
    auto r = get();
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_NE(*r, "b1");
  }
  BalancedChannelStats s = channel_->stats();
  const EndpointStats& bad = s.endpoints[1];
  EXPECT_EQ(bad.breaker, BreakerState::kOpen);
  EXPECT_EQ(bad.breaker_opens, 1u);
  EXPECT_EQ(bad.failures, 3u);
  EXPECT_EQ(backends_[1]->calls.load(), 3);  // then the open breaker kept calls away
  // Each failed attempt was retried once, on another endpoint, and the budget paid for all.
  EXPECT_EQ(s.retries, 3u);
  EXPECT_EQ(s.endpoints[0].retries + s.endpoints[2].retries, 3u);
  EXPECT_EQ(s.budget_refusals, 0u);
  EXPECT_EQ(s.calls, 60u);

  // It recovers; after the cool-down the breaker is half-open and one trial call closes it.
  backends_[1]->fail = StatusCode::kOk;
  now->fetch_add(49'000'000);
  EXPECT_EQ(channel_->stats().endpoints[1].breaker, BreakerState::kOpen);
  now->fetch_add(1'000'000);
  EXPECT_EQ(channel_->stats().endpoints[1].breaker, BreakerState::kHalfOpen);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(get().is_ok());  // its turn comes within three
  s = channel_->stats();
  EXPECT_EQ(s.endpoints[1].breaker, BreakerState::kClosed);
  EXPECT_EQ(s.endpoints[1].breaker_half_opens, 1u);
  EXPECT_EQ(s.endpoints[1].breaker_closes, 1u);
  EXPECT_EQ(s.endpoints[1].successes, 1u);
  // Closed again, it takes its turn.
  const int before = backends_[1]->calls.load();
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(get().is_ok());
  EXPECT_EQ(backends_[1]->calls.load() - before, 3);
}

TEST_F(BalancedTest, BreakerRecoversAfterItsCoolDownOnTheRealClock) {
  BalancedChannelOptions o = base_options(LbPolicy::kPowerOfTwo);
  o.breaker.consecutive_failures = 2;
  o.breaker.cool_down = std::chrono::milliseconds(20);
  make_channel(o);
  backends_[2]->fail = StatusCode::kDisconnected;
  // Calls keep succeeding (retried elsewhere) until the failing endpoint's breaker opens.
  ASSERT_TRUE(eventually([&] {
    auto r = get();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return channel_->stats().endpoints[2].breaker_opens >= 1;
  }));
  backends_[2]->fail = StatusCode::kOk;
  // Once the cool-down has passed a trial call goes to it (its latency average starts over
  // when the breaker half-opens) and closes the breaker.
  ASSERT_TRUE(eventually([&] {
    auto r = get();
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    const EndpointStats e = channel_->stats().endpoints[2];
    return e.breaker_closes >= 1 && e.breaker == BreakerState::kClosed;
  }));
  BalancedChannelStats s = channel_->stats();
  EXPECT_GE(s.endpoints[2].breaker_half_opens, 1u);
  EXPECT_GE(s.endpoints[2].successes, 1u);
  EXPECT_EQ(s.budget_refusals, 0u);
}

TEST_F(BalancedTest, StoppedEndpointIsSkippedAndRejoinsAfterRestart) {
  make_channel(base_options(LbPolicy::kRoundRobin));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(get().is_ok());
  backends_[2]->stop();
  ASSERT_TRUE(eventually([&] { return channel_->stats().endpoints[2].sessions_ready == 0; }));
  const int before = backends_[0]->calls + backends_[1]->calls;
  for (int i = 0; i < 30; ++i) {
    auto r = get();
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_NE(*r, "b2");
  }
  EXPECT_EQ(backends_[0]->calls + backends_[1]->calls - before, 30);

  backends_[2]->restart();  // the same port
  ASSERT_TRUE(eventually([&] { return channel_->stats().endpoints[2].sessions_ready == 1; }));
  const int b2 = backends_[2]->calls.load();
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(get().is_ok());
  EXPECT_EQ(backends_[2]->calls.load() - b2, 3);
}

TEST_F(BalancedTest, PowerOfTwoSendsFewerCallsToASlowEndpoint) {
  backends_[0]->delay_ms = 20;
  make_channel(base_options(LbPolicy::kPowerOfTwo));
  constexpr int kThreads = 6;
  constexpr int kPerThread = 50;
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!get().is_ok()) ++failed;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  constexpr int kTotal = kThreads * kPerThread;
  ASSERT_EQ(total_calls(), kTotal);
  const int slow = backends_[0]->calls.load();
  RecordProperty("slow_endpoint_calls", slow);
  // A fair share would be kTotal / 3; the slow endpoint gets less than a third of it.
  EXPECT_LT(slow, kTotal / 9) << "slow endpoint got " << slow << " of " << kTotal;
  EXPECT_GT(backends_[1]->calls.load(), slow);
  EXPECT_GT(backends_[2]->calls.load(), slow);
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.endpoints[0].attempts, static_cast<std::uint64_t>(slow));
  EXPECT_GT(s.endpoints[0].ewma_us, 0.0);
}

TEST_F(BalancedTest, NonRetryableCodeReachesTheCallerAfterOneAttempt) {
  for (auto& b : backends_) b->fail = StatusCode::kInvalidArgument;
  make_channel(base_options(LbPolicy::kRoundRobin));
  for (int i = 0; i < 10; ++i) {
    auto r = get();
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "b" + std::to_string(i % 3) + " fails");
  }
  EXPECT_EQ(total_calls(), 10);
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.retries, 0u);
  // Not the servers' fault: their breakers stay closed.
  for (const auto& e : s.endpoints) {
    EXPECT_EQ(e.failures, 0u);
    EXPECT_EQ(e.breaker, BreakerState::kClosed);
  }
}

TEST_F(BalancedTest, RetriesStopWhenTheBudgetIsSpent) {
  for (auto& b : backends_) b->fail = StatusCode::kDisconnected;
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.breaker.enabled = false;
  o.retry.max_attempts = 3;
  // No share of the calls, a reserve of 5 retries (1/s over 5 s), on a clock that stands still
  // so the window never moves.
  o.retry_budget = {.ratio = 0, .min_per_second = 1, .window = std::chrono::seconds(5)};
  o.clock = [] { return std::int64_t{1'000'000'000}; };
  make_channel(o);
  for (int i = 0; i < 20; ++i) {
    auto r = get();
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDisconnected);
    if (i >= 2) {
      EXPECT_NE(r.status().message().find("retry budget exhausted"), std::string_view::npos) << i;
    }
  }
  // Calls 1 and 2 retry twice each, call 3 once: 5 retries; every later failure is refused.
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.retries, 5u);
  EXPECT_EQ(s.budget_refusals, 18u);
  EXPECT_EQ(total_calls(), 25);
  EXPECT_LT(s.budget_available, 1.0);
}

TEST_F(BalancedTest, NoRetryWhoseBackoffEndsPastTheDeadline) {
  for (auto& b : backends_) b->fail = StatusCode::kDisconnected;
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.retry.initial_backoff = std::chrono::seconds(100);
  o.retry.max_backoff = std::chrono::seconds(100);
  make_channel(o);
  CallOptions opts;
  opts.timeout = std::chrono::seconds(30);
  auto r = get("/test.Lb/Get", opts);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDisconnected);
  EXPECT_NE(r.status().message().find("the deadline is too close"), std::string_view::npos) << r.status().to_string();
  EXPECT_EQ(total_calls(), 1);
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(s.budget_refusals, 0u);
}

TEST_F(BalancedTest, AllBreakersOpenFailsFastWithUnavailable) {
  for (auto& b : backends_) b->fail = StatusCode::kDisconnected;
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.breaker.consecutive_failures = 1;
  o.breaker.cool_down = std::chrono::hours(1);
  make_channel(o);
  auto r = get();  // three attempts, each opening a breaker
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDisconnected);
  EXPECT_EQ(total_calls(), 3);
  r = get();
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDisconnected);
  EXPECT_NE(r.status().message().find("circuit breaker open"), std::string_view::npos) << r.status().to_string();
  EXPECT_EQ(total_calls(), 3);  // no server saw it
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.no_endpoint, 1u);
  for (const auto& e : s.endpoints) EXPECT_EQ(e.breaker, BreakerState::kOpen);
}

TEST_F(BalancedTest, StreamingCallIsRetriedOnlyBeforeAMessageArrived) {
  make_channel(base_options(LbPolicy::kRoundRobin));
  // b0 fails before sending anything: the call moves on to b1.
  backends_[0]->fail = StatusCode::kDisconnected;
  backends_[0]->fail_before_message = true;
  {
    BlockingCall call(*channel_, "/test.Lb/List", {}, {"x"}, true);
    std::string m;
    ASSERT_TRUE(call.read(&m));
    EXPECT_EQ(m, "b1:0");
    EXPECT_TRUE(call.finish().is_ok());
  }
  EXPECT_EQ(channel_->stats().retries, 1u);
  // b2 sends a message, then fails: the caller has seen a response, so no retry.
  backends_[2]->fail = StatusCode::kDisconnected;
  {
    BlockingCall call(*channel_, "/test.Lb/List", {}, {"x"}, true);
    std::string m;
    ASSERT_TRUE(call.read(&m));
    EXPECT_EQ(m, "b2:0");
    EXPECT_EQ(call.finish().code(), StatusCode::kDisconnected);
    EXPECT_FALSE(call.read(&m));
  }
  EXPECT_EQ(channel_->stats().retries, 1u);
  EXPECT_EQ(total_calls(), 3);
}

TEST_F(BalancedTest, OnMessageBytesReachesTheCallerOfTheWinningAttemptOnly) {
  make_channel(base_options(LbPolicy::kRoundRobin));
  // b0 fails before its message: the retry on b1 answers, through on_message_bytes alone.
  backends_[0]->fail = StatusCode::kDisconnected;
  backends_[0]->fail_before_message = true;
  std::vector<std::string> got;
  int string_callbacks = 0;
  std::promise<Status> done;
  CallCallbacks cb;
  cb.on_message = [&](std::string) { ++string_callbacks; };
  cb.on_message_bytes = [&](Slice m) { got.push_back(m.to_string()); };
  cb.on_done = [&](const Status& st, const Metadata&) { done.set_value(st); };
  CallOptions o;
  o.timeout = std::chrono::seconds(30);
  channel_->start_call("/test.Lb/List", o, std::move(cb), {"x"}, true);
  const Status st = done.get_future().get();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(got, (std::vector<std::string>{"b1:0"}));
  EXPECT_EQ(string_callbacks, 0);
  EXPECT_EQ(channel_->stats().retries, 1u);
}

TEST_F(BalancedTest, ClientStreamingRetryReplaysTheRequests) {
  make_channel(base_options(LbPolicy::kRoundRobin));
  backends_[0]->fail = StatusCode::kDisconnected;
  BlockingCall call(*channel_, "/test.Lb/Sum", {});
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(call.write(std::to_string(i)));
  call.writes_done();
  std::string m;
  ASSERT_TRUE(call.read(&m));
  EXPECT_EQ(m, "b1=10");
  EXPECT_TRUE(call.finish().is_ok());
  EXPECT_EQ(backends_[0]->calls.load(), 1);
  EXPECT_EQ(backends_[1]->calls.load(), 1);
}

TEST_F(BalancedTest, HedgedCallIsAnsweredByTheFastEndpointAndTheSlowOneCancelled) {
  backends_[0]->hang = true;  // round robin asks b0 first
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.hedging.enabled = true;
  o.hedging.delay = std::chrono::milliseconds(5);
  o.idempotent_methods = {"/test.Lb/Maybe"};
  make_channel(o, 2);
  auto r = get("/test.Lb/Maybe");
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(*r, "b1");
  ASSERT_TRUE(eventually([&] { return backends_[0]->cancelled.load() == 1; }));
  BalancedChannelStats s = channel_->stats();
  EXPECT_EQ(s.hedges, 1u);
  EXPECT_EQ(s.endpoints[1].hedges, 1u);
  EXPECT_EQ(s.endpoints[0].abandoned, 1u);
  EXPECT_EQ(s.endpoints[0].failures, 0u);
  EXPECT_EQ(backends_[0]->calls.load(), 1);
  EXPECT_EQ(backends_[1]->calls.load(), 1);
}

TEST_F(BalancedTest, NonIdempotentCallIsNotHedged) {
  backends_[0]->hang = true;
  BalancedChannelOptions o = base_options(LbPolicy::kRoundRobin);
  o.hedging.enabled = true;
  o.hedging.delay = std::chrono::milliseconds(5);
  make_channel(o, 2);
  CallOptions opts;
  opts.timeout = std::chrono::milliseconds(200);
  auto r = get("/test.Lb/Maybe", opts);
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
  EXPECT_EQ(backends_[1]->calls.load(), 0);
  EXPECT_EQ(channel_->stats().hedges, 0u);
  // Marked idempotent for this one call, it is hedged.
  opts.timeout = std::chrono::seconds(30);
  opts.idempotent = true;
  r = get("/test.Lb/Maybe", opts);  // round robin: b1 first, answers at once
  ASSERT_TRUE(r.is_ok());
  r = get("/test.Lb/Maybe", opts);  // b0 first, hedged to b1
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(*r, "b1");
  EXPECT_EQ(channel_->stats().hedges, 1u);
}

TEST_F(BalancedTest, CancelReachesTheServerAndEndsTheCall) {
  backends_[0]->hang = true;
  make_channel(base_options(LbPolicy::kRoundRobin), 1);
  BlockingCall call(*channel_, "/test.Lb/Maybe", {}, {"x"}, true);
  ASSERT_TRUE(eventually([&] { return backends_[0]->calls.load() == 1; }));
  call.cancel();
  EXPECT_EQ(call.finish().code(), StatusCode::kCancelled);
  ASSERT_TRUE(eventually([&] { return backends_[0]->cancelled.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return channel_->stats().endpoints[0].in_flight == 0; }));
}

}  // namespace
}  // namespace slip::rpc
