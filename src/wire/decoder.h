// FrameDecoder: bytes in, frames out, incrementally.
//
// Feed it whatever the transport read, split anywhere; next() yields each complete frame once.
// Frames that lie inside one fed Slice share its block (no copy); a frame split across reads is
// gathered into one block of exactly its size. Every length is checked against WireLimits
// before anything is allocated, so a peer cannot make the decoder buffer more than
// max_frame_size plus one read.
//
// Errors are sticky: after the first one, next() returns it again. Not thread-safe.
#pragma once

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "wire/frame.h"

namespace slip::wire {

class FrameDecoder {
 public:
  // expect_preface: the stream starts with the 4-byte preface, checked before any frame.
  explicit FrameDecoder(WireLimits limits = {}, bool expect_preface = false);

  // Appends bytes received from the peer.
  void feed(Slice bytes);

  // Stores the next complete frame in `out` and returns true; returns false when more bytes are
  // needed. Unknown non-extension frame types, oversized lengths, malformed length varints and
  // a wrong preface are errors.
  Result<bool> next(Frame& out);

  // Bytes fed and not yet returned as frames.
  std::size_t buffered() const { return pending_.size(); }
  const WireLimits& limits() const { return limits_; }
  // Raises or lowers max_frame_size after negotiation (capped at kHardMaxFrameSize).
  void set_max_frame_size(std::uint32_t n);

 private:
  Status fail(Status s);

  WireLimits limits_;
  bool need_preface_;
  Chain pending_;
  Status error_;
};

}  // namespace slip::wire
