#include "broker/client.h"

#include <charconv>
#include <random>

namespace slip::broker {

namespace {

std::string random_token() {
  static constexpr char kAlphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::mt19937_64 rng((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  std::string s(22, '0');
  for (char& c : s) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return s;
}

bool is_no_responders(const wire::Msg& m) {
  if (!m.has_headers || !m.payload.empty()) return false;
  for (const auto& [k, v] : m.headers) {
    if (k == ":status" && v == "503") return true;
  }
  return false;
}

}  // namespace

PubSubClient::PubSubClient(io::EventLoop& loop, session::ClientOptions options)
    : loop_(loop), client_(loop, std::move(options), this), inbox_prefix_("_INBOX." + random_token() + ".") {}

PubSubClient::~PubSubClient() { *alive_ = false; }

void PubSubClient::start(std::function<void()> on_ready) {
  on_ready_ = std::move(on_ready);
  client_.start();
}

void PubSubClient::stop() { client_.stop(); }

bool PubSubClient::ready() const {
  auto* self = const_cast<PubSubClient*>(this);
  return self->client_.session() && self->client_.session()->ready() && !self->client_.session()->going_away();
}

Status PubSubClient::publish(std::string_view subject, Slice payload, std::string_view reply,
                             const wire::Metadata* headers) {
  if (!ready()) return disconnected("not connected to the broker");
  wire::Pub p;
  p.subject = subject;
  p.reply = reply;
  p.payload = std::move(payload);
  if (headers) {
    p.has_headers = true;
    p.headers = *headers;
  }
  client_.session()->send_frame(p);
  return Status();
}

void PubSubClient::send_sub(std::uint64_t sid, const Sub& s) {
  if (!ready()) return;  // sent on the next on_ready
  client_.session()->send_frame(
      wire::Sub{sid, s.subject, s.queue, s.options.drop_oldest, s.options.backlog_msgs, s.options.backlog_bytes});
}

Result<std::uint64_t> PubSubClient::subscribe(std::string_view subject, std::string_view queue,
                                              MessageHandler handler, const SubOptions& options) {
  const std::uint64_t sid = next_sid_++;
  Sub& s = subs_[sid];
  s.subject = std::string(subject);
  s.queue = std::string(queue);
  s.handler = std::move(handler);
  s.options = options;
  send_sub(sid, s);
  return sid;
}

void PubSubClient::unsubscribe(std::uint64_t sid, std::uint64_t max_msgs) {
  if (!ready() || max_msgs != 0) {
    if (!ready() && max_msgs == 0) subs_.erase(sid);
    if (ready()) client_.session()->send_frame(wire::Unsub{sid, max_msgs});
    return;
  }
  // Messages the broker sent before it took the UNSUB are still on their way: keep the handler
  // until a round trip behind the UNSUB comes back, so nothing already routed here is lost.
  client_.session()->send_frame(wire::Unsub{sid, 0});
  auto it = subs_.find(sid);
  if (it == subs_.end()) return;
  it->second.draining = true;
  std::weak_ptr<bool> alive = alive_;
  (void)request("_INBOX.drain", Slice(), std::chrono::milliseconds(30000), [this, alive, sid](Result<Message>) {
    if (!alive.expired()) subs_.erase(sid);
  });
}

Status PubSubClient::request(std::string_view subject, Slice payload, std::chrono::milliseconds timeout,
                             ReplyHandler done) {
  if (!ready()) return disconnected("not connected to the broker");
  if (inbox_sid_ == 0) {
    // One wildcard subscription serves every reply; on_frame routes by the last token.
    inbox_sid_ = next_sid_++;
    Sub& s = subs_[inbox_sid_];
    s.subject = inbox_prefix_ + ">";
    send_sub(inbox_sid_, s);
  }
  const std::uint64_t id = next_request_++;
  Pending& p = pending_[id];
  p.subject = std::string(subject);
  p.done = std::move(done);
  p.timer = std::make_unique<boost::asio::steady_timer>(loop_.context());
  p.timer->expires_after(timeout);
  std::weak_ptr<bool> alive = alive_;
  p.timer->async_wait([this, alive, id, timeout](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    finish_request(id, timed_out("no reply within " + std::to_string(timeout.count()) + " ms"));
  });
  const std::string reply = inbox_prefix_ + std::to_string(id);
  return publish(subject, std::move(payload), reply);
}

void PubSubClient::finish_request(std::uint64_t id, Result<Message> r) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  ReplyHandler done = std::move(it->second.done);
  it->second.timer->cancel();
  pending_.erase(it);
  done(std::move(r));
}

void PubSubClient::on_ready(session::Session&) {
  for (auto it = subs_.begin(); it != subs_.end();) {
    if (it->second.draining) {
      it = subs_.erase(it);  // its UNSUB was for the old session
      continue;
    }
    send_sub(it->first, it->second);
    ++it;
  }
  if (on_ready_) on_ready_();
}

Status PubSubClient::on_refusal(const wire::Frame& f, const wire::WireLimits& limits) {
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
  const auto& e = std::get<wire::PubSubError>(any);
  Refusal r{e.op, e.sid, std::string(e.subject), Status(e.code, e.message)};
  if (e.op == wire::FrameType::kSub) {
    subs_.erase(e.sid);
    if (e.sid == inbox_sid_ && inbox_sid_ != 0) {
      // No replies can arrive: every request in flight fails, and the next one tries again.
      inbox_sid_ = 0;
      std::vector<std::uint64_t> ids;
      for (const auto& [id, p] : pending_) ids.push_back(id);
      for (std::uint64_t id : ids) finish_request(id, r.status);
    }
  } else {
    // PUBs are refused in the order they were sent: the oldest request to that subject.
    std::uint64_t oldest = 0;
    for (const auto& [id, p] : pending_) {
      if (p.subject == r.subject && (oldest == 0 || id < oldest)) oldest = id;
    }
    if (oldest != 0) finish_request(oldest, r.status);
  }
  if (on_refused_) on_refused_(r);
  return Status();
}

Status PubSubClient::on_frame(session::Session& s, const wire::Frame& f) {
  if (f.type == wire::FrameType::kPubSubError) return on_refusal(f, s.options().limits);
  if (f.type == wire::FrameType::kLogAck || f.type == wire::FrameType::kStreamResponse ||
      f.type == wire::FrameType::kStreamMsg) {
    return on_stream_frame(f, s.options().limits);
  }
  if (f.type != wire::FrameType::kMsg) {
    return unimplemented(std::string(wire::frame_type_name(f.type)) + " frames are not expected by a client");
  }
  SLIP_ASSIGN_OR_RETURN(wire::Msg m, wire::decode_msg(f, s.options().limits));
  if (m.sid == inbox_sid_ && inbox_sid_ != 0) {
    std::string_view tail = m.subject.substr(std::min(m.subject.size(), inbox_prefix_.size()));
    std::uint64_t id = 0;
    std::from_chars(tail.data(), tail.data() + tail.size(), id);
    if (is_no_responders(m)) {
      finish_request(id, not_found("no responders for the request"));
    } else {
      finish_request(id, Message{m.subject, m.reply, m.has_headers ? &m.headers : nullptr, std::move(m.payload)});
    }
    return Status();
  }
  // The payload's reference moves over: no reference count traffic per message.
  Message msg{m.subject, m.reply, m.has_headers ? &m.headers : nullptr, std::move(m.payload)};
  auto it = subs_.find(m.sid);
  if (it != subs_.end() && it->second.handler) it->second.handler(msg);
  return Status();
}

Status PubSubClient::flush(std::function<void()> done) {
  if (!ready()) return disconnected("not connected to the broker");
  flushes_.push_back(std::move(done));
  client_.session()->ping();
  return Status();
}

void PubSubClient::on_pong(session::Session&, std::int64_t) {
  if (flushes_.empty()) return;
  std::function<void()> done = std::move(flushes_.front());
  flushes_.pop_front();
  done();
}

void PubSubClient::on_closed(session::Session&, const Status& reason) {
  flushes_.clear();  // their PONGs will not come
  // Requests in flight cannot be answered on a new session: fail them now.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, p] : pending_) ids.push_back(id);
  for (std::uint64_t id : ids) {
    finish_request(id, reason.is_ok() ? disconnected("connection closed") : reason);
  }
  fail_stream_calls(reason.is_ok() ? disconnected("connection closed") : reason);
  if (on_closed_) on_closed_(reason);
}

}  // namespace slip::broker
