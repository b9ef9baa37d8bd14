#include "log/format.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>

#include "core/assert.h"
#include "core/crc32c.h"
#include "core/varint.h"

namespace slip::log {

using detail::get_u32;
using detail::get_u64;
using detail::put_u32;
using detail::put_u64;

namespace {

// Smallest possible record: length varint (1) + attributes (1) + timestamp delta (1).
constexpr std::size_t kMinRecordBytes = 3;

std::uint8_t* put_bytes(std::uint8_t* out, ByteView b) {
  out = encode_varint(out, b.size());
  if (!b.empty()) std::memcpy(out, b.data(), b.size());
  return out + b.size();
}

}  // namespace

Result<BatchHeader> decode_batch_header(ByteView bytes, const BatchLimits& limits) {
  if (bytes.size() < kBatchHeaderSize) return corruption("batch header truncated");
  const std::uint8_t* p = bytes.data();
  if (get_u32(p) != kBatchMagic) return corruption("bad batch magic");
  BatchHeader h;
  h.crc = get_u32(p + 4);
  h.length = get_u32(p + 8);
  h.version = p[12];
  h.flags = p[13];
  h.base_sequence = get_u64(p + 16);
  h.record_count = get_u32(p + 24);
  h.first_timestamp_ns = static_cast<std::int64_t>(get_u64(p + 32));
  h.max_timestamp_ns = static_cast<std::int64_t>(get_u64(p + 40));
  if (h.version != kBatchVersion) return corruption(fmt::format("unknown batch version {}", h.version));
  if (h.flags != 0 || p[14] != 0 || p[15] != 0 || get_u32(p + 28) != 0) {
    return corruption("reserved batch header bits are set");
  }
  if (h.record_count == 0 || h.record_count > limits.max_records) {
    return corruption(fmt::format("batch record count {} out of range", h.record_count));
  }
  const std::uint64_t min_len = kBatchHeaderSize + std::uint64_t{h.record_count} * kMinRecordBytes;
  if (h.length < min_len || h.length > limits.max_batch_bytes) {
    return corruption(fmt::format("batch length {} out of range", h.length));
  }
  if (h.base_sequence == 0 || h.base_sequence > std::numeric_limits<std::uint64_t>::max() - h.record_count) {
    return corruption(fmt::format("batch base sequence {} out of range", h.base_sequence));
  }
  if (h.max_timestamp_ns < h.first_timestamp_ns) return corruption("batch max timestamp before its first");
  return h;
}

Status verify_batch(ByteView batch, const BatchHeader& header) {
  if (batch.size() != header.length) return corruption("batch size does not match its length");
  if (crc32c(batch.sub(kBatchCrcStart)) != header.crc) return corruption("batch CRC mismatch");
  return Status::ok();
}

Status decode_records(ByteView batch, const BatchHeader& header, std::vector<RecordView>* out) {
  if (batch.size() != header.length || batch.size() < kBatchHeaderSize) {
    return corruption("batch size does not match its length");
  }
  std::size_t pos = kBatchHeaderSize;
  const std::size_t end = batch.size();
  auto varint = [&](std::size_t limit, std::uint64_t* v) -> bool {
    VarintResult r = decode_varint(batch.data() + pos, limit - pos);
    if (r.error != VarintError::kOk) return false;
    *v = r.value;
    pos += r.length;
    return true;
  };
  for (std::uint32_t i = 0; i < header.record_count; ++i) {
    const std::size_t start = pos;
    std::uint64_t len = 0;
    if (pos >= end || !varint(end, &len)) return corruption(fmt::format("record {}: bad length", i));
    if (len > end - pos || len < 2) return corruption(fmt::format("record {}: length {} out of range", i, len));
    const std::size_t rec_end = pos + static_cast<std::size_t>(len);
    RecordView r;
    r.sequence = header.base_sequence + i;
    const std::uint8_t attrs = batch[pos++];
    if (attrs & ~kRecordKnownAttributes) return corruption(fmt::format("record {}: unknown attributes", i));
    std::uint64_t delta = 0;
    if (!varint(rec_end, &delta)) return corruption(fmt::format("record {}: bad timestamp", i));
    // Wrapping arithmetic on unsigned values: a hostile delta must not be signed overflow.
    r.timestamp_ns = static_cast<std::int64_t>(static_cast<std::uint64_t>(header.first_timestamp_ns) +
                                               static_cast<std::uint64_t>(detail::unzigzag(delta)));
    // Records may be older than the first (a caller-supplied timestamp may step back), never
    // newer than the batch's maximum: the time index relies on it.
    if (r.timestamp_ns > header.max_timestamp_ns) {
      return corruption(fmt::format("record {}: timestamp past the batch maximum", i));
    }
    auto field = [&](std::uint8_t bit, std::optional<ByteView>* f) -> bool {
      if (!(attrs & bit)) return true;
      std::uint64_t n = 0;
      if (!varint(rec_end, &n) || n > rec_end - pos) return false;
      *f = batch.sub(pos, static_cast<std::size_t>(n));
      pos += static_cast<std::size_t>(n);
      return true;
    };
    if (!field(kRecordHasSubject, &r.subject) || !field(kRecordHasHeaders, &r.headers) ||
        !field(kRecordHasMsgId, &r.msg_id)) {
      return corruption(fmt::format("record {}: field overruns the record", i));
    }
    r.payload = batch.sub(pos, rec_end - pos);
    pos = rec_end;
    r.encoded_size = rec_end - start;
    out->push_back(r);
  }
  if (pos != end) return corruption("batch has bytes after its last record");
  return Status::ok();
}

std::size_t encoded_record_size(std::size_t subject, bool has_subject, std::size_t headers, bool has_headers,
                                std::size_t msg_id, bool has_msg_id, std::size_t payload,
                                std::int64_t timestamp_delta) {
  std::size_t body = 1 + varint_size(detail::zigzag(timestamp_delta)) + payload;
  if (has_subject) body += varint_size(subject) + subject;
  if (has_headers) body += varint_size(headers) + headers;
  if (has_msg_id) body += varint_size(msg_id) + msg_id;
  return varint_size(body) + body;
}

void BatchBuilder::reset(std::uint64_t base_sequence) {
  buf_.assign(kBatchHeaderSize, 0);
  base_ = base_sequence;
  count_ = 0;
  first_ts_ = 0;
  max_ts_ = 0;
}

void BatchBuilder::add(std::int64_t timestamp_ns, const std::optional<ByteView>& subject,
                       const std::optional<ByteView>& headers, const std::optional<ByteView>& msg_id,
                       ByteView payload) {
  if (count_ == 0) {
    first_ts_ = timestamp_ns;
    max_ts_ = timestamp_ns;
  }
  if (timestamp_ns > max_ts_) max_ts_ = timestamp_ns;
  const std::int64_t delta = static_cast<std::int64_t>(static_cast<std::uint64_t>(timestamp_ns) -
                                                       static_cast<std::uint64_t>(first_ts_));
  const std::size_t n = encoded_record_size(subject ? subject->size() : 0, subject.has_value(),
                                            headers ? headers->size() : 0, headers.has_value(),
                                            msg_id ? msg_id->size() : 0, msg_id.has_value(), payload.size(), delta);
  const std::size_t at = buf_.size();
  buf_.resize(at + n);
  std::uint8_t* p = buf_.data() + at;
  std::uint8_t* const rec_start = p;
  // The body length is n minus its own varint's size (a few tries at most).
  std::size_t body_len = n - 1;
  while (varint_size(body_len) + body_len != n) --body_len;
  p = encode_varint(p, body_len);
  *p++ = static_cast<std::uint8_t>((subject ? kRecordHasSubject : 0) | (headers ? kRecordHasHeaders : 0) |
                                   (msg_id ? kRecordHasMsgId : 0));
  p = encode_varint(p, detail::zigzag(delta));
  if (subject) p = put_bytes(p, *subject);
  if (headers) p = put_bytes(p, *headers);
  if (msg_id) p = put_bytes(p, *msg_id);
  if (!payload.empty()) std::memcpy(p, payload.data(), payload.size());
  p += payload.size();
  SLIP_ASSERT(static_cast<std::size_t>(p - rec_start) == n);
  ++count_;
}

ByteView BatchBuilder::finish() {
  std::uint8_t* h = buf_.data();
  put_u32(h, kBatchMagic);
  put_u32(h + 8, static_cast<std::uint32_t>(buf_.size()));
  h[12] = kBatchVersion;
  h[13] = 0;
  h[14] = 0;
  h[15] = 0;
  put_u64(h + 16, base_);
  put_u32(h + 24, count_);
  put_u32(h + 28, 0);
  put_u64(h + 32, static_cast<std::uint64_t>(first_ts_));
  put_u64(h + 40, static_cast<std::uint64_t>(max_ts_));
  put_u32(h + 4, crc32c(ByteView(h + kBatchCrcStart, buf_.size() - kBatchCrcStart)));
  return ByteView(buf_.data(), buf_.size());
}

}  // namespace slip::log
