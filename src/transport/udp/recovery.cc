#include "transport/udp/recovery.h"

#include <algorithm>
#include <string>

namespace slip::transport::udp {

void LossDetector::on_packet_sent(SentPacket packet) {
  if (sent_.empty()) first_pn_ = packet.packet_number;
  next_pn_ = packet.packet_number + 1;
  if (packet.ack_eliciting) {
    last_ack_eliciting_sent_ = packet.time_sent;
    ++eliciting_in_flight_;
  }
  sent_.push_back(std::move(packet));
}

SentPacket* LossDetector::find(std::uint64_t pn) {
  if (pn < first_pn_ || pn - first_pn_ >= sent_.size()) return nullptr;
  return &sent_[static_cast<std::size_t>(pn - first_pn_)];
}

const SentPacket* LossDetector::oldest_unacked() const {
  for (const SentPacket& p : sent_) {
    if (!p.resolved && p.ack_eliciting) return &p;
  }
  return nullptr;
}

Status LossDetector::on_ack(Instant now, const AckFrame& ack, RttEstimator& rtt, RecoveryHandler& handler) {
  if (ack.ranges.empty()) return Status();
  const std::uint64_t largest = ack.largest();
  if (largest >= next_pn_) {
    std::string m = "ACK of packet ";
    m.append(std::to_string(largest)).append(", never sent (next is ").append(std::to_string(next_pn_)).append(")");
    return invalid_argument(m);
  }
  bool newly_acked_eliciting = false;
  bool largest_newly_acked = false;
  Instant largest_sent{};
  bool any_new = false;
  for (const AckRange& r : ack.ranges) {
    if (r.largest < first_pn_ || sent_.empty()) continue;
    const std::uint64_t lo = std::max(r.smallest, first_pn_);
    const std::uint64_t hi = std::min<std::uint64_t>(r.largest, first_pn_ + sent_.size() - 1);
    for (std::uint64_t pn = lo; pn <= hi; ++pn) {
      SentPacket& p = sent_[static_cast<std::size_t>(pn - first_pn_)];
      // A packet declared lost that turns out to have arrived is acknowledged now too: its
      // frames' state catches up (the loss was spurious), congestion control already reacted.
      if (p.resolved && !p.lost) continue;
      const bool was_lost = p.lost;
      p.resolved = true;
      p.lost = false;
      any_new = true;
      if (pn == largest) {
        largest_newly_acked = !was_lost;
        largest_sent = p.time_sent;
      }
      if (p.ack_eliciting && !was_lost) {
        newly_acked_eliciting = true;
        --eliciting_in_flight_;
      }
      if (was_lost) {
        if (p.in_flight) handler.on_spurious_loss(p);
        p.in_flight = false;  // its bytes already left the flight
        if (p.ack_eliciting) ++spurious_losses_;
      }
      handler.on_packet_acked(p);
    }
  }
  if (!largest_acked_ || largest > *largest_acked_) largest_acked_ = largest;
  if (largest_newly_acked && newly_acked_eliciting) {
    const Duration delay = std::min<Duration>(std::chrono::microseconds(static_cast<std::int64_t>(
                                                  std::min<std::uint64_t>(ack.ack_delay_us, 1ull << 40))),
                                              options_.peer_max_ack_delay);
    rtt.on_sample(now - largest_sent, delay);
  }
  if (any_new) pto_count_ = 0;
  detect_lost(now, rtt, handler);
  pop_resolved(now, rtt);
  return Status();
}

void LossDetector::detect_lost(Instant now, const RttEstimator& rtt, RecoveryHandler& handler) {
  loss_time_.reset();
  if (!largest_acked_) return;
  const Duration base = std::max(rtt.latest(), rtt.smoothed());
  const Duration loss_delay = std::max<Duration>(base * kTimeThresholdNum / kTimeThresholdDen, kTimerGranularity);
  const Duration persistent =
      rtt.pto(options_.peer_max_ack_delay) * static_cast<std::int64_t>(options_.persistent_congestion_threshold);

  lost_scratch_.clear();
  bool persistent_congestion = false;
  std::optional<Instant> run_start;  // first lost ack-eliciting packet with no ack since
  for (SentPacket& p : sent_) {
    if (p.packet_number >= *largest_acked_) break;
    if (p.resolved) {
      if (!p.lost) run_start.reset();
      continue;
    }
    const bool by_count = *largest_acked_ - p.packet_number >= std::max<std::uint64_t>(options_.packet_threshold, 1);
    const bool by_time = p.time_sent + loss_delay <= now;
    if (!by_count && !by_time) {
      const Instant when = p.time_sent + loss_delay;
      if (!loss_time_ || when < *loss_time_) loss_time_ = when;
      run_start.reset();
      continue;
    }
    p.resolved = true;
    p.lost = true;
    p.time_lost = now;
    if (p.ack_eliciting) {
      --eliciting_in_flight_;
      // Only packets congestion control counted make persistent congestion (an MTU probe,
      // ack-eliciting but never in flight, neither starts nor extends a run).
      if (p.in_flight) {
        if (!run_start) run_start = p.time_sent;
        if (rtt.has_sample() && p.time_sent - *run_start > persistent) persistent_congestion = true;
      }
    }
    lost_scratch_.push_back(&p);
  }
  if (!lost_scratch_.empty()) handler.on_packets_lost(lost_scratch_, persistent_congestion);
}

void LossDetector::pop_resolved(Instant now, const RttEstimator& rtt) {
  // A lost packet stays a while, so that an ACK that arrives late (reordering beyond the
  // thresholds) still finds it: its data then counts as delivered, and the loss as spurious.
  const Duration keep_lost = rtt.pto(options_.peer_max_ack_delay) * 2;
  while (!sent_.empty() && sent_.front().resolved) {
    if (sent_.front().lost && sent_.front().time_sent + keep_lost > now) break;
    if (spare_frames_.size() < kSpareFrameLists && sent_.front().frames.capacity() > 0) {
      spare_frames_.push_back(std::move(sent_.front().frames));
    }
    sent_.pop_front();
    ++first_pn_;
  }
  // Nothing outstanding (the connection may stay idle a long time): an idle connection holds
  // no spare lists (docs/udp.md, "Memory").
  if (sent_.empty() && spare_frames_.capacity() > 0) std::vector<std::vector<SentFrame>>().swap(spare_frames_);
}

std::optional<Instant> LossDetector::timer(const RttEstimator& rtt) const {
  if (loss_time_) return loss_time_;
  if (eliciting_in_flight_ == 0) return std::nullopt;
  const std::uint32_t shift = std::min(pto_count_, options_.max_pto_backoff);
  return last_ack_eliciting_sent_ + rtt.pto(options_.peer_max_ack_delay) * (std::int64_t{1} << shift);
}

bool LossDetector::on_timeout(Instant now, RttEstimator& rtt, RecoveryHandler& handler) {
  const std::optional<Instant> t = timer(rtt);
  if (!t || *t > now) return false;
  if (loss_time_) {
    detect_lost(now, rtt, handler);
    pop_resolved(now, rtt);
    return false;
  }
  ++pto_count_;
  return true;
}

std::uint64_t LossDetector::discard_all() {
  std::uint64_t bytes = 0;
  for (const SentPacket& p : sent_) {
    if (!p.resolved && p.in_flight) bytes += p.size;
  }
  sent_.clear();
  first_pn_ = next_pn_;
  eliciting_in_flight_ = 0;
  loss_time_.reset();
  return bytes;
}

}  // namespace slip::transport::udp
