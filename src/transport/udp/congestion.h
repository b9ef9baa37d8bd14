// Congestion control (NewReno, RFC 9002 section 7) and pacing (section 7.7).
//
// NewReno: the window grows by the bytes acknowledged in slow start, by about one packet per
// window in congestion avoidance, halves once per recovery period when packets are lost, and
// collapses to the minimum on persistent congestion. Growth needs a window in use: acks that
// arrive while less than half the window is in flight do not grow it (an application that
// sends little must not earn a window it never tested).
//
// Pacer: a token bucket that releases the window over a smoothed RTT at 1.25x, so a full
// window leaves as a stream of packets rather than one burst into the bottleneck's queue. The
// bucket holds the configured burst or one timer granularity (1 ms) of the rate, whichever is
// more (capped by the window): timers are not finer than that.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "transport/udp/time.h"

namespace slip::transport::udp {

struct CongestionOptions {
  // Largest packet on the wire; windows are counted in these.
  std::size_t max_datagram_size = 1200;
  // RFC 9002: min(10 * size, max(14720, 2 * size)).
  std::size_t initial_window_packets = 10;
  std::size_t minimum_window_packets = 2;
  // Upper bound of the window, so that memory for in-flight packets stays bounded.
  std::size_t max_window_bytes = 16 * 1024 * 1024;
  // Consecutive lost packets spanning this many PTOs mean persistent congestion.
  std::uint32_t persistent_congestion_threshold = 3;
  // The window after a congestion event, as a fraction of the window before it (NewReno: 1/2;
  // a connection under forward error correction uses FecOptions::congestion_loss_reduction).
  double loss_reduction = 0.5;
};

class NewReno {
 public:
  explicit NewReno(const CongestionOptions& options = {});

  std::uint64_t window() const { return cwnd_; }
  std::uint64_t ssthresh() const { return ssthresh_; }
  std::uint64_t bytes_in_flight() const { return in_flight_; }
  bool in_slow_start() const { return cwnd_ < ssthresh_; }
  bool in_recovery(Instant sent_time) const { return recovery_start_ && sent_time <= *recovery_start_; }
  // True when `bytes` more may go out now.
  bool can_send(std::size_t bytes) const { return in_flight_ + bytes <= cwnd_; }
  std::uint64_t available() const { return cwnd_ > in_flight_ ? cwnd_ - in_flight_ : 0; }

  void on_packet_sent(std::size_t bytes) { in_flight_ += bytes; }
  // One in-flight packet sent at `sent_time` was acknowledged.
  void on_packet_acked(Instant sent_time, std::size_t bytes);
  // In-flight packets were declared lost; `largest_sent_time` is when the newest of them left.
  // `persistent` when they span the persistent-congestion period (the caller decides, as it
  // has the RTT estimate).
  // `packets` is how many in-flight packets that was.
  void on_packets_lost(Instant now, Instant largest_sent_time, std::uint64_t bytes, bool persistent,
                       std::uint64_t packets = 1);
  // A packet declared lost at `time_lost` was acknowledged after all. Once every packet lost in
  // the latest congestion event turned out spurious, that event's reduction is undone (RFC 9002
  // section 7 allows it): the window and threshold return to what they were, and the recovery
  // period ends. Returns true when it undid a reduction.
  bool on_spurious_loss(Instant time_lost);
  std::uint32_t congestion_events_undone() const { return undone_events_; }
  // An in-flight packet is forgotten without being acked or lost (connection closing).
  void on_packet_discarded(std::size_t bytes) { in_flight_ -= std::min<std::uint64_t>(in_flight_, bytes); }

  // The path's datagram size changed (MTU probing): the minimum window and the growth step
  // follow it; the window itself is in bytes and keeps its size (at least the new minimum).
  void set_max_datagram_size(std::size_t size);
  std::size_t max_datagram_size() const { return options_.max_datagram_size; }

  std::uint64_t minimum_window() const { return min_window_; }
  std::uint32_t congestion_events() const { return congestion_events_; }

 private:
  CongestionOptions options_;
  std::uint64_t min_window_;
  std::uint64_t cwnd_;
  std::uint64_t ssthresh_ = UINT64_MAX;
  std::uint64_t in_flight_ = 0;
  std::uint64_t ca_acked_ = 0;  // bytes acked in congestion avoidance since the last increase
  std::optional<Instant> recovery_start_;
  std::uint32_t congestion_events_ = 0;
  // Undoing the latest reduction: what the window and threshold were before it, and how many of
  // the packets declared lost since it began have not been acknowledged yet.
  bool undo_possible_ = false;
  std::uint64_t undo_cwnd_ = 0;
  std::uint64_t undo_ssthresh_ = 0;
  std::uint64_t undo_pending_ = 0;
  std::uint32_t undone_events_ = 0;
};

// The pacer's release granularity: the bucket holds at least this long's worth of the rate.
inline constexpr Duration kPacerGranularity = std::chrono::milliseconds(1);

class Pacer {
 public:
  // `burst_packets`: how many packets may leave back to back after an idle period.
  explicit Pacer(std::size_t max_datagram_size = 1200, std::size_t burst_packets = 10)
      : mtu_(max_datagram_size),
        burst_packets_(burst_packets),
        burst_(static_cast<double>(burst_packets * max_datagram_size)),
        burst_cap_(burst_),
        tokens_(burst_) {}

  // Sets the rate from the current window and RTT: 1.25 * cwnd / srtt.
  void set_rate(std::uint64_t cwnd, Duration srtt);
  // The earliest time a packet of `bytes` may leave (now, if the bucket holds enough).
  Instant release_time(Instant now, std::size_t bytes);
  // An in-flight packet left (packets the window does not count are not paced).
  void on_sent(Instant now, std::size_t bytes);
  // When a packet of `bytes` may leave, judged from the last update (no clock needed): for
  // next_timeout(). A time in the past means now.
  Instant next_release(std::size_t bytes) const;
  double rate_bytes_per_sec() const { return rate_; }
  // The datagram size changed (MTU probing): the burst is counted in packets of the new size.
  // Takes effect at the next set_rate().
  void set_max_datagram_size(std::size_t size) {
    mtu_ = size;
    burst_ = static_cast<double>(burst_packets_ * size);
  }

 private:
  void refill(Instant now);

  std::size_t mtu_;
  std::size_t burst_packets_;
  double burst_;      // configured burst
  double burst_cap_;  // the burst, capped by the current window
  double tokens_;
  double rate_ = 0;  // bytes per second; 0 = unpaced
  Instant last_{};
  bool started_ = false;
};

}  // namespace slip::transport::udp
