// The frames inside a reliable-UDP packet payload (docs/udp.md, "Packets and frames").
//
// A packet payload is a sequence of frames, each starting with a one-byte type. Integers are
// the project's LEB128 varints (core/varint.h). The decoder never trusts a length: every count,
// offset and length is checked against the bytes left and against FrameLimits before use, and
// a malformed payload is an INVALID_ARGUMENT Status that names what was wrong.
//
// Decoded frames borrow: StreamFrame::data, DatagramFrame::data and CloseFrame::reason point
// into the payload that was decoded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::transport::udp {

// Wire values of the frame types: fixed forever.
namespace frame_type {
inline constexpr std::uint8_t kPadding = 0x00;        // one byte; runs of zeros pad a packet
inline constexpr std::uint8_t kPing = 0x01;           // no body; asks for an ACK
inline constexpr std::uint8_t kAck = 0x02;            // largest, delay, ranges
inline constexpr std::uint8_t kMaxData = 0x04;        // connection credit
inline constexpr std::uint8_t kMaxStreamData = 0x05;  // stream credit
inline constexpr std::uint8_t kClose = 0x06;          // code, reason
// STREAM is 0x10-0x13: bit 0x01 = FIN, bit 0x02 = an explicit length follows the offset
// (without it the data runs to the end of the payload).
inline constexpr std::uint8_t kStream = 0x10;
inline constexpr std::uint8_t kStreamFin = 0x01;
inline constexpr std::uint8_t kStreamLen = 0x02;
// DATAGRAM is 0x20-0x21: bit 0x01 = an explicit length follows.
inline constexpr std::uint8_t kDatagram = 0x20;
inline constexpr std::uint8_t kDatagramLen = 0x01;
}  // namespace frame_type

// Largest stream offset + length (and largest packet number) the protocol allows: 2^62 - 1,
// so sums of two valid values never overflow 64 bits.
inline constexpr std::uint64_t kMaxVarintValue = (std::uint64_t{1} << 62) - 1;

// Bounds the decoder enforces beyond "fits in the payload".
struct FrameLimits {
  // ACK ranges beyond the first; more is a protocol error, not something to allocate for.
  std::size_t max_ack_ranges = 64;
  // CLOSE reason bytes.
  std::size_t max_close_reason = 1024;
};

struct PaddingFrame {
  std::size_t length = 1;  // bytes of padding (a run of zero bytes decodes as one frame)
};
struct PingFrame {};

// One range of acknowledged packet numbers, inclusive at both ends.
struct AckRange {
  std::uint64_t smallest = 0;
  std::uint64_t largest = 0;
  friend bool operator==(const AckRange&, const AckRange&) = default;
};

// ACK. On the wire: largest, ack delay (microseconds), range count (beyond the first), first
// range length (packets below largest), then per further range a gap and a length, as in RFC
// 9000 section 19.3: next.largest = previous.smallest - gap - 2, next.smallest = next.largest -
// length. Decoded, `ranges` holds every range, highest first.
struct AckFrame {
  std::uint64_t ack_delay_us = 0;
  // TODO(perf): a vector allocates per decoded ACK; boost's small_vector trips g++ 12's
  // -Wstringop-overread when moved into the Frame variant.
  std::vector<AckRange> ranges;

  std::uint64_t largest() const { return ranges.empty() ? 0 : ranges.front().largest; }
};

struct StreamFrame {
  std::uint64_t stream_id = 0;
  std::uint64_t offset = 0;
  ByteView data;
  bool fin = false;
};

struct DatagramFrame {
  ByteView data;
};

struct MaxDataFrame {
  std::uint64_t max = 0;
};

struct MaxStreamDataFrame {
  std::uint64_t stream_id = 0;
  std::uint64_t max = 0;
};

// CLOSE: the connection is over. `code` is a StatusCode wire value (docs/protocol.md, "Error
// codes"); the reason is for people.
struct CloseFrame {
  std::uint64_t code = 0;
  std::string_view reason;
};

using Frame = std::variant<PaddingFrame, PingFrame, AckFrame, StreamFrame, DatagramFrame, MaxDataFrame,
                           MaxStreamDataFrame, CloseFrame>;

// "ACK", "STREAM", ...
std::string_view frame_name(const Frame& f);

// True for the frames that make the receiver send an ACK (all but PADDING, ACK and CLOSE).
bool is_ack_eliciting(const Frame& f);

// Iterates over the frames of one payload. next() fails with INVALID_ARGUMENT on the first
// malformed frame and keeps failing (the rest of the payload cannot be trusted).
class FrameReader {
 public:
  explicit FrameReader(ByteView payload, const FrameLimits& limits = {}) : p_(payload), limits_(limits) {}

  // True and a frame, false at the end of the payload, or an error.
  Result<bool> next(Frame& out);
  std::size_t remaining() const { return p_.size() - pos_; }

 private:
  Status fail(std::string_view what);

  ByteView p_;
  FrameLimits limits_;
  std::size_t pos_ = 0;
  bool failed_ = false;
  Status error_;
};

// Appends frames to a caller's buffer of fixed capacity. Every add_* returns false, and writes
// nothing, when the frame does not fit; the *_size functions say in advance how much it takes.
class FrameWriter {
 public:
  FrameWriter(std::uint8_t* out, std::size_t capacity) : out_(out), cap_(capacity) {}

  std::size_t size() const { return len_; }
  std::size_t room() const { return cap_ - len_; }

  bool add_padding(std::size_t n);
  bool add_ping();
  // `ranges` highest first, disjoint, not adjacent; writes as many as fit (at least the first),
  // and returns false only when not even one range fits.
  bool add_ack(std::uint64_t ack_delay_us, const AckRange* ranges, std::size_t count);
  // Writes the frame with an explicit length unless `last` (nothing may follow it then).
  bool add_stream(std::uint64_t id, std::uint64_t offset, ByteView data, bool fin, bool last = false);
  bool add_datagram(ByteView data, bool last = false);
  bool add_max_data(std::uint64_t max);
  bool add_max_stream_data(std::uint64_t id, std::uint64_t max);
  bool add_close(std::uint64_t code, std::string_view reason);
  // Any decoded frame (for tests and the fuzzers' round trips).
  bool add(const Frame& f);

  // Bytes a STREAM frame header takes (type, id, offset, length).
  static std::size_t stream_overhead(std::uint64_t id, std::uint64_t offset, std::size_t len);

 private:
  void put_varint(std::uint64_t v);

  std::uint8_t* out_;
  std::size_t cap_;
  std::size_t len_ = 0;
};

// Human-readable form, for test failure messages.
std::string describe(const Frame& f);

}  // namespace slip::transport::udp
