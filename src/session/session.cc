#include "session/session.h"

#include <algorithm>
#include <limits>

#include "core/clock.h"
#include "core/logging.h"

namespace slip::session {

namespace {

std::size_t class_of(Priority p) { return static_cast<std::size_t>(p); }

// CREDIT is sent once the application took this share of the window, so that a steady reader
// costs one CREDIT per quarter window, not one per chunk. A quarter, not a half: the sender then
// still has three quarters of a window to send while the CREDIT travels, which keeps a
// transport with a longer round trip than TCP's busy (reliable UDP on loopback,
// docs/benchmarks.md).
constexpr std::uint64_t kCreditDivisor = 4;

}  // namespace

Session::Session(Role role, transport::ConnectionPtr conn, const SessionOptions& options, SessionHandler* handler)
    : role_(role),
      conn_(std::move(conn)),
      options_(options),
      handler_(handler),
      handshake_timer_(conn_->loop().context()),
      heartbeat_timer_(conn_->loop().context()),
      drain_timer_(conn_->loop().context()) {
  next_stream_id_ = role == Role::kClient ? 1 : 2;
  interactive_hold_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.interactive_hold).count();
  last_interactive_ns_ = std::numeric_limits<std::int64_t>::min() / 2;
}

Session::~Session() = default;

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

SessionHandler* Session::null_handler() {
  static SessionHandler none;
  return &none;
}

void Session::start() {
  self_ = shared_from_this();
  handshake_timer_.expires_after(options_.handshake_timeout);
  handshake_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->ready_ || self->closed_) return;
    self->fail(timed_out("handshake not finished within " +
                         std::to_string(self->options_.handshake_timeout.count()) + " ms"));
  });
  last_rx_ns_ = mono_now_ns();
  conn_->start(this);
  if (client_hs_) conn_->send(client_hs_->take_output());
}

// ---- Handshake ---------------------------------------------------------------------------

void Session::on_bytes(Slice bytes) {
  if (closed_) return;
  last_rx_ns_ = mono_now_ns();
  if (!ready_) {
    handshake_bytes(std::move(bytes));
    return;
  }
  decoder_->feed(std::move(bytes));
  // With a continuation posted, the new bytes wait behind the frames already read.
  if (!resume_posted_) process_frames();
}

void Session::handshake_bytes(Slice bytes) {
  if (server_hs_) {
    Result<bool> r = server_hs_->feed(std::move(bytes));
    Chain out = server_hs_->take_output();
    if (!out.empty()) conn_->send(std::move(out));
    if (!r.is_ok()) {
      SLIP_LOG_INFO("connection from {} refused: {}", conn_->peer_address(), r.status().to_string());
      closed_ = true;
      auth_alive_.reset();
      conn_->close();
      return;
    }
    if (*r) {
      become_ready(server_hs_->negotiated(), std::move(server_hs_->decoder()));
      return;
    }
    if (!server_hs_->authenticating()) return;
    if (!auth_started_) {
      start_authentication();
      if (closed_ || ready_) return;
    }
    // Frames pipelined behind HELLO wait for the verdict (protocol.md, section 5); past the bound
    // the kernel holds the rest and the client stalls.
    if (!reading_paused_ && server_hs_ && server_hs_->decoder().buffered() >= options_.max_pipelined_bytes) {
      reading_paused_ = true;
      conn_->pause_reading();
    }
    return;
  }
  Result<bool> r = client_hs_->feed(std::move(bytes));
  if (!r.is_ok()) {
    abort(r.status());
    return;
  }
  if (*r) become_ready(client_hs_->negotiated(), std::move(client_hs_->decoder()));
}

void Session::start_authentication() {
  auth_started_ = true;
  auth_alive_ = std::make_shared<char>(0);
  wire::AuthDone done = [weak = weak_from_this(), loop = &conn_->loop()](wire::AuthVerdict v) {
    loop->post([weak, v = std::move(v)]() mutable {
      if (auto self = weak.lock()) self->on_auth_verdict(std::move(v));
    });
  };
  std::optional<wire::AuthVerdict> now =
      server_hs_->config().authenticate_async(server_hs_->pending_hello(), auth_alive_, std::move(done));
  if (now) on_auth_verdict(std::move(*now));
}

void Session::on_auth_verdict(wire::AuthVerdict verdict) {
  if (closed_ || ready_ || !server_hs_ || !server_hs_->authenticating()) return;
  auth_alive_.reset();
  Result<bool> r = server_hs_->finish_authentication(std::move(verdict));
  Chain out = server_hs_->take_output();
  if (!out.empty()) conn_->send(std::move(out));
  if (!r.is_ok()) {
    SLIP_LOG_INFO("connection from {} refused: {}", conn_->peer_address(), r.status().to_string());
    closed_ = true;
    conn_->close();
    return;
  }
  if (reading_paused_) {
    reading_paused_ = false;
    conn_->resume_reading();
  }
  if (*r) become_ready(server_hs_->negotiated(), std::move(server_hs_->decoder()));
}

void Session::become_ready(const wire::Negotiated& n, wire::FrameDecoder&& decoder) {
  negotiated_ = n;
  decoder_.emplace(std::move(decoder));
  conn_send_window_ = n.peer_connection_credit;
  conn_recv_window_ = n.connection_credit;
  // A chunk plus its frame header must fit the peer's frame limit.
  chunk_size_ = std::max<std::size_t>(
      1, std::min<std::size_t>(options_.chunk_size, n.peer_max_frame_size - wire::kMaxFrameHeaderSize - 10));
  compress::CompressOptions co = options_.compression;
  co.codecs &= n.codecs;
  compressor_.emplace(co);
  decompressor_.emplace(n.codecs);
  ready_ = true;
  handshake_timer_.cancel();
  server_hs_.reset();
  client_hs_.reset();
  arm_heartbeat();
  handler_->on_ready(*this);
  if (!closed_) process_frames();
}

// ---- Receiving ---------------------------------------------------------------------------

void Session::process_frames() {
  wire::Frame f;
  std::size_t handled = 0;
  while (!closed_) {
    if (handled == options_.frames_per_turn && handled > 0) {
      handled = 0;
      const std::uint64_t before = stats_.flushes;
      flush();
      if (stats_.flushes != before && !closed_) {
        // Our answers so far are with the transport, whose write runs before this continuation.
        ++stats_.turns_yielded;
        resume_posted_ = true;
        conn_->loop().post([self = shared_from_this()] {
          self->resume_posted_ = false;
          if (!self->closed_) self->process_frames();
        });
        return;
      }
    }
    ++handled;
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

Status Session::handle(wire::Frame& f) {
  using wire::FrameType;
  switch (f.type) {
    case FrameType::kData:
      return on_data(f);
    case FrameType::kCredit: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      return on_credit(std::get<wire::Credit>(any));
    }
    case FrameType::kReset: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& r = std::get<wire::Reset>(any);
      on_peer_reset(r.stream_id, Status(r.code == StatusCode::kOk ? StatusCode::kUnknown : r.code,
                                        "stream reset by peer: " + std::string(r.message)));
      return Status();
    }
    case FrameType::kPing: {
      SLIP_ASSIGN_OR_RETURN(wire::Ping p, wire::decode_ping(f));
      ++stats_.pings_answered;
      send_frame(wire::Pong{p.opaque});
      return Status();
    }
    case FrameType::kPong: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& pong = std::get<wire::Pong>(any);
      // Heartbeat PINGs carry 0; only ours from ping() carry a send time.
      if (pong.opaque != 0) handler_->on_pong(*this, mono_now_ns() - static_cast<std::int64_t>(pong.opaque));
      return Status();
    }
    case FrameType::kGoAway: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& g = std::get<wire::GoAway>(any);
      SLIP_LOG_DEBUG("peer {} is going away: {}", conn_->peer_address(), g.message);
      peer_going_away_ = true;
      // Streams we opened that the peer will not serve are abandoned now.
      std::vector<std::uint64_t> refused;
      for (auto& [id, s] : streams_) {
        if (local_stream(id) && id > g.last_stream_id && !s->open_sent) refused.push_back(id);
      }
      for (std::uint64_t id : refused) {
        Status reason = disconnected("peer is going away: " + std::string(g.message));
        remove_stream(id, &reason);
      }
      maybe_finish_drain();
      return Status();
    }
    case FrameType::kError: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
      const auto& e = std::get<wire::ErrorFrame>(any);
      Status reason(e.code == StatusCode::kOk ? StatusCode::kUnknown : e.code,
                    "peer closed the connection: " + std::string(e.message));
      if (e.stream_id == 0) {
        abort(reason);
        return Status();
      }
      on_peer_reset(e.stream_id, reason);
      return Status();
    }
    case FrameType::kCall:
      return on_call_frame(f);
    case FrameType::kHello:
    case FrameType::kWelcome:
      return invalid_argument(std::string(wire::frame_type_name(f.type)) + " after the handshake");
    default:
      if (wire::is_extension_frame_type(static_cast<std::uint8_t>(f.type))) return Status();  // skipped
      return handler_->on_frame(*this, f);
  }
}

Status Session::on_data(wire::Frame& f) {
  SLIP_ASSIGN_OR_RETURN(wire::Data d, wire::decode_data(std::move(f)));
  const std::size_t n = d.payload.size();
  ++stats_.chunks_in[class_of(d.priority())];
  if (static_cast<std::int64_t>(n) > conn_recv_window_) {
    return overloaded("peer exceeded the connection flow-control window");
  }
  conn_recv_window_ -= static_cast<std::int64_t>(n);
  if (d.codec() != wire::Codec::kNone && (negotiated_.codecs & (1u << static_cast<unsigned>(d.codec()))) == 0) {
    return invalid_argument("DATA frame: codec was not negotiated");
  }

  Stream* s = find(d.stream_id);
  if (s == nullptr) {
    // Only a stream's first frame carries OPEN; streams open in the order the peer's scheduler
    // sends them, not in id order. Anything else for an unknown id belongs to a stream that
    // already finished or was reset: its bytes still count, and their credit goes straight back.
    if (!d.open()) {
      credit_connection(n);
      return Status();
    }
    if (local_stream(d.stream_id)) {
      return invalid_argument("DATA frame: stream " + std::to_string(d.stream_id) + " opened with our parity");
    }
    last_peer_stream_ = std::max(last_peer_stream_, d.stream_id);
    if (going_away_) {
      send_frame(wire::Reset{d.stream_id, StatusCode::kDisconnected, "going away: no new streams"});
      credit_connection(n);
      return Status();
    }
    if (streams_.size() >= options_.max_streams) {
      send_frame(wire::Reset{d.stream_id, StatusCode::kOverloaded, "too many streams"});
      credit_connection(n);
      return Status();
    }
    StreamHandler* h = handler_->on_stream_open(*this, d.stream_id, d.priority());
    if (closed_) return Status();
    if (h == nullptr) {
      send_frame(wire::Reset{d.stream_id, StatusCode::kUnimplemented, "stream refused"});
      credit_connection(n);
      return Status();
    }
    s = &add_stream(d.stream_id, d.priority(), h);
    ++stats_.streams_opened;
  }
  if (s->remote_ended) return invalid_argument("DATA frame after END_STREAM on stream " + std::to_string(s->id));
  if (class_of(s->priority) <= class_of(Priority::kInteractive)) last_interactive_ns_ = last_rx_ns_;
  if (static_cast<std::int64_t>(n) > s->recv_window) {
    return overloaded("peer exceeded the flow-control window of stream " + std::to_string(s->id));
  }
  s->recv_window -= static_cast<std::int64_t>(n);

  if (s->partial.empty()) s->partial_codec = d.codec();
  if (s->partial.size() + n > options_.max_message_size) {
    credit_connection(n);
    Status reason = overloaded("message on stream " + std::to_string(s->id) + " exceeds max_message_size " +
                               std::to_string(options_.max_message_size));
    reset_stream(s->id, reason);
    return Status();
  }
  s->partial.append(std::move(d.payload));
  const std::uint64_t id = s->id;
  if (!d.more() && (!s->partial.empty() || !d.end_stream())) {
    Chain message = std::move(s->partial);
    s->partial.clear();
    if (s->partial_codec != wire::Codec::kNone) {
      Slice packed = message.flatten();
      Result<Slice> plain = decompressor_->decompress(s->partial_codec, packed, options_.max_message_size);
      if (!plain.is_ok()) return plain.status().with_context("stream " + std::to_string(id));
      message = Chain(std::move(plain).value());
    }
    // The credit for this message's bytes goes back when the application takes it.
    s->held += n;
    deliver(*s, std::move(message));
    s = find(id);
  } else if (d.more() && !s->paused) {
    // Part of a message still arriving: buffered, bounded by max_message_size.
    credit_back(*s, n);
  } else {
    s->held += n;
  }
  if (s != nullptr && d.end_stream()) {
    s->remote_ended = true;
    if (!s->paused) {
      s->handler->on_end(*this, id);
      if (Stream* again = find(id)) maybe_remove(*again);
    }
  }
  return Status();
}

namespace {
// Holds a called stream's place while the application's on_call runs.
class PlaceholderStream final : public StreamHandler {
 public:
  void on_message(Session&, std::uint64_t, Chain) override {}
};
}  // namespace

Status Session::on_call_frame(const wire::Frame& f) {
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, decoder_->limits()));
  const auto& call = std::get<wire::Call>(any);
  const std::uint64_t id = call.stream_id;
  if (local_stream(id)) return invalid_argument("CALL frame: stream " + std::to_string(id) + " has our parity");
  if (find(id) != nullptr) return invalid_argument("CALL frame: stream " + std::to_string(id) + " is already open");
  last_peer_stream_ = std::max(last_peer_stream_, id);
  if (going_away_) {
    send_frame(wire::Reset{id, StatusCode::kDisconnected, "going away: no new streams"});
    return Status();
  }
  if (streams_.size() >= options_.max_streams) {
    send_frame(wire::Reset{id, StatusCode::kOverloaded, "too many streams"});
    return Status();
  }
  static PlaceholderStream placeholder;
  Stream& s = add_stream(id, Priority::kInteractive, &placeholder);
  s.open_sent = true;  // the callee's frames never carry OPEN
  ++stats_.streams_opened;
  Result<StreamHandler*> h = handler_->on_call(*this, call);
  if (!h.is_ok()) {
    close_stream(id);
    return h.status();
  }
  if (Stream* again = find(id)) again->handler = *h != nullptr ? *h : &placeholder;
  return Status();
}

void Session::deliver(Stream& s, Chain message) {
  if (s.paused) {
    s.inbox.push_back(std::move(message));
    return;
  }
  ++stats_.messages_in;
  const std::uint64_t id = s.id;
  const std::uint64_t held = s.held;
  s.held = 0;
  credit_back(s, held);
  s.handler->on_message(*this, id, std::move(message));
}

void Session::credit_back(Stream& s, std::uint64_t n) {
  if (n == 0) return;
  s.unacked += n;
  if (s.unacked >= negotiated_.initial_credit / kCreditDivisor && !s.remote_ended) {
    s.recv_window += static_cast<std::int64_t>(s.unacked);
    send_frame(wire::Credit{s.id, s.unacked});
    s.unacked = 0;
  }
  credit_connection(n);
}

void Session::credit_connection(std::uint64_t n) {
  conn_unacked_ += n;
  if (conn_unacked_ >= negotiated_.connection_credit / kCreditDivisor) {
    conn_recv_window_ += static_cast<std::int64_t>(conn_unacked_);
    send_frame(wire::Credit{0, conn_unacked_});
    conn_unacked_ = 0;
  }
}

Status Session::on_credit(const wire::Credit& c) {
  if (c.stream_id == 0) {
    conn_send_window_ += static_cast<std::int64_t>(c.increment);
    if (conn_send_window_ > (std::int64_t{1} << 40)) return invalid_argument("CREDIT overflows the connection window");
    for (auto& [id, s] : streams_) {
      if (!s->out.empty() && s->send_window > 0) make_ready(*s);
    }
  } else {
    Stream* s = find(c.stream_id);
    if (s == nullptr) return Status();  // a stream that already finished
    s->send_window += static_cast<std::int64_t>(c.increment);
    if (s->send_window > (std::int64_t{1} << 40)) return invalid_argument("CREDIT overflows a stream window");
    if (!s->out.empty()) make_ready(*s);
  }
  pump();
  return Status();
}

void Session::on_peer_reset(std::uint64_t id, const Status& reason) {
  if (find(id) == nullptr) return;
  remove_stream(id, &reason);
}

// ---- Streams -------------------------------------------------------------------------------

Session::Stream* Session::find(std::uint64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

Session::Stream& Session::add_stream(std::uint64_t id, Priority priority, StreamHandler* handler) {
  std::unique_ptr<Stream> s;
  if (spare_streams_.empty()) {
    s = std::make_unique<Stream>();
  } else {
    s = std::move(spare_streams_.back());
    spare_streams_.pop_back();
  }
  s->id = id;
  s->priority = priority;
  s->handler = handler;
  s->send_window = negotiated_.peer_initial_credit;
  s->recv_window = negotiated_.initial_credit;
  Stream& ref = *s;
  streams_.emplace(id, std::move(s));
  return ref;
}

void Session::remove_stream(std::uint64_t id, const Status* reset_reason) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  std::unique_ptr<Stream> s = std::move(it->second);
  streams_.erase(it);
  stats_.send_buffered -= s->out_bytes;
  // Bytes received and never handed over go back to the connection window.
  // (Chunks of an unfinished message were credited as they came, unless the stream was paused.)
  if (ready_ && !closed_) credit_connection(s->held);
  if (reset_reason) s->handler->on_reset(*this, id, *reset_reason);
  if (spare_streams_.size() < kSpareStreams) {
    static_cast<StreamState&>(*s) = StreamState{};
    s->out.clear();
    s->inbox.clear();
    spare_streams_.push_back(std::move(s));
  }
  maybe_finish_drain();
}

void Session::maybe_remove(Stream& s) {
  if (s.trailers_sent || (s.end_sent && s.remote_ended && s.out.empty() && s.inbox.empty())) {
    remove_stream(s.id, nullptr);
  }
}

Result<std::uint64_t> Session::open_stream(Priority priority, StreamHandler* handler) {
  if (!ready_) return failed_precondition("session is not ready");
  if (closed_) return disconnected("session is closed");
  if (going_away()) return disconnected("session is going away");
  if (streams_.size() >= options_.max_streams) {
    return overloaded("too many open streams (max_streams " + std::to_string(options_.max_streams) + ")");
  }
  const std::uint64_t id = next_stream_id_;
  next_stream_id_ += 2;
  add_stream(id, priority, handler);
  return id;
}

// TODO(perf): a 64 B message costs three hash lookups of its stream (here, in pump, after
// emit_chunk) and a deque node every three messages; a stream handle and a ring of OutMessages
// would remove both (perf: ~25% of the sending loop at 7 M msgs/s).
Status Session::send(std::uint64_t stream, Chain message, bool end) {
  if (closed_) return disconnected("session is closed");
  Stream* s = find(stream);
  if (s == nullptr) return not_found("no open stream " + std::to_string(stream));
  if (s->local_ended) return failed_precondition("stream " + std::to_string(stream) + " already ended");
  // A stream with nothing queued may always queue one message, so that a huge transfer on one
  // stream never blocks a small call on another at this point either.
  if (s->out_bytes >= options_.max_stream_buffer ||
      (s->out_bytes > 0 && stats_.send_buffered >= options_.max_session_buffer)) {
    s->overloaded = true;
    s->writable_at = options_.max_stream_buffer / 2;
    return overloaded("send buffer full on stream " + std::to_string(stream) + " (" +
                      std::to_string(s->out_bytes) + " bytes queued): the peer is not reading");
  }
  OutMessage m;
  m.end = end;
  const compress::CompressOptions* co = compressor_ ? &compressor_->options() : nullptr;
  if (co && co->codecs != 0 && message.size() >= co->min_size) {
    Result<compress::CompressedMessage> c = compressor_->compress(message);
    if (c.is_ok()) {
      m.codec = c->codec;
      m.bytes = std::move(c->bytes);
    } else {
      m.bytes = std::move(message);  // compression failure: send raw
    }
  } else {
    m.bytes = std::move(message);
  }
  s->out_bytes += m.bytes.size();
  stats_.send_buffered += m.bytes.size();
  stats_.send_buffered_max = std::max(stats_.send_buffered_max, stats_.send_buffered);
  s->out.push_back(std::move(m));
  if (end) s->local_ended = true;
  ++stats_.messages_out;
  // A stream already waiting for credit is queued again by the CREDIT that refills it, not by
  // every send.
  if (s->send_window > 0 || s->out.size() == 1) make_ready(*s);
  pump();
  return Status();
}

Result<std::uint64_t> Session::open_call(wire::Call call, StreamHandler* handler) {
  SLIP_ASSIGN_OR_RETURN(std::uint64_t id, open_stream(Priority::kInteractive, handler));
  find(id)->open_sent = true;
  call.stream_id = id;
  send_frame(call);
  return id;
}

Status Session::send_trailers(std::uint64_t stream, StatusCode code, std::string message,
                              std::vector<std::pair<std::string, std::string>> metadata) {
  if (closed_) return disconnected("session is closed");
  Stream* s = find(stream);
  if (s == nullptr) return not_found("no open stream " + std::to_string(stream));
  if (s->local_ended) return failed_precondition("stream " + std::to_string(stream) + " already ended");
  s->local_ended = true;
  OutMessage m;
  m.trailers = std::make_unique<OutTrailers>(OutTrailers{code, std::move(message), std::move(metadata)});
  s->out.push_back(std::move(m));
  make_ready(*s);
  pump();
  return Status();
}

void Session::close_stream(std::uint64_t stream) { remove_stream(stream, nullptr); }

namespace {
// Stands in for a handler that has gone: drops everything.
class DetachedStream final : public StreamHandler {
 public:
  void on_message(Session&, std::uint64_t, Chain) override {}
};
}  // namespace

void Session::detach_stream(std::uint64_t stream) {
  static DetachedStream detached;
  if (Stream* s = find(stream)) s->handler = &detached;
}

Status Session::end_stream(std::uint64_t stream) {
  Stream* s = find(stream);
  if (s == nullptr) return not_found("no open stream " + std::to_string(stream));
  if (s->local_ended) return Status();
  s->local_ended = true;
  OutMessage m;
  m.end = true;
  s->out.push_back(std::move(m));
  make_ready(*s);
  pump();
  return Status();
}

void Session::reset_stream(std::uint64_t stream, const Status& reason) {
  if (find(stream) == nullptr) return;
  std::string msg(reason.message());
  send_frame(wire::Reset{stream, reason.code() == StatusCode::kOk ? StatusCode::kCancelled : reason.code(), msg});
  remove_stream(stream, &reason);
}

void Session::pause_stream(std::uint64_t stream) {
  if (Stream* s = find(stream)) s->paused = true;
}

void Session::resume_stream(std::uint64_t stream) {
  Stream* s = find(stream);
  if (s == nullptr || !s->paused) return;
  s->paused = false;
  while (Stream* again = find(stream)) {
    if (again->paused || again->inbox.empty()) break;
    Chain m = std::move(again->inbox.front());
    again->inbox.pop_front();
    deliver(*again, std::move(m));
  }
  Stream* s2 = find(stream);
  if (s2 == nullptr || s2->paused) return;
  if (s2->held > 0) {
    const std::uint64_t held = s2->held;
    s2->held = 0;
    credit_back(*s2, held);
  }
  if (s2->remote_ended && s2->inbox.empty()) {
    s2->handler->on_end(*this, stream);
    if (Stream* again = find(stream)) maybe_remove(*again);
  }
}

void Session::watch_writable(std::uint64_t stream, std::size_t at_most) {
  Stream* s = find(stream);
  if (s == nullptr || closed_) return;
  if (s->out_bytes <= at_most) {
    conn_->loop().post([weak = weak_from_this(), stream] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (Stream* st = self->find(stream)) st->handler->on_writable(*self, stream);
    });
    return;
  }
  s->overloaded = true;  // emit_chunk tells on_writable when it drains
  s->writable_at = at_most;
}

std::size_t Session::stream_buffered(std::uint64_t stream) const {
  auto it = streams_.find(stream);
  return it == streams_.end() ? 0 : it->second->out_bytes;
}

// ---- Scheduling ----------------------------------------------------------------------------

void Session::make_ready(Stream& s) {
  if (s.queued || s.out.empty()) return;
  s.queued = true;
  sendable_[class_of(s.priority)].push_back(s.id);
}

void Session::pump() {
  if (!ready_ || closed_ || in_pump_) return;
  in_pump_ = true;
  bool emitted = false;
  // Stream and bulk chunks may fill the transport up to `low_limit` only; worked out (with a
  // clock read) the first time such a chunk is up.
  constexpr std::size_t kUnknown = std::numeric_limits<std::size_t>::max();
  std::size_t low_limit = kUnknown;
  while (true) {
    const std::size_t queued = conn_->queued_bytes() + encoder_.pending_bytes();
    if (queued >= options_.send_high_water) break;
    // Control streams strictly first; then the weighted classes, each spending its picks for
    // this round; a new round starts when every class with work has spent its picks.
    std::size_t cls = kPriorityClasses;
    if (!sendable_[0].empty()) {
      cls = 0;
    } else {
      for (int attempt = 0; attempt < 2 && cls == kPriorityClasses; ++attempt) {
        for (std::size_t c = 1; c < kPriorityClasses; ++c) {
          if (!sendable_[c].empty() && round_[c] > 0) {
            cls = c;
            break;
          }
        }
        if (cls == kPriorityClasses) {
          bool any = false;
          for (std::size_t c = 1; c < kPriorityClasses; ++c) any |= !sendable_[c].empty();
          if (!any) break;
          for (std::size_t c = 1; c < kPriorityClasses; ++c) round_[c] = std::max<std::uint32_t>(1, options_.weights[c]);
        }
      }
    }
    if (cls == kPriorityClasses) break;
    if (cls > class_of(Priority::kInteractive) && low_limit == kUnknown) low_limit = bulk_limit();
    if (cls > class_of(Priority::kInteractive) && queued > 0 && queued >= low_limit) {
      // Interactive streams may still have picks left in this round: only they go now.
      if (sendable_[class_of(Priority::kInteractive)].empty()) {
        ++stats_.bulk_held;
        break;
      }
      cls = class_of(Priority::kInteractive);
    }
    const std::uint64_t id = sendable_[cls].front();
    sendable_[cls].pop_front();
    Stream* s = find(id);
    if (s == nullptr) continue;
    s->queued = false;
    if (!emit_chunk(*s)) {
      // No credit: the stream waits for CREDIT; if the connection window is the limit, stop.
      ++stats_.credit_stalls;
      if (conn_send_window_ <= 0) {
        s->queued = true;
        sendable_[cls].push_front(id);
        break;
      }
      continue;
    }
    emitted = true;
    if (cls != 0 && round_[cls] > 0) --round_[cls];
    if (Stream* again = find(id)) {
      if (!again->out.empty()) make_ready(*again);
      maybe_remove(*again);
    }
  }
  in_pump_ = false;
  if (emitted) flush_soon();
  if (going_away()) maybe_finish_drain();
}

std::size_t Session::bulk_limit() {
  if (options_.bulk_high_water >= options_.send_high_water) return options_.send_high_water;
  const std::int64_t now = mono_now_ns();
  if (interactive_unstamped_) {
    interactive_unstamped_ = false;
    last_interactive_ns_ = now;
  }
  return now - last_interactive_ns_ < interactive_hold_ns_ ? options_.bulk_high_water : options_.send_high_water;
}

bool Session::emit_chunk(Stream& s) {
  OutMessage& m = s.out.front();
  if (m.trailers) {
    wire::Trailers t;
    t.stream_id = s.id;
    t.code = m.trailers->code;
    t.message = m.trailers->message;
    for (const auto& [k, v] : m.trailers->metadata) t.metadata.emplace_back(k, v);
    encoder_.add(t);
    s.trailers_sent = true;
    s.end_sent = true;
    s.out.pop_front();
    return true;
  }
  const std::size_t left = m.bytes.size();
  std::size_t n = std::min(left, chunk_size_);
  if (n > 0) {
    const std::int64_t window = std::min(s.send_window, conn_send_window_);
    if (window <= 0) return false;
    n = std::min<std::size_t>(n, static_cast<std::size_t>(window));
  }
  wire::Data d;
  d.stream_id = s.id;
  d.payload = m.bytes.take_front(n);
  const bool last = m.bytes.empty();
  std::uint8_t flags = static_cast<std::uint8_t>(static_cast<unsigned>(m.codec) << wire::data_flags::kCodecShift);
  if (!s.open_sent) {
    flags |= wire::data_flags::kOpen |
             static_cast<std::uint8_t>(static_cast<unsigned>(s.priority) << wire::data_flags::kPriorityShift);
    s.open_sent = true;
  }
  if (!last) flags |= wire::data_flags::kMore;
  if (last && m.end) {
    flags |= wire::data_flags::kEndStream;
    s.end_sent = true;
  }
  d.flags = flags;
  encoder_.add(d);
  s.send_window -= static_cast<std::int64_t>(n);
  conn_send_window_ -= static_cast<std::int64_t>(n);
  s.out_bytes -= n;
  stats_.send_buffered -= n;
  ++stats_.chunks_out[class_of(s.priority)];
  if (class_of(s.priority) <= class_of(Priority::kInteractive)) interactive_unstamped_ = true;
  if (last) s.out.pop_front();
  if (s.overloaded && s.out_bytes <= s.writable_at) {
    s.overloaded = false;
    const std::uint64_t id = s.id;
    conn_->loop().post([weak = weak_from_this(), id] {
      auto self = weak.lock();
      if (!self || self->closed_) return;
      if (Stream* st = self->find(id)) st->handler->on_writable(*self, id);
    });
  }
  return true;
}

void Session::on_send_drained() {
  pump();
  if (!closed_ && ready_ && handler_ != nullptr) handler_->on_send_drained(*this);
}

void Session::flush_soon() {
  if (flush_posted_) return;
  flush_posted_ = true;
  conn_->loop().post([self = shared_from_this()] { self->flush(); });
}

void Session::flush() {
  flush_posted_ = false;
  if (closed_) return;
  pump();
  if (encoder_.pending_bytes() > 0) {
    ++stats_.flushes;
    conn_->send(encoder_.take());
  }
}

// ---- Heartbeats, shutdown ------------------------------------------------------------------

void Session::arm_heartbeat() {
  if (negotiated_.heartbeat_ms == 0 && options_.idle_timeout.count() == 0) return;
  const auto interval = std::chrono::milliseconds(negotiated_.heartbeat_ms ? negotiated_.heartbeat_ms : 1000);
  heartbeat_timer_.expires_after(interval);
  heartbeat_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_) return;
    self->on_heartbeat();
  });
}

void Session::on_heartbeat() {
  const std::int64_t hb_ns = std::int64_t{negotiated_.heartbeat_ms} * 1000000;
  const std::int64_t idle_ns = options_.idle_timeout.count() > 0
                                   ? std::chrono::duration_cast<std::chrono::nanoseconds>(options_.idle_timeout).count()
                                   : 3 * hb_ns;
  const std::int64_t quiet = mono_now_ns() - last_rx_ns_;
  if (idle_ns > 0 && quiet >= idle_ns) {
    fail(timed_out("peer " + conn_->peer_address() + " sent nothing for " + std::to_string(quiet / 1000000) +
                   " ms (heartbeat timeout)"));
    return;
  }
  if (hb_ns > 0 && quiet >= hb_ns) send_frame(wire::Ping{0});
  arm_heartbeat();
}

void Session::ping() { send_frame(wire::Ping{static_cast<std::uint64_t>(std::max<std::int64_t>(1, mono_now_ns()))}); }

void Session::go_away(const Status& reason) {
  if (closed_) return;
  if (!ready_) {
    abort(reason);
    return;
  }
  if (!going_away_) {
    going_away_ = true;
    std::string msg(reason.message());
    encoder_.add(wire::GoAway{last_peer_stream_, reason.code(), msg});
    flush_soon();
    drain_timer_.expires_after(options_.drain_timeout);
    drain_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->closed_) return;
      SLIP_LOG_INFO("closing {} with {} streams still open after the drain timeout", self->conn_->peer_address(),
                    self->streams_.size());
      self->close_all_streams(disconnected("drain timeout"));
      self->flush();
      self->closed_ = true;
      self->conn_->close();
    });
  }
  maybe_finish_drain();
}

void Session::maybe_finish_drain() {
  if (closed_ || !going_away() || !streams_.empty()) return;
  if (in_pump_) return;
  // Everything finished: write what is queued, then close.
  conn_->loop().post([self = shared_from_this()] {
    if (self->closed_ || !self->streams_.empty()) return;
    self->flush();
    self->closed_ = true;
    self->drain_timer_.cancel();
    self->conn_->close();
  });
}

void Session::close_all_streams(const Status& reason) {
  std::vector<std::uint64_t> ids;
  ids.reserve(streams_.size());
  for (auto& [id, s] : streams_) ids.push_back(id);
  for (std::uint64_t id : ids) remove_stream(id, &reason);
  for (auto& q : sendable_) q.clear();
}

void Session::fail(const Status& reason) {
  if (closed_) return;
  close_reason_ = reason;
  auth_alive_.reset();
  SLIP_LOG_INFO("closing connection with {}: {}", conn_->peer_address(), reason.to_string());
  std::string msg(reason.message());
  if (!ready_ && role_ == Role::kServer) encoder_.add_preface();  // the client still waits for one
  encoder_.add(wire::ErrorFrame{0, reason.code(), msg});
  closed_ = true;
  conn_->send(encoder_.take());
  conn_->close();
  close_all_streams(reason);
}

void Session::abort(const Status& reason) {
  // Even when already closing: a graceful close may be waiting on a peer that does not read.
  conn_->abort(reason);
  if (closed_) return;
  close_reason_ = reason;
  closed_ = true;
  auth_alive_.reset();
  close_all_streams(reason);
}

void Session::on_closed(Status reason) {
  closed_ = true;
  auth_alive_.reset();
  if (!close_reason_.is_ok()) reason = close_reason_;  // why we closed it, rather than how it went
  handshake_timer_.cancel();
  heartbeat_timer_.cancel();
  drain_timer_.cancel();
  if (!streams_.empty()) close_all_streams(reason.is_ok() ? disconnected("session closed") : reason);
  auto keep = std::move(self_);  // released when this call returns
  handler_->on_closed(*this, reason);
}

}  // namespace slip::session
