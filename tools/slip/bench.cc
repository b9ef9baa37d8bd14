#include "bench.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "broker/client.h"
#include "broker/subject.h"
#include "core/clock.h"
#include "core/histogram.h"
#include "io/loop_group.h"
#include "io/run_on.h"

namespace slip::cli {
namespace {

// Every payload starts with the publisher's (or requester's) send time, mono_now_ns().
constexpr std::size_t kStampBytes = 8;
// Messages a publisher sends per loop turn before letting the loop flush and read.
constexpr std::uint64_t kMaxBatch = 256;
// A publisher waits while its socket holds this many unsent bytes.
constexpr std::size_t kSendHighWater = 1u << 20;
// How long a publisher waits before looking again when it may not send.
constexpr auto kBackoff = std::chrono::microseconds(100);
// The default in-flight window, in bytes of messages (each counted with a small frame overhead).
constexpr std::uint64_t kWindowBytes = 1u << 20;
constexpr std::uint64_t kFrameOverhead = 32;
constexpr auto kProgressAfter = std::chrono::seconds(1);
constexpr auto kProgressEvery = std::chrono::milliseconds(250);
constexpr auto kShutdownWait = std::chrono::seconds(3);

// A latency from two stamps; a negative one (a bad stamp) counts as zero.
std::uint64_t elapsed_ns(std::int64_t now, std::int64_t stamp) {
  return now > stamp ? static_cast<std::uint64_t>(now - stamp) : 0;
}

std::string fresh_token() {
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  std::string s(12, '0');
  for (char& ch : s) ch = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return s;
}

using io::run_on;

// Failures reported from any loop thread.
class Errors {
 public:
  void add(std::string message) {
    std::lock_guard<std::mutex> lock(mu_);
    list_.push_back(std::move(message));
    any_.store(true, std::memory_order_release);
  }
  bool any() const { return any_.load(std::memory_order_acquire); }
  std::vector<std::string> list() const {
    std::lock_guard<std::mutex> lock(mu_);
    return list_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
  std::atomic<bool> any_{false};
};

enum class Role { kPublisher, kSubscriber, kRequester, kResponder };

const char* role_name(Role r) {
  switch (r) {
    case Role::kPublisher: return "publisher";
    case Role::kSubscriber: return "subscriber";
    case Role::kRequester: return "requester";
    case Role::kResponder: return "responder";
  }
  return "client";
}

class Worker;

// What every client of one run sees. Set up before any client starts; the atomics change later.
struct Run {
  BenchMode mode = BenchMode::kNone;
  const BenchOptions* opt = nullptr;
  std::string subject;
  std::string queue;  // queue group of subscribers (queue mode) or responders
  std::chrono::milliseconds request_timeout{5000};
  std::int64_t start_ns = 0;
  std::int64_t deadline_ns = 0;  // duration runs
  std::uint64_t window = 0;
  std::vector<Worker*> senders;    // publishers or requesters
  std::vector<Worker*> receivers;  // subscribers or responders
  std::atomic<bool> stopping{false};
  Errors errors;

  // Messages published and not yet taken by the slowest subscriber (or, in a queue group, by
  // any member).
  std::uint64_t in_flight() const;
};

// One client connection and the work it does. Created, driven and destroyed on its loop's
// thread; the atomics are read by the main thread for progress and completion.
class Worker {
 public:
  Worker(Run& run, Role role, unsigned index, io::EventLoop& loop) : run_(run), role_(role), index_(index), loop_(loop) {}

  // Loop thread.
  void connect(session::ClientOptions o) {
    timer_ = std::make_unique<boost::asio::steady_timer>(loop_.context());
    client_ = std::make_unique<broker::PubSubClient>(loop_, std::move(o));
    client_->set_on_closed([this](const Status& reason) {
      closed_.store(true, std::memory_order_release);
      fail(reason.is_ok() ? std::string("connection closed by the server") : "connection lost: " + reason.to_string());
    });
    client_->start([this] { ready_.store(true, std::memory_order_release); });
  }

  // Loop thread: why the client stopped dialing, or OK.
  Status gave_up() { return client_ ? client_->client().gave_up() : Status(); }

  // Loop thread: subscribers and responders subscribe, then make sure the broker has the SUB
  // (a request to a subject nobody serves comes back only after everything sent before it).
  void subscribe() {
    const Run& r = run_;
    Result<std::uint64_t> sid = internal_error("no subscription");
    if (role_ == Role::kSubscriber) {
      sid = client_->subscribe(r.subject, r.queue, [this](const broker::Message& m) { on_message(m); });
    } else {
      sid = client_->subscribe(r.subject, r.queue, [this](const broker::Message& m) { on_request(m); });
    }
    if (!sid.is_ok()) {
      fail("cannot subscribe: " + sid.status().to_string());
      return;
    }
    Status st = client_->request("_bench.sync." + fresh_token(), Slice(), run_.request_timeout,
                                 [this](Result<broker::Message>) { synced_.store(true, std::memory_order_release); });
    if (!st.is_ok()) fail("cannot sync with the broker: " + st.to_string());
  }

  // Loop thread: publishers and requesters begin.
  void go() {
    const BenchOptions& o = *run_.opt;
    target_ = o.duration_s > 0 ? UINT64_MAX : (role_ == Role::kRequester ? o.req_count : o.count);
    scratch_.assign(o.size, 0);
    for (std::size_t i = kStampBytes; i < scratch_.size(); ++i) scratch_[i] = static_cast<std::uint8_t>('a' + i % 26);
    if (role_ == Role::kPublisher) {
      pump();
    } else {
      send_request();
    }
  }

  // Loop thread: GOAWAY (after everything queued) and no more reconnects.
  void stop() {
    if (timer_) timer_->cancel();
    if (client_) client_->stop();
  }
  // Loop thread.
  void destroy() {
    client_.reset();
    timer_.reset();
  }
  bool had_session() const { return ready_.load(std::memory_order_acquire); }

  Role role() const { return role_; }
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  bool synced() const { return synced_.load(std::memory_order_acquire); }
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  // Published, received, requests answered (requester) or requests echoed (responder).
  std::uint64_t done() const { return done_.load(std::memory_order_acquire); }
  // Read after the loops stopped.
  const HistogramSnapshot& histogram() const { return hist_; }
  std::int64_t last_ns() const { return last_ns_; }

 private:
  std::string who() const { return std::string(role_name(role_)) + " " + std::to_string(index_ + 1); }

  void fail(const std::string& what) {
    if (run_.stopping.load(std::memory_order_acquire)) return;
    run_.errors.add(who() + ": " + what);
  }

  bool should_stop() const { return run_.stopping.load(std::memory_order_acquire) || run_.errors.any(); }

  void finish_sending() {
    finished_.store(true, std::memory_order_release);
  }

  void wait_then(std::chrono::nanoseconds d, void (Worker::*next)()) {
    timer_->expires_after(d);
    timer_->async_wait([this, next](const boost::system::error_code& ec) {
      if (!ec) (this->*next)();
    });
  }

  // Publishes a batch, then yields to the loop (which flushes it) and comes back.
  void pump() {
    if (should_stop()) return;
    if (!client_->ready()) {
      fail("not connected");
      return;
    }
    std::int64_t now = mono_now_ns();
    if (run_.deadline_ns != 0 && now >= run_.deadline_ns) {
      finish_sending();
      return;
    }
    // Backpressure from our own socket, then from the slowest subscriber.
    if (client_->client().session()->pending_out_bytes() > kSendHighWater) {
      wait_then(kBackoff, &Worker::pump);
      return;
    }
    std::uint64_t room = kMaxBatch;
    const std::uint64_t in_flight = run_.in_flight();
    if (in_flight >= run_.window) {
      wait_then(kBackoff, &Worker::pump);
      return;
    }
    room = std::min(room, run_.window - in_flight);
    const double rate = run_.opt->rate;
    std::int64_t wait_until = 0;
    for (std::uint64_t k = 0; k < room && sent_ < target_; ++k) {
      std::int64_t stamp;
      if (rate > 0) {
        // The intended send time: a stall shows up in the latency instead of hiding it.
        stamp = run_.start_ns + static_cast<std::int64_t>(static_cast<double>(sent_) * 1e9 / rate);
        if (stamp > now) {
          now = mono_now_ns();
          if (stamp > now) {
            wait_until = stamp;
            break;
          }
        }
      } else {
        stamp = mono_now_ns();
      }
      std::memcpy(scratch_.data(), &stamp, kStampBytes);
      // TODO(perf): one allocation per message; a pooled buffer would avoid it.
      Status st = client_->publish(run_.subject, Slice::copy_of(ByteView(scratch_.data(), scratch_.size())));
      if (!st.is_ok()) {
        fail("publish failed: " + st.to_string());
        return;
      }
      ++sent_;
    }
    last_ns_ = mono_now_ns();
    done_.store(sent_, std::memory_order_release);
    if (sent_ >= target_) {
      finish_sending();
      return;
    }
    if (wait_until != 0) {
      wait_then(std::chrono::nanoseconds(wait_until - mono_now_ns()), &Worker::pump);
      return;
    }
    loop_.post([this] { pump(); });
  }

  void on_message(const broker::Message& m) {
    const std::int64_t now = mono_now_ns();
    if (m.payload.size() != run_.opt->size) {
      fail("got a " + std::to_string(m.payload.size()) + "-byte message on " + std::string(m.subject) +
           ", expected " + std::to_string(run_.opt->size) + " bytes (is something else publishing there?)");
      return;
    }
    std::int64_t stamp;
    std::memcpy(&stamp, m.payload.data(), kStampBytes);
    hist_.record(elapsed_ns(now, stamp));
    last_ns_ = now;
    done_.store(++received_, std::memory_order_release);
  }

  void on_request(const broker::Message& m) {
    if (m.reply.empty()) {
      fail("got a message without a reply subject on " + std::string(m.subject));
      return;
    }
    Status st = client_->publish(m.reply, m.payload);
    if (!st.is_ok()) {
      fail("cannot reply: " + st.to_string());
      return;
    }
    done_.store(++received_, std::memory_order_release);
  }

  void send_request() {
    if (should_stop()) return;
    if (sent_ >= target_ || (run_.deadline_ns != 0 && mono_now_ns() >= run_.deadline_ns)) {
      finish_sending();
      return;
    }
    const std::int64_t stamp = mono_now_ns();
    std::memcpy(scratch_.data(), &stamp, kStampBytes);
    Status st = client_->request(
        run_.subject, Slice::copy_of(ByteView(scratch_.data(), scratch_.size())), run_.request_timeout,
        [this, stamp](Result<broker::Message> r) {
          if (!r.is_ok()) {
            fail("request " + std::to_string(sent_) + ": " + r.status().to_string());
            return;
          }
          const std::int64_t now = mono_now_ns();
          std::int64_t echoed = 0;
          if (r->payload.size() >= kStampBytes) std::memcpy(&echoed, r->payload.data(), kStampBytes);
          if (r->payload.size() != run_.opt->size || echoed != stamp) {
            fail("reply " + std::to_string(sent_) + " does not echo its request");
            return;
          }
          hist_.record(elapsed_ns(now, stamp));
          last_ns_ = now;
          done_.store(++received_, std::memory_order_release);
          send_request();
        });
    if (!st.is_ok()) {
      fail("request failed: " + st.to_string());
      return;
    }
    ++sent_;
  }

  Run& run_;
  Role role_;
  unsigned index_;
  io::EventLoop& loop_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::unique_ptr<broker::PubSubClient> client_;
  std::vector<std::uint8_t> scratch_;
  std::uint64_t target_ = 0;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
  std::int64_t last_ns_ = 0;
  HistogramSnapshot hist_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> synced_{false};
  std::atomic<bool> closed_{false};
  std::atomic<bool> finished_{false};
  std::atomic<std::uint64_t> done_{0};
};

std::uint64_t Run::in_flight() const {
  std::uint64_t published = 0;
  for (const Worker* w : senders) published += w->done();
  std::uint64_t taken = 0;
  if (mode == BenchMode::kQueue) {
    for (const Worker* w : receivers) taken += w->done();
  } else {
    taken = UINT64_MAX;
    for (const Worker* w : receivers) taken = std::min(taken, w->done());
    if (receivers.empty()) taken = published;
  }
  return published > taken ? published - taken : 0;
}

// ---- Progress ----------------------------------------------------------------------------------

// A one-line progress bar on stderr, redrawn in place and erased at the end.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}

  // fraction < 0: unknown.
  void update(double fraction, std::uint64_t msgs, double rate) {
    if (!enabled_) return;
    char bar[33];
    const int width = 30;
    const int filled = fraction < 0 ? 0 : static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width);
    bar[0] = '[';
    for (int i = 0; i < width; ++i) bar[1 + i] = i < filled ? '#' : (i == filled ? '>' : ' ');
    bar[width + 1] = ']';
    bar[width + 2] = '\0';
    std::fprintf(stderr, "\r\033[K%s %3.0f%%  %" PRIu64 " msgs  %.0f msgs/s", bar,
                 fraction < 0 ? 0.0 : std::clamp(fraction, 0.0, 1.0) * 100, msgs, rate);
    std::fflush(stderr);
    drawn_ = true;
  }

  void clear() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
};

// ---- Results -----------------------------------------------------------------------------------

struct Row {
  const char* name = "";
  std::uint64_t msgs = 0;
  double seconds = 0;
  double size = 0;
  const HistogramSnapshot* latency = nullptr;

  double rate() const { return seconds > 0 ? static_cast<double>(msgs) / seconds : 0; }
  double mb_per_s() const { return rate() * size / 1e6; }
};

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

void print_table(const std::vector<Row>& rows, const char* unit) {
  std::printf("%-5s %12s %12s %9s %9s %9s %9s %9s %9s\n", "", unit, (std::string(unit) + "/s").c_str(), "MB/s",
              "p50 us", "p90 us", "p99 us", "p99.9 us", "max us");
  for (const Row& r : rows) {
    std::printf("%-5s %12" PRIu64 " %12.0f %9.1f", r.name, r.msgs, r.rate(), r.mb_per_s());
    if (r.latency && r.latency->count() > 0) {
      const HistogramSnapshot& h = *r.latency;
      std::printf(" %9.1f %9.1f %9.1f %9.1f %9.1f\n", us(h.quantile(0.5)), us(h.quantile(0.9)),
                  us(h.quantile(0.99)), us(h.quantile(0.999)), us(h.max()));
    } else {
      std::printf(" %9s %9s %9s %9s %9s\n", "-", "-", "-", "-", "-");
    }
  }
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(ch)));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

std::string json_row(const Row& r, std::uint64_t expected, bool with_expected) {
  char buf[512];
  int n = std::snprintf(buf, sizeof(buf), "{\"msgs\": %" PRIu64 ", ", r.msgs);
  std::string s(buf, static_cast<std::size_t>(n));
  if (with_expected) {
    n = std::snprintf(buf, sizeof(buf), "\"expected\": %" PRIu64 ", \"missing\": %" PRIu64 ", ", expected,
                      expected > r.msgs ? expected - r.msgs : 0);
    s.append(buf, static_cast<std::size_t>(n));
  }
  n = std::snprintf(buf, sizeof(buf), "\"seconds\": %.6f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.3f", r.seconds,
                    r.rate(), r.mb_per_s());
  s.append(buf, static_cast<std::size_t>(n));
  if (r.latency) {
    const HistogramSnapshot& h = *r.latency;
    n = std::snprintf(buf, sizeof(buf),
                      ", \"latency_us\": {\"count\": %" PRIu64
                      ", \"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"p99_9\": %.3f, \"max\": %.3f}",
                      h.count(), us(h.min()), us(h.quantile(0.5)), us(h.quantile(0.9)), us(h.quantile(0.99)),
                      us(h.quantile(0.999)), us(h.max()));
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s + "}";
}

const char* mode_name(BenchMode m) {
  switch (m) {
    case BenchMode::kPubSub: return "pubsub";
    case BenchMode::kQueue: return "queue";
    case BenchMode::kReqRep: return "reqrep";
    case BenchMode::kNone: break;
  }
  return "?";
}

std::string plural(unsigned n, const char* word) { return std::to_string(n) + " " + word + (n == 1 ? "" : "s"); }

}  // namespace

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  auto* bench = app.add_subcommand("bench", "Measure throughput and latency against a running broker");
  bench->require_subcommand(1);
  bench->footer(
      "Every payload carries its send time in its first 8 bytes, so --size is at least 8.\n"
      "Prints a table (or --json) on stdout; exits 1 when the server is unreachable, a connection\n"
      "fails or any message is missing. --server HOST:PORT and the --tls options are slip's own\n"
      "(see slip --help) and may be given before or after `bench MODE`.");

  auto shared = [&o](CLI::App* m) {
    m->add_option("--subject", o.subject, "Subject to use (default: a fresh _bench.<random>)");
    m->add_option("--size", o.size, "Payload bytes per message, at least 8 (the send timestamp)")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
    m->add_option("--duration", o.duration_s, "Run for this many seconds instead of a fixed --count")
        ->check(CLI::PositiveNumber);
    m->add_option("--threads", o.threads, "Event loop threads for the clients (0: one per client, at most one per core)")
        ->capture_default_str();
    m->add_option("--idle", o.idle, "What a client loop does when idle: block, spin or busy")->capture_default_str();
    m->add_flag("--no-progress", o.no_progress, "No progress bar (it is shown on a terminal for runs over 1 s)");
    m->add_flag("--json", o.json, "Print the result as one JSON object instead of a table");
  };

  auto* pubsub = bench->add_subcommand("pubsub", "P publishers -> S subscribers on one subject (S > 1: fan-out)");
  auto* queue = bench->add_subcommand("queue", "P publishers -> S subscribers in one queue group (each message once)");
  for (auto* m : {pubsub, queue}) {
    shared(m);
    m->add_option("-n,--count", o.count, "Messages per publisher")->capture_default_str()->check(CLI::PositiveNumber);
    m->add_option("-p,--pub,--publishers", o.publishers, "Publishers")->capture_default_str()->check(CLI::Range(1u, 1024u));
    m->add_option("-S,--sub,--subscribers", o.subscribers, "Subscribers")->capture_default_str()->check(CLI::Range(1u, 1024u));
    m->add_option("--rate", o.rate,
                  "Messages/s per publisher (0: as fast as flow control allows); latency then counts from the "
                  "intended send time")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    m->add_option("--window", o.window,
                  "Messages in flight (published, not yet received by the slowest subscriber) across all "
                  "publishers; 0: about 1 MiB worth")
        ->capture_default_str();
  }
  pubsub->callback([&o] { o.mode = BenchMode::kPubSub; });
  queue->callback([&o] { o.mode = BenchMode::kQueue; });

  auto* reqrep = bench->add_subcommand("reqrep", "R requesters (one request outstanding each) -> N echoing responders");
  shared(reqrep);
  reqrep->add_option("-n,--count", o.req_count, "Requests per requester")->capture_default_str()->check(CLI::PositiveNumber);
  reqrep->add_option("-r,--requesters", o.requesters, "Requesters")->capture_default_str()->check(CLI::Range(1u, 1024u));
  reqrep->add_option("-R,--responders", o.responders, "Responders (one queue group: each request is answered once)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  reqrep->callback([&o] { o.mode = BenchMode::kReqRep; });
  return bench;
}

int run_bench(const Common& c, const BenchOptions& o) {
  if (o.size < kStampBytes) {
    std::fprintf(stderr, "slip bench: --size %zu is too small: every message carries its 8-byte send time, so use --size 8 or more\n",
                 o.size);
    return 2;
  }
  auto dial = make_dialer(c);
  if (!dial.is_ok()) {
    std::fprintf(stderr, "slip bench: --server %s: %s\n", c.server.c_str(), dial.status().to_string().c_str());
    return 2;
  }
  if (!o.subject.empty()) {
    if (Status st = broker::validate_publish_subject(o.subject); !st.is_ok()) {
      std::fprintf(stderr, "slip bench: --subject: %s\n", st.to_string().c_str());
      return 2;
    }
  }
  auto idle = io::parse_idle_strategy(o.idle);
  if (!idle.is_ok()) {
    std::fprintf(stderr, "slip bench: --idle: %s\n", idle.status().to_string().c_str());
    return 2;
  }
  const bool reqrep = o.mode == BenchMode::kReqRep;
  const unsigned senders = reqrep ? o.requesters : o.publishers;
  const unsigned receivers = reqrep ? o.responders : o.subscribers;

  Run run;
  run.mode = o.mode;
  run.opt = &o;
  run.subject = o.subject.empty() ? "_bench." + fresh_token() : o.subject;
  if (o.mode == BenchMode::kQueue) run.queue = "bench-queue";
  if (reqrep) run.queue = "bench-responders";
  run.request_timeout = std::chrono::milliseconds(std::max(1000u, c.timeout_ms));
  run.window = o.window ? o.window : std::max<std::uint64_t>(2 * kMaxBatch, kWindowBytes / (o.size + kFrameOverhead));
  run.window = std::max<std::uint64_t>(run.window, senders);

  const std::size_t clients = std::size_t{senders} + receivers;
  const std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t threads = o.threads ? o.threads : std::min(clients, cores);
  io::LoopGroup loops(threads, io::LoopOptions{*idle, std::chrono::microseconds(50)});
  loops.start();

  // Receivers first, so that with two threads a 1 -> 1 run puts each side on its own loop.
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned i = 0; i < receivers; ++i) {
    workers.push_back(std::make_unique<Worker>(run, reqrep ? Role::kResponder : Role::kSubscriber, i,
                                               loops.loop(workers.size() % threads)));
    run.receivers.push_back(workers.back().get());
  }
  for (unsigned i = 0; i < senders; ++i) {
    workers.push_back(std::make_unique<Worker>(run, reqrep ? Role::kRequester : Role::kPublisher, i,
                                               loops.loop(workers.size() % threads)));
    run.senders.push_back(workers.back().get());
  }
  auto loop_of = [&](std::size_t i) -> io::EventLoop& { return loops.loop(i % threads); };

  session::ClientOptions co;
  co.dial = *dial;
  co.session.handshake_timeout = std::chrono::milliseconds(c.timeout_ms);
  co.reconnect.enabled = false;  // a lost connection loses messages: report it, do not paper over it
  for (std::size_t i = 0; i < workers.size(); ++i) {
    co.handshake.client_name = c.name + "-bench-" + role_name(workers[i]->role());
    set_credentials(c, co.handshake);
    run_on(loop_of(i), [&] { workers[i]->connect(co); });
  }

  // Tears everything down on the loops' threads; afterwards the workers are inert.
  auto shutdown = [&] {
    run.stopping.store(true, std::memory_order_release);
    for (std::size_t i = 0; i < workers.size(); ++i) run_on(loop_of(i), [&] { workers[i]->stop(); });
    const auto until = std::chrono::steady_clock::now() + kShutdownWait;
    for (auto& w : workers) {
      while (w->had_session() && !w->closed() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    for (std::size_t i = 0; i < workers.size(); ++i) run_on(loop_of(i), [&] { workers[i]->destroy(); });
    loops.stop();
  };
  auto fail_setup = [&](const std::string& what) {
    shutdown();
    std::fprintf(stderr, "slip bench: %s\n", what.c_str());
    for (const auto& e : run.errors.list()) std::fprintf(stderr, "slip bench: %s\n", e.c_str());
    return 1;
  };

  // Connect, with the handshake timeout as the bound.
  const auto connect_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(c.timeout_ms) +
                                std::chrono::milliseconds(500);
  for (;;) {
    std::size_t ready = 0;
    Status why;
    for (std::size_t i = 0; i < workers.size(); ++i) {
      if (workers[i]->ready()) {
        ++ready;
        continue;
      }
      run_on(loop_of(i), [&] {
        if (why.is_ok()) why = workers[i]->gave_up();
      });
    }
    if (ready == workers.size()) break;
    if (!why.is_ok()) return fail_setup(why.to_string());
    if (run.errors.any()) return fail_setup("cannot connect to " + c.server);
    if (std::chrono::steady_clock::now() > connect_deadline) {
      return fail_setup("cannot connect to " + c.server + ": no handshake within " + std::to_string(c.timeout_ms) +
                        " ms (" + std::to_string(ready) + " of " + std::to_string(workers.size()) + " clients ready)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }

  for (std::size_t i = 0; i < workers.size(); ++i) {
    Worker* w = workers[i].get();
    if (w->role() == Role::kSubscriber || w->role() == Role::kResponder) run_on(loop_of(i), [w] { w->subscribe(); });
  }
  const auto sync_deadline = std::chrono::steady_clock::now() + run.request_timeout + std::chrono::seconds(1);
  while (!std::all_of(run.receivers.begin(), run.receivers.end(), [](Worker* w) { return w->synced(); })) {
    if (run.errors.any()) return fail_setup("cannot subscribe on " + run.subject);
    if (std::chrono::steady_clock::now() > sync_deadline) return fail_setup("the broker did not confirm the subscriptions");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  // Go.
  run.start_ns = mono_now_ns();
  if (o.duration_s > 0) run.deadline_ns = run.start_ns + static_cast<std::int64_t>(o.duration_s * 1e9);
  for (std::size_t i = 0; i < workers.size(); ++i) {
    Worker* w = workers[i].get();
    if (w->role() == Role::kPublisher || w->role() == Role::kRequester) loop_of(i).post([w] { w->go(); });
  }

  // What "done" means: every subscriber has every message (pubsub), the group has each message
  // once (queue), every requester has its replies (reqrep).
  const std::uint64_t per_sender = reqrep ? o.req_count : o.count;
  auto expected_now = [&]() -> std::uint64_t {
    std::uint64_t published = 0;
    bool all_finished = true;
    for (Worker* w : run.senders) {
      all_finished = all_finished && w->finished();
      published += w->done();
    }
    if (o.duration_s <= 0) published = per_sender * senders;
    else if (!all_finished) return UINT64_MAX;
    if (reqrep) return published;
    return o.mode == BenchMode::kQueue ? published : published * receivers;
  };
  auto received_now = [&]() -> std::uint64_t {
    std::uint64_t n = 0;
    for (Worker* w : reqrep ? run.senders : run.receivers) n += w->done();
    return n;
  };
  auto complete = [&] {
    if (reqrep) return std::all_of(run.senders.begin(), run.senders.end(), [](Worker* w) { return w->finished(); });
    const std::uint64_t want = expected_now();
    if (want == UINT64_MAX) return false;
    if (o.mode == BenchMode::kQueue) return received_now() >= want;
    const std::uint64_t per_receiver = want / receivers;
    return std::all_of(run.receivers.begin(), run.receivers.end(),
                       [&](Worker* w) { return w->done() >= per_receiver; });
  };

  Progress progress(!o.no_progress && !o.json && isatty(STDERR_FILENO));
  const std::uint64_t planned = o.duration_s > 0 ? 0 : (reqrep ? per_sender * senders
                                                                : (o.mode == BenchMode::kQueue ? 1 : receivers) *
                                                                      per_sender * senders);
  const auto started = std::chrono::steady_clock::now();
  auto last_change = started;
  auto last_draw = started;
  std::uint64_t last_seen = 0, last_drawn_msgs = 0;
  std::uint64_t last_published = 0;
  bool stalled = false;
  while (!run.errors.any() && !complete()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const auto now = std::chrono::steady_clock::now();
    const std::uint64_t got = received_now();
    std::uint64_t published = 0;
    for (Worker* w : run.senders) published += w->done();
    if (got != last_seen || published != last_published) {
      last_seen = got;
      last_published = published;
      last_change = now;
    } else if (now - last_change > std::chrono::milliseconds(c.timeout_ms)) {
      stalled = true;
      break;
    }
    if (now - started >= kProgressAfter && now - last_draw >= kProgressEvery) {
      const double dt = std::chrono::duration<double>(now - last_draw).count();
      double fraction = -1;
      if (planned) fraction = static_cast<double>(got) / static_cast<double>(planned);
      else if (o.duration_s > 0) fraction = std::chrono::duration<double>(now - started).count() / o.duration_s;
      progress.update(fraction, got, static_cast<double>(got - last_drawn_msgs) / dt);
      last_draw = now;
      last_drawn_msgs = got;
    }
  }
  progress.clear();
  shutdown();

  // Results (the loops have stopped: every worker's plain fields are ours to read).
  std::uint64_t published = 0;
  std::int64_t send_end = run.start_ns, recv_end = run.start_ns;
  HistogramSnapshot latency;
  for (Worker* w : run.senders) {
    published += w->done();
    send_end = std::max(send_end, w->last_ns());
    if (reqrep) latency.merge(w->histogram());
  }
  std::uint64_t received = 0;
  for (Worker* w : run.receivers) {
    received += w->done();
    recv_end = std::max(recv_end, w->last_ns());
    if (!reqrep) latency.merge(w->histogram());
  }
  const double size = static_cast<double>(o.size);
  const auto secs = [&](std::int64_t until) { return static_cast<double>(std::max<std::int64_t>(0, until - run.start_ns)) / 1e9; };
  std::uint64_t expected = 0;
  std::uint64_t got = 0;
  std::vector<Row> rows;
  if (reqrep) {
    std::uint64_t answered = 0;
    for (Worker* w : run.senders) answered += w->done();
    // Each requester has at most one request outstanding: it sent `answered` plus what failed.
    expected = o.duration_s > 0 ? answered : per_sender * senders;
    got = answered;
    rows.push_back(Row{"req", answered, secs(send_end), size * 2, &latency});
  } else {
    expected = o.mode == BenchMode::kQueue ? published : published * receivers;
    if (o.duration_s <= 0) expected = (o.mode == BenchMode::kQueue ? 1 : receivers) * per_sender * senders;
    got = received;
    rows.push_back(Row{"pub", published, secs(send_end), size, nullptr});
    rows.push_back(Row{"sub", received, secs(recv_end), size, &latency});
  }
  std::vector<std::string> errors = run.errors.list();
  if (stalled) {
    errors.push_back("no progress for " + std::to_string(c.timeout_ms) + " ms (" + std::to_string(got) + " of " +
                     std::to_string(expected) + " messages received)");
  }
  if (got < expected) {
    errors.push_back(std::to_string(expected - got) + " of " + std::to_string(expected) + (reqrep ? " replies" : " messages") +
                     " missing");
  } else if (got > expected) {
    errors.push_back(std::to_string(got - expected) + " more messages received than were published");
  }
  const bool ok = errors.empty();

  const std::string shape =
      reqrep ? plural(senders, "requester") + " -> " + plural(receivers, "responder")
             : plural(senders, "publisher") + " -> " + plural(receivers, "subscriber") +
                   (o.mode == BenchMode::kQueue ? " (one queue group)" : "");
  if (o.json) {
    std::printf("{\"mode\": \"%s\", \"server\": \"%s\", \"subject\": \"%s\", \"size\": %zu, ", mode_name(o.mode),
                json_escape(c.server).c_str(), json_escape(run.subject).c_str(), o.size);
    if (reqrep) {
      std::printf("\"requesters\": %u, \"responders\": %u, \"requests\": %s", senders, receivers,
                  json_row(rows[0], expected, true).c_str());
    } else {
      std::printf("\"publishers\": %u, \"subscribers\": %u, \"pub\": %s, \"sub\": %s", senders, receivers,
                  json_row(rows[0], 0, false).c_str(), json_row(rows[1], expected, true).c_str());
    }
    std::printf(", \"ok\": %s, \"errors\": [", ok ? "true" : "false");
    for (std::size_t i = 0; i < errors.size(); ++i) {
      std::printf("%s\"%s\"", i ? ", " : "", json_escape(errors[i]).c_str());
    }
    std::printf("]}\n");
  } else {
    std::printf("slip bench %s: %s, %zu-byte messages, %s on %s\n", mode_name(o.mode), shape.c_str(), o.size,
                run.subject.c_str(), c.server.c_str());
    print_table(rows, reqrep ? "reqs" : "msgs");
    if (reqrep) {
      std::printf("%" PRIu64 " of %" PRIu64 " requests answered in %.3f s (MB/s counts both directions)\n", got,
                  expected, secs(send_end));
    } else {
      std::printf("%" PRIu64 " of %" PRIu64 " expected messages received in %.3f s\n", got, expected,
                  secs(recv_end));
    }
  }
  std::fflush(stdout);
  for (const auto& e : errors) std::fprintf(stderr, "slip bench: %s\n", e.c_str());
  return ok ? 0 : 1;
}

}  // namespace slip::cli
