// Round-trip time estimation as RFC 9002 section 5 specifies it: the minimum, a smoothed
// estimate (EWMA 1/8) and its mean deviation (EWMA 1/4), with the peer's reported ACK delay
// subtracted when that does not take the sample below the minimum.
#pragma once

#include <algorithm>
#include <chrono>

#include "core/clock.h"

namespace slip::transport::udp {

// Timer granularity: the smallest interval the loss and probe timers use (RFC 9002: 1 ms).
inline constexpr Duration kTimerGranularity = std::chrono::milliseconds(1);

class RttEstimator {
 public:
  explicit RttEstimator(Duration initial_rtt = std::chrono::milliseconds(333))
      : smoothed_(initial_rtt), var_(initial_rtt / 2) {}

  // One sample: the time from sending the largest newly acknowledged packet to its ACK, and the
  // delay the peer says it held the ACK, capped by the caller at the peer's max_ack_delay.
  void on_sample(Duration latest, Duration ack_delay) {
    if (latest <= Duration::zero()) latest = Duration(1);
    latest_ = latest;
    if (!has_sample_) {
      has_sample_ = true;
      min_ = latest;
      smoothed_ = latest;
      var_ = latest / 2;
      return;
    }
    min_ = std::min(min_, latest);
    Duration adjusted = latest;
    if (latest >= min_ + ack_delay) adjusted = latest - ack_delay;
    const Duration diff = smoothed_ > adjusted ? smoothed_ - adjusted : adjusted - smoothed_;
    var_ = (var_ * 3 + diff) / 4;
    smoothed_ = (smoothed_ * 7 + adjusted) / 8;
  }

  bool has_sample() const { return has_sample_; }
  Duration latest() const { return latest_; }
  Duration smoothed() const { return smoothed_; }
  Duration var() const { return var_; }
  // Zero until the first sample.
  Duration min() const { return min_; }

  // The probe timeout before backoff: srtt + max(4 * rttvar, granularity) + max_ack_delay.
  Duration pto(Duration max_ack_delay) const {
    return smoothed_ + std::max(var_ * 4, kTimerGranularity) + max_ack_delay;
  }

 private:
  bool has_sample_ = false;
  Duration latest_{};
  Duration min_{};
  Duration smoothed_;
  Duration var_;
};

}  // namespace slip::transport::udp
