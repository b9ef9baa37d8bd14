#include "session/client.h"

#include <algorithm>
#include <cmath>

#include "core/logging.h"

namespace slip::session {

std::chrono::milliseconds backoff_delay(const ReconnectPolicy& p, std::uint32_t attempt, std::mt19937_64& rng) {
  const double base = static_cast<double>(p.initial.count()) * std::pow(p.multiplier, std::min(attempt, 62u));
  const double capped = std::min(base, static_cast<double>(p.max.count()));
  double d = capped;
  if (p.jitter) {
    std::uniform_real_distribution<double> u(capped / 2, capped);
    d = u(rng);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(d));
}

Dialer tcp_dialer(transport::HostPort address, transport::TcpOptions options) {
  return [address = std::move(address), options](io::EventLoop& loop, transport::ConnectHandler done) {
    transport::tcp_connect(loop, address, options, std::move(done));
  };
}

Dialer udp_dialer(transport::HostPort address, transport::udp::UdpOptions options) {
  return [address = std::move(address), options = std::move(options)](io::EventLoop& loop,
                                                                       transport::ConnectHandler done) {
    transport::udp::udp_connect(loop, address, options, std::move(done));
  };
}

Result<Dialer> dialer_for(std::string_view address, const transport::TcpOptions& tcp,
                          const transport::udp::UdpOptions& udp) {
  if (std::optional<std::string> hostport = transport::udp::udp_url_address(address)) {
    SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(*hostport));
    if (udp.server_key == transport::udp::PublicKey{}) {
      return invalid_argument("udp://" + *hostport + ": no server key pinned (--server-key, as `slip udp-key public` prints it)");
    }
    return udp_dialer(std::move(hp), udp);
  }
  SLIP_ASSIGN_OR_RETURN(transport::HostPort hp, transport::parse_host_port(address));
  return tcp_dialer(std::move(hp), tcp);
}

Client::Client(io::EventLoop& loop, ClientOptions options, SessionHandler* handler)
    : loop_(loop), options_(std::move(options)), handler_(handler), retry_timer_(loop.context()), rng_(std::random_device{}()) {}

Client::~Client() {
  *alive_ = false;
  stopped_ = true;
  retry_timer_.cancel();
  if (session_) {
    session_->set_handler(Session::null_handler());
    session_->abort(cancelled("client destroyed"));
  }
}

void Client::start() {
  stopped_ = false;
  dial();
}

void Client::stop() {
  stopped_ = true;
  retry_timer_.cancel();
  if (session_) session_->go_away(Status(StatusCode::kCancelled, "client stopping"));
}

void Client::dial() {
  if (stopped_) return;
  ++attempts_;
  std::weak_ptr<bool> alive = alive_;
  options_.dial(loop_, [this, alive](Result<transport::ConnectionPtr> conn) {
    if (alive.expired() || stopped_) {
      if (conn.is_ok()) (*conn)->abort(cancelled("client stopped"));
      return;
    }
    if (!conn.is_ok()) {
      if (options_.on_dial_failed) options_.on_dial_failed(conn.status());
      schedule_retry(conn.status());
      return;
    }
    session_ = Session::client(*conn, options_.handshake, options_.session, this);
    session_->start();
  });
}

void Client::schedule_retry(const Status& why) {
  if (stopped_) return;
  if (!options_.reconnect.enabled ||
      (options_.reconnect.max_attempts > 0 && failures_ + 1 >= options_.reconnect.max_attempts)) {
    gave_up_ = why.is_ok() ? disconnected("connection closed") : why;
    stopped_ = true;
    return;
  }
  auto delay = backoff_delay(options_.reconnect, failures_, rng_);
  ++failures_;
  SLIP_LOG_DEBUG("reconnecting in {} ms after: {}", delay.count(), why.to_string());
  retry_timer_.expires_after(delay);
  std::weak_ptr<bool> alive = alive_;
  retry_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    dial();
  });
}

void Client::on_ready(Session& s) {
  failures_ = 0;
  ++connects_;
  handler_->on_ready(s);
}

StreamHandler* Client::on_stream_open(Session& s, std::uint64_t stream, Priority p) {
  return handler_->on_stream_open(s, stream, p);
}

Status Client::on_frame(Session& s, const wire::Frame& f) { return handler_->on_frame(s, f); }

void Client::on_pong(Session& s, std::int64_t rtt_ns) { handler_->on_pong(s, rtt_ns); }

void Client::on_closed(Session& s, const Status& reason) {
  const bool was_ready = s.ready();
  handler_->on_closed(s, reason);
  session_.reset();  // the session keeps itself alive until this callback returns
  if (was_ready) failures_ = 0;
  schedule_retry(reason.is_ok() ? disconnected("server closed the session") : reason);
}

}  // namespace slip::session
