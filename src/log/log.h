// Log: the durable, segmented, append-only store of one persistent stream.
//
// A Log lives in its own directory of segment files ("<base sequence>.log", 20 digits) with a
// sparse offset index and a time index beside each sealed segment (docs/storage.md). Records
// get dense sequence numbers starting at 1; a sequence is never reused, even after retention
// removes every record.
//
// Writes. append() never blocks on I/O: it queues the record and returns. One writer thread
// per Log takes everything queued, writes it as one batch (group commit), fsyncs according to
// the policy, and then runs the callbacks in sequence order on the writer thread. Under
// FsyncPolicy::kAlways a callback with a sequence means the record is on stable storage; under
// kInterval and kNever it means the record is written to the file (the OS has it) and an fsync
// follows within the interval, or never.
//
// Reads. read(), find_by_time() and the counters may be called from any thread, concurrently
// with appends. Reads see only acknowledged records and verify every batch's CRC; a damaged
// batch is never served: the read skips it and reports the skipped sequences.
//
// Failures. A failed write is cut off the segment again (truncate) and the appends in it fail
// with the write's Status; the log stays usable. A failed fsync, or a write that cannot be
// cut off, leaves the file in an unknown state: the log then refuses every later append with
// kFailedPrecondition carrying the first error (sticky failure), while reads of acknowledged
// records keep working. Acknowledged records are never lost by either.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "log/file.h"
#include "log/format.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log {

namespace detail {
struct Segment;
}

enum class FsyncPolicy : std::uint8_t {
  kAlways,    // acknowledge only after the fsync that covers the record
  kInterval,  // acknowledge after the write; fsync at most `fsync_interval_ns` later
  kNever,     // acknowledge after the write; leave flushing to the OS (fsync only on close)
};

enum class DiscardPolicy : std::uint8_t {
  kOld,  // over a limit: drop the oldest records
  kNew,  // over max_messages or max_bytes: refuse the append (kOverloaded); age still drops old
};

struct LogOptions {
  // Segments. A segment is rolled when the next batch would take it past max_bytes, or when
  // its first record is older than max_age_ns (0: no age limit).
  std::uint64_t segment_max_bytes = 64u << 20;
  std::int64_t segment_max_age_ns = 0;
  // One offset and time index entry every this many bytes of segment.
  std::size_t index_interval_bytes = 4096;

  FsyncPolicy fsync = FsyncPolicy::kAlways;
  std::int64_t fsync_interval_ns = 5'000'000;  // kInterval only

  // Retention; 0 means no limit. Whole segments are deleted once all their records are beyond
  // a limit; within the oldest remaining segment a logical first sequence hides the rest.
  std::uint64_t max_messages = 0;
  std::uint64_t max_bytes = 0;  // stored bytes (batches on disk) from the first record on
  std::int64_t max_age_ns = 0;
  DiscardPolicy discard = DiscardPolicy::kOld;
  // How often the writer thread applies age retention (0: only at open and on
  // enforce_retention()). Count and size limits apply after every batch.
  std::int64_t retention_check_interval_ns = 1'000'000'000;

  // De-duplication: an append whose msg_id was stored within this window returns the original
  // sequence and writes nothing (0: off). At most max_dedup_ids ids are remembered (oldest
  // forgotten first).
  std::int64_t dedup_window_ns = 120'000'000'000;
  std::size_t max_dedup_ids = 1u << 20;

  // Limits. Appends beyond the queue bounds are refused with kOverloaded.
  std::size_t max_record_bytes = 8u << 20;  // one encoded record
  std::size_t max_batch_bytes = 4u << 20;   // one group-commit batch (a larger record gets its own)
  std::size_t max_pending_appends = 65536;
  std::size_t max_pending_bytes = 64u << 20;
  // Decoder bounds for batches read back (must admit what this log writes).
  BatchLimits read_limits;

  // Wall-clock nanoseconds for record timestamps, segment age and retention; tests inject one.
  std::function<std::int64_t()> clock;
  // Failure injection over file writes and fsyncs (file.h); empty in production.
  IoHook io_hook;
};

// What append() stores. Slices are shared, not copied, until the batch is encoded.
struct AppendRecord {
  std::optional<Slice> subject;
  std::optional<Slice> headers;  // opaque to the log
  std::optional<Slice> msg_id;   // de-duplication key
  Slice payload;
  std::int64_t timestamp_ns = 0;  // 0: the log's clock when the record is written
};

struct AppendAck {
  std::uint64_t sequence = 0;
  bool duplicate = false;  // msg_id seen within the window: `sequence` is the original's
};

// Runs on the log's writer thread: must not block, and must not call close().
using AppendCallback = std::function<void(Result<AppendAck>)>;

// What an append made with a sink carries to it. The log only stores and hands it back.
struct AppendTag {
  std::weak_ptr<void> owner;  // e.g. the connection the result goes to
  void* context = nullptr;
  std::uint64_t id = 0;
  std::int64_t stamp = 0;
};

struct AppendOutcome {
  AppendTag tag;
  Result<AppendAck> result;
};

// The other way to learn the fate of appends, for callers with many of them in flight (a
// publisher's window): no callback object per append, and the results of one writer cycle
// arrive together. appended() runs on the writer thread, in sequence order like callbacks, once
// per run of consecutive appends made with the same sink, so a group commit of N records from
// one sink is one call. It may move from the outcomes; it must not block or call close().
class AppendSink {
 public:
  virtual void appended(std::span<AppendOutcome> outcomes) = 0;

 protected:
  ~AppendSink() = default;
};

struct StoredRecord {
  std::uint64_t sequence = 0;
  std::int64_t timestamp_ns = 0;
  std::optional<Slice> subject;
  std::optional<Slice> headers;
  std::optional<Slice> msg_id;
  Slice payload;  // shares the block read from disk
};

struct SequenceRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;  // inclusive
  bool operator==(const SequenceRange&) const = default;
};

struct ReadOptions {
  std::size_t max_records = 1000;
  std::size_t max_bytes = 1u << 20;  // payload and fields; at least one record is returned
};

struct ReadResult {
  std::vector<StoredRecord> records;
  // Sequences at or after the requested one that were stored in damaged batches and are
  // skipped, in order. Sequences below first_sequence() (removed by retention) are not listed.
  std::vector<SequenceRange> skipped;
  // Where the next read continues: one past the last record returned or skipped.
  std::uint64_t next_sequence = 0;
};

struct LogStats {
  std::uint64_t first_sequence = 0;
  std::uint64_t last_sequence = 0;  // first_sequence - 1 when empty
  std::uint64_t messages = 0;       // last - first + 1, damaged records included
  std::uint64_t bytes = 0;          // stored bytes from the first record's batch on
  std::uint64_t segments = 0;
  std::uint64_t appends = 0;        // records written
  std::uint64_t duplicates = 0;     // appends answered from the de-duplication window
  std::uint64_t refused_full = 0;   // appends refused by DiscardPolicy::kNew
  std::uint64_t batches_written = 0;
  std::uint64_t fsyncs = 0;
  std::uint64_t write_errors = 0;   // failed writes and fsyncs
  std::uint64_t torn_tails = 0;     // tails truncated at open
  std::uint64_t truncated_bytes = 0;
  std::uint64_t damaged_batches = 0;  // damaged batches found before the end (open or read)
  std::uint64_t index_rebuilds = 0;
  std::uint64_t segments_deleted = 0;
};

class Log {
 public:
  // Opens (or creates) the log in `dir`, recovering it: the last segment is scanned and its
  // torn tail truncated; a sealed segment whose index is missing or damaged is scanned and its
  // index rewritten. Starts the writer thread.
  static Result<std::unique_ptr<Log>> open(std::string dir, LogOptions options);

  // Closes (see close()).
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // Queues a record. OK: `done` will run exactly once, on the writer thread, with the assigned
  // sequence or the reason the record was not stored; callbacks run in sequence order. An error
  // (bad record, queue full, log failed or closed): `done` never runs.
  Status append(AppendRecord record, AppendCallback done);
  // The same, reporting to `sink` (which must outlive the log's writer thread, i.e. close())
  // with `tag`. OK: the sink gets exactly one outcome for this append; an error: none.
  Status append(AppendRecord record, AppendSink& sink, AppendTag tag);
  // The same, with a future; a refused append gives a ready future holding the error.
  std::future<Result<AppendAck>> append(AppendRecord record);

  // Up to max_records / max_bytes records from `from` on (from below first_sequence(): from the
  // first). Any thread.
  Result<ReadResult> read(std::uint64_t from, const ReadOptions& options = {}) const;
  // The first sequence whose record has a timestamp >= timestamp_ns; kNotFound when none.
  Result<std::uint64_t> find_by_time(std::int64_t timestamp_ns) const;

  std::uint64_t first_sequence() const;
  std::uint64_t last_sequence() const;  // 0 when nothing was ever stored
  LogStats stats() const;

  // Waits until every append queued before the call is written and fsynced (whatever the policy).
  Status flush();
  // Applies retention now (normally after each batch and every retention_check_interval_ns).
  Status enforce_retention();
  // Stops accepting appends, writes what is queued, fsyncs, joins the writer thread. Reads keep
  // working. Idempotent; the destructor calls it.
  Status close();

  // The sticky failure, OK while healthy.
  Status health() const;

  // `listener` runs on the writer thread after the callbacks of every writer cycle that stored
  // at least one new record (not a duplicate). Set it before the first append; it must only
  // hand work over (e.g. post to a loop).
  void set_stored_listener(std::function<void()> listener);

 private:
  struct Pending {
    AppendRecord record;
    AppendCallback done;  // or:
    AppendSink* sink = nullptr;
    AppendTag tag;
    std::size_t bytes = 0;
  };
  Status enqueue(Pending p);
  // Runs the callbacks and sinks of a cycle, in order.
  void report(std::vector<Pending>& items);

  Log(std::string dir, LogOptions options);
  Status recover();
  Result<std::shared_ptr<detail::Segment>> load_sealed(std::uint64_t base, std::uint64_t next_base);
  Status write_indexes(const detail::Segment& seg);
  void rebuild_dedup();

  void writer_main();
  void write_appends(std::vector<Pending>& items);
  Status roll_segment(std::int64_t now);
  Status sync_active(std::int64_t now);
  void apply_retention(std::int64_t now, bool include_age);
  void fail(const Status& s);

  std::int64_t now() const { return options_.clock(); }
  Result<std::optional<std::uint64_t>> find_time_in_segment(const std::shared_ptr<detail::Segment>& seg,
                                                             std::int64_t timestamp_ns) const;
  Result<std::uint64_t> batch_start_at_or_after(const std::shared_ptr<detail::Segment>& seg, std::uint64_t position,
                                                std::uint64_t* sequence) const;
  void note_damage(const std::shared_ptr<detail::Segment>& seg, std::uint64_t position) const;

  const std::string dir_;
  const LogOptions options_;
  const Io io_;

  mutable std::mutex mu_;
  std::condition_variable wake_;    // the writer: work queued or stop
  std::map<std::uint64_t, std::shared_ptr<detail::Segment>> segments_;  // by base; guarded by mu_
  std::uint64_t first_sequence_ = 1;  // guarded by mu_
  std::uint64_t first_position_ = 0;  // of first_sequence_'s batch in the first segment; mu_
  std::uint64_t next_sequence_ = 1;   // guarded by mu_
  std::vector<Pending> queue_;        // guarded by mu_; swapped with items_ by the writer
  std::size_t queue_bytes_ = 0;       // guarded by mu_
  std::vector<std::function<void()>> tasks_;  // run by the writer after the appends; mu_
  bool closing_ = false;              // guarded by mu_
  bool writer_idle_ = false;          // the writer waits on wake_; guarded by mu_
  Status failed_;                     // guarded by mu_
  mutable LogStats stats_;            // counters; guarded by mu_

  std::function<void()> stored_listener_;  // set before the first append (ordered by mu_)

  // Writer thread only.
  std::vector<Pending> items_;  // the cycle being written (keeps its capacity)
  std::vector<Result<AppendAck>> results_;
  std::vector<std::size_t> owner_;
  std::vector<bool> reached_;
  std::vector<AppendOutcome> outcomes_;
  BatchBuilder builder_;
  std::uint64_t write_end_ = 0;       // end of the bytes written to the active segment
  std::int64_t active_first_ts_ = 0;  // first timestamp in the active segment (segment age)
  std::int64_t last_sync_ns_ = 0;
  bool unsynced_ = false;
  std::int64_t last_retention_ns_ = 0;
  struct DedupEntry {
    std::uint64_t sequence;
    std::int64_t timestamp_ns;
  };
  std::unordered_map<std::string, DedupEntry> dedup_;
  std::deque<std::pair<std::int64_t, std::string>> dedup_order_;

  std::thread writer_;
  bool closed_ = false;  // close() finished; guarded by close_mu_
  std::mutex close_mu_;
};

}  // namespace slip::log
