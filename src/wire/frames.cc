#include "wire/frames.h"

#include <array>
#include <string>

#include "core/varint.h"

namespace slip::wire {

namespace {

// Reads the fields of one frame body, front to back. Every failure names the frame and field.
class Reader {
 public:
  Reader(const Frame& f, const WireLimits* limits) : f_(f), limits_(limits), b_(f.body.view()) {}

  Status fail(StatusCode code, std::string_view field, std::string_view what) const {
    std::string m(frame_type_name(f_.type));
    m += " frame: ";
    m += field;
    m += ": ";
    m += what;
    return Status(code, m);
  }

  Status varint(std::uint64_t& out, std::string_view field) {
    VarintResult r = decode_varint(b_.data() + pos_, b_.size() - pos_);
    if (r.error == VarintError::kTruncated) return fail(StatusCode::kInvalidArgument, field, "truncated");
    if (r.error == VarintError::kTooLong) return fail(StatusCode::kInvalidArgument, field, "malformed varint");
    out = r.value;
    pos_ += r.length;
    return Status();
  }

  template <typename T>
  Status varint_as(T& out, std::string_view field, std::uint64_t max) {
    std::uint64_t v = 0;
    SLIP_TRY(varint(v, field));
    if (v > max) return fail(StatusCode::kInvalidArgument, field, "value " + std::to_string(v) + " out of range");
    out = static_cast<T>(v);
    return Status();
  }

  Status code(StatusCode& out, std::string_view field) {
    std::uint64_t v = 0;
    SLIP_TRY(varint(v, field));
    out = status_code_from_wire(v);
    return Status();
  }

  // A code that reports a failure (ERROR, RESET, CANCEL): OK there is read as UNKNOWN.
  Status failure_code(StatusCode& out, std::string_view field) {
    SLIP_TRY(code(out, field));
    if (out == StatusCode::kOk) out = StatusCode::kUnknown;
    return Status();
  }

  Status stream_id(std::uint64_t& out) {
    SLIP_TRY(varint(out, "stream id"));
    if (out == 0) return fail(StatusCode::kInvalidArgument, "stream id", "must not be 0");
    return Status();
  }

  Status u8(std::uint8_t& out, std::string_view field) {
    if (pos_ >= b_.size()) return fail(StatusCode::kInvalidArgument, field, "truncated");
    out = b_[pos_++];
    return Status();
  }

  Status fixed64(std::uint64_t& out, std::string_view field) {
    if (b_.size() - pos_ < 8) return fail(StatusCode::kInvalidArgument, field, "truncated");
    out = 0;
    for (int i = 0; i < 8; ++i) out = (out << 8) | b_[pos_++];
    return Status();
  }

  // A length-prefixed string of at most `max` bytes.
  Status str(std::string_view& out, std::string_view field, std::uint64_t max) {
    std::uint64_t len = 0;
    SLIP_TRY(varint(len, field));
    if (len > max) {
      return fail(StatusCode::kOverloaded, field,
                  "length " + std::to_string(len) + " exceeds limit " + std::to_string(max));
    }
    if (len > b_.size() - pos_) return fail(StatusCode::kInvalidArgument, field, "truncated");
    out = b_.sub(pos_, len).as_string_view();
    pos_ += len;
    return Status();
  }

  Status name(std::string_view& out, std::string_view field) { return str(out, field, limits_->max_name_size); }

  Status metadata(Metadata& out, std::string_view field) {
    std::uint64_t count = 0;
    SLIP_TRY(varint(count, field));
    if (count > limits_->max_metadata_entries) {
      return fail(StatusCode::kOverloaded, field,
                  std::to_string(count) + " entries exceed limit " + std::to_string(limits_->max_metadata_entries));
    }
    // Each entry takes at least 2 bytes: a count beyond that is a lie, not a reason to allocate.
    if (count > (b_.size() - pos_) / 2) return fail(StatusCode::kInvalidArgument, field, "truncated");
    out.clear();
    out.reserve(count);
    std::size_t total = 0;
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string_view k, v;
      SLIP_TRY(str(k, field, limits_->max_metadata_bytes));
      SLIP_TRY(str(v, field, limits_->max_metadata_bytes));
      total += k.size() + v.size();
      if (total > limits_->max_metadata_bytes) {
        return fail(StatusCode::kOverloaded, field,
                    "total size exceeds limit " + std::to_string(limits_->max_metadata_bytes));
      }
      out.emplace_back(k, v);
    }
    return Status();
  }

  // The rest of the body as a string (messages of ERROR, GOAWAY, ...).
  std::string_view rest_str() {
    std::string_view s = b_.sub(pos_).as_string_view();
    pos_ = b_.size();
    return s;
  }
  // The rest of the body as a Slice sharing the frame's block.
  Slice rest_slice() {
    Slice s = f_.body.sub(pos_);
    pos_ = b_.size();
    return s;
  }

  Status done() const {
    if (pos_ != b_.size()) {
      return fail(StatusCode::kInvalidArgument, "body", std::to_string(b_.size() - pos_) + " unexpected trailing bytes");
    }
    return Status();
  }

  Status flags_within(std::uint8_t allowed) const {
    if (f_.flags & ~allowed) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02x", static_cast<unsigned>(f_.flags & ~allowed));
      return fail(StatusCode::kInvalidArgument, "flags", std::string("reserved bits ") + hex + " set");
    }
    return Status();
  }

  std::size_t remaining() const { return b_.size() - pos_; }
  const WireLimits& limits() const { return *limits_; }

 private:
  const Frame& f_;
  const WireLimits* limits_;
  ByteView b_;
  std::size_t pos_ = 0;
};

// HELLO and WELCOME values (tokens, names) are at most this long.
constexpr std::uint64_t kMaxHandshakeFieldSize = 4096;

// Codec bits a peer may state; NONE (bit 0) is always implied, so it is dropped.
constexpr std::uint32_t kAllCodecs = ((1u << (kMaxCodec + 1)) - 1) & ~1u;

// Walks the TLVs of HELLO and WELCOME. `on_field(key, value_reader)` handles known keys and
// returns false for unknown ones, which are skipped.
template <typename OnField>
Status read_tlvs(Reader& r, std::string_view frame, OnField&& on_field) {
  std::uint64_t seen = 0;  // bit k: key k was present (keys < 64)
  while (r.remaining() > 0) {
    std::uint64_t key = 0;
    SLIP_TRY(r.varint(key, "field key"));
    std::string_view value;
    SLIP_TRY(r.str(value, "field value", kMaxHandshakeFieldSize));
    if (key < 64) {
      if (seen & (1ull << key)) {
        return invalid_argument(std::string(frame) + " frame: field " + std::to_string(key) + " appears twice");
      }
      seen |= 1ull << key;
    }
    SLIP_TRY(on_field(key, value));
  }
  return Status();
}

// A varint that must fill exactly its TLV value.
Status tlv_varint(std::string_view frame, std::uint64_t key, std::string_view value, std::uint64_t max,
                  std::uint64_t& out) {
  auto* p = reinterpret_cast<const std::uint8_t*>(value.data());
  VarintResult v = decode_varint(p, value.size());
  if (v.error != VarintError::kOk || v.length != value.size()) {
    return invalid_argument(std::string(frame) + " frame: field " + std::to_string(key) + ": malformed varint");
  }
  if (v.value > max) {
    return invalid_argument(std::string(frame) + " frame: field " + std::to_string(key) + ": value " +
                            std::to_string(v.value) + " out of range");
  }
  out = v.value;
  return Status();
}

template <typename T>
Status tlv_u32(std::string_view frame, std::uint64_t key, std::string_view value, T& out) {
  std::uint64_t v = 0;
  SLIP_TRY(tlv_varint(frame, key, value, 0xffffffffu, v));
  out = static_cast<T>(v);
  return Status();
}

}  // namespace

bool is_known_frame_type(std::uint8_t t) {
  switch (static_cast<FrameType>(t)) {
    case FrameType::kHello: case FrameType::kWelcome: case FrameType::kPing: case FrameType::kPong:
    case FrameType::kGoAway: case FrameType::kError: case FrameType::kCredit: case FrameType::kData:
    case FrameType::kReset: case FrameType::kSub: case FrameType::kUnsub: case FrameType::kPub:
    case FrameType::kMsg: case FrameType::kCall: case FrameType::kResponse: case FrameType::kTrailers:
    case FrameType::kCancel: case FrameType::kLogPublish: case FrameType::kLogAck: case FrameType::kPubSubError:
    case FrameType::kStreamRequest: case FrameType::kStreamResponse: case FrameType::kStreamMsg:
      return true;
  }
  return false;
}

std::string_view frame_type_name(FrameType t) {
  switch (t) {
    case FrameType::kHello: return "HELLO";
    case FrameType::kWelcome: return "WELCOME";
    case FrameType::kPing: return "PING";
    case FrameType::kPong: return "PONG";
    case FrameType::kGoAway: return "GOAWAY";
    case FrameType::kError: return "ERROR";
    case FrameType::kCredit: return "CREDIT";
    case FrameType::kData: return "DATA";
    case FrameType::kReset: return "RESET";
    case FrameType::kSub: return "SUB";
    case FrameType::kUnsub: return "UNSUB";
    case FrameType::kPub: return "PUB";
    case FrameType::kMsg: return "MSG";
    case FrameType::kPubSubError: return "PUBSUB_ERROR";
    case FrameType::kCall: return "CALL";
    case FrameType::kResponse: return "RESPONSE";
    case FrameType::kTrailers: return "TRAILERS";
    case FrameType::kCancel: return "CANCEL";
    case FrameType::kLogPublish: return "LOG_PUBLISH";
    case FrameType::kLogAck: return "LOG_ACK";
    case FrameType::kStreamRequest: return "STREAM_REQUEST";
    case FrameType::kStreamResponse: return "STREAM_RESPONSE";
    case FrameType::kStreamMsg: return "STREAM_MSG";
  }
  return is_extension_frame_type(static_cast<std::uint8_t>(t)) ? "EXTENSION" : "UNKNOWN";
}

Result<Hello> decode_hello(const Frame& f, const WireLimits& limits) {
  Reader r(f, &limits);
  SLIP_TRY(r.flags_within(0));
  Hello h;
  SLIP_TRY(r.u8(h.min_version, "min version"));
  SLIP_TRY(r.u8(h.max_version, "max version"));
  if (h.min_version == 0 || h.min_version > h.max_version) {
    return invalid_argument("HELLO frame: version range " + std::to_string(h.min_version) + ".." +
                            std::to_string(h.max_version) + " is empty or starts at 0");
  }
  SLIP_TRY(read_tlvs(r, "HELLO", [&](std::uint64_t key, std::string_view v) -> Status {
    std::uint64_t flag = 0;
    switch (key) {
      case hs_key::kCodecs: return tlv_u32("HELLO", key, v, h.codecs);
      case hs_key::kRequireEncryption:
        SLIP_TRY(tlv_varint("HELLO", key, v, 1, flag));
        h.require_encryption = flag != 0;
        return Status();
      case hs_key::kMaxFrameSize: return tlv_u32("HELLO", key, v, h.max_frame_size);
      case hs_key::kAuthToken: h.auth_token = v; return Status();
      case hs_key::kAuthUser: h.auth_user = v; return Status();
      case hs_key::kAuthPassword: h.auth_password = v; return Status();
      case hs_key::kName: h.client_name = v; return Status();
      case hs_key::kHeartbeatMs: return tlv_u32("HELLO", key, v, h.heartbeat_ms);
      case hs_key::kInitialCredit: return tlv_u32("HELLO", key, v, h.initial_credit);
      case hs_key::kFeatures: return tlv_varint("HELLO", key, v, ~0ull, h.features);
      case hs_key::kConnectionCredit: return tlv_u32("HELLO", key, v, h.connection_credit);
      default: return Status();  // unknown: skipped
    }
  }));
  h.codecs &= kAllCodecs;
  return h;
}

Result<Welcome> decode_welcome(const Frame& f, const WireLimits& limits) {
  Reader r(f, &limits);
  SLIP_TRY(r.flags_within(0));
  Welcome w;
  SLIP_TRY(r.u8(w.version, "version"));
  if (w.version == 0) return invalid_argument("WELCOME frame: version 0");
  SLIP_TRY(read_tlvs(r, "WELCOME", [&](std::uint64_t key, std::string_view v) -> Status {
    switch (key) {
      case hs_key::kCodecs: return tlv_u32("WELCOME", key, v, w.codecs);
      case hs_key::kMaxFrameSize: return tlv_u32("WELCOME", key, v, w.max_frame_size);
      case hs_key::kName: w.server_name = v; return Status();
      case hs_key::kHeartbeatMs: return tlv_u32("WELCOME", key, v, w.heartbeat_ms);
      case hs_key::kInitialCredit: return tlv_u32("WELCOME", key, v, w.initial_credit);
      case hs_key::kFeatures: return tlv_varint("WELCOME", key, v, ~0ull, w.features);
      case hs_key::kServerId: w.server_id = v; return Status();
      case hs_key::kConnectionId: return tlv_varint("WELCOME", key, v, ~0ull, w.connection_id);
      case hs_key::kConnectionCredit: return tlv_u32("WELCOME", key, v, w.connection_credit);
      default: return Status();
    }
  }));
  w.codecs &= kAllCodecs;
  return w;
}

Result<Ping> decode_ping(const Frame& f) {
  WireLimits none;
  Reader r(f, &none);
  SLIP_TRY(r.flags_within(0));
  Ping p;
  SLIP_TRY(r.fixed64(p.opaque, "opaque"));
  SLIP_TRY(r.done());
  return p;
}

Result<Data> decode_data(const Frame& f) {
  Frame copy = f;
  return decode_data(std::move(copy));
}

Result<Data> decode_data(Frame&& f) {
  WireLimits none;
  Reader r(f, &none);
  SLIP_TRY(r.flags_within(static_cast<std::uint8_t>(~data_flags::kReserved)));
  Data d;
  d.flags = f.flags;
  if (static_cast<std::uint8_t>(d.codec()) > kMaxCodec) {
    return invalid_argument("DATA frame: flags: unknown codec " + std::to_string(static_cast<int>(d.codec())));
  }
  SLIP_TRY(r.stream_id(d.stream_id));
  // The payload is the rest of the body: take the body itself rather than a second reference.
  const std::size_t header = f.body.size() - r.remaining();
  d.payload = std::move(f.body);
  d.payload.remove_prefix(header);
  return d;
}

namespace {

// The fields PUB, MSG and LOG_PUBLISH share after their ids.
template <typename M>
Status read_message(Reader& r, const Frame& f, M& m) {
  SLIP_TRY(r.name(m.subject, "subject"));
  if (m.subject.empty()) return r.fail(StatusCode::kInvalidArgument, "subject", "empty");
  if constexpr (requires { m.reply; }) {
    if (f.flags & msg_flags::kHasReply) {
      SLIP_TRY(r.name(m.reply, "reply"));
      if (m.reply.empty()) return r.fail(StatusCode::kInvalidArgument, "reply", "empty");
    }
  }
  if (f.flags & msg_flags::kHasHeaders) {
    m.has_headers = true;
    SLIP_TRY(r.metadata(m.headers, "headers"));
  }
  m.payload = r.rest_slice();
  return Status();
}

// The common PUB and MSG shape without the Reader: no headers, subject and reply under 128
// bytes (one-byte lengths), `pos` just past the sid. False, with `m` untouched, leaves the frame
// to read_message, which also reports every error.
template <typename M>
bool read_plain_message(const Frame& f, const WireLimits& limits, std::size_t pos, M& m) {
  if ((f.flags & ~msg_flags::kHasReply) != 0) return false;
  const std::uint8_t* p = f.body.data();
  const std::size_t n = f.body.size();
  auto name = [&](std::string_view& out) {
    if (pos >= n) return false;
    const std::size_t len = p[pos];
    if (len == 0 || len >= 0x80 || len > limits.max_name_size || n - pos - 1 < len) return false;
    out = std::string_view(reinterpret_cast<const char*>(p + pos + 1), len);
    pos += 1 + len;
    return true;
  };
  std::string_view subject, reply;
  if (!name(subject)) return false;
  if ((f.flags & msg_flags::kHasReply) && !name(reply)) return false;
  m.subject = subject;
  m.reply = reply;
  m.payload = f.body.sub(pos);
  return true;
}

}  // namespace

Result<Pub> decode_pub(const Frame& f, const WireLimits& limits) {
  {
    Pub p;
    if (read_plain_message(f, limits, 0, p)) return p;
  }
  Reader r(f, &limits);
  SLIP_TRY(r.flags_within(msg_flags::kHasReply | msg_flags::kHasHeaders));
  Pub p;
  SLIP_TRY(read_message(r, f, p));
  return p;
}

Result<Msg> decode_msg(const Frame& f, const WireLimits& limits) {
  if (!f.body.empty() && f.body.data()[0] < 0x80) {
    Msg m;
    m.sid = f.body.data()[0];
    if (read_plain_message(f, limits, 1, m)) return m;
  }
  Reader r(f, &limits);
  SLIP_TRY(r.flags_within(msg_flags::kHasReply | msg_flags::kHasHeaders));
  Msg m;
  SLIP_TRY(r.varint(m.sid, "sid"));
  SLIP_TRY(read_message(r, f, m));
  return m;
}

Result<LogPublish> decode_log_publish(const Frame& f, const WireLimits& limits) {
  Reader r(f, &limits);
  SLIP_TRY(r.flags_within(msg_flags::kHasHeaders));
  LogPublish p;
  SLIP_TRY(r.varint(p.request_id, "request id"));
  SLIP_TRY(read_message(r, f, p));
  return p;
}

Result<LogAck> decode_log_ack(const Frame& f) {
  Reader r(f, nullptr);
  SLIP_TRY(r.flags_within(0));
  LogAck a;
  SLIP_TRY(r.varint(a.request_id, "request id"));
  SLIP_TRY(r.code(a.code, "code"));
  SLIP_TRY(r.varint(a.sequence, "sequence"));
  a.message = r.rest_str();
  return a;
}

Result<AnyFrame> parse_frame(const Frame& f, const WireLimits& limits) {
  Reader r(f, &limits);
  auto no_flags = [&]() { return r.flags_within(0); };
  switch (f.type) {
    case FrameType::kHello: {
      SLIP_ASSIGN_OR_RETURN(Hello h, decode_hello(f, limits));
      return AnyFrame(h);
    }
    case FrameType::kWelcome: {
      SLIP_ASSIGN_OR_RETURN(Welcome w, decode_welcome(f, limits));
      return AnyFrame(w);
    }
    case FrameType::kPing: {
      SLIP_ASSIGN_OR_RETURN(Ping p, decode_ping(f));
      return AnyFrame(p);
    }
    case FrameType::kPong: {
      SLIP_TRY(no_flags());
      Pong p;
      SLIP_TRY(r.fixed64(p.opaque, "opaque"));
      SLIP_TRY(r.done());
      return AnyFrame(p);
    }
    case FrameType::kGoAway: {
      SLIP_TRY(no_flags());
      GoAway g;
      SLIP_TRY(r.varint(g.last_stream_id, "last stream id"));
      SLIP_TRY(r.code(g.code, "code"));
      g.message = r.rest_str();
      return AnyFrame(g);
    }
    case FrameType::kError: {
      SLIP_TRY(no_flags());
      ErrorFrame e;
      SLIP_TRY(r.varint(e.stream_id, "stream id"));
      SLIP_TRY(r.failure_code(e.code, "code"));
      e.message = r.rest_str();
      return AnyFrame(e);
    }
    case FrameType::kCredit: {
      SLIP_TRY(no_flags());
      Credit c;
      SLIP_TRY(r.varint(c.stream_id, "stream id"));
      SLIP_TRY(r.varint(c.increment, "increment"));
      if (c.increment == 0) return r.fail(StatusCode::kInvalidArgument, "increment", "must not be 0");
      SLIP_TRY(r.done());
      return AnyFrame(c);
    }
    case FrameType::kData: {
      SLIP_ASSIGN_OR_RETURN(Data d, decode_data(f));
      return AnyFrame(std::move(d));
    }
    case FrameType::kReset: {
      SLIP_TRY(no_flags());
      Reset x;
      SLIP_TRY(r.stream_id(x.stream_id));
      SLIP_TRY(r.failure_code(x.code, "code"));
      x.message = r.rest_str();
      return AnyFrame(x);
    }
    case FrameType::kSub: {
      SLIP_TRY(r.flags_within(sub_flags::kDropOldest));
      Sub s;
      SLIP_TRY(r.varint(s.sid, "sid"));
      SLIP_TRY(r.name(s.subject, "subject"));
      if (s.subject.empty()) return r.fail(StatusCode::kInvalidArgument, "subject", "empty");
      SLIP_TRY(r.name(s.queue, "queue"));
      if (f.flags & sub_flags::kDropOldest) {
        s.drop_oldest = true;
        SLIP_TRY(r.varint(s.backlog_msgs, "backlog msgs"));
        SLIP_TRY(r.varint(s.backlog_bytes, "backlog bytes"));
      }
      SLIP_TRY(r.done());
      return AnyFrame(s);
    }
    case FrameType::kUnsub: {
      SLIP_TRY(no_flags());
      Unsub u;
      SLIP_TRY(r.varint(u.sid, "sid"));
      SLIP_TRY(r.varint(u.max_msgs, "max msgs"));
      SLIP_TRY(r.done());
      return AnyFrame(u);
    }
    case FrameType::kPub: {
      SLIP_ASSIGN_OR_RETURN(Pub p, decode_pub(f, limits));
      return AnyFrame(std::move(p));
    }
    case FrameType::kMsg: {
      SLIP_ASSIGN_OR_RETURN(Msg m, decode_msg(f, limits));
      return AnyFrame(std::move(m));
    }
    case FrameType::kPubSubError: {
      SLIP_TRY(no_flags());
      PubSubError e;
      std::uint8_t op = 0;
      SLIP_TRY(r.u8(op, "op"));
      if (op != static_cast<std::uint8_t>(FrameType::kSub) && op != static_cast<std::uint8_t>(FrameType::kPub)) {
        return r.fail(StatusCode::kInvalidArgument, "op", "must be 0x20 (SUB) or 0x22 (PUB)");
      }
      e.op = static_cast<FrameType>(op);
      SLIP_TRY(r.varint(e.sid, "sid"));
      SLIP_TRY(r.failure_code(e.code, "code"));
      SLIP_TRY(r.name(e.subject, "subject"));
      e.message = r.rest_str();
      return AnyFrame(e);
    }
    case FrameType::kCall: {
      SLIP_TRY(no_flags());
      Call c;
      SLIP_TRY(r.stream_id(c.stream_id));
      SLIP_TRY(r.name(c.method, "method"));
      if (c.method.empty()) return r.fail(StatusCode::kInvalidArgument, "method", "empty");
      SLIP_TRY(r.varint(c.timeout_us, "timeout"));
      SLIP_TRY(r.metadata(c.metadata, "metadata"));
      SLIP_TRY(r.done());
      return AnyFrame(std::move(c));
    }
    case FrameType::kResponse: {
      SLIP_TRY(no_flags());
      Response x;
      SLIP_TRY(r.stream_id(x.stream_id));
      SLIP_TRY(r.metadata(x.metadata, "metadata"));
      SLIP_TRY(r.done());
      return AnyFrame(std::move(x));
    }
    case FrameType::kTrailers: {
      SLIP_TRY(no_flags());
      Trailers t;
      SLIP_TRY(r.stream_id(t.stream_id));
      SLIP_TRY(r.code(t.code, "code"));
      SLIP_TRY(r.str(t.message, "message", limits.max_frame_size));
      SLIP_TRY(r.metadata(t.metadata, "metadata"));
      SLIP_TRY(r.done());
      return AnyFrame(std::move(t));
    }
    case FrameType::kCancel: {
      SLIP_TRY(no_flags());
      Cancel c;
      SLIP_TRY(r.stream_id(c.stream_id));
      SLIP_TRY(r.failure_code(c.code, "code"));
      SLIP_TRY(r.done());
      return AnyFrame(c);
    }
    case FrameType::kLogPublish: {
      SLIP_ASSIGN_OR_RETURN(LogPublish p, decode_log_publish(f, limits));
      return AnyFrame(std::move(p));
    }
    case FrameType::kLogAck: {
      SLIP_ASSIGN_OR_RETURN(LogAck a, decode_log_ack(f));
      return AnyFrame(a);
    }
    case FrameType::kStreamRequest: {
      SLIP_TRY(no_flags());
      StreamRequest q;
      SLIP_TRY(r.varint(q.request_id, "request id"));
      std::uint8_t op = 0;
      SLIP_TRY(r.u8(op, "op"));
      if (op == 0 || op > kMaxStreamOp) {
        return r.fail(StatusCode::kInvalidArgument, "op", "unknown operation " + std::to_string(op));
      }
      q.op = static_cast<StreamOp>(op);
      SLIP_TRY(r.metadata(q.args, "args"));
      SLIP_TRY(r.done());
      return AnyFrame(std::move(q));
    }
    case FrameType::kStreamResponse: {
      SLIP_TRY(no_flags());
      StreamResponse x;
      SLIP_TRY(r.varint(x.request_id, "request id"));
      SLIP_TRY(r.code(x.code, "code"));
      SLIP_TRY(r.str(x.message, "message", limits.max_frame_size));
      SLIP_TRY(r.metadata(x.fields, "fields"));
      SLIP_TRY(r.done());
      return AnyFrame(std::move(x));
    }
    case FrameType::kStreamMsg: {
      SLIP_TRY(r.flags_within(msg_flags::kHasHeaders));
      StreamMsg m;
      SLIP_TRY(r.varint(m.request_id, "request id"));
      SLIP_TRY(r.varint(m.sequence, "sequence"));
      SLIP_TRY(r.varint(m.timestamp_ns, "timestamp"));
      SLIP_TRY(r.varint(m.deliveries, "deliveries"));
      SLIP_TRY(read_message(r, f, m));
      return AnyFrame(std::move(m));
    }
  }
  return unimplemented("frame type 0x" + [&] {
    char hex[4];
    std::snprintf(hex, sizeof(hex), "%02x", static_cast<unsigned>(f.type));
    return std::string(hex);
  }() + " has no typed form");
}

FrameType type_of(const AnyFrame& frame) {
  static constexpr std::array<FrameType, std::variant_size_v<AnyFrame>> kTypes = {
      FrameType::kHello, FrameType::kWelcome, FrameType::kPing,     FrameType::kPong,     FrameType::kGoAway,
      FrameType::kError, FrameType::kCredit,  FrameType::kData,     FrameType::kReset,    FrameType::kSub,
      FrameType::kUnsub, FrameType::kPub,     FrameType::kMsg,      FrameType::kCall,     FrameType::kResponse,
      FrameType::kTrailers, FrameType::kCancel, FrameType::kLogPublish, FrameType::kLogAck, FrameType::kPubSubError,
      FrameType::kStreamRequest, FrameType::kStreamResponse, FrameType::kStreamMsg,
  };
  return kTypes[frame.index()];
}

}  // namespace slip::wire
