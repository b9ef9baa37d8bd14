// Native wire protocol v1: constants and the untyped frame. docs/protocol.md is the spec; every
// number here appears there, and neither changes without the other.
//
// A connection starts with the 4-byte preface "SLIP" from each side, then frames:
//
//   +---------+---------+---------------------+---------------------+
//   | type u8 | flags u8| length varint (1-4) | body (length bytes) |
//   +---------+---------+---------------------+---------------------+
//
// so a 64-byte DATA payload on stream 5 costs 4 bytes of header.
#pragma once

#include <cstdint>
#include <string_view>

#include "slipstream/buffer.h"

namespace slip::wire {

// Sent first by both sides: "SLIP".
inline constexpr std::uint8_t kPreface[4] = {0x53, 0x4C, 0x49, 0x50};
inline constexpr std::size_t kPrefaceSize = sizeof(kPreface);

inline constexpr std::uint8_t kProtocolVersion = 1;  // the only version this build speaks

// The length varint has at most 4 bytes, so no frame body exceeds 2^28 - 1 bytes.
inline constexpr std::size_t kMaxLengthVarintBytes = 4;
inline constexpr std::uint32_t kHardMaxFrameSize = (1u << 28) - 1;
// Frame header: type + flags + up to 4 length bytes.
inline constexpr std::size_t kMaxFrameHeaderSize = 2 + kMaxLengthVarintBytes;

enum class FrameType : std::uint8_t {
  // Connection control (0x01-0x0F).
  kHello = 0x01,    // client -> server, first frame: versions and capabilities
  kWelcome = 0x02,  // server -> client: what was negotiated
  kPing = 0x03,     // 8 opaque bytes, answered by PONG with the same bytes
  kPong = 0x04,
  kGoAway = 0x05,   // no new streams; in-flight ones finish
  kError = 0x06,    // an error on a stream, or on the connection (stream 0) before close
  kCredit = 0x07,   // flow-control credit for a stream, or the connection (stream 0)
  // Streams (0x10-0x1F).
  kData = 0x10,     // a chunk of a message on a stream
  kReset = 0x11,    // abandon a stream
  // Pub/sub (0x20-0x2F).
  kSub = 0x20,
  kUnsub = 0x21,
  kPub = 0x22,
  kMsg = 0x23,
  kPubSubError = 0x24,  // broker -> client: a SUB or PUB was refused; the connection continues
  // RPC (0x30-0x3F).
  kCall = 0x30,      // opens an RPC on a stream: method, deadline, metadata
  kResponse = 0x31,  // response headers (metadata)
  kTrailers = 0x32,  // final status, message and trailing metadata
  kCancel = 0x33,
  // Persistent streams (0x40-0x4F).
  kLogPublish = 0x40,
  kLogAck = 0x41,
  kStreamRequest = 0x42,   // client -> broker: a stream or consumer operation (op + arguments)
  kStreamResponse = 0x43,  // broker -> client: its outcome and result fields
  kStreamMsg = 0x44,       // broker -> client: one stored message read or fetched by a request
};
// 0x00, the gaps above and 0x50-0xEF are reserved: receiving one is an error (UNIMPLEMENTED).
// 0xF0-0xFF are extension frames: receivers that do not know one skip it.
inline constexpr std::uint8_t kFirstExtensionType = 0xF0;

// True for the types listed in FrameType.
bool is_known_frame_type(std::uint8_t type);
inline bool is_extension_frame_type(std::uint8_t type) { return type >= kFirstExtensionType; }
std::string_view frame_type_name(FrameType type);

// The four priority classes, highest first. The values are the wire values.
enum class Priority : std::uint8_t { kControl = 0, kInteractive = 1, kStream = 2, kBulk = 3 };

// DATA flags.
namespace data_flags {
inline constexpr std::uint8_t kEndStream = 0x01;  // last frame the sender sends on this stream
inline constexpr std::uint8_t kMore = 0x02;       // the message continues in the next DATA frame
inline constexpr std::uint8_t kOpen = 0x04;       // first frame of a new stream
inline constexpr std::uint8_t kReserved = 0x08;   // must be zero
inline constexpr std::uint8_t kPriorityMask = 0x30;  // Priority << 4, meaningful with kOpen
inline constexpr int kPriorityShift = 4;
inline constexpr std::uint8_t kCodecMask = 0xC0;  // Codec << 6, the message's compression
inline constexpr int kCodecShift = 6;
}  // namespace data_flags

// Compression codecs: the DATA codec field and bits of the CODECS capability (1 << codec).
enum class Codec : std::uint8_t { kNone = 0, kLz4 = 1, kZstd = 2 };
inline constexpr std::uint8_t kMaxCodec = 2;

// PUB, MSG and LOG_PUBLISH flags.
namespace msg_flags {
inline constexpr std::uint8_t kHasReply = 0x01;
inline constexpr std::uint8_t kHasHeaders = 0x02;
}  // namespace msg_flags

// SUB flags.
namespace sub_flags {
// When the client falls behind, this subscription's oldest messages are dropped instead of the
// client being disconnected; the SUB carries the backlog's bounds.
inline constexpr std::uint8_t kDropOldest = 0x01;
}  // namespace sub_flags

// Limits a decoder enforces. All configurable; the defaults suit a broker on a LAN.
struct WireLimits {
  std::uint32_t max_frame_size = 1u << 20;   // body bytes; at most kHardMaxFrameSize
  std::uint32_t max_name_size = 1024;         // subjects, methods, queue groups, names
  std::uint32_t max_metadata_entries = 64;    // headers per message or call
  std::uint32_t max_metadata_bytes = 64 * 1024;  // all keys and values of one frame together
};

// A frame whose body has not been interpreted. `body` shares the bytes it was read from.
struct Frame {
  FrameType type{};
  std::uint8_t flags = 0;
  Slice body;
};

}  // namespace slip::wire
