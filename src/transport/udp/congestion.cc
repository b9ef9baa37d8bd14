#include "transport/udp/congestion.h"

#include <cmath>

namespace slip::transport::udp {

NewReno::NewReno(const CongestionOptions& options) : options_(options) {
  const std::uint64_t mds = options_.max_datagram_size;
  min_window_ = std::max<std::uint64_t>(options_.minimum_window_packets, 1) * mds;
  cwnd_ = std::max<std::uint64_t>(options_.initial_window_packets * mds, min_window_);
  cwnd_ = std::min<std::uint64_t>(cwnd_, std::max<std::uint64_t>(options_.max_window_bytes, min_window_));
}

void NewReno::set_max_datagram_size(std::size_t size) {
  options_.max_datagram_size = size;
  min_window_ = std::max<std::uint64_t>(options_.minimum_window_packets, 1) * size;
  cwnd_ = std::max(cwnd_, min_window_);
  ssthresh_ = std::max(ssthresh_, min_window_);
}

void NewReno::on_packet_acked(Instant sent_time, std::size_t bytes) {
  // Measured before the acked bytes leave the flight: was the window in use?
  const bool window_limited = in_flight_ * 2 >= cwnd_;
  in_flight_ -= std::min<std::uint64_t>(in_flight_, bytes);
  // Packets sent before the current recovery period began say nothing about the new window.
  if (in_recovery(sent_time) || !window_limited) return;
  if (cwnd_ < ssthresh_) {
    cwnd_ += bytes;
  } else {
    ca_acked_ += bytes;
    if (ca_acked_ >= cwnd_) {
      ca_acked_ -= cwnd_;
      cwnd_ += options_.max_datagram_size;
    }
  }
  cwnd_ = std::min<std::uint64_t>(cwnd_, std::max<std::uint64_t>(options_.max_window_bytes, min_window_));
}

void NewReno::on_packets_lost(Instant now, Instant largest_sent_time, std::uint64_t bytes, bool persistent,
                              std::uint64_t packets) {
  in_flight_ -= std::min(in_flight_, bytes);
  // One reduction per round trip: losses of packets sent before recovery began belong to the
  // same congestion event.
  if (!in_recovery(largest_sent_time)) {
    undo_possible_ = true;
    undo_cwnd_ = cwnd_;
    undo_ssthresh_ = ssthresh_;
    undo_pending_ = 0;
    recovery_start_ = now;
    ssthresh_ = std::max(static_cast<std::uint64_t>(static_cast<double>(cwnd_) * options_.loss_reduction), min_window_);
    cwnd_ = ssthresh_;
    ca_acked_ = 0;
    ++congestion_events_;
  }
  undo_pending_ += packets;
  if (persistent) {
    cwnd_ = min_window_;
    ca_acked_ = 0;
    recovery_start_.reset();
    undo_possible_ = false;  // a collapse is not undone
  }
}

bool NewReno::on_spurious_loss(Instant time_lost) {
  // Only losses of the latest event count towards undoing it.
  if (!undo_possible_ || !recovery_start_ || time_lost < *recovery_start_ || undo_pending_ == 0) return false;
  if (--undo_pending_ > 0) return false;
  cwnd_ = std::max(cwnd_, undo_cwnd_);
  ssthresh_ = undo_ssthresh_;
  ca_acked_ = 0;
  recovery_start_.reset();
  undo_possible_ = false;
  ++undone_events_;
  return true;
}

void Pacer::set_rate(std::uint64_t cwnd, Duration srtt) {
  const double secs = std::chrono::duration<double>(srtt).count();
  rate_ = secs > 0 ? 1.25 * static_cast<double>(cwnd) / secs : 0;
  // The bucket holds at least what the rate earns in one timer granularity: a timer cannot wake
  // the sender more precisely than that, so a smaller bucket would cap the rate at one burst per
  // wake-up (on a short path, a fraction of the window per round trip). A burst never exceeds
  // the window itself, nor falls below two packets.
  const double per_tick = rate_ * std::chrono::duration<double>(kPacerGranularity).count();
  burst_cap_ = std::max<double>(2.0 * static_cast<double>(mtu_),
                                std::min<double>(std::max(burst_, per_tick), static_cast<double>(cwnd)));
}

void Pacer::refill(Instant now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    tokens_ = std::min(tokens_, burst_cap_);
    return;
  }
  if (now > last_) {
    tokens_ = std::min(burst_cap_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
  }
}

Instant Pacer::release_time(Instant now, std::size_t bytes) {
  refill(now);
  const double need = static_cast<double>(bytes);
  if (rate_ <= 0 || tokens_ + 1e-6 >= need) return now;
  const double wait_ns = std::ceil((need - tokens_) / rate_ * 1e9) + 1;
  return now + Duration(static_cast<std::int64_t>(wait_ns));
}

Instant Pacer::next_release(std::size_t bytes) const {
  const double need = static_cast<double>(bytes);
  if (!started_ || rate_ <= 0 || tokens_ + 1e-6 >= need) return last_;
  const double wait_ns = std::ceil((need - tokens_) / rate_ * 1e9) + 1;
  return last_ + Duration(static_cast<std::int64_t>(wait_ns));
}

void Pacer::on_sent(Instant now, std::size_t bytes) {
  refill(now);
  // Packets that bypass the pacer (probes) still use the bucket; the debt is bounded.
  tokens_ = std::max(-burst_cap_, tokens_ - static_cast<double>(bytes));
}

}  // namespace slip::transport::udp
