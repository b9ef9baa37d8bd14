// The persistent stream log (src/log/log.h): appends and reads, restart, recovery from torn
// and damaged files, indexes, retention, de-duplication, failure injection, group commit.
#include "log/log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "log/index.h"

namespace slip::log {
namespace {

namespace fs = std::filesystem;

// Concatenation by append (g++ 12 -O2 warns falsely on chains of std::string +).
template <typename... A>
std::string cat(const A&... parts) {
  std::string s;
  (s.append(parts), ...);
  return s;
}
std::string num(std::uint64_t v) { return std::to_string(v); }

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "slip-log-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return cat(path_, "/", name); }

 private:
  std::string path_;
};

struct FakeClock {
  std::shared_ptr<std::atomic<std::int64_t>> t = std::make_shared<std::atomic<std::int64_t>>(1'000'000'000'000);
  std::function<std::int64_t()> fn() const {
    return [t = t] { return t->load(); };
  }
  void advance(std::int64_t ns) { t->fetch_add(ns); }
  std::int64_t now() const { return t->load(); }
};

AppendRecord rec(const std::string& payload, std::optional<std::string> subject = std::nullopt,
                 std::optional<std::string> msg_id = std::nullopt) {
  AppendRecord r;
  r.payload = Slice::copy_of(ByteView(payload));
  if (subject) r.subject = Slice::copy_of(ByteView(*subject));
  if (msg_id) r.msg_id = Slice::copy_of(ByteView(*msg_id));
  return r;
}

Result<AppendAck> put(Log& log, AppendRecord r) { return log.append(std::move(r)).get(); }

std::uint64_t put_ok(Log& log, const std::string& payload) {
  Result<AppendAck> r = put(log, rec(payload));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r->sequence : 0;
}

// Options for tests whose subject is not durability: no fsync per append (close() still syncs).
LogOptions no_sync() {
  LogOptions o;
  o.fsync = FsyncPolicy::kNever;
  return o;
}

std::unique_ptr<Log> open_log(const std::string& dir, LogOptions o = {}) {
  auto r = Log::open(dir, std::move(o));
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? std::move(r).value() : nullptr;
}

// Reads everything from `from` on, in small reads, collecting skipped ranges too.
std::vector<StoredRecord> read_all(const Log& log, std::uint64_t from = 1, std::vector<SequenceRange>* skipped = nullptr,
                                   std::size_t max_records = 7) {
  std::vector<StoredRecord> out;
  ReadOptions ro;
  ro.max_records = max_records;
  for (;;) {
    Result<ReadResult> r = log.read(from, ro);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    if (!r.is_ok()) break;
    for (auto& x : r->records) out.push_back(std::move(x));
    if (skipped) skipped->insert(skipped->end(), r->skipped.begin(), r->skipped.end());
    if (r->next_sequence <= from) break;
    from = r->next_sequence;
  }
  return out;
}

std::vector<std::string> files_with(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string p = e.path().string();
    if (p.ends_with(suffix)) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string payload_for(std::uint64_t i) { return cat("message-", num(i), std::string(i % 50, 'z')); }

TEST(LogTest, SequencesAreDenseAndStartAtOne) {
  TempDir dir;
  auto log = open_log(dir.path());
  EXPECT_EQ(log->first_sequence(), 1u);
  EXPECT_EQ(log->last_sequence(), 0u);
  EXPECT_EQ(log->stats().messages, 0u);
  for (std::uint64_t i = 1; i <= 5; ++i) EXPECT_EQ(put_ok(*log, "x"), i);
  EXPECT_EQ(log->last_sequence(), 5u);
  EXPECT_EQ(log->stats().messages, 5u);
}

TEST(LogTest, AppendReadRoundTripAcrossManySegments) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 4096;
  o.index_interval_bytes = 512;
  o.fsync = FsyncPolicy::kNever;
  auto log = open_log(dir.path(), o);
  constexpr std::uint64_t kCount = 1500;
  std::atomic<std::uint64_t> acked{0};
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    AppendRecord r = rec(payload_for(i), cat("subj.", num(i % 3)),
                         i % 4 == 0 ? std::optional<std::string>(cat("id-", num(i))) : std::nullopt);
    if (i % 5 == 0) r.headers = Slice::copy_of(ByteView(cat("h", num(i))));
    ASSERT_TRUE(log->append(std::move(r), [&](Result<AppendAck> a) {
                     EXPECT_TRUE(a.is_ok());
                     acked.fetch_add(1);
                   }).is_ok());
  }
  ASSERT_TRUE(log->flush().is_ok());
  EXPECT_EQ(acked.load(), kCount);
  EXPECT_GT(log->stats().segments, 10u);
  EXPECT_EQ(log->last_sequence(), kCount);

  auto all = read_all(*log);
  ASSERT_EQ(all.size(), kCount);
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    const StoredRecord& r = all[i - 1];
    ASSERT_EQ(r.sequence, i);
    EXPECT_EQ(r.payload.to_string(), payload_for(i));
    ASSERT_TRUE(r.subject.has_value());
    EXPECT_EQ(r.subject->to_string(), cat("subj.", num(i % 3)));
    EXPECT_EQ(r.msg_id.has_value(), i % 4 == 0);
    EXPECT_EQ(r.headers.has_value(), i % 5 == 0);
    if (r.headers) {
      EXPECT_EQ(r.headers->to_string(), cat("h", num(i)));
    }
  }
  // A read from the middle of a segment starts exactly there; limits are honoured.
  ReadOptions ro;
  ro.max_records = 10;
  auto mid = log->read(777, ro);
  ASSERT_TRUE(mid.is_ok());
  ASSERT_EQ(mid->records.size(), 10u);
  EXPECT_EQ(mid->records.front().sequence, 777u);
  EXPECT_EQ(mid->next_sequence, 787u);
  ro.max_records = 1000;
  ro.max_bytes = 1;  // at least one record anyway
  auto one = log->read(5, ro);
  ASSERT_TRUE(one.is_ok());
  EXPECT_EQ(one->records.size(), 1u);
  auto past = log->read(kCount + 1);
  ASSERT_TRUE(past.is_ok());
  EXPECT_TRUE(past->records.empty());
  EXPECT_EQ(past->next_sequence, kCount + 1);
}

TEST(LogTest, ReopenKeepsEverythingAndContinuesTheSequence) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 2048;
  o.fsync = FsyncPolicy::kInterval;  // close() makes it durable
  {
    auto log = open_log(dir.path(), o);
    for (std::uint64_t i = 1; i <= 200; ++i) ASSERT_EQ(put_ok(*log, payload_for(i)), i);
    ASSERT_TRUE(log->close().is_ok());
  }
  auto log = open_log(dir.path(), o);
  EXPECT_EQ(log->stats().torn_tails, 0u);
  EXPECT_EQ(log->stats().index_rebuilds, 0u);
  EXPECT_EQ(log->last_sequence(), 200u);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 200u);
  for (std::uint64_t i = 1; i <= 200; ++i) EXPECT_EQ(all[i - 1].payload.to_string(), payload_for(i));
  EXPECT_EQ(put_ok(*log, "after"), 201u);
}

// Three single-record batches; returns the file sizes after each.
std::vector<std::uint64_t> write_three(const std::string& dir, const LogOptions& o) {
  std::vector<std::uint64_t> ends;
  auto log = open_log(dir, o);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(put_ok(*log, payload_for(static_cast<std::uint64_t>(i) + 40)), static_cast<std::uint64_t>(i));
    ends.push_back(fs::file_size(files_with(dir, ".log").back()));
  }
  return ends;
}

TEST(LogTest, TornTailAtEveryByteOffsetTruncatesToTheLastCompleteBatch) {
  TempDir dir;
  const auto ends = write_three(dir.path(), {});
  const std::string seg = files_with(dir.path(), ".log").back();
  const std::string original = read_file(seg);
  ASSERT_EQ(original.size(), ends[2]);
  for (std::uint64_t cut = ends[1]; cut < ends[2]; ++cut) {
    write_file(seg, original.substr(0, cut));
    auto log = open_log(dir.path(), no_sync());
    ASSERT_NE(log, nullptr);
    EXPECT_EQ(log->last_sequence(), 2u) << cut;
    EXPECT_EQ(log->stats().torn_tails, cut > ends[1] ? 1u : 0u) << cut;
    EXPECT_EQ(log->stats().truncated_bytes, cut - ends[1]) << cut;
    EXPECT_EQ(fs::file_size(seg), ends[1]) << cut;
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 2u) << cut;
    EXPECT_EQ(all[1].payload.to_string(), payload_for(42));
    EXPECT_EQ(put_ok(*log, "again"), 3u) << cut;
  }
}

TEST(LogTest, CorruptLastBatchIsTruncatedLikeATornTail) {
  TempDir dir;
  const auto ends = write_three(dir.path(), {});
  const std::string seg = files_with(dir.path(), ".log").back();
  std::string bytes = read_file(seg);
  bytes[ends[1] + 60] ^= 0x04;
  write_file(seg, bytes);
  auto log = open_log(dir.path());
  EXPECT_EQ(log->last_sequence(), 2u);
  EXPECT_EQ(log->stats().torn_tails, 1u);
  EXPECT_EQ(log->stats().damaged_batches, 0u);
}

TEST(LogTest, FlipInAMiddleBatchIsSkippedAndTheReadReportsTheGap) {
  TempDir dir;
  const auto ends = write_three(dir.path(), {});
  const std::string seg = files_with(dir.path(), ".log").back();
  const std::string original = read_file(seg);
  for (std::uint64_t at = ends[0]; at < ends[1]; ++at) {
    std::string bytes = original;
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (at % 8)));
    write_file(seg, bytes);
    auto log = open_log(dir.path(), no_sync());
    ASSERT_NE(log, nullptr);
    // Not truncated: the batch after the damage is valid.
    EXPECT_EQ(log->last_sequence(), 3u) << at;
    EXPECT_EQ(log->stats().torn_tails, 0u) << at;
    EXPECT_EQ(log->stats().damaged_batches, 1u) << at;
    std::vector<SequenceRange> skipped;
    auto all = read_all(*log, 1, &skipped);
    ASSERT_EQ(all.size(), 2u) << at;
    EXPECT_EQ(all[0].sequence, 1u);
    EXPECT_EQ(all[1].sequence, 3u);
    EXPECT_EQ(all[1].payload.to_string(), payload_for(43));
    ASSERT_EQ(skipped.size(), 1u) << at;
    EXPECT_EQ(skipped[0], (SequenceRange{2, 2}));
    // Reading from the damaged sequence itself reports it too.
    auto r = log->read(2);
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(r->skipped.size(), 1u);
    EXPECT_EQ(r->skipped[0], (SequenceRange{2, 2}));
    ASSERT_EQ(r->records.size(), 1u);
    EXPECT_EQ(r->records[0].sequence, 3u);
    EXPECT_EQ(put_ok(*log, "next"), 4u) << at;
    ASSERT_TRUE(log->close().is_ok());
    log.reset();
    // Undo the append for the next round.
    write_file(seg, original);
  }
}

TEST(LogTest, DamageInASealedSegmentIsFoundAtReadAndSkipped) {
  TempDir dir;
  LogOptions o = no_sync();
  o.segment_max_bytes = 1024;
  o.dedup_window_ns = 0;  // rebuilding the window at open would read (and find) the damage
  {
    auto log = open_log(dir.path(), o);
    for (std::uint64_t i = 1; i <= 60; ++i) ASSERT_EQ(put_ok(*log, payload_for(i)), i);
  }
  const auto segs = files_with(dir.path(), ".log");
  ASSERT_GE(segs.size(), 4u);
  // Damage the second batch of the second segment (its index stays valid: same size).
  const std::string victim = segs[1];
  const std::uint64_t base = std::stoull(fs::path(victim).filename().string());
  std::string bytes = read_file(victim);
  auto first = decode_batch_header(ByteView(bytes.data(), bytes.size()), BatchLimits{});
  ASSERT_TRUE(first.is_ok());
  bytes[first->length + 50] ^= 0x01;
  write_file(victim, bytes);

  auto log = open_log(dir.path(), o);
  EXPECT_EQ(log->stats().damaged_batches, 0u);  // sealed segments are not scanned at open
  std::vector<SequenceRange> skipped;
  auto all = read_all(*log, 1, &skipped);
  EXPECT_EQ(all.size(), 59u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_EQ(skipped[0], (SequenceRange{base + 1, base + 1}));
  EXPECT_EQ(log->stats().damaged_batches, 1u);
  for (const auto& r : all) {
    EXPECT_NE(r.sequence, base + 1);
    EXPECT_EQ(r.payload.to_string(), payload_for(r.sequence));
  }
}

TEST(LogTest, MissingOrDamagedIndexesAreRebuiltIdentically) {
  TempDir dir;
  LogOptions o = no_sync();
  o.segment_max_bytes = 2048;
  o.index_interval_bytes = 200;
  FakeClock clock;
  o.clock = clock.fn();
  {
    auto log = open_log(dir.path(), o);
    for (std::uint64_t i = 1; i <= 120; ++i) {
      ASSERT_EQ(put_ok(*log, payload_for(i)), i);
      clock.advance(1000);
    }
  }
  const auto idx = files_with(dir.path(), ".index");
  const auto tidx = files_with(dir.path(), ".timeindex");
  ASSERT_GE(idx.size(), 4u);
  ASSERT_EQ(idx.size(), tidx.size());
  std::vector<std::string> saved_idx, saved_tidx;
  for (const auto& p : idx) saved_idx.push_back(read_file(p));
  for (const auto& p : tidx) saved_tidx.push_back(read_file(p));
  auto oi = decode_offset_index(ByteView(saved_idx[0]));
  ASSERT_TRUE(oi.is_ok());
  EXPECT_FALSE(oi->entries.empty());

  fs::remove(idx[0]);                             // missing
  std::string t = saved_tidx[1];
  t[t.size() / 2] ^= 0x20;                         // bad CRC
  write_file(tidx[1], t);
  write_file(idx[2], saved_idx[2].substr(0, 10));  // truncated
  {
    std::ofstream grow(files_with(dir.path(), ".log")[3], std::ios::binary | std::ios::app);
    grow << "junk";                                 // the segment no longer matches its index
  }

  auto log = open_log(dir.path(), o);
  EXPECT_EQ(log->stats().index_rebuilds, 4u);
  EXPECT_EQ(read_file(idx[0]), saved_idx[0]);
  EXPECT_EQ(read_file(tidx[1]), saved_tidx[1]);
  EXPECT_EQ(read_file(idx[2]), saved_idx[2]);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 120u);
  for (std::uint64_t i = 1; i <= 120; ++i) EXPECT_EQ(all[i - 1].sequence, i);
  // Time lookups work through the rebuilt indexes.
  const std::int64_t t0 = all[0].timestamp_ns;
  for (std::uint64_t i = 1; i <= 120; i += 7) {
    auto s = log->find_by_time(t0 + static_cast<std::int64_t>(i - 1) * 1000);
    ASSERT_TRUE(s.is_ok());
    EXPECT_EQ(*s, i);
  }
}

TEST(LogTest, FindByTimeReturnsTheFirstRecordAtOrAfter) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 1500;
  o.index_interval_bytes = 128;
  o.fsync = FsyncPolicy::kNever;
  FakeClock clock;
  o.clock = clock.fn();
  auto log = open_log(dir.path(), o);
  const std::int64_t t0 = clock.now();
  for (std::uint64_t i = 1; i <= 300; ++i) {
    ASSERT_EQ(put_ok(*log, payload_for(i)), i);
    clock.advance(10);
  }
  EXPECT_EQ(*log->find_by_time(0), 1u);
  EXPECT_EQ(*log->find_by_time(t0), 1u);
  EXPECT_EQ(*log->find_by_time(t0 + 1), 2u);
  EXPECT_EQ(*log->find_by_time(t0 + 1234), 125u);
  EXPECT_EQ(*log->find_by_time(t0 + 2990), 300u);
  auto none = log->find_by_time(t0 + 2991);
  ASSERT_FALSE(none.is_ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

TEST(LogTest, RetentionByCountDropsOldSegmentsAndHidesTheRest) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 1024;
  o.max_messages = 100;
  o.fsync = FsyncPolicy::kNever;  // no fsync per append or per segment: durability is not the subject
  auto log = open_log(dir.path(), o);
  for (std::uint64_t i = 1; i <= 1000; ++i) ASSERT_EQ(put_ok(*log, payload_for(i)), i);
  LogStats s = log->stats();
  EXPECT_EQ(s.first_sequence, 901u);
  EXPECT_EQ(s.last_sequence, 1000u);
  EXPECT_EQ(s.messages, 100u);
  EXPECT_GT(s.segments_deleted, 10u);
  EXPECT_LT(s.segments, 12u);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 100u);
  EXPECT_EQ(all.front().sequence, 901u);
  // The limit holds across a restart.
  ASSERT_TRUE(log->close().is_ok());
  log = open_log(dir.path(), o);
  EXPECT_EQ(log->first_sequence(), 901u);
  EXPECT_EQ(put_ok(*log, "x"), 1001u);
  EXPECT_EQ(log->first_sequence(), 902u);
}

TEST(LogTest, RetentionByBytesKeepsStoredBytesUnderTheLimit) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 2048;
  o.max_bytes = 8192;
  o.fsync = FsyncPolicy::kNever;
  auto log = open_log(dir.path(), o);
  std::uint64_t batch_bytes = 0;
  for (std::uint64_t i = 1; i <= 600; ++i) {
    ASSERT_EQ(put_ok(*log, std::string(100, 'b')), i);
    if (i == 1) batch_bytes = log->stats().bytes;
    const LogStats s = log->stats();
    ASSERT_LE(s.bytes, 8192u) << i;
  }
  const LogStats s = log->stats();
  EXPECT_GT(s.bytes, 8192u - batch_bytes);
  EXPECT_EQ(s.messages * batch_bytes, s.bytes);  // one record per batch here
  EXPECT_GT(s.segments_deleted, 0u);
  auto all = read_all(*log);
  EXPECT_EQ(all.size(), s.messages);
  EXPECT_EQ(all.back().sequence, 600u);
}

TEST(LogTest, RetentionByAgeUsesTheInjectedClock) {
  TempDir dir;
  LogOptions o = no_sync();
  o.segment_max_bytes = 1024;
  o.max_age_ns = 60'000'000'000;
  o.retention_check_interval_ns = 0;
  FakeClock clock;
  o.clock = clock.fn();
  {
    auto log = open_log(dir.path(), o);
    for (std::uint64_t i = 1; i <= 100; ++i) {
      ASSERT_EQ(put_ok(*log, payload_for(i)), i);
      clock.advance(1'000'000'000);  // one record per second
    }
    ASSERT_TRUE(log->enforce_retention().is_ok());
    // Now = t0 + 100 s: records stamped before t0 + 40 s are older than 60 s.
    EXPECT_EQ(log->first_sequence(), 41u);
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 60u);
    EXPECT_EQ(all.front().sequence, 41u);
    clock.advance(3600'000'000'000);
    ASSERT_TRUE(log->enforce_retention().is_ok());
    EXPECT_EQ(log->stats().messages, 0u);
    EXPECT_EQ(log->last_sequence(), 100u);
    EXPECT_TRUE(read_all(*log).empty());
  }
  // Every record expired and the old segments are gone, but sequences never restart.
  auto log = open_log(dir.path(), o);
  EXPECT_EQ(log->stats().messages, 0u);
  EXPECT_EQ(files_with(dir.path(), ".log").size(), 1u);
  EXPECT_EQ(put_ok(*log, "later"), 101u);
}

TEST(LogTest, DiscardNewRefusesAppendsWhenFull) {
  TempDir dir;
  LogOptions o;
  o.max_messages = 10;
  o.discard = DiscardPolicy::kNew;
  auto log = open_log(dir.path(), o);
  for (std::uint64_t i = 1; i <= 10; ++i) ASSERT_EQ(put_ok(*log, "x"), i);
  Result<AppendAck> r = put(*log, rec("y"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
  EXPECT_NE(r.status().message().find("stream full"), std::string_view::npos);
  EXPECT_EQ(log->stats().refused_full, 1u);
  EXPECT_EQ(log->first_sequence(), 1u);
  EXPECT_EQ(log->last_sequence(), 10u);
}

TEST(LogTest, DiscardNewByBytes) {
  TempDir dir;
  LogOptions o;
  o.max_bytes = 1000;
  o.discard = DiscardPolicy::kNew;
  auto log = open_log(dir.path(), o);
  std::uint64_t stored = 0;
  for (int i = 0; i < 20; ++i) {
    Result<AppendAck> r = put(*log, rec(std::string(100, 'q')));
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
      break;
    }
    ++stored;
  }
  EXPECT_GT(stored, 3u);
  EXPECT_LT(stored, 10u);
  EXPECT_LE(log->stats().bytes, 1000u);
}

TEST(LogTest, DuplicateWithinTheWindowReturnsTheOriginalSequence) {
  TempDir dir;
  LogOptions o;
  o.dedup_window_ns = 60'000'000'000;
  FakeClock clock;
  o.clock = clock.fn();
  {
    auto log = open_log(dir.path(), o);
    auto a = put(*log, rec("one", std::nullopt, "id-a"));
    ASSERT_TRUE(a.is_ok());
    EXPECT_EQ(a->sequence, 1u);
    EXPECT_FALSE(a->duplicate);
    auto again = put(*log, rec("one again", std::nullopt, "id-a"));
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->sequence, 1u);
    EXPECT_TRUE(again->duplicate);
    EXPECT_EQ(put(*log, rec("two", std::nullopt, "id-b"))->sequence, 2u);
    // Two copies queued together: the second is answered from the first, in the same batch.
    auto f1 = log->append(rec("three", std::nullopt, "id-c"));
    auto f2 = log->append(rec("three", std::nullopt, "id-c"));
    auto r1 = f1.get(), r2 = f2.get();
    ASSERT_TRUE(r1.is_ok() && r2.is_ok());
    EXPECT_EQ(r1->sequence, 3u);
    EXPECT_EQ(r2->sequence, 3u);
    EXPECT_TRUE(r2->duplicate);
    EXPECT_EQ(log->last_sequence(), 3u);
    EXPECT_EQ(log->stats().duplicates, 2u);
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].payload.to_string(), "one");
  }
  // The window is rebuilt from the log at open.
  auto log = open_log(dir.path(), o);
  auto dup = put(*log, rec("x", std::nullopt, "id-b"));
  ASSERT_TRUE(dup.is_ok());
  EXPECT_EQ(dup->sequence, 2u);
  EXPECT_TRUE(dup->duplicate);
  clock.advance(61'000'000'000);
  auto fresh = put(*log, rec("x", std::nullopt, "id-b"));
  ASSERT_TRUE(fresh.is_ok());
  EXPECT_EQ(fresh->sequence, 4u);
  EXPECT_FALSE(fresh->duplicate);
}

TEST(LogTest, RejectsBadRecordsWithoutQueueingThem) {
  TempDir dir;
  LogOptions o;
  o.max_record_bytes = 1024;
  auto log = open_log(dir.path(), o);
  Status s = log->append(rec(std::string(2000, 'x')), [](Result<AppendAck>) { ADD_FAILURE(); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  s = log->append(rec("x", std::nullopt, ""), [](Result<AppendAck>) { ADD_FAILURE(); });
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(log->close().is_ok());
  s = log->append(rec("x"), [](Result<AppendAck>) { ADD_FAILURE(); });
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(log->last_sequence(), 0u);
}

TEST(LogTest, OptionsAreValidated) {
  TempDir dir;
  LogOptions o;
  o.index_interval_bytes = 0;
  EXPECT_EQ(Log::open(dir.path(), o).status().code(), StatusCode::kInvalidArgument);
  LogOptions p;
  p.max_record_bytes = 128u << 20;  // larger than what reads accept
  EXPECT_EQ(Log::open(dir.path(), p).status().code(), StatusCode::kInvalidArgument);
}

TEST(LogTest, SegmentsRollByAge) {
  TempDir dir;
  LogOptions o;
  o.segment_max_age_ns = 10'000'000'000;
  FakeClock clock;
  o.clock = clock.fn();
  auto log = open_log(dir.path(), o);
  put_ok(*log, "a");
  clock.advance(5'000'000'000);
  put_ok(*log, "b");
  EXPECT_EQ(log->stats().segments, 1u);
  clock.advance(6'000'000'000);
  put_ok(*log, "c");
  EXPECT_EQ(log->stats().segments, 2u);
  EXPECT_EQ(read_all(*log).size(), 3u);
}

TEST(LogTest, FailedWriteIsNotAcknowledgedAndLeavesNoTrace) {
  TempDir dir;
  std::atomic<int> fail_writes{0};
  LogOptions o;
  o.io_hook = [&](IoOp op, std::string_view, std::size_t* write_bytes) -> Status {
    if (op == IoOp::kWrite && fail_writes.load() > 0) {
      fail_writes.fetch_sub(1);
      *write_bytes = 10;  // a short write, then the error
      return Status(StatusCode::kOverloaded, "simulated ENOSPC");
    }
    return Status::ok();
  };
  std::uint64_t size_after_two = 0;
  {
    auto log = open_log(dir.path(), o);
    EXPECT_EQ(put_ok(*log, "one"), 1u);
    EXPECT_EQ(put_ok(*log, "two"), 2u);
    size_after_two = fs::file_size(files_with(dir.path(), ".log").back());
    fail_writes = 1;
    Result<AppendAck> r = put(*log, rec("lost"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
    EXPECT_NE(r.status().message().find("ENOSPC"), std::string_view::npos);
    EXPECT_EQ(fs::file_size(files_with(dir.path(), ".log").back()), size_after_two);
    EXPECT_TRUE(log->health().is_ok());  // a failed write leaves the log usable
    EXPECT_EQ(log->stats().write_errors, 1u);
    EXPECT_EQ(put_ok(*log, "three"), 3u);  // the refused record's sequence is not skipped
  }
  auto log = open_log(dir.path());
  EXPECT_EQ(log->stats().torn_tails, 0u);
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].payload.to_string(), "three");
}

TEST(LogTest, FailedFsyncRefusesFurtherAppendsAndKeepsAcknowledgedRecords) {
  TempDir dir;
  std::atomic<bool> fail_sync{false};
  LogOptions o;
  o.io_hook = [&](IoOp op, std::string_view, std::size_t*) -> Status {
    if (op == IoOp::kSync && fail_sync.load()) return Status(StatusCode::kUnknown, "simulated EIO");
    return Status::ok();
  };
  {
    auto log = open_log(dir.path(), o);
    EXPECT_EQ(put_ok(*log, "kept"), 1u);
    fail_sync = true;
    Result<AppendAck> r = put(*log, rec("not acknowledged"));
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("EIO"), std::string_view::npos);
    Result<AppendAck> later = put(*log, rec("refused"));
    ASSERT_FALSE(later.is_ok());
    EXPECT_EQ(later.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(later.status().message().find("EIO"), std::string_view::npos);
    EXPECT_FALSE(log->health().is_ok());
    auto all = read_all(*log);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].payload.to_string(), "kept");
    EXPECT_FALSE(log->close().is_ok());
  }
  auto log = open_log(dir.path());
  auto all = read_all(*log);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].payload.to_string(), "kept");
  EXPECT_EQ(put_ok(*log, "fine again"), 2u);
}

TEST(LogTest, GroupCommitAcknowledgesInOrderWithFewerFsyncsThanAppends) {
  TempDir dir;
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  int syncs = 0;
  LogOptions o;
  o.fsync = FsyncPolicy::kAlways;
  // Hold the first fsync until every concurrent append is queued: they must then share one.
  o.io_hook = [&](IoOp op, std::string_view, std::size_t*) -> Status {
    if (op != IoOp::kSync) return Status::ok();
    std::unique_lock lk(m);
    if (++syncs == 1) {
      cv.notify_all();
      cv.wait(lk, [&] { return release; });
    }
    return Status::ok();
  };
  auto log = open_log(dir.path(), o);
  std::mutex order_mu;
  std::vector<std::uint64_t> order;
  auto record_ack = [&](Result<AppendAck> r) {
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    std::lock_guard lk(order_mu);
    order.push_back(r->sequence);
  };
  ASSERT_TRUE(log->append(rec("first"), record_ack).is_ok());
  {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return syncs == 1; });
  }
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100;
  std::vector<std::vector<std::uint64_t>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = log->append(rec(cat("t", num(static_cast<std::uint64_t>(t)), "-", num(static_cast<std::uint64_t>(i)))), [&, t](Result<AppendAck> r) {
          ASSERT_TRUE(r.is_ok());
          per_thread[t].push_back(r->sequence);  // callbacks run one at a time on the writer
          record_ack(std::move(r));
        });
        ASSERT_TRUE(s.is_ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  {
    std::lock_guard lk(m);
    release = true;
  }
  cv.notify_all();
  ASSERT_TRUE(log->flush().is_ok());

  constexpr std::uint64_t kTotal = kThreads * kPerThread + 1;
  ASSERT_EQ(order.size(), kTotal);
  for (std::uint64_t i = 0; i < kTotal; ++i) EXPECT_EQ(order[i], i + 1);
  for (const auto& seqs : per_thread) {
    EXPECT_EQ(seqs.size(), static_cast<std::size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  }
  const LogStats s = log->stats();
  EXPECT_EQ(s.appends, kTotal);
  EXPECT_EQ(s.fsyncs, 2u);  // one for "first", one for everything queued behind it
  EXPECT_LT(s.fsyncs, s.appends);
  // Each acknowledged record reads back with its own payload.
  auto all = read_all(*log, 1, nullptr, 1000);
  ASSERT_EQ(all.size(), kTotal);
}

TEST(LogTest, IntervalAndNeverPoliciesAcknowledgeBeforeFsync) {
  TempDir dir;
  LogOptions o;
  o.fsync = FsyncPolicy::kInterval;
  o.fsync_interval_ns = 3600'000'000'000;  // the timer never fires during the test
  {
    auto log = open_log(dir.sub("interval"), o);
    for (int i = 0; i < 5; ++i) put_ok(*log, "x");
    EXPECT_EQ(log->stats().fsyncs, 0u);
    ASSERT_TRUE(log->flush().is_ok());
    EXPECT_EQ(log->stats().fsyncs, 1u);
    ASSERT_TRUE(log->flush().is_ok());
    EXPECT_EQ(log->stats().fsyncs, 1u);  // nothing new to sync
  }
  o.fsync = FsyncPolicy::kNever;
  auto log = open_log(dir.sub("never"), o);
  for (int i = 0; i < 5; ++i) put_ok(*log, "x");
  EXPECT_EQ(log->stats().fsyncs, 0u);
  ASSERT_TRUE(log->close().is_ok());
  EXPECT_EQ(log->stats().fsyncs, 1u);  // close makes it durable
  EXPECT_EQ(read_all(*log).size(), 5u);  // reads work after close
}

TEST(LogTest, ConcurrentReaderSeesEveryAcknowledgedRecordInOrder) {
  TempDir dir;
  LogOptions o;
  o.segment_max_bytes = 4096;
  o.fsync = FsyncPolicy::kNever;
  auto log = open_log(dir.path(), o);
  constexpr std::uint64_t kCount = 2000;
  std::atomic<bool> reader_ok{true};
  std::thread reader([&] {
    std::uint64_t next = 1;
    while (next <= kCount) {
      Result<ReadResult> r = log->read(next);
      if (!r.is_ok() || !r->skipped.empty()) {
        reader_ok = false;
        return;
      }
      for (const StoredRecord& x : r->records) {
        if (x.sequence != next || x.payload.to_string() != payload_for(next)) {
          reader_ok = false;
          return;
        }
        ++next;
      }
      if (r->records.empty()) std::this_thread::yield();
    }
  });
  for (std::uint64_t i = 1; i <= kCount; ++i) {
    ASSERT_TRUE(log->append(rec(payload_for(i)), [](Result<AppendAck> r) { ASSERT_TRUE(r.is_ok()); }).is_ok());
  }
  reader.join();
  EXPECT_TRUE(reader_ok.load());
}

// Holds the log's first fsync until released, so that everything appended meanwhile is written
// by the writer's next cycle, as one group commit.
struct FirstSyncGate {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  int syncs = 0;
  std::atomic<int> fail_writes{0};
  IoHook hook() {
    return [this](IoOp op, std::string_view, std::size_t* write_bytes) -> Status {
      if (op == IoOp::kWrite && fail_writes.load() > 0) {
        fail_writes.fetch_sub(1);
        *write_bytes = 3;
        return Status(StatusCode::kOverloaded, "simulated ENOSPC");
      }
      if (op != IoOp::kSync) return Status::ok();
      std::unique_lock lk(m);
      if (++syncs == 1) {
        cv.notify_all();
        cv.wait(lk, [&] { return release; });
      }
      return Status::ok();
    };
  }
  void wait_held() {
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return syncs == 1; });
  }
  void open() {
    {
      std::lock_guard lk(m);
      release = true;
    }
    cv.notify_all();
  }
};

// Records what a sink is told, on the writer thread; read after Log::flush().
struct RecordingSink final : AppendSink {
  struct Got {
    std::uint64_t id;
    std::int64_t stamp;
    void* context;
    std::shared_ptr<void> owner;
    Result<AppendAck> result;
  };
  std::vector<std::size_t> run_sizes;
  std::vector<Got> got;
  std::vector<std::uint64_t>* all_ids = nullptr;  // shared by every sink and callback of a test
  void appended(std::span<AppendOutcome> outcomes) override {
    run_sizes.push_back(outcomes.size());
    for (AppendOutcome& o : outcomes) {
      got.push_back(Got{o.tag.id, o.tag.stamp, o.tag.context, o.tag.owner.lock(), std::move(o.result)});
      if (all_ids) all_ids->push_back(o.tag.id);
    }
  }
};

TEST(LogTest, SinksGetEveryOutcomeOnceInSequenceOrderOneCallPerRun) {
  TempDir dir;
  FirstSyncGate gate;
  LogOptions o;
  o.fsync = FsyncPolicy::kAlways;
  o.io_hook = gate.hook();
  auto log = open_log(dir.path(), o);
  std::atomic<int> stored_cycles{0};
  log->set_stored_listener([&] { stored_cycles.fetch_add(1); });

  std::vector<std::uint64_t> all_ids;  // writer thread
  RecordingSink a, b;
  a.all_ids = &all_ids;
  b.all_ids = &all_ids;
  auto owner_a = std::make_shared<int>(1);
  int context = 0;
  auto tag = [&](std::uint64_t id, const std::shared_ptr<int>& owner) {
    AppendTag t;
    t.owner = owner;
    t.context = &context;
    t.id = id;
    t.stamp = static_cast<std::int64_t>(1000 + id);
    return t;
  };
  // Appended while the writer waits in the first fsync: one cycle takes all of them.
  ASSERT_TRUE(log->append(rec("first"), a, tag(1, owner_a)).is_ok());
  gate.wait_held();
  // Runs: a a a | b b | callback | a a | b
  std::vector<std::pair<char, std::uint64_t>> plan = {{'a', 2}, {'a', 3}, {'a', 4}, {'b', 5}, {'b', 6},
                                                      {'c', 7}, {'a', 8}, {'a', 9}, {'b', 10}};
  std::uint64_t callback_seq = 0;
  for (const auto& [who, id] : plan) {
    const std::string payload = cat("m", num(id));
    Status st;
    if (who == 'c') {
      st = log->append(rec(payload), [&, id = id](Result<AppendAck> r) {
        ASSERT_TRUE(r.is_ok());
        callback_seq = r->sequence;
        all_ids.push_back(id);
      });
    } else {
      st = log->append(rec(payload), who == 'a' ? a : b, tag(id, who == 'a' ? owner_a : nullptr));
    }
    ASSERT_TRUE(st.is_ok()) << st.to_string();
  }
  gate.open();
  ASSERT_TRUE(log->flush().is_ok());

  // Every append answered once, in the order of the appends (= sequence order).
  ASSERT_EQ(all_ids.size(), 10u);
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_EQ(all_ids[i], i + 1);
  // a: "first" alone, then runs of 3 and 2; b: runs of 2 and 1.
  EXPECT_EQ(a.run_sizes, (std::vector<std::size_t>{1, 3, 2}));
  EXPECT_EQ(b.run_sizes, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(callback_seq, 7u);
  for (const auto* sink : {&a, &b}) {
    for (const auto& g : sink->got) {
      ASSERT_TRUE(g.result.is_ok()) << g.result.status().to_string();
      EXPECT_EQ(g.result->sequence, g.id);  // ids were chosen equal to the sequences
      EXPECT_FALSE(g.result->duplicate);
      EXPECT_EQ(g.stamp, static_cast<std::int64_t>(1000 + g.id));
      EXPECT_EQ(g.context, &context);
    }
  }
  for (const auto& g : a.got) EXPECT_EQ(g.owner, owner_a);  // the tag's owner comes back intact
  for (const auto& g : b.got) EXPECT_EQ(g.owner, nullptr);
  // Two cycles stored records: "first", then the nine behind it.
  EXPECT_EQ(stored_cycles.load(), 2);
  auto all = read_all(*log, 1, nullptr, 100);
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(all[9].payload.to_string(), "m10");
}

TEST(LogTest, SinkHearsAFailedWriteForEveryAppendOfTheBatch) {
  TempDir dir;
  FirstSyncGate gate;
  LogOptions o;
  o.fsync = FsyncPolicy::kAlways;
  o.io_hook = gate.hook();
  auto log = open_log(dir.path(), o);
  std::atomic<int> stored_cycles{0};
  log->set_stored_listener([&] { stored_cycles.fetch_add(1); });
  RecordingSink sink;
  ASSERT_TRUE(log->append(rec("first"), sink, AppendTag{{}, nullptr, 1, 0}).is_ok());
  gate.wait_held();
  for (std::uint64_t id = 2; id <= 4; ++id) {
    ASSERT_TRUE(log->append(rec("lost"), sink, AppendTag{{}, nullptr, id, 0}).is_ok());
  }
  gate.fail_writes = 1;  // the next cycle's write
  gate.open();
  ASSERT_TRUE(log->flush().is_ok());
  ASSERT_EQ(sink.got.size(), 4u);
  ASSERT_TRUE(sink.got[0].result.is_ok());
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(sink.got[i].id, i + 1);
    ASSERT_FALSE(sink.got[i].result.is_ok());
    EXPECT_EQ(sink.got[i].result.status().code(), StatusCode::kOverloaded);
    EXPECT_NE(sink.got[i].result.status().message().find("ENOSPC"), std::string_view::npos);
  }
  EXPECT_EQ(stored_cycles.load(), 1);  // the failed cycle stored nothing
  // The failed records' sequences are used again.
  EXPECT_EQ(put_ok(*log, "after"), 2u);
  ASSERT_TRUE(log->flush().is_ok());  // the listener runs after the callbacks of its cycle
  EXPECT_EQ(stored_cycles.load(), 2);
}

TEST(LogTest, StoredListenerIgnoresCyclesOfDuplicatesOnly) {
  TempDir dir;
  auto log = open_log(dir.path(), no_sync());
  std::atomic<int> stored_cycles{0};
  log->set_stored_listener([&] { stored_cycles.fetch_add(1); });
  ASSERT_TRUE(put(*log, rec("one", std::nullopt, std::string("id-1"))).is_ok());
  ASSERT_TRUE(log->flush().is_ok());  // the listener runs after the callbacks of its cycle
  EXPECT_EQ(stored_cycles.load(), 1);
  Result<AppendAck> again = put(*log, rec("one again", std::nullopt, std::string("id-1")));
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->sequence, 1u);
  ASSERT_TRUE(log->flush().is_ok());
  EXPECT_EQ(stored_cycles.load(), 1);
  ASSERT_TRUE(put(*log, rec("two")).is_ok());
  ASSERT_TRUE(log->flush().is_ok());
  EXPECT_EQ(stored_cycles.load(), 2);
}

}  // namespace
}  // namespace slip::log
