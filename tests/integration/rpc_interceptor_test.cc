// Server interceptors and the response cache over real TCP on 127.0.0.1: refusals that keep the
// handler from running, what interceptors see, the ready-made auth, rate-limit, metrics and
// logging interceptors, and cacheable methods. Limits and time-to-live run on fake clocks or on
// budgets that never refill, and counters are awaited with a bounded wait, never timed.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "obs/prometheus.h"
#include "obs/rpc_metrics.h"
#include "rpc/auth_interceptor.h"
#include "rpc/blocking.h"
#include "rpc/logging_interceptor.h"
#include "rpc/metrics_interceptor.h"
#include "rpc/rate_limit.h"
#include "eventually.h"
#include "rpc/server.h"

namespace slip::rpc {
namespace {

using test::eventually;

std::string concat(std::string_view a, std::string_view b) {
  std::string s(a);
  s.append(b);
  return s;
}

// A clock the test moves by hand and the server's loops read.
struct FakeClock {
  std::atomic<std::int64_t> now{1'000'000'000};
  std::function<std::int64_t()> fn() {
    return [this] { return now.load(); };
  }
  void advance(std::chrono::nanoseconds d) { now.fetch_add(d.count()); }
};

// Methods that count how often their handler ran.
struct CountingService {
  Service service;
  std::atomic<int> echo_runs{0};
  std::atomic<int> fail_runs{0};
  std::atomic<int> other_runs{0};

  explicit CountingService(std::string name) : service(std::move(name)) {
    service.add_method({"Echo", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string req) {
                          ++echo_runs;
                          c->add_header("h", "1");
                          c->add_trailer("t", "2");
                          c->finish(Status(), concat("echo:", req));
                        },
                        {},
                        {}});
    service.add_method({"Fail", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string) {
                          ++fail_runs;
                          c->finish(not_found("no such key"));
                        },
                        {},
                        {}});
    service.add_method({"Other", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string req) {
                          ++other_runs;
                          c->finish(Status(), concat("other:", req));
                        },
                        {},
                        {}});
  }
};

// Records what it sees; refuses calls whose metadata has "deny".
class RecordingInterceptor final : public ServerInterceptor {
 public:
  RecordingInterceptor(std::string name, std::vector<std::string>* order, std::mutex* mu)
      : name_(std::move(name)), order_(order), mu_(mu) {}

  void on_attach(const ServerLayout& layout) override {
    std::lock_guard lock(*mu_);
    layout_ = layout;
    ++attached;
  }
  Status on_call_start(ServerCall& call) override {
    std::lock_guard lock(*mu_);
    order_->push_back(concat(name_, ":start"));
    method = call.method();
    peer = call.peer();
    connection_id = call.connection_id();
    had_deadline = call.deadline() != std::chrono::steady_clock::time_point::max();
    who = std::string(find_metadata(call.metadata(), "who"));
    index_matches = call.method_index() < layout_.methods.size() && layout_.methods[call.method_index()] == method;
    shard_ok = call.shard() < layout_.shards;
    if (!find_metadata(call.metadata(), "deny").empty()) return permission_denied(concat("denied by ", name_));
    return Status();
  }
  void on_call_end(const ServerCall&, const Status& status, std::chrono::nanoseconds elapsed) override {
    std::lock_guard lock(*mu_);
    order_->push_back(concat(name_, ":end"));
    ended.push_back(status.code());
    elapsed_ok = elapsed.count() >= 0;
  }

  int attached = 0;
  std::string method, peer, who;
  std::uint64_t connection_id = 0;
  bool had_deadline = false, index_matches = false, shard_ok = false, elapsed_ok = false;
  std::vector<StatusCode> ended;

 private:
  std::string name_;
  std::vector<std::string>* order_;
  std::mutex* mu_;
  ServerLayout layout_;
};

class Harness {
 public:
  explicit Harness(std::vector<Service*> services, std::vector<std::shared_ptr<ServerInterceptor>> interceptors = {},
                   std::size_t threads = 2) {
    ServerOptions o;
    o.threads = threads;
    server = std::make_unique<Server>(o);
    for (Service* s : services) server->add_service(*s);
    for (auto& i : interceptors) server->add_interceptor(i);
  }
  void start() {
    ASSERT_TRUE(server->start().is_ok());
    channel = std::make_unique<Channel>(server->address());
  }
  ~Harness() {
    channel.reset();
    server.reset();
  }
  Result<std::string> call(const std::string& method, const std::string& req, const CallOptions& o = {},
                           Metadata* trailers = nullptr) {
    return call_unary(*channel, method, req, o, trailers);
  }

  std::unique_ptr<Server> server;
  std::unique_ptr<Channel> channel;
};

CallOptions with(std::string key, std::string value) {
  CallOptions o;
  o.metadata.emplace_back(std::move(key), std::move(value));
  return o;
}

// ---- The chain ------------------------------------------------------------------------------

TEST(RpcInterceptors, RefusalEndsTheCallWithItsStatusAndTheHandlerNeverRuns) {
  std::mutex mu;
  std::vector<std::string> order;
  auto rec = std::make_shared<RecordingInterceptor>("a", &order, &mu);
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {rec});
  h.start();

  Result<std::string> r = h.call("/test.Svc/Echo", "x", with("deny", "1"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().message(), "denied by a");
  EXPECT_EQ(svc.echo_runs.load(), 0);
  EXPECT_EQ(h.server->stats().rejected_by_interceptor.load(), 1u);

  Result<std::string> ok = h.call("/test.Svc/Echo", "y");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, "echo:y");
  EXPECT_EQ(svc.echo_runs.load(), 1);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return rec->ended.size() == 2;
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(rec->ended[0], StatusCode::kPermissionDenied);
  EXPECT_EQ(rec->ended[1], StatusCode::kOk);
  EXPECT_EQ(rec->attached, 1);
}

TEST(RpcInterceptors, InterceptorSeesMethodMetadataPeerConnectionAndDeadline) {
  std::mutex mu;
  std::vector<std::string> order;
  auto rec = std::make_shared<RecordingInterceptor>("a", &order, &mu);
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {rec});
  h.start();
  CallOptions o = with("who", "alice");
  o.timeout = std::chrono::seconds(30);
  ASSERT_TRUE(h.call("/test.Svc/Other", "x", o).is_ok());
  std::lock_guard lock(mu);
  EXPECT_EQ(rec->method, "/test.Svc/Other");
  EXPECT_EQ(rec->who, "alice");
  EXPECT_EQ(rec->peer.rfind("127.0.0.1:", 0), 0u) << rec->peer;
  EXPECT_GT(rec->connection_id, 0u);
  EXPECT_TRUE(rec->had_deadline);
  EXPECT_TRUE(rec->index_matches);
  EXPECT_TRUE(rec->shard_ok);
}

TEST(RpcInterceptors, ChainRunsInOrderEndsInReverseAndStopsAtTheFirstRefusal) {
  std::mutex mu;
  std::vector<std::string> order;
  auto a = std::make_shared<RecordingInterceptor>("a", &order, &mu);
  auto b = std::make_shared<RecordingInterceptor>("b", &order, &mu);
  CountingService svc("test.Svc");
  svc.service.add_interceptor(b);  // the service's run after the server's
  Harness h({&svc.service}, {a});
  h.start();
  ASSERT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return order.size() == 4;
  }));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(order, (std::vector<std::string>{"a:start", "b:start", "b:end", "a:end"}));
    order.clear();
  }
  Result<std::string> r = h.call("/test.Svc/Echo", "x", with("deny", "1"));
  EXPECT_EQ(r.status().message(), "denied by a");  // a refuses first: b is never asked
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return order.size() == 2;
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"a:start", "a:end"}));
}

// Refuses every call; as the second of a chain, the first is told of the end it caused.
class RefuseAll final : public ServerInterceptor {
 public:
  Status on_call_start(ServerCall&) override {
    ++asked;
    return unauthenticated("nobody passes");
  }
  void on_call_end(const ServerCall&, const Status& s, std::chrono::nanoseconds) override { last = s.code(); }
  std::atomic<int> asked{0};
  std::atomic<StatusCode> last{StatusCode::kOk};
};

TEST(RpcInterceptors, ServiceInterceptorGuardsOnlyItsServiceAndEarlierInterceptorsSeeItsRefusal) {
  std::mutex mu;
  std::vector<std::string> order;
  auto server_wide = std::make_shared<RecordingInterceptor>("s", &order, &mu);
  auto refuse = std::make_shared<RefuseAll>();
  CountingService guarded("test.Guarded");
  CountingService open("test.Open");
  guarded.service.add_interceptor(refuse);
  Harness h({&guarded.service, &open.service}, {server_wide});
  h.start();

  Result<std::string> r = h.call("/test.Guarded/Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(guarded.echo_runs.load(), 0);
  Result<std::string> ok = h.call("/test.Open/Echo", "x");
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(open.echo_runs.load(), 1);
  EXPECT_EQ(refuse->asked.load(), 1);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return server_wide->ended.size() == 2;
  }));
  EXPECT_EQ(refuse->last.load(), StatusCode::kUnauthenticated);
  std::lock_guard lock(mu);
  EXPECT_EQ(server_wide->ended[0], StatusCode::kUnauthenticated);
  EXPECT_EQ(server_wide->ended[1], StatusCode::kOk);
}

class Throws final : public ServerInterceptor {
 public:
  Status on_call_start(ServerCall&) override { throw std::runtime_error("kaput"); }
};

TEST(RpcInterceptors, ThrowingInterceptorEndsTheCallWithInternalAndTheServerLivesOn) {
  CountingService svc("test.Svc");
  svc.service.add_interceptor(std::make_shared<Throws>());
  CountingService other("test.Other");
  Harness h({&svc.service, &other.service});
  h.start();
  Result<std::string> r = h.call("/test.Svc/Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("kaput"), std::string_view::npos);
  EXPECT_EQ(svc.echo_runs.load(), 0);
  EXPECT_EQ(h.server->stats().interceptor_exceptions.load(), 1u);
  EXPECT_TRUE(h.call("/test.Other/Echo", "x").is_ok());
}

TEST(RpcInterceptors, UnknownMethodsNeverReachTheChain) {
  std::mutex mu;
  std::vector<std::string> order;
  auto rec = std::make_shared<RecordingInterceptor>("a", &order, &mu);
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {rec});
  h.start();
  EXPECT_EQ(h.call("/test.Svc/Nope", "x").status().code(), StatusCode::kUnimplemented);
  ASSERT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return rec->ended.size() == 1;
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(order, (std::vector<std::string>{"a:start", "a:end"}));
}

// ---- Auth -----------------------------------------------------------------------------------

TEST(RpcAuth, MissingOrWrongTokenIsUnauthenticatedAndTheRightOneCallsTheHandler) {
  AuthOptions ao;
  ao.tokens = {"s3cret", "other-token"};
  ao.public_methods = {"/test.Svc/Other"};
  auto auth = std::make_shared<AuthInterceptor>(ao);
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {auth});
  h.start();

  Result<std::string> r = h.call("/test.Svc/Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r.status().message(), "missing authorization metadata");
  r = h.call("/test.Svc/Echo", "x", with("authorization", "Bearer wrong"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(r.status().message(), "invalid token");
  r = h.call("/test.Svc/Echo", "x", with("authorization", "s3cret"));  // no scheme
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(svc.echo_runs.load(), 0);

  r = h.call("/test.Svc/Echo", "x", with("authorization", "Bearer s3cret"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(*r, "echo:x");
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x", with("authorization", "bearer other-token")).is_ok());
  EXPECT_EQ(svc.echo_runs.load(), 2);
  // A public method needs nothing.
  EXPECT_TRUE(h.call("/test.Svc/Other", "x").is_ok());
  EXPECT_EQ(auth->rejected(), 3u);
}

TEST(RpcAuth, VerifyCallbackMayDenyAMethodToAKnownCaller) {
  AuthOptions ao;
  ao.verify = [](std::string_view token, const ServerCall& call) -> Status {
    if (token == "reader") {
      return call.method() == "/test.Svc/Echo" ? Status() : permission_denied("readers may only Echo");
    }
    return unauthenticated("unknown caller");
  };
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {std::make_shared<AuthInterceptor>(ao)});
  h.start();
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x", with("authorization", "Bearer reader")).is_ok());
  Result<std::string> r = h.call("/test.Svc/Other", "x", with("authorization", "Bearer reader"));
  EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(r.status().message(), "readers may only Echo");
  EXPECT_EQ(h.call("/test.Svc/Echo", "x", with("authorization", "Bearer who")).status().code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(svc.echo_runs.load(), 1);
  EXPECT_EQ(svc.other_runs.load(), 0);
}

// ---- Rate limits ----------------------------------------------------------------------------

TEST(RpcRateLimit, BeyondAMethodsBudgetCallsGetResourceExhaustedAndOtherMethodsPass) {
  RateLimitOptions ro;
  ro.methods["/test.Svc/Echo"] = RateLimit::token_bucket(0, 3);  // three calls, never refilled
  auto limit = std::make_shared<RateLimitInterceptor>(ro);
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {limit});
  h.start();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h.call("/test.Svc/Echo", "x").is_ok()) << i;
  Metadata trailers;
  Result<std::string> r = h.call("/test.Svc/Echo", "x", {}, &trailers);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
  EXPECT_EQ(r.status().message(), "rate limit of /test.Svc/Echo exceeded (0/s burst 3)");
  EXPECT_EQ(find_metadata(trailers, "retry-after-ms"), "");  // never refilled: no time to wait for
  EXPECT_EQ(svc.echo_runs.load(), 3);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(h.call("/test.Svc/Other", "x").is_ok());
  EXPECT_EQ(limit->rejected(), 1u);
}

TEST(RpcRateLimit, GlobalTokenBucketRefillsWithTheFakeClockAndSaysWhenToRetry) {
  FakeClock clock;
  RateLimitOptions ro;
  ro.global = RateLimit::token_bucket(1, 2);  // one per second, two at once
  ro.clock = clock.fn();
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {std::make_shared<RateLimitInterceptor>(ro)});
  h.start();
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_TRUE(h.call("/test.Svc/Other", "x").is_ok());
  Metadata trailers;
  Result<std::string> r = h.call("/test.Svc/Other", "x", {}, &trailers);
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
  EXPECT_EQ(r.status().message(), "rate limit of the server exceeded (1/s burst 2)");
  EXPECT_EQ(find_metadata(trailers, "retry-after-ms"), "1000");
  clock.advance(std::chrono::milliseconds(999));
  EXPECT_EQ(h.call("/test.Svc/Echo", "x").status().code(), StatusCode::kOverloaded);
  clock.advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_EQ(h.call("/test.Svc/Echo", "x").status().code(), StatusCode::kOverloaded);
  EXPECT_EQ(svc.echo_runs.load() + svc.other_runs.load(), 3);
}

TEST(RpcRateLimit, SlidingWindowPerMethodWithTheFakeClock) {
  FakeClock clock;
  clock.now = 0;
  RateLimitOptions ro;
  ro.each_method = RateLimit::sliding_window(2, std::chrono::seconds(1));
  ro.clock = clock.fn();
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {std::make_shared<RateLimitInterceptor>(ro)});
  h.start();
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  Result<std::string> r = h.call("/test.Svc/Echo", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
  EXPECT_EQ(r.status().message(), "rate limit of /test.Svc/Echo exceeded (2 per 1s window)");
  EXPECT_TRUE(h.call("/test.Svc/Other", "x").is_ok());  // a budget of its own
  clock.advance(std::chrono::seconds(2));
  EXPECT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_EQ(svc.echo_runs.load(), 3);
}

// ---- Response cache -------------------------------------------------------------------------

TEST(RpcCache, RepeatedRequestIsAnsweredWithoutTheHandlerUntilTheTtlPasses) {
  FakeClock clock;
  CountingService svc("test.Svc");
  CacheOptions co;
  co.ttl = std::chrono::seconds(10);
  co.clock = clock.fn();
  ASSERT_TRUE(svc.service.set_cacheable("Echo", co));
  ASSERT_TRUE(svc.service.set_cacheable("Fail", co));
  Harness h({&svc.service});
  h.start();

  BlockingCall first(*h.channel, "/test.Svc/Echo", {}, {"a"}, true);
  std::string m;
  ASSERT_TRUE(first.read(&m));
  EXPECT_EQ(m, "echo:a");
  ASSERT_TRUE(first.finish().is_ok());
  EXPECT_EQ(svc.echo_runs.load(), 1);

  // The same request again: the cached answer, with the headers and trailers the handler added.
  BlockingCall again(*h.channel, "/test.Svc/Echo", {}, {"a"}, true);
  ASSERT_TRUE(again.read(&m));
  EXPECT_EQ(m, "echo:a");
  ASSERT_TRUE(again.finish().is_ok());
  EXPECT_EQ(find_metadata(again.headers(), "h"), "1");
  EXPECT_EQ(find_metadata(again.trailers(), "t"), "2");
  EXPECT_EQ(svc.echo_runs.load(), 1);

  // A different request runs the handler.
  Result<std::string> b = h.call("/test.Svc/Echo", "b");
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(*b, "echo:b");
  EXPECT_EQ(svc.echo_runs.load(), 2);

  // Just before the time-to-live: still cached. At it: the handler again.
  clock.advance(std::chrono::seconds(10) - std::chrono::nanoseconds(1));
  EXPECT_EQ(*h.call("/test.Svc/Echo", "a"), "echo:a");
  EXPECT_EQ(svc.echo_runs.load(), 2);
  clock.advance(std::chrono::nanoseconds(1));
  EXPECT_EQ(*h.call("/test.Svc/Echo", "a"), "echo:a");
  EXPECT_EQ(svc.echo_runs.load(), 3);

  // Failures are never cached.
  EXPECT_EQ(h.call("/test.Svc/Fail", "k").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(h.call("/test.Svc/Fail", "k").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(svc.fail_runs.load(), 2);

  auto stats = h.server->cache_stats();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].first, "/test.Svc/Echo");
  EXPECT_EQ(stats[0].second.hits, 2u);
  EXPECT_EQ(stats[0].second.misses, 3u);
  EXPECT_EQ(stats[0].second.expirations, 1u);
  EXPECT_EQ(stats[0].second.entries, 2u);
  EXPECT_EQ(stats[1].first, "/test.Svc/Fail");
  EXPECT_EQ(stats[1].second.hits, 0u);
  EXPECT_EQ(stats[1].second.entries, 0u);
  EXPECT_EQ(h.server->stats().cache_hits.load(), 2u);
}

TEST(RpcCache, BlockingCacheableMethodAndMaxEntries) {
  CountingService svc("test.Svc");
  MethodOptions mo;
  mo.blocking = true;
  mo.cacheable = true;
  mo.cache.max_entries = 1;
  mo.cache.ttl = std::chrono::hours(1);
  ASSERT_TRUE(svc.service.set_method_options("Echo", mo));
  Harness h({&svc.service});
  h.start();
  EXPECT_EQ(*h.call("/test.Svc/Echo", "a"), "echo:a");
  EXPECT_EQ(*h.call("/test.Svc/Echo", "a"), "echo:a");
  EXPECT_EQ(svc.echo_runs.load(), 1);
  EXPECT_EQ(*h.call("/test.Svc/Echo", "b"), "echo:b");  // pushes "a" out
  EXPECT_EQ(*h.call("/test.Svc/Echo", "a"), "echo:a");
  EXPECT_EQ(svc.echo_runs.load(), 3);
  auto stats = h.server->cache_stats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].second.evictions, 2u);
  EXPECT_EQ(stats[0].second.entries, 1u);
}

TEST(RpcCache, CachedAnswersStillNeedToPassTheInterceptors) {
  AuthOptions ao;
  ao.tokens = {"t"};
  CountingService svc("test.Svc");
  ASSERT_TRUE(svc.service.set_cacheable("Echo", {}));
  Harness h({&svc.service}, {std::make_shared<AuthInterceptor>(ao)});
  h.start();
  ASSERT_TRUE(h.call("/test.Svc/Echo", "a", with("authorization", "Bearer t")).is_ok());
  EXPECT_EQ(h.call("/test.Svc/Echo", "a").status().code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(h.call("/test.Svc/Echo", "a", with("authorization", "Bearer t")).is_ok());
  EXPECT_EQ(svc.echo_runs.load(), 1);
  EXPECT_EQ(h.server->stats().cache_hits.load(), 1u);
}

// Adds a header of its own to every call.
class Stamp final : public ServerInterceptor {
 public:
  Status on_call_start(ServerCall& call) override {
    call.add_header("x-call", std::to_string(++calls));
    return Status();
  }
  std::atomic<int> calls{0};
};

TEST(RpcCache, HeadersAddedByInterceptorsAreNotReplayedFromTheCache) {
  CountingService svc("test.Svc");
  ASSERT_TRUE(svc.service.set_cacheable("Echo", {}));
  Harness h({&svc.service}, {std::make_shared<Stamp>()});
  h.start();
  for (const char* expect : {"1", "2"}) {
    BlockingCall call(*h.channel, "/test.Svc/Echo", {}, {"a"}, true);
    std::string m;
    ASSERT_TRUE(call.read(&m));
    ASSERT_TRUE(call.finish().is_ok());
    const Metadata headers = call.headers();
    EXPECT_EQ(find_metadata(headers, "x-call"), expect);
    EXPECT_EQ(std::count_if(headers.begin(), headers.end(), [](const auto& kv) { return kv.first == "x-call"; }), 1);
    EXPECT_EQ(find_metadata(headers, "h"), "1");  // the handler's, replayed
  }
  EXPECT_EQ(svc.echo_runs.load(), 1);
}

TEST(RpcCache, VaryMetadataKeepsCallersApart) {
  CountingService svc("test.Svc");
  CacheOptions co;
  co.vary_metadata = {"who"};
  ASSERT_TRUE(svc.service.set_cacheable("Echo", co));
  EXPECT_FALSE(svc.service.set_cacheable("Nope", co));
  Harness h({&svc.service});
  h.start();
  ASSERT_TRUE(h.call("/test.Svc/Echo", "a", with("who", "alice")).is_ok());
  ASSERT_TRUE(h.call("/test.Svc/Echo", "a", with("who", "bob")).is_ok());
  ASSERT_TRUE(h.call("/test.Svc/Echo", "a", with("who", "alice")).is_ok());
  EXPECT_EQ(svc.echo_runs.load(), 2);
}

// ---- Metrics --------------------------------------------------------------------------------

TEST(RpcMetrics, CountsCallsPerMethodAndCodeWithLatencies) {
  auto metrics = std::make_shared<MetricsInterceptor>();
  AuthOptions ao;
  ao.tokens = {"t"};
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {metrics, std::make_shared<AuthInterceptor>(ao)});
  h.start();
  const CallOptions authed = with("authorization", "Bearer t");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h.call("/test.Svc/Echo", "x", authed).is_ok());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(h.call("/test.Svc/Fail", "x", authed).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(h.call("/test.Svc/Echo", "x").status().code(), StatusCode::kUnauthenticated);

  std::vector<MethodCallStats> snap;
  ASSERT_TRUE(eventually([&] {
    snap = metrics->snapshot();
    std::uint64_t n = 0;
    for (const auto& s : snap) n += s.calls;
    return n == 6;
  }));
  ASSERT_EQ(snap.size(), 2u);  // Other was never called
  const MethodCallStats& echo = snap[0];
  EXPECT_EQ(echo.method, "/test.Svc/Echo");
  EXPECT_EQ(echo.calls, 4u);
  EXPECT_EQ(echo.errors, 1u);
  EXPECT_EQ(echo.by_code[static_cast<int>(StatusCode::kOk)], 3u);
  EXPECT_EQ(echo.by_code[static_cast<int>(StatusCode::kUnauthenticated)], 1u);
  EXPECT_EQ(echo.latency_ns.count(), 4u);
  const MethodCallStats& fail = snap[1];
  EXPECT_EQ(fail.method, "/test.Svc/Fail");
  EXPECT_EQ(fail.calls, 2u);
  EXPECT_EQ(fail.errors, 2u);
  EXPECT_EQ(fail.by_code[static_cast<int>(StatusCode::kNotFound)], 2u);
  EXPECT_EQ(metrics->snapshot(true).size(), 3u);

  const std::string table = MetricsInterceptor::format_table(snap);
  EXPECT_EQ(table.rfind("method", 0), 0u) << table;
  EXPECT_NE(table.find("p99.9"), std::string::npos);
  EXPECT_NE(table.find("/test.Svc/Echo"), std::string::npos);

  std::vector<obs::Family> families;
  obs::collect_rpc_server_metrics(snap, families);
  obs::collect_rpc_cache_metrics(h.server->cache_stats(), families);
  const std::string text = obs::render_prometheus(families);
  EXPECT_NE(text.find("# TYPE slip_rpc_server_calls_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("slip_rpc_server_calls_total{method=\"/test.Svc/Echo\",code=\"OK\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("slip_rpc_server_calls_total{method=\"/test.Svc/Echo\",code=\"UNAUTHENTICATED\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("slip_rpc_server_calls_total{method=\"/test.Svc/Fail\",code=\"NOT_FOUND\"} 2\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE slip_rpc_server_latency_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("slip_rpc_server_latency_seconds_count{method=\"/test.Svc/Echo\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("slip_rpc_server_latency_seconds_bucket{method=\"/test.Svc/Fail\",le=\"+Inf\"} 2\n"),
            std::string::npos);
}

// ---- Logging --------------------------------------------------------------------------------

TEST(RpcLogging, OneLinePerCallWithMethodStatusDurationAndPeer) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  spdlog::logger log("rpc-test", sink);
  log.set_level(spdlog::level::info);
  log.set_pattern("%l %v");
  LoggingOptions lo;
  lo.logger = &log;
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {std::make_shared<LoggingInterceptor>(lo)});
  h.start();
  ASSERT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_EQ(h.call("/test.Svc/Fail", "x").status().code(), StatusCode::kNotFound);
  std::vector<std::string> lines;
  ASSERT_TRUE(eventually([&] {
    lines = sink->last_formatted();
    return lines.size() == 2;
  }));
  EXPECT_EQ(lines[0].rfind("info rpc /test.Svc/Echo OK ", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("us peer=127.0.0.1:"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find(" conn="), std::string::npos) << lines[0];
  EXPECT_EQ(lines[1].rfind("warning rpc /test.Svc/Fail NOT_FOUND ", 0), 0u) << lines[1];
  EXPECT_NE(lines[1].find(": no such key"), std::string::npos) << lines[1];
}

TEST(RpcLogging, LinesBelowTheLoggersLevelAreNotWritten) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  spdlog::logger log("rpc-test", sink);
  log.set_level(spdlog::level::info);
  log.set_pattern("%l %v");
  LoggingOptions lo;
  lo.logger = &log;
  lo.level = spdlog::level::debug;  // OK calls at debug: below the logger's level
  auto metrics = std::make_shared<MetricsInterceptor>();
  CountingService svc("test.Svc");
  Harness h({&svc.service}, {metrics, std::make_shared<LoggingInterceptor>(lo)});
  h.start();
  ASSERT_TRUE(h.call("/test.Svc/Echo", "x").is_ok());
  EXPECT_EQ(h.call("/test.Svc/Fail", "x").status().code(), StatusCode::kNotFound);
  // The metrics interceptor comes first, so its end runs after the logger's: once it counted
  // both calls, the logger has seen them too.
  ASSERT_TRUE(eventually([&] {
    auto s = metrics->snapshot();
    return s.size() == 2;
  }));
  std::vector<std::string> lines = sink->last_formatted();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("warning rpc /test.Svc/Fail NOT_FOUND", 0), 0u) << lines[0];
}

}  // namespace
}  // namespace slip::rpc
