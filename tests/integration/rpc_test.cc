// The codec-agnostic RPC core over real TCP on 127.0.0.1, server and channel in one process:
// the four call kinds, status codes, metadata, deadlines, cancellation and shutdown. Every
// assertion is about codes, messages and counts, never time.
// g++ 12 reports a false -Wrestrict inside std::string's operator+ at -O3 (GCC bug 105329).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "eventually.h"
#include "io/event_loop.h"
#include "rpc/blocking.h"
#include "rpc/server.h"

namespace slip::rpc {
namespace {

using test::eventually;

// A test service with one method of each kind and some that misbehave.
struct TestService {
  Service service{"test.Echo"};
  std::atomic<int> slow_cancelled{0};
  std::atomic<StatusCode> slow_cancel_code{StatusCode::kOk};
  std::atomic<int> slow_started{0};
  std::atomic<int> blocking_saw_cancel{0};
  std::atomic<int> bytes_calls{0};
  std::promise<void> release_drain;
  std::shared_future<void> drain_released{release_drain.get_future().share()};

  TestService() {
    service.add_method({"Unary", MethodKind::kUnary,
                        [](const ServerCallPtr& c, std::string req) {
                          c->add_header("h", "1");
                          c->add_trailer("t", std::string(find_metadata(c->metadata(), "who")));
                          c->finish(Status(), "echo:" + req);
                        },
                        {},
                        {}});
    service.add_method({"Fail", MethodKind::kUnary,
                        [](const ServerCallPtr& c, std::string) { c->finish(not_found("no such key")); }, {}, {}});
    service.add_method({"Throw", MethodKind::kUnary,
                        [](const ServerCallPtr&, std::string) -> void { throw std::runtime_error("boom"); }, {}, {}});
    service.add_method({"List", MethodKind::kServerStreaming,
                        [](const ServerCallPtr& c, std::string req) {
                          const int n = std::stoi(req);
                          for (int i = 0; i < n; ++i) c->write(std::to_string(i));
                          c->finish(Status());
                        },
                        {},
                        {}});
    service.add_method({"Sum", MethodKind::kClientStreaming, {},
                        [](const ServerCallPtr& c) {
                          auto sum = std::make_shared<long>(0);
                          c->on_read([sum](std::string m) { *sum += std::stol(m); },
                                     [c, sum] { c->finish(Status(), std::to_string(*sum)); });
                        },
                        {}});
    service.add_method({"Chat", MethodKind::kBidiStreaming, {},
                        [](const ServerCallPtr& c) {
                          c->on_read([c](std::string m) { c->write("re:" + m); }, [c] { c->finish(Status()); });
                        },
                        {}});
    // Never finishes by itself: records the cancellation it sees.
    service.add_method({"Slow", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string) {
                          ++slow_started;
                          c->on_cancel([this, c] {
                            slow_cancel_code = c->cancel_code();
                            ++slow_cancelled;
                          });
                        },
                        {},
                        {}});
    // Blocks its worker thread until the call is cancelled.
    service.add_method({"BlockingSlow", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string) {
                          ++slow_started;
                          while (!c->cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
                          ++blocking_saw_cancel;
                          c->finish(cancelled("gave up"));
                        },
                        {},
                        MethodOptions{true, 0}});
    // Finishes only when the test says so (shutdown drain).
    service.add_method({"Held", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string req) {
                          ++slow_started;
                          drain_released.wait();
                          c->finish(Status(), "done:" + req);
                        },
                        {},
                        MethodOptions{true, 0}});
    // Take the request as received (on_request_bytes), on the loop and on a worker: answer
    // "bytes:<size>:" and the request, and count the calls.
    for (bool blocking : {false, true}) {
      service.add_method({blocking ? "BlockingBytes" : "Bytes", MethodKind::kUnary, {}, {},
                          MethodOptions{blocking, 0},
                          [this](const ServerCallPtr& c, Slice req) {
                            ++bytes_calls;
                            std::string out = "bytes:" + std::to_string(req.size()) + ":";
                            out.append(req.as_string_view());
                            c->finish(Status(), std::move(out));
                          }});
    }
    service.add_method({"Limited", MethodKind::kUnary,
                        [this](const ServerCallPtr& c, std::string) {
                          ++slow_started;
                          drain_released.wait();
                          c->finish(Status(), "ok");
                        },
                        {},
                        MethodOptions{true, 1}});
  }
};

// Every RpcTest runs over TCP and over encrypted reliable UDP ("udp://" addresses).
class RpcTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.workers = 4;
    ChannelOptions co;
    if (GetParam() == "udp") {
      o.listen = "udp://127.0.0.1:0";
      o.udp.static_key = transport::udp::KeyPair::generate();
      co.udp.server_key = o.udp.static_key.public_key;
    }
    server_ = std::make_unique<Server>(o);
    server_->add_service(svc_.service);
    ASSERT_TRUE(server_->start().is_ok());
    if (GetParam() == "udp") {
      ASSERT_EQ(server_->address().rfind("udp://127.0.0.1:", 0), 0u) << server_->address();
    }
    channel_ = std::make_unique<Channel>(server_->address(), co);
  }
  void TearDown() override {
    svc_.release_drain.set_value();
    channel_.reset();
    server_.reset();
  }

  TestService svc_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Channel> channel_;
};

TEST_P(RpcTest, UnaryCallReturnsResponseHeadersAndTrailers) {
  CallOptions o;
  o.metadata.emplace_back("who", "alice");
  BlockingCall call(*channel_, "/test.Echo/Unary", o, {"hi"}, true);
  std::string resp;
  ASSERT_TRUE(call.read(&resp));
  EXPECT_EQ(resp, "echo:hi");
  Status s = call.finish();
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(find_metadata(call.headers(), "h"), "1");
  EXPECT_EQ(find_metadata(call.trailers(), "t"), "alice");
}

TEST_P(RpcTest, ManyUnaryCallsOnOneChannel) {
  for (int i = 0; i < 200; ++i) {
    Result<std::string> r = call_unary(*channel_, "/test.Echo/Unary", std::to_string(i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r, "echo:" + std::to_string(i));
  }
  EXPECT_TRUE(eventually([&] { return server_->calls_in_flight() == 0; }));
}

// A request of `size` bytes that differ from one offset to the next.
std::string patterned(std::size_t size, char seed) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>(seed + static_cast<char>(i % 251));
  return s;
}

TEST_P(RpcTest, RequestBytesHandlersGetTheWholeRequestOnTheLoopAndOnAWorker) {
  // Small, one chunk, and one of several chunks (chunk_size is 16 KiB) that arrives over
  // several reads and is gathered before the handler sees it.
  for (const char* method : {"/test.Echo/Bytes", "/test.Echo/BlockingBytes"}) {
    for (std::size_t size : {std::size_t{1}, std::size_t{1000}, std::size_t{200000}}) {
      const std::string req = patterned(size, 'a');
      Result<std::string> r = call_unary(*channel_, method, req);
      ASSERT_TRUE(r.is_ok()) << method << " " << size << ": " << r.status().to_string();
      std::string expected = "bytes:" + std::to_string(size) + ":";
      expected.append(req);
      EXPECT_TRUE(*r == expected) << method << " " << size;
    }
  }
  EXPECT_EQ(svc_.bytes_calls.load(), 6);
}

// Runs a call with both message callbacks set and returns what on_message_bytes got; on_message
// must not be called.
struct BytesCallResult {
  Status status;
  std::vector<std::string> messages;
  int string_callbacks = 0;
};
BytesCallResult call_with_bytes_callback(ChannelInterface& ch, const std::string& method, std::string request) {
  auto r = std::make_shared<BytesCallResult>();
  std::promise<void> done;
  CallCallbacks cb;
  cb.on_message = [r](std::string) { ++r->string_callbacks; };
  cb.on_message_bytes = [r](Slice m) { r->messages.push_back(m.to_string()); };
  cb.on_done = [r, &done](const Status& st, const Metadata&) {
    r->status = st;
    done.set_value();
  };
  CallOptions o;
  o.timeout = std::chrono::seconds(30);
  ch.start_call(method, o, std::move(cb), {std::move(request)}, true);
  done.get_future().wait();
  return *r;
}

TEST_P(RpcTest, OnMessageBytesGetsEveryResponseInsteadOfOnMessage) {
  BytesCallResult list = call_with_bytes_callback(*channel_, "/test.Echo/List", "5");
  EXPECT_TRUE(list.status.is_ok()) << list.status.to_string();
  EXPECT_EQ(list.messages, (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  EXPECT_EQ(list.string_callbacks, 0);
  // A response of many chunks (the server adopts it into its send buffers), delivered whole.
  const std::string big = patterned(300000, 'k');
  BytesCallResult echo = call_with_bytes_callback(*channel_, "/test.Echo/Unary", big);
  EXPECT_TRUE(echo.status.is_ok()) << echo.status.to_string();
  ASSERT_EQ(echo.messages.size(), 1u);
  EXPECT_TRUE(echo.messages[0] == "echo:" + big);
  EXPECT_EQ(echo.string_callbacks, 0);
}

TEST_P(RpcTest, HandlerStatusReachesTheCaller) {
  Result<std::string> r = call_unary(*channel_, "/test.Echo/Fail", "x");
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "no such key");
}

TEST_P(RpcTest, UnknownMethodOrServiceIsUnimplemented) {
  Result<std::string> r = call_unary(*channel_, "/test.Echo/Nope", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  r = call_unary(*channel_, "/no.Such/Unary", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(server_->stats().unimplemented.load(), 2u);
  // The connection is still good.
  EXPECT_TRUE(call_unary(*channel_, "/test.Echo/Unary", "y").is_ok());
}

TEST_P(RpcTest, HandlerExceptionBecomesInternalAndServerLivesOn) {
  Result<std::string> r = call_unary(*channel_, "/test.Echo/Throw", "x");
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("boom"), std::string_view::npos);
  EXPECT_EQ(server_->stats().handler_exceptions.load(), 1u);
  Result<std::string> ok = call_unary(*channel_, "/test.Echo/Unary", "after");
  ASSERT_TRUE(ok.is_ok());
  EXPECT_EQ(*ok, "echo:after");
}

TEST_P(RpcTest, ServerStreamingDeliversEveryMessageInOrder) {
  BlockingCall call(*channel_, "/test.Echo/List", {}, {"100"}, true);
  std::string m;
  int i = 0;
  while (call.read(&m)) {
    EXPECT_EQ(m, std::to_string(i));
    ++i;
  }
  EXPECT_EQ(i, 100);
  EXPECT_TRUE(call.finish().is_ok());
}

// A handler that writes faster than its stream can hold: either every message arrives, or the
// call ends with RESOURCE_EXHAUSTED after an in-order prefix and the overflow is counted; never
// OK with messages missing.
TEST(RpcServerOverflow, ResponsesPastTheStreamBufferEndTheCallInsteadOfVanishing) {
  constexpr int kMessages = 20000;
  Service svc("test.Flood");
  svc.add_method({"Flood", MethodKind::kServerStreaming,
                  [](const ServerCallPtr& c, std::string) {
                    for (int i = 0; i < kMessages; ++i) {
                      std::string m = std::to_string(i);
                      m.resize(1024, '.');
                      c->write(std::move(m));
                    }
                    c->finish(Status());
                  },
                  {},
                  MethodOptions{true, 0}});  // on a worker: writes outrun the loop
  ServerOptions o;
  o.session.max_stream_buffer = 64 * 1024;
  Server server(o);
  server.add_service(svc);
  ASSERT_TRUE(server.start().is_ok());
  Channel channel(server.address());
  BlockingCall call(channel, "/test.Flood/Flood", {}, {""}, true);
  std::string m;
  int i = 0;
  while (call.read(&m)) {
    ASSERT_EQ(std::stoi(m), i);
    ++i;
  }
  const Status st = call.finish();
  if (st.is_ok()) {
    EXPECT_EQ(i, kMessages);
    EXPECT_EQ(server.stats().response_overflows.load(), 0u);
  } else {
    EXPECT_EQ(st.code(), StatusCode::kOverloaded) << st.to_string();
    EXPECT_NE(st.message().find("response stream overflow"), std::string::npos) << st.to_string();
    EXPECT_LT(i, kMessages);
    EXPECT_EQ(server.stats().response_overflows.load(), 1u);
  }
}

TEST_P(RpcTest, ClientStreamingSumsEveryRequest) {
  BlockingCall call(*channel_, "/test.Echo/Sum", {});
  for (int i = 1; i <= 100; ++i) ASSERT_TRUE(call.write(std::to_string(i)));
  call.writes_done();
  std::string m;
  ASSERT_TRUE(call.read(&m));
  EXPECT_EQ(m, "5050");
  EXPECT_TRUE(call.finish().is_ok());
}

TEST_P(RpcTest, BidiStreamingAnswersEachMessage) {
  BlockingCall call(*channel_, "/test.Echo/Chat", {});
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(call.write("m" + std::to_string(i)));
    std::string m;
    ASSERT_TRUE(call.read(&m));
    EXPECT_EQ(m, "re:m" + std::to_string(i));
  }
  call.writes_done();
  std::string m;
  EXPECT_FALSE(call.read(&m));
  EXPECT_TRUE(call.finish().is_ok());
}

TEST_P(RpcTest, DeadlineExceededReachesCallerAndHandlerSeesCancellation) {
  CallOptions o;
  o.timeout = std::chrono::milliseconds(50);
  Result<std::string> r = call_unary(*channel_, "/test.Echo/Slow", "x", o);
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
  ASSERT_TRUE(eventually([&] { return svc_.slow_cancelled.load() == 1; }));
  EXPECT_EQ(svc_.slow_cancel_code.load(), StatusCode::kTimeout);
  EXPECT_TRUE(eventually([&] { return server_->calls_in_flight() == 0; }));
}

TEST_P(RpcTest, BlockingHandlerOnWorkerSeesDeadline) {
  CallOptions o;
  o.timeout = std::chrono::milliseconds(50);
  Result<std::string> r = call_unary(*channel_, "/test.Echo/BlockingSlow", "x", o);
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
  ASSERT_TRUE(eventually([&] { return svc_.blocking_saw_cancel.load() == 1; }));
}

TEST_P(RpcTest, ClientCancelPropagatesToHandler) {
  BlockingCall call(*channel_, "/test.Echo/Slow", {}, {"x"}, true);
  ASSERT_TRUE(eventually([&] { return svc_.slow_started.load() == 1; }));
  call.cancel();
  EXPECT_EQ(call.finish().code(), StatusCode::kCancelled);
  ASSERT_TRUE(eventually([&] { return svc_.slow_cancelled.load() == 1; }));
  EXPECT_EQ(svc_.slow_cancel_code.load(), StatusCode::kCancelled);
  EXPECT_TRUE(eventually([&] { return server_->calls_in_flight() == 0; }));
  EXPECT_TRUE(call_unary(*channel_, "/test.Echo/Unary", "y").is_ok());
}

TEST_P(RpcTest, ConcurrencyLimitRejectsWithResourceExhausted) {
  BlockingCall first(*channel_, "/test.Echo/Limited", {}, {"a"}, true);
  ASSERT_TRUE(eventually([&] { return svc_.slow_started.load() == 1; }));
  Result<std::string> r = call_unary(*channel_, "/test.Echo/Limited", "b");
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
  EXPECT_EQ(server_->stats().over_concurrency.load(), 1u);
  svc_.release_drain.set_value();
  EXPECT_TRUE(first.finish().is_ok());
  svc_.release_drain = std::promise<void>();  // TearDown sets it again
}

TEST_P(RpcTest, ShutdownFinishesCallsInFlight) {
  BlockingCall call(*channel_, "/test.Echo/Held", {}, {"z"}, true);
  ASSERT_TRUE(eventually([&] { return svc_.slow_started.load() == 1; }));
  std::thread stopper([&] { server_->shutdown(); });
  // The server is draining: the call in flight still completes.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  svc_.release_drain.set_value();
  std::string m;
  ASSERT_TRUE(call.read(&m));
  EXPECT_EQ(m, "done:z");
  EXPECT_TRUE(call.finish().is_ok());
  stopper.join();
  svc_.release_drain = std::promise<void>();
}

INSTANTIATE_TEST_SUITE_P(Transports, RpcTest, ::testing::Values("tcp", "udp"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// ---- Blocking calls that run the channel's loop on the calling thread ----------------------

TEST_P(RpcTest, BlockingUnaryCallsRunTheLoopOnTheCallingThread) {
  const std::uint64_t before = channel_->loop().loans();
  for (int i = 0; i < 100; ++i) {
    Result<std::string> r = call_unary(*channel_, "/test.Echo/Unary", std::to_string(i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r, "echo:" + std::to_string(i));
  }
  // One thread calling: every call borrowed the loop.
  EXPECT_EQ(channel_->loop().loans() - before, 100u);
}

TEST(RpcBlockingChannel, WithoutLendingCallsAreHandedToTheLoopThread) {
  TestService svc;
  Server server;
  server.add_service(svc.service);
  ASSERT_TRUE(server.start().is_ok());
  ChannelOptions co;
  co.lend_loop = false;
  Channel channel(server.address(), co);
  for (int i = 0; i < 50; ++i) {
    Result<std::string> r = call_unary(channel, "/test.Echo/Unary", std::to_string(i));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r, "echo:" + std::to_string(i));
  }
  EXPECT_EQ(channel.loop().loans(), 0u);
  svc.release_drain.set_value();
}

TEST_P(RpcTest, ConcurrentBlockingCallersOnOneChannelAllGetTheirOwnAnswers) {
  constexpr int kThreads = 8;
  constexpr int kCalls = 1000;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string req = std::to_string(t) + "-" + std::to_string(i);
        Result<std::string> r = call_unary(*channel_, "/test.Echo/Unary", req);
        if (!r.is_ok()) {
          ++failed;
        } else if (*r != "echo:" + req) {
          ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(server_->stats().calls.load(), std::uint64_t{kThreads} * kCalls);
  EXPECT_GT(channel_->loop().loans(), 0u);
  EXPECT_TRUE(eventually([&] { return server_->calls_in_flight() == 0; }));
}

// Another thread runs the loop (it waits for a call of its own): the second caller's deadline
// still ends its call, and so does the first's.
TEST_P(RpcTest, DeadlinesApplyWhileAnotherThreadRunsTheLoop) {
  std::promise<Status> first;
  std::thread a([&] {
    CallOptions o;
    o.timeout = std::chrono::milliseconds(400);
    first.set_value(call_unary(*channel_, "/test.Echo/Slow", "a", o).status());
  });
  ASSERT_TRUE(eventually([&] { return svc_.slow_started.load() == 1; }));
  CallOptions o;
  o.timeout = std::chrono::milliseconds(30);
  EXPECT_EQ(call_unary(*channel_, "/test.Echo/Slow", "b", o).status().code(), StatusCode::kTimeout);
  EXPECT_EQ(first.get_future().get().code(), StatusCode::kTimeout);
  a.join();
  EXPECT_TRUE(eventually([&] { return svc_.slow_cancelled.load() == 2; }));
}

TEST_P(RpcTest, CancelFromAnotherThreadEndsACallWhoseCallerRunsTheLoop) {
  BlockingCall call(*channel_, "/test.Echo/Slow", {}, {"x"}, true);
  std::promise<Status> ended;
  std::thread waiter([&] { ended.set_value(call.finish()); });
  ASSERT_TRUE(eventually([&] { return svc_.slow_started.load() == 1; }));
  call.cancel();
  EXPECT_EQ(ended.get_future().get().code(), StatusCode::kCancelled);
  waiter.join();
  ASSERT_TRUE(eventually([&] { return svc_.slow_cancelled.load() == 1; }));
  EXPECT_EQ(svc_.slow_cancel_code.load(), StatusCode::kCancelled);
  EXPECT_TRUE(call_unary(*channel_, "/test.Echo/Unary", "y").is_ok());
}

// ---- Server-streaming flow control --------------------------------------------------------

// Message i of a pour: its number, then filler that depends on it.
std::string pour_message(std::size_t i, std::size_t size) {
  std::string m = std::to_string(i) + ":";
  m.resize(size, static_cast<char>('a' + i % 26));
  return m;
}

bool is_pour_message(const std::string& m, std::size_t i, std::size_t size) { return m == pour_message(i, size); }

// What a LoopWriter did, read by the test thread.
struct LoopWriterCounters {
  std::atomic<std::size_t> written{0};  // messages written so far
  std::atomic<int> deferred{0};         // when_writable() calls that found no room
  std::atomic<int> resumed{0};          // their callbacks
  std::atomic<bool> waiting{false};     // a when_writable() callback is pending now
};

// A server-streaming handler on the connection's loop, which must not block: writes pour
// messages while the call's window has room for one, then continues from when_writable() when
// there is room for one again.
class LoopWriter : public std::enable_shared_from_this<LoopWriter> {
 public:
  LoopWriter(ServerCallPtr call, std::size_t total, std::size_t size, LoopWriterCounters& counters)
      : call_(std::move(call)), total_(total), size_(size), counters_(counters) {}

  void run() {
    while (next_ < total_ && call_->can_write(size_)) {
      if (!call_->write(pour_message(next_, size_))) return;  // the call ended
      counters_.written.store(++next_);
    }
    if (next_ == total_) {
      call_->finish(Status());
      return;
    }
    if (call_->finished()) return;
    counters_.deferred.fetch_add(1);
    counters_.waiting.store(true);
    call_->when_writable(
        [self = shared_from_this()] {
          self->counters_.waiting.store(false);
          self->counters_.resumed.fetch_add(1);
          self->run();
        },
        size_);
  }

 private:
  ServerCallPtr call_;
  std::size_t next_ = 0;
  std::size_t total_;
  std::size_t size_;
  LoopWriterCounters& counters_;
};

class RpcBackpressure : public ::testing::Test {
 protected:
  static constexpr std::size_t kWindow = 256 * 1024;
  static constexpr std::size_t kSize = 64 * 1024;
  static constexpr std::size_t kBigSize = 160 * 1024;  // more than half the window

  // compression = false: responses go raw, so that the window holds their full size (these
  // repetitive messages compress to a few hundred bytes each).
  void start(bool compression = true) {
    // The same on the loop: no waiting, when_writable() instead.
    svc_.add_method({"LoopPour", MethodKind::kServerStreaming,
                     [this](const ServerCallPtr& c, std::string req) {
                       std::make_shared<LoopWriter>(c, std::stoul(req), kSize, loop_writer_)->run();
                     },
                     {},
                     {}});
    svc_.add_method({"LoopPourBig", MethodKind::kServerStreaming,
                     [this](const ServerCallPtr& c, std::string req) {
                       std::make_shared<LoopWriter>(c, std::stoul(req), kBigSize, loop_writer_)->run();
                     },
                     {},
                     {}});
    // A blocking handler: write_wait() holds it while the reader does not read.
    svc_.add_method({"Pour", MethodKind::kServerStreaming,
                     [](const ServerCallPtr& c, std::string req) {
                       const std::size_t n = std::stoul(req);
                       for (std::size_t i = 0; i < n; ++i) {
                         if (!c->write_wait(pour_message(i, kSize))) return;
                       }
                       c->finish(Status());
                     },
                     {},
                     MethodOptions{true, 0}});
    ServerOptions o;
    o.session.max_stream_buffer = kWindow;
    if (!compression) o.session.compression.codecs = 0;
    server_ = std::make_unique<Server>(o);
    server_->add_service(svc_);
    ASSERT_TRUE(server_->start().is_ok());
    channel_ = std::make_unique<Channel>(server_->address());
  }

  Service svc_{"test.Big"};
  LoopWriterCounters loop_writer_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Channel> channel_;
};

// 25 MiB (100 windows) to a reader that reads nothing until the writer is held back, then reads
// the rest: every message arrives in order, nothing overflows, and the server never queues more
// than the window. (One pause: after it, what is left may fit the buffers between the two.)
TEST_F(RpcBackpressure, FastWriterWaitsForAPausingReaderAndLosesNothing) {
  start(false);  // raw: the reader's credit holds the writer back, however the loop batches
  constexpr std::size_t kMessages = 400;  // x 64 KiB
  BlockingCall call(*channel_, "/test.Big/Pour", {}, {std::to_string(kMessages)}, true);
  std::size_t got = 0;
  std::string m;
  ASSERT_TRUE(eventually([&] {
    return server_->stats().writers_waiting.load() == 1 && server_->stats().write_waits.load() > 0;
  }));
  for (; got < kMessages && call.read(&m); ++got) {
    ASSERT_TRUE(is_pour_message(m, got, kSize)) << "message " << got;
  }
  EXPECT_FALSE(call.read(&m));
  EXPECT_EQ(got, kMessages);
  const Status st = call.finish();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(server_->stats().response_overflows.load(), 0u);
  EXPECT_GT(server_->stats().response_queued_max.load(), 0u);
  EXPECT_LE(server_->stats().response_queued_max.load(), kWindow);
}

// The same with a handler on the server's loop (LoopWriter: can_write(), then when_writable())
// and a reader that pauses: paused from the start, then it reads, pauses itself after 25 and
// after 50 messages, and each time goes on once the server's writer is held back. 6.4 MiB, 25
// windows: the writer waits on every pause (what it may send ahead of the reader is the stream's
// credit plus the window, ~8 messages), every message arrives in order, nothing overflows and
// the call ends OK.
TEST_F(RpcBackpressure, LoopWriterContinuesFromWhenWritableAfterEachPause) {
  start(false);
  constexpr std::size_t kMessages = 100;  // x 64 KiB
  constexpr std::size_t kPauseEvery = 25;
  constexpr int kSelfPauses = 2;
  // Shared with the callbacks, which may outlive this function when an assertion fails.
  struct Reader {
    std::mutex mu;
    std::vector<std::string> got;
    std::atomic<std::size_t> received{0};
    std::atomic<int> self_paused{0};
    std::promise<Status> ended;
    CallPtr call;
  };
  auto r = std::make_shared<Reader>();
  std::future<Status> ended = r->ended.get_future();
  CallCallbacks cb;
  cb.on_message = [r](std::string m) {
    std::size_t n;
    {
      std::lock_guard lock(r->mu);
      r->got.push_back(std::move(m));
      n = r->got.size();
    }
    r->received.store(n);
    if (n % kPauseEvery == 0 && n <= kPauseEvery * kSelfPauses) {
      r->call->set_read_paused(true);
      r->self_paused.fetch_add(1);
    }
  };
  cb.on_done = [r](const Status& st, const Metadata&) { r->ended.set_value(st); };
  r->call = channel_->start_call("/test.Big/LoopPour", {}, std::move(cb), {std::to_string(kMessages)}, true);
  r->call->set_read_paused(true);  // runs on the channel's loop before the request is even sent

  // The handler ran out of window and waits in when_writable(); the reader has nothing yet.
  ASSERT_TRUE(eventually([&] { return loop_writer_.waiting.load(); }))
      << "written " << loop_writer_.written.load() << ", deferred " << loop_writer_.deferred.load();
  EXPECT_EQ(r->received.load(), 0u);
  EXPECT_LT(loop_writer_.written.load(), kMessages);
  for (int pause = 1; pause <= kSelfPauses; ++pause) {
    r->call->set_read_paused(false);
    ASSERT_TRUE(eventually([&] { return r->self_paused.load() == pause; })) << "pause " << pause;
    ASSERT_TRUE(eventually([&] { return loop_writer_.waiting.load(); })) << "pause " << pause;
    EXPECT_LT(loop_writer_.written.load(), kMessages) << "pause " << pause;
  }
  r->call->set_read_paused(false);

  ASSERT_TRUE(eventually([&] { return ended.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }))
      << "received " << r->received.load() << ", written " << loop_writer_.written.load();
  const Status st = ended.get();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  {
    std::lock_guard lock(r->mu);
    ASSERT_EQ(r->got.size(), kMessages);
    for (std::size_t i = 0; i < kMessages; ++i) ASSERT_TRUE(is_pour_message(r->got[i], i, kSize)) << "message " << i;
  }
  r->call.reset();
  EXPECT_EQ(loop_writer_.written.load(), kMessages);
  EXPECT_GE(loop_writer_.deferred.load(), 1);
  EXPECT_EQ(loop_writer_.resumed.load(), loop_writer_.deferred.load());
  EXPECT_GT(server_->stats().write_waits.load(), 0u);
  EXPECT_EQ(server_->stats().response_overflows.load(), 0u);
  EXPECT_GT(server_->stats().response_queued_max.load(), 0u);
  EXPECT_LE(server_->stats().response_queued_max.load(), kWindow);
}

// Messages of more than half the window: when_writable(fn, size) waits until one fits (not just
// until half the window is free, when it still would not), so the writer neither spins nor
// overflows. The reader reads nothing until the writer is held back, then reads everything.
TEST_F(RpcBackpressure, LoopWriterOfMessagesOverHalfTheWindowWaitsUntilOneFits) {
  start(false);
  constexpr std::size_t kMessages = 40;  // x 160 KiB
  BlockingCall call(*channel_, "/test.Big/LoopPourBig", {}, {std::to_string(kMessages)}, true);
  ASSERT_TRUE(eventually([&] { return loop_writer_.waiting.load(); }))
      << "written " << loop_writer_.written.load() << ", deferred " << loop_writer_.deferred.load();
  EXPECT_LT(loop_writer_.written.load(), kMessages);
  std::size_t got = 0;
  std::string m;
  for (; got < kMessages && call.read(&m); ++got) {
    ASSERT_TRUE(is_pour_message(m, got, kBigSize)) << "message " << got;
  }
  EXPECT_FALSE(call.read(&m));
  EXPECT_EQ(got, kMessages);
  const Status st = call.finish();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(loop_writer_.resumed.load(), loop_writer_.deferred.load());
  EXPECT_EQ(server_->stats().response_overflows.load(), 0u);
  EXPECT_LE(server_->stats().response_queued_max.load(), kWindow);
}

// finish() without reading the rest drops it: a writer held back by the unread messages is let
// go and the call ends.
TEST_F(RpcBackpressure, FinishWithoutReadingLetsAHeldWriterComplete) {
  start(false);  // raw: the reader's credit holds the writer back, however the loop batches
  BlockingCall call(*channel_, "/test.Big/Pour", {}, {"400"}, true);
  ASSERT_TRUE(eventually([&] { return server_->stats().writers_waiting.load() == 1; }));
  const Status st = call.finish();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(server_->stats().response_overflows.load(), 0u);
}

// A writer held back by a reader that does not read is woken when the caller cancels.
TEST_F(RpcBackpressure, CancelWakesAHeldWriter) {
  start(false);  // raw: the reader's credit holds the writer back, however the loop batches
  BlockingCall call(*channel_, "/test.Big/Pour", {}, {"400"}, true);
  ASSERT_TRUE(eventually([&] { return server_->stats().writers_waiting.load() == 1; }));
  call.cancel();
  EXPECT_EQ(call.finish().code(), StatusCode::kCancelled);
  EXPECT_TRUE(eventually([&] { return server_->stats().writers_waiting.load() == 0; }));
  EXPECT_TRUE(eventually([&] { return server_->calls_in_flight() == 0; }));
}

TEST(RpcServerless, CallWithDeadlineAndNoServerEndsWithDeadlineExceeded) {
  ChannelOptions co;
  Channel ch("127.0.0.1:1", co);  // nothing listens there
  CallOptions o;
  o.timeout = std::chrono::milliseconds(30);
  Result<std::string> r = call_unary(ch, "/test.Echo/Unary", "x", o);
  EXPECT_EQ(r.status().code(), StatusCode::kTimeout);
}

}  // namespace
}  // namespace slip::rpc
