#include "log/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/clock.h"
#include "core/logging.h"
#include "core/varint.h"
#include "log/index.h"
#include "log/segment.h"

namespace slip::log {

using detail::Segment;

namespace {

// The writer keeps the storage of a cycle of this many appends for the next one.
constexpr std::size_t kKeptPendingCapacity = 8192;

// Upper bound of a record's encoded size before its timestamp is known (the delta varint
// takes at most 10 bytes, counted as 1 by encoded_record_size with delta 0).
std::size_t record_size_bound(const AppendRecord& r) {
  return encoded_record_size(r.subject ? r.subject->size() : 0, r.subject.has_value(),
                             r.headers ? r.headers->size() : 0, r.headers.has_value(),
                             r.msg_id ? r.msg_id->size() : 0, r.msg_id.has_value(), r.payload.size(), 0) +
         kMaxVarint64Bytes;
}

std::optional<ByteView> opt_view(const std::optional<Slice>& s) {
  if (!s) return std::nullopt;
  return s->view();
}

// A batch written by the current writer cycle but not yet visible to readers.
struct Written {
  std::shared_ptr<Segment> segment;
  std::uint64_t position = 0;
  BatchHeader header;
  std::vector<std::string> msg_ids;  // ids it added to the de-duplication window
};

}  // namespace

Log::Log(std::string dir, LogOptions options)
    : dir_(std::move(dir)), options_(std::move(options)), io_(options_.io_hook) {}

Log::~Log() { (void)close(); }

Result<std::unique_ptr<Log>> Log::open(std::string dir, LogOptions options) {
  if (!options.clock) options.clock = wall_now_ns;
  if (options.index_interval_bytes == 0) return invalid_argument("index_interval_bytes must be > 0");
  if (options.max_batch_bytes < 1024 || options.max_batch_bytes > (1u << 30)) {
    return invalid_argument("max_batch_bytes must be within [1 KiB, 1 GiB]");
  }
  if (options.max_record_bytes == 0 || options.max_record_bytes > (1u << 30)) {
    return invalid_argument("max_record_bytes must be within [1, 1 GiB]");
  }
  const std::size_t largest = std::max(options.max_batch_bytes, options.max_record_bytes + kBatchHeaderSize);
  if (options.read_limits.max_batch_bytes < largest) {
    return invalid_argument("read_limits.max_batch_bytes must admit max_batch_bytes and max_record_bytes");
  }
  if (options.segment_max_bytes < kBatchHeaderSize) return invalid_argument("segment_max_bytes is too small");
  if (options.fsync == FsyncPolicy::kInterval && options.fsync_interval_ns <= 0) {
    return invalid_argument("fsync_interval_ns must be > 0 with FsyncPolicy::kInterval");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kUnknown, fmt::format("create log directory {}: {}", dir, ec.message()));

  std::unique_ptr<Log> log(new Log(std::move(dir), std::move(options)));
  SLIP_TRY(log->recover());
  log->rebuild_dedup();
  log->apply_retention(log->now(), true);
  log->last_sync_ns_ = mono_now_ns();
  log->last_retention_ns_ = mono_now_ns();
  log->writer_ = std::thread([raw = log.get()] { raw->writer_main(); });
  return log;
}

// ---------------------------------------------------------------------------------------------
// Recovery

Status Log::recover() {
  std::vector<std::uint64_t> bases;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (auto base = detail::parse_segment_file_name(name)) {
      bases.push_back(*base);
    } else if (name.size() > 4 && name.ends_with(".tmp")) {
      // An index write that did not reach its rename.
      std::filesystem::remove(entry.path(), ec);
    }
  }
  if (ec) return Status(StatusCode::kUnknown, fmt::format("list log directory {}: {}", dir_, ec.message()));
  std::sort(bases.begin(), bases.end());

  if (bases.empty()) {
    auto seg = std::make_shared<Segment>();
    seg->base = 1;
    seg->path = dir_ + "/" + detail::segment_file_name(1, ".log");
    seg->index_path = dir_ + "/" + detail::segment_file_name(1, ".index");
    seg->time_index_path = dir_ + "/" + detail::segment_file_name(1, ".timeindex");
    SLIP_ASSIGN_OR_RETURN(seg->file, io_.open(seg->path, true));
    SLIP_TRY(io_.sync_dir(dir_));
    seg->next_sequence = 1;
    segments_.emplace(1, std::move(seg));
    first_sequence_ = next_sequence_ = 1;
    write_end_ = 0;
    return Status::ok();
  }

  for (std::size_t i = 0; i + 1 < bases.size(); ++i) {
    SLIP_ASSIGN_OR_RETURN(auto seg, load_sealed(bases[i], bases[i + 1]));
    segments_.emplace(bases[i], std::move(seg));
  }

  // The active segment: verify every batch, truncate a torn tail.
  const std::uint64_t base = bases.back();
  auto seg = std::make_shared<Segment>();
  seg->base = base;
  seg->path = dir_ + "/" + detail::segment_file_name(base, ".log");
  seg->index_path = dir_ + "/" + detail::segment_file_name(base, ".index");
  seg->time_index_path = dir_ + "/" + detail::segment_file_name(base, ".timeindex");
  SLIP_ASSIGN_OR_RETURN(seg->file, io_.open(seg->path, false));
  SLIP_ASSIGN_OR_RETURN(const std::uint64_t file_size, seg->file.size());
  seg->next_sequence = base;
  SLIP_ASSIGN_OR_RETURN(detail::ScanResult scan,
                        detail::scan_segment(seg.get(), file_size, options_.read_limits, options_.index_interval_bytes));
  for (const detail::DamagedRange& d : scan.damaged) {
    SLIP_LOG_WARN("log {}: damaged batch at {}:{} ({} bytes) skipped", dir_, seg->path, d.position,
                  d.end - d.position);
    seg->reported_damage.insert(d.position);
    ++stats_.damaged_batches;
  }
  if (scan.torn_tail) {
    SLIP_LOG_WARN("log {}: torn tail of {} truncated at {} ({} bytes dropped)", dir_, seg->path, scan.valid_end,
                  file_size - scan.valid_end);
    SLIP_TRY(io_.truncate(seg->file, scan.valid_end));
    SLIP_TRY(io_.sync(seg->file));
    ++stats_.torn_tails;
    stats_.truncated_bytes += file_size - scan.valid_end;
  }
  seg->size = scan.valid_end;
  write_end_ = seg->size;
  active_first_ts_ = seg->first_timestamp_ns;
  // A stale index of the active segment would be trusted once it is sealed: drop it.
  (void)io_.remove(seg->index_path);
  (void)io_.remove(seg->time_index_path);
  segments_.emplace(base, std::move(seg));

  // Sequences continue from segment to segment.
  for (auto it = segments_.begin(); std::next(it) != segments_.end(); ++it) {
    if (it->second->next_sequence != std::next(it)->first) {
      return corruption(fmt::format("log {}: segment {} ends at sequence {}, the next one starts at {}", dir_,
                                    it->second->path, it->second->next_sequence, std::next(it)->first));
    }
  }
  first_sequence_ = segments_.begin()->first;
  first_position_ = 0;
  next_sequence_ = segments_.rbegin()->second->next_sequence;
  return Status::ok();
}

Result<std::shared_ptr<Segment>> Log::load_sealed(std::uint64_t base, std::uint64_t next_base) {
  auto seg = std::make_shared<Segment>();
  seg->base = base;
  seg->sealed = true;
  seg->path = dir_ + "/" + detail::segment_file_name(base, ".log");
  seg->index_path = dir_ + "/" + detail::segment_file_name(base, ".index");
  seg->time_index_path = dir_ + "/" + detail::segment_file_name(base, ".timeindex");
  SLIP_ASSIGN_OR_RETURN(seg->file, io_.open(seg->path, false));
  SLIP_ASSIGN_OR_RETURN(const std::uint64_t file_size, seg->file.size());
  if (next_base <= base) return corruption(fmt::format("log {}: segment bases out of order", dir_));

  // Trust the indexes only if they describe this very file.
  constexpr std::size_t kMaxIndexFile = kOffsetIndexHeaderSize + std::size_t{kMaxIndexEntries} * kIndexEntrySize + 4;
  std::string why;
  auto offsets = read_small_file(seg->index_path, kMaxIndexFile);
  auto times = read_small_file(seg->time_index_path, kMaxIndexFile);
  if (offsets.is_ok() && times.is_ok()) {
    auto oi = decode_offset_index(ByteView(offsets->data(), offsets->size()));
    auto ti = decode_time_index(ByteView(times->data(), times->size()));
    if (!oi.is_ok()) {
      why = oi.status().to_string();
    } else if (!ti.is_ok()) {
      why = ti.status().to_string();
    } else if (oi->base_sequence != base || ti->base_sequence != base || oi->segment_bytes != file_size ||
               ti->segment_bytes != file_size || oi->next_sequence != next_base) {
      why = "index describes another segment";
    } else if (!ti->entries.empty() && ti->entries.back().sequence >= next_base) {
      why = "time index entry out of range";
    } else {
      seg->size = file_size;
      seg->next_sequence = next_base;
      seg->record_count = oi->record_count;
      seg->first_timestamp_ns = oi->first_timestamp_ns;
      seg->max_timestamp_ns = oi->max_timestamp_ns;
      seg->offsets = std::move(oi->entries);
      seg->times = std::move(ti->entries);
      seg->last_index_position = seg->offsets.empty() ? 0 : seg->offsets.back().position;
      return seg;
    }
  } else {
    why = !offsets.is_ok() ? offsets.status().to_string() : times.status().to_string();
  }

  SLIP_LOG_INFO("log {}: rebuilding the indexes of {} ({})", dir_, seg->path, why);
  ++stats_.index_rebuilds;
  seg->size = file_size;
  seg->next_sequence = base;
  SLIP_ASSIGN_OR_RETURN(detail::ScanResult scan,
                        detail::scan_segment(seg.get(), file_size, options_.read_limits, options_.index_interval_bytes));
  if (scan.torn_tail) scan.damaged.push_back(detail::DamagedRange{scan.valid_end, file_size});
  for (const detail::DamagedRange& d : scan.damaged) {
    // A sealed segment is never truncated: its records were acknowledged. Reads report them.
    SLIP_LOG_WARN("log {}: damaged batch at {}:{} ({} bytes) skipped", dir_, seg->path, d.position,
                  d.end - d.position);
    seg->reported_damage.insert(d.position);
    ++stats_.damaged_batches;
  }
  if (seg->next_sequence > next_base) {
    return corruption(fmt::format("log {}: segment {} holds sequences up to {}, past the next segment's base {}",
                                  dir_, seg->path, seg->next_sequence - 1, next_base));
  }
  seg->next_sequence = next_base;
  seg->size = file_size;
  if (Status s = write_indexes(*seg); !s.is_ok()) {
    SLIP_LOG_WARN("log {}: cannot write the indexes of {}: {}", dir_, seg->path, s.to_string());
  }
  return seg;
}

Status Log::write_indexes(const Segment& seg) {
  const std::vector<std::uint8_t> oi = encode_offset_index(seg.offset_index());
  const std::vector<std::uint8_t> ti = encode_time_index(seg.time_index());
  const bool sync = options_.fsync != FsyncPolicy::kNever;
  SLIP_TRY(io_.write_file_atomic(dir_, seg.time_index_path, ByteView(ti.data(), ti.size()), sync));
  return io_.write_file_atomic(dir_, seg.index_path, ByteView(oi.data(), oi.size()), sync);
}

void Log::rebuild_dedup() {
  if (options_.dedup_window_ns <= 0) return;
  const std::int64_t cutoff = now() - options_.dedup_window_ns;
  Result<std::uint64_t> start = find_by_time(cutoff);
  if (!start.is_ok()) return;
  std::uint64_t seq = *start;
  while (seq < next_sequence_) {
    Result<ReadResult> r = read(seq);
    if (!r.is_ok() || r->next_sequence <= seq) break;
    for (const StoredRecord& rec : r->records) {
      if (!rec.msg_id || rec.timestamp_ns < cutoff) continue;
      std::string id = rec.msg_id->to_string();
      dedup_[id] = DedupEntry{rec.sequence, rec.timestamp_ns};
      dedup_order_.emplace_back(rec.timestamp_ns, std::move(id));
    }
    seq = r->next_sequence;
  }
}

// ---------------------------------------------------------------------------------------------
// Appends

Status Log::append(AppendRecord record, AppendCallback done) {
  if (!done) return invalid_argument("append without a callback");
  Pending p;
  p.record = std::move(record);
  p.done = std::move(done);
  return enqueue(std::move(p));
}

Status Log::append(AppendRecord record, AppendSink& sink, AppendTag tag) {
  Pending p;
  p.record = std::move(record);
  p.sink = &sink;
  p.tag = std::move(tag);
  return enqueue(std::move(p));
}

Status Log::enqueue(Pending p) {
  const AppendRecord& record = p.record;
  const std::size_t bytes = record_size_bound(record);
  if (bytes > options_.max_record_bytes) {
    return invalid_argument(fmt::format("record of {} bytes exceeds max_record_bytes {}", bytes,
                                        options_.max_record_bytes));
  }
  if (record.msg_id && record.msg_id->empty()) return invalid_argument("empty message id");
  p.bytes = bytes;
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (closing_) return failed_precondition("log is closed");
    if (!failed_.is_ok()) return failed_precondition(fmt::format("log failed earlier: {}", failed_.to_string()));
    if (queue_.size() >= options_.max_pending_appends || queue_bytes_ + bytes > options_.max_pending_bytes) {
      return overloaded(fmt::format("log append queue full ({} appends, {} bytes)", queue_.size(), queue_bytes_));
    }
    queue_.push_back(std::move(p));
    queue_bytes_ += bytes;
    // A busy writer takes the queue when it finishes its cycle: no wake-up (a syscall) needed.
    wake = writer_idle_;
    writer_idle_ = false;
  }
  if (wake) wake_.notify_one();
  return Status::ok();
}

void Log::set_stored_listener(std::function<void()> listener) {
  std::lock_guard lk(mu_);
  stored_listener_ = std::move(listener);
}

std::future<Result<AppendAck>> Log::append(AppendRecord record) {
  auto promise = std::make_shared<std::promise<Result<AppendAck>>>();
  std::future<Result<AppendAck>> f = promise->get_future();
  Status s = append(std::move(record), [promise](Result<AppendAck> r) { promise->set_value(std::move(r)); });
  if (!s.is_ok()) promise->set_value(std::move(s));
  return f;
}

void Log::writer_main() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (queue_.empty() && tasks_.empty()) {
      if (closing_) break;
      // Wake for the interval fsync and the periodic age retention (real time, not the
      // injected clock: these only decide when to look).
      std::int64_t deadline = INT64_MAX;
      if (options_.fsync == FsyncPolicy::kInterval && unsynced_) {
        deadline = last_sync_ns_ + options_.fsync_interval_ns;
      }
      if (options_.max_age_ns > 0 && options_.retention_check_interval_ns > 0) {
        deadline = std::min(deadline, last_retention_ns_ + options_.retention_check_interval_ns);
      }
      writer_idle_ = true;
      if (deadline == INT64_MAX) {
        wake_.wait(lk);
      } else {
        const std::int64_t wait = deadline - mono_now_ns();
        if (wait > 0) wake_.wait_for(lk, std::chrono::nanoseconds(wait));
      }
      writer_idle_ = false;
    }
    // The queue's storage and the writer's swap places: neither allocates once both have grown.
    items_.swap(queue_);
    queue_bytes_ = 0;
    std::vector<std::function<void()>> tasks;
    tasks.swap(tasks_);
    lk.unlock();

    if (!items_.empty()) {
      write_appends(items_);
      items_.clear();
      // Keep what a busy stream needs, not what one burst once took.
      if (items_.capacity() > kKeptPendingCapacity) std::vector<Pending>().swap(items_);
    }
    const std::int64_t mono = mono_now_ns();
    if (options_.fsync == FsyncPolicy::kInterval && unsynced_ && mono - last_sync_ns_ >= options_.fsync_interval_ns) {
      (void)sync_active(now());
    }
    if (options_.max_age_ns > 0 && options_.retention_check_interval_ns > 0 &&
        mono - last_retention_ns_ >= options_.retention_check_interval_ns) {
      last_retention_ns_ = mono;
      apply_retention(now(), true);
    }
    for (auto& t : tasks) t();
    lk.lock();
  }
  lk.unlock();
  // Closing: make everything written durable, whatever the policy.
  if (unsynced_) (void)sync_active(now());
}

void Log::write_appends(std::vector<Pending>& items) {
  const std::int64_t now_ns = now();
  // Every append is answered: a result of its own (duplicate of an older record, refused), or
  // the fate of the batch of this cycle that holds it (owner), known after the write and fsync.
  // results_[i] counts only where reached_[i]: appends after a failure are never reached.
  std::vector<Result<AppendAck>>& results = results_;
  results.assign(items.size(), AppendAck{});
  std::vector<bool>& reached = reached_;
  reached.assign(items.size(), false);
  constexpr std::size_t kNoOwner = SIZE_MAX;
  std::vector<std::size_t>& owner = owner_;
  owner.assign(items.size(), kNoOwner);
  std::vector<Written> batches;  // written this cycle, in order; `published` ones are visible
  std::vector<bool> published;

  Status failure;
  std::uint64_t messages;
  std::uint64_t bytes;
  {
    std::lock_guard lk(mu_);
    if (!failed_.is_ok()) failure = failed_precondition(fmt::format("log failed earlier: {}", failed_.to_string()));
    messages = next_sequence_ - first_sequence_;
    bytes = 0;
    for (const auto& [b, seg] : segments_) bytes += seg->size;
    bytes -= std::min(bytes, first_position_);
    builder_.reset(next_sequence_);
  }

  // Forget ids that left the window (or exceed the bound).
  while (!dedup_order_.empty() && (now_ns - dedup_order_.front().first > options_.dedup_window_ns ||
                                   dedup_order_.size() > options_.max_dedup_ids)) {
    auto it = dedup_.find(dedup_order_.front().second);
    if (it != dedup_.end() && it->second.timestamp_ns == dedup_order_.front().first) dedup_.erase(it);
    dedup_order_.pop_front();
  }

  auto publish = [&]() {
    std::lock_guard lk(mu_);
    for (std::size_t b = 0; b < batches.size(); ++b) {
      if (published[b]) continue;
      Written& w = batches[b];
      w.segment->add_batch(w.position, w.header, options_.index_interval_bytes);
      next_sequence_ = w.header.next_sequence();
      stats_.appends += w.header.record_count;
      published[b] = true;
    }
  };
  auto fail_batch = [&](Written& w) {
    for (const std::string& id : w.msg_ids) dedup_.erase(id);
  };

  Written current;
  // Writes the batch being built (rolling the segment first when it is full or old).
  auto commit = [&]() -> Status {
    if (builder_.record_count() == 0) return Status::ok();
    const ByteView batch = builder_.finish();
    BatchHeader h;
    h.length = static_cast<std::uint32_t>(batch.size());
    h.version = kBatchVersion;
    h.base_sequence = builder_.base_sequence();
    h.record_count = builder_.record_count();
    h.first_timestamp_ns = builder_.first_timestamp_ns();
    h.max_timestamp_ns = builder_.max_timestamp_ns();

    const bool too_big = write_end_ > 0 && write_end_ + batch.size() > options_.segment_max_bytes;
    const bool too_old = options_.segment_max_age_ns > 0 && write_end_ > 0 &&
                         now_ns - active_first_ts_ >= options_.segment_max_age_ns;
    if (too_big || too_old) {
      // Rolling makes the batches so far durable (unless the policy is kNever) and visible,
      // then seals the segment.
      if (options_.fsync != FsyncPolicy::kNever) SLIP_TRY(sync_active(now_ns));
      publish();
      SLIP_TRY(roll_segment(now_ns));
    }
    std::shared_ptr<Segment> active = segments_.rbegin()->second;  // only this thread changes the map
    const std::uint64_t pos = write_end_;
    Status s = io_.write_at(active->file, pos, batch);
    if (!s.is_ok()) {
      {
        std::lock_guard lk(mu_);
        ++stats_.write_errors;
      }
      SLIP_LOG_ERROR("log {}: write of {} bytes at {}:{} failed: {}", dir_, batch.size(), active->path, pos,
                     s.to_string());
      // Cut the partial batch off again so the next write continues a clean file; if that
      // fails too, the file's end is unknown.
      if (Status t = io_.truncate(active->file, pos); !t.is_ok()) fail(t);
      return s;
    }
    if (write_end_ == 0) active_first_ts_ = h.first_timestamp_ns;
    write_end_ = pos + batch.size();
    current.segment = active;
    current.position = pos;
    current.header = h;
    batches.push_back(std::move(current));
    published.push_back(false);
    current = Written();
    {
      std::lock_guard lk(mu_);
      ++stats_.batches_written;
    }
    builder_.reset(h.next_sequence());
    return Status::ok();
  };

  std::uint64_t refused = 0;
  std::uint64_t duplicates = 0;
  const std::uint64_t cycle_first = builder_.base_sequence();
  for (std::size_t i = 0; i < items.size() && failure.is_ok(); ++i) {
    AppendRecord& rec = items[i].record;
    reached[i] = true;
    if (rec.msg_id && options_.dedup_window_ns > 0) {
      auto it = dedup_.find(std::string(rec.msg_id->as_string_view()));
      if (it != dedup_.end() && now_ns - it->second.timestamp_ns <= options_.dedup_window_ns) {
        const std::uint64_t seq = it->second.sequence;
        results[i] = AppendAck{seq, true};
        ++duplicates;
        // A duplicate of a record of this cycle shares its fate.
        if (seq >= builder_.base_sequence()) {
          owner[i] = batches.size();
        } else if (seq >= cycle_first) {
          for (std::size_t b = 0; b < batches.size(); ++b) {
            if (seq >= batches[b].header.base_sequence && seq < batches[b].header.next_sequence()) owner[i] = b;
          }
        }
        continue;
      }
    }
    if (options_.discard == DiscardPolicy::kNew) {
      const std::size_t add = items[i].bytes + (builder_.record_count() == 0 ? kBatchHeaderSize : 0);
      if (options_.max_messages > 0 && messages + 1 > options_.max_messages) {
        results[i] = overloaded(
            fmt::format("stream full: max_messages {} reached (discard policy new)", options_.max_messages));
        ++refused;
        continue;
      }
      if (options_.max_bytes > 0 && bytes + add > options_.max_bytes) {
        results[i] =
            overloaded(fmt::format("stream full: max_bytes {} reached (discard policy new)", options_.max_bytes));
        ++refused;
        continue;
      }
    }
    // A batch never exceeds a segment (unless one record does), so segments keep their size.
    const std::uint64_t batch_cap = std::min<std::uint64_t>(options_.max_batch_bytes, options_.segment_max_bytes);
    if (builder_.record_count() > 0 && builder_.size() + items[i].bytes > batch_cap) {
      if (Status s = commit(); !s.is_ok()) {
        reached[i] = false;  // not in any batch: fails with the write
        failure = s;
        break;
      }
    }
    const std::int64_t ts = rec.timestamp_ns != 0 ? rec.timestamp_ns : now_ns;
    if (builder_.record_count() == 0) bytes += kBatchHeaderSize;
    const std::size_t before = builder_.size();
    builder_.add(ts, opt_view(rec.subject), opt_view(rec.headers), opt_view(rec.msg_id), rec.payload.view());
    bytes += builder_.size() - before;
    ++messages;
    results[i] = AppendAck{builder_.next_sequence() - 1, false};
    owner[i] = batches.size();
    if (rec.msg_id && options_.dedup_window_ns > 0) {
      std::string id(rec.msg_id->as_string_view());
      dedup_[id] = DedupEntry{builder_.next_sequence() - 1, ts};
      dedup_order_.emplace_back(ts, id);
      current.msg_ids.push_back(std::move(id));
    }
  }
  if (failure.is_ok()) {
    if (Status s = commit(); !s.is_ok()) failure = s;
  }
  if (failure.is_ok() && !batches.empty() && options_.fsync == FsyncPolicy::kAlways &&
      !std::all_of(published.begin(), published.end(), [](bool p) { return p; })) {
    if (Status s = sync_active(now_ns); !s.is_ok()) failure = s;
  }
  if (failure.is_ok()) {
    if (options_.fsync != FsyncPolicy::kAlways && !batches.empty()) unsynced_ = true;
    publish();
  } else {
    // The batch being built, every unpublished batch and every append not reached fail.
    fail_batch(current);
    for (std::size_t b = 0; b < batches.size(); ++b) {
      if (!published[b]) fail_batch(batches[b]);
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      const bool unreached = !reached[i];
      const bool lost = owner[i] != kNoOwner && (owner[i] >= batches.size() || !published[owner[i]]);
      if (unreached || lost) results[i] = failure;
    }
    // Unpublished batches that did reach the file are cut off again; their sequences are reused.
    std::size_t first_lost = batches.size();
    for (std::size_t b = 0; b < batches.size(); ++b) {
      if (!published[b]) {
        first_lost = b;
        break;
      }
    }
    if (first_lost < batches.size() && batches[first_lost].segment == segments_.rbegin()->second) {
      const std::uint64_t pos = batches[first_lost].position;
      if (Status t = io_.truncate(batches[first_lost].segment->file, pos); !t.is_ok()) fail(t);
      write_end_ = pos;
    }
  }
  {
    std::lock_guard lk(mu_);
    stats_.duplicates += duplicates;
    stats_.refused_full += refused;
  }
  // Count and size limits after every batch; age (a time lookup that reads the segment) on
  // the periodic check and enforce_retention().
  if (options_.max_messages > 0 || options_.max_bytes > 0) apply_retention(now_ns, false);
  report(items);
  bool stored = false;
  for (std::size_t b = 0; b < batches.size() && !stored; ++b) stored = published[b];
  if (stored) {
    std::function<void()>* listener;
    {
      std::lock_guard lk(mu_);
      listener = stored_listener_ ? &stored_listener_ : nullptr;
    }
    if (listener != nullptr) (*listener)();
  }
}

void Log::report(std::vector<Pending>& items) {
  std::vector<AppendOutcome>& run = outcomes_;
  AppendSink* run_sink = nullptr;
  auto end_run = [&] {
    if (run.empty()) return;
    run_sink->appended(std::span<AppendOutcome>(run));
    run.clear();
  };
  for (std::size_t i = 0; i < items.size(); ++i) {
    Pending& p = items[i];
    if (p.sink == nullptr) {
      end_run();
      p.done(std::move(results_[i]));
      continue;
    }
    if (p.sink != run_sink) {
      end_run();
      run_sink = p.sink;
    }
    run.push_back(AppendOutcome{std::move(p.tag), std::move(results_[i])});
  }
  end_run();
  results_.clear();
}

Status Log::roll_segment(std::int64_t now_ns) {
  (void)now_ns;
  std::shared_ptr<Segment> old = segments_.rbegin()->second;
  std::uint64_t base;
  {
    std::lock_guard lk(mu_);
    base = old->next_sequence;
  }
  auto seg = std::make_shared<Segment>();
  seg->base = base;
  seg->path = dir_ + "/" + detail::segment_file_name(base, ".log");
  seg->index_path = dir_ + "/" + detail::segment_file_name(base, ".index");
  seg->time_index_path = dir_ + "/" + detail::segment_file_name(base, ".timeindex");
  seg->next_sequence = base;
  Result<File> f = io_.open(seg->path, true);
  if (!f.is_ok()) {
    SLIP_LOG_ERROR("log {}: cannot create segment {}: {}", dir_, seg->path, f.status().to_string());
    return f.status();
  }
  seg->file = std::move(f).value();
  if (options_.fsync != FsyncPolicy::kNever) {
    if (Status s = io_.sync_dir(dir_); !s.is_ok()) {
      fail(s);
      return s;
    }
  }
  // Indexes are hints: a failure to write them costs a rebuild at the next open, nothing else.
  if (Status s = write_indexes(*old); !s.is_ok()) {
    SLIP_LOG_WARN("log {}: cannot write the indexes of {}: {}", dir_, old->path, s.to_string());
  }
  std::lock_guard lk(mu_);
  old->sealed = true;
  segments_.emplace(base, std::move(seg));
  write_end_ = 0;
  return Status::ok();
}

Status Log::sync_active(std::int64_t now_ns) {
  (void)now_ns;
  std::shared_ptr<Segment> active = segments_.rbegin()->second;
  Status s = io_.sync(active->file);
  {
    std::lock_guard lk(mu_);
    ++stats_.fsyncs;
    if (!s.is_ok()) ++stats_.write_errors;
  }
  if (!s.is_ok()) {
    SLIP_LOG_ERROR("log {}: fsync of {} failed: {}", dir_, active->path, s.to_string());
    fail(s);
    return s;
  }
  unsynced_ = false;
  last_sync_ns_ = mono_now_ns();
  return Status::ok();
}

void Log::fail(const Status& s) {
  std::lock_guard lk(mu_);
  if (failed_.is_ok()) {
    failed_ = s;
    SLIP_LOG_ERROR("log {}: refusing further appends after: {}", dir_, s.to_string());
  }
}

Status Log::health() const {
  std::lock_guard lk(mu_);
  return failed_;
}

Status Log::flush() {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> f = promise->get_future();
  {
    std::lock_guard lk(mu_);
    if (closing_) return failed_;
    tasks_.push_back([this, promise] {
      Status s;
      {
        std::lock_guard lk(mu_);
        s = failed_;
      }
      if (s.is_ok() && unsynced_) s = sync_active(now());
      promise->set_value(std::move(s));
    });
  }
  wake_.notify_one();
  return f.get();
}

Status Log::enforce_retention() {
  auto promise = std::make_shared<std::promise<Status>>();
  std::future<Status> f = promise->get_future();
  {
    std::lock_guard lk(mu_);
    if (closing_) return failed_precondition("log is closed");
    tasks_.push_back([this, promise] {
      apply_retention(now(), true);
      promise->set_value(Status::ok());
    });
  }
  wake_.notify_one();
  return f.get();
}

Status Log::close() {
  std::lock_guard cl(close_mu_);
  if (closed_) return health();
  {
    std::lock_guard lk(mu_);
    closing_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
  closed_ = true;
  return health();
}

// ---------------------------------------------------------------------------------------------
// Retention

Result<std::uint64_t> Log::batch_start_at_or_after(const std::shared_ptr<Segment>& seg, std::uint64_t position,
                                                   std::uint64_t* sequence) const {
  // From the last index entry at or before `position`, walk batch headers forward.
  IndexEntry e{seg->base, 0};
  std::uint64_t end;
  std::uint64_t seg_next;
  {
    std::lock_guard lk(mu_);
    for (const IndexEntry& x : seg->offsets) {
      if (x.position > position) break;
      e = x;
    }
    end = seg->size;
    seg_next = seg->next_sequence;
  }
  std::uint64_t pos = e.position;
  std::uint64_t seq = e.sequence;
  while (pos < end) {
    SLIP_ASSIGN_OR_RETURN(std::optional<BatchHeader> h, detail::read_batch(seg->file, pos, end, options_.read_limits, nullptr));
    if (!h || h->base_sequence != seq) {
      SLIP_ASSIGN_OR_RETURN(auto next, detail::find_next_batch(seg->file, pos, end, seq, options_.read_limits));
      if (!next) break;
      pos = next->position;
      seq = next->header.base_sequence;
      continue;
    }
    if (pos >= position) {
      *sequence = seq;
      return pos;
    }
    pos += h->length;
    seq = h->next_sequence();
  }
  *sequence = seg_next;
  return end;
}

void Log::apply_retention(std::int64_t now_ns, bool include_age) {
  const bool by_count = options_.max_messages > 0 && options_.discard == DiscardPolicy::kOld;
  const bool by_bytes = options_.max_bytes > 0 && options_.discard == DiscardPolicy::kOld;
  const bool by_age = options_.max_age_ns > 0 && include_age;
  if (!by_count && !by_bytes && !by_age) return;

  std::uint64_t first;
  std::uint64_t next;
  std::vector<std::shared_ptr<Segment>> segs;
  {
    std::lock_guard lk(mu_);
    first = first_sequence_;
    next = next_sequence_;
    for (const auto& [b, s] : segments_) segs.push_back(s);
  }
  std::uint64_t new_first = first;
  if (by_count && next - new_first > options_.max_messages) new_first = next - options_.max_messages;
  if (by_age) {
    Result<std::uint64_t> r = find_by_time(now_ns - options_.max_age_ns);
    if (r.is_ok()) {
      new_first = std::max(new_first, *r);
    } else if (r.status().code() == StatusCode::kNotFound) {
      new_first = next;
    } else {
      SLIP_LOG_WARN("log {}: age retention: {}", dir_, r.status().to_string());
    }
  }
  if (by_bytes) {
    // From the newest segment back, find where max_bytes of batches begin.
    std::uint64_t acc = 0;
    for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
      std::uint64_t size;
      {
        std::lock_guard lk(mu_);
        size = (*it)->size;
      }
      if (acc + size <= options_.max_bytes) {
        acc += size;
        continue;
      }
      std::uint64_t seq = 0;
      Result<std::uint64_t> pos = batch_start_at_or_after(*it, size - (options_.max_bytes - acc), &seq);
      if (pos.is_ok()) new_first = std::max(new_first, seq);
      break;
    }
  }
  new_first = std::min(new_first, next);
  if (new_first <= first) return;

  // Everything expired: start a fresh segment so the old one can go (the new file's name keeps
  // the next sequence across a restart).
  if (new_first == next && segs.back()->size > 0) {
    if (unsynced_ && options_.fsync != FsyncPolicy::kNever) (void)sync_active(now_ns);
    if (roll_segment(now_ns).is_ok()) segs.push_back(segments_.rbegin()->second);
  }

  std::vector<std::shared_ptr<Segment>> doomed;
  std::shared_ptr<Segment> first_seg;
  for (const auto& s : segs) {
    std::uint64_t seg_next;
    {
      std::lock_guard lk(mu_);
      seg_next = s->next_sequence;
    }
    if (s != segs.back() && seg_next <= new_first) {
      doomed.push_back(s);
    } else {
      first_seg = s;
      break;
    }
  }
  std::uint64_t first_pos = 0;
  if (first_seg && new_first > first_seg->base) {
    // The batch that holds new_first: the last batch start at or before it.
    std::vector<IndexEntry> offsets;
    std::uint64_t end;
    {
      std::lock_guard lk(mu_);
      offsets = first_seg->offsets;
      end = first_seg->size;
    }
    const IndexEntry e = index_lookup(offsets, first_seg->base, new_first);
    std::uint64_t pos = e.position;
    std::uint64_t seq = e.sequence;
    first_pos = pos;
    while (pos < end) {
      Result<std::optional<BatchHeader>> h = detail::read_batch(first_seg->file, pos, end, options_.read_limits, nullptr);
      if (!h.is_ok() || !*h || (*h)->base_sequence != seq) break;
      if ((*h)->next_sequence() > new_first) {
        first_pos = pos;
        break;
      }
      pos += (*h)->length;
      seq = (*h)->next_sequence();
      first_pos = pos;
    }
  }
  {
    std::lock_guard lk(mu_);
    for (const auto& s : doomed) segments_.erase(s->base);
    first_sequence_ = new_first;
    first_position_ = first_pos;
    stats_.segments_deleted += doomed.size();
  }
  for (const auto& s : doomed) {
    // Indexes first: a crash in between leaves a segment without indexes (rebuilt), never
    // indexes without their segment.
    (void)io_.remove(s->index_path);
    (void)io_.remove(s->time_index_path);
    if (Status st = io_.remove(s->path); !st.is_ok()) {
      SLIP_LOG_WARN("log {}: retention cannot remove {}: {}", dir_, s->path, st.to_string());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

void Log::note_damage(const std::shared_ptr<Segment>& seg, std::uint64_t position) const {
  std::lock_guard lk(mu_);
  if (seg->reported_damage.insert(position).second) {
    ++stats_.damaged_batches;
    SLIP_LOG_WARN("log {}: damaged batch at {}:{} skipped", dir_, seg->path, position);
  }
}

Result<ReadResult> Log::read(std::uint64_t from, const ReadOptions& options) const {
  struct Snap {
    std::shared_ptr<Segment> seg;
    std::uint64_t end;
    std::uint64_t next_sequence;
    IndexEntry start;
  };
  std::vector<Snap> snaps;
  ReadResult out;
  {
    std::lock_guard lk(mu_);
    from = std::max(from, first_sequence_);
    out.next_sequence = from;
    if (from >= next_sequence_) return out;
    auto it = segments_.upper_bound(from);
    if (it != segments_.begin()) --it;
    for (; it != segments_.end(); ++it) {
      const Segment& s = *it->second;
      IndexEntry start{s.base, 0};
      if (snaps.empty()) start = index_lookup(s.offsets, s.base, from);
      snaps.push_back(Snap{it->second, s.size, s.next_sequence, start});
    }
  }

  std::size_t bytes = 0;
  bool full = false;
  auto skip = [&](std::uint64_t first, std::uint64_t last) {
    first = std::max(first, from);
    if (first > last) return;
    if (!out.skipped.empty() && out.skipped.back().last + 1 == first) {
      out.skipped.back().last = last;
    } else {
      out.skipped.push_back(SequenceRange{first, last});
    }
    out.next_sequence = std::max(out.next_sequence, last + 1);
  };
  std::vector<RecordView> views;
  for (const Snap& sn : snaps) {
    if (full) break;
    std::uint64_t pos = sn.start.position;
    std::uint64_t expected = sn.start.sequence;
    while (pos < sn.end && !full) {
      Buffer buf;
      SLIP_ASSIGN_OR_RETURN(std::optional<BatchHeader> h,
                            detail::read_batch(sn.seg->file, pos, sn.end, options_.read_limits, &buf));
      views.clear();
      bool ok = h && h->base_sequence == expected;
      if (ok && h->next_sequence() > from) {
        ok = decode_records(ByteView(buf.data(), buf.size()), *h, &views).is_ok();
      }
      if (!ok) {
        note_damage(sn.seg, pos);
        SLIP_ASSIGN_OR_RETURN(auto next,
                              detail::find_next_batch(sn.seg->file, pos, sn.end, expected, options_.read_limits));
        const std::uint64_t resume = next ? next->header.base_sequence : sn.next_sequence;
        if (resume > expected) skip(expected, resume - 1);
        if (!next) {
          expected = sn.next_sequence;
          break;
        }
        pos = next->position;
        expected = next->header.base_sequence;
        continue;
      }
      if (h->next_sequence() > from) {
        for (const RecordView& v : views) {
          if (v.sequence < from) continue;
          const std::size_t n = v.payload.size() + (v.subject ? v.subject->size() : 0) +
                                (v.headers ? v.headers->size() : 0) + (v.msg_id ? v.msg_id->size() : 0);
          if (out.records.size() >= options.max_records || (!out.records.empty() && bytes + n > options.max_bytes)) {
            full = true;
            break;
          }
          auto slice_of = [&](ByteView b) { return buf.slice(static_cast<std::size_t>(b.data() - buf.data()), b.size()); };
          StoredRecord r;
          r.sequence = v.sequence;
          r.timestamp_ns = v.timestamp_ns;
          if (v.subject) r.subject = slice_of(*v.subject);
          if (v.headers) r.headers = slice_of(*v.headers);
          if (v.msg_id) r.msg_id = slice_of(*v.msg_id);
          r.payload = slice_of(v.payload);
          out.records.push_back(std::move(r));
          bytes += n;
          out.next_sequence = v.sequence + 1;
        }
      }
      if (full) break;
      pos += h->length;
      expected = h->next_sequence();
    }
    // A sealed segment whose end is damaged: its last sequences are skipped too.
    if (!full && pos >= sn.end && expected < sn.next_sequence && sn.seg != snaps.back().seg) {
      skip(expected, sn.next_sequence - 1);
    }
  }
  return out;
}

Result<std::optional<std::uint64_t>> Log::find_time_in_segment(const std::shared_ptr<Segment>& seg,
                                                               std::int64_t timestamp_ns) const {
  IndexEntry start;
  std::uint64_t end;
  std::uint64_t min_seq;
  {
    std::lock_guard lk(mu_);
    const std::uint64_t seq = time_lookup(seg->times, seg->base, timestamp_ns);
    start = index_lookup(seg->offsets, seg->base, seq);
    end = seg->size;
    min_seq = first_sequence_;
  }
  std::uint64_t pos = start.position;
  std::uint64_t expected = start.sequence;
  std::vector<RecordView> views;
  while (pos < end) {
    Buffer buf;
    SLIP_ASSIGN_OR_RETURN(std::optional<BatchHeader> h,
                          detail::read_batch(seg->file, pos, end, options_.read_limits, &buf));
    views.clear();
    if (!h || h->base_sequence != expected ||
        !decode_records(ByteView(buf.data(), buf.size()), *h, &views).is_ok()) {
      SLIP_ASSIGN_OR_RETURN(auto next, detail::find_next_batch(seg->file, pos, end, expected, options_.read_limits));
      if (!next) break;
      pos = next->position;
      expected = next->header.base_sequence;
      continue;
    }
    if (h->max_timestamp_ns >= timestamp_ns && h->next_sequence() > min_seq) {
      for (const RecordView& v : views) {
        if (v.sequence >= min_seq && v.timestamp_ns >= timestamp_ns) return std::optional<std::uint64_t>(v.sequence);
      }
    }
    pos += h->length;
    expected = h->next_sequence();
  }
  return std::optional<std::uint64_t>();
}

Result<std::uint64_t> Log::find_by_time(std::int64_t timestamp_ns) const {
  std::vector<std::shared_ptr<Segment>> candidates;
  {
    std::lock_guard lk(mu_);
    for (const auto& [b, s] : segments_) {
      if (s->record_count == 0 || s->max_timestamp_ns < timestamp_ns || s->next_sequence <= first_sequence_) continue;
      candidates.push_back(s);
    }
  }
  for (const auto& s : candidates) {
    SLIP_ASSIGN_OR_RETURN(std::optional<std::uint64_t> seq, find_time_in_segment(s, timestamp_ns));
    if (seq) return *seq;
  }
  return not_found(fmt::format("no record at or after timestamp {}", timestamp_ns));
}

std::uint64_t Log::first_sequence() const {
  std::lock_guard lk(mu_);
  return first_sequence_;
}

std::uint64_t Log::last_sequence() const {
  std::lock_guard lk(mu_);
  return next_sequence_ - 1;
}

LogStats Log::stats() const {
  std::lock_guard lk(mu_);
  LogStats s = stats_;
  s.first_sequence = first_sequence_;
  s.last_sequence = next_sequence_ - 1;
  s.messages = next_sequence_ - first_sequence_;
  s.segments = segments_.size();
  s.bytes = 0;
  for (const auto& [b, seg] : segments_) s.bytes += seg->size;
  s.bytes -= std::min(s.bytes, first_position_);
  return s;
}

}  // namespace slip::log
