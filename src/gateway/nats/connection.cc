#include "gateway/nats/connection.h"

#include "gateway/nats/headers.h"

#include <algorithm>
#include <cstring>

#include "broker/subject.h"
#include "core/logging.h"

namespace slip::gateway::nats {

namespace {

constexpr std::size_t kBlockSize = 64 * 1024;
constexpr std::size_t kFirstBlockSize = 2 * 1024;

// Decimal digits of v at `out`; returns the end.
char* put_u64(char* out, std::uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = tmp[--n];
  return out;
}

char* put(char* out, std::string_view s) {
  std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out.push_back(c);
  }
  return out;
}

bool is_no_responders(bool has_headers, const wire::Metadata& headers, const Slice& payload) {
  if (!has_headers || !payload.empty()) return false;
  for (const auto& [k, v] : headers) {
    if (k == kStatusKey) return v == "503";
  }
  return false;
}

}  // namespace

// ---- NatsConnection ------------------------------------------------------------------------

struct NatsConnection::OpSink final : ParserSink {
  NatsConnection& c;
  explicit OpSink(NatsConnection& conn) : c(conn) {}
  bool on_op(const Op& op) override { return c.handle(op); }
};

NatsConnection::NatsConnection(broker::Broker& broker, transport::ConnectionPtr conn, const GatewayOptions& options,
                               std::uint64_t id, std::function<void(NatsConnection&)> on_gone)
    : broker_(broker),
      conn_(std::move(conn)),
      options_(options),
      id_(id),
      on_gone_(std::move(on_gone)),
      parser_(ParserLimits{options.max_control_line, broker.options().max_payload}),
      ping_timer_(conn_->loop().context()),
      auth_timer_(conn_->loop().context()) {
  client_ = std::make_unique<broker::BrokerClient>(broker_, *this, "nats:" + conn_->peer_address());
}

NatsConnection::~NatsConnection() { client_->close(); }

void NatsConnection::start() {
  std::string info = "INFO {\"server_id\":\"" + json_escape(options_.server_id) + "\",\"server_name\":\"" +
                     json_escape(options_.server_name) + "\",\"version\":\"" SLIP_VERSION "\",\"proto\":1,\"host\":\"" +
                     json_escape(options_.host) + "\",\"port\":" + std::to_string(options_.port) +
                     ",\"headers\":true,\"max_payload\":" + std::to_string(broker_.options().max_payload) +
                     ",\"client_id\":" + std::to_string(id_);
  if (options_.auth_required()) info += ",\"auth_required\":true";
  info += "}\r\n";
  write(info);
  conn_->start(this);
  flush();
  arm_ping();
  if (options_.auth_required() && options_.auth_timeout.count() > 0) {
    auth_timer_.expires_after(options_.auth_timeout);
    auth_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->connected_ || self->closing_) return;
      self->error("Authorization Timeout", true);
    });
  }
}

void NatsConnection::shutdown() { close_now(); }

void NatsConnection::on_bytes(Slice bytes) {
  if (closing_) return;
  if (authenticating_) {
    held_bytes_ += bytes.size();
    held_.push_back(std::move(bytes));
    if (!reading_paused_ && held_bytes_ >= options_.max_pipelined_bytes) {
      reading_paused_ = true;
      conn_->pause_reading();
    }
    return;
  }
  parse(bytes);
  flush();
}

void NatsConnection::parse(const Slice& bytes) {
  OpSink sink(*this);
  std::size_t used = 0;
  const ParseError e = parser_.feed(bytes, sink, &used);
  if (e != ParseError::kNone && !closing_) {
    SLIP_LOG_DEBUG("nats client {}: {}", conn_->peer_address(), parse_error_text(e));
    error(parse_error_text(e), true);
    return;
  }
  if (authenticating_ && !closing_ && used < bytes.size()) {
    Slice rest = bytes.sub(used);
    held_bytes_ += rest.size();
    held_.push_back(std::move(rest));
  }
}

void NatsConnection::on_closed(Status reason) {
  SLIP_LOG_DEBUG("nats client {} closed: {}", conn_->peer_address(), reason.to_string());
  closing_ = true;
  ping_timer_.cancel();
  auth_timer_.cancel();
  auth_alive_.reset();
  held_.clear();
  client_->close();
  if (gone_) return;
  gone_ = true;
  // Not from inside the transport's callback: the owner may destroy us.
  conn_->loop().post([self = shared_from_this()] {
    if (self->on_gone_) self->on_gone_(*self);
  });
}

bool NatsConnection::handle(const Op& op) {
  if (closing_) return false;
  if (!connected_ && options_.auth_required() && op.kind != OpKind::kConnect) {
    error("Authorization Violation", true);
    return false;
  }
  switch (op.kind) {
    case OpKind::kConnect: return on_connect(op);
    case OpKind::kPing: write("PONG\r\n"); return true;
    case OpKind::kPong: pings_out_ = 0; return true;
    case OpKind::kPub:
    case OpKind::kHpub: return on_pub(op);
    case OpKind::kSub: return on_sub(op);
    case OpKind::kUnsub: {
      std::uint64_t sid = 0;
      if (!parse_decimal(op.sid, sid)) {
        error("Parser Error", true);
        return false;
      }
      (void)client_->unsubscribe(sid, op.max_msgs);
      ok();
      return true;
    }
    case OpKind::kOk:
    case OpKind::kErr:
    case OpKind::kInfo: return true;
  }
  return true;
}

bool NatsConnection::on_connect(const Op& op) {
  auto parsed = parse_connect(op.args);
  if (!parsed.is_ok()) {
    SLIP_LOG_DEBUG("nats client {}: {}", conn_->peer_address(), parsed.status().to_string());
    error("Parser Error", true);
    return false;
  }
  connect_ = std::move(parsed).value();
  if (options_.authenticate_async) {
    auth_alive_ = std::make_shared<char>(0);
    AuthDone done = [weak = weak_from_this(), loop = &conn_->loop()](Result<broker::Identity> who) {
      loop->post([weak, who = std::move(who)]() mutable {
        if (auto self = weak.lock()) self->on_auth_result(std::move(who));
      });
    };
    std::optional<Result<broker::Identity>> now = options_.authenticate_async(
        connect_.auth_token, connect_.user, connect_.pass, auth_alive_, std::move(done));
    if (now) {
      auth_alive_.reset();
      return finish_connect(std::move(*now));
    }
    // CONNECT came in time; the verification is bounded by the verifier's queue.
    auth_timer_.cancel();
    authenticating_ = true;
    return false;  // stop parsing: what follows waits in held_ for the verdict
  }
  if (options_.authenticate) return finish_connect(options_.authenticate(connect_.auth_token, connect_.user, connect_.pass));
  return finish_connect(broker::Identity{});
}

bool NatsConnection::finish_connect(Result<broker::Identity> who) {
  if (!who.is_ok()) {
    SLIP_LOG_INFO("nats client {}: {}: {}", conn_->peer_address(),
                  who.status().code() == StatusCode::kOverloaded ? "authentication busy" : "authorization violation",
                  who.status().to_string());
    error(who.status().code() == StatusCode::kOverloaded ? "Authentication Busy" : "Authorization Violation", true);
    return false;
  }
  if (options_.auth_required()) client_->set_identity(std::move(who).value());
  auth_timer_.cancel();
  connected_ = true;
  client_->set_echo(connect_.echo);
  ok();
  return true;
}

void NatsConnection::on_auth_result(Result<broker::Identity> who) {
  if (closing_ || !authenticating_) return;
  authenticating_ = false;
  auth_alive_.reset();
  if (finish_connect(std::move(who))) {
    // What the client pipelined behind CONNECT, in order (it may hold another CONNECT).
    std::deque<Slice> held = std::move(held_);
    held_.clear();
    held_bytes_ = 0;
    while (!held.empty() && !closing_ && !authenticating_) {
      Slice b = std::move(held.front());
      held.pop_front();
      parse(b);
    }
    for (Slice& b : held) {
      held_bytes_ += b.size();
      held_.push_back(std::move(b));
    }
    if (reading_paused_ && !authenticating_ && !closing_) {
      reading_paused_ = false;
      conn_->resume_reading();
    }
  }
  flush();
}

bool NatsConnection::on_pub(const Op& op) {
  static const wire::Metadata kNoHeaders;
  Status s;
  if (op.kind == OpKind::kPub) {
    s = client_->publish(op.subject, op.reply, false, kNoHeaders, op.payload);
  } else {
    static thread_local wire::Metadata headers;
    headers.clear();
    if (!parse_header_block(op.payload.sub(0, op.header_size).as_string_view(), headers)) {
      error("Parser Error", true);
      return false;
    }
    s = client_->publish(op.subject, op.reply, true, headers, op.payload.sub(op.header_size));
  }
  if (s.is_ok()) {
    ok();
    return true;
  }
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      error("Permissions Violation for Publish to \"" + std::string(op.subject) + "\"", false);
      return true;
    case StatusCode::kInvalidArgument:
      // A subject nothing can match: nats-server only objects in pedantic mode.
      if (connect_.pedantic) {
        error("Invalid Publish Subject", false);
      } else {
        ok();
      }
      return true;
    default:
      error("Maximum Payload Violation", true);
      return false;
  }
}

bool NatsConnection::on_sub(const Op& op) {
  std::uint64_t sid = 0;
  if (!parse_decimal(op.sid, sid)) {
    error("Parser Error", true);
    return false;
  }
  const auto& limits = broker_.options().limits;
  if (!broker::validate_subscription_subject(op.subject, limits).is_ok() ||
      (!op.queue.empty() && !broker::validate_queue_group(op.queue, limits).is_ok())) {
    error("Invalid Subject", false);
    return true;
  }
  const Status s = client_->subscribe(sid, op.subject, op.queue);
  if (s.is_ok()) {
    ok();
    return true;
  }
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      error("Permissions Violation for Subscription to \"" + std::string(op.subject) + "\"", false);
      return true;
    case StatusCode::kOverloaded:
      error("Maximum Subscriptions Exceeded", false);
      return true;
    default:
      ok();  // a sid already in use: nats-server ignores the repeat
      return true;
  }
}

void NatsConnection::ok() {
  if (connect_.verbose) write("+OK\r\n");
}

void NatsConnection::error(std::string_view text, bool close) {
  if (closing_) return;
  std::string line = "-ERR '" + std::string(text) + "'\r\n";
  write(line);
  if (close) {
    close_now();
  } else {
    schedule_flush();
  }
}

void NatsConnection::close_now() {
  if (closing_) return;
  closing_ = true;
  ping_timer_.cancel();
  auth_timer_.cancel();
  client_->close();
  flush();
  conn_->close();
}

std::size_t NatsConnection::pending_out_bytes() const { return buffered_ + conn_->queued_bytes(); }

void NatsConnection::send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                              const wire::Metadata& headers, const Slice& payload) {
  if (closing_) return;
  const bool copy = payload.size() <= kCopyThreshold;
  if (!has_headers && reply.empty()) {
    // The common case: the same line as the last message, most of the time.
    if (sid != line_sid_ || payload.size() != line_size_ || subject != line_subject_ || line_.empty()) {
      line_.clear();
      line_.append("MSG ").append(subject).append(" ");
      char digits[20];
      line_.append(digits, put_u64(digits, sid));
      line_.append(" ");
      line_.append(digits, put_u64(digits, payload.size()));
      line_.append("\r\n");
      line_subject_.assign(subject);
      line_sid_ = sid;
      line_size_ = payload.size();
    }
    const std::size_t n = line_.size() + (copy ? payload.size() + 2 : 0);
    std::uint8_t* w = reserve(n);
    std::memcpy(w, line_.data(), line_.size());
    if (copy) {
      w += line_.size();
      if (!payload.empty()) std::memcpy(w, payload.data(), payload.size());
      w[payload.size()] = '\r';
      w[payload.size() + 1] = '\n';
    }
    block_.commit(n);
    buffered_ += n;
    if (!copy) {
      write(payload);
      write("\r\n");
    }
    schedule_flush();
    return;
  }
  if (is_no_responders(has_headers, headers, payload) && !(connect_.headers && connect_.no_responders)) return;
  const bool hmsg = has_headers && connect_.headers;
  if (hmsg) {
    scratch_.clear();
    append_header_block(scratch_, headers);
  }
  const std::size_t total = payload.size() + (hmsg ? scratch_.size() : 0);
  // "HMSG " subject ' ' sid ' ' [reply ' '] [hdr ' '] total "\r\n"
  const std::size_t line_max = 5 + subject.size() + 1 + 20 + 1 + reply.size() + 1 + 20 + 1 + 20 + 2;
  char* w = reinterpret_cast<char*>(reserve(line_max + (hmsg ? scratch_.size() : 0) + (copy ? payload.size() + 2 : 0)));
  char* const start = w;
  w = put(w, hmsg ? "HMSG " : "MSG ");
  w = put(w, subject);
  *w++ = ' ';
  w = put_u64(w, sid);
  *w++ = ' ';
  if (!reply.empty()) {
    w = put(w, reply);
    *w++ = ' ';
  }
  if (hmsg) {
    w = put_u64(w, scratch_.size());
    *w++ = ' ';
  }
  w = put_u64(w, total);
  w = put(w, "\r\n");
  if (hmsg) w = put(w, scratch_);
  if (copy) {
    if (!payload.empty()) std::memcpy(w, payload.data(), payload.size());
    w += payload.size();
    w = put(w, "\r\n");
  }
  const auto n = static_cast<std::size_t>(w - start);
  block_.commit(n);
  buffered_ += n;
  if (!copy) {
    write(payload);
    write("\r\n");
  }
  schedule_flush();
}

void NatsConnection::fail(const Status& reason) {
  if (closing_) return;
  SLIP_LOG_DEBUG("nats client {}: {}", conn_->peer_address(), reason.to_string());
  // What is waiting for a slow consumer is dropped; the error goes out first.
  chain_.clear();
  if (block_) block_start_ = block_.size();
  buffered_ = 0;
  error(reason.code() == StatusCode::kOverloaded ? "Slow Consumer" : reason.message(), true);
}

std::uint8_t* NatsConnection::grow(std::size_t n) {
  if (block_ && block_.size() > block_start_) {
    chain_.append(block_.slice(block_start_, block_.size() - block_start_));
  }
  // An idle connection holds a small block; a busy one grows to kBlockSize.
  const std::size_t grown = block_ ? std::min(kBlockSize, 2 * block_.capacity()) : kFirstBlockSize;
  block_ = Buffer::allocate(std::max(grown, n));
  block_start_ = 0;
  return block_.tail();
}

void NatsConnection::write(std::string_view s) {
  std::memcpy(reserve(s.size()), s.data(), s.size());
  block_.commit(s.size());
  buffered_ += s.size();
}

void NatsConnection::write(const Slice& payload) {
  if (block_ && block_.size() > block_start_) {
    chain_.append(block_.slice(block_start_, block_.size() - block_start_));
    block_start_ = block_.size();
  }
  chain_.append(payload);
  buffered_ += payload.size();
}

void NatsConnection::schedule_flush() {
  if (flush_scheduled_) return;
  flush_scheduled_ = true;
  // After the handlers already queued in this loop turn, so their messages share one send.
  conn_->loop().post([self = shared_from_this()] {
    self->flush_scheduled_ = false;
    self->flush();
  });
}

void NatsConnection::flush() {
  if (block_ && block_.size() > block_start_) {
    chain_.append(block_.slice(block_start_, block_.size() - block_start_));
    block_start_ = block_.size();
  }
  if (!chain_.empty()) {
    conn_->send(std::move(chain_));
    chain_ = Chain();
  }
  buffered_ = 0;
  // Once the transport has written (and released) everything, the block is ours to refill.
  if (block_ && block_.unique()) {
    block_.reset();
    block_start_ = 0;
  }
}

void NatsConnection::arm_ping() {
  if (options_.ping_interval.count() <= 0 || closing_) return;
  ping_timer_.expires_after(options_.ping_interval);
  ping_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (!ec && self) self->on_ping_timer();
  });
}

void NatsConnection::on_ping_timer() {
  if (closing_) return;
  if (pings_out_ >= options_.max_pings_out) {
    SLIP_LOG_INFO("nats client {}: stale connection ({} PINGs unanswered)", conn_->peer_address(), pings_out_);
    error("Stale Connection", true);
    return;
  }
  ++pings_out_;
  write("PING\r\n");
  flush();
  arm_ping();
}

}  // namespace slip::gateway::nats
