// ConsumerService: the consumers of every stream, served on one loop (the stream service's
// capture loop), for the consumer operations of STREAM_REQUEST (docs/protocol.md).
//
// Threading. Every consumer's state, its timers (ack wait, fetch expiry, ephemeral inactivity)
// and its waiting fetches and push subscription live on the capture loop. Sessions on other
// loops hand requests over with post(); answers (STREAM_MSG, STREAM_RESPONSE) are posted back to
// the session's loop. Messages are read from the stream's Log on the capture loop (Log reads are
// thread-safe). A stream's writer thread wakes waiting consumers through Stream's append
// listener, which only posts to the capture loop. Durable state goes to disk on the service's
// own writer thread (temporary file, fsync, rename, directory fsync), so no loop waits on fsync:
// an ACK of a durable consumer is answered once the state that includes it is on disk, and state
// writes coalesce (one write covers every change made while the previous one ran).
//
// Files: <stream dir>/consumers/<name>/consumer.conf (the configuration, "key=value" lines) and
// <stream dir>/consumers/<name>/state (encode_consumer_state).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/event_loop.h"
#include "log/consumer.h"
#include "log/stream.h"
#include "session/session.h"
#include "wire/frames.h"

namespace slip::log {

struct ConsumerServiceOptions {
  std::size_t max_consumers_per_stream = 1024;
  std::size_t max_waiting_fetches = 512;     // per consumer
  std::size_t max_fetch_msgs = 1000;         // one fetch's batch bound
  std::size_t max_fetch_bytes = 1u << 20;
  std::size_t push_batch_msgs = 256;         // one push hand-over to the session's loop
  std::size_t push_batch_bytes = 1u << 20;
  std::int64_t max_fetch_expiry_ms = 3'600'000;
  // Monotonic nanoseconds (ack wait, expiry, inactivity); tests may inject one.
  std::function<std::int64_t()> clock;
};

// Where a request came from: its answers go to this session, on its loop.
struct ConsumerRequester {
  std::weak_ptr<session::Session> session;
  io::EventLoop* loop = nullptr;
  std::uint64_t request_id = 0;
  wire::WireLimits limits;
  const void* key = nullptr;  // the session's identity, for ephemeral consumers and cleanup
};

using OwnedFields = std::vector<std::pair<std::string, std::string>>;

// One consumer as of one read, for metrics and the HTTP API.
struct ConsumerFigures {
  std::string stream;
  std::string name;
  bool durable = false;
  bool push_bound = false;
  std::string ack_policy;
  ConsumerStats stats;
  std::uint64_t num_pending = 0;  // matching messages not yet delivered (bounded scan with a filter)
  std::uint64_t num_waiting = 0;  // pull requests waiting for messages
};

class ConsumerService : public std::enable_shared_from_this<ConsumerService> {
 public:
  // Made, used and destroyed on `loop` only. `streams` outlives the service.
  ConsumerService(io::EventLoop& loop, StreamManager& streams, ConsumerServiceOptions options = {});
  ~ConsumerService();
  ConsumerService(const ConsumerService&) = delete;
  ConsumerService& operator=(const ConsumerService&) = delete;

  // Opens the durable consumers of every stream. A consumer whose files are damaged is an error
  // (the server must not forget acknowledgements); a directory without consumer.conf (a creation
  // cut short) is removed.
  Status load();
  // A consumer operation (StreamOp 6-13).
  void handle(wire::StreamOp op, OwnedFields args, ConsumerRequester from);
  // The session is gone: its waiting fetches and push subscriptions end, its ephemeral consumers
  // are removed.
  void session_closed(const void* key);
  // The stream was deleted (its directory with it): its consumers go.
  void stream_removed(const std::string& stream);
  // Writes what is pending and stops the writer thread (waits for it). Idempotent.
  void shutdown();
  // Every consumer, by stream then name.
  std::vector<ConsumerFigures> figures() const;

 private:
  struct Runtime;
  struct Fetch;
  class Writer;
  using RuntimePtr = std::shared_ptr<Runtime>;

  std::int64_t now() const { return options_.clock(); }
  RuntimePtr find(const std::string& stream, const std::string& name) const;
  void add(const OwnedFields& args, const ConsumerRequester& from);
  void fetch(const RuntimePtr& r, const OwnedFields& args, const ConsumerRequester& from);
  void ack(const RuntimePtr& r, const OwnedFields& args, const ConsumerRequester& from);
  void remove(const RuntimePtr& r, const ConsumerRequester* from);
  void subscribe(const RuntimePtr& r, const ConsumerRequester& from);
  void unsubscribe(const RuntimePtr& r, const ConsumerRequester& from);
  OwnedFields info_fields(const Runtime& r) const;
  ConsumerFigures figures_of(const Runtime& r) const;

  Result<std::uint64_t> start_sequence(Stream& s, const ConsumerConfig& c) const;
  void attach(const RuntimePtr& r);
  void detach(Runtime& r);

  struct Delivery;
  // Takes up to max_msgs / max_bytes deliveries from the consumer (redeliveries first).
  std::vector<Delivery> collect(Runtime& r, std::size_t max_msgs, std::size_t max_bytes, bool& more);
  void pump(const RuntimePtr& r);
  void send_push(const RuntimePtr& r, std::vector<Delivery> batch);
  void answer_fetch(const ConsumerRequester& to, std::vector<Delivery> got);
  void arm_ack_timer(const RuntimePtr& r);
  void arm_inactivity_timer(const RuntimePtr& r);
  void on_appended(const std::string& stream);
  // Durable state: a write of the current state; `done` runs once it (or a later one) is on disk.
  void persist(const RuntimePtr& r, std::function<void(Status)> done = {});
  void write_state(const RuntimePtr& r);

  io::EventLoop& loop_;
  StreamManager& streams_;
  ConsumerServiceOptions options_;
  std::unique_ptr<Writer> writer_;
  // stream name -> consumer name -> runtime
  std::map<std::string, std::map<std::string, RuntimePtr>> consumers_;
  std::uint64_t next_ephemeral_ = 1;
  std::uint64_t next_push_id_ = 1;
};

}  // namespace slip::log
