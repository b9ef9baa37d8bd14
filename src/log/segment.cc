#include "log/segment.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace slip::log::detail {

std::string segment_file_name(std::uint64_t base, std::string_view suffix) {
  std::string name = fmt::format("{:020}", base);
  name.append(suffix);
  return name;
}

std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() != 20 + kSuffix.size() || name.substr(20) != kSuffix) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : name.substr(0, 20)) {
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (v == 0) return std::nullopt;
  return v;
}

void Segment::add_batch(std::uint64_t position, const BatchHeader& h, std::size_t interval) {
  // An entry every `interval` bytes: a read scans at most about that much before its record.
  if (position > 0 && position - last_index_position >= interval) {
    offsets.push_back(IndexEntry{h.base_sequence, position});
    const std::int64_t before = record_count > 0 ? max_timestamp_ns : INT64_MIN;
    if (times.empty() || before >= times.back().max_timestamp_before_ns) {
      times.push_back(TimeEntry{before, h.base_sequence});
    }
    last_index_position = position;
  }
  if (record_count == 0) {
    first_timestamp_ns = h.first_timestamp_ns;
    max_timestamp_ns = h.max_timestamp_ns;
  }
  max_timestamp_ns = std::max(max_timestamp_ns, h.max_timestamp_ns);
  record_count += h.record_count;
  next_sequence = std::max(next_sequence, h.next_sequence());
  size = std::max(size, position + h.length);
}

OffsetIndex Segment::offset_index() const {
  OffsetIndex x;
  x.base_sequence = base;
  x.next_sequence = next_sequence;
  x.segment_bytes = size;
  x.record_count = record_count;
  x.first_timestamp_ns = first_timestamp_ns;
  x.max_timestamp_ns = max_timestamp_ns;
  x.entries = offsets;
  return x;
}

TimeIndex Segment::time_index() const {
  TimeIndex x;
  x.base_sequence = base;
  x.segment_bytes = size;
  x.entries = times;
  return x;
}

Result<std::optional<BatchHeader>> read_batch(const File& f, std::uint64_t position, std::uint64_t end,
                                              const BatchLimits& limits, Buffer* payload) {
  if (position >= end || end - position < kBatchHeaderSize) return std::optional<BatchHeader>();
  std::uint8_t head[kBatchHeaderSize];
  SLIP_ASSIGN_OR_RETURN(const std::size_t n, f.read_at(position, head, sizeof head));
  if (n < sizeof head) return std::optional<BatchHeader>();
  Result<BatchHeader> h = decode_batch_header(ByteView(head, sizeof head), limits);
  if (!h.is_ok() || h->length > end - position) return std::optional<BatchHeader>();
  if (payload == nullptr) return std::optional<BatchHeader>(*h);
  Buffer buf = Buffer::allocate(h->length);
  std::memcpy(buf.tail(), head, sizeof head);
  SLIP_ASSIGN_OR_RETURN(const std::size_t m,
                        f.read_at(position + sizeof head, buf.tail() + sizeof head, h->length - sizeof head));
  if (m != h->length - sizeof head) return std::optional<BatchHeader>();
  buf.commit(h->length);
  if (!verify_batch(ByteView(buf.data(), buf.size()), *h).is_ok()) return std::optional<BatchHeader>();
  *payload = std::move(buf);
  return std::optional<BatchHeader>(*h);
}

Result<std::optional<FoundBatch>> find_next_batch(const File& f, std::uint64_t after, std::uint64_t end,
                                                  std::uint64_t min_sequence, const BatchLimits& limits) {
  // Look for the magic in windows of 64 KiB (overlapping by 3 bytes so a magic on a window
  // boundary is seen), and verify each candidate completely.
  constexpr std::size_t kWindow = 64 * 1024;
  std::vector<std::uint8_t> window(kWindow);
  std::uint8_t magic[4];
  put_u32(magic, kBatchMagic);
  std::uint64_t pos = after + 1;
  while (pos < end && end - pos >= kBatchHeaderSize) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kWindow, end - pos));
    SLIP_ASSIGN_OR_RETURN(const std::size_t n, f.read_at(pos, window.data(), want));
    if (n < 4) break;
    for (std::size_t i = 0; i + 4 <= n; ++i) {
      if (std::memcmp(window.data() + i, magic, 4) != 0) continue;
      Buffer b;
      SLIP_ASSIGN_OR_RETURN(std::optional<BatchHeader> h, read_batch(f, pos + i, end, limits, &b));
      if (h && h->base_sequence >= min_sequence) return std::optional<FoundBatch>(FoundBatch{pos + i, *h});
    }
    if (n < want) break;
    pos += n - 3;
  }
  return std::optional<FoundBatch>();
}

Result<ScanResult> scan_segment(Segment* seg, std::uint64_t end, const BatchLimits& limits, std::size_t interval) {
  ScanResult r;
  std::uint64_t pos = 0;
  std::uint64_t expected = seg->base;
  while (pos < end) {
    Buffer b;
    SLIP_ASSIGN_OR_RETURN(std::optional<BatchHeader> h, read_batch(seg->file, pos, end, limits, &b));
    if (h && h->base_sequence == expected) {
      seg->add_batch(pos, *h, interval);
      expected = h->next_sequence();
      pos += h->length;
      r.valid_end = pos;
      continue;
    }
    // Damage (or a batch that does not continue the sequence): is there a valid batch later?
    SLIP_ASSIGN_OR_RETURN(std::optional<FoundBatch> next, find_next_batch(seg->file, pos, end, expected, limits));
    if (!next) {
      r.torn_tail = true;
      break;
    }
    r.damaged.push_back(DamagedRange{pos, next->position});
    pos = next->position;
    if (next->header.base_sequence > expected) expected = next->header.base_sequence;
  }
  return r;
}

}  // namespace slip::log::detail
