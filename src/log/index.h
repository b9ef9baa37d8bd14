// Per-segment index files (spec: docs/storage.md, "Index files").
//
//   NNNN.index      sparse offset index: sequence -> byte position of the batch that starts
//                   there, one entry every `index_interval_bytes`; its header also carries the
//                   segment's summary (end sequence, record count, timestamps), so opening a
//                   sealed segment reads no batch.
//   NNNN.timeindex  time index: (largest timestamp of all records before `sequence`,
//                   sequence), at the same points as the offset index.
//
// Indexes are hints. Each describes the segment size it was built for; one that is missing,
// fails its CRC, disagrees with the segment or breaks an invariant is rebuilt from the segment.
// The decoders take untrusted bytes (tests/fuzz/log_index_fuzz.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log {

// 'S','L','I','X' and 'S','L','T','X' as little-endian u32.
inline constexpr std::uint32_t kOffsetIndexMagic = 0x58494C53;
inline constexpr std::uint32_t kTimeIndexMagic = 0x58544C53;
inline constexpr std::uint32_t kIndexVersion = 1;
inline constexpr std::size_t kOffsetIndexHeaderSize = 64;
inline constexpr std::size_t kTimeIndexHeaderSize = 32;
inline constexpr std::size_t kIndexEntrySize = 16;
// Bounds the entries a decoder accepts (an index of a 4 GiB segment at 4 KiB intervals has
// 2^20 entries).
inline constexpr std::uint32_t kMaxIndexEntries = 1u << 22;

struct IndexEntry {
  std::uint64_t sequence = 0;  // base sequence of the batch at `position`
  std::uint64_t position = 0;
  bool operator==(const IndexEntry&) const = default;
};

struct TimeEntry {
  std::int64_t max_timestamp_before_ns = 0;  // largest timestamp of the records before `sequence`
  std::uint64_t sequence = 0;
  bool operator==(const TimeEntry&) const = default;
};

// What the offset index file holds: the segment's summary and the entries.
struct OffsetIndex {
  std::uint64_t base_sequence = 0;
  std::uint64_t next_sequence = 0;  // one past the segment's last record
  std::uint64_t segment_bytes = 0;  // size of the segment the index describes
  std::uint64_t record_count = 0;   // records in valid batches
  std::int64_t first_timestamp_ns = 0;
  std::int64_t max_timestamp_ns = 0;
  std::vector<IndexEntry> entries;
  bool operator==(const OffsetIndex&) const = default;
};

struct TimeIndex {
  std::uint64_t base_sequence = 0;
  std::uint64_t segment_bytes = 0;
  std::vector<TimeEntry> entries;
  bool operator==(const TimeIndex&) const = default;
};

std::vector<std::uint8_t> encode_offset_index(const OffsetIndex& index);
std::vector<std::uint8_t> encode_time_index(const TimeIndex& index);

// Decode and check every invariant: magic, version, CRC, exact size, entries strictly
// increasing in sequence and position, within [base, next) and [0, segment_bytes), timestamps
// non-decreasing. Any failure is kCorruption.
Result<OffsetIndex> decode_offset_index(ByteView bytes);
Result<TimeIndex> decode_time_index(ByteView bytes);

// The entry to start a scan for `sequence` from: the last entry at or before it, or
// {base, 0} when there is none.
IndexEntry index_lookup(const std::vector<IndexEntry>& entries, std::uint64_t base, std::uint64_t sequence);

// The sequence to start a scan for the first record at or after `timestamp_ns` from: the
// sequence of the last entry whose max_timestamp_before_ns < timestamp_ns, or `base`.
std::uint64_t time_lookup(const std::vector<TimeEntry>& entries, std::uint64_t base, std::int64_t timestamp_ns);

}  // namespace slip::log
