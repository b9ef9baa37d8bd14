#include "rpc/channel.h"

#include <future>

#include "core/logging.h"
#include "core/recycle.h"

namespace slip::rpc {

// ---- ClientCall ----------------------------------------------------------------------------

ClientCall::ClientCall(Channel& channel, std::string method, CallOptions options, CallCallbacks callbacks)
    : channel_(channel),
      method_(std::move(method)),
      options_(std::move(options)),
      callbacks_(std::move(callbacks)),
      timer_(channel.loop().context()) {}

ClientCall::~ClientCall() = default;

void ClientCall::write(std::string message) {
  channel_.loop().post([self = shared_from_this(), m = std::move(message)]() mutable {
    if (self->done_ || self->half_close_) return;
    if (self->stream_ == 0) {
      self->unsent_.push_back(std::move(m));
      return;
    }
    auto s = self->session_.lock();
    if (!s) return;
    Status st = s->send(self->stream_, Chain(Slice::from_string(std::move(m))));
    if (!st.is_ok()) SLIP_LOG_DEBUG("rpc {}: request not sent: {}", self->method_, st.to_string());
  });
}

void ClientCall::writes_done() {
  channel_.loop().post([self = shared_from_this()] {
    if (self->done_ || self->half_close_) return;
    self->half_close_ = true;
    if (self->stream_ == 0) return;
    if (auto s = self->session_.lock()) (void)s->end_stream(self->stream_);
  });
}

void ClientCall::cancel() {
  channel_.loop().post([self = shared_from_this()] { self->give_up(StatusCode::kCancelled, "cancelled by the caller"); });
}

void ClientCall::set_read_paused(bool paused) {
  want_read_paused_.store(paused, std::memory_order_release);
  channel_.loop().post([self = shared_from_this()] { self->apply_read_paused(); });
}

void ClientCall::apply_read_paused() {
  const bool paused = want_read_paused_.load(std::memory_order_acquire);
  if (read_paused_ == paused) return;
  read_paused_ = paused;
  if (done_ || stream_ == 0) return;
  auto s = session_.lock();
  if (!s || s->closed()) return;
  if (paused) {
    s->pause_stream(stream_);
    return;
  }
  s->resume_stream(stream_);
  if (pending_end_ && !done_ && !read_paused_) {
    auto end = std::move(*pending_end_);
    pending_end_.reset();
    channel_.calls_.erase(stream_);
    s->close_stream(stream_);
    complete(end.first, end.second);
  }
}

void ClientCall::give_up(StatusCode code, const std::string& why) {
  if (done_) return;
  if (stream_ != 0) {
    if (auto s = session_.lock(); s && !s->closed()) {
      s->send_frame(wire::Cancel{stream_, code});
      s->close_stream(stream_);
    }
    channel_.calls_.erase(stream_);
  }
  complete(Status(code, why), {});
}

void ClientCall::begin() {
  // The clock only when it is needed: a read costs ~250 ns on these VMs.
  deadline_ = options_.timeout.count() > 0 ? options_.effective_deadline(std::chrono::steady_clock::now())
                                           : options_.deadline;
  if (deadline_ != std::chrono::steady_clock::time_point::max()) {
    timer_.expires_at(deadline_);
    timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      self->give_up(StatusCode::kTimeout, "deadline exceeded");
    });
  }
}

void ClientCall::open(session::Session& s) {
  if (done_) return;
  wire::Call call;
  call.method = method_;
  if (deadline_ != std::chrono::steady_clock::time_point::max()) {
    const auto left =
        std::chrono::duration_cast<std::chrono::microseconds>(deadline_ - std::chrono::steady_clock::now()).count();
    call.timeout_us = static_cast<std::uint64_t>(std::max<std::int64_t>(1, left));
  }
  call.metadata = to_wire(options_.metadata);
  Result<std::uint64_t> id = s.open_call(call, this);
  if (!id.is_ok()) {
    complete(id.status(), {});
    return;
  }
  stream_ = *id;
  session_ = s.weak_from_this();
  channel_.calls_[stream_] = shared_from_this();
  if (read_paused_) s.pause_stream(stream_);
  // A unary call's request carries END_STREAM itself (one DATA frame, not two), unless it is
  // empty: an empty DATA frame with END_STREAM is the end alone.
  bool ended = false;
  for (std::size_t i = 0; i < unsent_.size(); ++i) {
    ended = half_close_ && i + 1 == unsent_.size() && !unsent_[i].empty();
    (void)s.send(stream_, Chain(Slice::from_string(std::move(unsent_[i]))), ended);
  }
  if (half_close_ && !ended) (void)s.end_stream(stream_);
  unsent_.clear();
}

void ClientCall::complete(const Status& status, const Metadata& trailers) {
  if (done_) return;
  done_ = true;
  timer_.cancel();
  auto cb = std::move(callbacks_.on_done);
  callbacks_ = {};
  if (cb) cb(status, trailers);
}

void ClientCall::on_message(session::Session&, std::uint64_t, Chain message) {
  if (done_) return;
  if (callbacks_.on_message_bytes) {
    callbacks_.on_message_bytes(message.flatten());
  } else if (callbacks_.on_message) {
    callbacks_.on_message(message.to_string());
  }
}

void ClientCall::on_reset(session::Session&, std::uint64_t stream, const Status& reason) {
  auto self = shared_from_this();
  channel_.calls_.erase(stream);
  complete(reason, {});
}

// ---- Channel -------------------------------------------------------------------------------

namespace {
io::LoopOptions own_loop_options(const ChannelOptions& o) {
  io::LoopOptions lo = o.loop;
  lo.lendable = o.lend_loop;
  return lo;
}
}  // namespace

Channel::Channel(std::string address, ChannelOptions options)
    : address_(std::move(address)),
      options_(std::move(options)),
      own_loops_(std::make_unique<io::LoopGroup>(1, own_loop_options(options_))),
      loop_(&own_loops_->loop(0)) {
  own_loops_->start();
  connect();
}

Channel::Channel(std::string address, io::EventLoop& loop, ChannelOptions options)
    : address_(std::move(address)), options_(std::move(options)), loop_(&loop) {
  connect();
}

void Channel::connect() {
  session::ClientOptions co;
  // "HOST:PORT" dials TCP, "udp://HOST:PORT" encrypted UDP (options_.udp.server_key pinned). A
  // malformed address dials nowhere and the calls fail as on an unreachable server.
  Result<session::Dialer> dial = session::dialer_for(address_, options_.tcp, options_.udp);
  co.dial = dial.is_ok() ? std::move(dial).value()
                         : session::tcp_dialer(transport::HostPort{"127.0.0.1", 0}, options_.tcp);
  co.handshake = options_.handshake;
  co.session = options_.session;
  co.reconnect = options_.reconnect;
  co.on_dial_failed = [this](const Status& why) { on_connect_failed(why); };
  std::promise<void> done;
  loop().post([&] {
    client_ = std::make_unique<session::Client>(loop(), co, this);
    client_->start();
    done.set_value();
  });
  done.get_future().wait();
}

Channel::~Channel() {
  std::promise<void> done;
  loop().post([&] {
    closing_ = true;
    std::vector<ClientCallPtr> all = std::move(waiting_);
    for (auto& [id, c] : calls_) all.push_back(c);
    for (auto& c : all) c->give_up(StatusCode::kCancelled, "channel closed");
    calls_.clear();
    client_.reset();
    done.set_value();
  });
  done.get_future().wait();
  // Callbacks posted by the closing session run before the loop stops (or, on a loop given by
  // the caller, before this channel is gone).
  for (int i = 0; i < 2; ++i) {
    std::promise<void> turn;
    loop().post([&] { turn.set_value(); });
    turn.get_future().wait();
  }
  if (own_loops_) own_loops_->stop();
}

CallPtr Channel::start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                            std::vector<std::string> requests, bool half_close) {
  // The call object (several hundred bytes, one per call, dozens in flight) is recycled.
  auto c = std::allocate_shared<ClientCall>(RecyclingAllocator<ClientCall>(), *this, std::move(method),
                                            std::move(options), std::move(callbacks));
  c->unsent_ = std::move(requests);
  c->half_close_ = half_close;
  loop().post([this, c] {
    if (closing_) {
      c->complete(cancelled("channel closed"), {});
      return;
    }
    c->begin();
    if (c->done_) return;
    session::Session* s = client_->session();
    if (s != nullptr && s->ready() && !s->going_away()) {
      c->open(*s);
    } else if (!options_.wait_for_ready && state() == ConnectivityState::kTransientFailure) {
      c->complete(not_connected_status(), {});
    } else {
      waiting_.push_back(c);
    }
  });
  return c;
}

io::EventLoop* Channel::lendable_loop() { return own_loops_ && options_.lend_loop ? loop_ : nullptr; }

ConnectivityState Channel::state() const {
  if (client_ == nullptr) return ConnectivityState::kTransientFailure;
  session::Session* s = client_->session();
  if (s != nullptr && s->ready()) {
    return s->going_away() ? ConnectivityState::kTransientFailure : ConnectivityState::kReady;
  }
  return failed_ ? ConnectivityState::kTransientFailure : ConnectivityState::kConnecting;
}

Status Channel::not_connected_status() const {
  std::string m = "not connected to ";
  m.append(address_);
  if (!last_error_.is_ok()) m.append(": ").append(last_error_.to_string());
  return disconnected(m);
}

void Channel::on_connect_failed(const Status& why) {
  failed_ = true;
  last_error_ = why;
  fail_waiting();
}

void Channel::fail_waiting() {
  if (options_.wait_for_ready || waiting_.empty()) return;
  std::vector<ClientCallPtr> w = std::move(waiting_);
  waiting_.clear();
  const Status st = not_connected_status();
  for (auto& c : w) c->complete(st, {});
}

void Channel::on_ready(session::Session& s) {
  failed_ = false;
  std::vector<ClientCallPtr> w = std::move(waiting_);
  waiting_.clear();
  for (auto& c : w) c->open(s);
}

Status Channel::on_frame(session::Session& s, const wire::Frame& f) {
  if (f.type != wire::FrameType::kResponse && f.type != wire::FrameType::kTrailers) {
    return unimplemented(std::string(wire::frame_type_name(f.type)) + " frame is not expected by an RPC client");
  }
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, s.options().limits));
  if (f.type == wire::FrameType::kResponse) {
    const auto& r = std::get<wire::Response>(any);
    auto it = calls_.find(r.stream_id);
    if (it == calls_.end()) return Status();  // a call we gave up on
    if (it->second->callbacks_.on_headers) it->second->callbacks_.on_headers(to_metadata(r.metadata));
    return Status();
  }
  const auto& t = std::get<wire::Trailers>(any);
  auto it = calls_.find(t.stream_id);
  if (it == calls_.end()) return Status();
  if (it->second->read_paused_) {
    // Messages may still wait in the paused stream: they come first.
    it->second->pending_end_.emplace(Status(t.code, t.message), to_metadata(t.metadata));
    return Status();
  }
  ClientCallPtr c = std::move(it->second);
  calls_.erase(it);
  s.close_stream(t.stream_id);
  c->complete(Status(t.code, t.message), to_metadata(t.metadata));
  return Status();
}

void Channel::on_closed(session::Session&, const Status& reason) {
  failed_ = true;
  last_error_ = reason.is_ok() ? disconnected("connection closed") : reason;
  // Streams were reset before this callback; calls not yet sent wait for the next session.
  if (!calls_.empty()) {
    std::vector<ClientCallPtr> left;
    for (auto& [id, c] : calls_) left.push_back(c);
    calls_.clear();
    for (auto& c : left) c->complete(reason.is_ok() ? disconnected("connection closed") : reason, {});
  }
  fail_waiting();
}

}  // namespace slip::rpc
