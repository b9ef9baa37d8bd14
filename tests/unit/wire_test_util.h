// Helpers shared by the wire tests: sample frames of every type, a field-by-field description
// of a typed frame (so two frames compare equal exactly when every field does), a builder for
// hand-made frame bodies, and a decode-everything loop.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/crc32c.h"
#include "core/varint.h"
#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "wire/decoder.h"
#include "wire/encoder.h"
#include "wire/frame.h"
#include "wire/frames.h"

namespace slip::wire::test {

// Printable form of arbitrary bytes: quotes, with non-printable bytes as \xNN.
inline std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      out.push_back(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned>(c));
      out += hex;
    }
  }
  out += "\"";
  return out;
}

// Bytes written as hex pairs separated by spaces, as docs/protocol.md shows them.
inline std::string hex_bytes(std::string_view hex) {
  std::string out;
  int nibbles = 0;
  unsigned v = 0;
  for (char c : hex) {
    if (c == ' ') continue;
    v = v * 16 + static_cast<unsigned>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    if (++nibbles == 2) {
      out.push_back(static_cast<char>(v));
      nibbles = 0;
      v = 0;
    }
  }
  return out;
}

inline std::string describe_metadata(const Metadata& m) {
  std::string out = "[";
  for (const auto& [k, v] : m) {
    if (out.size() > 1) out += ",";
    out += quoted(k) + "=" + quoted(v);
  }
  return out + "]";
}

// Payloads are described by length, checksum and their first bytes.
inline std::string describe_payload(const Slice& p) {
  std::string out = "payload(len=" + std::to_string(p.size()) + " crc=" + std::to_string(crc32c(p.view()));
  out += " head=" + quoted(p.as_string_view().substr(0, 32)) + ")";
  return out;
}

inline std::string code_str(StatusCode c) { return std::string(status_code_name(c)); }

// Every field of a typed frame, in a canonical order.
inline std::string describe(const AnyFrame& any) {
  return std::visit(
      [](const auto& f) -> std::string {
        using T = std::decay_t<decltype(f)>;
        std::string s(frame_type_name(type_of(AnyFrame(f))));
        auto num = [](std::uint64_t v) { return std::to_string(v); };
        if constexpr (std::is_same_v<T, Hello>) {
          s += " versions=" + num(f.min_version) + ".." + num(f.max_version) + " codecs=" + num(f.codecs) +
               " require_encryption=" + num(f.require_encryption) + " max_frame_size=" + num(f.max_frame_size) +
               " token=" + quoted(f.auth_token) + " user=" + quoted(f.auth_user) +
               " password=" + quoted(f.auth_password) + " name=" + quoted(f.client_name) +
               " heartbeat_ms=" + num(f.heartbeat_ms) + " initial_credit=" + num(f.initial_credit) + " connection_credit=" + num(f.connection_credit) +
               " features=" + num(f.features);
        } else if constexpr (std::is_same_v<T, Welcome>) {
          s += " version=" + num(f.version) + " codecs=" + num(f.codecs) + " max_frame_size=" + num(f.max_frame_size) +
               " heartbeat_ms=" + num(f.heartbeat_ms) + " initial_credit=" + num(f.initial_credit) + " connection_credit=" + num(f.connection_credit) +
               " name=" + quoted(f.server_name) + " server_id=" + quoted(f.server_id) +
               " connection_id=" + num(f.connection_id) + " features=" + num(f.features);
        } else if constexpr (std::is_same_v<T, Ping> || std::is_same_v<T, Pong>) {
          s += " opaque=" + num(f.opaque);
        } else if constexpr (std::is_same_v<T, GoAway>) {
          s += " last_stream_id=" + num(f.last_stream_id) + " code=" + code_str(f.code) + " message=" + quoted(f.message);
        } else if constexpr (std::is_same_v<T, ErrorFrame> || std::is_same_v<T, Reset>) {
          s += " stream_id=" + num(f.stream_id) + " code=" + code_str(f.code) + " message=" + quoted(f.message);
        } else if constexpr (std::is_same_v<T, Credit>) {
          s += " stream_id=" + num(f.stream_id) + " increment=" + num(f.increment);
        } else if constexpr (std::is_same_v<T, Data>) {
          s += " stream_id=" + num(f.stream_id) + " flags=" + num(f.flags) + " " + describe_payload(f.payload);
        } else if constexpr (std::is_same_v<T, Sub>) {
          s += " sid=" + num(f.sid) + " subject=" + quoted(f.subject) + " queue=" + quoted(f.queue);
          if (f.drop_oldest) s += " drop_oldest backlog_msgs=" + num(f.backlog_msgs) + " backlog_bytes=" + num(f.backlog_bytes);
        } else if constexpr (std::is_same_v<T, Unsub>) {
          s += " sid=" + num(f.sid) + " max_msgs=" + num(f.max_msgs);
        } else if constexpr (std::is_same_v<T, Pub>) {
          s += " subject=" + quoted(f.subject) + " reply=" + quoted(f.reply) + " has_headers=" + num(f.has_headers) +
               " headers=" + describe_metadata(f.headers) + " " + describe_payload(f.payload);
        } else if constexpr (std::is_same_v<T, Msg>) {
          s += " sid=" + num(f.sid) + " subject=" + quoted(f.subject) + " reply=" + quoted(f.reply) +
               " has_headers=" + num(f.has_headers) + " headers=" + describe_metadata(f.headers) + " " +
               describe_payload(f.payload);
        } else if constexpr (std::is_same_v<T, Call>) {
          s += " stream_id=" + num(f.stream_id) + " method=" + quoted(f.method) + " timeout_us=" + num(f.timeout_us) +
               " metadata=" + describe_metadata(f.metadata);
        } else if constexpr (std::is_same_v<T, Response>) {
          s += " stream_id=" + num(f.stream_id) + " metadata=" + describe_metadata(f.metadata);
        } else if constexpr (std::is_same_v<T, Trailers>) {
          s += " stream_id=" + num(f.stream_id) + " code=" + code_str(f.code) + " message=" + quoted(f.message) +
               " metadata=" + describe_metadata(f.metadata);
        } else if constexpr (std::is_same_v<T, Cancel>) {
          s += " stream_id=" + num(f.stream_id) + " code=" + code_str(f.code);
        } else if constexpr (std::is_same_v<T, LogPublish>) {
          s += " request_id=" + num(f.request_id) + " subject=" + quoted(f.subject) +
               " has_headers=" + num(f.has_headers) + " headers=" + describe_metadata(f.headers) + " " +
               describe_payload(f.payload);
        } else if constexpr (std::is_same_v<T, LogAck>) {
          s += " request_id=" + num(f.request_id) + " code=" + code_str(f.code) + " sequence=" + num(f.sequence) +
               " message=" + quoted(f.message);
        } else if constexpr (std::is_same_v<T, PubSubError>) {
          s += " op=" + num(static_cast<unsigned>(f.op)) + " sid=" + num(f.sid) + " code=" + code_str(f.code) +
               " subject=" + quoted(f.subject) + " message=" + quoted(f.message);
        } else if constexpr (std::is_same_v<T, StreamRequest>) {
          s += " request_id=" + num(f.request_id) + " op=" + num(static_cast<unsigned>(f.op)) +
               " args=" + describe_metadata(f.args);
        } else if constexpr (std::is_same_v<T, StreamResponse>) {
          s += " request_id=" + num(f.request_id) + " code=" + code_str(f.code) + " message=" + quoted(f.message) +
               " fields=" + describe_metadata(f.fields);
        } else if constexpr (std::is_same_v<T, StreamMsg>) {
          s += " request_id=" + num(f.request_id) + " sequence=" + num(f.sequence) + " timestamp_ns=" +
               num(f.timestamp_ns) + " deliveries=" + num(f.deliveries) + " subject=" + quoted(f.subject) +
               " has_headers=" + num(f.has_headers) + " headers=" + describe_metadata(f.headers) + " " +
               describe_payload(f.payload);
        } else {
          static_assert(!sizeof(T), "describe() misses a frame type");
        }
        return s;
      },
      any);
}

// A payload of n bytes that is not all one value.
inline Slice pattern_payload(std::size_t n, std::uint8_t seed = 1) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed) & 0xFF);
  return Slice::copy_of(ByteView(s));
}

// One frame of every type (index i has variant index i), with every optional field set and
// values that need multi-byte varints.
inline std::vector<AnyFrame> every_frame_type() {
  std::vector<AnyFrame> v;
  Hello h;
  h.min_version = 1;
  h.max_version = 3;
  h.codecs = (1u << 1) | (1u << 2);
  h.require_encryption = true;
  h.max_frame_size = 1u << 20;
  h.auth_token = std::string_view("tok\0en", 6);
  h.auth_user = "alice";
  h.auth_password = "s3cret";
  h.client_name = "unit-test";
  h.heartbeat_ms = 2500;
  h.initial_credit = 65536;
  h.connection_credit = 1u << 22;
  h.features = 0x8000000000000001ull;
  v.emplace_back(h);

  Welcome w;
  w.version = 1;
  w.codecs = 1u << 2;
  w.max_frame_size = 300000;
  w.heartbeat_ms = 1000;
  w.initial_credit = 1u << 18;
  w.connection_credit = 3u << 20;
  w.server_name = "slipd";
  w.server_id = "srv-7";
  w.connection_id = 0x123456789ull;
  w.features = 5;
  v.emplace_back(w);

  v.emplace_back(Ping{0x0102030405060708ull});
  v.emplace_back(Pong{~0ull});
  v.emplace_back(GoAway{1ull << 40, StatusCode::kDisconnected, "shutting down"});
  v.emplace_back(ErrorFrame{7, StatusCode::kPermissionDenied, "not allowed"});
  v.emplace_back(Credit{300, 1u << 30});

  Data d;
  d.stream_id = 1u << 20;
  d.flags = data_flags::kOpen | data_flags::kEndStream |
            static_cast<std::uint8_t>(static_cast<int>(Priority::kBulk) << data_flags::kPriorityShift) |
            static_cast<std::uint8_t>(static_cast<int>(Codec::kZstd) << data_flags::kCodecShift);
  d.payload = pattern_payload(700);  // past the inline limit: referenced, not copied
  v.emplace_back(d);

  v.emplace_back(Reset{9, StatusCode::kCancelled, "client went away"});
  v.emplace_back(Sub{42, "orders.*.eu", "workers"});
  v.emplace_back(Unsub{42, 1000});

  Pub p;
  p.subject = "orders.new";
  p.reply = "_INBOX.abc";
  p.has_headers = true;
  p.headers = {{"trace", "00-abc-01"}, {"k", ""}};
  p.payload = Slice::copy_of(ByteView("{\"id\":1}"));
  v.emplace_back(p);

  Msg m;
  m.sid = 42;
  m.subject = "orders.new";
  m.reply = "_INBOX.abc";
  m.has_headers = true;
  m.headers = {{"a", "1"}};
  m.payload = pattern_payload(64, 9);
  v.emplace_back(m);

  Call c;
  c.stream_id = 3;
  c.method = "/pkg.Service/Method";
  c.timeout_us = 250000;
  c.metadata = {{"authorization", "Bearer x"}, {"x-bin", std::string_view("\x00\xff", 2)}};
  v.emplace_back(c);

  Response r;
  r.stream_id = 3;
  r.metadata = {{"content-type", "application/proto"}};
  v.emplace_back(r);

  Trailers t;
  t.stream_id = 3;
  t.code = StatusCode::kNotFound;
  t.message = "no such row";
  t.metadata = {{"retry", "no"}};
  v.emplace_back(t);

  v.emplace_back(Cancel{3, StatusCode::kTimeout});

  LogPublish lp;
  lp.request_id = 77;
  lp.subject = "events";
  lp.has_headers = true;
  lp.headers = {{"key", "user-1"}};
  lp.payload = pattern_payload(33, 4);
  v.emplace_back(lp);

  v.emplace_back(LogAck{77, StatusCode::kOk, 123456789, ""});
  v.emplace_back(PubSubError{FrameType::kSub, 9, StatusCode::kPermissionDenied, "orders.>", "permission denied"});

  StreamRequest sq;
  sq.request_id = 300;
  sq.op = StreamOp::kAdd;
  sq.args = {{"name", "ORDERS"}, {"subjects", "orders.>"}};
  v.emplace_back(sq);

  StreamResponse sr;
  sr.request_id = 300;
  sr.code = StatusCode::kNotFound;
  sr.message = "no stream \"X\"";
  sr.fields = {{"messages", "12"}};
  v.emplace_back(sr);

  StreamMsg sm;
  sm.request_id = 300;
  sm.sequence = 1u << 20;
  sm.timestamp_ns = 1700000000000000000ull;
  sm.deliveries = 2;
  sm.subject = "orders.new";
  sm.has_headers = true;
  sm.headers = {{"Slip-Msg-Id", "a1"}};
  sm.payload = pattern_payload(40, 6);
  v.emplace_back(sm);
  return v;
}

// Builds a frame body or a raw byte stream by hand.
class Bytes {
 public:
  Bytes& u8(std::uint8_t b) {
    s_.push_back(static_cast<char>(b));
    return *this;
  }
  Bytes& varint(std::uint64_t v) {
    std::uint8_t tmp[kMaxVarint64Bytes];
    std::uint8_t* end = encode_varint(tmp, v);
    s_.append(reinterpret_cast<const char*>(tmp), static_cast<std::size_t>(end - tmp));
    return *this;
  }
  Bytes& str(std::string_view v) {
    varint(v.size());
    return raw(v);
  }
  Bytes& raw(std::string_view v) {
    s_.append(v);
    return *this;
  }
  Bytes& tlv_varint(std::uint64_t key, std::uint64_t v) {
    varint(key);
    varint(varint_size(v));
    return varint(v);
  }
  Bytes& tlv_str(std::uint64_t key, std::string_view v) {
    varint(key);
    return str(v);
  }
  // Appends a frame header and `body`.
  Bytes& frame(std::uint8_t type, std::uint8_t flags, const Bytes& body) {
    u8(type).u8(flags).varint(body.size());
    return raw(body.s_);
  }
  std::size_t size() const { return s_.size(); }
  const std::string& str() const { return s_; }
  Slice slice() const { return Slice::copy_of(ByteView(s_)); }
  ByteView view() const { return ByteView(s_); }

 private:
  std::string s_;
};

// A frame with a hand-made body, as the decoder would hand it out.
inline Frame raw_frame(FrameType type, std::uint8_t flags, const Bytes& body) {
  return Frame{type, flags, body.slice()};
}

inline std::string flatten(const Chain& c) { return c.to_string(); }

// What decoding a byte stream produced: the frames before the first error, and that error.
struct Decoded {
  std::vector<Frame> frames;
  Status error;
  std::size_t left = 0;  // bytes buffered after the last frame
};

// Decodes all of `bytes`, fed as the given pieces (split points are offsets into bytes).
inline Decoded decode_pieces(ByteView bytes, const std::vector<std::size_t>& splits, WireLimits limits = {},
                             bool preface = false) {
  FrameDecoder dec(limits, preface);
  Decoded out;
  std::size_t pos = 0;
  auto drain = [&]() {
    for (;;) {
      Frame f;
      Result<bool> r = dec.next(f);
      if (!r.is_ok()) {
        out.error = r.status();
        return false;
      }
      if (!*r) return true;
      out.frames.push_back(std::move(f));
    }
  };
  std::vector<std::size_t> cuts = splits;
  cuts.push_back(bytes.size());
  for (std::size_t cut : cuts) {
    if (cut < pos || cut > bytes.size()) continue;
    dec.feed(Slice::copy_of(bytes.sub(pos, cut - pos)));
    pos = cut;
    if (!drain()) return out;
  }
  out.left = dec.buffered();
  return out;
}

inline Decoded decode_all(ByteView bytes, WireLimits limits = {}, bool preface = false) {
  return decode_pieces(bytes, {}, limits, preface);
}

// Frame type, flags and body bytes.
inline std::string describe_raw(const Frame& f) {
  return std::to_string(static_cast<unsigned>(f.type)) + "/" + std::to_string(f.flags) + "/" +
         quoted(f.body.as_string_view());
}

}  // namespace slip::wire::test
