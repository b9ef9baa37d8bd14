// Persistent-stream figures as metric families (docs/observability.md, "Streams"), per stream
// (label `stream`):
//   slip_stream_messages, _bytes, _first_seq, _last_seq, _segments        gauges
//   slip_stream_messages_stored_total, _acked_publishes_total,
//   _duplicates_total, _fsyncs_total, _write_errors_total, _capture_errors_total   counters
//   slip_stream_publish_errors_total{stream,code}                          counter
//   slip_stream_ack_latency_seconds                                        histogram
// and slip_streams (gauge). Per consumer (labels `stream`, `consumer`):
//   slip_consumer_pending_messages, _ack_pending_messages, _redelivered_messages,
//   _waiting_pulls, _delivered_seq, _ack_floor                              gauges
//   slip_consumer_deliveries_total, _redeliveries_total, _max_delivered_total,
//   _terminated_total                                                       counters
// and slip_consumers (gauge). Read the figures with read_stream_figures() (any thread) and
// ConsumerService::figures() (its loop) from a Registry collector or an HTTP handler; nothing
// here runs on a publish path.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/histogram.h"
#include "log/consumer_service.h"
#include "log/stream.h"
#include "obs/metrics.h"

namespace slip::obs {

// One stream as of one read.
struct StreamFigures {
  log::StreamConfig config;
  log::LogStats log;
  std::uint64_t consumers = 0;
  std::uint64_t capture_errors = 0;
  std::uint64_t acked_publishes = 0;
  std::array<std::uint64_t, kMaxStatusCode + 1> publish_errors{};  // by StatusCode value
  std::uint64_t publish_errors_total = 0;
  HistogramSnapshot ack_latency_ns;
};

// Any thread: the log's counters are read under its lock, the rest from relaxed atomics.
StreamFigures read_stream_figures(const log::StreamManager& manager, const log::Stream& stream);
// Every stream, by name.
std::vector<StreamFigures> read_stream_figures(const log::StreamManager& manager);

void collect_stream_metrics(const std::vector<StreamFigures>& streams, std::vector<Family>& out);
void collect_consumer_metrics(const std::vector<log::ConsumerFigures>& consumers, std::vector<Family>& out);

}  // namespace slip::obs
