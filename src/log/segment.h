// One segment file of a log and the scans over it: verifying batches, resynchronising after a
// damaged one, rebuilding indexes. Internal to src/log/.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "log/file.h"
#include "log/format.h"
#include "log/index.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log::detail {

// "00000000000000000042.log" for base 42: fixed width, so names sort like sequences.
std::string segment_file_name(std::uint64_t base, std::string_view suffix);
// The base sequence of a segment file name ("<20 digits>.log"), or nullopt for other names.
std::optional<std::uint64_t> parse_segment_file_name(std::string_view name);

// A byte range of a segment that holds no valid batch.
struct DamagedRange {
  std::uint64_t position = 0;
  std::uint64_t end = 0;
};

// A segment: its file, its summary and its in-memory indexes.
//
// Thread safety: `base`, the paths and `file` are immutable after creation (pread is safe from
// any thread). Everything else is guarded by the owning Log's mutex; the writer thread is the
// only one that changes it.
struct Segment {
  std::uint64_t base = 0;
  std::string path;
  std::string index_path;
  std::string time_index_path;
  File file;

  std::uint64_t size = 0;           // bytes readers may see: complete, acknowledged batches
  std::uint64_t next_sequence = 0;  // one past the last record (for sealed segments: the next base)
  std::uint64_t record_count = 0;   // records in valid batches
  std::int64_t first_timestamp_ns = 0;  // valid when record_count > 0
  std::int64_t max_timestamp_ns = 0;
  std::uint64_t last_index_position = 0;
  std::vector<IndexEntry> offsets;
  std::vector<TimeEntry> times;
  std::set<std::uint64_t> reported_damage;  // positions of damaged batches already counted and logged
  bool sealed = false;

  // Accounts a valid batch written or found at `position`; adds index entries every
  // `interval` bytes.
  void add_batch(std::uint64_t position, const BatchHeader& h, std::size_t interval);
  OffsetIndex offset_index() const;
  TimeIndex time_index() const;
};

// Reads the batch at `position` and verifies it. Returns nullopt when the bytes there are not
// a valid batch (bad header, bad CRC, or overrunning `end`); an I/O error is a Status. With
// `payload` null only the header is read and checked (no CRC).
Result<std::optional<BatchHeader>> read_batch(const File& f, std::uint64_t position, std::uint64_t end,
                                              const BatchLimits& limits, Buffer* payload);

struct FoundBatch {
  std::uint64_t position = 0;
  BatchHeader header;
};

// The first valid batch at a position in (after, end) whose base sequence is >= min_sequence:
// how reads and recovery get past a damaged batch whose length cannot be trusted.
Result<std::optional<FoundBatch>> find_next_batch(const File& f, std::uint64_t after, std::uint64_t end,
                                                  std::uint64_t min_sequence, const BatchLimits& limits);

struct ScanResult {
  std::uint64_t valid_end = 0;  // end of the last valid batch
  std::vector<DamagedRange> damaged;  // before valid_end: damaged batches followed by valid ones
  bool torn_tail = false;       // bytes after valid_end hold no valid batch
};

// Verifies every batch of [0, end) in order, calling seg->add_batch for each valid one.
// Damage followed by a valid batch is recorded and skipped; damage at the end is the torn
// tail, reported and left to the caller to truncate. Batches must continue the sequence
// (base == the previous batch's next, or greater after damage).
Result<ScanResult> scan_segment(Segment* seg, std::uint64_t end, const BatchLimits& limits, std::size_t interval);

}  // namespace slip::log::detail
