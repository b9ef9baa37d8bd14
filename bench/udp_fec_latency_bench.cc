// Delivery latency over a lossy path: one session sends messages at a steady rate (default one
// 128-byte message per millisecond) and the receiver records, for each, the time from its
// *intended* send time to its arrival (no coordinated omission: a stall delays every message
// scheduled behind it, and those delays are counted). Three transports on the same loss:
//
//   udp+fec   udp:// through tools/slip-impair (random loss, both directions, added one-way
//             delay), forward error correction on at both ends (adaptive by default);
//   udp       the same path, FEC off;
//   tcp       TCP on 127.0.0.1 through the same loss and delay: a netfilter rule on lo
//             (scripts/impair-tcp.sh queue: needs CAP_NET_ADMIN) hands the port's packets to
//             tools/slip-impair's slip-nfq-impair, which drops them or gives the verdict ACCEPT
//             after the delay, so the kernel's TCP sees the losses and the path's round trip.
//
// Each path's round-trip time without loss is measured first (ping-pongs of the message size
// over the same kind of session, through the same impairment at 0% loss). The goal (docs/udp.md): with FEC, p99 at most 1.5 x the
// path's RTT + 5 ms, and well below TCP's (here: at most half).
//
// Server and client run in this process on two event loops (one clock for both ends); the proxy
// is a child process started before any thread.
//
// Run: scripts/bench-udp-fec.sh (make bench-udp-fec), or e.g.
//   build/release/bench/udp_fec_latency_bench --loss 10 --delay-ms 5 --messages 10000
#include <CLI/CLI.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child_process.h"
#include "core/clock.h"
#include "core/logging.h"
#include "io/loop_group.h"
#include "io/run_on.h"
#include "latency_stats.h"
#include "session/client.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/udp/fec_filter.h"
#include "transport/udp/keys.h"
#include "transport/udp/udp.h"

namespace slip::bench {
namespace {

using session::Priority;
using session::Session;
namespace udp = transport::udp;

constexpr std::uint8_t kOneWay = 0;
constexpr std::uint8_t kPing = 1;
constexpr std::size_t kHeader = 17;  // intended send time (8) | sequence (8) | kind (1)

using io::run_on;

std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// A free port for both UDP and TCP on 127.0.0.1 (asked of the kernel, then released).
Result<std::uint16_t> free_port(int type) {
  const int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return internal_error("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return internal_error("bind");
  }
  ::close(fd);
  return static_cast<std::uint16_t>(ntohs(a.sin_port));
}

// Receiver: one-way messages are recorded, pings echoed.
class Server final : public session::SessionHandler, public session::StreamHandler {
 public:
  explicit Server(std::uint64_t expect) : seen_(expect, 0) { samples_.reserve(expect); }
  session::StreamHandler* on_stream_open(Session&, std::uint64_t, Priority) override { return this; }
  void on_message(Session& s, std::uint64_t stream, Chain message) override {
    const std::int64_t now = mono_now_ns();
    if (message.size() < kHeader) return;
    std::uint8_t h[kHeader];
    message.copy_to(h, kHeader);
    if (h[16] == kPing) {
      (void)s.send(stream, std::move(message));
      return;
    }
    const std::uint64_t seq = get_u64(h + 8);
    if (seq >= seen_.size()) return;
    if (seen_[seq]++ == 0) {
      samples_.push_back(now - static_cast<std::int64_t>(get_u64(h)));
    } else {
      ++duplicates_;
    }
    if (samples_.size() == seen_.size() && all_) all_->set_value();
  }
  void on_closed(Session&, const Status&) override {}

  std::future<void> all_arrived() {
    all_.emplace();
    return all_->get_future();
  }

  std::vector<std::int64_t> samples_;  // read after the loops stopped
  std::vector<std::uint8_t> seen_;
  std::uint64_t duplicates_ = 0;

 private:
  std::optional<std::promise<void>> all_;
};

struct Plan {
  std::uint64_t messages = 10000;
  std::size_t size = 128;
  std::chrono::microseconds interval{1000};
  std::uint64_t pings = 300;
  std::chrono::seconds drain{30};
};

// Sender: `pings` ping-pongs first (the RTT; only when asked), then the steady one-way stream.
class Sender final : public session::SessionHandler, public session::StreamHandler {
 public:
  Sender(io::EventLoop& loop, const Plan& plan, bool rtt_only)
      : plan_(plan), rtt_only_(rtt_only), timer_(loop.context()), payload_(plan.size, 0) {}

  std::future<Status> finished() { return done_.get_future(); }

  void on_ready(Session& s) override {
    auto id = s.open_stream(Priority::kInteractive, this);
    if (!id.is_ok()) return finish(id.status());
    session_ = &s;
    stream_ = *id;
    if (rtt_only_) return ping();
    start_ = mono_now_ns();
    tick();
  }
  StreamHandler* on_stream_open(Session&, std::uint64_t, Priority) override { return this; }
  void on_message(Session&, std::uint64_t, Chain) override {
    rtts_.push_back(mono_now_ns() - ping_sent_);
    if (rtts_.size() >= plan_.pings) return finish(Status());
    ping();
  }
  void on_closed(Session&, const Status& reason) override {
    finish(reason.is_ok() ? disconnected("session closed early") : reason);
  }

  std::vector<std::int64_t> rtts_;

 private:
  void finish(Status st) {
    if (finished_) return;
    finished_ = true;
    timer_.cancel();
    done_.set_value(std::move(st));
  }
  Chain message(std::int64_t intended, std::uint64_t seq, std::uint8_t kind) {
    std::memcpy(payload_.data(), &intended, 8);
    std::memcpy(payload_.data() + 8, &seq, 8);
    payload_[16] = kind;
    return Chain(Slice::copy_of(ByteView(payload_.data(), payload_.size())));
  }
  void ping() {
    ping_sent_ = mono_now_ns();
    if (Status st = session_->send(stream_, message(ping_sent_, rtts_.size(), kPing)); !st.is_ok()) finish(st);
  }
  void tick() {
    if (finished_) return;
    const std::int64_t now = mono_now_ns();
    const std::int64_t step = std::chrono::duration_cast<std::chrono::nanoseconds>(plan_.interval).count();
    // Every message whose time has come leaves now, stamped with its intended time.
    while (next_ < plan_.messages && start_ + static_cast<std::int64_t>(next_) * step <= now) {
      const std::int64_t intended = start_ + static_cast<std::int64_t>(next_) * step;
      if (Status st = session_->send(stream_, message(intended, next_, kOneWay)); !st.is_ok()) return finish(st);
      ++next_;
    }
    if (next_ >= plan_.messages) return finish(Status());
    const std::int64_t due = start_ + static_cast<std::int64_t>(next_) * step;
    timer_.expires_after(std::chrono::nanoseconds(std::max<std::int64_t>(0, due - mono_now_ns())));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) tick();
    });
  }

  Plan plan_;
  bool rtt_only_;
  boost::asio::steady_timer timer_;
  std::vector<std::uint8_t> payload_;
  Session* session_ = nullptr;
  std::uint64_t stream_ = 0;
  std::int64_t start_ = 0;
  std::uint64_t next_ = 0;
  std::int64_t ping_sent_ = 0;
  bool finished_ = false;
  std::promise<Status> done_;
};

enum class Kind { kUdpFec, kUdp, kTcp };
const char* name(Kind k) { return k == Kind::kUdpFec ? "udp+fec" : k == Kind::kUdp ? "udp" : "tcp"; }

struct Options {
  double loss = 10;
  int delay_ms = 5;
  std::string fec = "adaptive";
  unsigned fec_max_repair = 100;
  unsigned fec_flush_us = 2000;
  std::string impair_bin = "build/release/tools/slip-impair/slip-impair";
  std::string impair_tcp = "scripts/impair-tcp.sh";
  std::string nfq_bin = "build/release/tools/slip-impair/slip-nfq-impair";
  std::uint64_t seed = 1;
  Plan plan;
};

struct CaseResult {
  Status status;
  Percentiles lat;
  Percentiles rtt;
  std::uint64_t delivered = 0, duplicates = 0;
  udp::FecFilterStats fec;  // the receiver's endpoint
  std::string note;
};

// One run: the server, the proxy (UDP) or the nftables rule (TCP), one client session.
CaseResult run_case(const Options& opt, Kind kind, bool rtt_only) {
  CaseResult r;
  const bool is_udp = kind != Kind::kTcp;
  Result<std::uint16_t> port = free_port(is_udp ? SOCK_DGRAM : SOCK_STREAM);
  if (!port.is_ok()) {
    r.status = port.status();
    return r;
  }
  const double loss = rtt_only ? 0 : opt.loss;
  std::optional<ChildProcess> proxy;
  std::uint16_t dial_port = *port;
  bool nft_added = false;
  if (is_udp) {
    Result<std::uint16_t> pp = free_port(SOCK_DGRAM);
    if (!pp.is_ok()) {
      r.status = pp.status();
      return r;
    }
    dial_port = *pp;
    char lossbuf[32];
    std::snprintf(lossbuf, sizeof lossbuf, "%g", loss);
    proxy.emplace(ChildProcess::exec({opt.impair_bin, "--listen", "127.0.0.1:" + std::to_string(dial_port), "--target",
                                      "127.0.0.1:" + std::to_string(*port), "--loss", lossbuf, "--delay",
                                      std::to_string(opt.delay_ms) + "ms", "--seed", std::to_string(opt.seed)},
                                     true, std::chrono::seconds(600)));
    std::optional<std::string> line = proxy->read_line(std::chrono::milliseconds(5000));
    if (!line || line->find("listening on") == std::string::npos) {
      r.status = internal_error("slip-impair did not start (" + opt.impair_bin + "): " + line.value_or("no output"));
      return r;
    }
  } else {
    // The queue program first: the kernel drops what a rule queues to a queue nobody serves.
    const unsigned queue = 20000 + static_cast<unsigned>(::getpid()) % 40000;
    char lossbuf[32];
    std::snprintf(lossbuf, sizeof lossbuf, "%g", loss);
    proxy.emplace(ChildProcess::exec({opt.nfq_bin, "--queue", std::to_string(queue), "--loss", lossbuf, "--delay",
                                      std::to_string(opt.delay_ms) + "ms", "--seed", std::to_string(opt.seed)},
                                     true, std::chrono::seconds(600)));
    std::optional<std::string> line = proxy->read_line(std::chrono::milliseconds(5000));
    if (!line || line->find("ready") == std::string::npos) {
      r.status = failed_precondition("slip-nfq-impair did not start (" + opt.nfq_bin + ", needs CAP_NET_ADMIN): " +
                                     line.value_or("no output"));
      return r;
    }
    const std::string cmd =
        opt.impair_tcp + " queue " + std::to_string(*port) + " " + std::to_string(queue) + " >/dev/null 2>&1";
    nft_added = true;
    if (std::system(cmd.c_str()) != 0) {
      r.status = failed_precondition("the netfilter queue rule could not be set up (" + opt.impair_tcp +
                                     " queue: needs nft or iptables, and CAP_NET_ADMIN)");
      // Whatever part of it was set up goes, then the queue program.
      const std::string rm = opt.impair_tcp + " remove >/dev/null 2>&1";
      (void)std::system(rm.c_str());
      proxy->stop();
      return r;
    }
  }

  const std::uint64_t expect = rtt_only ? 1 : opt.plan.messages;
  Server server(expect);
  io::LoopGroup sloops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  io::LoopGroup cloops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  sloops.start();
  cloops.start();
  std::vector<std::shared_ptr<Session>> sessions;
  std::uint64_t ids = 0;
  wire::ServerHandshakeConfig hs;
  auto accept = [&](transport::ConnectionPtr c) {
    auto s = Session::server(std::move(c), hs, ++ids, session::SessionOptions{}, &server);
    sessions.push_back(s);
    s->start();
  };
  udp::UdpOptions uo;
  uo.static_key = udp::KeyPair::generate();
  uo.fec.flush_delay = std::chrono::microseconds(opt.fec_flush_us);
  uo.fec.max_repair_ratio = opt.fec_max_repair / 100.0;
  if (kind == Kind::kUdpFec) {
    if (Status st = udp::parse_fec_mode(opt.fec, uo.fec); !st.is_ok()) {
      r.status = st;
      return r;
    }
  } else {
    uo.fec.enabled = false;
  }
  std::unique_ptr<udp::UdpListener> ul;
  std::unique_ptr<transport::Listener> tl;
  const transport::HostPort listen{"127.0.0.1", *port};
  if (is_udp) {
    auto l = udp::udp_listen(sloops, listen, uo, accept);
    if (!l.is_ok()) r.status = l.status();
    else ul = std::move(l).value();
  } else {
    auto l = transport::tcp_listen(sloops, listen, transport::TcpOptions{}, accept);
    if (!l.is_ok()) r.status = l.status();
    else tl = std::move(l).value();
  }

  if (r.status.is_ok()) {
    Sender sender(cloops.loop(0), opt.plan, rtt_only);
    session::ClientOptions co;
    const transport::HostPort target{"127.0.0.1", dial_port};
    if (is_udp) {
      udp::UdpOptions cu = uo;
      cu.server_key = uo.static_key.public_key;
      co.dial = session::udp_dialer(target, cu);
    } else {
      co.dial = session::tcp_dialer(target);
    }
    co.reconnect.enabled = false;
    auto fin = sender.finished();
    auto arrived = server.all_arrived();
    std::unique_ptr<session::Client> client;
    run_on(cloops.loop(0), [&] {
      client = std::make_unique<session::Client>(cloops.loop(0), co, &sender);
      client->start();
    });
    r.status = fin.get();
    if (r.status.is_ok() && !rtt_only && arrived.wait_for(opt.plan.drain) != std::future_status::ready) {
      r.note = "not every message arrived within the drain time";
    }
    run_on(cloops.loop(0), [&] { client.reset(); });
    if (ul) r.fec = ul->stats().fec;
    if (ul) ul->stop();
    if (tl) tl->stop();
    cloops.stop();
    sloops.stop();
    sessions.clear();
    if (rtt_only) {
      r.rtt = percentiles_us(sender.rtts_);
    } else {
      r.delivered = server.samples_.size();
      r.duplicates = server.duplicates_;
      r.lat = percentiles_us(server.samples_);
    }
  } else {
    cloops.stop();
    sloops.stop();
  }
  // The rule goes before the queue program does (which then lets through what it still holds).
  if (nft_added) {
    const std::string cmd = opt.impair_tcp + " remove >/dev/null 2>&1";
    (void)std::system(cmd.c_str());
  }
  if (proxy) proxy->stop();
  return r;
}

double load_average() {
  double l = NAN;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = NAN;
    std::fclose(f);
  }
  return l;
}

int run(const Options& opt) {
  std::printf("== Delivery latency at %.0f%% random loss (both directions), %zu-byte messages every %lld us, "
              "%" PRIu64 " messages; every path with %d ms one-way delay (udp: slip-impair, tcp: slip-nfq-impair); FEC %s (max %u "
              "repairs per 100, flush %u us); load average %.2f\n",
              opt.loss, opt.plan.size, static_cast<long long>(opt.plan.interval.count()), opt.plan.messages,
              opt.delay_ms, opt.fec.c_str(), opt.fec_max_repair, opt.fec_flush_us, load_average());
  std::fflush(stdout);
  const Kind kinds[] = {Kind::kUdpFec, Kind::kUdp, Kind::kTcp};
  CaseResult rtt[3], lat[3];
  for (int i = 0; i < 3; ++i) rtt[i] = run_case(opt, kinds[i], true);
  for (int i = 0; i < 3; ++i) lat[i] = run_case(opt, kinds[i], false);

  std::printf("\n| path | RTT p50 (no loss) | latency p50 | p99 | p99.9 | max | delivered | p99 vs udp+fec |\n");
  std::printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int i = 0; i < 3; ++i) {
    const CaseResult& c = lat[i];
    if (!c.status.is_ok() || !rtt[i].status.is_ok()) {
      std::printf("| %s | n/a | n/a (%s) | | | | | |\n", name(kinds[i]),
                  (!c.status.is_ok() ? c.status : rtt[i].status).to_string().c_str());
      continue;
    }
    std::printf("| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %" PRIu64 "/%" PRIu64 "%s | x%.2f |\n",
                name(kinds[i]), rtt[i].rtt.p50 / 1000, c.lat.p50 / 1000, c.lat.p99 / 1000, c.lat.p999 / 1000,
                c.lat.max / 1000, c.delivered, opt.plan.messages, c.duplicates ? " (duplicates!)" : "",
                lat[0].status.is_ok() && lat[0].lat.p99 > 0 ? c.lat.p99 / lat[0].lat.p99 : NAN);
  }
  if (lat[0].status.is_ok()) {
    const udp::FecFilterStats& f = lat[0].fec;
    std::printf("\nFEC at the receiving server: %" PRIu64 " repairs received, %" PRIu64
                " packets rebuilt, %" PRIu64 " blocks unrecoverable, %" PRIu64 " malformed, %" PRIu64
                " loss reports sent\n",
                f.repair_received, f.recovered, f.unrecoverable_blocks, f.malformed, f.feedback_sent);
  }
  int rc = 0;
  for (int i = 0; i < 3; ++i) {
    if (!lat[i].note.empty()) std::printf("%s: %s\n", name(kinds[i]), lat[i].note.c_str());
    if (kinds[i] != Kind::kTcp && (!lat[i].status.is_ok() || !rtt[i].status.is_ok())) rc = 1;
  }
  if (lat[0].status.is_ok() && rtt[0].status.is_ok()) {
    const double goal_ms = 1.5 * rtt[0].rtt.p50 / 1000 + 5;
    const double p99 = lat[0].lat.p99 / 1000;
    std::printf("goal 1: udp+fec p99 %.2f ms <= 1.5 x RTT + 5 ms = %.2f ms: %s\n", p99, goal_ms,
                p99 <= goal_ms ? "met" : "MISSED");
    if (lat[2].status.is_ok()) {
      std::printf("goal 2: udp+fec p99 well below tcp's (at most half): %.2f ms vs %.2f ms (x%.2f): %s\n", p99,
                  lat[2].lat.p99 / 1000, lat[0].lat.p99 / lat[2].lat.p99,
                  lat[0].lat.p99 * 2 <= lat[2].lat.p99 ? "met" : "MISSED");
    } else {
      std::printf("goal 2: not checked (tcp: %s)\n", lat[2].status.to_string().c_str());
    }
  }
  return rc;
}

}  // namespace
}  // namespace slip::bench

int main(int argc, char** argv) {
  using namespace slip::bench;
  CLI::App app{"Delivery latency over a lossy path: udp with FEC, udp without, tcp (docs/benchmarks.md)"};
  Options o;
  std::uint64_t interval_us = 1000;
  unsigned drain_s = 30;
  app.add_option("--loss", o.loss, "Percent of packets lost, each direction")->capture_default_str()->check(CLI::Range(0.0, 90.0));
  app.add_option("--delay-ms", o.delay_ms, "One-way delay added on every path")->capture_default_str()->check(CLI::Range(0, 1000));
  app.add_option("--messages", o.plan.messages, "Messages per path")->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--size", o.plan.size, "Message size, bytes (at least 17)")->capture_default_str()->check(CLI::Range(17, 60000));
  app.add_option("--interval-us", interval_us, "One message every this many microseconds")->capture_default_str()->check(CLI::Range(10, 1000000));
  app.add_option("--pings", o.plan.pings, "Ping-pongs for each path's RTT")->capture_default_str()->check(CLI::Range(1, 1000000));
  app.add_option("--fec", o.fec, "FEC of the udp+fec path: adaptive or K,M")->capture_default_str();
  app.add_option("--fec-max-repair", o.fec_max_repair, "Adaptive FEC: repairs per 100 packets at most")->capture_default_str()->check(CLI::Range(1u, 1600u));
  app.add_option("--fec-flush-us", o.fec_flush_us, "FEC: a block not full after this long is closed")->capture_default_str()->check(CLI::Range(10u, 1000000u));
  app.add_option("--impair", o.impair_bin, "The slip-impair binary")->capture_default_str();
  app.add_option("--impair-tcp", o.impair_tcp, "scripts/impair-tcp.sh (the tcp path's netfilter queue rule)")->capture_default_str();
  app.add_option("--nfq-impair", o.nfq_bin, "The slip-nfq-impair binary (loss and delay for the tcp path)")->capture_default_str();
  app.add_option("--seed", o.seed, "slip-impair's and slip-nfq-impair's seed")->capture_default_str();
  app.add_option("--drain-s", drain_s, "After the last send, wait this long for every message")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.fec == "off") {
    std::fprintf(stderr, "udp_fec_latency_bench: --fec must be adaptive or K,M (the udp row is FEC off)\n");
    return 2;
  }
  o.plan.interval = std::chrono::microseconds(interval_us);
  o.plan.drain = std::chrono::seconds(drain_s);
  (void)slip::init_logging("warn");
  return run(o);
}
