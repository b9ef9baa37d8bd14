// PubSubClient's persistent-stream calls: LOG_PUBLISH with its LOG_ACK, and STREAM_REQUEST with
// the STREAM_MSG and STREAM_RESPONSE frames that answer it.
#include "broker/client.h"

#include <cstdlib>

namespace slip::broker {

Status PubSubClient::publish_acked(std::string_view subject, Slice payload, const wire::Metadata* headers,
                                   AckHandler done) {
  if (!ready()) return disconnected("not connected to the broker");
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
  if (acks_.size() >= ack_window_ || !queued_.empty()) {
    queued_.push_back(std::move(q));
    return Status();
  }
  send_publish(std::move(q));
  return Status();
}

void PubSubClient::send_publish(QueuedPublish q) {
  const std::uint64_t id = next_publish_id_++;
  wire::LogPublish p;
  p.request_id = id;
  p.subject = q.subject;
  p.has_headers = q.has_headers;
  for (const auto& [k, v] : q.headers) p.headers.emplace_back(k, v);
  p.payload = std::move(q.payload);
  acks_.emplace(id, std::move(q.done));
  client_.session()->send_frame(p);
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
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, limits));
  if (auto* a = std::get_if<wire::LogAck>(&any)) {
    auto it = acks_.find(a->request_id);
    if (it == acks_.end()) return invalid_argument("LOG_ACK for unknown request " + std::to_string(a->request_id));
    AckHandler done = std::move(it->second);
    acks_.erase(it);
    // Refill the window before the callback, which may publish again.
    while (!queued_.empty() && acks_.size() < ack_window_ && ready()) {
      QueuedPublish q = std::move(queued_.front());
      queued_.pop_front();
      send_publish(std::move(q));
    }
    if (a->code == StatusCode::kOk) {
      done(a->sequence);
    } else {
      done(Status(a->code, a->message));
    }
    return Status();
  }
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
  auto queued = std::move(queued_);
  queued_.clear();
  auto calls = std::move(stream_calls_);
  stream_calls_.clear();
  for (auto& [id, done] : acks) done(why);
  for (auto& q : queued) q.done(why);
  for (auto& [id, c] : calls) c.done(why);
}

}  // namespace slip::broker
