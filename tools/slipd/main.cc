// slipd: the Slipstream broker daemon.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "core/logging.h"
#include "observability.h"
#include "server.h"

namespace {

// Blocks the shutdown signals in every thread (the loops inherit the mask), so that only
// sigwait() in main() sees them.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  slip::slipd::ServerOptions opts;
  std::string idle = "spin";
  unsigned spin_us = 50;
  std::string log_level = "info";
  std::string ready_file;
  unsigned drain_ms = 5000;
  std::string http_listen;
  std::string metrics = "on";

  CLI::App app{"slipd - the Slipstream broker.\n\nStarts with embedded defaults: the native protocol on 127.0.0.1:7420,\n"
               "one event loop per core. Stop it with Ctrl-C or SIGTERM: it tells clients to go away,\n"
               "lets in-flight work finish, then exits.",
               "slipd"};
  app.set_version_flag("-V,--version", std::string("slipd ") + SLIP_VERSION + " (native protocol v1)");
  app.add_option("-l,--listen", opts.listen, "Native protocol address, HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("-t,--threads", opts.threads, "Event loops (threads); 0 means one per core")->capture_default_str();
  app.add_option("--idle", idle, "What a loop does when idle: block, spin (poll --spin-us, then block) or busy")
      ->capture_default_str()
      ->check(CLI::IsMember({"block", "spin", "busy"}));
  app.add_option("--spin-us", spin_us, "Microseconds to poll before blocking, with --idle spin")->capture_default_str();
  app.add_option("--max-frame-size", opts.handshake.max_frame_size, "Largest frame body accepted, bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024u, (1u << 28) - 1));
  app.add_option("--name", opts.handshake.server_name, "Server name sent to clients")->capture_default_str();
  app.add_option("--heartbeat-ms", opts.handshake.heartbeat_ms,
                 "PING a quiet client after this long; close it after 3 intervals of silence (0: never)")
      ->capture_default_str();
  app.add_option("--stream-credit", opts.handshake.initial_credit, "Flow-control window granted per stream, bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024u, 1u << 30));
  app.add_option("--connection-credit", opts.handshake.connection_credit,
                 "Flow-control window granted per connection, bytes")
      ->capture_default_str()
      ->check(CLI::Range(1024u, 1u << 30));
  app.add_option("--chunk-size", opts.session.chunk_size, "Largest DATA chunk sent, bytes (big messages are cut)")
      ->capture_default_str()
      ->check(CLI::Range(256, 1 << 24));
  app.add_option("--max-streams", opts.session.max_streams, "Streams open at once per connection")
      ->capture_default_str();
  app.add_option("--max-message-size", opts.session.max_message_size, "Largest message accepted, bytes")
      ->capture_default_str();
  auto* cert = app.add_option("--tls-cert", opts.tls.cert_file,
                               "PEM certificate (chain): the native port then speaks TLS 1.3 only")
                   ->check(CLI::ExistingFile);
  app.add_option("--tls-key", opts.tls.key_file, "PEM private key for --tls-cert")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  cert->needs(app.get_option("--tls-key"));
  app.add_option("--tls-ca", opts.tls.ca_file, "PEM CA bundle to verify client certificates")
      ->check(CLI::ExistingFile)
      ->needs(cert);
  app.add_flag("--tls-require-client-cert", opts.tls.require_client_cert,
               "Refuse clients without a certificate signed by --tls-ca")
      ->needs(cert);
  app.add_option("--so-sndbuf", opts.tcp.send_buffer, "SO_SNDBUF for client sockets, bytes (0: kernel default)")
      ->capture_default_str();
  app.add_option("--so-rcvbuf", opts.tcp.receive_buffer, "SO_RCVBUF for client sockets, bytes (0: kernel default)")
      ->capture_default_str();
  app.add_option("--max-pending-bytes", opts.broker.max_pending_bytes,
                 "Bytes waiting for one client before it is cut off as a slow consumer")
      ->capture_default_str();
  app.add_option("--max-payload", opts.broker.max_payload, "Largest message a client may publish, bytes")
      ->capture_default_str();
  app.add_option("--max-subscriptions", opts.broker.max_subscriptions, "Subscriptions per client")
      ->capture_default_str();
  app.add_option("--drain-ms", drain_ms, "On shutdown, how long to wait for clients to finish")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));
  app.add_option("--ready-file", ready_file,
                 "Once listening, write 'PROTOCOL ADDRESS' lines here (for scripts that use port 0)");
  app.add_option("--http-listen", http_listen,
                 "HTTP address for /metrics, /healthz, the JSON API and the dashboard, HOST:PORT (off by default; "
                 "8222 is the customary port)");
  app.add_option("--metrics", metrics, "Sampled publish-routing latency histogram (counters are always kept)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  CLI11_PARSE(app, argc, argv);
  opts.broker.metrics = metrics == "on";

  if (auto s = slip::init_logging(log_level); !s.is_ok()) {
    std::fprintf(stderr, "slipd: %s\n", s.to_string().c_str());
    return 2;
  }
  opts.loop.idle = slip::io::parse_idle_strategy(idle).value();
  opts.loop.spin = std::chrono::microseconds(spin_us);
  opts.drain_timeout = std::chrono::milliseconds(drain_ms);
  opts.session.drain_timeout = opts.drain_timeout;
  opts.session.limits.max_frame_size = opts.handshake.max_frame_size;

  sigset_t signals = block_shutdown_signals();
  slip::slipd::Server server(opts);
  if (auto s = server.start(); !s.is_ok()) {
    SLIP_LOG_ERROR("cannot start: {}", s.to_string());
    return 1;
  }
  SLIP_LOG_INFO("slipd {} started: {} loops, idle={}{}", SLIP_VERSION, opts.threads ? opts.threads : std::thread::hardware_concurrency(),
                idle, idle == "spin" ? " " + std::to_string(spin_us) + "us" : "");
  for (const auto& [proto, addr] : server.listening()) SLIP_LOG_INFO("listening for {} protocol on {}", proto, addr);
  slip::slipd::Observability observability(server);
  if (!http_listen.empty()) {
    if (auto s = observability.start_http(http_listen); !s.is_ok()) {
      SLIP_LOG_ERROR("cannot start: {}", s.to_string());
      server.shutdown();
      return 1;
    }
    SLIP_LOG_INFO("serving HTTP (metrics, dashboard) on {}", observability.http_address());
  }
  if (!ready_file.empty()) {
    std::ofstream f(ready_file + ".tmp");
    for (const auto& [proto, addr] : server.listening()) f << proto << ' ' << addr << '\n';
    if (!http_listen.empty()) f << "http " << observability.http_address() << '\n';
    f.close();
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }

  int sig = 0;
  sigwait(&signals, &sig);
  SLIP_LOG_INFO("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.shutdown();  // /healthz answers 503 while this drains
  observability.stop();
  SLIP_LOG_INFO("stopped");
  return 0;
}
