// StreamService: persistent streams on the native protocol (LOG_PUBLISH, LOG_ACK and the
// STREAM_REQUEST / STREAM_RESPONSE / STREAM_MSG frames of docs/protocol.md) and the capture of
// ordinary PUBs into streams.
//
// Capture: the service is a broker client of its own, living on one loop (the capture loop),
// subscribed to every stream's subjects. A PUB on a matching subject reaches it like any
// subscriber (sharing the payload's bytes) and is appended to the stream's log.
//
// LOG_PUBLISH: the message goes to ordinary subscribers as a PUB would (the capture
// subscription excepted) and is appended to its stream directly; LOG_ACK follows once the log
// says the record is as durable as the stream's fsync policy promises. The log's callback runs
// on its writer thread and only hands the ack to the session's loop: no loop waits for a disk.
// Acks travel through one outbox per loop, which the writer posts to only when it was empty, so
// a group commit of N records costs the loop one wake-up, not N.
//
// Consumers (consumer_service.h) live on the capture loop too: consumer operations are handed
// over to it, and their answers come back to the session's loop.
//
// Thread safety: on_frame runs on the session's loop; the capture client and the consumers are
// touched only on the capture loop; StreamManager is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/broker.h"
#include "io/event_loop.h"
#include "log/consumer_service.h"
#include "log/stream.h"
#include "session/session.h"

namespace slip::log {

struct StreamServiceOptions {
  ConsumerServiceOptions consumers;
  // Records one STREAM_REQUEST read returns at most (and bytes, payloads and fields).
  std::size_t max_read_msgs = 1000;
  std::size_t max_read_bytes = 1u << 20;
  // Times every LOG_PUBLISH from arrival to acknowledgement (StreamMetrics::ack_latency_ns):
  // two clock reads per acknowledged publish. Off: the histogram stays empty.
  bool time_acks = true;
};

class StreamService {
 public:
  // `broker` and `capture_loop` must outlive the service. Without `streams` (no data directory)
  // every LOG_PUBLISH and STREAM_REQUEST is refused with FAILED_PRECONDITION.
  StreamService(broker::Broker& broker, io::EventLoop& capture_loop, std::unique_ptr<StreamManager> streams,
                StreamServiceOptions options = {});
  ~StreamService();

  // Subscribes the capture client to every stream's subjects. Call once the capture loop runs,
  // from another thread: waits for the loop.
  Status start();
  // Ends the capture subscriptions (waits for the capture loop, if it still runs) and closes
  // every log. Idempotent.
  void stop();

  // A frame in the persistent-stream range from a native session, on the session's loop.
  // `client` is the session's broker client (LOG_PUBLISH also reaches ordinary subscribers, with
  // the client's permissions). Errors the peer caused are answered in LOG_ACK or
  // STREAM_RESPONSE; a failed Status closes the session.
  Status on_frame(session::Session& s, broker::BrokerClient& client, const wire::Frame& f,
                  const wire::WireLimits& limits);

  // The session closed: its ephemeral consumers, waiting fetches and push subscriptions end.
  // On the session's loop.
  void on_session_closed(session::Session& s);

  StreamManager* streams() { return streams_.get(); }
  // Every consumer's figures, gathered on the capture loop; `done` runs there (with nothing when
  // streams are off). Any thread but the capture loop's may wait for it.
  void collect_consumers(std::function<void(std::vector<ConsumerFigures>)> done);

 private:
  class CaptureConnection;
  class AckOutbox;
  // The outbox of `loop` (made on first use); valid until the service is destroyed.
  AckOutbox& outbox_for(io::EventLoop& loop);
  AckOutbox& find_outbox(io::EventLoop& loop);

  // `p` is decoded from `f`.
  void on_publish(session::Session& s, broker::BrokerClient& client, const wire::Frame& f, const wire::LogPublish& p);
  void on_request(session::Session& s, const wire::StreamRequest& q, const wire::WireLimits& limits);
  // Capture loop only.
  void capture(std::uint64_t sid, std::string_view subject, bool has_headers, const wire::Metadata& headers,
               const Slice& payload);
  Status subscribe_stream(const std::shared_ptr<Stream>& s);
  void unsubscribe_stream(const std::string& name);

  broker::Broker& broker_;
  io::EventLoop& capture_loop_;
  std::unique_ptr<StreamManager> streams_;
  const StreamServiceOptions options_;
  const std::uint64_t serial_;  // tells this service's outboxes apart in a thread's cache
  std::unique_ptr<CaptureConnection> capture_conn_;
  std::unique_ptr<broker::BrokerClient> capture_;  // capture loop only
  std::shared_ptr<ConsumerService> consumers_;     // capture loop only
  std::unordered_map<std::uint64_t, std::weak_ptr<Stream>> capture_sids_;  // capture loop only
  std::unordered_map<std::string, std::vector<std::uint64_t>> sids_of_;     // capture loop only
  std::uint64_t next_sid_ = 1;                                              // capture loop only
  bool stopped_ = false;
  std::mutex outboxes_mu_;
  std::vector<std::pair<io::EventLoop*, std::shared_ptr<AckOutbox>>> outboxes_;  // guarded by outboxes_mu_
};

}  // namespace slip::log
