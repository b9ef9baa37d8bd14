// Typed frames of protocol v1: one struct per frame type, with its encoder and decoder.
//
// Field encodings (docs/protocol.md, "Field types"): `varint` is unsigned LEB128; `string` is a
// varint length then that many bytes; `metadata` is a varint count then count pairs of strings.
//
// Lifetimes: the string_view fields of a decoded frame point into the Frame's body, so they are
// valid while that Slice (or a copy of it) lives; `payload` Slices hold their own reference.
// For encoding, the fields point at the caller's data for the duration of the call.
#pragma once

#include <cstdint>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "slipstream/status.h"
#include "wire/frame.h"

namespace slip::wire {

using Metadata = std::vector<std::pair<std::string_view, std::string_view>>;

// HELLO and WELCOME carry their fields as TLVs (key varint, length varint, value) so that new
// capabilities can be added without a new version; unknown keys are skipped.
namespace hs_key {
inline constexpr std::uint64_t kCodecs = 1;            // varint bitmask of 1 << Codec
inline constexpr std::uint64_t kRequireEncryption = 2; // varint 0/1: refuse a plain-text link
inline constexpr std::uint64_t kMaxFrameSize = 3;      // varint: largest body the sender accepts
inline constexpr std::uint64_t kAuthToken = 4;         // bytes
inline constexpr std::uint64_t kAuthUser = 5;          // string
inline constexpr std::uint64_t kAuthPassword = 6;      // bytes
inline constexpr std::uint64_t kName = 7;              // string: client or server name
inline constexpr std::uint64_t kHeartbeatMs = 8;       // varint: desired PING interval
inline constexpr std::uint64_t kInitialCredit = 9;     // varint: per-stream receive window
inline constexpr std::uint64_t kFeatures = 10;         // varint bitmask, reserved (0)
inline constexpr std::uint64_t kServerId = 11;         // string
inline constexpr std::uint64_t kConnectionId = 12;     // varint
inline constexpr std::uint64_t kConnectionCredit = 13; // varint: receive window for all streams
}  // namespace hs_key

struct Hello {
  std::uint8_t min_version = kProtocolVersion;
  std::uint8_t max_version = kProtocolVersion;
  std::uint32_t codecs = 0;  // bitmask of 1 << Codec; kNone is implied
  bool require_encryption = false;
  std::uint32_t max_frame_size = 0;  // 0: not stated (the default applies)
  std::string_view auth_token;
  std::string_view auth_user;
  std::string_view auth_password;
  std::string_view client_name;
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t initial_credit = 0;
  std::uint32_t connection_credit = 0;
  std::uint64_t features = 0;
};

struct Welcome {
  std::uint8_t version = kProtocolVersion;
  std::uint32_t codecs = 0;
  std::uint32_t max_frame_size = 0;
  std::uint32_t heartbeat_ms = 0;
  std::uint32_t initial_credit = 0;
  std::uint32_t connection_credit = 0;
  std::string_view server_name;
  std::string_view server_id;
  std::uint64_t connection_id = 0;
  std::uint64_t features = 0;
};

struct Ping {
  std::uint64_t opaque = 0;
};
struct Pong {
  std::uint64_t opaque = 0;
};

struct GoAway {
  std::uint64_t last_stream_id = 0;
  StatusCode code = StatusCode::kOk;
  std::string_view message;
};

struct ErrorFrame {
  std::uint64_t stream_id = 0;  // 0: the connection
  StatusCode code = StatusCode::kUnknown;
  std::string_view message;
};

struct Credit {
  std::uint64_t stream_id = 0;  // 0: the connection
  std::uint64_t increment = 0;  // > 0
};

struct Data {
  std::uint64_t stream_id = 0;  // > 0
  std::uint8_t flags = 0;       // data_flags
  Slice payload;

  bool end_stream() const { return flags & data_flags::kEndStream; }
  bool more() const { return flags & data_flags::kMore; }
  bool open() const { return flags & data_flags::kOpen; }
  Priority priority() const {
    return static_cast<Priority>((flags & data_flags::kPriorityMask) >> data_flags::kPriorityShift);
  }
  Codec codec() const { return static_cast<Codec>((flags & data_flags::kCodecMask) >> data_flags::kCodecShift); }
};

struct Reset {
  std::uint64_t stream_id = 0;
  StatusCode code = StatusCode::kCancelled;
  std::string_view message;
};

struct Sub {
  std::uint64_t sid = 0;
  std::string_view subject;
  std::string_view queue;  // empty: no queue group
  // sub_flags::kDropOldest: a slow client loses this subscription's oldest messages, keeping at
  // most backlog_msgs messages and backlog_bytes bytes of it (0: the broker's defaults), instead
  // of being disconnected.
  bool drop_oldest = false;
  std::uint64_t backlog_msgs = 0;
  std::uint64_t backlog_bytes = 0;
};

struct Unsub {
  std::uint64_t sid = 0;
  std::uint64_t max_msgs = 0;  // 0: now; n: after n more messages
};

struct Pub {
  std::string_view subject;
  std::string_view reply;  // sent when not empty
  bool has_headers = false;
  Metadata headers;
  Slice payload;
};

struct Msg {
  std::uint64_t sid = 0;
  std::string_view subject;
  std::string_view reply;
  bool has_headers = false;
  Metadata headers;
  Slice payload;
};

// The broker refused one SUB or PUB (e.g. permission denied) and changed nothing; unlike ERROR
// on stream 0, the connection continues.
struct PubSubError {
  FrameType op = FrameType::kPub;  // kSub or kPub: the frame refused
  std::uint64_t sid = 0;           // the SUB's sid; 0 for PUB
  StatusCode code = StatusCode::kPermissionDenied;
  std::string_view subject;        // the refused SUB's pattern or PUB's subject
  std::string_view message;
};

struct Call {
  std::uint64_t stream_id = 0;
  std::string_view method;    // "/package.Service/Method"
  std::uint64_t timeout_us = 0;  // 0: no deadline
  Metadata metadata;
};

struct Response {
  std::uint64_t stream_id = 0;
  Metadata metadata;
};

struct Trailers {
  std::uint64_t stream_id = 0;
  StatusCode code = StatusCode::kOk;
  std::string_view message;
  Metadata metadata;
};

struct Cancel {
  std::uint64_t stream_id = 0;
  StatusCode code = StatusCode::kCancelled;
};

struct LogPublish {
  std::uint64_t request_id = 0;
  std::string_view subject;
  bool has_headers = false;
  Metadata headers;
  Slice payload;
};

struct LogAck {
  std::uint64_t request_id = 0;
  StatusCode code = StatusCode::kOk;
  std::uint64_t sequence = 0;  // the stored sequence when code is OK
  std::string_view message;
};

// Stream and consumer operations (docs/protocol.md, STREAM_REQUEST). The numbers are wire values.
enum class StreamOp : std::uint8_t {
  kAdd = 1,
  kInfo = 2,
  kList = 3,
  kDelete = 4,
  kRead = 5,
  kConsumerAdd = 6,
  kConsumerFetch = 7,
  kConsumerAck = 8,
  kConsumerDelete = 9,
  kConsumerInfo = 10,
  kConsumerList = 11,
  kConsumerSubscribe = 12,    // push: STREAM_MSG frames flow until the subscription ends
  kConsumerUnsubscribe = 13,
};
inline constexpr std::uint8_t kMaxStreamOp = 13;

// Arguments and results are (key, value) pairs of text: a small, self-describing body that new
// options extend without new bytes. Unknown keys are errors on the broker's side.
struct StreamRequest {
  std::uint64_t request_id = 0;
  StreamOp op = StreamOp::kInfo;
  Metadata args;
};

struct StreamResponse {
  std::uint64_t request_id = 0;
  StatusCode code = StatusCode::kOk;
  std::string_view message;
  Metadata fields;
};

// One stored message, sent for a STREAM_REQUEST (read or fetch) before its STREAM_RESPONSE.
struct StreamMsg {
  std::uint64_t request_id = 0;
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;  // nanoseconds since the Unix epoch
  std::uint64_t deliveries = 0;    // 1 on the first delivery to a consumer; 0 for plain reads
  std::string_view subject;
  bool has_headers = false;
  Metadata headers;
  Slice payload;
};

using AnyFrame = std::variant<Hello, Welcome, Ping, Pong, GoAway, ErrorFrame, Credit, Data, Reset, Sub, Unsub,
                              Pub, Msg, Call, Response, Trailers, Cancel, LogPublish, LogAck, PubSubError,
                              StreamRequest, StreamResponse, StreamMsg>;

// Interprets a frame's body. Errors name the frame type and the field; the code is
// kInvalidArgument for malformed fields, kOverloaded for fields over a limit and kUnimplemented
// for extension frames.
Result<AnyFrame> parse_frame(const Frame& frame, const WireLimits& limits);

// Typed decoders, for callers that switch on frame.type themselves (the hot paths).
Result<Hello> decode_hello(const Frame& f, const WireLimits& limits);
Result<Welcome> decode_welcome(const Frame& f, const WireLimits& limits);
Result<Data> decode_data(const Frame& f);
// Takes the frame's body as the payload: one reference fewer per frame on the hot path.
Result<Data> decode_data(Frame&& f);
Result<Pub> decode_pub(const Frame& f, const WireLimits& limits);
Result<Msg> decode_msg(const Frame& f, const WireLimits& limits);
Result<LogPublish> decode_log_publish(const Frame& f, const WireLimits& limits);
Result<LogAck> decode_log_ack(const Frame& f);
Result<Ping> decode_ping(const Frame& f);

// The frame type a typed frame is sent as.
FrameType type_of(const AnyFrame& frame);

}  // namespace slip::wire
