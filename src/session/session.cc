#include "session/session.h"

#include "core/clock.h"
#include "core/logging.h"

namespace slip::session {

Session::Session(Role role, transport::ConnectionPtr conn, const SessionOptions& options, SessionHandler* handler)
    : role_(role),
      conn_(std::move(conn)),
      options_(options),
      handler_(handler),
      handshake_timer_(conn_->loop().context()) {}

std::shared_ptr<Session> Session::server(transport::ConnectionPtr conn, const wire::ServerHandshakeConfig& config,
                                         std::uint64_t connection_id, const SessionOptions& options,
                                         SessionHandler* handler) {
  std::shared_ptr<Session> s(new Session(Role::kServer, std::move(conn), options, handler));
  s->server_hs_.emplace(config, connection_id, options.limits);
  return s;
}

std::shared_ptr<Session> Session::client(transport::ConnectionPtr conn, const wire::ClientHandshakeConfig& config,
                                         const SessionOptions& options, SessionHandler* handler) {
  std::shared_ptr<Session> s(new Session(Role::kClient, std::move(conn), options, handler));
  s->client_hs_.emplace(config, options.limits);
  return s;
}

void Session::start() {
  handshake_timer_.expires_after(options_.handshake_timeout);
  handshake_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->ready_ || self->closed_) return;
    self->fail(timed_out("handshake not finished within " +
                         std::to_string(self->options_.handshake_timeout.count()) + " ms"));
  });
  conn_->start(this);
  if (client_hs_) conn_->send(client_hs_->take_output());
}

void Session::on_bytes(Slice bytes) {
  if (closed_) return;
  if (!ready_) {
    handshake_bytes(std::move(bytes));
    return;
  }
  decoder_->feed(std::move(bytes));
  process_frames();
}

void Session::handshake_bytes(Slice bytes) {
  if (server_hs_) {
    Result<bool> r = server_hs_->feed(std::move(bytes));
    Chain out = server_hs_->take_output();
    if (!out.empty()) conn_->send(std::move(out));
    if (!r.is_ok()) {
      SLIP_LOG_INFO("connection {} from {} refused: {}", server_hs_->negotiated().connection_id,
                    conn_->peer_address(), r.status().to_string());
      closed_ = true;
      conn_->close();
      return;
    }
    if (*r) become_ready(server_hs_->negotiated(), std::move(server_hs_->decoder()));
    return;
  }
  Result<bool> r = client_hs_->feed(std::move(bytes));
  if (!r.is_ok()) {
    abort(r.status());
    return;
  }
  if (*r) become_ready(client_hs_->negotiated(), std::move(client_hs_->decoder()));
}

void Session::become_ready(const wire::Negotiated& n, wire::FrameDecoder&& decoder) {
  negotiated_ = n;
  decoder_.emplace(std::move(decoder));
  ready_ = true;
  handshake_timer_.cancel();
  server_hs_.reset();
  client_hs_.reset();
  handler_->on_ready(*this);
  process_frames();
}

void Session::process_frames() {
  wire::Frame f;
  while (!closed_) {
    Result<bool> got = decoder_->next(f);
    if (!got.is_ok()) {
      fail(got.status());
      return;
    }
    if (!*got) return;
    ++stats_.frames_in;
    Status s = handle(f);
    if (!s.is_ok()) {
      fail(s);
      return;
    }
  }
}

Status Session::handle(const wire::Frame& f) {
  using wire::FrameType;
  switch (f.type) {
    case FrameType::kPing: {
      SLIP_ASSIGN_OR_RETURN(wire::Ping p, wire::decode_ping(f));
      ++stats_.pings_answered;
      send(wire::Pong{p.opaque});
      return Status();
    }
    case FrameType::kPong: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& pong = std::get<wire::Pong>(any);
      handler_->on_pong(*this, mono_now_ns() - static_cast<std::int64_t>(pong.opaque));
      return Status();
    }
    case FrameType::kGoAway: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& g = std::get<wire::GoAway>(any);
      SLIP_LOG_DEBUG("peer {} is going away: {}", conn_->peer_address(), g.message);
      closing_after_flush_ = true;
      flush_soon();
      return Status();
    }
    case FrameType::kError: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& e = std::get<wire::ErrorFrame>(any);
      if (e.stream_id == 0) {
        abort(Status(e.code == StatusCode::kOk ? StatusCode::kUnknown : e.code,
                     "peer closed the connection: " + std::string(e.message)));
        return Status();
      }
      return handler_->on_frame(*this, f);
    }
    case FrameType::kHello:
    case FrameType::kWelcome:
      return invalid_argument(std::string(wire::frame_type_name(f.type)) + " after the handshake");
    default:
      if (wire::is_extension_frame_type(static_cast<std::uint8_t>(f.type))) return Status();  // skipped
      return handler_->on_frame(*this, f);
  }
}

void Session::ping() { send(wire::Ping{static_cast<std::uint64_t>(mono_now_ns())}); }

void Session::go_away(const Status& reason) {
  if (closed_) return;
  if (ready_) {
    std::string msg(reason.message());
    encoder_.add(wire::GoAway{0, reason.code(), msg});
  }
  closing_after_flush_ = true;
  flush_soon();
}

void Session::fail(const Status& reason) {
  if (closed_) return;
  SLIP_LOG_INFO("closing connection from {}: {}", conn_->peer_address(), reason.to_string());
  std::string msg(reason.message());
  if (!ready_ && role_ == Role::kServer) encoder_.add_preface();  // the client still waits for one
  encoder_.add(wire::ErrorFrame{0, reason.code(), msg});
  closed_ = true;
  conn_->send(encoder_.take());
  conn_->close();
}

void Session::abort(const Status& reason) {
  if (closed_) return;
  closed_ = true;
  conn_->abort(reason);
}

void Session::flush_soon() {
  if (flush_posted_) return;
  flush_posted_ = true;
  conn_->loop().post([self = shared_from_this()] { self->flush(); });
}

void Session::flush() {
  flush_posted_ = false;
  if (closed_) return;
  if (encoder_.pending_bytes() > 0) {
    ++stats_.frames_out_batches;
    conn_->send(encoder_.take());
  }
  if (closing_after_flush_) {
    closed_ = true;
    conn_->close();
  }
}

void Session::on_closed(Status reason) {
  closed_ = true;
  handshake_timer_.cancel();
  handler_->on_closed(*this, reason);
}

}  // namespace slip::session
