// Streams: named, persistent logs that capture the messages published on their subjects.
//
// A stream is a name, one or more subject patterns and the options of its Log (limits,
// discard policy, fsync policy, de-duplication window). StreamManager keeps every stream of a
// server under one directory:
//
//   <dir>/<name>/stream.conf   the configuration, "key=value" lines (the keys of stream_config)
//   <dir>/<name>/log/          the Log's segments and indexes (docs/storage.md)
//
// and opens them all again at start. Two streams never capture the same subject: a stream whose
// patterns overlap another stream's is refused, so every subject has at most one stream.
//
// Thread safety: every method may be called from any thread. Streams are shared_ptrs, so a
// stream removed while a caller uses it stays valid (its log is closed: appends fail).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/histogram.h"
#include "log/log.h"
#include "slipstream/status.h"
#include "wire/frames.h"

namespace slip::log {

// The header whose value de-duplicates publishes within the stream's dedup window.
inline constexpr std::string_view kMsgIdHeader = "Slip-Msg-Id";

struct StreamConfig {
  std::string name;                   // 1-64 bytes of [A-Za-z0-9_-]
  std::vector<std::string> subjects;  // valid subscription patterns, at least one
  std::uint64_t max_msgs = 0;         // 0: no limit
  std::uint64_t max_bytes = 0;
  std::int64_t max_age_ms = 0;
  DiscardPolicy discard = DiscardPolicy::kOld;
  FsyncPolicy fsync = FsyncPolicy::kAlways;
  std::int64_t fsync_interval_ms = 0;  // kInterval only, > 0
  std::int64_t dedup_window_ms = 120'000;  // 0: no de-duplication
  bool operator==(const StreamConfig&) const = default;
};

// The configuration as (key, value) text pairs: the STREAM_REQUEST add arguments, the
// STREAM_RESPONSE info fields and the lines of stream.conf all use these keys:
//   name, subjects (comma-separated), max_msgs, max_bytes, max_age_ms, discard (old|new),
//   fsync (always | never | <N>ms), dedup_window_ms.
std::vector<std::pair<std::string, std::string>> stream_config_fields(const StreamConfig& c);
// Sets one field; kInvalidArgument names the key and what is wrong with the value.
Status apply_stream_config_field(StreamConfig& c, std::string_view key, std::string_view value);
// Checks a whole configuration (name, subjects, fsync interval).
Status validate_stream_config(const StreamConfig& c);
// "fsync" values: "always", "never" or an interval such as "100ms".
Result<std::pair<FsyncPolicy, std::int64_t>> parse_fsync(std::string_view v);
std::string fsync_text(FsyncPolicy p, std::int64_t interval_ms);

// True when some subject matches both patterns (both valid subscription patterns).
bool patterns_overlap(std::string_view a, std::string_view b);

struct StreamManagerOptions {
  std::string dir;  // holds one directory per stream; created if missing
  std::size_t max_streams = 1024;
  // Options every stream's log starts from; a stream's configuration sets its limits, discard,
  // fsync and de-duplication fields. Tests set clock and io_hook here.
  LogOptions log;
};

// A stream's publish figures (docs/observability.md), kept outside its log. Acknowledgements
// and the ack latency are recorded by the log's writer thread alone (its one writer: plain
// relaxed stores, no locked instruction); errors by whichever thread refuses a publish. Any
// thread may read them at any time.
struct StreamMetrics {
  std::atomic<std::uint64_t> acked_publishes{0};  // LOG_PUBLISHes acknowledged with a sequence
  std::array<std::atomic<std::uint64_t>, kMaxStatusCode + 1> publish_errors{};  // by StatusCode
  // From a LOG_PUBLISH's arrival to its acknowledgement (the write and the fsync the stream's
  // policy asks for), nanoseconds; empty when timing is off.
  Histogram ack_latency_ns;

  // Writer thread only.
  void note_acked() {
    acked_publishes.store(acked_publishes.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Any thread.
  void note_error(StatusCode code) {
    publish_errors[std::min<std::size_t>(static_cast<std::size_t>(code), kMaxStatusCode)].fetch_add(
        1, std::memory_order_relaxed);
  }
};

struct StreamInfo {
  StreamConfig config;
  LogStats stats;
  std::uint64_t consumers = 0;
  std::uint64_t capture_errors = 0;  // captured PUBs the log refused
};

class Stream {
 public:
  Stream(StreamConfig config, std::string dir, std::unique_ptr<Log> log);
  // Closes the log before the members its callbacks use go.
  ~Stream() {
    if (log_) (void)log_->close();
  }
  const StreamConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  Log& log() { return *log_; }
  const Log& log() const { return *log_; }

  // Stores one message: the headers in the wire metadata encoding, the Slip-Msg-Id header's
  // value as the de-duplication key. As Log::append: OK means `done` runs on the writer thread.
  Status append(std::string_view subject, bool has_headers, const wire::Metadata& headers, const Slice& payload,
                AppendCallback done);
  // The same with the subject shared, not copied (e.g. a slice of the frame it arrived in), and
  // the result reported to `sink` (Log::append).
  Status append(const Slice& subject, bool has_headers, const wire::Metadata& headers, const Slice& payload,
                AppendSink& sink, AppendTag tag);

  void note_capture_error() { capture_errors_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t capture_errors() const { return capture_errors_.load(std::memory_order_relaxed); }

  // Lives as long as the stream; the log's callbacks may use it (the log closes first).
  StreamMetrics& metrics() { return metrics_; }
  const StreamMetrics& metrics() const { return metrics_; }

  // Consumers waiting for new messages. `listener` runs on the log's writer thread after a
  // writer cycle that stored messages, once per arm_append_listener() (so it must only hand
  // work over, e.g. post to a loop). Set once, before the first arm.
  void set_append_listener(std::function<void()> listener);
  // The next stored message calls the listener (once).
  void arm_append_listener() { listen_.store(true, std::memory_order_release); }

  void set_consumer_count(std::uint64_t n) { consumers_.store(n, std::memory_order_relaxed); }
  std::uint64_t consumer_count() const { return consumers_.load(std::memory_order_relaxed); }

 private:
  void appended();
  AppendRecord record(Slice subject, bool has_headers, const wire::Metadata& headers, const Slice& payload) const;

  const StreamConfig config_;
  const std::string dir_;
  StreamMetrics metrics_;  // before log_: destroyed after the log's writer thread ends
  std::unique_ptr<Log> log_;
  std::atomic<std::uint64_t> capture_errors_{0};
  std::atomic<bool> listen_{false};
  std::mutex listener_mu_;
  std::function<void()> listener_;  // guarded by listener_mu_
  std::atomic<std::uint64_t> consumers_{0};
};

// Encodes headers as protocol.md's metadata field (count, then key and value strings).
std::string encode_headers(const wire::Metadata& headers);
// Decodes stored headers; the views point into `bytes`. kCorruption when malformed or over the
// limits.
Status decode_headers(std::string_view bytes, const wire::WireLimits& limits, wire::Metadata& out);

class StreamManager {
 public:
  // Opens every stream found under options.dir (a stream that fails to open is an error: the
  // server must not start without data it has acknowledged).
  static Result<std::unique_ptr<StreamManager>> open(StreamManagerOptions options);
  ~StreamManager();

  // Creates a stream. Adding a stream that exists with the same configuration returns it
  // (idempotent); with another configuration it is kAlreadyExists. Patterns overlapping another
  // stream's are kAlreadyExists too, naming that stream.
  Result<std::shared_ptr<Stream>> add(StreamConfig config);
  // Closes the stream's log and deletes its directory. kNotFound when absent.
  Status remove(std::string_view name);
  std::shared_ptr<Stream> find(std::string_view name) const;
  // The stream capturing `subject`, or null.
  std::shared_ptr<Stream> for_subject(std::string_view subject) const;
  // Changes whenever a stream is added or removed: an answer of for_subject() stays right while
  // this stays the same.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::vector<std::shared_ptr<Stream>> list() const;  // by name
  StreamInfo info(const Stream& s) const;
  // Closes every log (writes what is queued). Idempotent.
  void close();

 private:
  explicit StreamManager(StreamManagerOptions options) : options_(std::move(options)) {}
  Result<std::shared_ptr<Stream>> open_stream(const StreamConfig& config);

  const StreamManagerOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Stream>, std::less<>> streams_;  // guarded by mu_
  std::atomic<std::uint64_t> generation_{1};  // changed under mu_
};

}  // namespace slip::log
