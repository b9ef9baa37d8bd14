// Broker: subjects, subscriptions, queue groups and fan-out across the server's shards.
//
// Every client connection is a BrokerClient on its connection's loop, whatever protocol it
// speaks: the client's connection is reached through the small ClientConnection interface
// (native sessions: SessionConnection below; the NATS gateway has its own). A PUB is matched against one
// subscription index (Sublist) shared by all shards; each matching subscription gets the
// message, and each queue group gets it once, at one member chosen round robin. Receivers on
// the publisher's own shard are written to directly; receivers on other shards get it through
// that shard's outbox, handed over once per loop turn. All receivers share the payload's bytes:
// fan-out adds references, never copies.
//
// A PUB with a reply subject that matches nobody is answered at once with an empty message on
// the reply subject carrying the header ":status" = "503" (no responders), so a requester
// fails fast instead of waiting for its timeout.
//
// Slow consumers: every client has a bound on bytes waiting to be written to it. Past the bound
// the client is disconnected with an error saying so (the default). A subscription made with
// the drop-oldest policy instead keeps its messages in a bounded backlog of its own while the
// client is over the bound, losing the oldest when the backlog is full, and the backlog is
// written as soon as the connection drains. Either way it is counted and logged with the
// client's name, and nobody else waits.
//
// Threading: the index lives behind one mutex, taken by SUB and UNSUB. A PUB takes no lock:
// each shard keeps its own cache of routes (subject -> receivers), stamped with the index's
// generation, which every SUB and UNSUB advances; a route computed before the latest change is
// recomputed (under the mutex) on its next use. Counters are per shard and summed on read.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/auth.h"
#include "broker/responses.h"
#include "broker/sub_options.h"
#include "broker/sublist.h"
#include "core/histogram.h"
#include "io/event_loop.h"
#include "session/session.h"

namespace slip::broker {

// A PUB that carried a W3C `traceparent` header, as BrokerOptions::on_traced_publish sees it.
// Views are valid for the call.
struct TracedPublish {
  std::string_view traceparent;  // the header's value, unchecked
  std::string_view subject;
  std::string_view client;  // the publisher's name
  std::int64_t start_unix_ns = 0;
  std::int64_t duration_ns = 0;  // routing it: match, local writes, hand-over to other shards
};

struct BrokerOptions {
  SubjectLimits limits;
  // Bytes queued for one client before it counts as a slow consumer.
  std::size_t max_pending_bytes = 64u << 20;
  // A drop-oldest subscription's backlog bounds when its SUB leaves them 0. A SUB may ask for
  // more messages, but never for more bytes than max_pending_bytes. Each message counts its
  // subject, reply, headers and payload plus kBacklogOverhead bytes.
  std::size_t backlog_msgs = 10000;
  std::size_t backlog_bytes = 8u << 20;
  // Subscriptions one client may hold.
  std::size_t max_subscriptions = 100000;
  // Largest payload a client may publish.
  std::size_t max_payload = 8u << 20;
  // allow_responses (auth.h): a client may answer a message it received for this long after
  // its delivery (NATS's default is the same 2 minutes). 0: until answered; either way a client
  // holds at most kMaxResponsePermits, the oldest forgotten first.
  std::chrono::milliseconds response_ttl{120000};
  // Monotonic nanoseconds, read for response permits only; empty: the steady clock (tests
  // inject their own).
  std::function<std::int64_t()> clock;
  // Time the routing of one PUB in kPublishSampleEvery (ShardStats::publish_ns). Off, the
  // publish path reads no clock; the plain counters are kept either way.
  bool metrics = true;
  // Called (on the publisher's loop) for every PUB with a `traceparent` header, after routing
  // it: a tracer writes the broker's span from it. Empty: headers are not looked at.
  std::function<void(const TracedPublish&)> on_traced_publish;
};

struct BrokerStats {
  std::atomic<std::uint64_t> messages_in{0};
  std::atomic<std::uint64_t> messages_out{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> bytes_out{0};
  std::atomic<std::uint64_t> no_responders{0};
  std::atomic<std::uint64_t> slow_consumers{0};  // clients cut off or dropping
  std::atomic<std::uint64_t> dropped{0};         // messages dropped for slow consumers
  std::atomic<std::uint64_t> permission_denied{0};  // PUBs and SUBs refused by permissions
};

// One shard's (loop's) figures: recorded by that loop only, read by any thread (scrapes).
struct ShardStats {
  // Nanoseconds to route one PUB inside the broker: match, write to local receivers' queues,
  // hand over to other shards. Sampled: one PUB in kPublishSampleEvery per client.
  Histogram publish_ns;
};
inline constexpr std::uint32_t kPublishSampleEvery = 128;  // a power of two
inline constexpr std::size_t kBacklogOverhead = 64;
// Reply subjects one client may answer at once (allow_responses).
inline constexpr std::size_t kMaxResponsePermits = 1024;

// One client's traffic. Written on the client's loop only; read there too (the server collects
// connection details by posting to each loop), so plain integers suffice.
struct ClientStats {
  std::uint64_t msgs_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t msgs_out = 0;
  std::uint64_t bytes_out = 0;
};

class Broker;
class BrokerClient;

// What the broker needs from one client's connection, whatever protocol it speaks. Every call
// is made on the connection's loop.
class ClientConnection {
 public:
  virtual ~ClientConnection() = default;
  virtual io::EventLoop& loop() = 0;
  virtual std::string peer_address() const = 0;
  virtual bool closed() const = 0;
  // Bytes accepted for sending and not yet written to the socket: the slow-consumer measure.
  virtual std::size_t pending_out_bytes() const = 0;
  // Sends one message for subscription `sid`. Views are valid for the call only.
  virtual void send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                        const wire::Metadata& headers, const Slice& payload) = 0;
  // Tells the peer why and closes the connection.
  virtual void fail(const Status& reason) = 0;
  // Tells the peer that one SUB (`op` kSub, with its sid) or PUB (kPub, sid 0) was refused and
  // changed nothing; the connection continues. A protocol without such an answer may keep the
  // default, which closes the connection.
  virtual void refuse(wire::FrameType op, std::uint64_t sid, std::string_view subject, const Status& why) {
    (void)op, (void)sid, (void)subject;
    fail(why);
  }
};

// A native-protocol session as a ClientConnection: MSG frames on the session.
class SessionConnection final : public ClientConnection {
 public:
  explicit SessionConnection(session::Session& s) : session_(s) {}
  io::EventLoop& loop() override { return session_.connection().loop(); }
  std::string peer_address() const override { return session_.connection().peer_address(); }
  bool closed() const override { return session_.closed(); }
  std::size_t pending_out_bytes() const override { return session_.pending_out_bytes(); }
  void send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                const wire::Metadata& headers, const Slice& payload) override;
  void fail(const Status& reason) override { session_.fail(reason); }
  // A PUBSUB_ERROR frame.
  void refuse(wire::FrameType op, std::uint64_t sid, std::string_view subject, const Status& why) override;
  session::Session& session() { return session_; }

 private:
  session::Session& session_;
};

namespace detail {
struct Shard;

// A queue group message whose member left before it arrived, on its way to another member.
struct SharedMessage {
  std::string subject;
  std::string reply;
  bool has_headers = false;
  std::vector<std::pair<std::string, std::string>> headers;
  Slice payload;
};

// A client as other shards see it: where it lives and whether it is still there.
struct ClientLink {
  io::EventLoop* loop = nullptr;
  Shard* shard = nullptr;
  BrokerClient* client = nullptr;  // touched only on `loop`
  std::atomic<bool> closed{false};
};

// One receiver of a subject's messages, as a shard's route cache holds it.
struct Route {
  std::shared_ptr<ClientLink> link;
  std::uint64_t sid = 0;
};
struct RouteGroup {
  std::string name;
  std::vector<Route> members;  // non-empty
};
// Who gets a subject's messages, as of index generation `generation`.
struct Routes {
  std::string subject;
  std::uint64_t generation = 0;
  std::vector<Route> plain;
  std::vector<RouteGroup> groups;
};
struct Outbox;
struct Batch;

struct Subscription {
  std::shared_ptr<ClientLink> link;
  std::uint64_t sid = 0;
  std::string subject;
  std::string queue;
};

// A requeued queue group message for a member on another shard.
struct Delivery {
  std::shared_ptr<ClientLink> link;
  std::uint64_t sid = 0;
  std::shared_ptr<const SharedMessage> message;
  // For a queue group member: the group, so that a member that left meanwhile is replaced.
  std::string queue;
  int attempts = 0;
};
}  // namespace detail

// One connected client's pub/sub state. Lives on its connection's loop; created by the server
// when the connection is ready, closed when it ends. `conn` must outlive it.
class BrokerClient {
 public:
  BrokerClient(Broker& broker, ClientConnection& conn, std::string name);
  ~BrokerClient();
  BrokerClient(const BrokerClient&) = delete;
  BrokerClient& operator=(const BrokerClient&) = delete;

  // Native protocol: handles SUB, UNSUB and PUB; other frames are kUnimplemented. A SUB or PUB
  // refused by permissions (or a SUB over max_subscriptions) is answered through
  // ClientConnection::refuse and the result is OK; any other failed Status closes the session
  // with an ERROR frame.
  Status on_frame(const wire::Frame& f, const wire::WireLimits& limits);

  // The protocol-neutral operations every gateway maps its commands onto. Subjects are
  // validated here; a failed Status says what was wrong and changed nothing. An operation the
  // client's permissions forbid is kPermissionDenied, e.g.
  // `permission denied: publish to "x.y" for user "bob"`.
  // `except`: a client whose subscriptions do not get this message (a stream's capture client,
  // when the stream stores the message itself); ignored when echo is off.
  Status publish(std::string_view subject, std::string_view reply, bool has_headers, const wire::Metadata& headers,
                 const Slice& payload, const BrokerClient* except = nullptr);
  Status subscribe(std::uint64_t sid, std::string_view subject, std::string_view queue, const SubOptions& options = {});
  // max_msgs 0: now; n: after n messages in all have been delivered on `sid`.
  Status unsubscribe(std::uint64_t sid, std::uint64_t max_msgs);
  // Drops every subscription. Idempotent.
  void close();
  // The connection wrote everything it held: drop-oldest subscriptions' backlogs are sent,
  // as much as max_pending_bytes allows. The connection calls it on its loop.
  void on_drained();

  // Delivers one message to subscription `sid` of this client (on this client's loop). False
  // when the client or the subscription is gone (the message was not taken).
  bool deliver(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
               const wire::Metadata& headers, const Slice& payload);
  bool deliver(std::uint64_t sid, const detail::SharedMessage& m);

  // Who the client authenticated as (auth.h); without a call, everything is allowed. Called
  // again after a configuration reload: subscriptions the new permissions forbid are ended and
  // reported through ClientConnection::refuse (PERMISSION_DENIED).
  void set_identity(Identity identity);
  const std::string& user() const { return identity_.user; }

  // When false, this client's own publishes are not delivered to its own subscriptions (NATS
  // CONNECT "echo": false).
  void set_echo(bool echo) { echo_ = echo; }
  const std::string& name() const { return name_; }
  std::size_t subscriptions() const { return subs_.size(); }
  // Messages dropped by this client's drop-oldest subscriptions.
  std::uint64_t dropped() const { return dropped_; }
  const ClientStats& stats() const { return stats_; }
  // Calls fn(sid, subject, queue, delivered) for each subscription. On this client's loop.
  template <typename Fn>
  void for_each_subscription(Fn&& fn) const {
    for (const auto& [sid, local] : subs_) fn(sid, local.sub->subject, local.sub->queue, local.delivered);
  }
  // A drop-oldest subscription's figures (zeros for others or unknown sids). On the loop.
  struct BacklogInfo {
    std::size_t msgs = 0;
    std::size_t bytes = 0;
    std::uint64_t dropped = 0;
  };
  BacklogInfo backlog(std::uint64_t sid) const;

 private:
  friend class Broker;
  // Messages of a drop-oldest subscription held while the client is over its bound.
  struct Backlog {
    std::size_t max_msgs = 0;
    std::size_t max_bytes = 0;
    std::deque<std::pair<detail::SharedMessage, std::size_t>> items;  // message, its cost
    std::size_t bytes = 0;
    std::uint64_t dropped = 0;
  };
  struct LocalSub {
    std::unique_ptr<detail::Subscription> sub;
    std::uint64_t max_msgs = 0;  // 0: unlimited
    std::uint64_t delivered = 0;
    std::unique_ptr<Backlog> backlog;  // drop-oldest subscriptions only
  };

  void remove_sub(std::uint64_t sid);
  // True when `bytes` more fit under max_pending_bytes; otherwise the client is slow.
  bool fits(std::size_t bytes) const;
  // Disconnects a slow client (the default policy).
  void cut_off();
  void note_slow(const char* what);
  void hold(std::uint64_t sid, Backlog& b, std::string_view subject, std::string_view reply, bool has_headers,
            const wire::Metadata& headers, const Slice& payload, std::size_t cost);
  // Writes one message to the connection and counts it; may end the subscription (auto-unsub):
  // false then.
  bool send_now(std::uint64_t sid, LocalSub& local, std::string_view subject, std::string_view reply,
                bool has_headers, const wire::Metadata& headers, const Slice& payload);
  Status denied(std::string_view what, std::string_view subject);
  // allow_responses: reply subjects of messages delivered to this client, each good for one
  // PUB until BrokerOptions::response_ttl passes.
  void remember_response(std::string_view reply);
  bool take_response(std::string_view subject);
  std::int64_t now_ns() const;

  Broker& broker_;
  ClientConnection& conn_;
  std::string name_;
  std::shared_ptr<detail::ClientLink> link_;
  detail::Shard* shard_;  // of conn's loop
  std::unordered_map<std::uint64_t, LocalSub> subs_;
  std::vector<std::uint64_t> backlogged_;  // sids whose backlog is not empty, oldest first
  bool echo_ = true;
  bool slow_logged_ = false;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  Identity identity_;  // permissions null: everything allowed
  ResponsePermits responses_;
  ClientStats stats_;
  ShardStats* shard_stats_ = nullptr;  // null when metrics are off
  std::uint32_t publish_seq_ = 0;
  // The last subject this client published to, known valid: a stream of PUBs to one subject
  // is validated once.
  std::string valid_subject_;
};

class Broker {
 public:
  explicit Broker(BrokerOptions options = {});
  ~Broker();

  const BrokerOptions& options() const { return options_; }
  // Summed over the shards at the call: a snapshot.
  const BrokerStats& stats() const;
  std::size_t subscriptions() const;
  // Merges every shard's publish routing histogram. Any thread.
  HistogramSnapshot publish_latency() const;
  // This loop's figures, made on first use (never on the publish path: clients look it up once).
  ShardStats& shard_stats(io::EventLoop& loop);

 private:
  friend class BrokerClient;

  Status add(detail::Subscription* sub);
  void remove(detail::Subscription* sub);
  // Routes one PUB from a client on `from`. Views stay valid for the call. Subscriptions of
  // `skip` (the publisher, when it asked not to hear itself) get nothing.
  void publish(io::EventLoop& from, std::string_view subject, std::string_view reply, bool has_headers,
               const wire::Metadata& headers, const Slice& payload, const detail::ClientLink* skip = nullptr);
  void send_no_responders(io::EventLoop& from, std::string_view reply);
  // A queue group message whose member left before it arrived goes to another member.
  void requeue(io::EventLoop& at, detail::Delivery d);

  // The shard of `loop` (made on first use); the calling thread's last answer is remembered.
  detail::Shard& shard_of(io::EventLoop& loop);
  detail::Shard& make_shard(io::EventLoop& loop);
  // The routes of `subject` on `shard`, current with the index (computed on a miss).
  const detail::Routes& routes_for(detail::Shard& shard, std::string_view subject);
  void compute_routes(std::string_view subject, detail::Routes& out);
  // Delivers one PUB along `r`: directly on this shard, through outboxes to the others.
  void route(detail::Shard& shard, const detail::Routes& r, std::string_view subject, std::string_view reply,
             bool has_headers, const wire::Metadata& headers, const Slice& payload, const detail::ClientLink* skip);
  // Queues one message for a receiver on another shard, in the batch for that shard.
  void hand_over(detail::Shard& from, const detail::Route& to, std::string_view queue, std::string_view subject,
                 std::string_view reply, bool has_headers, const wire::Metadata& headers, const Slice& payload);
  void send_batch(detail::Shard& from, detail::Outbox& box);
  void deliver_batch(detail::Outbox& box, std::unique_ptr<detail::Batch> batch);

  BrokerOptions options_;
  const std::uint64_t id_;  // tells brokers apart in the per-thread shard memo
  mutable BrokerStats stats_;  // the last snapshot stats() took
  mutable std::mutex mu_;
  Sublist index_;                              // guarded by mu_
  std::uint64_t queue_cursor_ = 0;             // guarded by mu_: round robin for requeued messages
  // Advanced (under mu_) by every change of index_; read without a lock by publishers.
  std::atomic<std::uint64_t> generation_{1};
  mutable std::mutex shards_mu_;
  std::vector<std::unique_ptr<detail::Shard>> shards_;  // guarded by shards_mu_; never shrinks
  mutable std::mutex shard_stats_mu_;
  // Never removed while the broker lives, so a client may keep a pointer.
  std::vector<std::pair<io::EventLoop*, std::unique_ptr<ShardStats>>> shard_stats_;  // guarded by shard_stats_mu_
};

}  // namespace slip::broker
