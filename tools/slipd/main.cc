// slipd: the Slipstream broker daemon.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "config.h"
#include "core/logging.h"
#include "obs/spans.h"
#include "obs/traceparent.h"
#include "observability.h"
#include "server.h"
#include "transport/udp/fec_filter.h"
#include "transport/udp/keys.h"

namespace {

// Blocks the signals main() handles in every thread (the loops inherit the mask), so that only
// sigwait() in main() sees them.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Applies the file's settings to the options the command line did not set, through the same
// parsing and checks as the flags. Errors name the file, line and key.
slip::Status apply_config(CLI::App& app, const slip::slipd::ConfigFile& file, const std::string& path) {
  for (const slip::slipd::ConfigSetting& c : file.settings) {
    std::string flag = "--" + c.key;
    for (char& ch : flag) {
      if (ch == '_') ch = '-';
    }
    CLI::Option* opt = app.get_option_no_throw(flag);
    if (opt == nullptr) return slip::internal_error("config key " + c.key + " has no flag " + flag);
    if (opt->count() > 0) continue;  // the command line wins
    try {
      opt->add_result(c.value);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return slip::invalid_argument(path + ":" + std::to_string(c.line) + ": '" + c.key + "': " + e.what());
    }
  }
  return slip::Status();
}

// Creates the data directory if needed and takes its lock file, so that two slipd processes
// never share one. The returned descriptor holds the lock until the process exits.
slip::Result<int> open_data_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return slip::failed_precondition("cannot create data directory " + dir + ": " + ec.message());
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    return slip::failed_precondition("data directory " + dir + " is not writable: " + std::strerror(errno));
  }
  const std::string lock = dir + "/slipd.pid";
  int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return slip::failed_precondition("cannot create " + lock + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return slip::failed_precondition("data directory " + dir + " is in use by another slipd (" + lock + " is locked)");
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    close(fd);
    return slip::failed_precondition("cannot write " + lock + ": " + std::strerror(errno));
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  slip::slipd::ServerOptions opts;
  std::string idle = "spin";
  unsigned spin_us = 50;
  std::string log_level = "info";
  std::string ready_file;
  unsigned drain_ms = 5000;
  std::string config_path;
  std::string data_dir;
  bool hash_password = false;
  std::string http_listen;
  std::string metrics = "on";

  CLI::App app{"slipd - the Slipstream broker.\n\nStarts with embedded defaults: the native protocol on 127.0.0.1:7420,\n"
               "one event loop per core. Stop it with Ctrl-C or SIGTERM: it tells clients to go away,\n"
               "lets in-flight work finish, then exits. SIGHUP reloads users and permissions from --config.\n"
               "Every flag has a config file key: --max-frame-size is max_frame_size.",
               "slipd"};
  app.set_version_flag("-V,--version", std::string("slipd ") + SLIP_VERSION + " (native protocol v1)");
  app.add_option("-c,--config", config_path,
                 "TOML config file: flags as keys (max_frame_size = ...) and [[users]]; flags given here win")
      ->check(CLI::ExistingFile);
  app.add_flag("--hash-password", hash_password,
               "Read a password from stdin, print its hash for a [[users]] password_hash, and exit");
  app.add_option("-l,--listen", opts.listen, "Native protocol address, HOST:PORT (port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("-t,--threads", opts.threads, "Event loops (threads); 0 means one per core")->capture_default_str();
  app.add_option("--idle", idle, "What a loop does when idle: block, spin (poll --spin-us, then block) or busy")
      ->capture_default_str()
      ->check(CLI::IsMember({"block", "spin", "busy"}));
  app.add_option("--spin-us", spin_us, "Microseconds to poll before blocking, with --idle spin")->capture_default_str();
  app.add_flag("!--fixed-spin", opts.loop.spin_adaptive,
               "With --idle spin, always spin the whole --spin-us (by default a spin that finds no work halves "
               "the next one, and one that finds work restores it)");
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
  app.add_option("--bulk-high-water", opts.session.bulk_high_water,
                 "While interactive calls are active, stream and bulk data stop at this many bytes queued to the "
                 "socket (so a call waits behind at most this much)")
      ->capture_default_str();
  app.add_option("--send-high-water", opts.session.send_high_water, "Bytes queued to the socket before a session stops feeding it")
      ->capture_default_str();
  std::int64_t hold_us = opts.session.interactive_hold.count();
  app.add_option("--interactive-hold-us", hold_us,
                 "How long after the last interactive message --bulk-high-water applies, microseconds")
      ->capture_default_str();
  unsigned handshake_timeout_ms = static_cast<unsigned>(opts.session.handshake_timeout.count());
  app.add_option("--handshake-timeout-ms", handshake_timeout_ms,
                 "A native client must complete its handshake (credentials checked included) within this long")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u * 1000u));
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
  app.add_option("--notsent-lowat", opts.tcp.notsent_lowat,
                 "TCP_NOTSENT_LOWAT for client sockets, bytes: unsent data the kernel holds before it refuses more "
                 "(0: kernel default)")
      ->capture_default_str();
  app.add_option("--max-pending-bytes", opts.broker.max_pending_bytes,
                 "Bytes waiting for one client before it is cut off as a slow consumer")
      ->capture_default_str();
  app.add_option("--backlog-msgs", opts.broker.backlog_msgs,
                 "Messages a drop-oldest subscription keeps while its client is behind, unless its SUB says")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 30));
  app.add_option("--backlog-bytes", opts.broker.backlog_bytes,
                 "Bytes a drop-oldest subscription keeps while its client is behind, unless its SUB says "
                 "(never more than --max-pending-bytes)")
      ->capture_default_str();
  app.add_option("--max-payload", opts.broker.max_payload, "Largest message a client may publish, bytes")
      ->capture_default_str();
  app.add_option("--max-subscriptions", opts.broker.max_subscriptions, "Subscriptions per client")
      ->capture_default_str();
  std::uint64_t response_ttl_ms = static_cast<std::uint64_t>(opts.broker.response_ttl.count());
  app.add_option("--response-ttl-ms", response_ttl_ms,
                 "How long a user may answer a request it received although its publish permissions deny the "
                 "reply subject (allow_responses), milliseconds (0: until answered)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{365} * 24 * 3600 * 1000));
  app.add_option("--nats-listen", opts.nats_listen,
                 "Also serve the NATS client protocol on HOST:PORT (NATS clients' default port is 4222); off when empty");
  std::string nats_token, nats_user, nats_pass;
  unsigned nats_ping_ms = 120000;
  app.add_option("--nats-token", nats_token, "NATS clients must send this auth_token in CONNECT");
  auto* nats_user_opt = app.add_option("--nats-user", nats_user, "NATS clients must send this user (and --nats-pass)");
  app.add_option("--nats-pass", nats_pass, "Password for --nats-user")->needs(nats_user_opt);
  app.add_option("--nats-ping-ms", nats_ping_ms,
                 "PING NATS clients this often; cut one off after 2 unanswered (0: never)")
      ->capture_default_str();
  app.add_option("--nats-max-control-line", opts.nats.max_control_line, "Longest NATS control line, bytes")
      ->capture_default_str()
      ->check(CLI::Range(256, 1 << 20));
  std::string udp_key_file;
  std::string udp_retry = "under-load";
  app.add_option("--udp-listen", opts.udp_listen,
                 "Also serve the native protocol over encrypted reliable UDP on HOST:PORT (a numeric address; "
                 "clients connect with udp://HOST:PORT and pin the server key); off when empty");
  app.add_option("--udp-key", udp_key_file,
                 "UDP server key file (`slip udp-key generate FILE`); default: udp.key in --data-dir, created "
                 "there on first start");
  app.add_option("--udp-retry", udp_retry,
                 "When UDP handshakes must prove their address with a retry cookie first: under-load (more than "
                 "--udp-retry-threshold handshakes unconfirmed), always or never")
      ->capture_default_str()
      ->check(CLI::IsMember({"under-load", "always", "never"}));
  app.add_option("--udp-retry-threshold", opts.udp.cookie_load_threshold,
                 "Unconfirmed UDP handshakes at which --udp-retry under-load starts demanding cookies")
      ->capture_default_str();
  std::string udp_fec = "adaptive";
  unsigned udp_fec_max_repair = 100;
  app.add_option("--udp-fec", udp_fec,
                 "Forward error correction offered to UDP clients (used when the client offers it too): off, "
                 "adaptive (repairs follow the measured loss) or K,M (always M repair packets per K)")
      ->capture_default_str();
  app.add_option("--udp-fec-max-repair", udp_fec_max_repair,
                 "Adaptive UDP FEC sends at most this many repair packets per 100 packets")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1600u));
  unsigned udp_fec_loss_reduction = 85;
  app.add_option("--udp-fec-loss-reduction", udp_fec_loss_reduction,
                 "On a UDP connection with FEC, a congestion event leaves the congestion window at this percentage "
                 "of what it was (without FEC: 50, NewReno's halving)")
      ->capture_default_str()
      ->check(CLI::Range(50u, 99u));
  std::string udp_offload = "on";
  app.add_option("--udp-offload", udp_offload,
                 "UDP segmentation and receive offload (UDP_SEGMENT, UDP_GRO) where the kernel has them: on or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  std::string udp_mtu_probe = "on";
  std::size_t udp_max_datagram = 0;
  unsigned udp_mtu_reprobe_s = 600;
  app.add_option("--udp-mtu-probe", udp_mtu_probe,
                 "Path MTU discovery on UDP connections: on (start at 1200-byte datagrams, probe for larger ones up "
                 "to --udp-max-datagram, fall back when they stop getting through) or off (1200 bytes always)")
      ->capture_default_str()
      ->check(CLI::IsMember({"on", "off"}));
  app.add_option("--udp-max-datagram", udp_max_datagram,
                 "Largest UDP datagram (payload bytes) MTU probing tries: 1200 to 65527, or 0 for what the MTU "
                 "of the route to the peer allows, at most a 9000-byte MTU's (1472 over IPv4 Ethernet, 1452 "
                 "over IPv6 Ethernet, 8972 over loopback)")
      ->capture_default_str()
      ->check([](const std::string& v) -> std::string {
        const unsigned long n = std::strtoul(v.c_str(), nullptr, 10);
        return n == 0 || (n >= 1200 && n <= 65527) ? "" : "must be 0 or 1200 to 65527";
      });
  app.add_option("--udp-mtu-reprobe-s", udp_mtu_reprobe_s,
                 "Search again this many seconds after a UDP MTU search ended below --udp-max-datagram or fell back "
                 "(0: never)")
      ->capture_default_str();
  app.add_option("--max-connections", opts.max_connections, "Client connections at once, in all")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--max-connections-per-ip", opts.max_connections_per_ip,
                 "Client connections at once from one IP address")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 24));
  app.add_option("--auth-threads", opts.auth.threads,
                 "Threads that verify passwords (Argon2id, tens of ms each), so logins never stall an event loop")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{256}));
  app.add_option("--auth-queue", opts.auth.max_queued,
                 "Password logins waiting for an --auth-threads worker; past it a login is refused with "
                 "RESOURCE_EXHAUSTED \"authentication busy\"")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--data-dir", data_dir,
                 "Directory for persistent data (created if missing; holds a lock file, slipd.pid)");
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
  std::string trace_file;
  app.add_option("--trace-file", trace_file,
                 "Append a span (JSON line) here for every message whose traceparent header is sampled");
  CLI11_PARSE(app, argc, argv);
  opts.broker.metrics = metrics == "on";

  if (hash_password) {
    std::string password;
    std::getline(std::cin, password);
    if (!password.empty() && password.back() == '\r') password.pop_back();
    if (password.empty()) {
      std::fprintf(stderr, "slipd: --hash-password: read an empty password from stdin\n");
      return 2;
    }
    auto h = slip::broker::hash_password(password);
    if (!h.is_ok()) {
      std::fprintf(stderr, "slipd: %s\n", h.status().to_string().c_str());
      return 1;
    }
    std::printf("%s\n", h->c_str());
    return 0;
  }

  std::vector<slip::broker::UserConfig> users;
  if (!config_path.empty()) {
    auto file = slip::slipd::load_config(config_path);
    if (!file.is_ok()) {
      std::fprintf(stderr, "slipd: %s\n", std::string(file.status().message()).c_str());
      return 2;
    }
    if (auto s = apply_config(app, *file, config_path); !s.is_ok()) {
      std::fprintf(stderr, "slipd: %s\n", std::string(s.message()).c_str());
      return 2;
    }
    users = std::move(file->users);
  }

  if (auto s = slip::init_logging(log_level); !s.is_ok()) {
    std::fprintf(stderr, "slipd: %s\n", s.to_string().c_str());
    return 2;
  }
  opts.loop.idle = slip::io::parse_idle_strategy(idle).value();
  opts.loop.spin = std::chrono::microseconds(spin_us);
  opts.session.interactive_hold = std::chrono::microseconds(hold_us);
  opts.session.handshake_timeout = std::chrono::milliseconds(handshake_timeout_ms);
  opts.broker.response_ttl = std::chrono::milliseconds(response_ttl_ms);
  opts.drain_timeout = std::chrono::milliseconds(drain_ms);
  opts.session.drain_timeout = opts.drain_timeout;
  opts.session.limits.max_frame_size = opts.handshake.max_frame_size;

  opts.nats.ping_interval = std::chrono::milliseconds(nats_ping_ms);
  opts.nats.server_name = opts.handshake.server_name;
  if (!nats_token.empty() || !nats_user.empty()) {
    // Static credentials from the command line.
    opts.nats.authenticate = [nats_token, nats_user, nats_pass](std::string_view token, std::string_view user,
                                                                std::string_view pass) -> slip::Result<slip::broker::Identity> {
      if (!nats_token.empty() && token == nats_token) return slip::broker::Identity{};
      if (!nats_user.empty() && user == nats_user && pass == nats_pass) return slip::broker::Identity{std::string(user), nullptr};
      return slip::unauthenticated("bad NATS credentials");
    };
  }

  // Tests only: while the file this variable names exists, password verification waits before
  // it starts, so a test can hold a login in progress (src/broker/auth_pool.h).
  if (const char* hold = std::getenv("SLIPD_HOLD_AUTH_FOR_TEST"); hold != nullptr && *hold) {
    opts.auth.hold_file_for_test = hold;
  }

  int data_lock = -1;
  if (!data_dir.empty()) {
    auto fd = open_data_dir(data_dir);
    if (!fd.is_ok()) {
      SLIP_LOG_ERROR("cannot start: {}", fd.status().message());
      return 1;
    }
    data_lock = *fd;
    opts.streams_dir = data_dir + "/streams";
    // Tests only: while the file this variable names exists, every stream write fails as on a
    // full disk (the failure-injection seam of src/log/file.h).
    if (const char* fail_path = std::getenv("SLIPD_FAIL_WRITES_FOR_TEST"); fail_path != nullptr && *fail_path) {
      opts.streams.log.io_hook = [path = std::string(fail_path)](slip::log::IoOp op, std::string_view,
                                                                  std::size_t*) -> slip::Status {
        if (op == slip::log::IoOp::kWrite && access(path.c_str(), F_OK) == 0) {
          return slip::Status(slip::StatusCode::kOverloaded, "no space left on device (ENOSPC, simulated)");
        }
        return slip::Status();
      };
    }
  }

  if (!opts.udp_listen.empty()) {
    opts.udp.cookies = udp_retry == "always"  ? slip::transport::udp::CookiePolicy::kAlways
                       : udp_retry == "never" ? slip::transport::udp::CookiePolicy::kNever
                                              : slip::transport::udp::CookiePolicy::kUnderLoad;
    if (auto st = slip::transport::udp::parse_fec_mode(udp_fec, opts.udp.fec); !st.is_ok()) {
      SLIP_LOG_ERROR("cannot start: --udp-fec: {}", st.message());
      return 2;
    }
    opts.udp.fec.max_repair_ratio = static_cast<double>(udp_fec_max_repair) / 100.0;
    opts.udp.fec.congestion_loss_reduction = static_cast<double>(udp_fec_loss_reduction) / 100.0;
    opts.udp.socket.gso = udp_offload == "on";
    opts.udp.socket.gro = udp_offload == "on";
    opts.udp.connection.mtu.enabled = udp_mtu_probe == "on";
    opts.udp.connection.mtu.max_packet_size = udp_max_datagram;
    opts.udp.connection.mtu.reprobe_interval = std::chrono::seconds(udp_mtu_reprobe_s);
    std::string key_path = udp_key_file;
    if (key_path.empty()) {
      if (data_dir.empty()) {
        SLIP_LOG_ERROR("cannot start: --udp-listen needs --udp-key FILE or --data-dir (where udp.key is created)");
        return 2;
      }
      key_path = data_dir + "/udp.key";
      if (access(key_path.c_str(), F_OK) != 0) {
        const auto fresh = slip::transport::udp::KeyPair::generate();
        if (auto st = slip::transport::udp::save_private_key(key_path, fresh); !st.is_ok()) {
          SLIP_LOG_ERROR("cannot start: creating {}: {}", key_path, st.to_string());
          return 1;
        }
        SLIP_LOG_INFO("created UDP server key {}", key_path);
      }
    }
    auto key = slip::transport::udp::load_private_key(key_path);
    if (!key.is_ok()) {
      SLIP_LOG_ERROR("cannot start: --udp-key {}: {}", key_path, key.status().to_string());
      return 2;
    }
    opts.udp.static_key = *key;
  }

  std::unique_ptr<slip::obs::SpanWriter> spans;
  if (!trace_file.empty()) {
    auto w = slip::obs::SpanWriter::open(trace_file);
    if (!w.is_ok()) {
      SLIP_LOG_ERROR("cannot start: {}", w.status().message());
      return 1;
    }
    spans = std::move(w).value();
    opts.broker.on_traced_publish = [w = spans.get()](const slip::broker::TracedPublish& t) {
      auto parent = slip::obs::parse_traceparent(t.traceparent);
      if (!parent.is_ok() || !parent->sampled()) return;  // a malformed header is passed on, not traced
      slip::obs::Span span = slip::obs::span_of_hop(*parent);
      span.name = "publish ";
      span.name.append(t.subject);
      span.kind = "broker";
      span.start_unix_ns = t.start_unix_ns;
      span.duration_ns = t.duration_ns;
      span.attributes = {{"subject", std::string(t.subject)}, {"client", std::string(t.client)}};
      w->write(span);
    };
  }

  sigset_t signals = block_signals();
  slip::slipd::Server server(opts);
  if (auto s = server.set_users(std::move(users)); !s.is_ok()) {
    SLIP_LOG_ERROR("cannot start: {}: {}", config_path, s.message());
    return 2;
  }
  if (auto s = server.start(); !s.is_ok()) {
    SLIP_LOG_ERROR("cannot start: {}", s.to_string());
    return 1;
  }
  SLIP_LOG_INFO("slipd {} started: {} loops, idle={}{}", SLIP_VERSION, opts.threads ? opts.threads : std::thread::hardware_concurrency(),
                idle, idle == "spin" ? " " + std::to_string(spin_us) + "us" : "");
  for (const auto& [proto, addr] : server.listening()) SLIP_LOG_INFO("listening for {} protocol on {}", proto, addr);
  if (!server.udp_public_key().empty()) {
    SLIP_LOG_INFO("udp server public key {} (clients: --server udp://{} --server-key {})", server.udp_public_key(),
                  server.listening().back().second, server.udp_public_key());
  }
  if (server.authenticator().required()) {
    SLIP_LOG_INFO("authentication on: {} user{} from {}", server.authenticator().user_count(),
                  server.authenticator().user_count() == 1 ? "" : "s", config_path);
  } else {
    SLIP_LOG_INFO("authentication off: no users configured, every client may publish and subscribe to anything");
  }
  SLIP_LOG_INFO("limits: {} connections, {} per IP, {} subscriptions per client, payload {} bytes",
                opts.max_connections, opts.max_connections_per_ip, opts.broker.max_subscriptions, opts.broker.max_payload);
  if (!data_dir.empty()) SLIP_LOG_INFO("data directory {}", data_dir);
  if (!config_path.empty()) SLIP_LOG_INFO("config file {} (SIGHUP reloads its users and permissions)", config_path);
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
    if (!server.udp_public_key().empty()) f << "udp-key " << server.udp_public_key() << '\n';
    f.close();
    std::rename((ready_file + ".tmp").c_str(), ready_file.c_str());
  }

  int sig = 0;
  while (true) {
    sigwait(&signals, &sig);
    if (sig != SIGHUP) break;
    if (config_path.empty()) {
      SLIP_LOG_WARN("SIGHUP: no --config file to reload");
      continue;
    }
    auto file = slip::slipd::load_config(config_path);
    slip::Status s = file.is_ok() ? server.set_users(std::move(file->users)) : file.status();
    if (!s.is_ok()) {
      SLIP_LOG_ERROR("SIGHUP: reload failed, keeping the previous users and permissions: {}", s.message());
      continue;
    }
    SLIP_LOG_INFO("SIGHUP: reloaded {} user{} and their permissions from {} (other settings apply at restart)",
                  server.authenticator().user_count(), server.authenticator().user_count() == 1 ? "" : "s",
                  config_path);
  }
  SLIP_LOG_INFO("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.shutdown();  // /healthz answers 503 while this drains
  observability.stop();
  SLIP_LOG_INFO("stopped: {} authentication failures, {} connections refused by limits, {} permission denials",
                server.stats().auth_failures.load(), server.stats().connections_refused.load(),
                server.broker().stats().permission_denied.load());
  if (data_lock >= 0) {
    unlink((data_dir + "/slipd.pid").c_str());
    close(data_lock);
  }
  return 0;
}
