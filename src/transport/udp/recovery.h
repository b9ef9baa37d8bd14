// Loss detection (RFC 9002 sections 6 and A): which sent packets were acknowledged, which are
// lost, and when the loss and probe timers fire.
//
// A packet is lost when a packet sent after it has been acknowledged and either
//   - it is at least packet_threshold (default 3) packet numbers below the largest acknowledged, or
//   - it was sent more than 9/8 x max(latest RTT, smoothed RTT) before now.
// When nothing can be declared lost yet but ack-eliciting packets are in flight, the probe
// timeout (PTO) fires after srtt + max(4 rttvar, 1 ms) + max_ack_delay, doubled on each
// consecutive expiry; the caller then sends one or two probe packets.
//
// The detector knows packets, not their contents: a SentPacket carries the caller's record of
// its frames, handed back through on_acked / on_lost.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "slipstream/status.h"
#include "transport/udp/frames.h"
#include "transport/udp/rtt.h"
#include "transport/udp/time.h"

namespace slip::transport::udp {

inline constexpr std::uint64_t kPacketThreshold = 3;
// 9/8, as a ratio.
inline constexpr int kTimeThresholdNum = 9;
inline constexpr int kTimeThresholdDen = 8;
// Frame lists of forgotten packets kept for reuse while packets are in flight (none once
// nothing is: an idle connection holds none).
inline constexpr std::size_t kSpareFrameLists = 64;
inline constexpr std::size_t kFrameListCapacity = 4;

// What one packet carried that needs an action when it is acknowledged or lost.
struct SentFrame {
  // kMtuProbe: the packet was a path MTU probe of `length` bytes (never in flight, no data).
  enum class Kind : std::uint8_t { kStream, kMaxData, kMaxStreamData, kDatagram, kPing, kAck, kMtuProbe };
  Kind kind = Kind::kPing;
  bool fin = false;
  std::uint64_t stream_id = 0;
  std::uint64_t offset = 0;  // kStream: stream offset; kAck: the largest acknowledged
  std::uint64_t length = 0;
};

struct SentPacket {
  std::uint64_t packet_number = 0;
  Instant time_sent{};
  std::uint32_t size = 0;
  bool ack_eliciting = false;
  bool in_flight = false;  // counted by congestion control (ack-eliciting packets)
  bool resolved = false;   // acknowledged or declared lost
  bool lost = false;       // resolved by being declared lost
  Instant time_lost{};     // when it was declared lost
  // TODO(perf): one allocation per packet; boost's small_vector trips g++ 12's
  // -Wstringop-overread when moved.
  std::vector<SentFrame> frames;
};

class RecoveryHandler {
 public:
  virtual ~RecoveryHandler() = default;
  virtual void on_packet_acked(const SentPacket& p) = 0;
  // `lost` are the packets declared lost together, in packet-number order; `persistent` when
  // they show persistent congestion (RFC 9002 section 7.6).
  virtual void on_packets_lost(const std::vector<const SentPacket*>& lost, bool persistent) = 0;
  // A packet congestion control counted in flight was declared lost and is acknowledged now
  // (the loss was spurious). Called before on_packet_acked for it.
  virtual void on_spurious_loss(const SentPacket& /*p*/) {}
};

struct RecoveryOptions {
  // The peer's max_ack_delay: part of the PTO, and the cap on the ack delay it reports.
  Duration peer_max_ack_delay = std::chrono::milliseconds(25);
  // The PTO stops doubling after this many consecutive expiries.
  std::uint32_t max_pto_backoff = 8;
  std::uint32_t persistent_congestion_threshold = 3;
  // A packet this many packet numbers below the largest acknowledged is lost. Forward error
  // correction (fec.h) raises it to the packets a block spans, so that a loss the peer can
  // repair is not declared (and retransmitted) before the repair had a chance.
  std::uint64_t packet_threshold = kPacketThreshold;
};

class LossDetector {
 public:
  explicit LossDetector(const RecoveryOptions& options = {}) : options_(options) {}

  // Packets must be sent in increasing packet-number order with no gaps.
  void on_packet_sent(SentPacket packet);

  // Processes one ACK frame: calls on_packet_acked for each newly acknowledged packet, takes an
  // RTT sample when the largest is newly acknowledged, then runs loss detection. An ACK of a
  // packet never sent is INVALID_ARGUMENT (a protocol violation).
  Status on_ack(Instant now, const AckFrame& ack, RttEstimator& rtt, RecoveryHandler& handler);

  // When the loss or probe timer fires; nullopt when none is armed.
  std::optional<Instant> timer(const RttEstimator& rtt) const;

  // Handles an expired timer. Returns true when it was the probe timeout: the caller must send
  // probe packets.
  bool on_timeout(Instant now, RttEstimator& rtt, RecoveryHandler& handler);

  std::uint64_t next_packet_number() const { return next_pn_; }
  std::optional<std::uint64_t> largest_acked() const { return largest_acked_; }
  std::uint32_t pto_count() const { return pto_count_; }
  // Packets declared lost and acknowledged afterwards (reordering beyond the thresholds).
  std::uint64_t spurious_losses() const { return spurious_losses_; }
  std::size_t ack_eliciting_in_flight() const { return eliciting_in_flight_; }
  // Packets sent and not yet forgotten (acknowledged and lost ones are forgotten once nothing
  // older is outstanding; lost ones only after two PTOs).
  std::size_t tracked() const { return sent_.size(); }
  // The oldest unresolved ack-eliciting packet (what a probe retransmits), or null.
  const SentPacket* oldest_unacked() const;
  // Forgets every packet (the connection is closing): returns the bytes that were in flight.
  std::uint64_t discard_all();
  // An empty frame list for the next packet, with the capacity of one forgotten earlier: the
  // sender reuses them instead of allocating one per packet.
  std::vector<SentFrame> take_frame_list() {
    std::vector<SentFrame> v;
    if (!spare_frames_.empty()) {
      v = std::move(spare_frames_.back());
      spare_frames_.pop_back();
      v.clear();
    }
    // Room for the usual packet (an ACK, a credit update, a frame or two of stream data), so
    // that a reused list does not grow again.
    v.reserve(kFrameListCapacity);
    return v;
  }

 private:
  void detect_lost(Instant now, const RttEstimator& rtt, RecoveryHandler& handler);
  void pop_resolved(Instant now, const RttEstimator& rtt);
  SentPacket* find(std::uint64_t pn);

  RecoveryOptions options_;
  std::deque<SentPacket> sent_;  // sent_[i].packet_number == first_pn_ + i
  std::uint64_t first_pn_ = 0;
  std::uint64_t next_pn_ = 0;
  std::optional<std::uint64_t> largest_acked_;
  std::optional<Instant> loss_time_;
  Instant last_ack_eliciting_sent_{};
  std::size_t eliciting_in_flight_ = 0;
  std::uint32_t pto_count_ = 0;
  std::uint64_t spurious_losses_ = 0;
  std::vector<const SentPacket*> lost_scratch_;
  std::vector<std::vector<SentFrame>> spare_frames_;  // from forgotten packets, at most kSpareFrameLists
};

}  // namespace slip::transport::udp
