// The slipd server: loops, listeners and the sessions they accept.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker.h"
#include "io/loop_group.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "transport/tls/tls.h"

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

  // Bound addresses, e.g. {"native", "127.0.0.1:7420"}.
  std::vector<std::pair<std::string, std::string>> listening() const;
  std::uint64_t open_sessions() const { return open_sessions_.load(std::memory_order_relaxed); }

  const broker::Broker& broker() const { return broker_; }
  broker::Broker& broker() { return broker_; }

  // Observability. protocol_stats(): every client protocol's connection figures (any thread).
  std::vector<const ProtocolStats*> protocol_stats() const { return {&native_stats_}; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  std::size_t loop_count() const { return shards_.size(); }
  // Asks every loop for its connections and calls done(list) on the last loop to answer. Any
  // thread; `done` may outlive the call but not the server.
  void collect_connections(bool with_subscriptions, std::function<void(std::vector<ConnectionInfo>)> done);

  // session::SessionHandler
  void on_ready(session::Session& s) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_closed(session::Session& s, const Status& reason) override;

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
  };

  void accept(transport::ConnectionPtr conn);
  Shard& shard_of(io::EventLoop& loop);

  ServerOptions options_;
  broker::Broker broker_;
  io::LoopGroup loops_;
  std::vector<Shard> shards_;  // one per loop, touched only on that loop's thread
  std::unique_ptr<transport::Listener> native_;
  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::uint64_t> open_sessions_{0};
  ProtocolStats native_stats_{"native"};
  std::atomic<bool> draining_{false};
  bool started_ = false;
};

}  // namespace slip::slipd
