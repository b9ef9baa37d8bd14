// Forward error correction on a udp:// connection (docs/udp.md, "Forward error correction"): the
// DatagramFilter that puts fec.h's encoder and decoder between a connection and its socket, and
// tells the peer's encoder the loss its decoder measures.
//
// On the wire, every FEC packet carries the routing bytes a protected packet does (byte 0 with
// the long-header bit clear and the fixed bit set, then the receiver's 8-byte connection id), so
// the peer's endpoint routes it to the connection before its filter sees it:
//   source    0x60 | cid (8) | block id (4) | index (1) | the sealed datagram
//   repair    0x61 | cid (8) | block id (4) | repair index (1) | k (1) | m (1) | parity
//   feedback  0x62 | cid (8) | loss (2, big-endian, in 1/65535)
// Removing the connection id gives fec.h's packets. Datagrams the encoder leaves unwrapped (FEC
// inactive at this loss) are the sealed packets themselves.
//
// Rebuilt datagrams go to the connection exactly like received ones: packet protection and the
// replay window still decide whether they are authentic and new. Nothing in the FEC headers or
// the feedback packet is authenticated: a forged repair rebuilds garbage the connection rejects
// (counted), a forged feedback can at worst move the ratio within the configured levels.
//
// Loss feedback: the encoder's ratio follows the larger of two estimates, the loss this side's
// connection declared from acknowledgements (which FEC hides once it repairs) and the loss the
// peer's decoder measured on FEC blocks (sent back every feedback interval while FEC packets
// arrive). The first turns FEC on; the second keeps it at the right level.
//
// Thread safety: none; the connection's loop calls everything.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "transport/udp/fec.h"
#include "transport/udp/udp.h"

namespace slip::transport::udp {

inline constexpr std::uint8_t kFecFeedbackType = 0x62;
inline constexpr std::size_t kFecFeedbackSize = 1 + kConnectionIdLen + 2;
// What the filter adds to the largest sealed datagram (a repair packet: the connection id, the
// repair header, the length prefix); a connection under FEC makes its packets this much smaller.
inline constexpr std::size_t kFecFilterOverhead = kConnectionIdLen + kFecMaxOverhead;

class FecFilter final : public DatagramFilter {
 public:
  using Clock = std::function<Instant()>;
  // The connection's packets sent and declared lost so far (ConnectionStats::packets_sent,
  // packets_lost), or zeros when it is gone.
  using LossCounters = std::function<std::pair<std::uint64_t, std::uint64_t>()>;

  // `totals`, when given, receives this filter's counters as they grow (an endpoint's sum); it
  // must outlive the filter.
  FecFilter(const FecOptions& options, Clock clock, LossCounters own_loss, FecFilterStats* totals = nullptr);
  ~FecFilter() override;

  void outgoing(ByteView datagram, DatagramSink& wire) override;
  void incoming(ByteView datagram, DatagramSink& connection) override;
  Instant next_timeout() const override;
  void on_timeout(Instant now, DatagramSink& wire) override;

  const FecFilterStats& stats() const { return stats_; }
  FecRatio ratio() const { return encoder_.ratio(); }
  // The estimate the encoder follows, and its two inputs.
  double loss_estimate() const { return encoder_.policy().loss_estimate(); }
  double own_loss() const { return own_loss_; }
  double peer_loss() const { return peer_loss_; }
  const FecEncoder& encoder() const { return encoder_; }
  const FecDecoder& decoder() const { return decoder_; }

 private:
  void drain(DatagramSink& wire);
  void update_loss();
  void tick(Instant now, DatagramSink& wire);
  void arm(Instant now);
  void publish();

  FecOptions options_;
  Clock clock_;
  LossCounters own_counters_;
  FecFilterStats* totals_;
  FecEncoder encoder_;
  FecDecoder decoder_;
  ConnectionId peer_cid_{};
  bool have_cid_ = false;
  std::vector<std::uint8_t> buf_;

  // Loss feedback.
  Instant tick_at_ = kNever;
  bool activity_ = false;
  std::uint64_t fec_in_seen_ = 0;   // decoder's FEC packets at the last feedback
  std::uint64_t sent_seen_ = 0;     // own connection's counters at the last sample
  std::uint64_t lost_seen_ = 0;
  double own_loss_ = 0;
  double peer_loss_ = 0;

  FecFilterStats stats_;
  FecFilterStats published_;
};

// Applies FecOptions to a new connection: FEC is on when both ends offered it. Makes the
// connection's packets kFecFilterOverhead smaller when it is.
bool fec_negotiated(const FecOptions& ours, bool peer_offers);
void fec_adjust_connection(const FecOptions& fec, ConnectionOptions& co);
// The encoder options FecOptions stand for (the policy capped at max_repair_ratio).
FecEncoderOptions fec_encoder_options(const FecOptions& fec);
// kInvalidArgument for options out of range.
Status validate_fec_options(const FecOptions& fec);
// "off", "adaptive" or "K,M" (a fixed ratio: M repairs per K sources), as slipd's --udp-fec and
// the client's fec= option take them.
Status parse_fec_mode(std::string_view text, FecOptions& out);

}  // namespace slip::transport::udp
