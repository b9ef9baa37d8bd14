#include "obs/stream_metrics.h"

#include <string>
#include <utility>

namespace slip::obs {

StreamFigures read_stream_figures(const log::StreamManager& manager, const log::Stream& stream) {
  StreamFigures f;
  log::StreamInfo info = manager.info(stream);
  f.config = std::move(info.config);
  f.log = info.stats;
  f.consumers = info.consumers;
  f.capture_errors = info.capture_errors;
  const log::StreamMetrics& m = stream.metrics();
  f.acked_publishes = m.acked_publishes.load(std::memory_order_relaxed);
  for (std::size_t code = 0; code < f.publish_errors.size(); ++code) {
    f.publish_errors[code] = m.publish_errors[code].load(std::memory_order_relaxed);
    f.publish_errors_total += f.publish_errors[code];
  }
  f.ack_latency_ns = m.ack_latency_ns.snapshot();
  return f;
}

std::vector<StreamFigures> read_stream_figures(const log::StreamManager& manager) {
  std::vector<StreamFigures> out;
  for (const auto& s : manager.list()) out.push_back(read_stream_figures(manager, *s));
  return out;
}

void collect_stream_metrics(const std::vector<StreamFigures>& streams, std::vector<Family>& out) {
  auto g = [](const char* name, const char* help) { return gauge(name, help); };
  auto c = [](const char* name, const char* help) { return counter(name, help); };
  Family count = g("slip_streams", "Persistent streams");
  Family messages = g("slip_stream_messages", "Messages held by the stream (first_seq to last_seq)");
  Family bytes = g("slip_stream_bytes", "Bytes the stream's messages take on disk");
  Family first = g("slip_stream_first_seq", "The stream's first sequence still held");
  Family last = g("slip_stream_last_seq", "The stream's last sequence stored (first_seq - 1 when empty)");
  Family segments = g("slip_stream_segments", "Segment files of the stream's log");
  Family stored = c("slip_stream_messages_stored_total",
                    "Messages written to the stream: acknowledged publishes and captured PUBs");
  Family acked = c("slip_stream_acked_publishes_total",
                   "LOG_PUBLISHes acknowledged with a sequence (duplicates included)");
  Family errors = c("slip_stream_publish_errors_total", "LOG_PUBLISHes answered with an error, by status code");
  Family dups = c("slip_stream_duplicates_total",
                  "Publishes answered from the de-duplication window (Slip-Msg-Id seen), not stored again");
  Family fsyncs = c("slip_stream_fsyncs_total", "fsyncs of the stream's log");
  Family write_errors = c("slip_stream_write_errors_total", "Failed writes and fsyncs of the stream's log");
  Family capture_errors = c("slip_stream_capture_errors_total", "Captured PUBs the stream's log refused");
  Family latency = latency_histogram(
      "slip_stream_ack_latency_seconds",
      "Time from a LOG_PUBLISH's arrival to its acknowledgement: queueing, the write and the fsync the "
      "stream's policy asks for");
  count.add(static_cast<double>(streams.size()));
  if (streams.empty()) {  // the per-stream families come with the first stream
    out.push_back(std::move(count));
    return;
  }
  for (const StreamFigures& s : streams) {
    const Labels l{{"stream", s.config.name}};
    messages.add(static_cast<double>(s.log.messages), l);
    bytes.add(static_cast<double>(s.log.bytes), l);
    first.add(static_cast<double>(s.log.first_sequence), l);
    last.add(static_cast<double>(s.log.last_sequence), l);
    segments.add(static_cast<double>(s.log.segments), l);
    stored.add(static_cast<double>(s.log.appends), l);
    acked.add(static_cast<double>(s.acked_publishes), l);
    for (std::size_t code = 0; code < s.publish_errors.size(); ++code) {
      if (s.publish_errors[code] == 0) continue;
      errors.add(static_cast<double>(s.publish_errors[code]),
                 {{"stream", s.config.name}, {"code", std::string(status_code_name(static_cast<StatusCode>(code)))}});
    }
    dups.add(static_cast<double>(s.log.duplicates), l);
    fsyncs.add(static_cast<double>(s.log.fsyncs), l);
    write_errors.add(static_cast<double>(s.log.write_errors), l);
    capture_errors.add(static_cast<double>(s.capture_errors), l);
    latency.histograms.push_back(HistogramSample{l, s.ack_latency_ns});
  }
  for (Family* f : {&count, &messages, &bytes, &first, &last, &segments, &stored, &acked, &errors, &dups, &fsyncs,
                    &write_errors, &capture_errors, &latency}) {
    out.push_back(std::move(*f));
  }
}

void collect_consumer_metrics(const std::vector<log::ConsumerFigures>& consumers, std::vector<Family>& out) {
  Family count = gauge("slip_consumers", "Consumers of persistent streams, durable and ephemeral");
  count.add(static_cast<double>(consumers.size()));
  out.push_back(std::move(count));
  if (consumers.empty()) return;  // the per-consumer families come with the first consumer
  Family pending = gauge("slip_consumer_pending_messages", "Messages of the stream the consumer has yet to deliver");
  Family ack_pending = gauge("slip_consumer_ack_pending_messages",
                             "Messages delivered and not yet acknowledged (redeliveries waiting included)");
  Family redelivered = gauge("slip_consumer_redelivered_messages", "Unacknowledged messages delivered more than once");
  Family waiting = gauge("slip_consumer_waiting_pulls", "Pull requests waiting for messages");
  Family delivered_seq = gauge("slip_consumer_delivered_seq", "The highest stream sequence the consumer delivered");
  Family ack_floor = gauge("slip_consumer_ack_floor", "Every matching message up to this sequence is acknowledged");
  Family deliveries = counter("slip_consumer_deliveries_total", "Messages delivered, redeliveries included");
  Family redeliveries = counter("slip_consumer_redeliveries_total", "Messages delivered again (ack wait ran out, nak)");
  Family max_delivered = counter("slip_consumer_max_delivered_total",
                                 "Messages given up after the consumer's max_deliver deliveries");
  Family terminated = counter("slip_consumer_terminated_total", "Messages ended by a term acknowledgement");
  for (const log::ConsumerFigures& c : consumers) {
    const Labels l{{"stream", c.stream}, {"consumer", c.name}};
    pending.add(static_cast<double>(c.num_pending), l);
    ack_pending.add(static_cast<double>(c.stats.num_ack_pending), l);
    redelivered.add(static_cast<double>(c.stats.num_redelivered), l);
    waiting.add(static_cast<double>(c.num_waiting), l);
    delivered_seq.add(static_cast<double>(c.stats.delivered_seq), l);
    ack_floor.add(static_cast<double>(c.stats.ack_floor), l);
    deliveries.add(static_cast<double>(c.stats.deliveries), l);
    redeliveries.add(static_cast<double>(c.stats.redeliveries), l);
    max_delivered.add(static_cast<double>(c.stats.num_max_delivered), l);
    terminated.add(static_cast<double>(c.stats.num_terminated), l);
  }
  for (Family* f : {&pending, &ack_pending, &redelivered, &waiting, &delivered_seq, &ack_floor, &deliveries,
                    &redeliveries, &max_delivered, &terminated}) {
    out.push_back(std::move(*f));
  }
}

}  // namespace slip::obs
