#include "server.h"

#include <boost/asio/steady_timer.hpp>
#include <thread>

#include "core/logging.h"
#include "wire/encoder.h"

namespace slip::slipd {

namespace {

// "127.0.0.1:5000" -> "127.0.0.1"; "[::1]:5000" -> "::1".
std::string ip_of(const std::string& peer) {
  std::string host = peer.substr(0, peer.rfind(':'));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host;
}

// Answers a connection the limits refuse: waits for the client's first bytes (its preface and
// HELLO; closing with them unread would reset the connection and lose the answer), then sends
// the preface and ERROR and closes. Keeps itself alive until the connection closes.
class Refuser final : public transport::ConnectionHandler, public std::enable_shared_from_this<Refuser> {
 public:
  Refuser(transport::ConnectionPtr conn, Status why, std::chrono::milliseconds wait)
      : conn_(std::move(conn)), why_(std::move(why)), timer_(conn_->loop().context()), wait_(wait) {}

  void start() {
    self_ = shared_from_this();
    conn_->start(this);
    timer_.expires_after(wait_);
    std::weak_ptr<Refuser> weak = self_;
    timer_.async_wait([weak](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->answer();
    });
  }
  void on_bytes(Slice) override { answer(); }
  void on_closed(Status) override {
    timer_.cancel();
    auto keep = std::move(self_);
  }

 private:
  void answer() {
    if (answered_) return;
    answered_ = true;
    wire::FrameEncoder e(256);
    e.add_preface();
    std::string msg(why_.message());
    e.add(wire::ErrorFrame{0, why_.code(), msg});
    conn_->send(e.take());
    conn_->close();
  }

  transport::ConnectionPtr conn_;
  Status why_;
  boost::asio::steady_timer timer_;
  std::chrono::milliseconds wait_;
  bool answered_ = false;
  std::shared_ptr<Refuser> self_;
};

// Turns away a NATS client over the connection limits the way NATS servers do: one -ERR line,
// then close.
class NatsRefuser final : public transport::ConnectionHandler, public std::enable_shared_from_this<NatsRefuser> {
 public:
  explicit NatsRefuser(transport::ConnectionPtr conn) : conn_(std::move(conn)) {}

  void start() {
    self_ = shared_from_this();
    conn_->start(this);
    static constexpr std::string_view kLine = "-ERR 'maximum connections exceeded'\r\n";
    conn_->send(Chain(Slice::copy_of(ByteView(kLine))));
    conn_->close();
  }
  void on_bytes(Slice) override {}
  void on_closed(Status) override { auto keep = std::move(self_); }

 private:
  transport::ConnectionPtr conn_;
  std::shared_ptr<NatsRefuser> self_;
};

}  // namespace

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      auth_pool_(auth_, options_.auth),
      broker_(options_.broker),
      loops_(options_.threads, options_.loop),
      shards_(loops_.size()) {
  // Tokens and remembered passwords are answered on the loop; a password to verify goes to the
  // pool and the session waits for the verdict (the other connections of its loop do not).
  options_.handshake.authenticate_async = [this](const wire::Hello& h, std::weak_ptr<const void> alive,
                                                 wire::AuthDone done) -> std::optional<wire::AuthVerdict> {
    auto verdict = [this](Result<broker::Identity> id) {
      if (!id.is_ok()) {
        count_auth_failure(id.status(), native_stats_);
        return wire::AuthVerdict{id.status(), {}};  // the session logs it with the peer's address
      }
      return wire::AuthVerdict{Status(), id->user};
    };
    std::optional<Result<broker::Identity>> now = auth_pool_.authenticate(
        broker::Credentials{h.auth_token, h.auth_user, h.auth_password}, std::move(alive),
        [verdict, done = std::move(done)](Result<broker::Identity> id) { done(verdict(std::move(id))); });
    if (now) return verdict(std::move(*now));
    return std::nullopt;
  };
}

void Server::count_auth_failure(const Status& why, ProtocolStats& protocol) {
  if (why.code() == StatusCode::kOverloaded) return;  // busy, not refused
  stats_.auth_failures.fetch_add(1, std::memory_order_relaxed);
  protocol.auth_failures.fetch_add(1, std::memory_order_relaxed);
}

Status Server::set_users(std::vector<broker::UserConfig> users) {
  SLIP_TRY(auth_.reload(std::move(users)));
  if (started_) {
    for (std::size_t i = 0; i < loops_.size(); ++i) loops_.loop(i).post([this, i] { apply_users_on_loop(i); });
  }
  return Status();
}

void Server::apply_users_on_loop(std::size_t shard) {
  std::vector<session::Session*> gone;
  for (auto& [s, nc] : shards_[shard].clients) {
    std::optional<broker::Identity> id = auth_.lookup(nc->client.user());
    if (!id) {
      gone.push_back(s);
      continue;
    }
    nc->client.set_identity(std::move(*id));
  }
  if (nats_uses_users_) {
    std::vector<std::shared_ptr<gateway::nats::NatsConnection>> gone_nats;
    for (auto& [ptr, c] : shards_[shard].nats) {
      broker::BrokerClient* bc = c->broker_client();
      if (bc == nullptr || bc->user().empty()) continue;  // not logged in yet
      std::optional<broker::Identity> id = auth_.lookup(bc->user());
      if (id) {
        bc->set_identity(std::move(*id));
      } else {
        gone_nats.push_back(c);
      }
    }
    for (auto& c : gone_nats) {
      const std::string user = c->broker_client()->user();
      c->broker_client()->close();
      stats_.users_disconnected.fetch_add(1, std::memory_order_relaxed);
      SLIP_LOG_INFO("closing NATS connection from {}: user \"{}\" is no longer configured", c->peer_address(), user);
      c->fail(unauthenticated("user \"" + user + "\" is no longer configured"));
    }
  }
  for (session::Session* s : gone) {
    auto it = shards_[shard].clients.find(s);
    const std::string user = it->second->client.user();
    it->second->client.close();  // nothing new from it, even before the close completes
    stats_.users_disconnected.fetch_add(1, std::memory_order_relaxed);
    SLIP_LOG_INFO("closing connection from {}: user \"{}\" is no longer configured", s->connection().peer_address(), user);
    s->fail(unauthenticated("user \"" + user + "\" is no longer configured"));
  }
}

Status Server::admit(const std::string& ip) {
  std::lock_guard<std::mutex> g(conn_mu_);
  if (connections_ >= options_.max_connections) {
    return overloaded("too many connections (limit " + std::to_string(options_.max_connections) + ")");
  }
  std::size_t& n = per_ip_[ip];
  if (n >= options_.max_connections_per_ip) {
    if (n == 0) per_ip_.erase(ip);
    return overloaded("too many connections from " + ip + " (limit " +
                      std::to_string(options_.max_connections_per_ip) + ")");
  }
  ++n;
  ++connections_;
  return Status();
}

void Server::release(const std::string& ip) {
  std::lock_guard<std::mutex> g(conn_mu_);
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
  if (connections_ > 0) --connections_;
}

Server::~Server() {
  shutdown();
  auth_pool_.stop();
}

Status Server::start() {
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(options_.listen));
  loops_.start();
  auth_pool_.start();
  started_ = true;
  std::unique_ptr<log::StreamManager> manager;
  if (!options_.streams_dir.empty()) {
    log::StreamManagerOptions so = options_.streams;
    so.dir = options_.streams_dir;
    auto m = log::StreamManager::open(std::move(so));
    if (!m.is_ok()) {
      loops_.stop();
      started_ = false;
      return m.status().with_context("persistent streams");
    }
    manager = std::move(m).value();
  }
  log::StreamServiceOptions service_options;
  service_options.time_acks = options_.broker.metrics;
  streams_ = std::make_unique<log::StreamService>(broker_, loops_.loop(0), std::move(manager), service_options);
  if (Status st = streams_->start(); !st.is_ok()) {
    loops_.stop();
    started_ = false;
    return st.with_context("persistent streams");
  }
  const bool tls = !options_.tls.cert_file.empty();
  options_.handshake.link_encrypted = tls;
  auto on_accept = [this](transport::ConnectionPtr c) { accept(c, options_.handshake); };
  auto listener = tls ? transport::tls_listen(loops_, hp, options_.tcp, options_.tls, on_accept)
                      : transport::tcp_listen(loops_, hp, options_.tcp, on_accept);
  if (!listener.is_ok()) {
    loops_.stop();
    started_ = false;
    return listener.status();
  }
  native_ = std::move(listener).value();
  if (!options_.nats_listen.empty()) {
    if (!options_.nats.authenticate && auth_.required()) {
      // NATS clients log in as the configured users, with the same permissions; passwords are
      // verified on the pool, as for native clients.
      nats_uses_users_ = true;
      options_.nats.authenticate_async = [this](std::string_view token, std::string_view user,
                                                std::string_view password, std::weak_ptr<const void> alive,
                                                gateway::nats::AuthDone done)
          -> std::optional<Result<broker::Identity>> {
        std::optional<Result<broker::Identity>> now = auth_pool_.authenticate(
            broker::Credentials{token, user, password}, std::move(alive),
            [this, done = std::move(done)](Result<broker::Identity> id) {
              if (!id.is_ok()) count_auth_failure(id.status(), nats_stats_);
              done(std::move(id));
            });
        if (now && !now->is_ok()) count_auth_failure(now->status(), nats_stats_);
        return now;
      };
    }
    auto nats_hp = transport::parse_host_port(options_.nats_listen);
    auto nats = nats_hp.is_ok() ? transport::tcp_listen(loops_, *nats_hp, options_.tcp,
                                                        [this](transport::ConnectionPtr c) { accept_nats(c); })
                                : Result<std::unique_ptr<transport::Listener>>(nats_hp.status());
    if (!nats.is_ok()) {
      native_->stop();
      native_.reset();
      loops_.stop();
      started_ = false;
      return nats.status();
    }
    nats_ = std::move(nats).value();
    // INFO tells clients where they are: the bound address.
    const std::string bound = nats_->local_address();
    options_.nats.host = bound.substr(0, bound.rfind(':'));
    options_.nats.port = std::stoi(bound.substr(bound.rfind(':') + 1));
  }
  if (!options_.udp_listen.empty()) {
    udp_handshake_ = options_.handshake;
    udp_handshake_.link_encrypted = true;
    auto udp_hp = transport::parse_host_port(options_.udp_listen);
    auto udp = udp_hp.is_ok() ? transport::udp::udp_listen(loops_, *udp_hp, options_.udp,
                                                          [this](transport::ConnectionPtr c) { accept(c, udp_handshake_); })
                              : Result<std::unique_ptr<transport::udp::UdpListener>>(udp_hp.status());
    if (!udp.is_ok()) {
      if (nats_) nats_->stop();
      nats_.reset();
      native_->stop();
      native_.reset();
      loops_.stop();
      started_ = false;
      return udp.status().with_context("--udp-listen");
    }
    udp_ = std::move(udp).value();
  }
  return Status();
}

void Server::accept_nats(transport::ConnectionPtr conn) {
  std::string ip = ip_of(conn->peer_address());
  if (Status limit = admit(ip); !limit.is_ok()) {
    stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
    SLIP_LOG_WARN("nats connection from {} refused: {}", conn->peer_address(), limit.to_string());
    std::make_shared<NatsRefuser>(conn)->start();
    return;
  }
  const std::uint64_t id = next_connection_id_.fetch_add(1, std::memory_order_relaxed);
  Shard& shard = shard_of(conn->loop());
  auto c = std::make_shared<gateway::nats::NatsConnection>(
      broker_, conn, options_.nats, id, [this, &shard, ip = std::move(ip)](gateway::nats::NatsConnection& gone) {
        if (shard.nats.erase(&gone) > 0) {
          open_nats_.fetch_sub(1, std::memory_order_relaxed);
          nats_stats_.open.fetch_sub(1, std::memory_order_relaxed);
          release(ip);
        }
      });
  shard.nats.emplace(c.get(), c);
  open_nats_.fetch_add(1, std::memory_order_relaxed);
  nats_stats_.open.fetch_add(1, std::memory_order_relaxed);
  nats_stats_.total.fetch_add(1, std::memory_order_relaxed);
  SLIP_LOG_DEBUG("nats connection {} from {}", id, conn->peer_address());
  c->start();
}

std::vector<std::pair<std::string, std::string>> Server::listening() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (native_) out.emplace_back(options_.tls.cert_file.empty() ? "native" : "native+tls", native_->local_address());
  if (nats_) out.emplace_back("nats", nats_->local_address());
  if (udp_) out.emplace_back("udp", udp_->local_address());
  return out;
}

Server::Shard& Server::shard_of(io::EventLoop& loop) {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    if (&loops_.loop(i) == &loop) return shards_[i];
  }
  return shards_[0];  // unreachable: every connection belongs to one of our loops
}

void Server::accept(transport::ConnectionPtr conn, const wire::ServerHandshakeConfig& handshake) {
  if (Status limit = admit(ip_of(conn->peer_address())); !limit.is_ok()) {
    stats_.connections_refused.fetch_add(1, std::memory_order_relaxed);
    SLIP_LOG_WARN("connection from {} refused: {}", conn->peer_address(), limit.to_string());
    std::make_shared<Refuser>(conn, limit, options_.session.handshake_timeout)->start();
    return;
  }
  const std::uint64_t id = next_connection_id_.fetch_add(1, std::memory_order_relaxed);
  auto s = session::Session::server(conn, handshake, id, options_.session, this);
  shard_of(conn->loop()).sessions.emplace(s.get(), s);
  open_sessions_.fetch_add(1, std::memory_order_relaxed);
  native_stats_.open.fetch_add(1, std::memory_order_relaxed);
  native_stats_.total.fetch_add(1, std::memory_order_relaxed);
  SLIP_LOG_DEBUG("connection {} from {}", id, conn->peer_address());
  s->start();
}

void Server::on_ready(session::Session& s) {
  std::string name = s.negotiated().peer_name.empty() ? s.connection().peer_address()
                                                       : s.negotiated().peer_name + "@" + s.connection().peer_address();
  std::optional<broker::Identity> id = auth_.lookup(s.negotiated().identity);
  if (!id) {  // removed by a reload since its handshake
    s.fail(unauthenticated("user \"" + s.negotiated().identity + "\" is no longer configured"));
    return;
  }
  if (!id->user.empty()) name += " (user " + id->user + ")";
  auto nc = std::make_unique<NativeClient>(broker_, s, std::move(name));
  nc->client.set_identity(std::move(*id));
  Shard& shard = shard_of(s.connection().loop());
  shard.last_session = nullptr;
  shard.clients[&s] = std::move(nc);
}

Status Server::on_frame(session::Session& s, const wire::Frame& f) {
  Shard& shard = shard_of(s.connection().loop());
  if (&s != shard.last_session) {
    auto it = shard.clients.find(&s);
    if (it == shard.clients.end()) return failed_precondition("no broker client for this session");
    shard.last_session = &s;
    shard.last_client = it->second.get();
  }
  // Persistent-stream frames (0x40-0x4F).
  if ((static_cast<std::uint8_t>(f.type) & 0xF0) == 0x40) {
    return streams_->on_frame(s, shard.last_client->client, f, s.options().limits);
  }
  return shard.last_client->client.on_frame(f, s.options().limits);
}

void Server::on_send_drained(session::Session& s) {
  Shard& shard = shard_of(s.connection().loop());
  auto it = shard.clients.find(&s);
  if (it != shard.clients.end()) it->second->client.on_drained();
}

void Server::on_closed(session::Session& s, const Status& reason) {
  SLIP_LOG_DEBUG("connection from {} closed: {}", s.connection().peer_address(), reason.to_string());
  Shard& shard = shard_of(s.connection().loop());
  if (shard.last_session == &s) shard.last_session = nullptr;
  if (streams_) streams_->on_session_closed(s);
  if (shard.clients.erase(&s) == 0) native_stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
  if (shard.sessions.erase(&s) > 0) {
    open_sessions_.fetch_sub(1, std::memory_order_relaxed);
    native_stats_.open.fetch_sub(1, std::memory_order_relaxed);
    release(ip_of(s.connection().peer_address()));
  }
}

void Server::shutdown() {
  if (!started_) return;
  started_ = false;
  draining_.store(true, std::memory_order_release);
  if (native_) native_->stop();
  if (nats_) nats_->stop();
  if (udp_) udp_->stop();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_.loop(i).post([this, i] {
      std::vector<std::shared_ptr<gateway::nats::NatsConnection>> nats;
      for (auto& [ptr, c] : shards_[i].nats) nats.push_back(c);
      for (auto& c : nats) c->shutdown();
      // Copy: go_away may close and erase a session while we iterate.
      std::vector<std::shared_ptr<session::Session>> all;
      for (auto& [ptr, s] : shards_[i].sessions) all.push_back(s);
      for (auto& s : all) {
        if (s->ready()) {
          s->go_away(Status(StatusCode::kDisconnected, "server shutting down"));
        } else {
          s->abort(disconnected("server shutting down"));
        }
      }
    });
  }
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  while ((open_sessions() > 0 || open_nats_connections() > 0) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (open_sessions() > 0) {
    SLIP_LOG_WARN("{} sessions still open after the drain timeout: closing them", open_sessions());
    for (std::size_t i = 0; i < loops_.size(); ++i) {
      loops_.loop(i).post([this, i] {
        std::vector<std::shared_ptr<session::Session>> all;
        for (auto& [ptr, s] : shards_[i].sessions) all.push_back(s);
        for (auto& s : all) s->abort(disconnected("server shutting down"));
      });
    }
    const auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (open_sessions() > 0 && std::chrono::steady_clock::now() < hard) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (streams_) streams_->stop();
  auth_pool_.stop();  // before the loops: a verdict is posted to one
  loops_.stop();
  native_.reset();
  nats_.reset();
  udp_.reset();
}

}  // namespace slip::slipd
