#include "log/index.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/crc32c.h"
#include "log/format.h"

namespace slip::log {

using detail::get_u32;
using detail::get_u64;
using detail::put_u32;
using detail::put_u64;

namespace {

std::vector<std::uint8_t> finish(std::vector<std::uint8_t> out) {
  const std::size_t n = out.size();
  out.resize(n + 4);
  put_u32(out.data() + n, crc32c(ByteView(out.data(), n)));
  return out;
}

// Checks magic, version, CRC and the exact size; returns the entry count.
Result<std::uint32_t> check_frame(ByteView bytes, std::uint32_t magic, std::size_t header_size,
                                  std::size_t count_offset) {
  if (bytes.size() < header_size + 4) return corruption("index truncated");
  const std::uint8_t* p = bytes.data();
  if (get_u32(p) != magic) return corruption("bad index magic");
  if (get_u32(p + 4) != kIndexVersion) return corruption(fmt::format("unknown index version {}", get_u32(p + 4)));
  const std::uint32_t count = get_u32(p + count_offset);
  if (count > kMaxIndexEntries) return corruption(fmt::format("index entry count {} out of range", count));
  if (bytes.size() != header_size + std::size_t{count} * kIndexEntrySize + 4) {
    return corruption("index size does not match its entry count");
  }
  const std::size_t body = bytes.size() - 4;
  if (crc32c(bytes.sub(0, body)) != get_u32(p + body)) return corruption("index CRC mismatch");
  return count;
}

}  // namespace

// Offset index header: magic u32, version u32, base u64, next u64, segment_bytes u64,
// records u64, first_ts i64, max_ts i64, count u32, reserved u32 (64 bytes).
std::vector<std::uint8_t> encode_offset_index(const OffsetIndex& index) {
  std::vector<std::uint8_t> out(kOffsetIndexHeaderSize + index.entries.size() * kIndexEntrySize, 0);
  std::uint8_t* p = out.data();
  put_u32(p, kOffsetIndexMagic);
  put_u32(p + 4, kIndexVersion);
  put_u64(p + 8, index.base_sequence);
  put_u64(p + 16, index.next_sequence);
  put_u64(p + 24, index.segment_bytes);
  put_u64(p + 32, index.record_count);
  put_u64(p + 40, static_cast<std::uint64_t>(index.first_timestamp_ns));
  put_u64(p + 48, static_cast<std::uint64_t>(index.max_timestamp_ns));
  put_u32(p + 56, static_cast<std::uint32_t>(index.entries.size()));
  p += kOffsetIndexHeaderSize;
  for (const IndexEntry& e : index.entries) {
    put_u64(p, e.sequence);
    put_u64(p + 8, e.position);
    p += kIndexEntrySize;
  }
  return finish(std::move(out));
}

// Time index header: magic u32, version u32, base u64, segment_bytes u64, count u32,
// reserved u32 (32 bytes).
std::vector<std::uint8_t> encode_time_index(const TimeIndex& index) {
  std::vector<std::uint8_t> out(kTimeIndexHeaderSize + index.entries.size() * kIndexEntrySize, 0);
  std::uint8_t* p = out.data();
  put_u32(p, kTimeIndexMagic);
  put_u32(p + 4, kIndexVersion);
  put_u64(p + 8, index.base_sequence);
  put_u64(p + 16, index.segment_bytes);
  put_u32(p + 24, static_cast<std::uint32_t>(index.entries.size()));
  p += kTimeIndexHeaderSize;
  for (const TimeEntry& e : index.entries) {
    put_u64(p, static_cast<std::uint64_t>(e.max_timestamp_before_ns));
    put_u64(p + 8, e.sequence);
    p += kIndexEntrySize;
  }
  return finish(std::move(out));
}

Result<OffsetIndex> decode_offset_index(ByteView bytes) {
  SLIP_ASSIGN_OR_RETURN(const std::uint32_t count, check_frame(bytes, kOffsetIndexMagic, kOffsetIndexHeaderSize, 56));
  const std::uint8_t* p = bytes.data();
  if (get_u32(p + 60) != 0) return corruption("reserved index bytes are set");
  OffsetIndex x;
  x.base_sequence = get_u64(p + 8);
  x.next_sequence = get_u64(p + 16);
  x.segment_bytes = get_u64(p + 24);
  x.record_count = get_u64(p + 32);
  x.first_timestamp_ns = static_cast<std::int64_t>(get_u64(p + 40));
  x.max_timestamp_ns = static_cast<std::int64_t>(get_u64(p + 48));
  if (x.base_sequence == 0 || x.next_sequence < x.base_sequence) return corruption("index sequence range is invalid");
  if (x.record_count > x.next_sequence - x.base_sequence) return corruption("index record count out of range");
  if (x.record_count > 0 && x.max_timestamp_ns < x.first_timestamp_ns) return corruption("index timestamps invalid");
  x.entries.reserve(count);
  p += kOffsetIndexHeaderSize;
  for (std::uint32_t i = 0; i < count; ++i, p += kIndexEntrySize) {
    IndexEntry e{get_u64(p), get_u64(p + 8)};
    if (e.sequence < x.base_sequence || e.sequence >= x.next_sequence || e.position >= x.segment_bytes ||
        e.position == 0) {
      return corruption(fmt::format("index entry {} out of range", i));
    }
    if (!x.entries.empty() && (e.sequence <= x.entries.back().sequence || e.position <= x.entries.back().position)) {
      return corruption(fmt::format("index entry {} out of order", i));
    }
    x.entries.push_back(e);
  }
  return x;
}

Result<TimeIndex> decode_time_index(ByteView bytes) {
  SLIP_ASSIGN_OR_RETURN(const std::uint32_t count, check_frame(bytes, kTimeIndexMagic, kTimeIndexHeaderSize, 24));
  const std::uint8_t* p = bytes.data();
  if (get_u32(p + 28) != 0) return corruption("reserved index bytes are set");
  TimeIndex x;
  x.base_sequence = get_u64(p + 8);
  x.segment_bytes = get_u64(p + 16);
  if (x.base_sequence == 0) return corruption("index base sequence is 0");
  x.entries.reserve(count);
  p += kTimeIndexHeaderSize;
  for (std::uint32_t i = 0; i < count; ++i, p += kIndexEntrySize) {
    TimeEntry e{static_cast<std::int64_t>(get_u64(p)), get_u64(p + 8)};
    if (e.sequence < x.base_sequence) return corruption(fmt::format("time index entry {} out of range", i));
    if (!x.entries.empty() && (e.sequence <= x.entries.back().sequence ||
                               e.max_timestamp_before_ns < x.entries.back().max_timestamp_before_ns)) {
      return corruption(fmt::format("time index entry {} out of order", i));
    }
    x.entries.push_back(e);
  }
  return x;
}

IndexEntry index_lookup(const std::vector<IndexEntry>& entries, std::uint64_t base, std::uint64_t sequence) {
  auto it = std::upper_bound(entries.begin(), entries.end(), sequence,
                             [](std::uint64_t s, const IndexEntry& e) { return s < e.sequence; });
  if (it == entries.begin()) return IndexEntry{base, 0};
  return *(it - 1);
}

std::uint64_t time_lookup(const std::vector<TimeEntry>& entries, std::uint64_t base, std::int64_t timestamp_ns) {
  // Entries are non-decreasing in max_timestamp_before_ns: the ones below timestamp_ns form a prefix.
  auto it = std::partition_point(entries.begin(), entries.end(),
                                 [&](const TimeEntry& e) { return e.max_timestamp_before_ns < timestamp_ns; });
  if (it == entries.begin()) return base;
  return (it - 1)->sequence;
}

}  // namespace slip::log
