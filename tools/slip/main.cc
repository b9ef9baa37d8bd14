// slip: the Slipstream command-line client.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/logging.h"
#include "io/event_loop.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/tls/tls.h"

namespace {

struct Common {
  std::string server = "127.0.0.1:7420";
  slip::transport::TlsOptions tls;
  bool use_tls = false;
  std::string name = "slip";
  unsigned timeout_ms = 5000;
};

// `slip ping`: handshakes, sends PINGs one at a time and prints each round trip.
class Pinger final : public slip::session::SessionHandler {
 public:
  Pinger(slip::io::EventLoop& loop, unsigned count) : loop_(loop), count_(count) {}

  void on_ready(slip::session::Session& s) override {
    const auto& n = s.negotiated();
    std::printf("connected to %s (%s), protocol v%u, connection %llu\n", s.connection().peer_address().c_str(),
                n.peer_name.c_str(), n.version, static_cast<unsigned long long>(n.connection_id));
    s.ping();
  }

  void on_pong(slip::session::Session& s, std::int64_t rtt_ns) override {
    rtts_.push_back(rtt_ns);
    std::printf("pong %zu: %.1f us\n", rtts_.size(), static_cast<double>(rtt_ns) / 1000.0);
    if (rtts_.size() < count_) {
      s.ping();
    } else {
      s.go_away(slip::Status());
    }
  }

  void on_closed(slip::session::Session&, const slip::Status& reason) override {
    if (rtts_.size() < count_) error_ = reason.is_ok() ? slip::disconnected("closed before all pongs arrived") : reason;
    loop_.stop();
  }

  void fail(slip::Status s) {
    error_ = std::move(s);
    loop_.stop();
  }

  int finish() const {
    if (!error_.is_ok()) {
      std::fprintf(stderr, "slip ping: %s\n", error_.to_string().c_str());
      return 1;
    }
    std::vector<std::int64_t> v = rtts_;
    std::sort(v.begin(), v.end());
    auto pct = [&](double p) { return static_cast<double>(v[static_cast<std::size_t>(p * (v.size() - 1))]) / 1000.0; };
    std::printf("%zu pongs: min %.1f us, p50 %.1f us, p99 %.1f us, max %.1f us\n", v.size(), pct(0), pct(0.5),
                pct(0.99), pct(1));
    return 0;
  }

 private:
  slip::io::EventLoop& loop_;
  unsigned count_;
  std::vector<std::int64_t> rtts_;
  slip::Status error_;
};

int run_ping(const Common& c, unsigned count) {
  auto hp = slip::transport::parse_host_port(c.server);
  if (!hp.is_ok()) {
    std::fprintf(stderr, "slip ping: %s\n", hp.status().to_string().c_str());
    return 2;
  }
  slip::io::EventLoop loop;
  Pinger pinger(loop, count);
  slip::wire::ClientHandshakeConfig hs;
  hs.client_name = c.name;
  slip::session::SessionOptions so;
  so.handshake_timeout = std::chrono::milliseconds(c.timeout_ms);
  std::shared_ptr<slip::session::Session> session;
  auto on_connect = [&](slip::Result<slip::transport::ConnectionPtr> conn) {
    if (!conn.is_ok()) {
      pinger.fail(conn.status());
      return;
    }
    session = slip::session::Session::client(*conn, hs, so, &pinger);
    session->start();
  };
  if (c.use_tls) {
    slip::transport::TlsOptions tls = c.tls;
    if (tls.server_name.empty()) tls.server_name = hp->host;
    slip::transport::tls_connect(loop, *hp, {}, tls, on_connect);
  } else {
    slip::transport::tcp_connect(loop, *hp, {}, on_connect);
  }
  loop.run();
  return pinger.finish();
}

}  // namespace

int main(int argc, char** argv) {
  Common common;
  CLI::App app{"slip - the Slipstream command-line client", "slip"};
  app.set_version_flag("-V,--version", std::string("slip ") + SLIP_VERSION + " (native protocol v1)");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("-s,--server", common.server, "Server address, HOST:PORT")->capture_default_str();
  app.add_option("--name", common.name, "Client name shown by the server")->capture_default_str();
  app.add_option("--timeout-ms", common.timeout_ms, "Give up on the handshake after this long")->capture_default_str();

  app.add_flag("--tls", common.use_tls, "Connect with TLS 1.3 (implied by the other --tls options)");
  app.add_option("--tls-ca", common.tls.ca_file, "PEM CA bundle that signed the server's certificate")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", common.tls.cert_file, "PEM client certificate, for servers that require one")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", common.tls.key_file, "PEM private key for --tls-cert")->check(CLI::ExistingFile);
  app.add_option("--tls-server-name", common.tls.server_name,
                 "Name to verify in the server's certificate (default: the --server host)");

  unsigned count = 5;
  auto* ping = app.add_subcommand("ping", "Connect, handshake and measure PING round trips");
  ping->add_option("-c,--count", count, "How many PINGs to send")->capture_default_str()->check(CLI::Range(1u, 1000000u));

  CLI11_PARSE(app, argc, argv);
  (void)slip::init_logging("warn");
  if (!common.tls.ca_file.empty() || !common.tls.cert_file.empty()) common.use_tls = true;
  if (*ping) return run_ping(common, count);
  return 0;
}
