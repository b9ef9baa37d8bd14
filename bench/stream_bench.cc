// Persistent-streams benchmark: slipd's streams against nats-server's JetStream on the same
// machine, in the same run, with the same fsync setting stated for both.
//
// Both servers run on 127.0.0.1 as child processes of this one, each with a fresh data
// directory under --tmp-dir (slipd --data-dir, nats-server -js -sd). One stream captures
// "bench.>"; every message is --size bytes of random data published on "bench.s". slipd is
// driven by Slipstream's own client (broker::PubSubClient on one EventLoop thread), nats-server
// by the NATS C client (libnats, its JetStream API). Each run, per fsync mode and server:
//
//   1. publish one at a time: each publish waits for its ack (durable as the fsync mode says)
//      before the next leaves. --warmup publishes first (stored, not recorded), then
//      --sync-count recorded: msgs/s and ack latency p50/p99/p99.9 from every sample.
//      slipd: PubSubClient::publish_acked; nats: js_Publish (libnats SendAsap on, so the
//      request leaves at once rather than through libnats' flusher thread).
//   2. publish with a window: --count publishes with at most --window unacknowledged. slipd:
//      publish_acked, the next publish sent from the ack callback whenever fewer than --window
//      are out; nats: js_PublishAsync with PublishAsync.MaxPending = --window, then
//      js_PublishAsyncComplete. msgs/s from the first publish to the last ack.
//   3. consume: read the whole stream back from sequence 1 (everything published in 1 and 2).
//      slipd: consume_slipd(), a pull consumer (ephemeral, deliver all, ack none) fetching
//      --fetch-batch messages at a time; nats: a pull consumer
//      (js_PullSubscribe, deliver all) and natsSubscription_Fetch of --fetch-batch messages at a
//      time, acknowledging the last message of every batch (ack policy all) or nothing
//      (--nats-ack none).
//
// Every ack must carry the next sequence, every message must come back once and in order with
// its size; anything missing or failed is printed and makes the exit code 1.
//
// fsync modes (--fsync, both by default):
//   interval  slipd fsync=<--fsync-interval-ms>ms: ack after write(2), fsync within the interval.
//             nats-server: sync_interval of the same length where the server supports it
//             (2.10+); nats-server 2.9 has no setting and writes each message to its block file
//             before the ack, fsyncing every 2 minutes, which the default interval (120000 ms)
//             matches.
//   always    slipd fsync=always: ack after the fsync that covers the message. nats-server:
//             sync_interval: always (2.10+). A nats-server without it cannot fsync per message:
//             it then runs with its default and the output says so on every line concerned
//             (the comparison is not like for like and favours nats-server).
//
// Run: scripts/bench-streams.sh (make bench-streams), or e.g.
//   build/release/bench/stream_bench --slipd build/release/tools/slipd/slipd --runs 3
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
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
#include "latency_stats.h"
#include "server_process.h"
#include "transport/address.h"


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
  std::string tmp_dir;  // data directories go here; $TMPDIR or /tmp
  int slipd_threads = 1;
  std::string client_idle = "block";
  std::uint64_t count = 100'000;      // windowed publishes
  std::uint64_t sync_count = 10'000;  // one-at-a-time publishes, recorded
  std::uint64_t warmup = 1'000;       // one-at-a-time publishes before recording
  std::size_t size = 128;
  std::size_t window = 256;
  int fetch_batch = 1000;
  std::vector<std::string> fsync_modes = {"interval", "always"};
  std::int64_t fsync_interval_ms = 120'000;
  std::string nats_ack = "none";  // pull consumer ack policy: all or none (slipd: none)
  bool nats_async_send_asap = false;  // libnats SendAsap for js_PublishAsync
  std::vector<std::string> targets = {"slipd", "nats"};
  bool consume = true;  // --no-consume: publish only (profiling the publish path)
};

struct Outcome {
  bool ok = true;
  std::string note;
  // 1. one at a time
  double sync_rate = NAN;
  Percentiles ack;  // microseconds
  // 2. windowed
  double window_rate = NAN;
  // 3. consume
  double consume_rate = NAN;
  std::uint64_t stored = 0;    // acknowledged publishes
  std::uint64_t consumed = 0;  // messages read back

  void fail(const std::string& why) {
    ok = false;
    if (!note.empty()) note += "; ";
    note += why;
  }
};

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

double rate(std::uint64_t n, std::int64_t t0, std::int64_t t1) {
  return t1 > t0 ? static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0) : NAN;
}

// =============================================================================================
// Server processes
// =============================================================================================

// A fresh directory under `parent`, removed with everything in it when this goes.
class TempDir {
 public:
  explicit TempDir(const std::string& parent) {
    std::string tmpl = parent + "/stream_bench.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp in " + parent + ": " + std::strerror(errno));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string filesystem_of(const std::string& path) {
  struct statfs f {};
  if (::statfs(path.c_str(), &f) != 0) return "unknown";
  switch (static_cast<unsigned long>(f.f_type)) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs (fsync costs nothing: not a disk measurement)";
    case 0x794C7630: return "overlayfs";
    default: {
      char b[32];
      std::snprintf(b, sizeof b, "0x%lx", static_cast<unsigned long>(f.f_type));
      return b;
    }
  }
}

// What the installed nats-server can be told about fsync.
struct NatsSync {
  std::string version;       // "v2.9.10"
  bool sync_interval = false;  // accepts jetstream { sync_interval: ... } (2.10+)
};

std::string run_capture(const std::string& cmd) {
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char b[256];
    while (std::fgets(b, sizeof b, p)) out += b;
    ::pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

NatsSync probe_nats(const Settings& s) {
  NatsSync n;
  const std::string v = run_capture(s.nats_server + " --version 2>&1");
  const auto at = v.find(" v");
  n.version = at == std::string::npos ? v : v.substr(at + 1);
  int major = 0, minor = 0;
  std::sscanf(n.version.c_str(), "v%d.%d", &major, &minor);
  if (major > 2 || (major == 2 && minor >= 10)) {
    // The version says it should; a configuration test (-t) says whether it does.
    TempDir d(s.tmp_dir);
    const std::string conf = d.path() + "/probe.conf";
    std::ofstream(conf) << "jetstream { store_dir: \"" << d.path() << "/js\", sync_interval: always }\n";
    n.sync_interval = std::system((s.nats_server + " -c " + conf + " -t >/dev/null 2>&1").c_str()) == 0;
  }
  return n;
}

struct Server {
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<ServerProcess> proc;
  std::string addr;  // 127.0.0.1:PORT
};

Server start_slipd(const Settings& s) {
  Server srv;
  srv.dir = std::make_unique<TempDir>(s.tmp_dir);
  const std::string ready = srv.dir->path() + "/ready";
  std::vector<std::string> argv = {s.slipd, "--listen", "127.0.0.1:0", "--threads", std::to_string(s.slipd_threads),
                                   "--data-dir", srv.dir->path() + "/data", "--log-level", "warn",
                                   "--ready-file", ready};
  const std::string log = srv.dir->path() + "/slipd.log";
  srv.proc = std::make_unique<ServerProcess>(argv, log);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    std::ifstream f(ready);
    std::string proto, addr;
    while (f >> proto >> addr) {
      if (proto == "native") {
        srv.addr = addr;
        return srv;
      }
    }
    if (Clock::now() > deadline || !srv.proc->running()) {
      throw std::runtime_error("slipd did not start: " + run_capture("tail -5 " + log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// mode: "interval" or "always".
Server start_nats(const Settings& s, const NatsSync& ns, const std::string& mode) {
  Server srv;
  srv.dir = std::make_unique<TempDir>(s.tmp_dir);
  const int port = free_port();
  std::vector<std::string> argv = {s.nats_server, "-js", "-sd", srv.dir->path() + "/js", "-a", "127.0.0.1",
                                   "-p", std::to_string(port)};
  if (ns.sync_interval) {
    const std::string conf = srv.dir->path() + "/nats.conf";
    std::ofstream f(conf);
    f << "jetstream { store_dir: \"" << srv.dir->path() << "/js\", sync_interval: ";
    if (mode == "always") {
      f << "always";
    } else {
      f << "\"" << s.fsync_interval_ms << "ms\"";
    }
    f << " }\n";
    argv = {s.nats_server, "-c", conf, "-a", "127.0.0.1", "-p", std::to_string(port)};
  }
  const std::string log = srv.dir->path() + "/nats.log";
  srv.proc = std::make_unique<ServerProcess>(argv, log);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!can_connect(port)) {
    if (Clock::now() > deadline || !srv.proc->running()) {
      throw std::runtime_error("nats-server did not start: " + run_capture("tail -5 " + log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  srv.addr = "127.0.0.1:" + std::to_string(port);
  return srv;
}

// =============================================================================================
// slipd (Slipstream's client)
// =============================================================================================

// A PubSubClient on its own loop thread; run() executes code on that thread and waits.
class SlipPeer {
 public:
  SlipPeer(const std::string& address, const io::LoopOptions& loop_options) : loops_(1, loop_options) {
    loops_.start();
    session::ClientOptions o;
    o.dial = session::tcp_dialer(*transport::parse_host_port(address));
    o.handshake.client_name = "stream-bench";
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
    run([&] { kept_.clear(); });
    run([] {});
    run([] {});
    loops_.stop();
  }
  SlipPeer(const SlipPeer&) = delete;
  SlipPeer& operator=(const SlipPeer&) = delete;

  io::EventLoop& loop() { return loops_.loop(0); }
  broker::PubSubClient& client() { return *client_; }
  // Keeps `state` alive until the client is gone, so callbacks may hold a plain pointer to it
  // (a lambda with one pointer fits std::function without a heap block, as a user's would).
  template <typename T>
  T* keep(std::shared_ptr<T> state) {
    T* raw = state.get();
    kept_.push_back(std::move(state));
    return raw;
  }

  template <typename Fn>
  void run(Fn fn) {
    std::promise<void> done;
    loop().post([&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // Posts `start` to the loop; it must eventually set the promise it is given. Waits for it.
  Status run_until_done(const std::function<void(std::promise<Status>&)>& start) {
    std::promise<Status> p;
    auto f = p.get_future();
    loop().post([&] { start(p); });
    return f.get();
  }

 private:
  io::LoopGroup loops_;
  std::unique_ptr<broker::PubSubClient> client_;
  std::vector<std::shared_ptr<void>> kept_;  // loop thread
};

Status slipd_add_stream(SlipPeer& peer, const std::string& fsync) {
  return peer.run_until_done([&](std::promise<Status>& p) {
    Status st = peer.client().stream_request(
        wire::StreamOp::kAdd, {{"name", "BENCH"}, {"subjects", "bench.>"}, {"fsync", fsync}},
        [&p](Result<broker::StreamFields> r) { p.set_value(r.is_ok() ? Status() : r.status()); });
    if (!st.is_ok()) p.set_value(st);
  });
}

// Publishes `n` messages one at a time; `us` gets each ack's latency when non-null.
// `next_seq` is the sequence the first ack must carry, advanced past the last.
Status slipd_publish_sync(SlipPeer& peer, const Slice& payload, std::uint64_t n, std::uint64_t& next_seq,
                          std::vector<std::int64_t>* ns) {
  struct State {
    SlipPeer* peer;
    Slice payload;
    std::uint64_t n, i = 0;
    std::uint64_t* next_seq;
    std::vector<std::int64_t>* ns;
    std::int64_t t0 = 0;
    std::promise<Status>* done = nullptr;
    bool finished = false;
    void finish(Status st) {
      if (finished) return;
      finished = true;
      done->set_value(std::move(st));
    }
    // The peer keeps the state alive for callbacks that run after the caller stopped waiting.
    void next(State* self) {
      if (i == n) return finish(Status());
      t0 = mono_now_ns();
      Status st = peer->client().publish_acked("bench.s", payload, nullptr, [self](Result<std::uint64_t> r) {
        const std::int64_t t1 = mono_now_ns();
        if (self->finished) return;
        if (!r.is_ok()) return self->finish(r.status().with_context("ack " + std::to_string(self->i + 1)));
        if (*r != *self->next_seq) {
          return self->finish(internal_error("ack carried sequence " + std::to_string(*r) + ", expected " +
                                             std::to_string(*self->next_seq)));
        }
        ++*self->next_seq;
        if (self->ns) self->ns->push_back(t1 - self->t0);
        ++self->i;
        self->next(self);
      });
      if (!st.is_ok()) finish(st);
    }
  };
  return peer.run_until_done([&](std::promise<Status>& p) {
    State* state = peer.keep(std::make_shared<State>(State{&peer, payload, n, 0, &next_seq, ns}));
    peer.client().set_ack_window(1);
    state->done = &p;
    state->next(state);
  });
}

// Publishes `n` messages with at most `window` unacknowledged; the next publish leaves from the
// ack callback, so nothing waits in the client's own queue.
Status slipd_publish_window(SlipPeer& peer, const Slice& payload, std::uint64_t n, std::size_t window,
                            std::uint64_t& next_seq) {
  struct State {
    SlipPeer* peer;
    Slice payload;
    std::uint64_t n;
    std::size_t window;
    std::uint64_t* next_seq;
    std::uint64_t sent = 0, acked = 0;
    bool finished = false;
    std::promise<Status>* done = nullptr;
    void finish(Status st) {
      if (finished) return;
      finished = true;
      done->set_value(std::move(st));
    }
    void fill(State* self) {
      while (!finished && sent < n && sent - acked < window) {
        ++sent;
        Status st = peer->client().publish_acked("bench.s", payload, nullptr, [self](Result<std::uint64_t> r) {
          if (self->finished) return;
          if (!r.is_ok()) return self->finish(r.status().with_context("ack " + std::to_string(self->acked + 1)));
          if (*r != *self->next_seq) {
            return self->finish(internal_error("ack carried sequence " + std::to_string(*r) + ", expected " +
                                               std::to_string(*self->next_seq)));
          }
          ++*self->next_seq;
          if (++self->acked == self->n) return self->finish(Status());
          self->fill(self);
        });
        if (!st.is_ok()) finish(st);
      }
    }
  };
  return peer.run_until_done([&](std::promise<Status>& p) {
    State* state = peer.keep(std::make_shared<State>(State{&peer, payload, n, window, &next_seq}));
    peer.client().set_ack_window(window);
    state->done = &p;
    if (n == 0) return state->finish(Status());
    state->fill(state);
  });
}

struct Consumed {
  Status status;
  std::uint64_t messages = 0;
  std::int64_t t0 = 0, t1 = 0;
};

// Reads the whole stream back from sequence 1 with a pull consumer (ephemeral, deliver all, ack
// none), `batch` messages per fetch, checking that sequences 1..expected arrive once each, in
// order, with `size` bytes.
Consumed consume_slipd(SlipPeer& peer, const std::string& stream, std::uint64_t expected, std::size_t size, int batch) {
  struct State {
    SlipPeer* peer;
    std::string stream;
    std::uint64_t expected;
    std::size_t size;
    int batch;
    Consumed out;
    std::string consumer = "bench-consume";
    std::promise<Status>* done = nullptr;
    bool finished = false;
    void finish(Status st) {
      if (finished) return;
      finished = true;
      done->set_value(std::move(st));
    }
    void fetch(const std::shared_ptr<State>& self) {
      broker::FetchOptions fo;
      fo.batch = static_cast<std::size_t>(batch);
      Status st = peer->client().fetch(
          stream, consumer, fo,
          [self](const broker::StoredMessage& m) {
            if (self->finished) return;
            if (m.sequence != self->out.messages + 1 || m.payload.size() != self->size) {
              return self->finish(internal_error("fetched sequence " + std::to_string(m.sequence) + " (" +
                                                 std::to_string(m.payload.size()) + " B), expected " +
                                                 std::to_string(self->out.messages + 1)));
            }
            ++self->out.messages;
          },
          [self](Result<std::size_t> r) {
            if (self->finished) return;
            if (!r.is_ok()) return self->finish(r.status().with_context("fetch"));
            if (self->out.messages == self->expected) {
              self->out.t1 = mono_now_ns();
              return self->finish(Status());
            }
            if (*r == 0) {
              return self->finish(internal_error("the consumer ran dry after " + std::to_string(self->out.messages) +
                                                 " of " + std::to_string(self->expected) + " messages"));
            }
            self->fetch(self);
          });
      if (!st.is_ok()) finish(st);
    }
  };
  auto state = std::make_shared<State>(State{&peer, stream, expected, size, batch, {}});
  Status st = peer.run_until_done([&](std::promise<Status>& p) {
    state->done = &p;
    state->out.t0 = mono_now_ns();
    Status added = peer.client().add_consumer(stream, {{"name", state->consumer}, {"deliver", "all"}, {"ack", "none"}},
                                              [state](Result<broker::StreamFields> r) {
                                                if (state->finished) return;
                                                if (!r.is_ok()) return state->finish(r.status().with_context("consumer add"));
                                                state->fetch(state);
                                              });
    if (!added.is_ok()) state->finish(added);
  });
  // The loop may still touch the state (late frames); copy under a loop turn.
  Consumed out;
  peer.run([&] { out = state->out; });
  out.status = st;
  return out;
}

Outcome run_slipd(const Settings& s, const std::string& mode) {
  Outcome o;
  Server srv = start_slipd(s);
  auto idle = io::parse_idle_strategy(s.client_idle);
  io::LoopOptions lo;
  lo.idle = idle.value();
  const Slice payload = Slice::copy_of(random_bytes(s.size, 42));
  {
    SlipPeer peer(srv.addr, lo);
    const std::string fsync = mode == "always" ? "always" : std::to_string(s.fsync_interval_ms) + "ms";
    if (Status st = slipd_add_stream(peer, fsync); !st.is_ok()) {
      o.fail("stream add: " + st.to_string());
      return o;
    }
    std::uint64_t next_seq = 1;
    if (Status st = slipd_publish_sync(peer, payload, s.warmup, next_seq, nullptr); !st.is_ok()) {
      o.fail("warm-up: " + st.to_string());
      o.stored = next_seq - 1;
      return o;
    }
    std::vector<std::int64_t> ns;
    ns.reserve(s.sync_count);
    std::int64_t t0 = mono_now_ns();
    Status st = slipd_publish_sync(peer, payload, s.sync_count, next_seq, &ns);
    std::int64_t t1 = mono_now_ns();
    if (!st.is_ok()) o.fail("publish one at a time: " + st.to_string());
    o.sync_rate = rate(ns.size(), t0, t1);
    o.ack = percentiles_us(ns);

    if (o.ok) {
      t0 = mono_now_ns();
      st = slipd_publish_window(peer, payload, s.count, s.window, next_seq);
      t1 = mono_now_ns();
      if (!st.is_ok()) o.fail("windowed publish: " + st.to_string());
      if (st.is_ok()) o.window_rate = rate(s.count, t0, t1);
    }
    o.stored = next_seq - 1;

    if (o.ok && s.consume) {
      Consumed c = consume_slipd(peer, "BENCH", o.stored, s.size, s.fetch_batch);
      o.consumed = c.messages;
      if (!c.status.is_ok()) {
        o.fail("consume: " + c.status.to_string());
      } else {
        o.consume_rate = rate(c.messages, c.t0, c.t1);
      }
    }
  }
  if (!srv.proc->running()) o.fail("slipd exited");
  srv.proc->stop();
  return o;
}

// =============================================================================================
// nats-server (libnats, JetStream)
// =============================================================================================

std::string nats_error(const char* what, natsStatus st, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string m = what;
  m.append(": ").append(natsStatus_GetText(st));
  if (jerr != 0) m.append(" (JetStream error ").append(std::to_string(static_cast<int>(jerr))).append(")");
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') m.append(": ").append(last);
  return m;
}

void check(natsStatus st, const char* what) {
  if (st != NATS_OK) throw std::runtime_error(nats_error(what, st));
}

struct AsyncAcks {
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> errors{0};
  std::uint64_t next_seq = 0;  // written by libnats' one delivery thread
  std::atomic<std::uint64_t> out_of_order{0};
  std::string first_error;  // set once, read after js_PublishAsyncComplete
  std::atomic<bool> have_error{false};
};

void on_async_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* a = static_cast<AsyncAcks*>(closure);
  if (pa != nullptr) {
    if (pa->Sequence != a->next_seq) a->out_of_order.fetch_add(1, std::memory_order_relaxed);
    a->next_seq = pa->Sequence + 1;
    a->acked.fetch_add(1, std::memory_order_release);
  } else {
    if (!a->have_error.exchange(true)) {
      a->first_error = std::string(natsStatus_GetText(pae->Err)) + (pae->ErrText ? std::string(" ") + pae->ErrText : "");
    }
    a->errors.fetch_add(1, std::memory_order_release);
  }
  natsMsg_Destroy(msg);
}

struct NatsClient {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  NatsClient(const std::string& addr, bool send_asap, jsOptions* jo) {
    natsOptions* o = nullptr;
    check(natsOptions_Create(&o), "natsOptions_Create");
    check(natsOptions_SetURL(o, ("nats://" + addr).c_str()), "natsOptions_SetURL");
    check(natsOptions_SetName(o, "stream-bench"), "natsOptions_SetName");
    check(natsOptions_SetSendAsap(o, send_asap), "natsOptions_SetSendAsap");
    check(natsOptions_SetAllowReconnect(o, false), "natsOptions_SetAllowReconnect");
    const natsStatus st = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    check(st, "natsConnection_Connect");
    check(natsConnection_JetStream(&js, nc, jo), "natsConnection_JetStream");
  }
  ~NatsClient() {
    jsCtx_Destroy(js);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);
  }
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;
};

Outcome run_nats(const Settings& s, const NatsSync& ns, const std::string& mode) {
  Outcome o;
  Server srv = start_nats(s, ns, mode);
  const std::string data = random_bytes(s.size, 42);
  const int len = static_cast<int>(data.size());
  std::uint64_t next_seq = 1;
  {
    // Publishing one at a time: SendAsap, so each request leaves at once.
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30000;
    NatsClient sync_client(srv.addr, true, &jo);
    {
      jsStreamConfig sc;
      jsStreamConfig_Init(&sc);
      const char* subjects[] = {"bench.>"};
      sc.Name = "BENCH";
      sc.Subjects = subjects;
      sc.SubjectsLen = 1;
      sc.Storage = js_FileStorage;
      jsStreamInfo* si = nullptr;
      jsErrCode jerr = static_cast<jsErrCode>(0);
      // JetStream may still be starting when the port opens.
      natsStatus st = NATS_OK;
      for (int attempt = 0; attempt < 50; ++attempt) {
        st = js_AddStream(&si, sync_client.js, &sc, nullptr, &jerr);
        if (st == NATS_OK) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (st != NATS_OK) {
        o.fail(nats_error("js_AddStream", st, jerr));
        return o;
      }
      jsStreamInfo_Destroy(si);
    }
    auto publish_sync = [&](std::uint64_t n, std::vector<std::int64_t>* samples) -> std::string {
      for (std::uint64_t i = 0; i < n; ++i) {
        jsPubAck* pa = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        const std::int64_t t0 = mono_now_ns();
        const natsStatus st = js_Publish(&pa, sync_client.js, "bench.s", data.data(), len, nullptr, &jerr);
        const std::int64_t t1 = mono_now_ns();
        if (st != NATS_OK) return nats_error("js_Publish", st, jerr);
        const std::uint64_t seq = pa->Sequence;
        jsPubAck_Destroy(pa);
        if (seq != next_seq) return "ack carried sequence " + std::to_string(seq) + ", expected " + std::to_string(next_seq);
        ++next_seq;
        if (samples) samples->push_back(t1 - t0);
      }
      return {};
    };
    if (std::string e = publish_sync(s.warmup, nullptr); !e.empty()) {
      o.fail("warm-up: " + e);
      o.stored = next_seq - 1;
      return o;
    }
    std::vector<std::int64_t> samples;
    samples.reserve(s.sync_count);
    const std::int64_t t0 = mono_now_ns();
    const std::string e = publish_sync(s.sync_count, &samples);
    const std::int64_t t1 = mono_now_ns();
    if (!e.empty()) o.fail("publish one at a time: " + e);
    o.sync_rate = rate(samples.size(), t0, t1);
    o.ack = percentiles_us(samples);
  }
  if (o.ok) {
    // Windowed: js_PublishAsync with MaxPending = window; libnats' default (buffered) sends.
    AsyncAcks acks;
    acks.next_seq = next_seq;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30000;
    jo.PublishAsync.MaxPending = static_cast<int64_t>(s.window);
    jo.PublishAsync.AckHandler = on_async_ack;
    jo.PublishAsync.AckHandlerClosure = &acks;
    jo.PublishAsync.StallWait = 30000;
    NatsClient client(srv.addr, s.nats_async_send_asap, &jo);
    std::string err;
    const std::int64_t t0 = mono_now_ns();
    for (std::uint64_t i = 0; i < s.count; ++i) {
      const natsStatus st = js_PublishAsync(client.js, "bench.s", data.data(), len, nullptr);
      if (st != NATS_OK) {
        err = nats_error("js_PublishAsync", st);
        break;
      }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (err.empty()) {
      if (natsStatus st = js_PublishAsyncComplete(client.js, &po); st != NATS_OK) err = nats_error("js_PublishAsyncComplete", st);
    }
    const std::int64_t t1 = mono_now_ns();
    const std::uint64_t acked = acks.acked.load(std::memory_order_acquire);
    next_seq += acked;
    if (!err.empty()) o.fail("windowed publish: " + err);
    if (acks.errors.load() > 0) o.fail(std::to_string(acks.errors.load()) + " failed acks, first: " + acks.first_error);
    if (acks.out_of_order.load() > 0) o.fail(std::to_string(acks.out_of_order.load()) + " acks out of sequence");
    if (acked != s.count) o.fail("windowed publish: " + std::to_string(acked) + " of " + std::to_string(s.count) + " acknowledged");
    if (o.ok) o.window_rate = rate(s.count, t0, t1);
  }
  o.stored = next_seq - 1;
  if (o.ok && s.consume) {
    // Consume: a pull consumer from the first sequence, fetching a batch at a time.
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 30000;
    NatsClient client(srv.addr, false, &jo);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "BENCH";
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.AckPolicy = s.nats_ack == "none" ? js_AckNone : js_AckAll;
    natsSubscription* sub = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus st = js_PullSubscribe(&sub, client.js, "bench.>", "bench_consumer", &jo, &so, &jerr);
    if (st != NATS_OK) {
      o.fail(nats_error("js_PullSubscribe", st, jerr));
    } else {
      std::uint64_t got = 0;
      std::string err;
      const std::int64_t t0 = mono_now_ns();
      std::int64_t t1 = t0;
      while (got < o.stored && err.empty()) {
        natsMsgList list{nullptr, 0};
        st = natsSubscription_Fetch(&list, sub, s.fetch_batch, 10000, &jerr);
        if (st != NATS_OK) {
          err = nats_error("natsSubscription_Fetch", st, jerr);
          break;
        }
        for (int i = 0; i < list.Count; ++i) {
          if (natsMsg_GetDataLength(list.Msgs[i]) != len) err = "message of " + std::to_string(natsMsg_GetDataLength(list.Msgs[i])) + " B";
        }
        // The sequences of a batch's first and last messages: together with the count they show
        // that the batch continues the previous one without a gap.
        if (list.Count > 0 && err.empty()) {
          jsMsgMetaData* first = nullptr;
          jsMsgMetaData* last = nullptr;
          if (natsMsg_GetMetaData(&first, list.Msgs[0]) != NATS_OK ||
              natsMsg_GetMetaData(&last, list.Msgs[list.Count - 1]) != NATS_OK) {
            err = "no JetStream metadata on a fetched message";
          } else if (first->Sequence.Stream != got + 1 ||
                     last->Sequence.Stream != got + static_cast<std::uint64_t>(list.Count)) {
            err = "fetched sequences " + std::to_string(first->Sequence.Stream) + ".." +
                  std::to_string(last->Sequence.Stream) + ", expected from " + std::to_string(got + 1);
          }
          jsMsgMetaData_Destroy(first);
          jsMsgMetaData_Destroy(last);
          if (err.empty() && s.nats_ack != "none") {
            if (natsStatus a = natsMsg_Ack(list.Msgs[list.Count - 1], nullptr); a != NATS_OK) err = nats_error("natsMsg_Ack", a);
          }
        }
        got += static_cast<std::uint64_t>(list.Count);
        t1 = mono_now_ns();
        natsMsgList_Destroy(&list);
      }
      o.consumed = got;
      if (!err.empty()) o.fail("consume: " + err);
      if (got != o.stored && err.empty()) o.fail("consume: " + std::to_string(got) + " of " + std::to_string(o.stored));
      if (o.ok) o.consume_rate = rate(got, t0, t1);
      natsSubscription_Destroy(sub);
    }
  }
  if (!srv.proc->running()) o.fail("nats-server exited");
  srv.proc->stop();
  return o;
}

// =============================================================================================
// Tables
// =============================================================================================

std::string fmtd(const char* f, double v) {
  if (std::isnan(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
std::string fmt_rate(double v) {
  if (std::isnan(v) || v == 0) return "-";
  if (v >= 1e6) return fmtd("%.2f M", v / 1e6);
  if (v >= 1e4) return fmtd("%.0f k", v / 1e3);
  return fmtd("%.0f", v);
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

std::string fsync_statement(const Settings& s, const NatsSync& ns, const std::string& mode, bool* like_for_like) {
  std::ostringstream m;
  *like_for_like = true;
  if (mode == "always") {
    m << "slipd fsync=always (ack after the fsync that covers the message); nats-server ";
    if (ns.sync_interval) {
      m << "sync_interval: always (fsync per write, before the ack)";
    } else {
      m << ns.version << " CANNOT fsync per message (sync_interval arrived in 2.10): it runs with its default "
        << "(write before the ack, fsync every 2 min), so this mode is NOT like for like and favours nats-server";
      *like_for_like = false;
    }
  } else {
    m << "slipd fsync=" << s.fsync_interval_ms << "ms (ack after write(2), fsync within " << s.fsync_interval_ms
      << " ms); nats-server ";
    if (ns.sync_interval) {
      m << "sync_interval: " << s.fsync_interval_ms << "ms";
    } else {
      m << ns.version << " default (no setting: write to the block file before the ack, fsync every 2 min)";
      if (s.fsync_interval_ms != 120'000) {
        m << " -- NOT the same interval as slipd's";
        *like_for_like = false;
      }
    }
  }
  return m.str();
}

}  // namespace
}  // namespace slip::bench

int main(int argc, char** argv) {
  using namespace slip::bench;
  Settings s;
  if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') {
    s.tmp_dir = t;
  } else {
    s.tmp_dir = "/tmp";
  }
  CLI::App app{"stream_bench: slipd's persistent streams against nats-server's JetStream, same machine, same run"};
  app.add_option("--runs", s.runs, "Repetitions of everything")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--slipd", s.slipd, "slipd binary")->capture_default_str();
  app.add_option("--nats-server", s.nats_server, "nats-server binary")->capture_default_str();
  app.add_option("--tmp-dir", s.tmp_dir, "Where the servers' fresh data directories go (a disk, not tmpfs)")
      ->capture_default_str();
  app.add_option("--slipd-threads", s.slipd_threads, "slipd --threads")->capture_default_str();
  app.add_option("--client-idle", s.client_idle, "Slipstream client loop: block, spin or busy")->capture_default_str();
  app.add_option("--count", s.count, "Publishes with a window (then all are read back)")->capture_default_str();
  app.add_option("--sync-count", s.sync_count, "Publishes one at a time, recorded")->capture_default_str();
  app.add_option("--warmup", s.warmup, "Publishes one at a time before recording")->capture_default_str();
  app.add_option("--size", s.size, "Payload bytes")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  app.add_option("--window", s.window, "Unacknowledged publishes at most, windowed publish")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--fetch-batch", s.fetch_batch, "Messages per fetch (nats) and per read (slipd, which caps it at 1000)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--fsync", s.fsync_modes, "fsync modes to run: interval, always")
      ->delimiter(',')
      ->check(CLI::IsMember({"interval", "always"}));
  app.add_option("--fsync-interval-ms", s.fsync_interval_ms, "The interval of the 'interval' mode, for both servers")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{86'400'000}));
  app.add_option("--nats-ack", s.nats_ack, "The nats pull consumer's ack policy: all (ack each batch's last) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"all", "none"}));
  app.add_option("--nats-async-send-asap", s.nats_async_send_asap,
                 "libnats SendAsap for the windowed publish (1/0; 0: libnats' buffered default)")
      ->capture_default_str();
  app.add_flag("!--no-consume", s.consume, "Skip step 3, reading back (to profile the publishes alone)");
  app.add_option("--targets", s.targets, "slipd, nats")->delimiter(',')->check(CLI::IsMember({"slipd", "nats"}));
  CLI11_PARSE(app, argc, argv);
  if (!slip::io::parse_idle_strategy(s.client_idle).is_ok()) {
    std::fprintf(stderr, "stream_bench: --client-idle must be block, spin or busy\n");
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  (void)slip::init_logging("warn");
  if (nats_Open(-1) != NATS_OK) {
    std::fprintf(stderr, "stream_bench: nats_Open failed\n");
    return 1;
  }
  const bool want_slipd = std::find(s.targets.begin(), s.targets.end(), "slipd") != s.targets.end();
  const bool want_nats = std::find(s.targets.begin(), s.targets.end(), "nats") != s.targets.end();
  const NatsSync ns = want_nats ? probe_nats(s) : NatsSync{};

  std::printf("# stream_bench: %s\n", machine().c_str());
  std::printf("# data directories under %s (%s), fresh for every server start\n", s.tmp_dir.c_str(),
              filesystem_of(s.tmp_dir).c_str());
  std::printf("# one stream on bench.> (file storage, 1 replica), %zu B random payloads on bench.s; runs=%d\n", s.size,
              s.runs);
  std::printf("# pub1: %llu warm-up then %llu recorded publishes one at a time; pubW: %llu publishes, window %zu;\n"
              "# consume: everything read back from sequence 1 by a pull consumer, %d per fetch\n",
              static_cast<unsigned long long>(s.warmup), static_cast<unsigned long long>(s.sync_count),
              static_cast<unsigned long long>(s.count), s.window, s.fetch_batch);
  std::printf("# slipd --threads %d, Slipstream client loop idle %s; slipd consume = pull consumer, "
              "ack none\n",
              s.slipd_threads, s.client_idle.c_str());
  if (want_nats) {
    std::printf("# nats-server %s -js; libnats: js_Publish (SendAsap), js_PublishAsync (MaxPending = window, SendAsap "
                "%d), pull consumer js_PullSubscribe + natsSubscription_Fetch, ack %s\n",
                ns.version.c_str(), s.nats_async_send_asap ? 1 : 0, s.nats_ack == "none" ? "none" : "all (the last message of each batch)");
  }
  std::map<std::string, bool> like;
  for (const auto& mode : s.fsync_modes) {
    bool l = true;
    std::printf("# fsync %s: %s\n", mode.c_str(), fsync_statement(s, ns, mode, &l).c_str());
    like[mode] = l;
  }
  std::fflush(stdout);

  struct Key {
    std::string mode, target;
    bool operator<(const Key& o) const { return std::tie(mode, target) < std::tie(o.mode, o.target); }
  };
  std::map<Key, std::vector<Outcome>> results;
  bool all_ok = true;
  for (int run = 0; run < s.runs; ++run) {
    for (const auto& mode : s.fsync_modes) {
      for (const std::string target : {"slipd", "nats"}) {
        if ((target == "slipd" && !want_slipd) || (target == "nats" && !want_nats)) continue;
        Outcome o;
        try {
          o = target == "slipd" ? run_slipd(s, mode) : run_nats(s, ns, mode);
        } catch (const std::exception& e) {
          o.fail(e.what());
        }
        all_ok = all_ok && o.ok;
        std::printf("run %d fsync %-8s %-11s pub1 %s/s ack p50=%.1fus p99=%.1fus p99.9=%.1fus max=%.1fus | pubW %s/s | "
                    "consume %s/s | stored %llu read %llu%s%s\n",
                    run + 1, mode.c_str(), target == "slipd" ? "slipd" : "nats-server", fmt_rate(o.sync_rate).c_str(),
                    o.ack.p50, o.ack.p99, o.ack.p999, o.ack.max, fmt_rate(o.window_rate).c_str(),
                    fmt_rate(o.consume_rate).c_str(), static_cast<unsigned long long>(o.stored),
                    static_cast<unsigned long long>(o.consumed), o.ok ? "" : " FAILED: ", o.note.c_str());
        std::fflush(stdout);
        results[{mode, target}].push_back(std::move(o));
      }
    }
  }

  // Medians of the runs that succeeded.
  auto med = [&](const std::string& mode, const std::string& target, const std::function<double(const Outcome&)>& f) {
    std::vector<double> v;
    for (const auto& o : results[{mode, target}]) {
      if (o.ok && !std::isnan(f(o))) v.push_back(f(o));
    }
    return median(v);
  };
  std::printf("\n## Medians of %d runs (ratio = slipd / nats-server)\n\n", s.runs);
  std::printf("| fsync | Metric | slipd | nats-server | slipd / nats | Goal |\n|---|---|---:|---:|---:|---|\n");
  struct Row {
    std::string metric;
    std::function<double(const Outcome&)> f;
    bool latency;
    double goal;  // 0: none
  };
  const std::string w = std::to_string(s.window);
  const std::vector<Row> rows = {
      {"pub one at a time, msgs/s", [](const Outcome& o) { return o.sync_rate; }, false, 0},
      {"pub one at a time, ack p50 us", [](const Outcome& o) { return o.ack.p50; }, true, 0},
      {"pub one at a time, ack p99 us", [](const Outcome& o) { return o.ack.p99; }, true, 0},
      {"pub one at a time, ack p99.9 us", [](const Outcome& o) { return o.ack.p999; }, true, 0},
      {"pub window " + w + ", msgs/s", [](const Outcome& o) { return o.window_rate; }, false, 5.0},
      {"consume msgs/s (pull consumers)", [](const Outcome& o) { return o.consume_rate; }, false, 3.0},
  };
  for (const auto& mode : s.fsync_modes) {
    const std::string label = like[mode] ? mode : mode + " (nats-server not fsync-always)";
    for (const auto& r : rows) {
      const double a = med(mode, "slipd", r.f);
      const double b = med(mode, "nats", r.f);
      const double ratio = a / b;
      std::string goal;
      if (r.goal > 0 && want_slipd && want_nats) {
        goal = fmtd(">= %.0fx: ", r.goal) + (std::isnan(ratio) ? "-" : ratio >= r.goal ? "met" : "MISSED");
        if (!like[mode]) goal += " (not like for like)";
      }
      std::printf("| %s | %s | %s | %s | %s | %s |\n", label.c_str(), r.metric.c_str(),
                  r.latency ? fmtd("%.1f", a).c_str() : fmt_rate(a).c_str(),
                  r.latency ? fmtd("%.1f", b).c_str() : fmt_rate(b).c_str(), fmtd("%.2fx", ratio).c_str(),
                  goal.c_str());
    }
  }
  nats_Close();
  if (!all_ok) {
    std::printf("\nFAILED: a message was missing or an ack failed (see the runs above)\n");
    return 1;
  }
  return 0;
}
