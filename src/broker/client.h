// PubSubClient: publish, subscribe and request/reply against a broker, over a reconnecting
// session. Subscriptions survive reconnects: they are sent again on every new session.
//
// Request/reply: each client subscribes once to its own inbox wildcard "_INBOX.<id>.>" and
// gives every request a fresh reply subject under it, so replies need no per-request SUB. A
// request ends with the reply, with kNotFound when no responder exists (the broker answers
// for it at once), or with kTimeout.
//
// Refusals: a SUB or PUB the broker refuses (permissions, the subscription limit) comes back
// as a PUBSUB_ERROR and the connection continues. A refused subscription is dropped (its
// handler never runs); a refused request fails with the broker's status; every refusal is
// also reported to the on_refused callback.
//
// Every method and callback runs on the loop given to the constructor.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/sub_options.h"
#include "session/client.h"

namespace slip::broker {

// A received message; views are valid during the callback only.
struct Message {
  std::string_view subject;
  std::string_view reply;
  const wire::Metadata* headers = nullptr;  // null when the message had none
  Slice payload;
};

using MessageHandler = std::function<void(const Message&)>;
using ReplyHandler = std::function<void(Result<Message>)>;

// Persistent streams (docs/protocol.md, LOG_PUBLISH and STREAM_REQUEST).
// The sequence a LOG_PUBLISH was stored at, or why it was not.
using AckHandler = std::function<void(Result<std::uint64_t>)>;
using StreamFields = std::vector<std::pair<std::string, std::string>>;
// A stream request's result fields, or its error.
using StreamReplyHandler = std::function<void(Result<StreamFields>)>;
// One stored message read or fetched by a stream request; views valid during the callback.
struct StoredMessage {
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;
  std::uint64_t deliveries = 0;
  std::string_view subject;
  const wire::Metadata* headers = nullptr;
  Slice payload;
};
using StoredMessageHandler = std::function<void(const StoredMessage&)>;

// Consumers (docs/streams.md, "Consumers").
enum class AckKind : std::uint8_t {
  kAck,   // processed
  kNak,   // redeliver now
  kTerm,  // never redeliver
};
struct FetchOptions {
  std::size_t batch = 1;                 // at most this many messages (the broker bounds it: 1000)
  std::size_t max_bytes = 0;             // payload bytes; 0: the broker's bound (1 MiB)
  std::chrono::milliseconds expires{0};  // wait this long for a first message; 0: answer at once
};
// How many messages a fetch delivered (0: none arrived before it expired), or its error.
using FetchHandler = std::function<void(Result<std::size_t>)>;
using StatusHandler = std::function<void(Status)>;

// A SUB or PUB the broker refused.
struct Refusal {
  wire::FrameType op = wire::FrameType::kPub;  // kSub or kPub
  std::uint64_t sid = 0;                       // the subscription, for kSub
  std::string subject;
  Status status;  // e.g. PERMISSION_DENIED: permission denied: publish to "x.y" for user "bob"
};

class PubSubClient final : public session::SessionHandler {
 public:
  // `loop` must outlive the client.
  PubSubClient(io::EventLoop& loop, session::ClientOptions options);
  ~PubSubClient() override;

  // Connects (and reconnects). on_ready, if set, runs after each handshake.
  void start(std::function<void()> on_ready = {});
  // Sends GOAWAY and stops reconnecting.
  void stop();
  bool ready() const;

  // kDisconnected while not connected.
  Status publish(std::string_view subject, Slice payload, std::string_view reply = {},
                 const wire::Metadata* headers = nullptr);
  // Returns the subscription id. `queue` non-empty: one member of the group gets each message.
  // `options.drop_oldest`: when this client falls behind, the broker drops this subscription's
  // oldest messages instead of disconnecting the client.
  Result<std::uint64_t> subscribe(std::string_view subject, std::string_view queue, MessageHandler handler,
                                  const SubOptions& options = {});
  // max_msgs 0: now (messages the broker routed here before it took the UNSUB are still
  // delivered); n: after n more messages.
  void unsubscribe(std::uint64_t sid, std::uint64_t max_msgs = 0);
  // Sends a request and calls `done` once with the reply, kNotFound (no responders) or kTimeout.
  Status request(std::string_view subject, Slice payload, std::chrono::milliseconds timeout, ReplyHandler done);

  // Calls `done` once the broker has answered a PING sent after everything sent so far, so
  // any refusal of earlier SUBs and PUBs has been reported by then. kDisconnected while not
  // connected.
  Status flush(std::function<void()> done);

  // Publishes to the stream that captures `subject` and calls `done` once: with the stored
  // sequence when the broker acknowledges it (durable per the stream's fsync policy), or with
  // the broker's error (NOT_FOUND: no stream for the subject), or kDisconnected when the
  // connection closes first (the message may or may not be stored: publish it again with the
  // same Slip-Msg-Id header and the stream's de-duplication makes it count once).
  // At most ack_window() publishes are unanswered at once; later ones wait in the client, up to
  // max_queued_publishes, past which the call is kOverloaded.
  Status publish_acked(std::string_view subject, Slice payload, const wire::Metadata* headers, AckHandler done);
  void set_ack_window(std::size_t window) { ack_window_ = window == 0 ? 1 : window; }
  std::size_t ack_window() const { return ack_window_; }
  std::size_t unacked() const { return unanswered_ + queued_.size(); }
  static constexpr std::size_t kMaxQueuedPublishes = 1u << 16;

  // Sends one STREAM_REQUEST; `on_msg` gets the STREAM_MSG frames sent for it (reads and
  // fetches), `done` its STREAM_RESPONSE (or kDisconnected).
  Status stream_request(wire::StreamOp op, const StreamFields& args, StreamReplyHandler done,
                        StoredMessageHandler on_msg = {});

  // Consumers of a stream. `config` holds the CONSUMER_ADD arguments besides "stream" (name,
  // durable, deliver, filter, ack, ack_wait_ms, ...; docs/protocol.md); `done` gets the
  // consumer's info fields (an ephemeral consumer's generated name in "name").
  Status add_consumer(std::string_view stream, const StreamFields& config, StreamReplyHandler done);
  // Pull: up to options.batch messages, each to `on_msg` (StoredMessage::deliveries counts its
  // deliveries, 1 the first time), then `done` with their number. With options.expires, a fetch
  // finding nothing waits that long for messages to arrive.
  Status fetch(std::string_view stream, std::string_view consumer, const FetchOptions& options,
               StoredMessageHandler on_msg, FetchHandler done);
  // Acknowledges delivered messages (at most 4096 per call); `done` runs once the broker applied
  // it and, for a durable consumer, wrote it to disk.
  Status ack(std::string_view stream, std::string_view consumer, const std::vector<std::uint64_t>& sequences,
             AckKind kind, StatusHandler done);
  // Push: the consumer's messages flow to `on_msg` (within its max_ack_pending) until the
  // subscription ends (unsubscribe_consumer, deletion, or the connection closing), which `done`
  // reports. One push subscriber per consumer.
  Status subscribe_consumer(std::string_view stream, std::string_view consumer, StoredMessageHandler on_msg,
                            StreamReplyHandler done);
  Status unsubscribe_consumer(std::string_view stream, std::string_view consumer, StatusHandler done);

  // Runs for every SUB or PUB the broker refused.
  void set_on_refused(std::function<void(const Refusal&)> f) { on_refused_ = std::move(f); }
  // Runs after every session close (the client may reconnect afterwards).
  void set_on_closed(std::function<void(const Status&)> f) { on_closed_ = std::move(f); }

  session::Client& client() { return client_; }
  io::EventLoop& loop() { return loop_; }

  // session::SessionHandler
  void on_ready(session::Session& s) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_pong(session::Session& s, std::int64_t rtt_ns) override;
  void on_closed(session::Session& s, const Status& reason) override;

 private:
  struct Sub {
    std::string subject;
    std::string queue;
    MessageHandler handler;
    SubOptions options;
    bool draining = false;  // UNSUB sent; messages already routed here are still delivered
  };
  struct Pending {
    std::string subject;  // to match a refused request PUB
    ReplyHandler done;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  struct QueuedPublish {
    std::string subject;
    std::vector<std::pair<std::string, std::string>> headers;
    bool has_headers = false;
    Slice payload;
    AckHandler done;
  };
  struct StreamCall {
    StreamReplyHandler done;
    StoredMessageHandler on_msg;
  };
  // A LOG_PUBLISH sent and not yet answered. Request ids rise, so the entries are in id order;
  // an ack that overtakes older ones leaves its entry behind as answered until they go.
  struct SentPublish {
    std::uint64_t id;
    AckHandler done;
    bool answered = false;
  };
  void send_publish(std::string_view subject, const wire::Metadata* headers, Slice payload, AckHandler done);
  void send_publish(QueuedPublish q);
  Status on_log_ack(const wire::LogAck& a);
  Status on_stream_frame(const wire::Frame& f, const wire::WireLimits& limits);
  void fail_stream_calls(const Status& why);

  void send_sub(std::uint64_t sid, const Sub& s);
  void finish_request(std::uint64_t id, Result<Message> r);
  Status on_refusal(const wire::Frame& f, const wire::WireLimits& limits);

  io::EventLoop& loop_;
  session::Client client_;
  std::function<void()> on_ready_;
  std::function<void(const Status&)> on_closed_;
  std::function<void(const Refusal&)> on_refused_;
  std::deque<std::function<void()>> flushes_;  // waiting for PONGs, oldest first
  std::map<std::uint64_t, Sub> subs_;
  std::uint64_t next_sid_ = 1;
  std::string inbox_prefix_;  // "_INBOX.<random>."
  std::uint64_t inbox_sid_ = 0;
  std::uint64_t next_request_ = 1;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::size_t ack_window_ = 1024;
  std::uint64_t next_publish_id_ = 1;
  std::deque<SentPublish> acks_;  // LOG_PUBLISH sent, LOG_ACK awaited (some may be answered)
  std::size_t unanswered_ = 0;    // entries of acks_ not answered
  std::deque<QueuedPublish> queued_;                    // waiting for room in the window
  std::uint64_t next_stream_call_ = 1;
  std::unordered_map<std::uint64_t, StreamCall> stream_calls_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slip::broker
