#include "transport/udp/ack_tracker.h"

namespace slip::transport::udp {

void AckTracker::on_packet(Instant now, std::uint64_t pn, bool ack_eliciting) {
  // Out of order (below the largest) or leaving a gap above it: the peer's loss detection
  // wants to hear about it at once (RFC 9000 section 13.2.1).
  const bool reordered = any_ && (pn < largest_ || pn > largest_ + 1);
  received_.insert(pn, pn + 1);
  if (!any_ || pn > largest_) {
    largest_ = pn;
    largest_time_ = now;
    any_ = true;
  }
  enforce_range_limit();
  if (!ack_eliciting) return;
  ++eliciting_unacked_;
  if (reordered || eliciting_unacked_ >= options_.ack_eliciting_threshold) ack_now_ = true;
  if (!ack_deadline_) ack_deadline_ = now + options_.max_ack_delay;
}

void AckTracker::enforce_range_limit() {
  const std::size_t limit = options_.max_ranges == 0 ? 1 : options_.max_ranges;
  while (received_.range_count() > limit) {
    received_.pop_front();
    ignore_below_ = received_.front().start;
  }
}

std::size_t AckTracker::fill_ranges(AckRange* out, std::size_t max) const {
  std::size_t n = 0;
  for (auto it = received_.rbegin(); it != received_.rend() && n < max; ++it) {
    out[n++] = AckRange{it->first, it->second - 1};
  }
  return n;
}

std::uint64_t AckTracker::ack_delay_us(Instant now) const {
  if (!any_ || now <= largest_time_) return 0;
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(now - largest_time_).count());
}

void AckTracker::on_ack_sent() {
  eliciting_unacked_ = 0;
  ack_now_ = false;
  ack_deadline_.reset();
}

void AckTracker::on_ack_acked(std::uint64_t largest) {
  // Find the range holding `largest` and forget everything below its start.
  for (auto it = received_.rbegin(); it != received_.rend(); ++it) {
    if (it->first <= largest) {
      if (largest < it->second) {
        const std::uint64_t start = it->first;
        if (start > ignore_below_) {
          received_.erase_below(start);
          ignore_below_ = start;
        }
      }
      return;
    }
  }
}

}  // namespace slip::transport::udp
