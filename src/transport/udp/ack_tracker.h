// Received packet numbers and when to acknowledge them (docs/udp.md, "Acknowledgements").
//
// The tracker remembers received packet numbers as ranges, rejects duplicates, and decides
// when an ACK is due: at once after a packet that arrives out of order or leaves a gap, at once
// after `ack_eliciting_threshold` ack-eliciting packets, otherwise `max_ack_delay` after the
// first unacknowledged one (RFC 9000 section 13.2).
//
// Memory is bounded: at most `max_ranges` ranges are kept. When more are needed the lowest range
// is forgotten, and so are ranges the peer has seen acknowledged (on_ack_acked); packet numbers
// below what is still tracked count as duplicates, so a very late packet is dropped and its
// sender, which never sees it acknowledged, retransmits what it carried.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/clock.h"
#include "transport/udp/frames.h"
#include "transport/udp/range_set.h"
#include "transport/udp/time.h"

namespace slip::transport::udp {

struct AckOptions {
  Duration max_ack_delay = std::chrono::milliseconds(25);
  std::uint32_t ack_eliciting_threshold = 2;
  std::size_t max_ranges = 64;
};

class AckTracker {
 public:
  explicit AckTracker(const AckOptions& options = {}) : options_(options) {}

  // True when `pn` was received before or is too old to track.
  bool is_duplicate(std::uint64_t pn) const { return pn < ignore_below_ || received_.contains(pn); }

  // Records a new (not duplicate) packet.
  void on_packet(Instant now, std::uint64_t pn, bool ack_eliciting);

  // An ACK should go out now: reordering, the threshold, or the delay has passed.
  bool ack_due(Instant now) const {
    return ack_now_ || (ack_deadline_ && *ack_deadline_ <= now);
  }
  // Ack-eliciting packets wait for an ACK: one may ride along on any packet we send.
  bool ack_pending() const { return eliciting_unacked_ > 0; }
  // When the delayed ACK falls due, if one is waiting.
  std::optional<Instant> ack_deadline() const { return ack_now_ ? std::nullopt : ack_deadline_; }

  bool has_ranges() const { return !received_.empty(); }
  // Writes up to `max` ranges, highest first; returns how many.
  std::size_t fill_ranges(AckRange* out, std::size_t max) const;
  // Microseconds since the largest packet arrived.
  std::uint64_t ack_delay_us(Instant now) const;
  // An ACK frame with the current ranges was sent: nothing is pending any more.
  void on_ack_sent();
  // The peer acknowledged a packet that carried an ACK whose largest was `largest`: it knows
  // everything up to there, so ranges below the one holding `largest` are dropped.
  void on_ack_acked(std::uint64_t largest);

  std::uint64_t largest() const { return largest_; }
  // Whether any packet was recorded (largest() means something).
  bool any_received() const { return any_; }
  std::size_t range_count() const { return received_.range_count(); }

 private:
  void enforce_range_limit();

  AckOptions options_;
  RangeSet received_;
  std::uint64_t ignore_below_ = 0;
  std::uint64_t largest_ = 0;
  bool any_ = false;
  Instant largest_time_{};
  std::uint32_t eliciting_unacked_ = 0;
  bool ack_now_ = false;
  std::optional<Instant> ack_deadline_;
};

}  // namespace slip::transport::udp
