// PubSubClient's persistent-stream calls: LOG_PUBLISH with its LOG_ACK, and STREAM_REQUEST with
// the STREAM_MSG and STREAM_RESPONSE frames that answer it.
#include "broker/client.h"

#include <algorithm>
#include <cstdlib>

namespace slip::broker {

Status PubSubClient::publish_acked(std::string_view subject, Slice payload, const wire::Metadata* headers,
                                   AckHandler done) {
  if (!ready()) return disconnected("not connected to the broker");
  if (unanswered_ < ack_window_ && queued_.empty()) {
    // Room in the window: straight out, nothing copied.
    send_publish(subject, headers, std::move(payload), std::move(done));
    return Status();
  }
  if (queued_.size() >= kMaxQueuedPublishes) {
    return overloaded("too many acknowledged publishes waiting (" + std::to_string(queued_.size()) + ")");
  }
  QueuedPublish q;
  q.subject = std::string(subject);
  if (headers != nullptr) {
    q.has_headers = true;
    for (const auto& [k, v] : *headers) q.headers.emplace_back(k, v);
  }
  q.payload = std::move(payload);
  q.done = std::move(done);
  queued_.push_back(std::move(q));
  return Status();
}

void PubSubClient::send_publish(std::string_view subject, const wire::Metadata* headers, Slice payload,
                                AckHandler done) {
  const std::uint64_t id = next_publish_id_++;
  wire::LogPublish p;
  p.request_id = id;
  p.subject = subject;
  if (headers != nullptr) {
    p.has_headers = true;
    p.headers = *headers;
  }
  p.payload = std::move(payload);
  acks_.push_back(SentPublish{id, std::move(done)});
  ++unanswered_;
  client_.session()->send_frame(p);
}

void PubSubClient::send_publish(QueuedPublish q) {
  wire::Metadata headers;
  for (const auto& [k, v] : q.headers) headers.emplace_back(k, v);
  send_publish(q.subject, q.has_headers ? &headers : nullptr, std::move(q.payload), std::move(q.done));
}

Status PubSubClient::on_log_ack(const wire::LogAck& a) {
  // Acks come in the order of their publishes: the oldest entry, almost always.
  auto it = acks_.begin();
  if (it == acks_.end() || it->id != a.request_id) {
    it = std::lower_bound(acks_.begin(), acks_.end(), a.request_id,
                          [](const SentPublish& e, std::uint64_t id) { return e.id < id; });
  }
  if (it == acks_.end() || it->id != a.request_id || it->answered) {
    return invalid_argument("LOG_ACK for unknown request " + std::to_string(a.request_id));
  }
  AckHandler done = std::move(it->done);
  it->answered = true;
  --unanswered_;
  while (!acks_.empty() && acks_.front().answered) acks_.pop_front();
  // Refill the window before the callback, which may publish again.
  while (!queued_.empty() && unanswered_ < ack_window_ && ready()) {
    QueuedPublish q = std::move(queued_.front());
    queued_.pop_front();
    send_publish(std::move(q));
  }
  if (a.code == StatusCode::kOk) {
    done(a.sequence);
  } else {
    done(Status(a.code, a.message));
  }
  return Status();
}

Status PubSubClient::stream_request(wire::StreamOp op, const StreamFields& args, StreamReplyHandler done,
                                    StoredMessageHandler on_msg) {
  if (!ready()) return disconnected("not connected to the broker");
  const std::uint64_t id = next_stream_call_++;
  wire::StreamRequest q;
  q.request_id = id;
  q.op = op;
  for (const auto& [k, v] : args) q.args.emplace_back(k, v);
  stream_calls_.emplace(id, StreamCall{std::move(done), std::move(on_msg)});
  client_.session()->send_frame(q);
  return Status();
}

Status PubSubClient::add_consumer(std::string_view stream, const StreamFields& config, StreamReplyHandler done) {
  StreamFields args = {{"stream", std::string(stream)}};
  args.insert(args.end(), config.begin(), config.end());
  return stream_request(wire::StreamOp::kConsumerAdd, args, std::move(done));
}

Status PubSubClient::fetch(std::string_view stream, std::string_view consumer, const FetchOptions& options,
                           StoredMessageHandler on_msg, FetchHandler done) {
  StreamFields args = {{"stream", std::string(stream)},
                       {"name", std::string(consumer)},
                       {"batch", std::to_string(options.batch)}};
  if (options.max_bytes != 0) args.emplace_back("max_bytes", std::to_string(options.max_bytes));
  if (options.expires.count() > 0) args.emplace_back("expires_ms", std::to_string(options.expires.count()));
  return stream_request(
      wire::StreamOp::kConsumerFetch, args,
      [done = std::move(done)](Result<StreamFields> r) {
        if (!r.is_ok()) return done(r.status());
        std::size_t n = 0;
        for (const auto& [k, v] : *r) {
          if (k == "delivered") n = static_cast<std::size_t>(std::strtoull(v.c_str(), nullptr, 10));
        }
        done(n);
      },
      std::move(on_msg));
}

Status PubSubClient::ack(std::string_view stream, std::string_view consumer, const std::vector<std::uint64_t>& sequences,
                         AckKind kind, StatusHandler done) {
  if (sequences.empty()) return invalid_argument("ack: no sequences");
  std::string seqs;
  for (std::uint64_t s : sequences) {
    if (!seqs.empty()) seqs += ',';
    seqs += std::to_string(s);
  }
  const char* k = kind == AckKind::kAck ? "ack" : kind == AckKind::kNak ? "nak" : "term";
  StreamFields args = {{"stream", std::string(stream)}, {"name", std::string(consumer)}, {"seqs", seqs}, {"kind", k}};
  return stream_request(wire::StreamOp::kConsumerAck, args,
                        [done = std::move(done)](Result<StreamFields> r) { done(r.status()); });
}

Status PubSubClient::subscribe_consumer(std::string_view stream, std::string_view consumer,
                                        StoredMessageHandler on_msg, StreamReplyHandler done) {
  return stream_request(wire::StreamOp::kConsumerSubscribe,
                        {{"stream", std::string(stream)}, {"name", std::string(consumer)}}, std::move(done),
                        std::move(on_msg));
}

Status PubSubClient::unsubscribe_consumer(std::string_view stream, std::string_view consumer, StatusHandler done) {
  return stream_request(wire::StreamOp::kConsumerUnsubscribe,
                        {{"stream", std::string(stream)}, {"name", std::string(consumer)}},
                        [done = std::move(done)](Result<StreamFields> r) { done(r.status()); });
}

Status PubSubClient::on_stream_frame(const wire::Frame& f, const wire::WireLimits& limits) {
  if (f.type == wire::FrameType::kLogAck) {
    SLIP_ASSIGN_OR_RETURN(wire::LogAck a, wire::decode_log_ack(f));
    return on_log_ack(a);
  }
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
  if (auto* m = std::get_if<wire::StreamMsg>(&any)) {
    auto it = stream_calls_.find(m->request_id);
    if (it == stream_calls_.end()) return Status();  // a call given up on
    if (it->second.on_msg) {
      StoredMessage sm{m->sequence, m->timestamp_ns, m->deliveries, m->subject,
                       m->has_headers ? &m->headers : nullptr, std::move(m->payload)};
      it->second.on_msg(sm);
    }
    return Status();
  }
  auto& r = std::get<wire::StreamResponse>(any);
  auto it = stream_calls_.find(r.request_id);
  if (it == stream_calls_.end()) {
    return invalid_argument("STREAM_RESPONSE for unknown request " + std::to_string(r.request_id));
  }
  StreamReplyHandler done = std::move(it->second.done);
  stream_calls_.erase(it);
  if (r.code != StatusCode::kOk) {
    done(Status(r.code, r.message));
  } else {
    StreamFields fields;
    for (const auto& [k, v] : r.fields) fields.emplace_back(k, v);
    done(std::move(fields));
  }
  return Status();
}

void PubSubClient::fail_stream_calls(const Status& why) {
  // Callbacks may start new calls: take the maps first.
  auto acks = std::move(acks_);
  acks_.clear();
  unanswered_ = 0;
  auto queued = std::move(queued_);
  queued_.clear();
  auto calls = std::move(stream_calls_);
  stream_calls_.clear();
  for (auto& e : acks) {
    if (!e.answered) e.done(why);
  }
  for (auto& q : queued) q.done(why);
  for (auto& [id, c] : calls) c.done(why);
}

}  // namespace slip::broker
