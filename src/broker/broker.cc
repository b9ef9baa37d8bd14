#include "broker/broker.h"

#include <algorithm>
#include <boost/unordered/unordered_flat_map.hpp>

#include "core/clock.h"
#include "core/logging.h"

namespace slip::broker {

namespace {

// The no-responders answer: an empty message with this header.
constexpr std::string_view kStatusHeader = ":status";
constexpr std::string_view kNoRespondersStatus = "503";
// The W3C trace context header (obs/traceparent.h), looked for only when a tracer is set.
constexpr std::string_view kTraceparentHeader = "traceparent";

}  // namespace

// ---- Broker --------------------------------------------------------------------------------

namespace detail {

// A counter with one writer (its shard's loop thread) and any number of readers: a plain load
// and store, no read-modify-write.
struct ShardCounter {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct ShardStats {
  ShardCounter messages_in, messages_out, bytes_in, bytes_out, no_responders, slow_consumers, dropped;
};

// One message of a batch: its subject, reply and headers live in Batch::bytes, stored once for
// all of its receivers on the batch's shard.
struct BatchMessage {
  std::uint32_t subject = 0, subject_len = 0;
  std::uint32_t reply = 0, reply_len = 0;
  std::uint32_t headers_begin = 0, headers_end = 0;  // in Batch::header_fields, 4 per header
  bool has_headers = false;
  Slice payload;
};
struct BatchItem {
  ClientLink* link = nullptr;  // kept alive by Batch::links
  std::uint64_t sid = 0;
  std::uint32_t message = 0;
  std::uint32_t queue = 0, queue_len = 0;  // the queue group, in Batch::bytes (empty: plain)
};
// One loop turn's messages from one shard to another. Recycled: once it has grown, a batch
// costs no allocation.
struct Batch {
  std::string bytes;
  std::vector<std::uint32_t> header_fields;  // key offset, key length, value offset, value length
  std::vector<BatchMessage> messages;
  std::vector<BatchItem> items;
  std::vector<std::shared_ptr<ClientLink>> links;  // every link in items, consecutive ones once
  void clear() {
    bytes.clear();
    header_fields.clear();
    messages.clear();
    items.clear();
    links.clear();
  }
};

// Messages from one shard to another. `current` and `last_publish` are touched only on the
// sending shard's thread; `spare` holds delivered batches for reuse, from either side.
struct Outbox {
  Shard* to = nullptr;
  std::unique_ptr<Batch> current;
  std::uint64_t last_publish = 0;  // the publish whose message is current->messages.back()
  std::mutex spare_mu;
  std::vector<std::unique_ptr<Batch>> spare;  // guarded by spare_mu
};

// What the broker keeps per event loop; touched only on that loop's thread, except `stats`
// (read by stats()) and each Outbox's spare list.
struct Shard {
  io::EventLoop* loop = nullptr;
  std::size_t index = 0;
  ShardStats stats;
  // Route cache: subject -> receivers, keys viewing Routes::subject.
  boost::unordered_flat_map<std::string_view, std::unique_ptr<Routes>> routes;
  std::vector<std::unique_ptr<Routes>> spare_routes;
  Routes* last = nullptr;  // the last subject published here: checked before the map
  std::uint64_t queue_cursor = 0;  // round robin over group members
  std::uint64_t publishes = 0;
  int depth = 0;  // publish() calls in progress on this shard
  std::vector<std::unique_ptr<Outbox>> outboxes;  // by the receiving shard's index
  wire::Metadata scratch_headers;
};

}  // namespace detail

namespace {

// Subjects one shard's route cache holds; when full it is emptied (amortized O(1) per miss).
constexpr std::size_t kMaxCachedRoutes = 4096;
// Delivered batches kept for reuse per pair of shards.
constexpr std::size_t kSpareBatches = 4;

std::atomic<std::uint64_t> next_broker_id{1};

struct ShardMemo {
  std::uint64_t broker = 0;
  const io::EventLoop* loop = nullptr;
  detail::Shard* shard = nullptr;
};
thread_local ShardMemo shard_memo;

std::uint32_t u32(std::size_t v) { return static_cast<std::uint32_t>(v); }

}  // namespace

Broker::Broker(BrokerOptions options)
    : options_(options), id_(next_broker_id.fetch_add(1, std::memory_order_relaxed)),
      index_(SublistOptions{options.limits}) {}

Broker::~Broker() = default;

std::size_t Broker::subscriptions() const {
  std::lock_guard<std::mutex> g(mu_);
  return index_.size();
}

const BrokerStats& Broker::stats() const {
  std::lock_guard<std::mutex> g(shards_mu_);
  std::uint64_t in = 0, out = 0, bin = 0, bout = 0, nr = 0, slow = 0, drop = 0;
  for (const auto& sh : shards_) {
    in += sh->stats.messages_in.get();
    out += sh->stats.messages_out.get();
    bin += sh->stats.bytes_in.get();
    bout += sh->stats.bytes_out.get();
    nr += sh->stats.no_responders.get();
    slow += sh->stats.slow_consumers.get();
    drop += sh->stats.dropped.get();
  }
  stats_.messages_in.store(in, std::memory_order_relaxed);
  stats_.messages_out.store(out, std::memory_order_relaxed);
  stats_.bytes_in.store(bin, std::memory_order_relaxed);
  stats_.bytes_out.store(bout, std::memory_order_relaxed);
  stats_.no_responders.store(nr, std::memory_order_relaxed);
  stats_.slow_consumers.store(slow, std::memory_order_relaxed);
  stats_.dropped.store(drop, std::memory_order_relaxed);
  return stats_;
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
  Status st = index_.insert(sub->subject, sub->queue, reinterpret_cast<SubscriptionHandle>(sub));
  if (st.is_ok()) generation_.fetch_add(1, std::memory_order_release);
  return st;
}

void Broker::remove(detail::Subscription* sub) {
  std::lock_guard<std::mutex> g(mu_);
  index_.remove(sub->subject, sub->queue, reinterpret_cast<SubscriptionHandle>(sub));
  generation_.fetch_add(1, std::memory_order_release);
}

detail::Shard& Broker::shard_of(io::EventLoop& loop) {
  ShardMemo& m = shard_memo;
  if (m.broker == id_ && m.loop == &loop) return *m.shard;
  detail::Shard& sh = make_shard(loop);
  m = ShardMemo{id_, &loop, &sh};
  return sh;
}

detail::Shard& Broker::make_shard(io::EventLoop& loop) {
  std::lock_guard<std::mutex> g(shards_mu_);
  for (auto& sh : shards_) {
    if (sh->loop == &loop) return *sh;
  }
  auto sh = std::make_unique<detail::Shard>();
  sh->loop = &loop;
  sh->index = shards_.size();
  shards_.push_back(std::move(sh));
  return *shards_.back();
}

void Broker::compute_routes(std::string_view subject, detail::Routes& out) {
  out.plain.clear();
  out.groups.clear();
  std::lock_guard<std::mutex> g(mu_);
  // The generation the result is current with: it only moves under mu_.
  out.generation = generation_.load(std::memory_order_relaxed);
  const SublistResult& r = index_.match(subject);
  for (SubscriptionHandle h : r.plain()) {
    auto* s = reinterpret_cast<detail::Subscription*>(h);
    out.plain.push_back(detail::Route{s->link, s->sid});
  }
  for (const QueueGroupMatch& q : r.queue_groups()) {
    detail::RouteGroup& group = out.groups.emplace_back();
    group.name.assign(q.name);
    for (SubscriptionHandle h : q.members) {
      auto* s = reinterpret_cast<detail::Subscription*>(h);
      group.members.push_back(detail::Route{s->link, s->sid});
    }
  }
}

const detail::Routes& Broker::routes_for(detail::Shard& sh, std::string_view subject) {
  const std::uint64_t generation = generation_.load(std::memory_order_acquire);
  detail::Routes* r = sh.last;
  if (r != nullptr && r->subject == subject) {
    if (r->generation != generation) compute_routes(subject, *r);
    return *r;
  }
  auto it = sh.routes.find(subject);
  if (it != sh.routes.end()) {
    r = it->second.get();
    if (r->generation != generation) compute_routes(subject, *r);
    sh.last = r;
    return *r;
  }
  if (sh.routes.size() >= kMaxCachedRoutes) {
    for (auto& [key, routes] : sh.routes) {
      routes->plain.clear();  // drop the link references now
      routes->groups.clear();
      if (sh.spare_routes.size() < kMaxCachedRoutes) sh.spare_routes.push_back(std::move(routes));
    }
    sh.routes.clear();
  }
  std::unique_ptr<detail::Routes> fresh;
  if (sh.spare_routes.empty()) {
    fresh = std::make_unique<detail::Routes>();
  } else {
    fresh = std::move(sh.spare_routes.back());
    sh.spare_routes.pop_back();
  }
  fresh->subject.assign(subject);
  compute_routes(subject, *fresh);
  r = fresh.get();
  sh.routes.emplace(std::string_view(r->subject), std::move(fresh));
  sh.last = r;
  return *r;
}

void Broker::publish(io::EventLoop& from, std::string_view subject, std::string_view reply, bool has_headers,
                     const wire::Metadata& headers, const Slice& payload, const detail::ClientLink* skip) {
  detail::Shard& sh = shard_of(from);
  sh.stats.messages_in.add(1);
  sh.stats.bytes_in.add(payload.size());
  const std::uint64_t before = sh.publishes;
  if (sh.depth == 0) {
    route(sh, routes_for(sh, subject), subject, reply, has_headers, headers, payload, skip);
  } else {
    // A publish made from inside a delivery (which nothing does today) must not change the
    // cached routes being walked: it computes its own.
    detail::Routes nested;
    compute_routes(subject, nested);
    route(sh, nested, subject, reply, has_headers, headers, payload, skip);
  }
  if (sh.publishes == before && !reply.empty()) send_no_responders(from, reply);
}

void Broker::route(detail::Shard& sh, const detail::Routes& r, std::string_view subject, std::string_view reply,
                   bool has_headers, const wire::Metadata& headers, const Slice& payload,
                   const detail::ClientLink* skip) {
  if (r.plain.empty() && r.groups.empty()) return;
  ++sh.depth;
  ++sh.publishes;
  auto one = [&](const detail::Route& t, std::string_view queue) {
    detail::ClientLink* link = t.link.get();
    // The subscription may be gone since the route was computed; its sid then finds nothing.
    if (link->shard == &sh) {
      if (!link->closed.load(std::memory_order_acquire) &&
          link->client->deliver(t.sid, subject, reply, has_headers, headers, payload)) {
        sh.loop->keep_next_spin();
      }
      return;
    }
    hand_over(sh, t, queue, subject, reply, has_headers, headers, payload);
  };
  for (const detail::Route& t : r.plain) {
    if (t.link.get() != skip) one(t, {});
  }
  for (const detail::RouteGroup& g : r.groups) {
    const detail::Route* pick = &g.members[sh.queue_cursor++ % g.members.size()];
    // Not to the publisher itself when it said so, if the group has anyone else.
    for (std::size_t i = 1; skip != nullptr && pick->link.get() == skip && i < g.members.size(); ++i) {
      pick = &g.members[sh.queue_cursor++ % g.members.size()];
    }
    if (pick->link.get() != skip) one(*pick, g.name);
  }
  --sh.depth;
}

void Broker::hand_over(detail::Shard& from, const detail::Route& to, std::string_view queue, std::string_view subject,
                       std::string_view reply, bool has_headers, const wire::Metadata& headers, const Slice& payload) {
  detail::Shard* target = to.link->shard;
  if (from.outboxes.size() <= target->index) from.outboxes.resize(target->index + 1);
  std::unique_ptr<detail::Outbox>& slot = from.outboxes[target->index];
  if (!slot) {
    slot = std::make_unique<detail::Outbox>();
    slot->to = target;
  }
  detail::Outbox& box = *slot;
  const bool first = !box.current;
  if (first) {
    {
      std::lock_guard<std::mutex> g(box.spare_mu);
      if (!box.spare.empty()) {
        box.current = std::move(box.spare.back());
        box.spare.pop_back();
      }
    }
    if (!box.current) box.current = std::make_unique<detail::Batch>();
  }
  detail::Batch& b = *box.current;
  if (first || box.last_publish != from.publishes) {
    // The message goes in once per batch, however many receivers it has on that shard.
    box.last_publish = from.publishes;
    detail::BatchMessage& m = b.messages.emplace_back();
    m.subject = u32(b.bytes.size());
    m.subject_len = u32(subject.size());
    b.bytes.append(subject);
    m.reply = u32(b.bytes.size());
    m.reply_len = u32(reply.size());
    b.bytes.append(reply);
    m.has_headers = has_headers;
    m.headers_begin = u32(b.header_fields.size());
    for (const auto& [k, v] : headers) {
      b.header_fields.push_back(u32(b.bytes.size()));
      b.header_fields.push_back(u32(k.size()));
      b.bytes.append(k);
      b.header_fields.push_back(u32(b.bytes.size()));
      b.header_fields.push_back(u32(v.size()));
      b.bytes.append(v);
    }
    m.headers_end = u32(b.header_fields.size());
    m.payload = payload;
  }
  detail::BatchItem& item = b.items.emplace_back();
  item.link = to.link.get();
  item.sid = to.sid;
  item.message = u32(b.messages.size() - 1);
  item.queue = u32(b.bytes.size());
  item.queue_len = u32(queue.size());
  b.bytes.append(queue);
  if (b.links.empty() || b.links.back() != to.link) b.links.push_back(to.link);
  // At the end of this loop turn, everything gathered for that shard goes over in one hand-off.
  if (first) from.loop->post([this, &from, &box] { send_batch(from, box); });
}

void Broker::send_batch(detail::Shard& from, detail::Outbox& box) {
  std::unique_ptr<detail::Batch> batch = std::move(box.current);
  if (!batch) return;
  box.to->loop->post([this, &box, batch = std::move(batch)]() mutable { deliver_batch(box, std::move(batch)); });
  // What answers these messages (a reply to a request) comes back through the other loop, later
  // than a spin lasts: unless this loop also wrote to a client of its own (keep_next_spin), it
  // sleeps at once when it runs out of work.
  from.loop->skip_next_spin();
}

void Broker::deliver_batch(detail::Outbox& box, std::unique_ptr<detail::Batch> batch) {
  detail::Batch& b = *batch;
  const std::string_view bytes = b.bytes;
  wire::Metadata& headers = box.to->scratch_headers;
  for (const detail::BatchItem& item : b.items) {
    const detail::BatchMessage& m = b.messages[item.message];
    const std::string_view subject = bytes.substr(m.subject, m.subject_len);
    const std::string_view reply = bytes.substr(m.reply, m.reply_len);
    headers.clear();
    for (std::uint32_t i = m.headers_begin; i < m.headers_end; i += 4) {
      headers.emplace_back(bytes.substr(b.header_fields[i], b.header_fields[i + 1]),
                           bytes.substr(b.header_fields[i + 2], b.header_fields[i + 3]));
    }
    detail::ClientLink* link = item.link;
    const bool taken = !link->closed.load(std::memory_order_acquire) &&
                       link->client->deliver(item.sid, subject, reply, m.has_headers, headers, m.payload);
    if (taken) box.to->loop->keep_next_spin();
    if (taken || item.queue_len == 0) continue;
    auto shared = std::make_shared<detail::SharedMessage>();
    shared->subject = std::string(subject);
    shared->reply = std::string(reply);
    shared->has_headers = m.has_headers;
    for (const auto& [k, v] : headers) shared->headers.emplace_back(std::string(k), std::string(v));
    shared->payload = m.payload;
    requeue(*link->loop, detail::Delivery{nullptr, item.sid, std::move(shared),
                                           std::string(bytes.substr(item.queue, item.queue_len)), 0});
  }
  headers.clear();
  b.clear();  // drops the payload and link references here, on the receiving shard
  std::lock_guard<std::mutex> g(box.spare_mu);
  if (box.spare.size() < kSpareBatches) box.spare.push_back(std::move(batch));
}

void Broker::requeue(io::EventLoop& at, detail::Delivery d) {
  if (++d.attempts > 3) {
    shard_of(at).stats.dropped.add(1);
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
    shard_of(at).stats.dropped.add(1);  // the group is gone entirely
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
  // Rare (a member left with messages on their way): one hand-off per message.
  io::EventLoop* to = d.link->loop;
  to->post([this, d = std::move(d)]() mutable {
    const bool taken = !d.link->closed.load(std::memory_order_acquire) && d.link->client->deliver(d.sid, *d.message);
    if (!taken) requeue(*d.link->loop, std::move(d));
  });
}

void Broker::send_no_responders(io::EventLoop& from, std::string_view reply) {
  shard_of(from).stats.no_responders.add(1);
  wire::Metadata status = {{kStatusHeader, kNoRespondersStatus}};
  publish(from, reply, {}, true, status, Slice());
}

// ---- SessionConnection ---------------------------------------------------------------------

void SessionConnection::send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply,
                                 bool has_headers, const wire::Metadata& headers, const Slice& payload) {
  session_.send_msg(sid, subject, reply, has_headers, headers, payload);
}

void SessionConnection::refuse(wire::FrameType op, std::uint64_t sid, std::string_view subject, const Status& why) {
  wire::PubSubError e;
  e.op = op;
  e.sid = sid;
  e.code = why.code();
  e.subject = subject;
  e.message = why.message();
  session_.send_frame(e);
}

// ---- BrokerClient --------------------------------------------------------------------------

BrokerClient::BrokerClient(Broker& broker, ClientConnection& conn, std::string name)
    : broker_(broker),
      conn_(conn),
      name_(std::move(name)),
      link_(std::make_shared<detail::ClientLink>()),
      shard_(&broker.make_shard(conn.loop())),
      responses_(kMaxResponsePermits, broker.options_.response_ttl) {
  link_->loop = &conn.loop();
  link_->shard = shard_;
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
      Status st = publish(p.subject, p.reply, p.has_headers, p.headers, p.payload);
      if (st.code() != StatusCode::kPermissionDenied) return st;
      conn_.refuse(wire::FrameType::kPub, 0, p.subject, st);
      return Status();
    }
    case wire::FrameType::kSub: {
      SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
      const auto& s = std::get<wire::Sub>(any);
      Status st = subscribe(s.sid, s.subject, s.queue, SubOptions{s.drop_oldest, s.backlog_msgs, s.backlog_bytes});
      if (st.code() != StatusCode::kPermissionDenied && st.code() != StatusCode::kOverloaded) return st;
      conn_.refuse(wire::FrameType::kSub, s.sid, s.subject, st);
      return Status();
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
                             const wire::Metadata& headers, const Slice& payload, const BrokerClient* except) {
  if (payload.size() > broker_.options_.max_payload) {
    return overloaded("payload of " + std::to_string(payload.size()) + " bytes exceeds max_payload " +
                      std::to_string(broker_.options_.max_payload));
  }
  if (subject.empty() || subject != valid_subject_) {
    SLIP_TRY(validate_publish_subject(subject, broker_.options_.limits));
    valid_subject_.assign(subject);
  }
  if (!reply.empty()) SLIP_TRY(validate_publish_subject(reply, broker_.options_.limits));
  if (identity_.permissions && !identity_.permissions->may_publish(subject) && !take_response(subject)) {
    return denied("publish to", subject);
  }
  ++stats_.msgs_in;
  stats_.bytes_in += payload.size();
  const detail::ClientLink* skip = echo_ ? (except != nullptr ? except->link_.get() : nullptr) : link_.get();
  if (has_headers && broker_.options_.on_traced_publish) {
    for (const auto& [k, v] : headers) {
      if (k != kTraceparentHeader) continue;
      TracedPublish t{v, subject, name_, wall_now_ns(), 0};
      const std::int64_t start = mono_now_ns();
      broker_.publish(*link_->loop, subject, reply, has_headers, headers, payload, skip);
      t.duration_ns = mono_now_ns() - start;
      broker_.options_.on_traced_publish(t);
      return Status();
    }
  }
  if (shard_stats_ != nullptr && (++publish_seq_ & (kPublishSampleEvery - 1)) == 0) {
    const std::int64_t start = mono_now_ns();
    broker_.publish(*link_->loop, subject, reply, has_headers, headers, payload, skip);
    shard_stats_->publish_ns.record(static_cast<std::uint64_t>(mono_now_ns() - start));
    return Status();
  }
  broker_.publish(*link_->loop, subject, reply, has_headers, headers, payload, skip);
  return Status();
}

Status BrokerClient::subscribe(std::uint64_t sid, std::string_view subject, std::string_view queue,
                               const SubOptions& options) {
  if (subs_.count(sid)) return invalid_argument("SUB: sid " + std::to_string(sid) + " is already in use");
  if (subs_.size() >= broker_.options_.max_subscriptions) {
    return overloaded("too many subscriptions (max_subscriptions " +
                      std::to_string(broker_.options_.max_subscriptions) + ")");
  }
  if (identity_.permissions) {
    SLIP_TRY(validate_subscription_subject(subject, broker_.options_.limits));
    if (!identity_.permissions->may_subscribe(subject)) return denied("subscribe to", subject);
  }
  auto sub = std::make_unique<detail::Subscription>();
  sub->link = link_;
  sub->sid = sid;
  sub->subject = std::string(subject);
  sub->queue = std::string(queue);
  SLIP_TRY(broker_.add(sub.get()));
  LocalSub local{std::move(sub), 0, 0, nullptr};
  if (options.drop_oldest) {
    const BrokerOptions& o = broker_.options_;
    local.backlog = std::make_unique<Backlog>();
    local.backlog->max_msgs = std::max<std::uint64_t>(1, options.backlog_msgs != 0 ? options.backlog_msgs : o.backlog_msgs);
    local.backlog->max_bytes =
        std::min<std::uint64_t>(options.backlog_bytes != 0 ? options.backlog_bytes : o.backlog_bytes, o.max_pending_bytes);
  }
  subs_[sid] = std::move(local);
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

Status BrokerClient::denied(std::string_view what, std::string_view subject) {
  broker_.stats_.permission_denied.fetch_add(1, std::memory_order_relaxed);
  Status s = permission_denied("permission denied: " + std::string(what) + " \"" + std::string(subject) +
                               "\" for user \"" + identity_.user + "\"");
  SLIP_LOG_DEBUG("{} ({}): {}", name_, conn_.peer_address(), s.message());
  return s;
}

std::int64_t BrokerClient::now_ns() const {
  return broker_.options_.clock ? broker_.options_.clock() : mono_now_ns();
}

void BrokerClient::remember_response(std::string_view reply) { responses_.grant(reply, now_ns()); }

bool BrokerClient::take_response(std::string_view subject) { return responses_.take(subject, now_ns()); }

void BrokerClient::set_identity(Identity identity) {
  identity_ = std::move(identity);
  responses_.clear();
  if (!identity_.permissions) return;
  std::vector<std::pair<std::uint64_t, std::string>> revoked;
  for (const auto& [sid, local] : subs_) {
    if (!identity_.permissions->may_subscribe(local.sub->subject)) revoked.emplace_back(sid, local.sub->subject);
  }
  for (const auto& [sid, subject] : revoked) {
    remove_sub(sid);
    conn_.refuse(wire::FrameType::kSub, sid, subject, denied("subscribe to", subject));
  }
}

void BrokerClient::remove_sub(std::uint64_t sid) {
  auto it = subs_.find(sid);
  if (it == subs_.end()) return;
  if (it->second.backlog && !it->second.backlog->items.empty()) {
    auto at = std::find(backlogged_.begin(), backlogged_.end(), sid);
    if (at != backlogged_.end()) backlogged_.erase(at);
  }
  broker_.remove(it->second.sub.get());
  subs_.erase(it);
}

bool BrokerClient::fits(std::size_t bytes) const {
  return conn_.pending_out_bytes() + bytes <= broker_.options_.max_pending_bytes;
}

void BrokerClient::note_slow(const char* what) {
  if (slow_logged_) return;
  slow_logged_ = true;
  shard_->stats.slow_consumers.add(1);
  SLIP_LOG_WARN("slow consumer '{}' ({}): {} bytes pending, limit {}: {}", name_, conn_.peer_address(),
                conn_.pending_out_bytes(), broker_.options_.max_pending_bytes, what);
}

void BrokerClient::cut_off() {
  const std::size_t pending = conn_.pending_out_bytes();
  note_slow("disconnecting it");
  conn_.fail(overloaded("slow consumer: " + std::to_string(pending) + " bytes waiting, limit " +
                        std::to_string(broker_.options_.max_pending_bytes)));
  close();
}

void BrokerClient::hold(std::uint64_t sid, Backlog& b, std::string_view subject, std::string_view reply,
                        bool has_headers, const wire::Metadata& headers, const Slice& payload, std::size_t cost) {
  note_slow("dropping the oldest messages of its drop-oldest subscriptions");
  if (b.items.empty()) backlogged_.push_back(sid);
  detail::SharedMessage m;
  m.subject = std::string(subject);
  m.reply = std::string(reply);
  m.has_headers = has_headers;
  m.headers.reserve(headers.size());
  for (const auto& [k, v] : headers) m.headers.emplace_back(std::string(k), std::string(v));
  m.payload = payload;  // shared, not copied
  b.items.emplace_back(std::move(m), cost);
  b.bytes += cost;
  while (b.items.size() > b.max_msgs || (b.bytes > b.max_bytes && b.items.size() > 1)) {
    b.bytes -= b.items.front().second;
    b.items.pop_front();
    ++b.dropped;
    ++dropped_;
    shard_->stats.dropped.add(1);
  }
}

bool BrokerClient::send_now(std::uint64_t sid, LocalSub& local, std::string_view subject, std::string_view reply,
                            bool has_headers, const wire::Metadata& headers, const Slice& payload) {
  if (const Permissions* p = identity_.permissions.get()) {
    if (!p->subscribe.deny.empty() && !p->may_receive(subject)) return true;  // filtered, not lost
    if (!reply.empty() && p->allow_responses && p->publish.restricted()) remember_response(reply);
  }
  conn_.send_msg(sid, subject, reply, has_headers, headers, payload);
  shard_->stats.messages_out.add(1);
  shard_->stats.bytes_out.add(payload.size());
  ++stats_.msgs_out;
  stats_.bytes_out += payload.size();
  ++local.delivered;
  if (local.max_msgs != 0 && local.delivered >= local.max_msgs) {
    remove_sub(sid);
    return false;
  }
  return true;
}

bool BrokerClient::deliver(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                           const wire::Metadata& headers, const Slice& payload) {
  if (closed_ || conn_.closed()) return false;
  auto it = subs_.find(sid);
  if (it == subs_.end()) return false;
  LocalSub& local = it->second;
  const std::size_t bytes = payload.size() + subject.size() + reply.size();
  if (Backlog* b = local.backlog.get()) {
    // Behind a backlog, a message waits its turn: the subscription's order is kept.
    if (!b->items.empty() || !fits(bytes)) {
      std::size_t cost = bytes + kBacklogOverhead;
      for (const auto& [k, v] : headers) cost += k.size() + v.size();
      hold(sid, *b, subject, reply, has_headers, headers, payload, cost);
      return true;
    }
  } else if (!fits(bytes)) {
    cut_off();
    return true;  // taken: the client is gone
  }
  if (backlogged_.empty()) slow_logged_ = false;
  send_now(sid, local, subject, reply, has_headers, headers, payload);
  return true;
}

void BrokerClient::on_drained() {
  if (closed_ || conn_.closed() || backlogged_.empty()) return;
  const std::size_t pending = conn_.pending_out_bytes();
  const std::size_t bound = broker_.options_.max_pending_bytes;
  std::size_t budget = pending < bound ? bound - pending : 0;
  // Frames written in this turn are not yet counted as pending: the budget keeps the total
  // under the bound. Backlogs take turns a message at a time, so none starves the others.
  std::size_t done = 0;  // backlogs emptied or gone, at the front of backlogged_
  bool room = true;
  while (room && done < backlogged_.size()) {
    room = false;
    for (std::size_t i = done; i < backlogged_.size(); ++i) {
      auto it = subs_.find(backlogged_[i]);
      Backlog* b = it == subs_.end() ? nullptr : it->second.backlog.get();
      if (b == nullptr || b->items.empty()) {
        std::swap(backlogged_[i], backlogged_[done++]);
        continue;
      }
      auto& [m, cost] = b->items.front();
      const std::size_t bytes = m.payload.size() + m.subject.size() + m.reply.size();
      if (bytes > budget) continue;
      budget -= bytes;
      room = true;
      detail::SharedMessage msg = std::move(m);
      b->bytes -= cost;
      b->items.pop_front();
      wire::Metadata headers;
      headers.reserve(msg.headers.size());
      for (const auto& [k, v] : msg.headers) headers.emplace_back(k, v);
      send_now(it->first, it->second, msg.subject, msg.reply, msg.has_headers, headers, msg.payload);
    }
  }
  // Keep the order of the rest: sids still waiting, oldest first.
  std::vector<std::uint64_t> still;
  for (std::uint64_t sid : backlogged_) {
    auto it = subs_.find(sid);
    if (it != subs_.end() && it->second.backlog && !it->second.backlog->items.empty()) still.push_back(sid);
  }
  backlogged_ = std::move(still);
  if (backlogged_.empty()) slow_logged_ = false;
}

BrokerClient::BacklogInfo BrokerClient::backlog(std::uint64_t sid) const {
  auto it = subs_.find(sid);
  if (it == subs_.end() || !it->second.backlog) return {};
  const Backlog& b = *it->second.backlog;
  return {b.items.size(), b.bytes, b.dropped};
}

bool BrokerClient::deliver(std::uint64_t sid, const detail::SharedMessage& m) {
  wire::Metadata headers;
  headers.reserve(m.headers.size());
  for (const auto& [k, v] : m.headers) headers.emplace_back(k, v);
  return deliver(sid, m.subject, m.reply, m.has_headers, headers, m.payload);
}

}  // namespace slip::broker
