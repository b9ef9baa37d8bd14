#include "broker/broker.h"

#include "core/clock.h"
#include "core/logging.h"

namespace slip::broker {

namespace {

// The no-responders answer: an empty message with this header.
constexpr std::string_view kStatusHeader = ":status";
constexpr std::string_view kNoRespondersStatus = "503";

}  // namespace

// ---- Broker --------------------------------------------------------------------------------

struct Broker::Outbox {
  io::EventLoop* to = nullptr;
  std::vector<detail::Delivery> pending;  // touched only on the sending loop's thread
};

Broker::Broker(BrokerOptions options) : options_(options), index_(SublistOptions{options.limits}) {}

Broker::~Broker() = default;

std::size_t Broker::subscriptions() const {
  std::lock_guard<std::mutex> g(mu_);
  return index_.size();
}

HistogramSnapshot Broker::publish_latency() const {
  HistogramSnapshot out;
  std::lock_guard<std::mutex> g(shard_stats_mu_);
  for (const auto& [loop, st] : shard_stats_) st->publish_ns.merge_into(out);
  return out;
}

ShardStats& Broker::shard_stats(io::EventLoop& loop) {
  std::lock_guard<std::mutex> g(shard_stats_mu_);
  for (auto& [l, st] : shard_stats_) {
    if (l == &loop) return *st;
  }
  shard_stats_.emplace_back(&loop, std::make_unique<ShardStats>());
  return *shard_stats_.back().second;
}

Status Broker::add(detail::Subscription* sub) {
  std::lock_guard<std::mutex> g(mu_);
  return index_.insert(sub->subject, sub->queue, reinterpret_cast<SubscriptionHandle>(sub));
}

void Broker::remove(detail::Subscription* sub) {
  std::lock_guard<std::mutex> g(mu_);
  index_.remove(sub->subject, sub->queue, reinterpret_cast<SubscriptionHandle>(sub));
}

Broker::Outbox& Broker::outbox(io::EventLoop& from, io::EventLoop& to) {
  const std::uint64_t key = reinterpret_cast<std::uint64_t>(&from) * 31 + reinterpret_cast<std::uint64_t>(&to);
  std::lock_guard<std::mutex> g(outbox_mu_);
  auto& slot = outboxes_[key];
  if (!slot) {
    slot = std::make_unique<Outbox>();
    slot->to = &to;
  }
  return *slot;
}

void Broker::hand_over(io::EventLoop& from, detail::Delivery d) {
  Outbox& box = outbox(from, *d.link->loop);
  const bool first = box.pending.empty();
  box.pending.push_back(std::move(d));
  if (!first) return;
  // At the end of this loop turn, everything gathered for that shard goes over in one hand-off.
  from.post([this, &box] {
    std::vector<detail::Delivery> batch;
    batch.swap(box.pending);
    box.to->post([this, batch = std::move(batch)]() mutable {
      for (detail::Delivery& d : batch) {
        const bool taken = !d.link->closed.load(std::memory_order_acquire) && d.link->client->deliver(d.sid, *d.message);
        if (!taken && !d.queue.empty()) requeue(*d.link->loop, std::move(d));
      }
    });
  });
}

void Broker::publish(io::EventLoop& from, std::string_view subject, std::string_view reply, bool has_headers,
                     const wire::Metadata& headers, const Slice& payload) {
  stats_.messages_in.fetch_add(1, std::memory_order_relaxed);
  stats_.bytes_in.fetch_add(payload.size(), std::memory_order_relaxed);
  // The receivers, chosen under the lock (a Subscription may be freed as soon as it is released,
  // so what delivery needs is copied out); delivered after it.
  struct Target {
    std::shared_ptr<detail::ClientLink> link;
    std::uint64_t sid;
    std::string queue;  // copied under the lock: the index's views die with it
  };
  // Reused per thread: no allocation per PUB once it has grown. publish() only recurses (for a
  // no-responders answer) after it is done with the list.
  static thread_local std::vector<Target> targets;
  targets.clear();
  {
    std::lock_guard<std::mutex> g(mu_);
    const SublistResult& r = index_.match(subject);
    targets.reserve(r.handle_count());
    auto add = [&](SubscriptionHandle h) {
      auto* s = reinterpret_cast<detail::Subscription*>(h);
      targets.push_back(Target{s->link, s->sid, {}});
    };
    for (SubscriptionHandle h : r.plain()) add(h);
    for (const QueueGroupMatch& q : r.queue_groups()) {
      add(q.members[queue_cursor_++ % q.members.size()]);
      targets.back().queue.assign(q.name);
    }
  }

  if (targets.empty()) {
    if (!reply.empty()) send_no_responders(from, reply);
    return;
  }
  std::shared_ptr<detail::SharedMessage> shared;  // made once, for the first remote receiver
  for (Target& t : targets) {
    const std::shared_ptr<detail::ClientLink>& link = t.link;
    // The subscription may be gone since the lock was released; its sid then finds nothing.
    const std::uint64_t sid = t.sid;
    if (link->loop == &from) {
      if (!link->closed.load(std::memory_order_acquire)) link->client->deliver(sid, subject, reply, has_headers, headers, payload);
      continue;
    }
    if (!shared) {
      shared = std::make_shared<detail::SharedMessage>();
      shared->subject = std::string(subject);
      shared->reply = std::string(reply);
      shared->has_headers = has_headers;
      for (const auto& [k, v] : headers) shared->headers.emplace_back(std::string(k), std::string(v));
      shared->payload = payload;
    }
    hand_over(from, detail::Delivery{link, sid, shared, t.queue, 0});
  }
  targets.clear();  // drop the link references now, not at the next PUB
}

void Broker::requeue(io::EventLoop& at, detail::Delivery d) {
  if (++d.attempts > 3) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::shared_ptr<detail::ClientLink> link;
  std::uint64_t sid = 0;
  {
    std::lock_guard<std::mutex> g(mu_);
    const SublistResult& r = index_.match(d.message->subject);
    for (const QueueGroupMatch& q : r.queue_groups()) {
      if (q.name != d.queue) continue;
      auto* s = reinterpret_cast<detail::Subscription*>(q.members[queue_cursor_++ % q.members.size()]);
      link = s->link;
      sid = s->sid;
    }
  }
  if (!link) {
    stats_.dropped.fetch_add(1, std::memory_order_relaxed);  // the group is gone entirely
    return;
  }
  if (link->loop == &at) {
    if (!link->closed.load(std::memory_order_acquire) && link->client->deliver(sid, *d.message)) return;
    d.link = std::move(link);
    d.sid = sid;
    requeue(at, std::move(d));
    return;
  }
  d.link = std::move(link);
  d.sid = sid;
  hand_over(at, std::move(d));
}

void Broker::send_no_responders(io::EventLoop& from, std::string_view reply) {
  stats_.no_responders.fetch_add(1, std::memory_order_relaxed);
  wire::Metadata status = {{kStatusHeader, kNoRespondersStatus}};
  publish(from, reply, {}, true, status, Slice());
}

// ---- SessionConnection ---------------------------------------------------------------------

void SessionConnection::send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply,
                                 bool has_headers, const wire::Metadata& headers, const Slice& payload) {
  wire::Msg m;
  m.sid = sid;
  m.subject = subject;
  m.reply = reply;
  m.has_headers = has_headers;
  if (has_headers) m.headers = headers;
  m.payload = payload;
  session_.send_frame(m);
}

// ---- BrokerClient --------------------------------------------------------------------------

BrokerClient::BrokerClient(Broker& broker, ClientConnection& conn, std::string name)
    : broker_(broker), conn_(conn), name_(std::move(name)), link_(std::make_shared<detail::ClientLink>()) {
  link_->loop = &conn.loop();
  link_->client = this;
  if (broker_.options_.metrics) shard_stats_ = &broker_.shard_stats(conn.loop());
}

BrokerClient::~BrokerClient() { close(); }

void BrokerClient::close() {
  if (closed_) return;
  closed_ = true;
  link_->closed.store(true, std::memory_order_release);
  for (auto& [sid, local] : subs_) broker_.remove(local.sub.get());
  subs_.clear();
}

Status BrokerClient::on_frame(const wire::Frame& f, const wire::WireLimits& limits) {
  switch (f.type) {
    case wire::FrameType::kPub: {
      SLIP_ASSIGN_OR_RETURN(wire::Pub p, wire::decode_pub(f, limits));
      return publish(p.subject, p.reply, p.has_headers, p.headers, p.payload);
    }
    case wire::FrameType::kSub: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
      const auto& s = std::get<wire::Sub>(any);
      return subscribe(s.sid, s.subject, s.queue);
    }
    case wire::FrameType::kUnsub: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
      const auto& u = std::get<wire::Unsub>(any);
      return unsubscribe(u.sid, u.max_msgs);
    }
    default:
      return unimplemented(std::string(wire::frame_type_name(f.type)) + " frames are not served here");
  }
}

Status BrokerClient::publish(std::string_view subject, std::string_view reply, bool has_headers,
                             const wire::Metadata& headers, const Slice& payload) {
  if (payload.size() > broker_.options_.max_payload) {
    return overloaded("payload of " + std::to_string(payload.size()) + " bytes exceeds max_payload " +
                      std::to_string(broker_.options_.max_payload));
  }
  SLIP_TRY(validate_publish_subject(subject, broker_.options_.limits));
  if (!reply.empty()) SLIP_TRY(validate_publish_subject(reply, broker_.options_.limits));
  ++stats_.msgs_in;
  stats_.bytes_in += payload.size();
  if (shard_stats_ != nullptr && (++publish_seq_ & (kPublishSampleEvery - 1)) == 0) {
    const std::int64_t start = mono_now_ns();
    broker_.publish(*link_->loop, subject, reply, has_headers, headers, payload);
    shard_stats_->publish_ns.record(static_cast<std::uint64_t>(mono_now_ns() - start));
    return Status();
  }
  broker_.publish(*link_->loop, subject, reply, has_headers, headers, payload);
  return Status();
}

Status BrokerClient::subscribe(std::uint64_t sid, std::string_view subject, std::string_view queue) {
  if (subs_.count(sid)) return invalid_argument("SUB: sid " + std::to_string(sid) + " is already in use");
  if (subs_.size() >= broker_.options_.max_subscriptions) {
    return overloaded("too many subscriptions (max_subscriptions " +
                      std::to_string(broker_.options_.max_subscriptions) + ")");
  }
  auto sub = std::make_unique<detail::Subscription>();
  sub->link = link_;
  sub->sid = sid;
  sub->subject = std::string(subject);
  sub->queue = std::string(queue);
  SLIP_TRY(broker_.add(sub.get()));
  subs_[sid] = LocalSub{std::move(sub), 0, 0};
  return Status();
}

Status BrokerClient::unsubscribe(std::uint64_t sid, std::uint64_t max_msgs) {
  auto it = subs_.find(sid);
  if (it == subs_.end()) return Status();  // already gone: UNSUB races with auto-unsubscribe
  if (max_msgs == 0 || it->second.delivered >= max_msgs) {
    remove_sub(sid);
  } else {
    it->second.max_msgs = max_msgs;
  }
  return Status();
}

void BrokerClient::remove_sub(std::uint64_t sid) {
  auto it = subs_.find(sid);
  if (it == subs_.end()) return;
  broker_.remove(it->second.sub.get());
  subs_.erase(it);
}

bool BrokerClient::admit(std::size_t bytes) {
  const std::size_t pending = conn_.pending_out_bytes();
  if (pending + bytes <= broker_.options_.max_pending_bytes) {
    slow_logged_ = false;
    return true;
  }
  if (!slow_logged_) {
    slow_logged_ = true;
    broker_.stats_.slow_consumers.fetch_add(1, std::memory_order_relaxed);
    SLIP_LOG_WARN("slow consumer '{}' ({}): {} bytes pending, limit {}: {}", name_,
                  conn_.peer_address(), pending, broker_.options_.max_pending_bytes,
                  drop_when_slow_ ? "dropping its messages" : "disconnecting it");
  }
  if (drop_when_slow_) {
    ++dropped_;
    broker_.stats_.dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  conn_.fail(overloaded("slow consumer: " + std::to_string(pending) + " bytes waiting, limit " +
                           std::to_string(broker_.options_.max_pending_bytes)));
  close();
  return false;
}

bool BrokerClient::deliver(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                           const wire::Metadata& headers, const Slice& payload) {
  if (closed_ || conn_.closed()) return false;
  auto it = subs_.find(sid);
  if (it == subs_.end()) return false;
  if (!admit(payload.size() + subject.size() + reply.size())) return true;  // counted as dropped
  LocalSub& local = it->second;
  conn_.send_msg(sid, subject, reply, has_headers, headers, payload);
  broker_.stats_.messages_out.fetch_add(1, std::memory_order_relaxed);
  broker_.stats_.bytes_out.fetch_add(payload.size(), std::memory_order_relaxed);
  ++stats_.msgs_out;
  stats_.bytes_out += payload.size();
  ++local.delivered;
  if (local.max_msgs != 0 && local.delivered >= local.max_msgs) remove_sub(sid);
  return true;
}

bool BrokerClient::deliver(std::uint64_t sid, const detail::SharedMessage& m) {
  wire::Metadata headers;
  headers.reserve(m.headers.size());
  for (const auto& [k, v] : m.headers) headers.emplace_back(k, v);
  return deliver(sid, m.subject, m.reply, m.has_headers, headers, m.payload);
}

}  // namespace slip::broker
