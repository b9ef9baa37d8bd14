// Spans as JSON lines: one JSON object per line, appended to a file, for any tool that reads
// them (jq, a log shipper, an OpenTelemetry collector's file receiver after a mapping). A span
// is one hop of a W3C trace (traceparent.h): what this process did for a traced message or call.
//
//   {"trace_id":"4bf9...","span_id":"00f0...","parent_span_id":"a3ce...","name":"publish orders.new",
//    "kind":"broker","start_unix_ns":1764590000000000000,"duration_ns":1834,"status":"OK",
//    "attributes":{"subject":"orders.new","client":"app@127.0.0.1:53412"}}
//
// Writing is buffered: lines reach the file when the buffer fills, every flush interval, and at
// destruction. Thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "obs/traceparent.h"
#include "slipstream/status.h"

namespace slip::obs {

struct Span {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};
  std::array<std::uint8_t, 8> parent_span_id{};  // all zero: a root span
  std::string name;
  std::string kind;  // "broker", "server", "client"
  std::int64_t start_unix_ns = 0;
  std::int64_t duration_ns = 0;
  std::string status = "OK";
  std::vector<std::pair<std::string, std::string>> attributes;
};

// The span of a hop that received `parent` (a traceparent it was sent): same trace, a new span
// id, the sender's span as parent.
Span span_of_hop(const TraceContext& parent);

// One line of JSON, without the newline.
std::string span_json(const Span& s);

class SpanWriter {
 public:
  // Opens (creates, appends to) `path`. kInvalidArgument/kNotFound... with the OS's reason.
  static Result<std::unique_ptr<SpanWriter>> open(const std::string& path,
                                                   std::chrono::milliseconds flush_interval = std::chrono::milliseconds(200),
                                                   std::size_t buffer_bytes = 64 * 1024);
  ~SpanWriter();
  SpanWriter(const SpanWriter&) = delete;
  SpanWriter& operator=(const SpanWriter&) = delete;

  void write(const Span& s);
  // Writes out what is buffered now.
  void flush();
  std::uint64_t spans() const;
  // Lines lost because the file could not be written (logged once).
  std::uint64_t failed() const;

 private:
  SpanWriter(int fd, std::string path, std::chrono::milliseconds interval, std::size_t buffer_bytes);
  void write_out(std::string& bytes);  // with mu_ held

  const int fd_;
  const std::string path_;
  const std::chrono::milliseconds interval_;
  const std::size_t buffer_bytes_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::string buffer_;          // guarded by mu_
  std::uint64_t spans_ = 0;     // guarded by mu_
  std::uint64_t failed_ = 0;    // guarded by mu_
  std::uint64_t buffered_ = 0;  // spans in buffer_, guarded by mu_
  bool stop_ = false;           // guarded by mu_
  std::thread flusher_;
};

}  // namespace slip::obs
