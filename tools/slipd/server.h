// The slipd server: loops, listeners and the sessions they accept.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/auth.h"
#include "broker/auth_pool.h"
#include "broker/broker.h"
#include "gateway/nats/connection.h"
#include "io/loop_group.h"
#include "log/stream_service.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/tls/tls.h"
#include "transport/udp/udp.h"

namespace slip::slipd {

struct ServerOptions {
  std::string listen = "127.0.0.1:7420";
  std::size_t threads = 0;  // 0: one loop per core
  io::LoopOptions loop;
  transport::TcpOptions tcp;
  // With a certificate and key, the native port speaks TLS 1.3 only.
  transport::TlsOptions tls;
  session::SessionOptions session;
  wire::ServerHandshakeConfig handshake;
  std::chrono::milliseconds drain_timeout{5000};
  broker::BrokerOptions broker;
  // The NATS client protocol on its own port ("HOST:PORT"); empty: off.
  std::string nats_listen;
  gateway::nats::GatewayOptions nats;
  // The native protocol over encrypted reliable UDP on its own port ("HOST:PORT"); empty: off.
  // udp.static_key must hold the server's key pair.
  std::string udp_listen;
  transport::udp::UdpOptions udp;
  // Connections at once, in all and from one client IP address; past either, a new connection
  // is refused with RESOURCE_EXHAUSTED.
  std::size_t max_connections = 65536;
  std::size_t max_connections_per_ip = 4096;
  // Persistent streams live here (one directory per stream); empty: streams are refused.
  std::string streams_dir;
  log::StreamManagerOptions streams;  // dir is streams_dir
  // Password verification (Argon2id) runs on these workers, never on the event loops.
  broker::AuthPoolOptions auth;
};

struct ServerStats {
  std::atomic<std::uint64_t> auth_failures{0};         // handshakes refused for credentials
  std::atomic<std::uint64_t> connections_refused{0};   // refused for the connection limits
  std::atomic<std::uint64_t> users_disconnected{0};    // closed because a reload removed their user
};

// Connection figures of one client protocol ("native"; gateways add their own), kept as relaxed
// atomics by whoever accepts the connections and read at scrape time.
struct ProtocolStats {
  explicit ProtocolStats(std::string p) : protocol(std::move(p)) {}
  const std::string protocol;
  std::atomic<std::uint64_t> open{0};
  std::atomic<std::uint64_t> total{0};               // accepted since start
  std::atomic<std::uint64_t> handshake_failures{0};  // closed before the handshake completed
  std::atomic<std::uint64_t> auth_failures{0};       // refused credentials
};

// One client connection as the HTTP endpoints show it. Collected on the connection's loop.
struct ConnectionInfo {
  std::uint64_t id = 0;
  std::string protocol;
  std::string peer;
  std::string name;
  std::uint64_t subscriptions = 0;
  broker::ClientStats traffic;
  std::uint64_t dropped = 0;
  std::uint64_t pending_bytes = 0;
  struct Sub {
    std::uint64_t sid = 0;
    std::string subject;
    std::string queue;
    std::uint64_t delivered = 0;
  };
  std::vector<Sub> subs;  // filled only when asked for
};

class Server final : public session::SessionHandler {
 public:
  explicit Server(ServerOptions options);
  ~Server() override;

  // Starts the loops and the listeners.
  Status start();
  // Stops accepting, sends GOAWAY to every session, waits up to drain_timeout for them to
  // close, then stops the loops.
  void shutdown();

  // Replaces the users and their permissions (auth.h), atomically. Open connections get their
  // user's new permissions (subscriptions no longer allowed end with PUBSUB_ERROR); connections
  // whose user is gone are closed with UNAUTHENTICATED. On error nothing changes. Any thread.
  Status set_users(std::vector<broker::UserConfig> users);
  const broker::Authenticator& authenticator() const { return auth_; }
  const broker::AuthPool& auth_pool() const { return auth_pool_; }
  const ServerStats& stats() const { return stats_; }

  // Bound addresses, e.g. {"native", "127.0.0.1:7420"}.
  std::vector<std::pair<std::string, std::string>> listening() const;
  // The UDP listener's public key (64 hex digits), empty when not listening on UDP.
  std::string udp_public_key() const { return udp_ ? udp_->public_key() : std::string(); }
  // The UDP listener, or nullptr without --udp-listen.
  const transport::udp::UdpListener* udp_listener() const { return udp_.get(); }
  std::uint64_t open_sessions() const { return open_sessions_.load(std::memory_order_relaxed); }
  std::uint64_t open_nats_connections() const { return open_nats_.load(std::memory_order_relaxed); }

  // Null before start().
  log::StreamService* streams() { return streams_.get(); }
  const broker::Broker& broker() const { return broker_; }
  broker::Broker& broker() { return broker_; }

  // Observability. protocol_stats(): every client protocol's connection figures (any thread).
  std::vector<const ProtocolStats*> protocol_stats() const { return {&native_stats_, &nats_stats_}; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  std::size_t loop_count() const { return shards_.size(); }
  // Asks every loop for its connections and calls done(list) on the last loop to answer. Any
  // thread; `done` may outlive the call but not the server.
  void collect_connections(bool with_subscriptions, std::function<void(std::vector<ConnectionInfo>)> done);

  // session::SessionHandler
  void on_ready(session::Session& s) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_closed(session::Session& s, const Status& reason) override;
  void on_send_drained(session::Session& s) override;

 private:
  // A native session's broker state.
  struct NativeClient {
    NativeClient(broker::Broker& b, session::Session& s, std::string name) : conn(s), client(b, conn, std::move(name)) {}
    broker::SessionConnection conn;
    broker::BrokerClient client;
  };
  struct Shard {
    std::unordered_map<session::Session*, std::shared_ptr<session::Session>> sessions;
    std::unordered_map<session::Session*, std::unique_ptr<NativeClient>> clients;
    std::unordered_map<gateway::nats::NatsConnection*, std::shared_ptr<gateway::nats::NatsConnection>> nats;
    // The session whose frame came last, and its client: frames arrive in runs per session.
    session::Session* last_session = nullptr;
    NativeClient* last_client = nullptr;
  };

  void accept(transport::ConnectionPtr conn, const wire::ServerHandshakeConfig& handshake);
  void accept_nats(transport::ConnectionPtr conn);
  // Counts a new connection against the limits; a non-OK Status says why it is refused.
  Status admit(const std::string& ip);
  void release(const std::string& ip);
  void apply_users_on_loop(std::size_t shard);
  // Counts a refusal of `protocol`'s credentials (not a busy refusal: that is AuthPoolStats::busy).
  void count_auth_failure(const Status& why, ProtocolStats& protocol);
  Shard& shard_of(io::EventLoop& loop);

  ServerOptions options_;
  broker::Authenticator auth_;
  broker::AuthPool auth_pool_;  // stopped before the loops: its results are posted to them
  ServerStats stats_;
  bool nats_uses_users_ = false;  // NATS clients authenticate as the configured users
  broker::Broker broker_;
  io::LoopGroup loops_;
  std::vector<Shard> shards_;  // one per loop, touched only on that loop's thread
  // Destroyed before loops_: its logs' callbacks post to the loops.
  std::unique_ptr<log::StreamService> streams_;
  std::unique_ptr<transport::Listener> native_;
  std::unique_ptr<transport::Listener> nats_;
  std::unique_ptr<transport::udp::UdpListener> udp_;
  wire::ServerHandshakeConfig udp_handshake_;  // the native one, on an encrypted link
  std::atomic<std::uint64_t> open_nats_{0};
  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::uint64_t> open_sessions_{0};
  ProtocolStats native_stats_{"native"};
  ProtocolStats nats_stats_{"nats"};
  std::atomic<bool> draining_{false};
  bool started_ = false;
  std::mutex conn_mu_;
  std::size_t connections_ = 0;                                 // guarded by conn_mu_
  std::unordered_map<std::string, std::size_t> per_ip_;         // guarded by conn_mu_
};

}  // namespace slip::slipd
