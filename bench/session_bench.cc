// End-to-end session benchmarks on 127.0.0.1, each read against the real floor measured on the
// same machine in the same run:
//
//   pingpong    16 B round trips on one interactive stream, with each idle strategy (block, spin,
//               busy) on both sides, against sockperf's TCP ping-pong and our own plain-socket
//               ping-pong (blocking and busy-polling); spin once more with the two processes
//               pinned to different CPUs, because the scheduler's placement decides that case;
//   throughput  one-way 64 B messages on one stream as fast as the session accepts them, counted
//               at the receiver, against a plain TCP sender doing one write() per message;
//   hol         64 B interactive round trips while 100 MB bulk messages stream on another stream
//               of the same connection, against the same round trips with no bulk transfer;
//   udp         sessions over reliable encrypted UDP against sessions over TCP: one-way 64 B
//               msgs/s, one-way 1400 B Gbit/s, and 64 B round trips (p50/p99/p99.9).
//
// Server and client are separate processes (forked from this one, which only orchestrates and
// never starts a thread), each with one EventLoop. Every benchmark runs --runs times, the cases
// interleaved within a run, and the tables give the median of the per-run figures. Latency
// percentiles come from every recorded sample (sorted), never from averages.
//
// Run: scripts/bench-sessions.sh (make bench-sessions), or e.g.
//   build/release/bench/session_bench --runs 5 pingpong
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "child_process.h"
#include "core/clock.h"
#include "core/logging.h"
#include "io/loop_group.h"
#include "io/run_on.h"
#include "latency_stats.h"
#include "plain_tcp_peer.h"
#include "session/client.h"
#include "session/session.h"
#include "sockperf_runner.h"
#include "transport/tcp/tcp.h"
#include "transport/udp/udp.h"

namespace slip::bench {
namespace {

using session::Priority;
using session::Session;
using session::SessionOptions;

// Per-stream flow-control window both sides advertise in the handshake; 0 keeps the protocol
// default. Set by the parent before it forks (an experiment knob, not a default).
std::uint32_t g_initial_credit = 0;

// Which transport the sessions of a pair run on: TCP, or reliable encrypted UDP with a key pair
// made by the parent before it forks (the server holds it, the client pins its public half).
struct Wire {
  bool udp = false;
  transport::udp::KeyPair key;
  std::size_t max_datagram = 0;  // MtuOptions::max_packet_size on both ends (0: the transport's default)
};
Wire g_wire;

const char* wire_name(bool udp) { return udp ? "UDP (encrypted)" : "TCP"; }

// No child may run longer than this (SIGALRM), whatever goes wrong.
constexpr std::chrono::seconds kChildLimit{600};

std::string fmt_us(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v < 100 ? "%.2f" : "%.1f", v);
  return b;
}
std::string fmt_ratio(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2fx", v);
  return b;
}
std::string fmt_rate(double v) {
  char b[32];
  if (v >= 1e6) {
    std::snprintf(b, sizeof b, "%.2f M", v / 1e6);
  } else {
    std::snprintf(b, sizeof b, "%.0f k", v / 1e3);
  }
  return b;
}

std::string percentiles_words(const std::string& prefix, const Percentiles& p) {
  char b[256];
  std::snprintf(b, sizeof b, "%smin=%.3f %sp50=%.3f %sp99=%.3f %sp999=%.3f %smax=%.3f %sn=%zu", prefix.c_str(), p.min,
                prefix.c_str(), p.p50, prefix.c_str(), p.p99, prefix.c_str(), p.p999, prefix.c_str(), p.max,
                prefix.c_str(), p.n);
  return b;
}

Percentiles percentiles_from(const std::map<std::string, double>& m, const std::string& prefix) {
  Percentiles p;
  auto get = [&](const char* k) {
    auto it = m.find(prefix + k);
    return it == m.end() ? NAN : it->second;
  };
  p.min = get("min");
  p.p50 = get("p50");
  p.p99 = get("p99");
  p.p999 = get("p999");
  p.max = get("max");
  const double n = get("n");
  p.n = std::isnan(n) ? 0 : static_cast<std::size_t>(n);
  return p;
}

// This process's CPU time and context switches so far, as report words with `prefix`.
std::string rusage_words(const std::string& prefix) {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const double cpu = static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
                     static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  char b[160];
  std::snprintf(b, sizeof b, " %scpu=%.3f %svcsw=%ld %sivcsw=%ld", prefix.c_str(), cpu, prefix.c_str(), u.ru_nvcsw,
                prefix.c_str(), u.ru_nivcsw);
  return b;
}

// Restricts this process (and the threads it starts later) to one CPU.
void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) std::perror("session_bench: sched_setaffinity");
}

[[noreturn]] void exit_child(int rc) {
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(rc);  // no destructors: the loop thread may still be running
}

using io::run_on;

// =============================================================================================
// Server process
// =============================================================================================

enum class ServerMode { kEcho, kCount };

// Echo mode: every message on a non-bulk stream goes back on the same stream; bulk streams are
// drained and dropped. Count mode: messages are counted (with the arrival times of the first and
// the last); at `expect` a 1-byte "done" goes back on the stream.
class BenchServer final : public session::SessionHandler, public session::StreamHandler {
 public:
  BenchServer(ServerMode mode, std::uint64_t expect) : mode_(mode), expect_(expect) {}

  session::StreamHandler* on_stream_open(Session&, std::uint64_t, Priority p) override {
    return p == Priority::kBulk ? static_cast<session::StreamHandler*>(&sink_) : this;
  }
  void on_message(Session& s, std::uint64_t stream, Chain message) override {
    if (mode_ == ServerMode::kEcho) {
      Status st = s.send(stream, std::move(message));
      if (!st.is_ok()) {
        SLIP_LOG_ERROR("echo failed: {}", st.to_string());
        s.fail(st);
      }
      return;
    }
    // The clock is read twice per run, not per message: the receiver's own cost stays out.
    if (count_ == 0) first_ns_ = mono_now_ns();
    bytes_ += message.size();
    if (++count_ == expect_) {
      last_ns_ = mono_now_ns();
      (void)s.send(stream, Chain(Slice::from_static("d")));
    }
  }
  void on_closed(Session& s, const Status& reason) override {
    frames_in_ = s.stats().frames_in;
    bulk_bytes_ = sink_.bytes;
    close_reason_ = reason;
    closed_.set_value();
  }

  std::future<void> closed() { return closed_.get_future(); }

  // Read after closed() is ready.
  std::uint64_t count_ = 0;
  std::uint64_t bytes_ = 0;
  std::int64_t first_ns_ = 0;
  std::int64_t last_ns_ = 0;
  std::uint64_t frames_in_ = 0;
  std::uint64_t bulk_bytes_ = 0;
  Status close_reason_;

 private:
  struct Sink final : session::StreamHandler {
    void on_message(Session&, std::uint64_t, Chain m) override { bytes += m.size(); }
    std::uint64_t bytes = 0;
  };

  ServerMode mode_;
  std::uint64_t expect_;
  Sink sink_;
  std::promise<void> closed_;
};

// The server process: reports "port=N", serves one session, reports its figures when the session
// ends, exits.
int server_main(int fd, ServerMode mode, io::LoopOptions lo, SessionOptions so, std::uint64_t expect,
                const transport::TcpOptions& tcp = {}) {
  io::LoopGroup loops(1, lo);
  loops.start();
  wire::ServerHandshakeConfig hs;
  if (g_initial_credit > 0) hs.initial_credit = g_initial_credit;
  BenchServer handler(mode, expect);
  std::vector<std::shared_ptr<Session>> sessions;  // loop thread only
  std::uint64_t ids = 0;
  auto on_accept = [&](transport::ConnectionPtr c) {
    auto s = Session::server(std::move(c), hs, ++ids, so, &handler);
    sessions.push_back(s);
    s->start();
  };
  Result<std::unique_ptr<transport::Listener>> listener = invalid_argument("no listener");
  transport::udp::UdpListener* udp_listener = nullptr;  // for its packet counts at the end
  if (g_wire.udp) {
    transport::udp::UdpOptions uo;
    uo.static_key = g_wire.key;
    uo.connection.mtu.max_packet_size = g_wire.max_datagram;
    auto l = transport::udp::udp_listen(loops, transport::HostPort{"127.0.0.1", 0}, uo, on_accept);
    if (l.is_ok()) {
      udp_listener = l->get();
      listener = std::unique_ptr<transport::Listener>(std::move(l).value());
    } else {
      listener = l.status();
    }
  } else {
    listener = transport::tcp_listen(loops, transport::HostPort{"127.0.0.1", 0}, tcp, on_accept);
  }
  if (!listener.is_ok()) {
    report(fd, "error=1 " + listener.status().to_string());
    exit_child(1);
  }
  auto hp = transport::parse_host_port((*listener)->local_address());
  report(fd, "port=" + std::to_string(hp->port));
  handler.closed().wait();
  std::string packets;
  if (udp_listener != nullptr) {
    // What the server's endpoint received (data packets) and sent (mostly ACKs).
    const transport::udp::UdpTraffic t = udp_listener->stats().traffic;
    packets = " udp_rx=" + std::to_string(t.packets_received) + " udp_tx=" + std::to_string(t.packets_sent) +
              " udp_dup=" + std::to_string(t.packets_duplicate);
  }
  (*listener)->stop();
  char b[256];
  const double secs = static_cast<double>(handler.last_ns_ - handler.first_ns_) / 1e9;
  std::snprintf(b, sizeof b, "count=%" PRIu64 " bytes=%" PRIu64 " seconds=%.6f rate=%.1f frames_in=%" PRIu64
                " bulk_bytes=%" PRIu64,
                handler.count_, handler.bytes_, secs,
                handler.count_ > 1 && secs > 0 ? static_cast<double>(handler.count_ - 1) / secs : 0.0,
                handler.frames_in_, handler.bulk_bytes_);
  report(fd, b + packets + rusage_words("s_"));
  // Disconnected: the TCP client exited; cancelled: the UDP client said GOAWAY ("client stopping").
  const bool clean = handler.close_reason_.is_ok() || handler.close_reason_.code() == StatusCode::kDisconnected ||
                     handler.close_reason_.code() == StatusCode::kCancelled;
  if (!clean) std::fprintf(stderr, "server: session ended with %s\n", handler.close_reason_.to_string().c_str());
  exit_child(clean ? 0 : 1);
}

// =============================================================================================
// Client processes
// =============================================================================================

// The client's dialer for the pair's transport.
session::Dialer bench_dialer(std::uint16_t port, const transport::TcpOptions& tcp = {}) {
  if (g_wire.udp) {
    transport::udp::UdpOptions uo;
    uo.server_key = g_wire.key.public_key;
    uo.connection.mtu.max_packet_size = g_wire.max_datagram;
    return session::udp_dialer(transport::HostPort{"127.0.0.1", port}, uo);
  }
  return session::tcp_dialer(transport::HostPort{"127.0.0.1", port}, tcp);
}

// What the client side of a session benchmark has in common: a reconnecting Client (with
// reconnection off: a failure ends the run), and a promise kept once.
class ClientBase : public session::SessionHandler, public session::StreamHandler {
 public:
  std::future<Status> finished() { return finished_.get_future(); }
  void attach(session::Client* c) { client_ = c; }

  void on_closed(Session&, const Status& reason) override {
    finish(reason.is_ok() ? disconnected("session closed before the benchmark finished") : reason);
    if (!closed_set_) {
      closed_set_ = true;
      closed_.set_value();
    }
  }

  // Over UDP no kernel tells the server that the client process went away: the client closes
  // its connection (a CLOSE packet the server hears) before it exits.
  void close_gracefully(io::EventLoop& loop) {
    if (!g_wire.udp || client_ == nullptr) return;
    auto closed = closed_.get_future();
    run_on(loop, [&] {
      if (Session* s = client_->session()) s->abort(cancelled("benchmark done"));
      client_->stop();
    });
    closed.wait_for(std::chrono::seconds(5));
    // The transport's send pass was posted behind the abort: let it run.
    run_on(loop, [] {});
    run_on(loop, [] {});
  }

 protected:
  void finish(Status s) {
    if (done_) return;
    done_ = true;
    finished_.set_value(std::move(s));
  }
  bool done_ = false;
  session::Client* client_ = nullptr;

 private:
  std::promise<Status> finished_;
  std::promise<void> closed_;
  bool closed_set_ = false;
};

// ---- Round trips (pingpong and hol) ---------------------------------------------------------

struct RttPlan {
  std::size_t size = 16;
  std::uint64_t warmup = 2000;
  std::uint64_t count = 20000;
  std::size_t bulk_bytes = 0;  // > 0: a second phase with bulk messages of this size in flight
};

// One interactive stream; the next message leaves when the echo of the previous one arrived.
// With a bulk plan, a second phase repeats the round trips while bulk messages are in flight on
// a bulk stream of the same session (refilled on on_writable, so one is always queued).
class RttClient final : public ClientBase {
 public:
  // `bulk_payload`: what each bulk message carries (with a bulk plan).
  RttClient(io::EventLoop& loop, const RttPlan& plan, Slice bulk_payload)
      : plan_(plan),
        payload_(plan.size, 'p'),
        timer_(loop.context()),
        bulk_handler_(*this),
        bulk_payload_(std::move(bulk_payload)) {
    samples_[0].reserve(plan.count);
    samples_[1].reserve(plan.count);
  }

  void on_ready(Session& s) override {
    auto id = s.open_stream(Priority::kInteractive, this);
    if (!id.is_ok()) return finish(id.status());
    stream_ = *id;
    send_next(s);
  }

  void on_message(Session& s, std::uint64_t stream, Chain message) override {
    const std::int64_t now = mono_now_ns();
    if (stream != stream_ || done_) return;
    if (message.size() != plan_.size) return finish(internal_error("echo of the wrong size"));
    ++in_phase_;
    if (in_phase_ > plan_.warmup) samples_[phase_].push_back(now - sent_ns_);
    if (in_phase_ < plan_.warmup + plan_.count) return send_next(s);
    if (phase_ == 0 && plan_.bulk_bytes > 0) return start_bulk(s);
    if (phase_ == 1) {
      bulk_end_ns_ = now;
      bulk_framed_end_ = bulk_framed(s);
      bulk_held_ = s.stats().bulk_held;
    }
    finish(Status());
  }

  // Read after finished().
  std::vector<std::int64_t> samples_[2];
  std::uint64_t bulk_idle_at_send_ = 0;  // phase-1 round trips that left with no bulk queued
  std::uint64_t bulk_framed_start_ = 0, bulk_framed_end_ = 0;
  std::int64_t bulk_start_ns_ = 0, bulk_end_ns_ = 0;
  std::uint64_t bulk_messages_ = 0;
  std::uint64_t bulk_held_ = 0;  // SessionStats::bulk_held at the end

 private:
  struct BulkHandler final : session::StreamHandler {
    explicit BulkHandler(RttClient& c) : owner(c) {}
    void on_message(Session&, std::uint64_t, Chain) override {}
    void on_writable(Session& s, std::uint64_t) override { owner.feed_bulk(s); }
    RttClient& owner;
  };

  void send_next(Session& s) {
    if (phase_ == 1 && s.stream_buffered(bulk_stream_) == 0) ++bulk_idle_at_send_;
    sent_ns_ = mono_now_ns();
    Status st = s.send(stream_, Chain(Slice::from_static(payload_)));
    if (!st.is_ok()) finish(st);
  }

  // Bulk bytes the session has framed (handed towards the transport) so far.
  std::uint64_t bulk_framed(Session& s) const { return bulk_queued_ - s.stream_buffered(bulk_stream_); }

  void feed_bulk(Session& s) {
    while (!done_) {
      Status st = s.send(bulk_stream_, Chain(bulk_payload_));
      if (st.code() == StatusCode::kOverloaded) return;  // on_writable calls again
      if (!st.is_ok()) return finish(st);
      bulk_queued_ += bulk_payload_.size();
      ++bulk_messages_;
    }
  }

  void start_bulk(Session& s) {
    auto id = s.open_stream(Priority::kBulk, &bulk_handler_);
    if (!id.is_ok()) return finish(id.status());
    bulk_stream_ = *id;
    feed_bulk(s);
    wait_bulk_under_way();
  }

  // Phase 1 starts once the bulk transfer is well under way (1 MiB framed).
  void wait_bulk_under_way() {
    timer_.expires_after(std::chrono::microseconds(200));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || done_) return;
      Session* s = client_->session();
      if (s == nullptr) return finish(disconnected("session gone"));
      if (bulk_framed(*s) < (1u << 20)) return wait_bulk_under_way();
      phase_ = 1;
      in_phase_ = 0;
      bulk_start_ns_ = mono_now_ns();
      bulk_framed_start_ = bulk_framed(*s);
      send_next(*s);
    });
  }

  RttPlan plan_;
  std::string payload_;
  boost::asio::steady_timer timer_;
  BulkHandler bulk_handler_;
  Slice bulk_payload_;
  std::uint64_t stream_ = 0;
  std::uint64_t bulk_stream_ = 0;
  std::uint64_t bulk_queued_ = 0;
  int phase_ = 0;
  std::uint64_t in_phase_ = 0;
  std::int64_t sent_ns_ = 0;
};

int rtt_client_main(int fd, std::uint16_t port, io::LoopOptions lo, SessionOptions so, const RttPlan& plan,
                    const transport::TcpOptions& tcp = {}) {
  Slice bulk;
  if (plan.bulk_bytes > 0) {
    // Random bytes, made once before the loop starts: incompressible, and every bulk message
    // shares the one block.
    std::vector<std::uint8_t> junk(plan.bulk_bytes);
    std::mt19937_64 rng(42);
    for (std::size_t i = 0; i + 8 <= junk.size(); i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(&junk[i], &v, 8);
    }
    bulk = Slice::copy_of(ByteView(junk.data(), junk.size()));
  }
  auto loops = std::make_unique<io::LoopGroup>(1, lo);
  loops->start();
  RttClient h(loops->loop(0), plan, std::move(bulk));
  RttClient* handler = &h;
  session::ClientOptions o;
  o.dial = bench_dialer(port, tcp);
  o.session = so;
  if (g_initial_credit > 0) o.handshake.initial_credit = g_initial_credit;
  o.reconnect.enabled = false;
  auto fut = handler->finished();
  std::unique_ptr<session::Client> client;
  run_on(loops->loop(0), [&] {
    client = std::make_unique<session::Client>(loops->loop(0), o, handler);
    handler->attach(client.get());
    client->start();
  });
  Status st = fut.get();
  if (!st.is_ok()) {
    report(fd, "error=1 " + st.to_string());
    exit_child(1);
  }
  h.close_gracefully(loops->loop(0));
  std::string line = percentiles_words("q_", percentiles_us(h.samples_[0]));
  if (plan.bulk_bytes > 0) {
    const double secs = static_cast<double>(h.bulk_end_ns_ - h.bulk_start_ns_) / 1e9;
    char b[256];
    std::snprintf(b, sizeof b,
                  " bulk_mbps=%.1f bulk_idle=%" PRIu64 " bulk_messages=%" PRIu64 " bulk_seconds=%.3f bulk_held=%" PRIu64,
                  static_cast<double>(h.bulk_framed_end_ - h.bulk_framed_start_) / 1e6 / secs, h.bulk_idle_at_send_,
                  h.bulk_messages_, secs, h.bulk_held_);
    line += " " + percentiles_words("b_", percentiles_us(h.samples_[1])) + b;
  }
  report(fd, line + rusage_words("c_"));
  exit_child(0);
}

// ---- One-way throughput -------------------------------------------------------------------

// Sends `count` messages on one stream as fast as the session takes them: on kOverloaded it
// returns to the loop and resumes on on_writable; with batch > 0 it also returns to the loop
// after every `batch` messages. Finishes when the server's "done" arrives.
class Sender final : public ClientBase {
 public:
  Sender(io::EventLoop& loop, std::size_t size, std::uint64_t count, std::uint64_t batch)
      : loop_(loop), payload_(size, 'm'), count_(count), batch_(batch) {}

  void on_ready(Session& s) override {
    auto id = s.open_stream(Priority::kStream, this);
    if (!id.is_ok()) return finish(id.status());
    stream_ = *id;
    start_ns_ = mono_now_ns();
    feed(s);
  }
  void on_writable(Session& s, std::uint64_t) override { feed(s); }
  void on_message(Session& s, std::uint64_t, Chain) override {
    done_ns_ = mono_now_ns();
    stats_ = s.stats();
    finish(Status());
  }

  // Read after finished().
  std::int64_t start_ns_ = 0, done_ns_ = 0;
  std::uint64_t overloaded_ = 0, yields_ = 0;
  session::SessionStats stats_;

 private:
  void feed(Session& s) {
    std::uint64_t in_batch = 0;
    while (sent_ < count_ && !done_) {
      Status st = s.send(stream_, Chain(Slice::from_static(payload_)));
      if (st.code() == StatusCode::kOverloaded) {
        ++overloaded_;
        return;
      }
      if (!st.is_ok()) return finish(st);
      ++sent_;
      if (batch_ > 0 && ++in_batch == batch_ && sent_ < count_) {
        ++yields_;
        loop_.post([this] {
          Session* ss = client_->session();
          if (ss != nullptr && ss->ready() && !done_) feed(*ss);
        });
        return;
      }
    }
  }

  io::EventLoop& loop_;
  std::string payload_;
  std::uint64_t count_;
  std::uint64_t batch_;
  std::uint64_t stream_ = 0;
  std::uint64_t sent_ = 0;
};

int sender_main(int fd, std::uint16_t port, io::LoopOptions lo, SessionOptions so, std::size_t size,
                std::uint64_t count, std::uint64_t batch) {
  auto loops = std::make_unique<io::LoopGroup>(1, lo);
  loops->start();
  Sender h(loops->loop(0), size, count, batch);
  session::ClientOptions o;
  o.dial = bench_dialer(port);
  o.session = so;
  if (g_initial_credit > 0) o.handshake.initial_credit = g_initial_credit;
  o.reconnect.enabled = false;
  auto fut = h.finished();
  std::unique_ptr<session::Client> client;
  run_on(loops->loop(0), [&] {
    client = std::make_unique<session::Client>(loops->loop(0), o, &h);
    h.attach(client.get());
    client->start();
  });
  Status st = fut.get();
  if (!st.is_ok()) {
    report(fd, "error=1 " + st.to_string());
    exit_child(1);
  }
  h.close_gracefully(loops->loop(0));
  std::uint64_t chunks = 0;
  for (auto c : h.stats_.chunks_out) chunks += c;
  char b[320];
  std::snprintf(b, sizeof b,
                "send_seconds=%.6f overloaded=%" PRIu64 " yields=%" PRIu64 " flushes=%" PRIu64 " chunks=%" PRIu64
                " credit_stalls=%" PRIu64 " buffered_max=%" PRIu64,
                static_cast<double>(h.done_ns_ - h.start_ns_) / 1e9, h.overloaded_, h.yields_, h.stats_.flushes, chunks,
                h.stats_.credit_stalls, h.stats_.send_buffered_max);
  report(fd, b + rusage_words("c_"));
  exit_child(0);
}

// =============================================================================================
// Orchestration (the parent process: no threads, only children)
// =============================================================================================

struct PairResult {
  bool ok = false;
  std::string error;
  std::map<std::string, double> server;
  std::map<std::string, double> client;
  double foreign_cpus = 0;  // other processes' CPU use during the pair's life, in cores
};

// Other processes' CPU use (cores) during every pair run so far, and since the last call to
// take_foreign(): the noise indicator printed with each run and under each table.
std::vector<double> g_foreign_all;
std::vector<double> g_foreign_recent;

// The largest foreign CPU use among the pairs since the last call.
double take_foreign() {
  double m = 0;
  for (double f : g_foreign_recent) m = std::max(m, f);
  g_foreign_recent.clear();
  return m;
}

void print_foreign_summary() {
  if (g_foreign_all.empty()) return;
  std::printf("Other processes on the machine used a median of %.2f CPUs (max %.2f) while these pairs ran "
              "(machine busy time minus ours, from /proc/stat).\n",
              median(g_foreign_all), *std::max_element(g_foreign_all.begin(), g_foreign_all.end()));
}

// Starts a server child, then a client child with the server's port; collects both reports.
// Where the two processes run: wherever the scheduler puts them, the server on CPU 0 and the
// client on CPU 1, or both on CPU 0 (a core shared with the peer, as on a busy machine).
enum class Placement { kFree, kSplit, kSameCpu };

PairResult run_pair(const std::function<int(int)>& server_body,
                    const std::function<int(int, std::uint16_t)>& client_body, Placement placement = Placement::kFree) {
  PairResult r;
  const CpuSample before = sample_cpu();
  ChildProcess server = ChildProcess::spawn(
      [&](int fd) {
        if (placement != Placement::kFree) pin_to_cpu(0);
        return server_body(fd);
      },
      kChildLimit);
  auto port_line = server.read_line(std::chrono::seconds(30));
  auto port_report = port_line ? parse_report(*port_line) : std::map<std::string, double>{};
  if (!port_report.count("port")) {
    r.error = "server did not report its port: " + port_line.value_or("(nothing)");
    return r;
  }
  const auto port = static_cast<std::uint16_t>(port_report["port"]);
  ChildProcess client = ChildProcess::spawn(
      [&](int fd) {
        if (placement != Placement::kFree) pin_to_cpu(placement == Placement::kSplit ? 1 : 0);
        return client_body(fd, port);
      },
      kChildLimit);
  const std::string client_out = client.read_all(kChildLimit);
  const int crc = client.wait(std::chrono::seconds(10));
  const std::string server_out = server.read_all(std::chrono::seconds(30));
  const int src = server.wait(std::chrono::seconds(10));
  if (crc != 0 || src != 0) {
    r.error = "client exited with " + std::to_string(crc) + " (" + client_out + "), server with " +
              std::to_string(src) + " (" + server_out + ")";
    return r;
  }
  r.client = parse_report(client_out);
  r.server = parse_report(server_out);
  r.foreign_cpus = foreign_cpus(before, sample_cpu());
  g_foreign_all.push_back(r.foreign_cpus);
  g_foreign_recent.push_back(r.foreign_cpus);
  r.ok = true;
  return r;
}

struct Common {
  int runs = 5;
  std::chrono::microseconds spin{50};
  bool verbose = true;
};

io::LoopOptions loop_options(io::IdleStrategy idle, const Common& c) {
  io::LoopOptions lo;
  lo.idle = idle;
  lo.spin = c.spin;
  return lo;
}

std::string case_name(io::IdleStrategy s, const Common& c, Placement placement = Placement::kFree,
                      bool spin_adaptive = true) {
  std::string n(io::idle_strategy_name(s));
  if (s == io::IdleStrategy::kSpin) n += " " + std::to_string(c.spin.count()) + " us";
  if (s == io::IdleStrategy::kSpin && !spin_adaptive) n += " fixed window (before)";
  if (placement == Placement::kSplit) n += ", pinned (server CPU 0, client CPU 1)";
  if (placement == Placement::kSameCpu) n += ", both on CPU 0";
  return n;
}

void print_machine() {
  std::printf("machine: %ld CPUs online\n", ::sysconf(_SC_NPROCESSORS_ONLN));
}

double median_of(const std::vector<Percentiles>& v, double Percentiles::*field) {
  std::vector<double> x;
  for (const auto& p : v) x.push_back(p.*field);
  return median(x);
}

// ---- pingpong -----------------------------------------------------------------------------

// A socket ping-pong without sessions, in two child processes: the floor our own code adds to.
bool plain_pingpong(const RttPlan& plan, bool busy, Percentiles* out, std::string* error) {
  PairResult pr = run_pair(
      [&](int fd) {
        std::string err;
        std::uint16_t port = 0;
        const int l = listen_loopback(&port, &err);
        if (l < 0) {
          report(fd, "error=1 " + err);
          return 1;
        }
        report(fd, "port=" + std::to_string(port));
        if (!echo_bytes(l, busy, &err)) {
          report(fd, "error=1 " + err);
          return 1;
        }
        report(fd, "done=1");
        return 0;
      },
      [&](int fd, std::uint16_t port) {
        std::string err;
        std::vector<std::int64_t> samples;
        samples.reserve(plan.count);
        const int sfd = connect_loopback(port, &err);
        if (sfd < 0 || !ping_pong(sfd, plan.size, plan.warmup, plan.count, busy, &samples, &err)) {
          report(fd, "error=1 " + err);
          return 1;
        }
        ::close(sfd);
        report(fd, percentiles_words("q_", percentiles_us(samples)));
        return 0;
      });
  if (!pr.ok) {
    *error = pr.error;
    return false;
  }
  *out = percentiles_from(pr.client, "q_");
  return true;
}

int cmd_pingpong(const Common& c, const RttPlan& plan, const std::vector<std::string>& idles,
                 const std::vector<std::string>& pinned_idles, const std::vector<std::string>& same_cpu_idles,
                 const std::string& sockperf, int sockperf_seconds,
                 bool with_plain) {
  struct Case {
    io::IdleStrategy idle;
    Placement placement;
    bool spin_adaptive;
  };
  std::vector<Case> strategies;
  for (const auto* list : {&idles, &pinned_idles, &same_cpu_idles}) {
    for (const auto& name : *list) {
      // "spin-fixed": the spin strategy as it was before its window adapted.
      const bool fixed = name == "spin-fixed";
      auto s = io::parse_idle_strategy(fixed ? "spin" : name);
      if (!s.is_ok()) {
        std::fprintf(stderr, "%s (or spin-fixed)\n", s.status().to_string().c_str());
        return 2;
      }
      const Placement where = list == &idles ? Placement::kFree
                              : list == &pinned_idles ? Placement::kSplit
                                                      : Placement::kSameCpu;
      strategies.push_back(Case{*s, where, !fixed});
    }
  }
  auto name_of = [&](const Case& k) { return case_name(k.idle, c, k.placement, k.spin_adaptive); };
  const bool with_sockperf = !sockperf.empty() && sockperf != "none";
  struct Row {
    std::string name;
    std::vector<Percentiles> runs;
    std::vector<double> vs_sp_p50, vs_sp_min, vs_busy_p50;  // this row's p50 over the same run's floors
    std::vector<double> switches_per_rt;                     // voluntary context switches, both sides
  };
  std::vector<Row> rows;
  Row* sp_row = nullptr;
  Row* plain_block = nullptr;
  Row* plain_busy = nullptr;
  rows.reserve(3 + strategies.size());
  if (with_sockperf) sp_row = &rows.emplace_back(Row{"sockperf TCP ping-pong (blocking recvfrom, both sides)", {}, {}, {}, {}, {}});
  if (with_plain) {
    plain_block = &rows.emplace_back(Row{"plain TCP sockets, blocking read() (ours)", {}, {}, {}, {}, {}});
    plain_busy = &rows.emplace_back(Row{"plain TCP sockets, busy-poll recv(MSG_DONTWAIT) (ours)", {}, {}, {}, {}, {}});
  }
  const std::size_t first_session = rows.size();
  for (const Case& k : strategies) rows.emplace_back(Row{"session, " + name_of(k), {}, {}, {}, {}, {}});

  SessionOptions so;  // defaults: 16 B is below the compressor's minimum size anyway
  std::string sockperf_cmd;
  bool halved = false;
  std::printf("## pingpong: %zu B round trips on one interactive stream, %" PRIu64 " after %" PRIu64
              " warm-up, %d runs\n",
              plan.size, plan.count, plan.warmup, c.runs);
  for (int run = 0; run < c.runs; ++run) {
    std::vector<Percentiles> this_run(rows.size());
    if (sp_row) {
      SockperfResult r = run_sockperf_pingpong(sockperf, static_cast<int>(plan.size), sockperf_seconds);
      if (!r.ok) {
        std::fprintf(stderr, "sockperf failed: %s\n", r.error.c_str());
        return 1;
      }
      sockperf_cmd = r.command;
      halved = r.halved;
      this_run[0] = r.rtt;
    }
    if (with_plain) {
      std::string err;
      if (!plain_pingpong(plan, false, &this_run[plain_block - rows.data()], &err) ||
          !plain_pingpong(plan, true, &this_run[plain_busy - rows.data()], &err)) {
        std::fprintf(stderr, "plain TCP ping-pong failed: %s\n", err.c_str());
        return 1;
      }
    }
    for (std::size_t i = 0; i < strategies.size(); ++i) {
      io::LoopOptions lo = loop_options(strategies[i].idle, c);
      lo.spin_adaptive = strategies[i].spin_adaptive;
      PairResult pr = run_pair([&](int fd) { return server_main(fd, ServerMode::kEcho, lo, so, 0); },
                               [&](int fd, std::uint16_t port) { return rtt_client_main(fd, port, lo, so, plan); },
                               strategies[i].placement);
      if (!pr.ok) {
        std::fprintf(stderr, "pingpong (%s) failed: %s\n", name_of(strategies[i]).c_str(), pr.error.c_str());
        return 1;
      }
      this_run[first_session + i] = percentiles_from(pr.client, "q_");
      rows[first_session + i].switches_per_rt.push_back((pr.client["c_vcsw"] + pr.server["s_vcsw"]) /
                                                        static_cast<double>(plan.count + plan.warmup));
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      Row& row = rows[i];
      const Percentiles& p = this_run[i];
      row.runs.push_back(p);
      if (sp_row) {
        row.vs_sp_p50.push_back(p.p50 / this_run[0].p50);
        row.vs_sp_min.push_back(p.p50 / this_run[0].min);
      }
      if (plain_busy) row.vs_busy_p50.push_back(p.p50 / this_run[plain_busy - rows.data()].p50);
      std::printf("run %d %s: min %s p50 %s p99 %s p99.9 %s max %s us", run + 1, row.name.c_str(), fmt_us(p.min).c_str(),
                  fmt_us(p.p50).c_str(), fmt_us(p.p99).c_str(), fmt_us(p.p999).c_str(), fmt_us(p.max).c_str());
      if (!row.switches_per_rt.empty()) std::printf(" (%.2f voluntary context switches per round trip)", row.switches_per_rt.back());
      std::printf("\n");
    }
    std::printf("run %d: other processes used up to %.2f CPUs during these pairs\n", run + 1, take_foreign());
    std::fflush(stdout);
  }

  auto range = [](const std::vector<Percentiles>& v) {
    double lo = 1e300, hi = 0;
    for (const auto& p : v) {
      lo = std::min(lo, p.p50);
      hi = std::max(hi, p.p50);
    }
    return fmt_us(lo) + "-" + fmt_us(hi);
  };
  auto ratio_or_dash = [](const std::vector<double>& v) { return v.empty() ? std::string("-") : fmt_ratio(median(v)); };
  std::printf("\n### Ping-pong round trip, %zu B, 127.0.0.1 (us, median of %d runs)\n\n", plan.size, c.runs);
  std::printf("| Case | min | p50 | p99 | p99.9 | p50 range over runs | p50 / sockperf p50 | p50 / sockperf min | "
              "p50 / busy-poll socket p50 |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    std::printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.name.c_str(),
                fmt_us(median_of(row.runs, &Percentiles::min)).c_str(), fmt_us(median_of(row.runs, &Percentiles::p50)).c_str(),
                fmt_us(median_of(row.runs, &Percentiles::p99)).c_str(),
                fmt_us(median_of(row.runs, &Percentiles::p999)).c_str(), range(row.runs).c_str(),
                ratio_or_dash(row.vs_sp_p50).c_str(), ratio_or_dash(row.vs_sp_min).c_str(),
                ratio_or_dash(row.vs_busy_p50).c_str());
  }
  std::printf("\nRatios are medians of the per-run ratios (each against the floors measured in the same run).\n");
  print_foreign_summary();
  for (std::size_t i = 0; i < strategies.size(); ++i) {
    std::printf("session, %s: %.2f voluntary context switches per round trip (client + server, median)\n",
                name_of(strategies[i]).c_str(), median(rows[first_session + i].switches_per_rt));
  }
  if (!sp_row) {
    std::printf("sockperf was not run (--sockperf none): goals not evaluated.\n");
    return 0;
  }
  std::printf("sockperf: `%s` (%s)\n", sockperf_cmd.c_str(),
              halved ? "it printed one-way latency: doubled to RTT" : "--full-rtt: it printed round-trip times");
  std::printf("\nGoals:\n");
  for (std::size_t i = 0; i < strategies.size(); ++i) {
    const Row& row = rows[first_session + i];
    if (strategies[i].idle == io::IdleStrategy::kSpin && strategies[i].spin_adaptive &&
        strategies[i].placement == Placement::kFree) {
      const double r = median(row.vs_sp_p50);
      std::printf("- default strategy (%s): p50 no worse than sockperf's p50: %s (%.2fx)\n", name_of(strategies[i]).c_str(),
                  r <= 1.0 ? "MET" : "MISSED", r);
    }
  }
  for (std::size_t i = 0; i < strategies.size(); ++i) {
    if (strategies[i].idle == io::IdleStrategy::kBlock || strategies[i].placement == Placement::kSameCpu) continue;
    const double r = median(rows[first_session + i].vs_sp_min);
    std::printf("- spinning (%s): p50 within 2x of sockperf's minimum round trip: %s (%.2fx)\n",
                name_of(strategies[i]).c_str(), r <= 2.0 ? "MET" : "MISSED", r);
  }
  return 0;
}

// ---- throughput ---------------------------------------------------------------------------

int cmd_throughput(const Common& c, std::size_t size, std::uint64_t count, std::uint64_t plain_count,
                   std::uint64_t batch, const std::string& idle_name) {
  auto idle = io::parse_idle_strategy(idle_name);
  if (!idle.is_ok()) {
    std::fprintf(stderr, "%s\n", idle.status().to_string().c_str());
    return 2;
  }
  const io::LoopOptions lo = loop_options(*idle, c);
  SessionOptions so;
  so.compression.codecs = 0;  // compression off (64 B is under its minimum size in any case)
  std::vector<double> ours, plain, plain_batched, ratio, per_flush, send_side;
  std::vector<double> overloads;
  std::printf("## throughput: one-way %zu B messages, session %" PRIu64 " per run, plain sender %" PRIu64
              " per run, %d runs\n",
              size, count, plain_count, c.runs);
  auto plain_run = [&](std::uint64_t n, std::size_t per_write, double* rate) {
    PairResult pr = run_pair(
        [&](int fd) {
          std::string err;
          std::uint16_t port = 0;
          const int l = listen_loopback(&port, &err);
          if (l < 0) {
            report(fd, "error=1 " + err);
            return 1;
          }
          report(fd, "port=" + std::to_string(port));
          ReceiveTimes t = receive_bytes(l, n * size, &err);
          if (t.bytes != n * size) {
            report(fd, "error=1 short " + err);
            return 1;
          }
          // The first read holds at least one message: count the others over the elapsed time.
          const double secs = static_cast<double>(t.last_ns - t.first_ns) / 1e9;
          char b[128];
          std::snprintf(b, sizeof b, "rate=%.1f seconds=%.6f", static_cast<double>(n - 1) / secs, secs);
          report(fd, b);
          return 0;
        },
        [&](int fd, std::uint16_t port) {
          std::string err;
          const int s = connect_loopback(port, &err);
          if (s < 0 || !send_messages(s, size, n, per_write, &err)) {
            report(fd, "error=1 " + err);
            return 1;
          }
          ::close(s);
          return 0;
        });
    if (!pr.ok) {
      std::fprintf(stderr, "plain TCP sender failed: %s\n", pr.error.c_str());
      return false;
    }
    *rate = pr.server["rate"];
    return true;
  };
  for (int run = 0; run < c.runs; ++run) {
    double p = 0, pb = 0;
    if (!plain_run(plain_count, 1, &p)) return 1;
    if (!plain_run(count, 1024, &pb)) return 1;
    PairResult pr = run_pair([&](int fd) { return server_main(fd, ServerMode::kCount, lo, so, count); },
                             [&](int fd, std::uint16_t port) { return sender_main(fd, port, lo, so, size, count, batch); });
    if (!pr.ok) {
      std::fprintf(stderr, "session throughput failed: %s\n", pr.error.c_str());
      return 1;
    }
    if (static_cast<std::uint64_t>(pr.server["count"]) != count) {
      std::fprintf(stderr, "session throughput: the server counted %.0f messages, not %" PRIu64 "\n",
                   pr.server["count"], count);
      return 1;
    }
    const double rate = pr.server["rate"];
    plain.push_back(p);
    plain_batched.push_back(pb);
    ours.push_back(rate);
    ratio.push_back(rate / p);
    per_flush.push_back(pr.client["chunks"] / std::max(1.0, pr.client["flushes"]));
    send_side.push_back(static_cast<double>(count) / pr.client["send_seconds"]);
    overloads.push_back(pr.client["overloaded"]);
    std::printf("run %d: plain write()/msg %s msgs/s, plain 1024 msgs/write %s msgs/s, session %s msgs/s "
                "(%.2fx plain; sender: %.0f frames per flush, %.0f kOverloaded, %.0f credit stalls, %.0f bytes max buffered)\n",
                run + 1, fmt_rate(p).c_str(), fmt_rate(pb).c_str(), fmt_rate(rate).c_str(), rate / p, per_flush.back(),
                overloads.back(), pr.client["credit_stalls"], pr.client["buffered_max"]);
    std::printf("run %d: other processes used up to %.2f CPUs during these pairs\n", run + 1, take_foreign());
    std::fflush(stdout);
  }
  auto range = [](const std::vector<double>& v) {
    return fmt_rate(*std::min_element(v.begin(), v.end())) + "-" + fmt_rate(*std::max_element(v.begin(), v.end()));
  };
  std::printf("\n### One-way throughput, %zu B messages, 127.0.0.1 (msgs/s at the receiver, median of %d runs)\n\n",
              size, c.runs);
  std::printf("| Sender | messages per run | msgs/s (median) | range over runs | vs plain write() per message |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  std::vector<double> pb_ratio;
  for (std::size_t i = 0; i < plain.size(); ++i) pb_ratio.push_back(plain_batched[i] / plain[i]);
  std::printf("| plain TCP, one write() per message, TCP_NODELAY (baseline) | %" PRIu64 " | %s | %s | 1.00x |\n",
              plain_count, fmt_rate(median(plain)).c_str(), range(plain).c_str());
  std::printf("| session, one stream, %s, compression off | %" PRIu64 " | %s | %s | %s |\n",
              case_name(*idle, c).c_str(), count, fmt_rate(median(ours)).c_str(), range(ours).c_str(),
              fmt_ratio(median(ratio)).c_str());
  std::printf("| (ceiling) plain TCP, 1024 messages per write() | %" PRIu64 " | %s | %s | %s |\n", count,
              fmt_rate(median(plain_batched)).c_str(), range(plain_batched).c_str(), fmt_ratio(median(pb_ratio)).c_str());
  std::printf("\nSession sender: %.0f DATA frames per flush (median), %.0f kOverloaded refusals per run (median); "
              "send-side rate (first send to the receiver's done) %s msgs/s.\n",
              median(per_flush), median(overloads), fmt_rate(median(send_side)).c_str());
  print_foreign_summary();
  std::printf("\nGoals:\n");
  const double r = median(ratio), m = median(ours);
  std::printf("- at least 3x the plain sender: %s (%.2fx)\n", r >= 3.0 ? "MET" : "MISSED", r);
  std::printf("- at least 2 million msgs/s: %s (%s msgs/s)\n", m >= 2e6 ? "MET" : "MISSED", fmt_rate(m).c_str());
  return 0;
}

// ---- udp ----------------------------------------------------------------------------------

// Sessions over reliable encrypted UDP against sessions over TCP, in the same run: one-way
// throughput of small messages (msgs/s) and of large ones (Gbit/s of payload), and round trips
// of one small message at a time. Every run does each case over TCP, then over UDP.
struct UdpPlan {
  std::size_t small = 64;
  std::uint64_t small_count = 1'000'000;
  std::size_t large = 1400;
  std::uint64_t large_count = 200'000;
  RttPlan rtt;
  std::string idle = "spin";
  std::size_t max_datagram = 0;
};

int cmd_udp(const Common& c, const UdpPlan& plan) {
  auto idle = io::parse_idle_strategy(plan.idle);
  if (!idle.is_ok()) {
    std::fprintf(stderr, "%s\n", idle.status().to_string().c_str());
    return 2;
  }
  const io::LoopOptions lo = loop_options(*idle, c);
  SessionOptions so;
  so.compression.codecs = 0;  // payloads are the same bytes over and over: keep the codec out
  g_wire.key = transport::udp::KeyPair::generate();
  g_wire.max_datagram = plan.max_datagram;
  struct Side {
    std::vector<double> small_rate, large_gbps;
    std::vector<Percentiles> rtt;
  };
  Side side[2];  // [0] TCP, [1] UDP
  std::vector<double> small_ratio, large_ratio, p50_ratio, p99_ratio;

  // CPU time per message (sender + receiver, ns), a figure the machine's load does not change much.
  std::vector<double> cpu_small[2], cpu_large[2];
  double last_cpu_ns = 0;
  // UDP, the last one_way(): each end's CPU per message, packets per message, the receiver's ACKs.
  std::string last_packets;
  // One-way messages; returns the receiver's rate in msgs/s, or a negative number on failure.
  auto one_way = [&](std::size_t size, std::uint64_t count) -> double {
    PairResult pr = run_pair([&](int fd) { return server_main(fd, ServerMode::kCount, lo, so, count); },
                             [&](int fd, std::uint16_t port) { return sender_main(fd, port, lo, so, size, count, 0); });
    if (!pr.ok) {
      std::fprintf(stderr, "%s throughput, %zu B: %s\n", wire_name(g_wire.udp), size, pr.error.c_str());
      return -1;
    }
    if (static_cast<std::uint64_t>(pr.server["count"]) != count) {
      std::fprintf(stderr, "%s throughput: the server counted %.0f messages, not %" PRIu64 "\n", wire_name(g_wire.udp),
                   pr.server["count"], count);
      return -1;
    }
    last_cpu_ns = (pr.client["c_cpu"] + pr.server["s_cpu"]) * 1e9 / static_cast<double>(count);
    last_packets.clear();
    if (g_wire.udp && pr.server["udp_rx"] > 0) {
      char b[160];
      std::snprintf(b, sizeof b, ": sender %.0f, receiver %.0f; %.2f packets/msg, %.3f ACK packets per packet received",
                    pr.client["c_cpu"] * 1e9 / static_cast<double>(count),
                    pr.server["s_cpu"] * 1e9 / static_cast<double>(count),
                    pr.server["udp_rx"] / static_cast<double>(count), pr.server["udp_tx"] / pr.server["udp_rx"]);
      last_packets = b;
    }
    return pr.server["rate"];
  };

  std::printf("## udp: sessions over UDP (ChaCha20-Poly1305) against sessions over TCP, 127.0.0.1, %s; one-way "
              "%zu B x %" PRIu64 " and %zu B x %" PRIu64 ", %" PRIu64 " round trips of %zu B after %" PRIu64
              " warm-up; %d runs; UDP datagrams probed up to %s\n",
              case_name(*idle, c).c_str(), plan.small, plan.small_count, plan.large, plan.large_count, plan.rtt.count,
              plan.rtt.size, plan.rtt.warmup, c.runs,
              plan.max_datagram == 0 ? "what the route's MTU allows (at most 8972 B)"
                                     : (std::to_string(plan.max_datagram) + " B").c_str());
  for (int run = 0; run < c.runs; ++run) {
    for (int u = 0; u < 2; ++u) {
      g_wire.udp = u == 1;
      const double small = one_way(plan.small, plan.small_count);
      cpu_small[u].push_back(last_cpu_ns);
      const double large = one_way(plan.large, plan.large_count);
      cpu_large[u].push_back(last_cpu_ns);
      const std::string large_packets = last_packets;
      if (small < 0 || large < 0) return 1;
      PairResult pr = run_pair([&](int fd) { return server_main(fd, ServerMode::kEcho, lo, so, 0); },
                               [&](int fd, std::uint16_t port) { return rtt_client_main(fd, port, lo, so, plan.rtt); });
      if (!pr.ok) {
        std::fprintf(stderr, "%s round trips: %s\n", wire_name(g_wire.udp), pr.error.c_str());
        return 1;
      }
      Side& sd = side[u];
      sd.small_rate.push_back(small);
      sd.large_gbps.push_back(large * static_cast<double>(plan.large) * 8 / 1e9);
      sd.rtt.push_back(percentiles_from(pr.client, "q_"));
      const Percentiles& p = sd.rtt.back();
      std::printf("run %d %s: %zu B %s msgs/s (%.0f ns CPU/msg), %zu B %.2f Gbit/s (%.0f ns CPU/msg%s), round trip p50 %s "
                  "p99 %s p99.9 %s max %s us\n",
                  run + 1, wire_name(g_wire.udp), plan.small, fmt_rate(small).c_str(), cpu_small[u].back(), plan.large,
                  sd.large_gbps.back(), cpu_large[u].back(), large_packets.c_str(), fmt_us(p.p50).c_str(),
                  fmt_us(p.p99).c_str(), fmt_us(p.p999).c_str(), fmt_us(p.max).c_str());
    }
    small_ratio.push_back(side[1].small_rate.back() / side[0].small_rate.back());
    large_ratio.push_back(side[1].large_gbps.back() / side[0].large_gbps.back());
    p50_ratio.push_back(side[1].rtt.back().p50 / side[0].rtt.back().p50);
    p99_ratio.push_back(side[1].rtt.back().p99 / side[0].rtt.back().p99);
    std::printf("run %d: other processes used up to %.2f CPUs during these pairs\n", run + 1, take_foreign());
    std::fflush(stdout);
  }
  g_wire.udp = false;

  std::printf("\n### Sessions over UDP and TCP, 127.0.0.1 (median of %d runs)\n\n", c.runs);
  std::printf("| Transport | %zu B msgs/s | %zu B Gbit/s | round trip %zu B p50 us | p99 | p99.9 |\n", plan.small,
              plan.large, plan.rtt.size);
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (int u = 0; u < 2; ++u) {
    const Side& sd = side[u];
    std::printf("| %s | %s | %.2f | %s | %s | %s |\n", wire_name(u == 1), fmt_rate(median(sd.small_rate)).c_str(),
                median(sd.large_gbps), fmt_us(median_of(sd.rtt, &Percentiles::p50)).c_str(),
                fmt_us(median_of(sd.rtt, &Percentiles::p99)).c_str(),
                fmt_us(median_of(sd.rtt, &Percentiles::p999)).c_str());
  }
  std::printf("| UDP / TCP | %s | %s | %s | %s | - |\n", fmt_ratio(median(small_ratio)).c_str(),
              fmt_ratio(median(large_ratio)).c_str(), fmt_ratio(median(p50_ratio)).c_str(),
              fmt_ratio(median(p99_ratio)).c_str());
  std::printf("\nRatios are medians of the per-run ratios (UDP against the TCP case of the same run).\n");
  std::printf("CPU time per one-way message, sender + receiver processes (median; less sensitive to a busy machine than "
              "the rates): TCP %.0f ns at %zu B, %.0f ns at %zu B; UDP %.0f ns at %zu B, %.0f ns at %zu B.\n",
              median(cpu_small[0]), plan.small, median(cpu_large[0]), plan.large, median(cpu_small[1]), plan.small,
              median(cpu_large[1]), plan.large);
  print_foreign_summary();
  std::printf("\nGoals:\n");
  const double m = median(side[1].small_rate), g = median(side[1].large_gbps);
  std::printf("- UDP, %zu B: at least 1 million msgs/s: %s (%s msgs/s)\n", plan.small, m >= 1e6 ? "MET" : "MISSED",
              fmt_rate(m).c_str());
  std::printf("- UDP, %zu B: at least 5 Gbit/s: %s (%.2f Gbit/s)\n", plan.large, g >= 5.0 ? "MET" : "MISSED", g);
  return 0;
}

// ---- hol ----------------------------------------------------------------------------------

// One configuration of the head-of-line benchmark.
struct HolCase {
  std::string label;
  SessionOptions so;
  transport::TcpOptions tcp;
  bool pinned = false;
  std::vector<Percentiles> quiet, loaded;
  std::vector<double> ratio, mbps, idle_sends, held;
  Placement placement() const { return pinned ? Placement::kSplit : Placement::kFree; }
};

std::string hol_tuning(const SessionOptions& so, const transport::TcpOptions& tcp) {
  char b[200];
  std::snprintf(b, sizeof b, "send_high_water %zu KiB, bulk_high_water %zu KiB, notsent_lowat %s", so.send_high_water >> 10,
                so.bulk_high_water >> 10,
                tcp.notsent_lowat > 0 ? (std::to_string(tcp.notsent_lowat >> 10) + " KiB").c_str() : "off");
  return b;
}

int cmd_hol(const Common& c, const RttPlan& plan, const std::string& idle_name, bool also_pinned, bool baseline,
            SessionOptions so, const transport::TcpOptions& tcp) {
  auto idle = io::parse_idle_strategy(idle_name);
  if (!idle.is_ok()) {
    std::fprintf(stderr, "%s\n", idle.status().to_string().c_str());
    return 2;
  }
  const io::LoopOptions lo = loop_options(*idle, c);
  so.compression.codecs = 0;  // and the bulk bytes are random: nothing to gain
  if (g_initial_credit > 0 || so.chunk_size != SessionOptions{}.chunk_size) {
    std::printf("non-default tuning: chunk_size %zu, initial credit %u\n", so.chunk_size, g_initial_credit);
  }
  std::vector<HolCase> cases;
  for (const bool pinned : {false, true}) {
    if (pinned && !also_pinned) continue;
    if (baseline) {
      // What every connection did before bulk_high_water and TCP_NOTSENT_LOWAT: bulk fills the
      // transport up to send_high_water and the kernel takes all it can.
      HolCase b{"before: " + hol_tuning(so, {}), so, {}, pinned, {}, {}, {}, {}, {}, {}};
      b.so.bulk_high_water = so.send_high_water;
      b.label = "before: " + hol_tuning(b.so, b.tcp);
      cases.push_back(std::move(b));
    }
    cases.push_back(HolCase{hol_tuning(so, tcp), so, tcp, pinned, {}, {}, {}, {}, {}, {}});
  }
  std::printf("## hol: %zu B interactive round trips, %" PRIu64 " after %" PRIu64
              " warm-up, without and then with %zu MB bulk messages in flight on the same session, %d runs\n",
              plan.size, plan.count, plan.warmup, plan.bulk_bytes >> 20, c.runs);
  for (int run = 0; run < c.runs; ++run) {
    for (HolCase& k : cases) {
      PairResult pr =
          run_pair([&](int fd) { return server_main(fd, ServerMode::kEcho, lo, k.so, 0, k.tcp); },
                   [&](int fd, std::uint16_t port) { return rtt_client_main(fd, port, lo, k.so, plan, k.tcp); },
                   k.placement());
      if (!pr.ok) {
        std::fprintf(stderr, "hol failed: %s\n", pr.error.c_str());
        return 1;
      }
      Percentiles q = percentiles_from(pr.client, "q_"), b = percentiles_from(pr.client, "b_");
      k.quiet.push_back(q);
      k.loaded.push_back(b);
      k.ratio.push_back(b.p99 / q.p99);
      k.mbps.push_back(pr.client["bulk_mbps"]);
      k.idle_sends.push_back(pr.client["bulk_idle"]);
      k.held.push_back(pr.client["bulk_held"]);
      std::printf("run %d %s, %s: no bulk p50 %s p99 %s p99.9 %s | with bulk p50 %s p99 %s p99.9 %s max %s us | p99 "
                  "ratio %.2fx | bulk %.0f MB/s framed, %.0f messages queued, %.0f round trips left with no bulk "
                  "queued, bulk held back %.0f times\n",
                  run + 1, case_name(*idle, c, k.placement()).c_str(), k.label.c_str(), fmt_us(q.p50).c_str(),
                  fmt_us(q.p99).c_str(), fmt_us(q.p999).c_str(), fmt_us(b.p50).c_str(), fmt_us(b.p99).c_str(),
                  fmt_us(b.p999).c_str(), fmt_us(b.max).c_str(), k.ratio.back(), k.mbps.back(),
                  pr.client["bulk_messages"], k.idle_sends.back(), k.held.back());
      std::printf("       client cpu %.2f s, %.0f voluntary / %.0f involuntary context switches; server cpu %.2f s, "
                  "%.0f / %.0f\n",
                  pr.client["c_cpu"], pr.client["c_vcsw"], pr.client["c_ivcsw"], pr.server["s_cpu"],
                  pr.server["s_vcsw"], pr.server["s_ivcsw"]);
      std::printf("       other processes used %.2f CPUs meanwhile\n", take_foreign());
      std::fflush(stdout);
    }
  }
  std::printf("\n### Head-of-line: %zu B interactive round trips beside %zu MB bulk messages, %s (us, median of %d runs)\n\n",
              plan.size, plan.bulk_bytes >> 20, case_name(*idle, c).c_str(), c.runs);
  std::printf("| Placement | Tuning | Case | min | p50 | p99 | p99.9 | bulk MB/s during the round trips | p99 with / without |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const HolCase& k : cases) {
    const char* where = k.pinned ? "pinned: server CPU 0, client CPU 1" : "free (the scheduler's choice)";
    std::printf("| %s | %s | no bulk transfer | %s | %s | %s | %s | - | |\n", where, k.label.c_str(),
                fmt_us(median_of(k.quiet, &Percentiles::min)).c_str(), fmt_us(median_of(k.quiet, &Percentiles::p50)).c_str(),
                fmt_us(median_of(k.quiet, &Percentiles::p99)).c_str(),
                fmt_us(median_of(k.quiet, &Percentiles::p999)).c_str());
    std::printf("| %s | %s | %zu MB bulk messages in flight (bulk priority) | %s | %s | %s | %s | %.0f | %s |\n", where,
                k.label.c_str(), plan.bulk_bytes >> 20, fmt_us(median_of(k.loaded, &Percentiles::min)).c_str(),
                fmt_us(median_of(k.loaded, &Percentiles::p50)).c_str(),
                fmt_us(median_of(k.loaded, &Percentiles::p99)).c_str(),
                fmt_us(median_of(k.loaded, &Percentiles::p999)).c_str(), median(k.mbps),
                fmt_ratio(median(k.ratio)).c_str());
  }
  std::printf("\nThe ratio is the median of the per-run ratios. Round trips sent while no bulk was queued: %.0f "
              "(median per run; 0 means the bulk transfer was in flight for every one).\n",
              median(cases.back().idle_sends));
  print_foreign_summary();
  std::printf("\nGoals:\n");
  for (const HolCase& k : cases) {
    const double r = median(k.ratio);
    std::printf("- p99 with bulk within 3x of p99 without (%s, %s): %s (%.2fx)\n",
                k.pinned ? "pinned, for reference" : "default placement", k.label.c_str(), r <= 3.0 ? "MET" : "MISSED",
                r);
  }
  return 0;
}

}  // namespace
}  // namespace slip::bench

int main(int argc, char** argv) {
  using namespace slip::bench;
  CLI::App app{"session_bench - end-to-end session benchmarks over TCP (against sockperf and plain sockets) and UDP (against TCP)",
               "session_bench"};
  app.require_subcommand(1);
  app.fallthrough();  // --runs and the like also after the subcommand
  Common c;
  int spin_us = 50;
  std::string log_level = "warn";
  app.add_option("--runs", c.runs, "Repetitions; tables give medians of the per-run figures")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--spin-us", spin_us, "Spin time of the spin idle strategy")->capture_default_str();
  app.add_option("--log-level", log_level, "slip logger level in the children")->capture_default_str();

  RttPlan ping;
  std::vector<std::string> idles = {"block", "spin", "busy"};
  std::string sockperf = "sockperf";
  int sockperf_seconds = 3;
  auto* pp = app.add_subcommand("pingpong", "16 B round trips per idle strategy against sockperf's TCP ping-pong");
  pp->add_option("--count", ping.count, "Round trips recorded per run")->capture_default_str();
  pp->add_option("--warmup", ping.warmup, "Round trips before recording")->capture_default_str();
  pp->add_option("--size", ping.size, "Message size")->capture_default_str();
  pp->add_option("--idle", idles, "Idle strategies to run (both sides); spin-fixed is spin with a fixed window")
      ->capture_default_str();
  std::vector<std::string> pinned_idles = {"spin"};
  pp->add_option("--pinned-idle", pinned_idles,
                 "Strategies to run again with the server pinned to CPU 0 and the client to CPU 1 ('none': no such rows)")
      ->capture_default_str();
  std::vector<std::string> same_cpu_idles;
  pp->add_option("--same-cpu-idle", same_cpu_idles,
                 "Strategies to run again with both processes on CPU 0 (a shared core); spin-fixed is spin "
                 "with a fixed window");
  pp->add_option("--sockperf", sockperf, "sockperf binary, or 'none'")->capture_default_str();
  pp->add_option("--sockperf-seconds", sockperf_seconds, "sockperf ping-pong duration per run")->capture_default_str();
  bool no_plain = false;
  pp->add_flag("--no-plain", no_plain, "Skip our own plain-socket ping-pong floors (blocking and busy-poll)");

  std::size_t tp_size = 64;
  std::uint64_t tp_count = 5'000'000, tp_plain = 500'000, tp_batch = 0;
  std::string tp_idle = "spin";
  auto* tp = app.add_subcommand("throughput", "one-way 64 B messages against a plain write()-per-message sender");
  tp->add_option("--size", tp_size, "Message size")->capture_default_str();
  tp->add_option("--count", tp_count, "Session messages per run")->capture_default_str();
  tp->add_option("--plain-count", tp_plain, "Plain-sender messages per run (one write() each)")->capture_default_str();
  tp->add_option("--batch", tp_batch, "Return to the loop after this many sends (0: only on kOverloaded)")
      ->capture_default_str();
  tp->add_option("--idle", tp_idle, "Idle strategy (both sides)")->capture_default_str();

  RttPlan hol;
  hol.size = 64;
  hol.bulk_bytes = 100u << 20;
  std::string hol_idle = "spin";
  std::size_t bulk_mb = 100;
  auto* hl = app.add_subcommand("hol", "interactive round trips with and without a bulk transfer on the same session");
  hl->add_option("--count", hol.count, "Round trips recorded per phase")->capture_default_str();
  hl->add_option("--warmup", hol.warmup, "Round trips before recording, per phase")->capture_default_str();
  hl->add_option("--size", hol.size, "Interactive message size")->capture_default_str();
  hl->add_option("--bulk-mb", bulk_mb, "Bulk message size in MiB")->capture_default_str();
  hl->add_option("--idle", hol_idle, "Idle strategy (both sides)")->capture_default_str();
  bool hol_pinned = false;
  SessionOptions hol_so;
  std::size_t chunk_kb = hol_so.chunk_size >> 10, high_water_kb = hol_so.send_high_water >> 10, credit_kb = 0;
  hl->add_option("--chunk-kb", chunk_kb, "Experiment: SessionOptions::chunk_size in KiB")->capture_default_str();
  hl->add_option("--high-water-kb", high_water_kb, "Experiment: SessionOptions::send_high_water in KiB")
      ->capture_default_str();
  hl->add_option("--credit-kb", credit_kb, "Experiment: per-stream window both sides advertise, KiB (0: default)")
      ->capture_default_str();
  hl->add_flag("--also-pinned", hol_pinned, "Run every case again with the server on CPU 0 and the client on CPU 1");
  bool hol_baseline = false;
  hl->add_flag("--baseline", hol_baseline,
               "Also run, interleaved, the former tuning: bulk_high_water = send_high_water, no TCP_NOTSENT_LOWAT");
  slip::transport::TcpOptions hol_tcp;
  std::size_t bulk_high_water_kb = hol_so.bulk_high_water >> 10;
  int notsent_lowat_kb = hol_tcp.notsent_lowat >> 10;
  std::int64_t hold_us = hol_so.interactive_hold.count();
  hl->add_option("--bulk-high-water-kb", bulk_high_water_kb, "SessionOptions::bulk_high_water in KiB")
      ->capture_default_str();
  hl->add_option("--notsent-lowat-kb", notsent_lowat_kb, "TcpOptions::notsent_lowat in KiB (0: kernel default)")
      ->capture_default_str();
  hl->add_option("--hold-us", hold_us, "SessionOptions::interactive_hold in microseconds")->capture_default_str();

  UdpPlan udp_plan;
  udp_plan.rtt.size = 64;
  auto* ud = app.add_subcommand("udp", "sessions over encrypted UDP against TCP: 64 B msgs/s, 1400 B Gbit/s, round trips");
  ud->add_option("--small", udp_plan.small, "Small message size")->capture_default_str();
  ud->add_option("--small-count", udp_plan.small_count, "Small messages per run and transport")->capture_default_str();
  ud->add_option("--large", udp_plan.large, "Large message size")->capture_default_str();
  ud->add_option("--large-count", udp_plan.large_count, "Large messages per run and transport")->capture_default_str();
  ud->add_option("--count", udp_plan.rtt.count, "Round trips recorded per run and transport")->capture_default_str();
  ud->add_option("--warmup", udp_plan.rtt.warmup, "Round trips before recording")->capture_default_str();
  ud->add_option("--rtt-size", udp_plan.rtt.size, "Round-trip message size")->capture_default_str();
  ud->add_option("--idle", udp_plan.idle, "Idle strategy (both sides)")->capture_default_str();
  ud->add_option("--udp-max-datagram", udp_plan.max_datagram,
                 "Largest UDP datagram path MTU discovery probes on both ends (0: the route's MTU allows, "
                 "up to a 9000-byte MTU's; 1472: an Ethernet MTU's)")
      ->check([](const std::string& v) -> std::string {
        const unsigned long n = std::strtoul(v.c_str(), nullptr, 10);
        return n == 0 || (n >= 1200 && n <= 65527) ? "" : "must be 0 or 1200 to 65527";
      })
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  c.spin = std::chrono::microseconds(spin_us);
  if (auto st = slip::init_logging(log_level); !st.is_ok()) {
    std::fprintf(stderr, "%s\n", st.to_string().c_str());
    return 2;
  }
  print_machine();
  if (pp->parsed()) {
    if (pinned_idles.size() == 1 && pinned_idles[0] == "none") pinned_idles.clear();
    return cmd_pingpong(c, ping, idles, pinned_idles, same_cpu_idles, sockperf, sockperf_seconds, !no_plain);
  }
  if (tp->parsed()) return cmd_throughput(c, tp_size, tp_count, tp_plain, tp_batch, tp_idle);
  if (ud->parsed()) return cmd_udp(c, udp_plan);
  hol.bulk_bytes = bulk_mb << 20;
  hol_so.chunk_size = chunk_kb << 10;
  hol_so.send_high_water = high_water_kb << 10;
  hol_so.bulk_high_water = bulk_high_water_kb << 10;
  hol_so.interactive_hold = std::chrono::microseconds(hold_us);
  hol_tcp.notsent_lowat = notsent_lowat_kb << 10;
  g_initial_credit = static_cast<std::uint32_t>(credit_kb << 10);
  return cmd_hol(c, hol, hol_idle, hol_pinned, hol_baseline, hol_so, hol_tcp);
}
