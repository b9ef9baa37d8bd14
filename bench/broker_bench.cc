// Broker benchmark: slipd against nats-server on the same machine, in the same run.
//
// Both servers run on 127.0.0.1 as child processes of this one. slipd is driven by Slipstream's
// own client (broker::PubSubClient, one EventLoop thread per client); nats-server by the NATS C
// client (libnats), one connection per client. The same workloads run against each:
//
//   tp16 tp128 tp1k tp16k   1 publisher -> 1 subscriber, payloads of 16 B, 128 B, 1 KB, 16 KB
//   fan128                  1 publisher -> 4 subscribers, 128 B
//   rr16                    sequential request/reply round trips, 16 B, through an echo responder
//
// Throughput is measured at the subscriber: messages received divided by the time from the
// first to the last one. Fan-out gives the median per-subscriber rate and the aggregate
// (4 * N over the span from the first arrival anywhere to the last). Messages that never arrive
// (slow-consumer drops or cut-offs) are counted and printed. Latency percentiles come from every
// sample, sorted; no averages.
//
// Publishing. Slipstream: on the publisher's loop, batches of --batch messages per loop turn,
// yielding to the loop (post) between batches so the session flushes, and publishing nothing
// while more than --pub-high-water bytes are waiting for the kernel (the client's own
// back-pressure). libnats: natsConnection_Publish in a loop (it writes inline when its buffer
// fills), then natsConnection_Flush.
//
// The NATS gateway: with --targets gateway, slipd also runs with --nats-listen and the very same
// libnats code that drives nats-server drives slipd's NATS port ("slipd-nats tN" columns), so
// the two NATS servers are compared with one client program in one run (scripts/bench-nats.sh,
// make bench-nats).
//
// Every workload gets a freshly started server; a run goes through every server and workload in
// turn, --runs times, and the table prints the median of the runs. Payloads are random (incompressible) and Slipstream's client offers no
// compression codec, so nothing is compressed.
//
// Run: scripts/bench-broker.sh (make bench-broker), or e.g.
//   build/release/bench/broker_bench --slipd build/release/tools/slipd/slipd --runs 3
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nats/nats.h>

#include "broker/client.h"
#include "core/clock.h"
#include "core/logging.h"
#include "io/loop_group.h"
#include "transport/address.h"
#include "server_process.h"


namespace slip::bench {
namespace {

using Clock = std::chrono::steady_clock;

// =============================================================================================
// Settings and results
// =============================================================================================

struct Settings {
  int runs = 3;
  std::string slipd = "build/release/tools/slipd/slipd";
  std::string nats_server = "nats-server";
  std::vector<int> slipd_threads = {1, 2};
  std::string server_idle = "spin";  // slipd --idle
  unsigned server_spin_us = 50;
  std::vector<std::string> client_idles = {"spin", "block"};  // Slipstream client loops, each a target
  unsigned client_spin_us = 50;
  std::size_t max_pending = 1ull << 30;  // slipd --max-pending-bytes and nats-server max_pending
  std::vector<std::string> workloads = {"tp16", "tp128", "tp1k", "tp16k", "fan128", "rr16"};
  // native: slipd through Slipstream's client; gateway: slipd's NATS port through libnats;
  // nats: nats-server through libnats.
  std::vector<std::string> kinds = {"native", "nats"};
  double scale = 1.0;  // multiplies every message count
  int batch = 1000;
  std::size_t pub_high_water = 512 * 1024;
  int rr_warmup = 2000;
  int rr_samples = 20000;
  bool nats_send_asap_rr = true;
  // Every slipd target twice: metrics on (and the HTTP listener up) and --metrics=off.
  bool metrics_ab = false;
};

struct Workload {
  std::string name;
  std::size_t size = 0;
  int subscribers = 1;  // 0: request/reply
  std::uint64_t messages = 0;
};

Workload workload_by_name(const std::string& n, const Settings& s) {
  auto count = [&](double base) { return static_cast<std::uint64_t>(std::max(1000.0, base * s.scale)); };
  if (n == "tp16") return {n, 16, 1, count(3e6)};
  if (n == "tp128") return {n, 128, 1, count(2e6)};
  if (n == "tp1k") return {n, 1024, 1, count(1e6)};
  if (n == "tp16k") return {n, 16384, 1, count(1.5e5)};
  if (n == "fan128") return {n, 128, 4, count(1e6)};
  if (n == "rr16") return {n, 16, 0, static_cast<std::uint64_t>(s.rr_samples)};
  throw std::runtime_error("unknown workload " + n);
}

struct Outcome {
  bool ok = false;
  std::string note;
  // Throughput.
  double per_sub_rate = 0;  // median over subscribers, msgs/s
  double aggregate_rate = 0;
  std::uint64_t expected = 0;  // per subscriber
  std::uint64_t received_min = 0;
  std::uint64_t dropped = 0;  // reported by the client library (libnats), or expected - received
  // Latency, microseconds.
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
};

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return NAN;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Counts one subscriber's messages; written on one client thread, read by the orchestrator.
struct Counter {
  std::atomic<std::uint64_t> count{0};
  std::atomic<std::int64_t> first_ns{0};
  std::atomic<std::int64_t> last_ns{0};

  void hit() {
    const std::int64_t now = mono_now_ns();
    const std::uint64_t c = count.load(std::memory_order_relaxed) + 1;
    if (c == 1) first_ns.store(now, std::memory_order_relaxed);
    last_ns.store(now, std::memory_order_relaxed);
    count.store(c, std::memory_order_release);
  }
};

// Waits until every counter reaches `n`, or nothing moved for `stall`.
void wait_counters(const std::vector<std::unique_ptr<Counter>>& cs, std::uint64_t n, std::chrono::milliseconds stall) {
  std::uint64_t last_total = 0;
  auto last_move = Clock::now();
  for (;;) {
    std::uint64_t total = 0;
    bool all = true;
    for (const auto& c : cs) {
      const auto v = c->count.load(std::memory_order_acquire);
      total += v;
      all = all && v >= n;
    }
    if (all) return;
    if (total != last_total) {
      last_total = total;
      last_move = Clock::now();
    } else if (Clock::now() - last_move > stall) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Outcome throughput_outcome(const std::vector<std::unique_ptr<Counter>>& cs, std::uint64_t n, std::uint64_t dropped) {
  Outcome o;
  o.expected = n;
  o.received_min = n;
  o.dropped = dropped;
  std::vector<double> rates;
  std::int64_t first = INT64_MAX, last = 0;
  std::uint64_t total = 0;
  for (const auto& c : cs) {
    const auto got = c->count.load(std::memory_order_acquire);
    const auto f = c->first_ns.load(std::memory_order_relaxed);
    const auto l = c->last_ns.load(std::memory_order_relaxed);
    o.received_min = std::min(o.received_min, got);
    total += got;
    if (got > 1 && l > f) rates.push_back(static_cast<double>(got - 1) * 1e9 / static_cast<double>(l - f));
    if (got > 0) {
      first = std::min(first, f);
      last = std::max(last, l);
    }
  }
  o.per_sub_rate = median(rates);
  if (last > first) o.aggregate_rate = static_cast<double>(total - 1) * 1e9 / static_cast<double>(last - first);
  o.ok = o.received_min == n;
  if (!o.ok) {
    std::ostringstream m;
    m << "lost " << (n * cs.size() - total) << " of " << n * cs.size();
    o.note = m.str();
  }
  return o;
}

Outcome latency_outcome(std::vector<double> us) {
  Outcome o;
  std::sort(us.begin(), us.end());
  o.ok = !us.empty();
  o.expected = us.size();
  o.p50 = percentile(us, 0.50);
  o.p99 = percentile(us, 0.99);
  o.p999 = percentile(us, 0.999);
  o.max = us.empty() ? NAN : us.back();
  return o;
}

// =============================================================================================
// Server processes
// =============================================================================================

struct Target {
  std::string label;  // "slipd t1", "nats-server"
  bool nats = false;     // nats-server
  bool gateway = false;  // slipd's NATS port, driven by libnats
  int threads = 1;
  io::LoopOptions client_loop;  // Slipstream's client loops
  std::vector<std::string> slipd_args;  // added to slipd's command line
};

// Starts a server; returns it and its address ("127.0.0.1:PORT").
std::pair<std::unique_ptr<ServerProcess>, std::string> start_server(const Target& t, const Settings& s) {
  const std::string tag = "/tmp/broker_bench." + std::to_string(::getpid());
  if (t.nats) {
    const int port = free_port();
    // max_pending has no command-line flag: a one-line config file raises it like slipd's.
    const std::string conf = tag + ".nats.conf";
    std::ofstream(conf) << "max_pending: " << s.max_pending << "\n";
    auto p = std::make_unique<ServerProcess>(
        std::vector<std::string>{s.nats_server, "-c", conf, "-a", "127.0.0.1", "-p", std::to_string(port)},
        tag + ".nats.log");
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!can_connect(port)) {
      if (Clock::now() > deadline || !p->running()) throw std::runtime_error("nats-server did not start, see " + tag + ".nats.log");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return {std::move(p), "127.0.0.1:" + std::to_string(port)};
  }
  const std::string ready = tag + ".slipd.ready";
  ::unlink(ready.c_str());
  std::vector<std::string> argv = {s.slipd, "--listen", "127.0.0.1:0", "--threads", std::to_string(t.threads), "--idle",
                                   s.server_idle, "--spin-us", std::to_string(s.server_spin_us), "--max-pending-bytes",
                                   std::to_string(s.max_pending), "--log-level", "warn", "--ready-file", ready};
  if (t.gateway) {
    argv.insert(argv.end(), {"--nats-listen", "127.0.0.1:0"});
  }
  argv.insert(argv.end(), t.slipd_args.begin(), t.slipd_args.end());
  auto p = std::make_unique<ServerProcess>(argv, tag + ".slipd.log");
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    // The ready file appears whole, one "PROTOCOL ADDRESS" line per listener.
    std::ifstream f(ready);
    std::string proto, addr;
    while (f >> proto >> addr) {
      if (proto == (t.gateway ? "nats" : "native") || (!t.gateway && proto == "native+tls")) {
        ::unlink(ready.c_str());
        return {std::move(p), addr};
      }
    }
    if (Clock::now() > deadline || !p->running()) throw std::runtime_error("slipd did not start, see " + tag + ".slipd.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// =============================================================================================
// Slipstream side
// =============================================================================================

// A PubSubClient on its own loop thread; run() executes code on that thread and waits.
class SlipPeer {
 public:
  SlipPeer(const std::string& address, const std::string& name, const io::LoopOptions& loop_options)
      : loops_(1, loop_options) {
    loops_.start();
    session::ClientOptions o;
    o.dial = session::tcp_dialer(*transport::parse_host_port(address));
    o.handshake.client_name = name;
    o.handshake.codecs = 0;  // no compression
    o.session.compression.codecs = 0;
    o.reconnect.enabled = false;
    run([&] {
      client_ = std::make_unique<broker::PubSubClient>(loop(), o);
      client_->start();
    });
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      bool ok = false;
      run([&] { ok = client_->ready(); });
      if (ok) break;
      if (Clock::now() > deadline) throw std::runtime_error("cannot connect to slipd at " + address);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  ~SlipPeer() {
    run([&] { client_->stop(); });
    run([&] { client_.reset(); });
    // A close callback the session posted runs behind these two turns.
    run([] {});
    run([] {});
    loops_.stop();
  }
  SlipPeer(const SlipPeer&) = delete;
  SlipPeer& operator=(const SlipPeer&) = delete;

  io::EventLoop& loop() { return loops_.loop(0); }
  broker::PubSubClient& client() { return *client_; }

  template <typename Fn>
  void run(Fn fn) {
    std::promise<void> done;
    loop().post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // A round trip through the broker: everything this client sent before has been processed.
  void sync() {
    std::promise<void> p;
    auto f = p.get_future();
    run([&] {
      (void)client_->request("_bench.sync", Slice(), std::chrono::milliseconds(10000),
                             [&p](Result<broker::Message>) { p.set_value(); });
    });
    f.wait();
  }

 private:
  io::LoopGroup loops_;
  std::unique_ptr<broker::PubSubClient> client_;
};

// Publishes n copies of `payload` on the peer's loop, --batch per turn, and returns when all
// were handed to the session.
struct SlipPublisher {
  SlipPeer& peer;
  std::string subject;
  Slice payload;
  std::uint64_t n;
  int batch;
  std::size_t high_water;
  std::uint64_t sent = 0;
  std::uint64_t waits = 0;  // turns skipped for back-pressure
  std::promise<Status> done;

  void pump() {
    auto* s = peer.client().client().session();
    if (!s || !peer.client().ready()) {
      done.set_value(disconnected("publisher lost its session"));
      return;
    }
    if (s->pending_out_bytes() < high_water) {
      for (int i = 0; i < batch && sent < n; ++i, ++sent) {
        Status st = peer.client().publish(subject, payload);
        if (!st.is_ok()) {
          done.set_value(st);
          return;
        }
      }
    } else {
      ++waits;
    }
    if (sent < n) {
      peer.loop().post([this] { pump(); });
    } else {
      done.set_value(Status());
    }
  }
};

Outcome slip_throughput(const std::string& addr, const Workload& w, const Settings& s, const io::LoopOptions& lo) {
  std::vector<std::unique_ptr<Counter>> counters;
  std::vector<std::unique_ptr<SlipPeer>> subs;
  for (int i = 0; i < w.subscribers; ++i) {
    counters.push_back(std::make_unique<Counter>());
    subs.push_back(std::make_unique<SlipPeer>(addr, "bench-sub-" + std::to_string(i), lo));
    Counter* c = counters.back().get();
    subs.back()->run([&] { (void)subs.back()->client().subscribe("bench.tp", "", [c](const broker::Message&) { c->hit(); }); });
    subs.back()->sync();
  }
  SlipPeer pub(addr, "bench-pub", lo);
  const std::string data = random_bytes(w.size, 42);
  SlipPublisher p{pub, "bench.tp", Slice::copy_of(data), w.messages, s.batch, s.pub_high_water, 0, 0, {}};
  auto f = p.done.get_future();
  pub.loop().post([&p] { p.pump(); });
  Status st = f.get();
  wait_counters(counters, w.messages, std::chrono::seconds(3));
  Outcome o = throughput_outcome(counters, w.messages, 0);
  if (!st.is_ok()) o.note += " publisher: " + st.to_string();
  o.ok = o.ok && st.is_ok();
  return o;
}

Outcome slip_request_reply(const std::string& addr, const Workload& w, const Settings& s, const io::LoopOptions& lo) {
  SlipPeer responder(addr, "bench-responder", lo);
  responder.run([&] {
    (void)responder.client().subscribe("bench.rr", "", [&responder](const broker::Message& m) {
      (void)responder.client().publish(m.reply, m.payload);
    });
  });
  responder.sync();
  SlipPeer requester(addr, "bench-requester", lo);
  const Slice payload = Slice::copy_of(random_bytes(w.size, 7));
  const int total = s.rr_warmup + static_cast<int>(w.messages);

  struct State {
    SlipPeer* peer;
    Slice payload;
    int total, warmup, i = 0;
    std::int64_t t0 = 0;
    std::vector<double> us;
    std::promise<Status> done;
    void next() {
      t0 = mono_now_ns();
      Status st = peer->client().request("bench.rr", payload, std::chrono::milliseconds(5000),
                                         [this](Result<broker::Message> r) {
                                           const std::int64_t t1 = mono_now_ns();
                                           if (!r.is_ok()) {
                                             done.set_value(r.status());
                                             return;
                                           }
                                           if (i >= warmup) us.push_back(static_cast<double>(t1 - t0) / 1e3);
                                           if (++i == total) {
                                             done.set_value(Status());
                                           } else {
                                             next();
                                           }
                                         });
      if (!st.is_ok()) done.set_value(st);
    }
  };
  State state{&requester, payload, total, s.rr_warmup, 0, 0, {}, {}};
  state.us.reserve(w.messages);
  auto f = state.done.get_future();
  requester.loop().post([&] { state.next(); });
  Status st = f.get();
  Outcome o = latency_outcome(state.us);
  if (!st.is_ok()) {
    o.ok = false;
    o.note = st.to_string();
  }
  return o;
}

// =============================================================================================
// NATS side (libnats)
// =============================================================================================

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s));
}

struct NatsConn {
  natsConnection* nc = nullptr;
  NatsConn(const std::string& addr, const std::string& name, bool send_asap) {
    natsOptions* o = nullptr;
    check(natsOptions_Create(&o), "natsOptions_Create");
    check(natsOptions_SetURL(o, ("nats://" + addr).c_str()), "natsOptions_SetURL");
    check(natsOptions_SetName(o, name.c_str()), "natsOptions_SetName");
    check(natsOptions_SetSendAsap(o, send_asap), "natsOptions_SetSendAsap");
    check(natsOptions_SetAllowReconnect(o, false), "natsOptions_SetAllowReconnect");
    const natsStatus st = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    check(st, "natsConnection_Connect");
  }
  ~NatsConn() {
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  NatsConn(const NatsConn&) = delete;
  NatsConn& operator=(const NatsConn&) = delete;
};

void nats_count(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  static_cast<Counter*>(closure)->hit();
  natsMsg_Destroy(msg);
}

Outcome nats_throughput(const std::string& addr, const Workload& w, const Settings&) {
  std::vector<std::unique_ptr<Counter>> counters;
  std::vector<std::unique_ptr<NatsConn>> conns;
  std::vector<natsSubscription*> subs;
  for (int i = 0; i < w.subscribers; ++i) {
    counters.push_back(std::make_unique<Counter>());
    conns.push_back(std::make_unique<NatsConn>(addr, "bench-sub-" + std::to_string(i), false));
    natsSubscription* sub = nullptr;
    check(natsConnection_Subscribe(&sub, conns.back()->nc, "bench.tp", nats_count, counters.back().get()),
          "natsConnection_Subscribe");
    check(natsSubscription_SetPendingLimits(sub, 100'000'000, 2'000'000'000), "natsSubscription_SetPendingLimits");
    check(natsConnection_Flush(conns.back()->nc), "natsConnection_Flush");
    subs.push_back(sub);
  }
  NatsConn pub(addr, "bench-pub", false);
  const std::string data = random_bytes(w.size, 42);
  std::string err;
  for (std::uint64_t i = 0; i < w.messages; ++i) {
    const natsStatus st = natsConnection_Publish(pub.nc, "bench.tp", data.data(), static_cast<int>(data.size()));
    if (st != NATS_OK) {
      err = std::string("publish: ") + natsStatus_GetText(st);
      break;
    }
  }
  if (err.empty()) {
    const natsStatus st = natsConnection_FlushTimeout(pub.nc, 60000);
    if (st != NATS_OK) err = std::string("flush: ") + natsStatus_GetText(st);
  }
  wait_counters(counters, w.messages, std::chrono::seconds(3));
  std::uint64_t dropped = 0;
  for (auto* sub : subs) {
    int64_t d = 0;
    if (natsSubscription_GetDropped(sub, &d) == NATS_OK) dropped += static_cast<std::uint64_t>(d);
  }
  Outcome o = throughput_outcome(counters, w.messages, dropped);
  if (!err.empty()) {
    o.ok = false;
    o.note += " " + err;
  }
  // Unsubscribe before the counters go: the delivery threads stop with the subscriptions.
  for (auto* sub : subs) {
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
  }
  conns.clear();
  return o;
}

void nats_echo(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  if (const char* reply = natsMsg_GetReply(msg)) {
    natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  }
  natsMsg_Destroy(msg);
}

Outcome nats_request_reply(const std::string& addr, const Workload& w, const Settings& s) {
  NatsConn responder(addr, "bench-responder", s.nats_send_asap_rr);
  natsSubscription* sub = nullptr;
  check(natsConnection_Subscribe(&sub, responder.nc, "bench.rr", nats_echo, nullptr), "natsConnection_Subscribe");
  check(natsConnection_Flush(responder.nc), "natsConnection_Flush");
  NatsConn requester(addr, "bench-requester", s.nats_send_asap_rr);
  const std::string data = random_bytes(w.size, 7);
  std::vector<double> us;
  us.reserve(w.messages);
  std::string err;
  const int total = s.rr_warmup + static_cast<int>(w.messages);
  for (int i = 0; i < total; ++i) {
    natsMsg* reply = nullptr;
    const std::int64_t t0 = mono_now_ns();
    const natsStatus st =
        natsConnection_Request(&reply, requester.nc, "bench.rr", data.data(), static_cast<int>(data.size()), 5000);
    const std::int64_t t1 = mono_now_ns();
    if (st != NATS_OK) {
      err = std::string("request: ") + natsStatus_GetText(st);
      break;
    }
    natsMsg_Destroy(reply);
    if (i >= s.rr_warmup) us.push_back(static_cast<double>(t1 - t0) / 1e3);
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  Outcome o = latency_outcome(us);
  if (!err.empty()) {
    o.ok = false;
    o.note = err;
  }
  return o;
}

// =============================================================================================
// Orchestration and tables
// =============================================================================================

std::string fmtd(const char* f, double v) {
  if (std::isnan(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string fmt_rate(double v) {
  if (std::isnan(v) || v == 0) return "-";
  return v >= 1e6 ? fmtd("%.2f M", v / 1e6) : fmtd("%.0f k", v / 1e3);
}

std::string machine() {
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  ::uname(&u);
  std::ostringstream m;
  m << std::thread::hardware_concurrency() << " CPUs, " << model << ", Linux " << u.release;
  return m.str();
}

using Key = std::pair<std::string, std::string>;  // workload, target

}  // namespace
}  // namespace slip::bench

int main(int argc, char** argv) {
  using namespace slip::bench;
  Settings s;
  std::string threads_csv = "1,2";
  CLI::App app{"broker_bench: slipd against nats-server, same machine, same run"};
  app.add_option("--runs", s.runs, "Repetitions of every workload against every server")->capture_default_str();
  app.add_option("--slipd", s.slipd, "slipd binary")->capture_default_str();
  app.add_option("--nats-server", s.nats_server, "nats-server binary")->capture_default_str();
  app.add_option("--slipd-threads", threads_csv, "slipd --threads values to run, comma-separated")->capture_default_str();
  app.add_option("--server-idle", s.server_idle, "slipd --idle")->capture_default_str();
  app.add_option("--server-spin-us", s.server_spin_us, "slipd --spin-us")->capture_default_str();
  app.add_option("--client-idle", s.client_idles, "Slipstream client loops, each a separate target: block, spin, busy")
      ->delimiter(',');
  app.add_option("--client-spin-us", s.client_spin_us, "Client spin time with --client-idle spin")->capture_default_str();
  app.add_option("--max-pending", s.max_pending, "Slow-consumer bound given to both servers, bytes")->capture_default_str();
  app.add_flag("--metrics-ab", s.metrics_ab,
               "Run every slipd target twice, back to back: metrics on with --http-listen, and --metrics=off");
  app.add_option("--workloads", s.workloads, "tp16 tp128 tp1k tp16k fan128 rr16")->delimiter(',');
  app.add_option("--targets", s.kinds,
                 "native (slipd via Slipstream's client), gateway (slipd's NATS port via libnats), nats (nats-server)")
      ->delimiter(',');
  app.add_option("--scale", s.scale, "Multiplies the message counts")->capture_default_str();
  app.add_option("--batch", s.batch, "Slipstream publishes per loop turn")->capture_default_str();
  app.add_option("--pub-high-water", s.pub_high_water, "Slipstream publisher waits while this many bytes are unsent")
      ->capture_default_str();
  app.add_option("--rr-warmup", s.rr_warmup, "Request/reply round trips before recording")->capture_default_str();
  app.add_option("--rr-samples", s.rr_samples, "Request/reply round trips recorded")->capture_default_str();
  app.add_option("--nats-send-asap", s.nats_send_asap_rr, "libnats SendAsap for request/reply (1/0)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  s.slipd_threads.clear();
  {
    std::stringstream ss(threads_csv);
    for (std::string t; std::getline(ss, t, ',');) s.slipd_threads.push_back(std::stoi(t));
  }
  ::signal(SIGPIPE, SIG_IGN);
  (void)slip::init_logging("warn");
  if (nats_Open(-1) != NATS_OK) {
    std::fprintf(stderr, "broker_bench: nats_Open failed\n");
    return 1;
  }

  auto wanted = [&](const char* k) { return std::find(s.kinds.begin(), s.kinds.end(), k) != s.kinds.end(); };
  std::vector<Target> targets;
  for (int t : s.slipd_threads) {
    if (wanted("gateway")) targets.push_back({"slipd-nats t" + std::to_string(t), false, true, t, {}, {}});
    if (!wanted("native")) continue;
    for (const auto& idle : s.client_idles) {
      auto strategy = slip::io::parse_idle_strategy(idle);
      if (!strategy.is_ok()) {
        std::fprintf(stderr, "broker_bench: %s\n", strategy.status().to_string().c_str());
        return 2;
      }
      slip::io::LoopOptions lo;
      lo.idle = strategy.value();
      lo.spin = std::chrono::microseconds(s.client_spin_us);
      const std::string label = "slipd t" + std::to_string(t) + " c-" + idle;
      if (s.metrics_ab) {
        // Off first: the order of the two alternates nothing, so a reversed run is a separate check.
        targets.push_back({label + " m-off", false, false, t, lo, {"--metrics", "off"}});
        targets.push_back({label + " m-on", false, false, t, lo, {"--metrics", "on"}});
        targets.push_back({label + " m-on+http", false, false, t, lo, {"--metrics", "on", "--http-listen", "127.0.0.1:0"}});
      } else {
        targets.push_back({label, false, false, t, lo, {}});
      }
    }
  }
  if (wanted("nats")) targets.push_back({"nats-server", true, false, 0, {}, {}});
  std::vector<Workload> workloads;
  for (const auto& n : s.workloads) workloads.push_back(workload_by_name(n, s));

  std::printf("# broker_bench: %s\n", machine().c_str());
  std::printf("# slipd --idle %s --spin-us %u; 'slipd tN c-X': slipd --threads N, Slipstream client loops idle X (spin: %u us);\n"
              "# nats-server with its defaults (Go runtime, GOMAXPROCS = all cores); libnats threads block on condition variables\n",
              s.server_idle.c_str(), s.server_spin_us, s.client_spin_us);
  std::printf("# libnats: default options for throughput, SendAsap=%d for request/reply; max_pending %zu B on both servers\n",
              s.nats_send_asap_rr ? 1 : 0, s.max_pending);
  std::printf("# runs=%d, payloads random (incompressible), Slipstream compression off\n", s.runs);
  std::fflush(stdout);

  std::map<Key, std::vector<Outcome>> results;
  for (int run = 0; run < s.runs; ++run) {
    // Each workload runs against every target back to back, so the ratios compare neighbours in time.
    for (const auto& w : workloads) {
      for (const auto& t : targets) {
        // A fresh server for every workload: nothing left over from the previous one.
        try {
          auto [proc, addr] = start_server(t, s);
          Outcome o;
          if (t.nats || t.gateway) {
            o = w.subscribers == 0 ? nats_request_reply(addr, w, s) : nats_throughput(addr, w, s);
          } else {
            o = w.subscribers == 0 ? slip_request_reply(addr, w, s, t.client_loop) : slip_throughput(addr, w, s, t.client_loop);
          }
          if (!proc->running()) {
            o.ok = false;
            o.note += " server exited";
          }
          proc->stop();
          if (w.subscribers == 0) {
            std::printf("run %d %-19s %-7s p50=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus n=%llu %s\n", run + 1,
                        t.label.c_str(), w.name.c_str(), o.p50, o.p99, o.p999, o.max,
                        static_cast<unsigned long long>(o.expected), o.note.c_str());
          } else {
            std::printf("run %d %-19s %-7s per-sub=%s/s aggregate=%s/s received(min)=%llu/%llu lib-dropped=%llu %s\n",
                        run + 1, t.label.c_str(), w.name.c_str(), fmt_rate(o.per_sub_rate).c_str(),
                        fmt_rate(o.aggregate_rate).c_str(), static_cast<unsigned long long>(o.received_min),
                        static_cast<unsigned long long>(o.expected), static_cast<unsigned long long>(o.dropped),
                        o.note.c_str());
          }
          std::fflush(stdout);
          results[{w.name, t.label}].push_back(o);
        } catch (const std::exception& e) {
          std::printf("run %d %-19s %-7s FAILED: %s\n", run + 1, t.label.c_str(), w.name.c_str(), e.what());
          std::fflush(stdout);
          Outcome o;
          o.per_sub_rate = o.aggregate_rate = o.p50 = o.p99 = o.p999 = NAN;
          results[{w.name, t.label}].push_back(o);
        }
      }
    }
  }

  // Medians.
  auto med = [&](const std::string& w, const std::string& t, double Outcome::*f) {
    std::vector<double> v;
    for (const auto& o : results[{w, t}]) v.push_back(o.ok ? o.*f : NAN);
    return median(v);
  };
  std::printf("\n## Medians of %d runs (slipd / nats-server ratios)\n\n", s.runs);
  std::printf("| Workload | Metric |");
  for (const auto& t : targets) std::printf(" %s |", t.label.c_str());
  for (const auto& t : targets) {
    if (!t.nats) std::printf(" %s / nats |", t.label.c_str());
  }
  std::printf(" Goal |\n|---|---|");
  for (std::size_t i = 0; i < targets.size() * 2 - 1; ++i) std::printf("---:|");
  std::printf("---|\n");
  const std::string nats_label = "nats-server";
  for (const auto& w : workloads) {
    struct Row {
      std::string metric;
      double Outcome::*field;
      bool latency;
    };
    std::vector<Row> rows;
    if (w.subscribers == 0) {
      rows = {{"p50 us", &Outcome::p50, true}, {"p99 us", &Outcome::p99, true}, {"p99.9 us", &Outcome::p999, true}};
    } else if (w.subscribers == 1) {
      rows = {{"msgs/s", &Outcome::per_sub_rate, false}};
    } else {
      rows = {{"msgs/s per sub", &Outcome::per_sub_rate, false}, {"msgs/s aggregate", &Outcome::aggregate_rate, false}};
    }
    for (const auto& r : rows) {
      std::printf("| %s | %s |", w.name.c_str(), r.metric.c_str());
      for (const auto& t : targets) {
        const double v = med(w.name, t.label, r.field);
        std::printf(" %s |", r.latency ? fmtd("%.1f", v).c_str() : fmt_rate(v).c_str());
      }
      const double base = med(w.name, nats_label, r.field);
      std::string goal = "";
      for (const auto& t : targets) {
        if (t.nats) continue;
        const double ratio = med(w.name, t.label, r.field) / base;
        std::printf(" %s |", fmtd("%.2fx", ratio).c_str());
        const bool tp_goal = (w.name == "tp16" || w.name == "tp128") && !r.latency;
        const bool rr_goal = w.subscribers == 0 && r.field == &Outcome::p50;
        if (tp_goal || rr_goal) {
          // The native client's goals: 2x and 0.7x; the NATS gateway's (same client both sides): 1.5x and 0.8x.
          const double tp_min = t.gateway ? 1.5 : 2.0, rr_max = t.gateway ? 0.8 : 0.7;
          const bool met = std::isnan(ratio) ? false : (tp_goal ? ratio >= tp_min : ratio <= rr_max);
          if (!goal.empty()) goal += ", ";
          goal += t.label + (tp_goal ? fmtd(" >=%.1fx: ", tp_min) : fmtd(" <=%.1fx: ", rr_max)) + (met ? "met" : "MISSED");
        }
      }
      std::printf(" %s |\n", goal.c_str());
    }
  }
  nats_Close();
  return 0;
}
