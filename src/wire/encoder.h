// FrameEncoder: turns typed frames into bytes ready for one writev().
//
// Headers and small fields are written into a reusable block; payloads of at least
// `inline_payload_max` bytes are referenced, not copied, so a fanned-out payload leaves through
// every connection without a copy. Not thread-safe: one encoder per connection.
#pragma once

#include <cstdint>

#include "slipstream/buffer.h"
#include "wire/frames.h"

namespace slip::wire {

class FrameEncoder {
 public:
  static constexpr std::size_t kDefaultBlockSize = 16 * 1024;
  static constexpr std::size_t kDefaultInlinePayloadMax = 512;

  explicit FrameEncoder(std::size_t block_size = kDefaultBlockSize,
                        std::size_t inline_payload_max = kDefaultInlinePayloadMax);

  // Writes the 4-byte preface.
  void add_preface();

  void add(const Hello& f);
  void add(const Welcome& f);
  void add(const Ping& f);
  void add(const Pong& f);
  void add(const GoAway& f);
  void add(const ErrorFrame& f);
  void add(const Credit& f);
  void add(const Data& f);
  void add(const Reset& f);
  void add(const Sub& f);
  void add(const Unsub& f);
  void add(const Pub& f);
  void add(const Msg& f);
  // A MSG from its parts: what add(Msg) does, without building a Msg (and copying the payload's
  // reference) first.
  void add_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
               const Metadata& headers, const Slice& payload);
  void add(const Call& f);
  void add(const Response& f);
  void add(const Trailers& f);
  void add(const Cancel& f);
  void add(const LogPublish& f);
  void add(const LogAck& f);
  void add(const PubSubError& f);
  void add(const StreamRequest& f);
  void add(const StreamResponse& f);
  void add(const StreamMsg& f);
  void add(const AnyFrame& f);

  // A frame with an arbitrary type, flags and body; for extensions and for tests.
  void add_raw(std::uint8_t type, std::uint8_t flags, ByteView body);

  // Bytes encoded and not yet taken.
  std::size_t pending_bytes() const { return out_.size() + (buf_.size() - mark_); }
  // Everything encoded since the last take().
  Chain take();

 private:
  template <typename Fields>
  void emit(FrameType type, std::uint8_t flags, const Fields& fields, const Slice* payload);
  std::uint8_t* reserve(std::size_t n);
  // Reserves a small PUB or MSG, writes its frame header and returns where the body goes; the
  // caller writes exactly `body` bytes and commits them with the header.
  std::uint8_t* begin_small_message(FrameType type, std::uint8_t flags, std::size_t body);
  void seal();  // moves the bytes written into buf_ since mark_ onto out_

  std::size_t block_size_;
  std::size_t inline_payload_max_;
  Buffer buf_;
  std::size_t mark_ = 0;
  Chain out_;
};

// Encodes one frame into a fresh Slice (tests and cold paths).
template <typename F>
Slice encode_frame(const F& frame) {
  FrameEncoder e;
  e.add(frame);
  return e.take().flatten();
}

}  // namespace slip::wire
