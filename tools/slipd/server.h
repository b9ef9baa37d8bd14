// The slipd server: loops, listeners and the sessions they accept.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker.h"
#include "gateway/nats/connection.h"
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
  // The NATS client protocol on its own port ("HOST:PORT"); empty: off.
  std::string nats_listen;
  gateway::nats::GatewayOptions nats;
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
  std::uint64_t open_nats_connections() const { return open_nats_.load(std::memory_order_relaxed); }

  const broker::Broker& broker() const { return broker_; }

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
    std::unordered_map<gateway::nats::NatsConnection*, std::shared_ptr<gateway::nats::NatsConnection>> nats;
    // The session whose frame came last, and its client: frames arrive in runs per session.
    session::Session* last_session = nullptr;
    NativeClient* last_client = nullptr;
  };

  void accept(transport::ConnectionPtr conn);
  void accept_nats(transport::ConnectionPtr conn);
  Shard& shard_of(io::EventLoop& loop);

  ServerOptions options_;
  broker::Broker broker_;
  io::LoopGroup loops_;
  std::vector<Shard> shards_;  // one per loop, touched only on that loop's thread
  std::unique_ptr<transport::Listener> native_;
  std::unique_ptr<transport::Listener> nats_;
  std::atomic<std::uint64_t> open_nats_{0};
  std::atomic<std::uint64_t> next_connection_id_{1};
  std::atomic<std::uint64_t> open_sessions_{0};
  bool started_ = false;
};

}  // namespace slip::slipd
