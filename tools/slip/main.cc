// slip: the Slipstream command-line client.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <vector>

#include "bench.h"
#include "common.h"
#include "core/logging.h"
#include "broker/client.h"
#include "io/event_loop.h"
#include "session/session.h"
#include "obs/traceparent.h"
#include "stats.h"
#include "consumers.h"
#include "streams.h"
#include "transport/tcp/tcp.h"
#include "transport/tls/tls.h"
#include "transport/udp/keys.h"

namespace {

using slip::cli::Common;
using slip::cli::make_dialer;
using slip::cli::set_credentials;

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
  auto dial = make_dialer(c);
  if (!dial.is_ok()) {
    std::fprintf(stderr, "slip ping: %s\n", dial.status().to_string().c_str());
    return 2;
  }
  slip::io::EventLoop loop;
  Pinger pinger(loop, count);
  slip::wire::ClientHandshakeConfig hs;
  hs.client_name = c.name;
  set_credentials(c, hs);
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
  (*dial)(loop, on_connect);
  loop.run();
  return pinger.finish();
}

// Runs one pub/sub command: `body` starts the work once connected and calls finish(code) when
// done. A connection that fails or closes early ends the command with exit code 1.
int run_pubsub(const Common& c, std::string_view what, bool reconnect,
               const std::function<void(slip::broker::PubSubClient&, std::function<void(int)>)>& body) {
  auto dial = make_dialer(c);
  if (!dial.is_ok()) {
    std::fprintf(stderr, "slip %.*s: %s\n", static_cast<int>(what.size()), what.data(), dial.status().to_string().c_str());
    return 2;
  }
  slip::io::EventLoop loop;
  slip::session::ClientOptions o;
  o.dial = std::move(dial).value();
  o.handshake.client_name = c.name;
  set_credentials(c, o.handshake);
  o.session.handshake_timeout = std::chrono::milliseconds(c.timeout_ms);
  o.reconnect.enabled = reconnect;
  slip::broker::PubSubClient client(loop, o);
  int code = -1;
  bool started = false;
  auto finish = [&](int rc) {
    if (code != -1) return;
    code = rc;
    client.stop();
    if (client.client().session() == nullptr) loop.stop();  // else on_closed stops it, after the flush
  };
  client.set_on_closed([&](const slip::Status& reason) {
    if (code == -1 && !reconnect) {
      std::fprintf(stderr, "slip %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                   reason.is_ok() ? "connection closed" : reason.to_string().c_str());
      code = 1;
    }
    if (code != -1) loop.stop();
  });
  // A refused SUB or PUB ends the command: the broker said no.
  client.set_on_refused([&](const slip::broker::Refusal& r) {
    std::fprintf(stderr, "slip %.*s: %s\n", static_cast<int>(what.size()), what.data(), r.status.to_string().c_str());
    finish(1);
  });
  client.start([&] {
    if (started) return;  // after a reconnect, subscriptions are restored by the client
    started = true;
    body(client, finish);
  });
  // A dial that fails without reconnecting never reaches on_ready or on_closed.
  slip::io::EventLoop* lp = &loop;
  std::function<void()> watch;
  boost::asio::steady_timer poll(loop.context());
  watch = [&] {
    if (code == -1 && !client.client().gave_up().is_ok()) {
      std::fprintf(stderr, "slip %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                   client.client().gave_up().to_string().c_str());
      code = 1;
      lp->stop();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(20));
    poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec && code == -1) watch();
    });
  };
  watch();
  loop.run();
  return code == -1 ? 1 : code;
}

std::string payload_text(const slip::Slice& p) {
  std::string s(p.as_string_view());
  for (char& ch : s) {
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t') ch = '.';
  }
  return s;
}

// `slip udp-key generate FILE` / `slip udp-key public FILE`: a reliable UDP server's key, and
// the public key clients pin.
int run_udp_key(bool generate, const std::string& file) {
  if (generate) {
    const slip::transport::udp::KeyPair key = slip::transport::udp::KeyPair::generate();
    if (auto st = slip::transport::udp::save_private_key(file, key); !st.is_ok()) {
      std::fprintf(stderr, "slip udp-key: %s\n", st.to_string().c_str());
      return 1;
    }
    std::printf("%s\n", slip::transport::udp::format_public_key(key.public_key).c_str());
    return 0;
  }
  auto key = slip::transport::udp::load_private_key(file);
  if (!key.is_ok()) {
    std::fprintf(stderr, "slip udp-key: %s\n", key.status().to_string().c_str());
    return 1;
  }
  std::printf("%s\n", slip::transport::udp::format_public_key(key->public_key).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Common common;
  CLI::App app{"slip - the Slipstream command-line client", "slip"};
  app.set_version_flag("-V,--version", std::string("slip ") + SLIP_VERSION + " (native protocol v1)");
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("-s,--server", common.server, "Server address: HOST:PORT (TCP), or udp://HOST:PORT (encrypted UDP, with --server-key)")
      ->capture_default_str();
  app.add_option("--server-key", common.server_key,
                 "The udp:// server's public key to pin: 64 hex digits, as `slip udp-key public` prints it");
  app.add_option("--udp-fec", common.udp_fec,
                 "Forward error correction to offer a udp:// server: off, adaptive (repairs follow the measured "
                 "loss) or K,M (M repair packets per K); used when the server offers it too")
      ->capture_default_str();
  app.add_option("--udp-mtu-probe", common.udp_mtu_probe,
                 "Path MTU discovery on a udp:// connection: on (probe for datagrams larger than 1200 bytes, up to "
                 "--udp-max-datagram) or off")
      ->capture_default_str();
  app.add_option("--udp-max-datagram", common.udp_max_datagram,
                 "Largest UDP datagram (payload bytes) MTU probing tries on a udp:// connection: 1200 to 65527, or 0 "
                 "for what the MTU of the route to the server allows, at most a 9000-byte MTU's (1472 over IPv4 "
                 "Ethernet, 8972 over loopback)")
      ->capture_default_str();
  app.add_option("--name", common.name, "Client name shown by the server")->capture_default_str();
  app.add_option("--timeout-ms", common.timeout_ms,
                 "Give up on the handshake (and a bench run that stops progressing) after this long, ms")
      ->capture_default_str();

  app.add_option("--token", common.token, "Authentication token")->envname("SLIP_TOKEN");
  app.add_option("--user", common.user, "User name (with --password)")->envname("SLIP_USER");
  app.add_option("--password", common.password, "Password for --user (prefer SLIP_PASSWORD: flags show in ps)")
      ->envname("SLIP_PASSWORD");
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

  std::string subject, data, queue, reply_to;
  unsigned pub_count = 1, msg_count = 0, timeout_req_ms = 2000;
  auto* pub = app.add_subcommand("pub", "Publish DATA on SUBJECT");
  pub->add_option("subject", subject, "Subject, e.g. orders.eu.created")->required();
  pub->add_option("data", data, "Payload")->required();
  pub->add_option("-n,--count", pub_count, "Publish it this many times")->capture_default_str();
  pub->add_option("-r,--reply", reply_to, "Reply subject to send with it");
  bool ack = false;
  std::string msg_id;
  pub->alias("publish");
  pub->add_flag("--ack", ack, "Store it in the stream that captures SUBJECT and print the sequence it got");
  pub->add_option("--msg-id", msg_id, "With --ack: a Slip-Msg-Id header, so that a retry is stored once");
  bool trace = false;
  pub->add_flag("--trace", trace, "Start a W3C trace: send a traceparent header (printed) with the message");

  auto* sub = app.add_subcommand("sub", "Print messages on SUBJECT (wildcards * and >) as they arrive");
  sub->add_option("subject", subject, "Subject pattern")->required();
  sub->add_option("-q,--queue", queue, "Join this queue group (each message goes to one member)");
  sub->add_option("-n,--count", msg_count, "Exit after this many messages (0: never)")->capture_default_str();
  slip::broker::SubOptions sub_options;
  sub->add_flag("--drop-oldest", sub_options.drop_oldest,
                "When this client falls behind, let slipd drop the oldest messages instead of disconnecting it");
  sub->add_option("--backlog-msgs", sub_options.backlog_msgs,
                  "With --drop-oldest: messages slipd holds for us while we are behind (0: its default)");
  sub->add_option("--backlog-bytes", sub_options.backlog_bytes,
                  "With --drop-oldest: bytes slipd holds for us while we are behind (0: its default)");

  auto* req = app.add_subcommand("req", "Send a request on SUBJECT and print the reply");
  req->add_option("subject", subject, "Subject")->required();
  req->add_option("data", data, "Payload")->required();
  req->add_option("--wait-ms", timeout_req_ms, "How long to wait for the reply")->capture_default_str();

  auto* rep = app.add_subcommand("reply", "Answer every request on SUBJECT with DATA");
  rep->add_option("subject", subject, "Subject pattern")->required();
  rep->add_option("data", data, "Reply payload")->required();
  rep->add_option("-q,--queue", queue, "Join this queue group (each request goes to one responder)");
  rep->add_option("-n,--count", msg_count, "Exit after this many requests (0: never)")->capture_default_str();

  slip::cli::BenchOptions bench_options;
  auto* bench = slip::cli::add_bench_command(app, bench_options);

  slip::cli::StatsOptions stats_opts;
  auto* stats = app.add_subcommand("stats", "A live view (like top) of a slipd's figures (server, streams, consumers, UDP, RPC methods, connections), from its --http-listen address");
  stats->add_option("--server-http", stats_opts.server_http, "slipd's HTTP address, HOST:PORT")->capture_default_str();
  stats->add_flag("--once", stats_opts.once, "Print the figures once, plainly (no screen control codes), and exit: for scripts and logs");
  stats->add_option("--interval-ms", stats_opts.interval_ms, "Refresh period")->capture_default_str()->check(CLI::Range(100u, 3600000u));
  stats->add_option("--top", stats_opts.top, "Connections shown, busiest first")->capture_default_str();

  std::string udp_key_file;
  auto* udp_key = app.add_subcommand("udp-key", "Reliable UDP server keys: create one, or print the public key clients pin");
  udp_key->require_subcommand(1);
  auto* udp_key_generate =
      udp_key->add_subcommand("generate", "Write a new private key to FILE (mode 0600) and print its public key");
  udp_key_generate->add_option("file", udp_key_file, "Key file to create (never overwritten)")->required();
  auto* udp_key_public = udp_key->add_subcommand("public", "Print the public key of the private key in FILE");
  udp_key_public->add_option("file", udp_key_file, "Key file")->required();

  slip::cli::StreamCliOptions stream_opts;
  auto* stream = slip::cli::add_stream_commands(app, stream_opts);
  slip::cli::ConsumerCliOptions consumer_opts;
  auto [consume, consumer] = slip::cli::add_consumer_commands(app, consumer_opts);

  CLI11_PARSE(app, argc, argv);
  (void)slip::init_logging("warn");
  if (!common.tls.ca_file.empty() || !common.tls.cert_file.empty()) common.use_tls = true;
  if (*udp_key) return run_udp_key(udp_key_generate->parsed(), udp_key_file);
  if (*stats) return slip::cli::run_stats(stats_opts);
  if (*bench) return slip::cli::run_bench(common, bench_options);
  if (*stream) return slip::cli::run_stream(common, stream_opts, run_pubsub);
  if (*consume) return slip::cli::run_consume(common, consumer_opts, run_pubsub);
  if (*consumer) return slip::cli::run_consumer(common, consumer_opts, run_pubsub);
  if (*pub && ack) return slip::cli::run_publish_acked(common, subject, data, pub_count, msg_id, run_pubsub);
  if (*pub) {
    const std::string traceparent = trace ? slip::obs::format_traceparent(slip::obs::new_trace()) : std::string();
    const slip::wire::Metadata trace_headers = {{slip::obs::kTraceparentHeader, traceparent}};
    if (trace) std::printf("traceparent %s\n", traceparent.c_str());
    return run_pubsub(common, "pub", false, [&](slip::broker::PubSubClient& c, std::function<void(int)> finish) {
      for (unsigned i = 0; i < pub_count; ++i) {
        if (auto st = c.publish(subject, slip::Slice::copy_of(data), reply_to, trace ? &trace_headers : nullptr); !st.is_ok()) {
          std::fprintf(stderr, "slip pub: %s\n", st.to_string().c_str());
          finish(1);
          return;
        }
      }
      // Wait for the broker's verdict: a refusal arrives before the answer to this PING.
      auto st = c.flush([&, finish] {
        std::printf("published %u message%s on %s\n", pub_count, pub_count == 1 ? "" : "s", subject.c_str());
        finish(0);
      });
      if (!st.is_ok()) {
        std::fprintf(stderr, "slip pub: %s\n", st.to_string().c_str());
        finish(1);
      }
    });
  }
  if (*sub || *rep) {
    const bool replying = rep->parsed();
    return run_pubsub(common, replying ? "reply" : "sub", true,
                      [&](slip::broker::PubSubClient& c, std::function<void(int)> finish) {
      auto seen = std::make_shared<unsigned>(0);
      auto handler = [&c, finish, seen, replying, msg_count, &data](const slip::broker::Message& m) {
        ++*seen;
        if (replying) {
          if (!m.reply.empty()) (void)c.publish(m.reply, slip::Slice::copy_of(data));
          std::printf("[#%u] replied to %.*s\n", *seen, static_cast<int>(m.subject.size()), m.subject.data());
        } else {
          std::string trace_note;
          if (m.headers != nullptr) {
            for (const auto& [k, v] : *m.headers) {
              if (k == slip::obs::kTraceparentHeader) trace_note = " (traceparent " + std::string(v) + ")";
            }
          }
          std::printf("[#%u] %.*s: %s%s\n", *seen, static_cast<int>(m.subject.size()), m.subject.data(),
                      payload_text(m.payload).c_str(), trace_note.c_str());
        }
        std::fflush(stdout);
        if (msg_count != 0 && *seen >= msg_count) finish(0);
      };
      auto r = c.subscribe(subject, queue, std::move(handler), replying ? slip::broker::SubOptions{} : sub_options);
      if (!r.is_ok()) {
        std::fprintf(stderr, "slip: %s\n", r.status().to_string().c_str());
        finish(1);
        return;
      }
      // "listening" once the broker took the SUB (a refusal would have come first).
      (void)c.flush([&] {
        std::printf("listening on %s%s%s\n", subject.c_str(), queue.empty() ? "" : " in queue group ", queue.c_str());
        std::fflush(stdout);
      });
    });
  }
  if (*req) {
    return run_pubsub(common, "req", false, [&](slip::broker::PubSubClient& c, std::function<void(int)> finish) {
      auto st = c.request(subject, slip::Slice::copy_of(data), std::chrono::milliseconds(timeout_req_ms),
                          [finish](slip::Result<slip::broker::Message> r) {
                            if (!r.is_ok()) {
                              std::fprintf(stderr, "slip req: %s\n", r.status().to_string().c_str());
                              finish(1);
                              return;
                            }
                            std::printf("%s\n", payload_text(r->payload).c_str());
                            finish(0);
                          });
      if (!st.is_ok()) {
        std::fprintf(stderr, "slip req: %s\n", st.to_string().c_str());
        finish(1);
      }
    });
  }
  if (*ping) return run_ping(common, count);
  return 0;
}
