#include "wire/encoder.h"

#include <algorithm>
#include <cstring>

#include "core/assert.h"
#include "core/varint.h"

namespace slip::wire {

namespace {

// The same field lists run twice: once through Sizer to learn the body length that the header
// needs, then through Writer.
struct Sizer {
  std::size_t n = 0;
  void u8(std::uint8_t) { n += 1; }
  void fixed64(std::uint64_t) { n += 8; }
  void varint(std::uint64_t v) { n += varint_size(v); }
  void str(std::string_view s) {
    varint(s.size());
    n += s.size();
  }
  void raw(ByteView b) { n += b.size(); }
};

struct Writer {
  std::uint8_t* p;
  void u8(std::uint8_t v) { *p++ = v; }
  void fixed64(std::uint64_t v) {
    for (int i = 7; i >= 0; --i) *p++ = static_cast<std::uint8_t>(v >> (8 * i));
  }
  void varint(std::uint64_t v) { p = encode_varint(p, v); }
  void str(std::string_view s) {
    varint(s.size());
    raw(ByteView(s));
  }
  void raw(ByteView b) {
    if (!b.empty()) std::memcpy(p, b.data(), b.size());
    p += b.size();
  }
};

template <typename S>
void tlv_varint(S& s, std::uint64_t key, std::uint64_t v) {
  s.varint(key);
  s.varint(varint_size(v));
  s.varint(v);
}

template <typename S>
void tlv_str(S& s, std::uint64_t key, std::string_view v) {
  s.varint(key);
  s.str(v);
}

template <typename S>
void metadata(S& s, const Metadata& m) {
  s.varint(m.size());
  for (const auto& [k, v] : m) {
    s.str(k);
    s.str(v);
  }
}

std::uint8_t code_of(StatusCode c) { return static_cast<std::uint8_t>(c); }

}  // namespace

FrameEncoder::FrameEncoder(std::size_t block_size, std::size_t inline_payload_max)
    : block_size_(block_size), inline_payload_max_(inline_payload_max) {}

std::uint8_t* FrameEncoder::reserve(std::size_t n) {
  if (!buf_ || buf_.tailroom() < n) {
    seal();
    buf_ = Buffer::allocate(std::max(block_size_, n));
    mark_ = 0;
  }
  return buf_.tail();
}

void FrameEncoder::seal() {
  if (buf_.size() > mark_) {
    out_.append(buf_.slice(mark_, buf_.size() - mark_));
    mark_ = buf_.size();
  }
}

Chain FrameEncoder::take() {
  seal();
  Chain c = std::move(out_);
  out_.clear();
  return c;
}

template <typename Fields>
void FrameEncoder::emit(FrameType type, std::uint8_t flags, const Fields& fields, const Slice* payload) {
  Sizer sz;
  fields(sz);
  const std::size_t plen = payload ? payload->size() : 0;
  const std::size_t body = sz.n + plen;
  SLIP_ASSERT(body <= kHardMaxFrameSize);
  const bool inline_payload = payload == nullptr || plen < inline_payload_max_;
  std::uint8_t* start = reserve(2 + varint_size(body) + sz.n + (inline_payload ? plen : 0));
  Writer w{start};
  w.u8(static_cast<std::uint8_t>(type));
  w.u8(flags);
  w.varint(body);
  fields(w);
  if (inline_payload && plen > 0) w.raw(payload->view());
  buf_.commit(static_cast<std::size_t>(w.p - start));
  if (!inline_payload) {
    seal();
    out_.append(*payload);
  }
}

void FrameEncoder::add_preface() {
  std::uint8_t* p = reserve(kPrefaceSize);
  std::memcpy(p, kPreface, kPrefaceSize);
  buf_.commit(kPrefaceSize);
}

void FrameEncoder::add_raw(std::uint8_t type, std::uint8_t flags, ByteView body) {
  emit(static_cast<FrameType>(type), flags, [&](auto& s) { s.raw(body); }, nullptr);
}

void FrameEncoder::add(const Hello& f) {
  emit(FrameType::kHello, 0, [&](auto& s) {
    s.u8(f.min_version);
    s.u8(f.max_version);
    if (f.codecs) tlv_varint(s, hs_key::kCodecs, f.codecs);
    if (f.require_encryption) tlv_varint(s, hs_key::kRequireEncryption, 1);
    if (f.max_frame_size) tlv_varint(s, hs_key::kMaxFrameSize, f.max_frame_size);
    if (!f.auth_token.empty()) tlv_str(s, hs_key::kAuthToken, f.auth_token);
    if (!f.auth_user.empty()) tlv_str(s, hs_key::kAuthUser, f.auth_user);
    if (!f.auth_password.empty()) tlv_str(s, hs_key::kAuthPassword, f.auth_password);
    if (!f.client_name.empty()) tlv_str(s, hs_key::kName, f.client_name);
    if (f.heartbeat_ms) tlv_varint(s, hs_key::kHeartbeatMs, f.heartbeat_ms);
    if (f.initial_credit) tlv_varint(s, hs_key::kInitialCredit, f.initial_credit);
    if (f.features) tlv_varint(s, hs_key::kFeatures, f.features);
    if (f.connection_credit) tlv_varint(s, hs_key::kConnectionCredit, f.connection_credit);
  }, nullptr);
}

void FrameEncoder::add(const Welcome& f) {
  emit(FrameType::kWelcome, 0, [&](auto& s) {
    s.u8(f.version);
    if (f.codecs) tlv_varint(s, hs_key::kCodecs, f.codecs);
    if (f.max_frame_size) tlv_varint(s, hs_key::kMaxFrameSize, f.max_frame_size);
    if (!f.server_name.empty()) tlv_str(s, hs_key::kName, f.server_name);
    if (f.heartbeat_ms) tlv_varint(s, hs_key::kHeartbeatMs, f.heartbeat_ms);
    if (f.initial_credit) tlv_varint(s, hs_key::kInitialCredit, f.initial_credit);
    if (f.features) tlv_varint(s, hs_key::kFeatures, f.features);
    if (!f.server_id.empty()) tlv_str(s, hs_key::kServerId, f.server_id);
    if (f.connection_id) tlv_varint(s, hs_key::kConnectionId, f.connection_id);
    if (f.connection_credit) tlv_varint(s, hs_key::kConnectionCredit, f.connection_credit);
  }, nullptr);
}

void FrameEncoder::add(const Ping& f) {
  emit(FrameType::kPing, 0, [&](auto& s) { s.fixed64(f.opaque); }, nullptr);
}

void FrameEncoder::add(const Pong& f) {
  emit(FrameType::kPong, 0, [&](auto& s) { s.fixed64(f.opaque); }, nullptr);
}

void FrameEncoder::add(const GoAway& f) {
  emit(FrameType::kGoAway, 0, [&](auto& s) {
    s.varint(f.last_stream_id);
    s.varint(code_of(f.code));
    s.raw(ByteView(f.message));
  }, nullptr);
}

void FrameEncoder::add(const ErrorFrame& f) {
  emit(FrameType::kError, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.varint(code_of(f.code));
    s.raw(ByteView(f.message));
  }, nullptr);
}

void FrameEncoder::add(const Credit& f) {
  emit(FrameType::kCredit, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.varint(f.increment);
  }, nullptr);
}

void FrameEncoder::add(const Data& f) {
  emit(FrameType::kData, f.flags, [&](auto& s) { s.varint(f.stream_id); }, &f.payload);
}

void FrameEncoder::add(const Reset& f) {
  emit(FrameType::kReset, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.varint(code_of(f.code));
    s.raw(ByteView(f.message));
  }, nullptr);
}

void FrameEncoder::add(const Sub& f) {
  emit(FrameType::kSub, f.drop_oldest ? sub_flags::kDropOldest : 0, [&](auto& s) {
    s.varint(f.sid);
    s.str(f.subject);
    s.str(f.queue);
    if (f.drop_oldest) {
      s.varint(f.backlog_msgs);
      s.varint(f.backlog_bytes);
    }
  }, nullptr);
}

void FrameEncoder::add(const Unsub& f) {
  emit(FrameType::kUnsub, 0, [&](auto& s) {
    s.varint(f.sid);
    s.varint(f.max_msgs);
  }, nullptr);
}

namespace {
std::uint8_t message_flags(std::string_view reply, bool has_headers) {
  return static_cast<std::uint8_t>((reply.empty() ? 0 : msg_flags::kHasReply) |
                                   (has_headers ? msg_flags::kHasHeaders : 0));
}
}  // namespace

// PUB and MSG without headers, with names under 128 bytes and an inlined payload (the common
// case) are written in one pass; they come out byte for byte as emit() would write them.
namespace {
// Type, flags and a one- or two-byte length (body < 2^14).
std::size_t small_message_header(std::size_t body) { return body < 0x80 ? 3 : 4; }
}  // namespace

std::uint8_t* FrameEncoder::begin_small_message(FrameType type, std::uint8_t flags, std::size_t body) {
  std::uint8_t* p = reserve(small_message_header(body) + body);
  *p++ = static_cast<std::uint8_t>(type);
  *p++ = flags;
  if (body < 0x80) {
    *p++ = static_cast<std::uint8_t>(body);
  } else {
    *p++ = static_cast<std::uint8_t>(body | 0x80);
    *p++ = static_cast<std::uint8_t>(body >> 7);
  }
  return p;
}

namespace {
std::uint8_t* put_name(std::uint8_t* p, std::string_view s) {
  *p++ = static_cast<std::uint8_t>(s.size());
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}
}  // namespace

void FrameEncoder::add(const Pub& f) {
  const std::size_t plen = f.payload.size();
  if (!f.has_headers && f.subject.size() < 0x80 && f.reply.size() < 0x80 && plen < inline_payload_max_) {
    const std::size_t body = 1 + f.subject.size() + (f.reply.empty() ? 0 : 1 + f.reply.size()) + plen;
    std::uint8_t* p = begin_small_message(FrameType::kPub, message_flags(f.reply, false), body);
    p = put_name(p, f.subject);
    if (!f.reply.empty()) p = put_name(p, f.reply);
    if (plen > 0) std::memcpy(p, f.payload.data(), plen);
    buf_.commit(small_message_header(body) + body);
    return;
  }
  emit(FrameType::kPub, message_flags(f.reply, f.has_headers), [&](auto& s) {
    s.str(f.subject);
    if (!f.reply.empty()) s.str(f.reply);
    if (f.has_headers) metadata(s, f.headers);
  }, &f.payload);
}

void FrameEncoder::add(const Msg& f) { add_msg(f.sid, f.subject, f.reply, f.has_headers, f.headers, f.payload); }

void FrameEncoder::add_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                           const Metadata& headers, const Slice& payload) {
  const std::size_t plen = payload.size();
  if (!has_headers && sid < 0x80 && subject.size() < 0x80 && reply.size() < 0x80 && plen < inline_payload_max_) {
    const std::size_t body = 1 + 1 + subject.size() + (reply.empty() ? 0 : 1 + reply.size()) + plen;
    std::uint8_t* p = begin_small_message(FrameType::kMsg, message_flags(reply, false), body);
    *p++ = static_cast<std::uint8_t>(sid);
    p = put_name(p, subject);
    if (!reply.empty()) p = put_name(p, reply);
    if (plen > 0) std::memcpy(p, payload.data(), plen);
    buf_.commit(small_message_header(body) + body);
    return;
  }
  emit(FrameType::kMsg, message_flags(reply, has_headers), [&](auto& s) {
    s.varint(sid);
    s.str(subject);
    if (!reply.empty()) s.str(reply);
    if (has_headers) metadata(s, headers);
  }, &payload);
}

void FrameEncoder::add(const Call& f) {
  emit(FrameType::kCall, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.str(f.method);
    s.varint(f.timeout_us);
    metadata(s, f.metadata);
  }, nullptr);
}

void FrameEncoder::add(const Response& f) {
  emit(FrameType::kResponse, 0, [&](auto& s) {
    s.varint(f.stream_id);
    metadata(s, f.metadata);
  }, nullptr);
}

void FrameEncoder::add(const Trailers& f) {
  emit(FrameType::kTrailers, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.varint(code_of(f.code));
    s.str(f.message);
    metadata(s, f.metadata);
  }, nullptr);
}

void FrameEncoder::add(const Cancel& f) {
  emit(FrameType::kCancel, 0, [&](auto& s) {
    s.varint(f.stream_id);
    s.varint(code_of(f.code));
  }, nullptr);
}

void FrameEncoder::add(const LogPublish& f) {
  emit(FrameType::kLogPublish, f.has_headers ? msg_flags::kHasHeaders : 0, [&](auto& s) {
    s.varint(f.request_id);
    s.str(f.subject);
    if (f.has_headers) metadata(s, f.headers);
  }, &f.payload);
}

void FrameEncoder::add(const LogAck& f) {
  emit(FrameType::kLogAck, 0, [&](auto& s) {
    s.varint(f.request_id);
    s.varint(code_of(f.code));
    s.varint(f.sequence);
    s.raw(ByteView(f.message));
  }, nullptr);
}

void FrameEncoder::add(const PubSubError& f) {
  emit(FrameType::kPubSubError, 0, [&](auto& s) {
    s.u8(static_cast<std::uint8_t>(f.op));
    s.varint(f.sid);
    s.varint(code_of(f.code));
    s.str(f.subject);
    s.raw(ByteView(f.message));
  }, nullptr);
}

void FrameEncoder::add(const StreamRequest& f) {
  emit(FrameType::kStreamRequest, 0, [&](auto& s) {
    s.varint(f.request_id);
    s.u8(static_cast<std::uint8_t>(f.op));
    metadata(s, f.args);
  }, nullptr);
}

void FrameEncoder::add(const StreamResponse& f) {
  emit(FrameType::kStreamResponse, 0, [&](auto& s) {
    s.varint(f.request_id);
    s.varint(code_of(f.code));
    s.str(f.message);
    metadata(s, f.fields);
  }, nullptr);
}

void FrameEncoder::add(const StreamMsg& f) {
  emit(FrameType::kStreamMsg, f.has_headers ? msg_flags::kHasHeaders : 0, [&](auto& s) {
    s.varint(f.request_id);
    s.varint(f.sequence);
    s.varint(f.timestamp_ns);
    s.varint(f.deliveries);
    s.str(f.subject);
    if (f.has_headers) metadata(s, f.headers);
  }, &f.payload);
}

void FrameEncoder::add(const AnyFrame& f) {
  std::visit([this](const auto& typed) { add(typed); }, f);
}

}  // namespace slip::wire
