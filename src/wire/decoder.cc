#include "wire/decoder.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/varint.h"

namespace slip::wire {

FrameDecoder::FrameDecoder(WireLimits limits, bool expect_preface)
    : limits_(limits), need_preface_(expect_preface) {
  limits_.max_frame_size = std::min(limits_.max_frame_size, kHardMaxFrameSize);
}

void FrameDecoder::set_max_frame_size(std::uint32_t n) { limits_.max_frame_size = std::min(n, kHardMaxFrameSize); }

void FrameDecoder::feed(Slice bytes) {
  if (error_.is_ok()) pending_.append(std::move(bytes));
}

Status FrameDecoder::fail(Status s) {
  error_ = s;
  pending_.clear();
  return s;
}

Result<bool> FrameDecoder::next(Frame& out) {
  if (!error_.is_ok()) return error_;

  if (need_preface_) {
    if (pending_.size() < kPrefaceSize) {
      // Reject a wrong first byte at once: a text protocol or TLS peer may never send four.
      std::uint8_t head[kPrefaceSize];
      std::size_t n = pending_.copy_to(head, kPrefaceSize);
      if (std::memcmp(head, kPreface, n) != 0) return fail(invalid_argument("bad preface: not a Slipstream peer"));
      return false;
    }
    std::uint8_t head[kPrefaceSize];
    pending_.copy_to(head, kPrefaceSize);
    if (std::memcmp(head, kPreface, kPrefaceSize) != 0) {
      return fail(invalid_argument("bad preface: not a Slipstream peer"));
    }
    pending_.consume(kPrefaceSize);
    need_preface_ = false;
  }

  // The common case: the whole frame lies in the first slice (a read holds many small frames)
  // and its length takes one or two bytes. Anything else, and every error, takes the general
  // path below.
  if (pending_.slice_count() != 0) {
    const Slice& front = pending_.slice(0);
    const std::uint8_t* p = front.data();
    const std::size_t n = front.size();
    if (n >= 3) {
      std::size_t body = p[2];
      std::size_t header = 3;
      if (body & 0x80) {
        body = n >= 4 && (p[3] & 0x80) == 0 ? (body & 0x7f) | (std::size_t{p[3]} << 7) : ~std::size_t{0};
        header = 4;
      }
      if (body <= limits_.max_frame_size && n - header >= body &&
          (is_known_frame_type(p[0]) || is_extension_frame_type(p[0]))) {
        out.type = static_cast<FrameType>(p[0]);
        out.flags = p[1];
        out.body = front.sub(header, body);
        pending_.consume(header + body);
        return true;
      }
    }
  }

  std::uint8_t hdr[kMaxFrameHeaderSize];
  const std::size_t have = pending_.copy_to(hdr, sizeof(hdr));
  if (have == 0) return false;

  const std::uint8_t type = hdr[0];
  if (!is_known_frame_type(type) && !is_extension_frame_type(type)) {
    char msg[64];
    std::snprintf(msg, sizeof(msg), "unknown frame type 0x%02x", static_cast<unsigned>(type));
    return fail(unimplemented(msg));
  }
  if (have < 3) return false;

  VarintResult len = decode_varint(hdr + 2, have - 2, kMaxLengthVarintBytes);
  if (len.error == VarintError::kTruncated) return false;
  if (len.error == VarintError::kTooLong) {
    return fail(invalid_argument("malformed frame length: varint longer than 4 bytes"));
  }
  if (len.value > limits_.max_frame_size) {
    return fail(overloaded("frame length " + std::to_string(len.value) + " exceeds max_frame_size " +
                           std::to_string(limits_.max_frame_size)));
  }

  const std::size_t header = 2 + len.length;
  const std::size_t body = static_cast<std::size_t>(len.value);
  if (pending_.size() < header + body) return false;

  out.type = static_cast<FrameType>(type);
  out.flags = hdr[1];
  const Slice& front = pending_.slice(0);
  if (front.size() >= header + body) {
    out.body = front.sub(header, body);
    pending_.consume(header + body);
  } else {
    pending_.consume(header);
    if (body == 0) {
      out.body = Slice();
    } else {
      Buffer b = Buffer::allocate(body);
      b.commit(pending_.copy_to(b.data(), body));
      out.body = b.slice();
      pending_.consume(body);
    }
  }
  return true;
}

}  // namespace slip::wire
