// On-disk record batches of a persistent stream's log (spec: docs/storage.md, "Batches").
//
// A segment file is a sequence of batches. A batch is a fixed 48-byte header followed by its
// records; a CRC32C covers everything after the CRC field, so a torn write, a flipped bit or a
// stray overwrite is detected before any record is served. Sequences are implicit: record i of
// a batch has sequence base_sequence + i.
//
// Everything here is a pure function of bytes: the decoders take untrusted input (a damaged
// disk, a hostile file) and return a Status, never crash (tests/fuzz/log_batch_fuzz.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::log {

// Bytes 'S','L','G','B' read as a little-endian u32.
inline constexpr std::uint32_t kBatchMagic = 0x42474C53;
inline constexpr std::uint8_t kBatchVersion = 1;
inline constexpr std::size_t kBatchHeaderSize = 48;
// Header byte offsets (docs/storage.md).
inline constexpr std::size_t kBatchCrcOffset = 4;      // u32 crc32c of bytes [8, length)
inline constexpr std::size_t kBatchLengthOffset = 8;   // u32 whole batch, header included
inline constexpr std::size_t kBatchCrcStart = 8;

// Record attribute bits.
inline constexpr std::uint8_t kRecordHasSubject = 0x01;
inline constexpr std::uint8_t kRecordHasHeaders = 0x02;
inline constexpr std::uint8_t kRecordHasMsgId = 0x04;
inline constexpr std::uint8_t kRecordKnownAttributes = 0x07;

struct BatchHeader {
  std::uint32_t crc = 0;
  std::uint32_t length = 0;  // whole batch, header included
  std::uint8_t version = 0;
  std::uint8_t flags = 0;
  std::uint64_t base_sequence = 0;
  std::uint32_t record_count = 0;
  std::int64_t first_timestamp_ns = 0;  // timestamp of the first record
  std::int64_t max_timestamp_ns = 0;    // largest timestamp in the batch

  std::uint64_t next_sequence() const { return base_sequence + record_count; }
};

// Bounds a decoder enforces before trusting a length or a count.
struct BatchLimits {
  std::size_t max_batch_bytes = 64u << 20;
  std::uint32_t max_records = 1u << 20;
};

// Parses and checks the fixed header: magic, version, flags and reserved bytes, length within
// [header + 1 record's minimum, max_batch_bytes], a non-zero record count within the limit, a
// base sequence >= 1 whose records do not overflow. Needs bytes.size() >= kBatchHeaderSize;
// the CRC is not checked here (verify_batch).
Result<BatchHeader> decode_batch_header(ByteView bytes, const BatchLimits& limits);

// Checks the CRC32C of a whole batch: batch.size() == header.length.
Status verify_batch(ByteView batch, const BatchHeader& header);

// One record of a decoded batch. The views point into the batch bytes.
struct RecordView {
  std::uint64_t sequence = 0;
  std::int64_t timestamp_ns = 0;
  std::optional<ByteView> subject;
  std::optional<ByteView> headers;  // opaque to the log (the streams layer stores wire metadata)
  std::optional<ByteView> msg_id;
  ByteView payload;
  std::size_t encoded_size = 0;  // bytes of this record in the batch, length prefix included
};

// Decodes every record of a batch (already verified or not: every length is bounded by the
// batch) and appends them to `out`. Fails with kCorruption unless exactly header.record_count
// records fill the batch and every record is well formed; `out` may then hold a prefix.
Status decode_records(ByteView batch, const BatchHeader& header, std::vector<RecordView>* out);

// What a record costs in a batch, length prefix included, for sizing batches.
std::size_t encoded_record_size(std::size_t subject, bool has_subject, std::size_t headers, bool has_headers,
                                std::size_t msg_id, bool has_msg_id, std::size_t payload,
                                std::int64_t timestamp_delta);

// Builds one batch in a reusable buffer.
class BatchBuilder {
 public:
  // Starts an empty batch whose first record gets `base_sequence`.
  void reset(std::uint64_t base_sequence);
  void add(std::int64_t timestamp_ns, const std::optional<ByteView>& subject, const std::optional<ByteView>& headers,
           const std::optional<ByteView>& msg_id, ByteView payload);

  std::uint32_t record_count() const { return count_; }
  std::uint64_t base_sequence() const { return base_; }
  std::uint64_t next_sequence() const { return base_ + count_; }
  std::int64_t first_timestamp_ns() const { return first_ts_; }
  std::int64_t max_timestamp_ns() const { return max_ts_; }
  // Bytes of the finished batch, header included.
  std::size_t size() const { return buf_.size(); }
  // Writes the header and CRC; the view is valid until the next reset() or add().
  // Precondition: record_count() > 0.
  ByteView finish();

 private:
  std::vector<std::uint8_t> buf_;
  std::uint64_t base_ = 0;
  std::uint32_t count_ = 0;
  std::int64_t first_ts_ = 0;
  std::int64_t max_ts_ = 0;
};

// Little-endian fixed-width helpers shared by the batch and index codecs.
namespace detail {
inline void put_u32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline void put_u64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint32_t get_u32(const std::uint8_t* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
  return v;
}
inline std::uint64_t get_u64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}
inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>((v >> 1) ^ (~(v & 1) + 1));
}
}  // namespace detail

}  // namespace slip::log
