#include "server.h"

#include <thread>

#include "core/logging.h"

namespace slip::slipd {

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      broker_(options_.broker),
      loops_(options_.threads, options_.loop),
      shards_(loops_.size()) {}

Server::~Server() { shutdown(); }

Status Server::start() {
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(options_.listen));
  loops_.start();
  started_ = true;
  const bool tls = !options_.tls.cert_file.empty();
  options_.handshake.link_encrypted = tls;
  auto on_accept = [this](transport::ConnectionPtr c) { accept(c); };
  auto listener = tls ? transport::tls_listen(loops_, hp, options_.tcp, options_.tls, on_accept)
                      : transport::tcp_listen(loops_, hp, options_.tcp, on_accept);
  if (!listener.is_ok()) {
    loops_.stop();
    started_ = false;
    return listener.status();
  }
  native_ = std::move(listener).value();
  return Status();
}

std::vector<std::pair<std::string, std::string>> Server::listening() const {
  std::vector<std::pair<std::string, std::string>> out;
  if (native_) out.emplace_back(options_.tls.cert_file.empty() ? "native" : "native+tls", native_->local_address());
  return out;
}

Server::Shard& Server::shard_of(io::EventLoop& loop) {
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    if (&loops_.loop(i) == &loop) return shards_[i];
  }
  return shards_[0];  // unreachable: every connection belongs to one of our loops
}

void Server::accept(transport::ConnectionPtr conn) {
  const std::uint64_t id = next_connection_id_.fetch_add(1, std::memory_order_relaxed);
  auto s = session::Session::server(conn, options_.handshake, id, options_.session, this);
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
  shard_of(s.connection().loop()).clients[&s] = std::make_unique<NativeClient>(broker_, s, std::move(name));
}

Status Server::on_frame(session::Session& s, const wire::Frame& f) {
  auto& clients = shard_of(s.connection().loop()).clients;
  auto it = clients.find(&s);
  if (it == clients.end()) return failed_precondition("no broker client for this session");
  return it->second->client.on_frame(f, s.options().limits);
}

void Server::on_closed(session::Session& s, const Status& reason) {
  SLIP_LOG_DEBUG("connection from {} closed: {}", s.connection().peer_address(), reason.to_string());
  if (shard_of(s.connection().loop()).clients.erase(&s) == 0) {
    native_stats_.handshake_failures.fetch_add(1, std::memory_order_relaxed);
  }
  if (shard_of(s.connection().loop()).sessions.erase(&s) > 0) {
    open_sessions_.fetch_sub(1, std::memory_order_relaxed);
    native_stats_.open.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Server::shutdown() {
  if (!started_) return;
  started_ = false;
  draining_.store(true, std::memory_order_release);
  if (native_) native_->stop();
  for (std::size_t i = 0; i < loops_.size(); ++i) {
    loops_.loop(i).post([this, i] {
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
  while (open_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
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
  loops_.stop();
  native_.reset();
}

}  // namespace slip::slipd
