// RPC benchmark: Slipstream RPC against gRPC C++ (Debian's 1.51) on 127.0.0.1, same machine,
// same run, one service for both: bench/proto/echo.proto compiled with grpc_cpp_plugin
// (slipbench::EchoService) and with protoc-gen-slipstream (slipbench::slip::EchoService).
//
//   lat64     unary calls of 64 B, one outstanding, with each system's blocking stub (gRPC's
//             synchronous stub; Slipstream's generated Stub): p50/p99/p99.9 of every call
//   lat64hop  lat64 with Slipstream's blocking calls handed to the channel's loop thread and their
//             results back (ChannelOptions::lend_loop = false: how blocking calls worked before
//             they ran the loop themselves); gRPC as in lat64
//   lat64cb   the same with each system's asynchronous API (gRPC's CompletionQueue polled by
//             the calling thread; Slipstream's Channel callbacks on its loop)
//   tp64      unary calls of 64 B, 64 outstanding on one connection, asynchronous APIs: calls/s
//   tp1k      the same with 1 KB
//   stream64  server-streaming: each call answers with --stream-msgs messages of 64 B, calls one
//             after another: messages/s at the client (gRPC's synchronous ClientReader;
//             Slipstream's Channel callbacks)
//
// Every message is a protobuf Payload, serialized and parsed on both sides by both systems, and
// sent uncompressed by both: gRPC compresses nothing unless asked, and Slipstream's compressor is
// turned off here (SessionOptions::compression.codecs = 0, both processes), or the 1 KB payload
// of repeated bytes would go out LZ4-compressed (it is past the compressor's 256 B minimum), a
// different workload from gRPC's.
// Server and client are separate processes: this program execs itself in `serve` and `client`
// mode for each (run, workload, system), so every pair gets a fresh server and connection. The
// orchestrating parent starts no thread. Servers: gRPC's asynchronous server on one
// CompletionQueue drained by --server-threads threads (64 requests of each method posted ahead),
// and Slipstream's rpc::Server with --server-threads event loops, handlers on the loop. The
// idle strategy of Slipstream's loops (both processes) is a column of its own (--slip-idle);
// gRPC's threads block in epoll, its default and only setting.
//
// Tables give the median of --runs per-run figures; ratios are Slipstream / gRPC per run, then
// their median. CPU per call is each process's CPU time (user + system) over the calls it made
// or served, warm-up included.
//
// Run: scripts/bench-rpc.sh (make bench-rpc), or e.g.
//   build/release/bench/rpc_bench --runs 3 --workloads lat64,tp64
// Work per call (instructions, allocations) of one side: run the children by hand, the one to
// count under valgrind, with --idle block (a spinning loop would count its spins) and a fixed
// --calls (docs/benchmarks.md, "Work per 1 KB call"), e.g.
//   valgrind --tool=callgrind rpc_bench serve --system slip --idle block   (prints port=N)
//   rpc_bench client --system slip --port N --workload tp1k --idle block --calls 20000
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "child_process.h"
#include "core/clock.h"
#include "core/logging.h"
#include "echo.grpc.pb.h"
#include "echo.slip.h"
#include "latency_stats.h"
#include "rpc/channel.h"
#include "rpc/server.h"

namespace slip::bench {
namespace {

using slipbench::Payload;
using slipbench::StreamRequest;

constexpr std::chrono::seconds kChildLimit{600};
constexpr const char* kEchoMethod = "/slipbench.EchoService/Echo";
constexpr const char* kStreamMethod = "/slipbench.EchoService/Stream";

enum class Kind { kLatency, kLatencyAsync, kThroughput, kStream };

struct Workload {
  std::string name;
  Kind kind;
  std::size_t size;
  std::size_t outstanding;
  std::string title;
};

const std::vector<Workload>& all_workloads() {
  static const std::vector<Workload> w = {
      {"lat64", Kind::kLatency, 64, 1, "unary 64 B, 1 outstanding, blocking stubs (us)"},
      {"lat64hop", Kind::kLatency, 64, 1, "unary 64 B, 1 outstanding, blocking stubs, Slipstream's via the loop thread (us)"},
      {"lat64cb", Kind::kLatencyAsync, 64, 1, "unary 64 B, 1 outstanding, asynchronous APIs (us)"},
      {"tp64", Kind::kThroughput, 64, 64, "unary 64 B, 64 outstanding (calls/s)"},
      {"tp1k", Kind::kThroughput, 1024, 64, "unary 1 KB, 64 outstanding (calls/s)"},
      {"stream64", Kind::kStream, 64, 1, "server-streaming 64 B messages (msgs/s)"},
  };
  return w;
}

const Workload* find_workload(const std::string& name) {
  for (const auto& w : all_workloads()) {
    if (w.name == name) return &w;
  }
  return nullptr;
}

// What a client does; passed on its command line.
struct Plan {
  std::string workload;
  std::uint64_t lat_count = 20000;
  std::uint64_t lat_warmup = 2000;
  double seconds = 3;  // throughput: measured period
  double warmup_seconds = 0.5;
  // Throughput: stop once this many calls completed (no warm-up, rate over the whole run)
  // instead of after `seconds`; 0: by time. For counting work per call (under callgrind).
  std::uint64_t calls = 0;
  std::uint32_t stream_msgs = 10000;
  std::uint32_t stream_calls = 20;
};

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::string percentile_words(const Percentiles& p) {
  char b[200];
  std::snprintf(b, sizeof b, "min=%.3f p50=%.3f p99=%.3f p999=%.3f max=%.3f n=%zu", p.min, p.p50, p.p99, p.p999,
                p.max, p.n);
  return b;
}

// A child's one result line: "result key=value ...", on stdout (the parent's pipe).
void print_result(const std::string& words) {
  report(STDOUT_FILENO, "result " + words);
}

[[noreturn]] void fail(const std::string& why) {
  report(STDOUT_FILENO, "error " + why);
  std::fflush(stdout);
  ::_exit(1);
}

[[noreturn]] void exit_now(int rc) {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(rc);  // no destructors: loop and gRPC threads are still running
}

// Blocks SIGTERM in this thread and every thread started after it, so that wait_for_sigterm()
// receives it.
void block_sigterm() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void wait_for_sigterm() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  ::sigwait(&set, &sig);
}

// Reads the clock every `every` completions: a clock read costs ~200 ns on these VMs, more
// than a call's share of a batch.
class Phases {
 public:
  explicit Phases(const Plan& plan)
      : warm_end_ns_(mono_now_ns() + static_cast<std::int64_t>(plan.warmup_seconds * 1e9)),
        measure_ns_(static_cast<std::int64_t>(plan.seconds * 1e9)),
        limit_(plan.calls) {
    if (limit_ > 0) start_ns_ = mono_now_ns();
  }

  // After each completion; false once the measured period is over (issue no more calls).
  bool completed() {
    ++done_;
    if (limit_ > 0) {
      if (!over_ && done_ >= limit_) {
        end_ns_ = mono_now_ns();
        end_count_ = done_;
        over_ = true;
      }
      return !over_;
    }
    if (done_ % 32 != 0) return !over_;
    const std::int64_t now = mono_now_ns();
    if (start_ns_ == 0 && now >= warm_end_ns_) {
      start_ns_ = now;
      start_count_ = done_;
    } else if (start_ns_ != 0 && !over_ && now - start_ns_ >= measure_ns_) {
      end_ns_ = now;
      end_count_ = done_;
      over_ = true;
    }
    return !over_;
  }
  double rate() const {
    return end_ns_ > start_ns_ ? static_cast<double>(end_count_ - start_count_) * 1e9 /
                                     static_cast<double>(end_ns_ - start_ns_)
                               : 0;
  }
  std::uint64_t done() const { return done_; }

 private:
  std::int64_t warm_end_ns_;
  std::int64_t measure_ns_;
  std::int64_t start_ns_ = 0, end_ns_ = 0;
  std::uint64_t start_count_ = 0, end_count_ = 0, done_ = 0;
  std::uint64_t limit_ = 0;
  bool over_ = false;
};

// =============================================================================================
// gRPC C++
// =============================================================================================

// The asynchronous server (CompletionQueue): the API gRPC's own benchmarks use for throughput.
class GrpcServer {
 public:
  explicit GrpcServer(std::size_t threads) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    cq_ = b.AddCompletionQueue();
    server_ = b.BuildAndStart();
    if (!server_ || port_ == 0) fail("gRPC server did not start");
    for (int i = 0; i < 64; ++i) {
      new UnaryCall(*this);
      new StreamCall(*this);
    }
    for (std::size_t i = 0; i < threads; ++i) {
      threads_.emplace_back([this] {
        void* tag = nullptr;
        bool ok = false;
        while (cq_->Next(&tag, &ok)) static_cast<Tag*>(tag)->proceed(ok);
      });
    }
  }
  int port() const { return port_; }

 private:
  struct Tag {
    virtual ~Tag() = default;
    virtual void proceed(bool ok) = 0;
  };

  struct UnaryCall final : Tag {
    explicit UnaryCall(GrpcServer& s) : server(s) {
      server.service_.RequestEcho(&ctx, &request, &writer, server.cq_.get(), server.cq_.get(), this);
    }
    void proceed(bool ok) override {
      if (!ok || finishing) {
        delete this;
        return;
      }
      new UnaryCall(server);
      response.set_data(request.data());
      finishing = true;
      writer.Finish(response, grpc::Status::OK, this);
    }
    GrpcServer& server;
    grpc::ServerContext ctx;
    Payload request, response;
    grpc::ServerAsyncResponseWriter<Payload> writer{&ctx};
    bool finishing = false;
  };

  struct StreamCall final : Tag {
    explicit StreamCall(GrpcServer& s) : server(s) {
      server.service_.RequestStream(&ctx, &request, &writer, server.cq_.get(), server.cq_.get(), this);
    }
    void proceed(bool ok) override {
      if (!ok || state == kFinishing) {
        delete this;
        return;
      }
      if (state == kRequested) {
        new StreamCall(server);
        message.set_data(std::string(request.size(), 'x'));
        state = kWriting;
      }
      if (sent < request.count()) {
        ++sent;
        writer.Write(message, this);
      } else {
        state = kFinishing;
        writer.Finish(grpc::Status::OK, this);
      }
    }
    enum State { kRequested, kWriting, kFinishing };
    GrpcServer& server;
    grpc::ServerContext ctx;
    StreamRequest request;
    Payload message;
    grpc::ServerAsyncWriter<Payload> writer{&ctx};
    State state = kRequested;
    std::uint32_t sent = 0;
  };

  slipbench::EchoService::AsyncService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<std::thread> threads_;
  int port_ = 0;
};

std::shared_ptr<grpc::Channel> grpc_channel(std::uint16_t port) {
  auto ch = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    fail("gRPC channel did not connect");
  }
  return ch;
}

int grpc_latency(std::uint16_t port, const Workload& w, const Plan& plan) {
  auto stub = slipbench::EchoService::NewStub(grpc_channel(port));
  Payload req, resp;
  req.set_data(std::string(w.size, 'p'));
  std::vector<std::int64_t> samples;
  samples.reserve(plan.lat_count);
  for (std::uint64_t i = 0; i < plan.lat_warmup + plan.lat_count; ++i) {
    grpc::ClientContext ctx;
    const std::int64_t t0 = mono_now_ns();
    grpc::Status st = stub->Echo(&ctx, req, &resp);
    const std::int64_t t1 = mono_now_ns();
    if (!st.ok()) fail("gRPC call failed: " + st.error_message());
    if (resp.data().size() != w.size) fail("gRPC echo of the wrong size");
    if (i >= plan.lat_warmup) samples.push_back(t1 - t0);
  }
  const auto calls = plan.lat_warmup + plan.lat_count;
  print_result(percentile_words(percentiles_us(samples)) + " calls=" + std::to_string(calls) +
               " cpu=" + std::to_string(cpu_seconds()));
  exit_now(0);
}

// `outstanding` calls in flight on one channel, through one CompletionQueue polled by this
// thread. With one outstanding, every call is timed (lat64cb); otherwise calls/s (tp*).
int grpc_async_unary(std::uint16_t port, const Workload& w, const Plan& plan) {
  auto stub = slipbench::EchoService::NewStub(grpc_channel(port));
  grpc::CompletionQueue cq;
  Payload req;
  req.set_data(std::string(w.size, 'p'));
  struct Slot {
    grpc::ClientContext ctx;
    Payload resp;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Payload>> reader;
    std::int64_t start_ns = 0;
  };
  const bool timed = w.outstanding == 1;
  std::vector<std::unique_ptr<Slot>> slots(w.outstanding);
  auto issue = [&](std::size_t i) {
    slots[i] = std::make_unique<Slot>();
    Slot& s = *slots[i];
    if (timed) s.start_ns = mono_now_ns();
    s.reader = stub->AsyncEcho(&s.ctx, req, &cq);
    s.reader->Finish(&s.resp, &s.status, reinterpret_cast<void*>(i));
  };
  std::vector<std::int64_t> samples;
  std::uint64_t calls = 0;
  Phases phases(plan);
  for (std::size_t i = 0; i < w.outstanding; ++i) issue(i);
  std::size_t in_flight = w.outstanding;
  const std::uint64_t timed_total = plan.lat_warmup + plan.lat_count;
  if (timed) samples.reserve(plan.lat_count);
  while (in_flight > 0) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) fail("gRPC completion queue shut down");
    const std::int64_t now = timed ? mono_now_ns() : 0;
    const auto i = reinterpret_cast<std::size_t>(tag);
    Slot& s = *slots[i];
    if (!ok || !s.status.ok()) fail("gRPC call failed: " + s.status.error_message());
    if (s.resp.data().size() != w.size) fail("gRPC echo of the wrong size");
    ++calls;
    bool more;
    if (timed) {
      if (calls > plan.lat_warmup) samples.push_back(now - s.start_ns);
      more = calls < timed_total;
    } else {
      more = phases.completed();
    }
    if (more) {
      issue(i);
    } else {
      --in_flight;
    }
  }
  std::string words = "calls=" + std::to_string(calls) + " cpu=" + std::to_string(cpu_seconds());
  if (timed) {
    words += " " + percentile_words(percentiles_us(samples));
  } else {
    char b[64];
    std::snprintf(b, sizeof b, " rate=%.1f", phases.rate());
    words += b;
  }
  print_result(words);
  exit_now(0);
}

int grpc_stream(std::uint16_t port, const Workload& w, const Plan& plan) {
  auto stub = slipbench::EchoService::NewStub(grpc_channel(port));
  StreamRequest req;
  req.set_count(plan.stream_msgs);
  req.set_size(static_cast<std::uint32_t>(w.size));
  std::uint64_t msgs = 0;
  std::int64_t start_ns = 0;
  for (std::uint32_t call = 0; call < plan.stream_calls + 1; ++call) {
    if (call == 1) start_ns = mono_now_ns();  // the first call is the warm-up
    grpc::ClientContext ctx;
    auto reader = stub->Stream(&ctx, req);
    Payload m;
    std::uint64_t n = 0;
    while (reader->Read(&m)) {
      if (m.data().size() != w.size) fail("gRPC stream message of the wrong size");
      ++n;
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) fail("gRPC stream failed: " + st.error_message());
    if (n != plan.stream_msgs) fail("gRPC stream ended early");
    if (call > 0) msgs += n;
  }
  const double secs = static_cast<double>(mono_now_ns() - start_ns) / 1e9;
  char b[128];
  // CPU per message: every message received, the warm-up call's included.
  std::snprintf(b, sizeof b, "rate=%.1f msgs=%" PRIu64 " seconds=%.4f calls=%" PRIu64 " cpu=%.4f",
                static_cast<double>(msgs) / secs, msgs, secs, msgs + plan.stream_msgs, cpu_seconds());
  print_result(b);
  exit_now(0);
}

// =============================================================================================
// Slipstream
// =============================================================================================

class SlipEcho final : public slipbench::slip::EchoService::Service {
 public:
  Status Echo(rpc::ServerCall&, const Payload& request, Payload* response) override {
    response->set_data(request.data());
    return Status();
  }
  Status Stream(rpc::ServerCall&, const StreamRequest& request, rpc::ServerWriter<Payload>& out) override {
    Payload m;
    m.set_data(std::string(request.size(), 'x'));
    for (std::uint32_t i = 0; i < request.count(); ++i) {
      if (!out.write(m)) break;
    }
    return Status();
  }
};

rpc::ChannelOptions slip_channel_options(const io::LoopOptions& lo) {
  rpc::ChannelOptions o;
  o.loop = lo;
  o.reconnect.enabled = false;
  o.session.compression.codecs = 0;  // as gRPC: see the top of this file
  return o;
}

// Waits until the channel's session is up (one call through).
void slip_connect(rpc::Channel& ch) {
  Payload p;
  rpc::CallOptions o;
  o.timeout = std::chrono::seconds(10);
  auto r = rpc::call_unary(ch, kEchoMethod, rpc::detail::serialize(p), o);
  if (!r.is_ok()) fail("Slipstream channel did not connect: " + r.status().to_string());
}

int slip_latency(std::uint16_t port, const Workload& w, const Plan& plan, const io::LoopOptions& lo) {
  rpc::ChannelOptions co = slip_channel_options(lo);
  co.lend_loop = w.name != "lat64hop";
  rpc::Channel ch("127.0.0.1:" + std::to_string(port), co);
  slip_connect(ch);
  slipbench::slip::EchoService::Stub stub(ch);
  Payload req, resp;
  req.set_data(std::string(w.size, 'p'));
  std::vector<std::int64_t> samples;
  samples.reserve(plan.lat_count);
  for (std::uint64_t i = 0; i < plan.lat_warmup + plan.lat_count; ++i) {
    const std::int64_t t0 = mono_now_ns();
    Status st = stub.Echo(req, &resp);
    const std::int64_t t1 = mono_now_ns();
    if (!st.is_ok()) fail("Slipstream call failed: " + st.to_string());
    if (resp.data().size() != w.size) fail("Slipstream echo of the wrong size");
    if (i >= plan.lat_warmup) samples.push_back(t1 - t0);
  }
  const auto calls = plan.lat_warmup + plan.lat_count + 1;
  print_result(percentile_words(percentiles_us(samples)) + " calls=" + std::to_string(calls) +
               " cpu=" + std::to_string(cpu_seconds()));
  exit_now(0);
}

// Calls started from the callbacks of the previous ones, on the channel's loop.
class SlipAsyncUnary {
 public:
  SlipAsyncUnary(rpc::Channel& ch, const Workload& w, const Plan& plan)
      : ch_(ch), w_(w), plan_(plan), phases_(plan) {
    timed_ = w.outstanding == 1;
    if (timed_) samples_.reserve(plan.lat_count);
  }

  void run() {
    ch_.loop().post([this] {
      in_flight_ = w_.outstanding;
      for (std::size_t i = 0; i < w_.outstanding; ++i) issue();
    });
    const Status st = done_.get_future().get();
    if (!st.is_ok()) fail("Slipstream call failed: " + st.to_string());
  }

  std::string words() {
    std::string words = "calls=" + std::to_string(calls_) + " cpu=" + std::to_string(cpu_seconds());
    if (timed_) {
      words += " " + percentile_words(percentiles_us(samples_));
    } else {
      char b[64];
      std::snprintf(b, sizeof b, " rate=%.1f", phases_.rate());
      words += b;
    }
    return words;
  }

 private:
  void issue() {
    Payload req;
    req.set_data(std::string(w_.size, 'p'));
    std::vector<std::string> requests;
    requests.push_back(rpc::detail::serialize(req));
    rpc::CallCallbacks cb;
    const std::int64_t start = timed_ ? mono_now_ns() : 0;
    // Parsed from the received bytes, as gRPC's stub does from its byte buffer.
    cb.on_message_bytes = [this](Slice m) {
      Payload resp;
      if (!rpc::detail::parse_bytes(resp, m) || resp.data().size() != w_.size) error_ = "echo of the wrong size";
    };
    cb.on_done = [this, start](const Status& st, const rpc::Metadata&) { completed(st, start); };
    ch_.start_call(kEchoMethod, {}, std::move(cb), std::move(requests), true);
  }

  void completed(const Status& st, std::int64_t start) {
    if (finished_) return;
    if (!st.is_ok()) return finish(st);
    if (!error_.empty()) return finish(internal_error(error_));
    ++calls_;
    bool more;
    if (timed_) {
      if (calls_ > plan_.lat_warmup) samples_.push_back(mono_now_ns() - start);
      more = calls_ < plan_.lat_warmup + plan_.lat_count;
    } else {
      more = phases_.completed();
    }
    if (more) {
      issue();
    } else if (--in_flight_ == 0) {
      finish(Status());
    }
  }

  void finish(const Status& st) {
    if (finished_) return;
    finished_ = true;
    done_.set_value(st);
  }

  rpc::Channel& ch_;
  const Workload& w_;
  const Plan& plan_;
  bool timed_ = false;
  Phases phases_;
  std::vector<std::int64_t> samples_;
  std::uint64_t calls_ = 0;
  std::size_t in_flight_ = 0;
  std::string error_;
  bool finished_ = false;
  std::promise<Status> done_;
};

int slip_async_unary(std::uint16_t port, const Workload& w, const Plan& plan, const io::LoopOptions& lo) {
  rpc::Channel ch("127.0.0.1:" + std::to_string(port), slip_channel_options(lo));
  slip_connect(ch);
  SlipAsyncUnary bench(ch, w, plan);
  bench.run();
  print_result(bench.words());
  exit_now(0);
}

// Server-streaming calls one after another, each started from the previous one's on_done.
int slip_stream(std::uint16_t port, const Workload& w, const Plan& plan, const io::LoopOptions& lo) {
  rpc::Channel ch("127.0.0.1:" + std::to_string(port), slip_channel_options(lo));
  slip_connect(ch);
  StreamRequest req;
  req.set_count(plan.stream_msgs);
  req.set_size(static_cast<std::uint32_t>(w.size));
  const std::string request = rpc::detail::serialize(req);
  std::promise<std::string> done;
  std::uint64_t msgs = 0, in_call = 0;
  std::uint32_t call = 0;
  std::int64_t start_ns = 0;
  std::string error;
  std::function<void()> next = [&] {
    if (call == 1) start_ns = mono_now_ns();  // the first call is the warm-up
    in_call = 0;
    rpc::CallCallbacks cb;
    cb.on_message = [&](std::string m) {
      Payload p;
      if (!p.ParseFromString(m) || p.data().size() != w.size) error = "stream message of the wrong size";
      ++in_call;
    };
    cb.on_done = [&](const Status& st, const rpc::Metadata&) {
      if (!st.is_ok()) return done.set_value(st.to_string());
      if (!error.empty()) return done.set_value(error);
      if (in_call != plan.stream_msgs) {
        return done.set_value("stream ended after " + std::to_string(in_call) + " of " +
                              std::to_string(plan.stream_msgs) + " messages");
      }
      if (call > 0) msgs += in_call;
      if (++call == plan.stream_calls + 1) return done.set_value("");
      next();
    };
    ch.start_call(kStreamMethod, {}, std::move(cb), {request}, true);
  };
  ch.loop().post([&] { next(); });
  const std::string err = done.get_future().get();
  if (!err.empty()) fail("Slipstream stream failed: " + err);
  const double secs = static_cast<double>(mono_now_ns() - start_ns) / 1e9;
  char b[128];
  // CPU per message: every message received, the warm-up call's included (not slip_connect's call).
  std::snprintf(b, sizeof b, "rate=%.1f msgs=%" PRIu64 " seconds=%.4f calls=%" PRIu64 " cpu=%.4f",
                static_cast<double>(msgs) / secs, msgs, secs, msgs + plan.stream_msgs, cpu_seconds());
  print_result(b);
  exit_now(0);
}

// =============================================================================================
// Child modes
// =============================================================================================

// Reports "port=N", serves until SIGTERM, then reports its CPU time and exits.
int serve_main(const std::string& system, std::size_t threads, const io::LoopOptions& lo) {
  block_sigterm();
  int port = 0;
  std::unique_ptr<GrpcServer> grpc_server;
  std::unique_ptr<SlipEcho> service;
  std::unique_ptr<rpc::Server> slip_server;
  if (system == "grpc") {
    grpc_server = std::make_unique<GrpcServer>(threads);
    port = grpc_server->port();
  } else {
    rpc::ServerOptions o;
    o.threads = threads;
    o.loop = lo;
    o.session.compression.codecs = 0;  // as gRPC: see the top of this file
    service = std::make_unique<SlipEcho>();
    slip_server = std::make_unique<rpc::Server>(o);
    slip_server->add_service(*service);
    if (Status st = slip_server->start(); !st.is_ok()) fail("Slipstream server: " + st.to_string());
    port = slip_server->port();
  }
  report(STDOUT_FILENO, "port=" + std::to_string(port));
  wait_for_sigterm();
  char b[64];
  std::snprintf(b, sizeof b, "cpu=%.4f", cpu_seconds());
  print_result(b);
  exit_now(0);
}

int client_main(const std::string& system, std::uint16_t port, const Plan& plan, const io::LoopOptions& lo) {
  const Workload* w = find_workload(plan.workload);
  if (w == nullptr) fail("unknown workload " + plan.workload);
  if (system == "grpc") {
    switch (w->kind) {
      case Kind::kLatency: return grpc_latency(port, *w, plan);
      case Kind::kLatencyAsync:
      case Kind::kThroughput: return grpc_async_unary(port, *w, plan);
      case Kind::kStream: return grpc_stream(port, *w, plan);
    }
  }
  switch (w->kind) {
    case Kind::kLatency: return slip_latency(port, *w, plan, lo);
    case Kind::kLatencyAsync:
    case Kind::kThroughput: return slip_async_unary(port, *w, plan, lo);
    case Kind::kStream: return slip_stream(port, *w, plan, lo);
  }
  return 2;
}

// =============================================================================================
// Orchestration (the parent starts no thread)
// =============================================================================================

// One column of the tables: gRPC, or Slipstream with one idle strategy.
struct System {
  std::string label;
  std::string name;  // "grpc" or "slip"
  std::string idle;  // Slipstream's loops
};

struct Settings {
  int runs = 3;
  std::size_t server_threads = 1;
  int spin_us = 50;
  Plan plan;
};

std::string self_exe() {
  char b[4096];
  const ssize_t n = ::readlink("/proc/self/exe", b, sizeof b - 1);
  if (n <= 0) return "rpc_bench";
  return std::string(b, static_cast<std::size_t>(n));
}

// The "result" line of a child's output, parsed; empty with *error set when there is none.
std::map<std::string, double> result_of(const std::string& out, std::string* error) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("result ", 0) == 0) return parse_report(line);
  }
  *error = out.empty() ? "(no output)" : out;
  return {};
}

struct PairResult {
  std::map<std::string, double> client, server;
  double foreign_cpus = 0;
  std::string error;
};

PairResult run_pair(const Settings& s, const System& sys, const Workload& w) {
  PairResult r;
  const std::string exe = self_exe();
  const std::string threads = std::to_string(s.server_threads);
  const std::string spin = std::to_string(s.spin_us);
  const CpuSample before = sample_cpu();
  ChildProcess server = ChildProcess::exec(
      {exe, "serve", "--system", sys.name, "--threads", threads, "--idle", sys.idle, "--spin-us", spin}, true,
      kChildLimit);
  std::string port;
  while (auto line = server.read_line(std::chrono::seconds(30))) {
    if (line->rfind("port=", 0) == 0) {
      port = line->substr(5);
      break;
    }
  }
  if (port.empty()) {
    r.error = "server did not report its port";
    return r;
  }
  const Plan& p = s.plan;
  ChildProcess client = ChildProcess::exec(
      {exe, "client", "--system", sys.name, "--port", port, "--workload", w.name, "--idle", sys.idle, "--spin-us",
       spin, "--lat-count", std::to_string(p.lat_count), "--lat-warmup", std::to_string(p.lat_warmup), "--seconds",
       std::to_string(p.seconds), "--warmup-seconds", std::to_string(p.warmup_seconds), "--calls",
       std::to_string(p.calls), "--stream-msgs", std::to_string(p.stream_msgs), "--stream-calls", std::to_string(p.stream_calls)},
      true, kChildLimit);
  const std::string client_out = client.read_all(kChildLimit);
  const int crc = client.wait(std::chrono::seconds(10));
  ::kill(server.pid(), SIGTERM);
  const std::string server_out = server.read_all(std::chrono::seconds(10));
  const int src = server.wait(std::chrono::seconds(10));
  std::string err;
  r.client = result_of(client_out, &err);
  if (crc != 0 || r.client.empty()) {
    r.error = "client exited with " + std::to_string(crc) + ": " + client_out;
    return r;
  }
  r.server = result_of(server_out, &err);
  if (src != 0 || r.server.empty()) {
    r.error = "server exited with " + std::to_string(src) + ": " + server_out;
    return r;
  }
  r.foreign_cpus = foreign_cpus(before, sample_cpu());
  return r;
}

std::string fmt(double v, const char* f) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string fmt_us(double v) { return fmt(v, v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f"); }

std::string fmt_rate(double v) {
  if (v >= 1e6) return fmt(v / 1e6, "%.2f M");
  if (v >= 1e4) return fmt(v / 1e3, "%.0f k");
  return fmt(v / 1e3, "%.1f k");
}

int orchestrate(const Settings& s, const std::vector<const Workload*>& workloads, const std::vector<System>& systems) {
  // results[workload][system][key] = per-run values
  std::map<std::string, std::vector<std::map<std::string, std::vector<double>>>> results;
  std::vector<double> foreign;
  for (const Workload* w : workloads) results[w->name].resize(systems.size());
  for (int run = 0; run < s.runs; ++run) {
    for (const Workload* w : workloads) {
      for (std::size_t i = 0; i < systems.size(); ++i) {
        PairResult pr = run_pair(s, systems[i], *w);
        if (!pr.error.empty()) {
          std::fprintf(stderr, "rpc_bench: %s %s run %d failed: %s\n", w->name.c_str(), systems[i].label.c_str(),
                       run + 1, pr.error.c_str());
          return 1;
        }
        auto& into = results[w->name][i];
        for (const auto& [k, v] : pr.client) into[k].push_back(v);
        const double calls = pr.client["calls"];
        into["c_cpu_us"].push_back(calls > 0 ? pr.client["cpu"] / calls * 1e6 : NAN);
        into["s_cpu_us"].push_back(calls > 0 ? pr.server["cpu"] / calls * 1e6 : NAN);
        foreign.push_back(pr.foreign_cpus);
        std::printf("run %d %-8s %-28s", run + 1, w->name.c_str(), systems[i].label.c_str());
        if (pr.client.count("rate")) std::printf(" %12s/s", fmt_rate(pr.client["rate"]).c_str());
        if (pr.client.count("p50")) {
          std::printf(" p50 %s p99 %s p99.9 %s us", fmt_us(pr.client["p50"]).c_str(), fmt_us(pr.client["p99"]).c_str(),
                      fmt_us(pr.client["p999"]).c_str());
        }
        std::printf(" | CPU per call (message) client %.2f us server %.2f us | others used %.2f CPUs\n", into["c_cpu_us"].back(),
                    into["s_cpu_us"].back(), pr.foreign_cpus);
        std::fflush(stdout);
      }
    }
  }

  // Ratio of system i over gRPC (system 0), per run, then the median.
  auto ratio = [&](const std::string& wl, std::size_t i, const std::string& key) {
    const auto& a = results[wl][i][key];
    const auto& g = results[wl][0][key];
    std::vector<double> r;
    for (std::size_t k = 0; k < a.size() && k < g.size(); ++k) r.push_back(a[k] / g[k]);
    return median(r);
  };
  auto med = [&](const std::string& wl, std::size_t i, const std::string& key) {
    return median(results[wl][i][key]);
  };

  std::printf("\n### RPC vs gRPC C++ (median of %d runs; ratios: Slipstream / gRPC per run, then the median)\n\n",
              s.runs);
  std::printf("| Workload | figure |");
  for (const auto& sys : systems) std::printf(" %s |", sys.label.c_str());
  for (std::size_t i = 1; i < systems.size(); ++i) std::printf(" %s / gRPC |", systems[i].label.c_str());
  std::printf("\n|---|---|");
  for (std::size_t i = 0; i < 2 * systems.size() - 1; ++i) std::printf("---:|");
  std::printf("\n");
  auto row = [&](const Workload& w, const std::string& figure, const std::string& key, bool rate) {
    std::printf("| %s | %s |", w.title.c_str(), figure.c_str());
    for (std::size_t i = 0; i < systems.size(); ++i) {
      const double v = med(w.name, i, key);
      std::printf(" %s |", rate ? fmt_rate(v).c_str() : fmt_us(v).c_str());
    }
    for (std::size_t i = 1; i < systems.size(); ++i) std::printf(" %s |", fmt(ratio(w.name, i, key), "%.2fx").c_str());
    std::printf("\n");
  };
  for (const Workload* w : workloads) {
    if (w->kind == Kind::kLatency || w->kind == Kind::kLatencyAsync) {
      row(*w, "p50", "p50", false);
      row(*w, "p99", "p99", false);
      row(*w, "p99.9", "p999", false);
    } else {
      row(*w, w->kind == Kind::kStream ? "msgs/s" : "calls/s", "rate", true);
    }
    const char* per = w->kind == Kind::kStream ? "msg" : "call";
    row(*w, std::string("client CPU us/") + per, "c_cpu_us", false);
    row(*w, std::string("server CPU us/") + per, "s_cpu_us", false);
  }
  std::printf("\nOther processes used a median of %.2f CPUs (max %.2f) while the pairs ran (/proc/stat, ours "
              "subtracted).\n",
              median(foreign), foreign.empty() ? 0.0 : *std::max_element(foreign.begin(), foreign.end()));
  std::printf("\nGoals (%s against gRPC):\n", systems.size() > 1 ? systems[1].label.c_str() : "-");
  if (systems.size() > 1) {
    for (const Workload* w : workloads) {
      if (w->name == "lat64") {
        const double r = ratio(w->name, 1, "p50");
        std::printf("- unary 64 B p50 at most 0.3x gRPC's: %s (%.2fx)\n", r <= 0.3 ? "MET" : "MISSED", r);
      } else if (w->kind == Kind::kThroughput) {
        const double r = ratio(w->name, 1, "rate");
        std::printf("- %s throughput at least 10x gRPC's: %s (%.1fx)\n", w->name.c_str(), r >= 10 ? "MET" : "MISSED",
                    r);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace slip::bench

int main(int argc, char** argv) {
  using namespace slip::bench;
  CLI::App app{"rpc_bench - Slipstream RPC against gRPC C++ on 127.0.0.1, same run", "rpc_bench"};
  app.require_subcommand(0, 1);
  Settings s;
  std::string workloads = "lat64,lat64hop,lat64cb,tp64,tp1k,stream64";
  std::vector<std::string> slip_idles = {"spin"};
  std::string log_level = "warn";
  auto plan_options = [&](CLI::App* a) {
    a->add_option("--lat-count", s.plan.lat_count, "Latency workloads: calls recorded")->capture_default_str();
    a->add_option("--lat-warmup", s.plan.lat_warmup, "Latency workloads: calls before recording")->capture_default_str();
    a->add_option("--seconds", s.plan.seconds, "Throughput workloads: measured period")->capture_default_str();
    a->add_option("--warmup-seconds", s.plan.warmup_seconds, "Throughput workloads: warm-up")->capture_default_str();
    a->add_option("--calls", s.plan.calls,
                  "Throughput workloads: stop after this many calls instead of --seconds, no warm-up (0: by "
                  "time); for counting instructions per call under callgrind")
        ->capture_default_str();
    a->add_option("--stream-msgs", s.plan.stream_msgs, "stream64: messages per call")->capture_default_str();
    a->add_option("--stream-calls", s.plan.stream_calls, "stream64: calls measured (after one warm-up call)")
        ->capture_default_str();
    a->add_option("--spin-us", s.spin_us, "Spin window of Slipstream's spin idle strategy")->capture_default_str();
    a->add_option("--log-level", log_level, "Slipstream's log level in the children")->capture_default_str();
  };
  plan_options(&app);
  app.add_option("--runs", s.runs, "Repetitions; tables give medians")
      ->capture_default_str()
      ->check(CLI::Range(1, 100))
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--workloads", workloads, "Comma-separated: lat64, lat64hop, lat64cb, tp64, tp1k, stream64")
      ->capture_default_str();
  app.add_option("--slip-idle", slip_idles, "Slipstream idle strategies, one column each (spin, block, busy)")
      ->capture_default_str();
  app.add_option("--server-threads", s.server_threads, "Server threads: gRPC CompletionQueue threads, Slipstream loops")
      ->capture_default_str();

  std::string system, idle = "spin";
  std::size_t threads = 1;
  std::uint16_t port = 0;
  auto* serve = app.add_subcommand("serve", "(internal) one server: reports its port, serves until SIGTERM");
  serve->group("");
  serve->add_option("--system", system)->required();
  serve->add_option("--threads", threads);
  serve->add_option("--idle", idle);
  plan_options(serve);
  auto* client = app.add_subcommand("client", "(internal) one client run against --port");
  client->group("");
  client->add_option("--system", system)->required();
  client->add_option("--port", port)->required();
  client->add_option("--workload", s.plan.workload)->required();
  client->add_option("--idle", idle);
  plan_options(client);
  CLI11_PARSE(app, argc, argv);

  if (serve->parsed() || client->parsed()) {
    if (auto st = slip::init_logging(log_level); !st.is_ok()) fail(st.to_string());
    auto parsed = slip::io::parse_idle_strategy(idle);
    if (!parsed.is_ok()) fail(parsed.status().to_string());
    slip::io::LoopOptions lo;
    lo.idle = *parsed;
    lo.spin = std::chrono::microseconds(s.spin_us);
    if (serve->parsed()) return serve_main(system, threads, lo);
    return client_main(system, port, s.plan, lo);
  }

  std::vector<const Workload*> ws;
  std::stringstream in(workloads);
  std::string name;
  while (std::getline(in, name, ',')) {
    const Workload* w = find_workload(name);
    if (w == nullptr) {
      std::fprintf(stderr, "rpc_bench: unknown workload '%s'\n", name.c_str());
      return 2;
    }
    ws.push_back(w);
  }
  std::vector<System> systems = {{"gRPC C++ 1.51", "grpc", "block"}};
  for (const auto& i : slip_idles) {
    auto parsed = slip::io::parse_idle_strategy(i);
    if (!parsed.is_ok()) {
      std::fprintf(stderr, "rpc_bench: %s\n", parsed.status().to_string().c_str());
      return 2;
    }
    std::string label = "Slipstream, " + i;
    if (*parsed == slip::io::IdleStrategy::kSpin) label += " " + std::to_string(s.spin_us) + " us";
    systems.push_back({label, "slip", i});
  }
  std::printf("rpc_bench: %ld CPUs online; gRPC C++ %s (its threads block in epoll: its default); server threads "
              "%zu; workloads %s; %d runs\n",
              ::sysconf(_SC_NPROCESSORS_ONLN), grpc::Version().c_str(), s.server_threads, workloads.c_str(), s.runs);
  std::fflush(stdout);
  return orchestrate(s, ws, systems);
}
