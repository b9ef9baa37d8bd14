// Forward error correction for the reliable UDP transport (docs/udp.md, "Forward error
// correction"): a sans-IO filter on whole datagrams, below packet protection.
//
// The sender's FecEncoder takes each sealed datagram the connection wants to send, wraps it in
// a 6-byte FEC source header, and after every k of them (a block) emits m repair packets:
// Reed-Solomon parity over the block (Intel ISA-L, a systematic Cauchy code in GF(2^8)). The
// receiver's FecDecoder unwraps source packets and hands them on at once (no added latency when
// nothing is lost); once any k of a block's k + m packets have arrived, it rebuilds the missing
// sources and hands them on too. Datagrams of different lengths share a block: each is coded as
// a 2-byte length followed by its bytes, zero-padded to the block's longest.
//
// Nothing here is authenticated: a rebuilt datagram is still a sealed packet that the
// connection opens (and drops, if a forged repair produced garbage). Datagrams that are not FEC
// packets pass through the decoder unchanged, so a peer with FEC off interoperates.
//
// Neither class has sockets, threads or a clock: every call takes `now`. Thread safety: none;
// the connection's owner calls everything.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/time.h"

namespace slip::transport::udp {

// First bytes of FEC packets. Bit 6 set and bit 7 clear make them short-header-like, and bit 5
// set is a reserved bit of the protected short header (always zero there), so they never
// collide with a protected packet (0x40-0x47), a handshake packet (0xC0-0xCF) or the core's
// test header (0x40).
inline constexpr std::uint8_t kFecSourceType = 0x60;
inline constexpr std::uint8_t kFecRepairType = 0x61;

// type (1) | block id (4, big-endian) | source index (1)
inline constexpr std::size_t kFecSourceHeaderSize = 6;
// type (1) | block id (4) | repair index (1) | source count k (1) | repair count m (1)
inline constexpr std::size_t kFecRepairHeaderSize = 8;
// Each source is coded as its length (2 bytes, big-endian) and its bytes.
inline constexpr std::size_t kFecLengthPrefix = 2;
// What FEC adds to the largest datagram: a repair packet is its header, the length prefix and
// the block's longest datagram. A connection under FEC must make its packets this much smaller
// than the path allows.
inline constexpr std::size_t kFecMaxOverhead = kFecRepairHeaderSize + kFecLengthPrefix;

// Code limits: k + m <= 64 so a block's packets fit in one 64-bit mask.
inline constexpr std::size_t kFecMaxSources = 48;  // k
inline constexpr std::size_t kFecMaxRepairs = 16;  // m

// The coefficient repair r applies to source j: the inverse, in GF(2^8) with ISA-L's polynomial
// (x^8 + x^4 + x^3 + x^2 + 1), of (48 + r) XOR j. It does not depend on k, so a block closed
// early by the flush timer is a shortened code of the same matrix.
std::uint8_t fec_coefficient(std::size_t repair_index, std::size_t source_index);

// k source packets protected by m repair packets; m == 0 means FEC is off.
struct FecRatio {
  std::uint8_t k = 0;
  std::uint8_t m = 0;
  bool active() const { return k > 0 && m > 0; }
  friend bool operator==(const FecRatio&, const FecRatio&) = default;
};

// One step of the adaptive policy: from `min_loss` up, blocks of k sources with m repairs.
struct FecLevel {
  double min_loss = 0;
  std::uint8_t k = 0;
  std::uint8_t m = 0;
};

struct FecPolicyOptions {
  // In increasing min_loss order. Below the first level's min_loss, FEC is off. With the
  // defaults a block loses more than m packets with a chance of 1% to 4% at the top of each band
  // (independent losses; docs/udp.md has the table); the overhead m/k goes from 12.5% to 200%.
  std::vector<FecLevel> levels = {
      {0.01, 16, 2},  // 1% to 3%
      {0.03, 10, 3},  // 3% to 7%
      {0.07, 8, 4},   // 7% to 15%
      {0.15, 6, 6},   // 15% to 30%
      {0.30, 4, 8},   // 30% and above
  };
  // A level is left downwards only when the loss falls below (1 - hysteresis) x its min_loss,
  // so an estimate hovering at a boundary does not flip the ratio on every update.
  double hysteresis = 0.3;
};

// Maps a loss estimate to a ratio, with hysteresis.
class FecPolicy {
 public:
  explicit FecPolicy(FecPolicyOptions options = {});
  // kInvalidArgument for levels out of order or with k, m outside 1..kFecMaxSources/Repairs.
  static Status validate(const FecPolicyOptions& options);

  // `loss` is a fraction (0.1 = 10%); values outside [0, 1] are clamped, NaN is ignored.
  void set_loss_estimate(double loss);
  FecRatio ratio() const;
  int level() const { return level_; }  // -1: off
  double loss_estimate() const { return loss_; }
  // The most packets a block of any level spans (k + m): a connection under FEC should not
  // declare a packet lost by packet count before that many later packets were acknowledged.
  std::size_t max_block_packets() const;

 private:
  FecPolicyOptions options_;
  int level_ = -1;
  double loss_ = 0;
};

struct FecEncoderOptions {
  // FEC for this connection. Off, every datagram passes through unchanged.
  bool enabled = false;
  // Adaptive: the ratio follows set_loss_estimate() through the policy. Fixed: always `ratio`.
  bool adaptive = true;
  FecRatio ratio{8, 2};
  FecPolicyOptions policy;
  // A block that is not full this long after its first source is closed early: its repair
  // packets (ceil(m x sources / k) of them) go out for the sources it has, so the tail of a
  // burst is protected too. Keep it well below an eighth of the RTT (the connection's time
  // threshold for declaring a packet lost).
  Duration flush_delay = std::chrono::milliseconds(2);
  // Longer datagrams pass through unprotected (counted). Sizes the parity buffers.
  std::size_t max_datagram_size = 1500;
  // Adaptive mode, a block closed early with n < k sources: it gets the repairs that keep its
  // chance of loss beyond repair no higher than a full block's at the estimated loss rate (at
  // least m x n / k, at most m), but no more than this many per source (rounded down, at least 1).
  double max_repair_ratio = kFecMaxRepairs;
};

struct FecEncoderStats {
  std::uint64_t source_packets = 0;    // datagrams wrapped into a block
  std::uint64_t repair_packets = 0;
  std::uint64_t passthrough = 0;       // sent unwrapped: FEC off, or too long (below)
  std::uint64_t too_long = 0;
  std::uint64_t blocks = 0;            // blocks closed (full or flushed)
  std::uint64_t blocks_flushed = 0;    // closed early by the flush timer (or a ratio change)
  std::uint64_t bytes_out = 0;         // everything poll_transmit() returned
};

class FecEncoder {
 public:
  explicit FecEncoder(const FecEncoderOptions& options = {});
  FecEncoder(const FecEncoder&) = delete;
  FecEncoder& operator=(const FecEncoder&) = delete;

  // Turning FEC off closes the open block first (its repairs are still sent).
  void set_enabled(Instant now, bool enabled);
  bool enabled() const { return options_.enabled; }
  // The measured loss rate of the path this encoder sends on (a fraction); adaptive mode only.
  // A new ratio applies from the next block.
  void set_loss_estimate(double loss);
  void set_flush_delay(Duration d) { options_.flush_delay = d; }
  // The ratio the next block will use (inactive when FEC is off).
  FecRatio ratio() const;
  const FecPolicy& policy() const { return policy_; }

  // One sealed datagram the connection wants to send. It is queued, wrapped when FEC is on, and
  // followed by the block's repair packets when it fills the block.
  void push(Instant now, ByteView datagram);
  // The next datagram to put on the wire, in order; a view valid until the next call on the
  // encoder. Call until it returns nullopt.
  std::optional<ByteView> poll_transmit();
  bool has_output() const { return !out_.empty(); }
  // When the open block's flush is due; kNever when no block is open.
  Instant next_timeout() const;
  void on_timeout(Instant now);

  const FecEncoderStats& stats() const { return stats_; }

 private:
  void close_block(bool flushed);
  std::size_t repairs_for_flush() const;
  std::vector<std::uint8_t>& new_output();

  FecEncoderOptions options_;
  FecPolicy policy_;
  std::size_t symbol_capacity_;
  // The open block.
  std::uint32_t block_id_ = 0;
  FecRatio block_ratio_;
  std::size_t count_ = 0;       // sources so far
  std::size_t symbol_len_ = 0;  // the longest coded source so far
  Instant block_start_{};
  std::vector<std::uint8_t> parity_;   // kFecMaxRepairs rows of symbol_capacity_
  std::vector<std::uint8_t> symbol_;   // the coded form of the source being added
  std::array<std::uint8_t*, kFecMaxRepairs> parity_rows_{};

  std::deque<std::vector<std::uint8_t>> out_;
  std::vector<std::uint8_t> current_;  // what poll_transmit() returned last
  std::vector<std::vector<std::uint8_t>> spare_;  // emptied output buffers, reused
  FecEncoderStats stats_;
};

struct FecDecoderOptions {
  // Blocks tracked at once; the oldest is forgotten beyond (its missing sources are not rebuilt).
  std::size_t max_blocks = 32;
  // Bytes of datagrams held for rebuilding, over all blocks; the oldest blocks are forgotten
  // beyond.
  std::size_t max_buffered_bytes = 512 * 1024;
  // A block is forgotten this long after its first packet arrived.
  Duration block_lifetime = std::chrono::seconds(1);
  // Longer FEC packets are dropped.
  std::size_t max_datagram_size = 1500;
  // Weight of one block's loss in the loss estimate (an EWMA over blocks).
  double loss_weight = 0.125;
};

struct FecDecoderStats {
  std::uint64_t source_packets = 0;     // FEC source packets accepted
  std::uint64_t repair_packets = 0;     // repair packets accepted
  std::uint64_t passthrough = 0;        // datagrams that were not FEC packets
  std::uint64_t recovered = 0;          // sources rebuilt and delivered
  std::uint64_t duplicates = 0;         // packets of a block seen before
  std::uint64_t malformed = 0;          // bad header, bad length, inconsistent block
  std::uint64_t too_old = 0;            // repairs for blocks long forgotten
  std::uint64_t blocks_unrecovered = 0;  // forgotten with sources missing
  std::uint64_t blocks_evicted = 0;     // forgotten early for the block or byte limit
};

// FEC for a udp:// connection (UdpOptions::fec; fec_filter.h applies it). Each end offers FEC in
// its transport parameters when `enabled`; a connection uses it only when both ends offer it, so a
// peer without FEC (or with it off) gets none. The ratio is this end's choice for what it sends.
struct FecOptions {
  bool enabled = false;
  // Adaptive: no repairs while no loss is measured, then the policy's levels as loss grows.
  // Fixed: always `ratio`.
  bool adaptive = true;
  FecRatio ratio{8, 2};
  // The most repair packets per source packet (m / k) the adaptive policy may reach: its levels
  // above are capped to this ratio. 1.0 doubles the packets at most.
  double max_repair_ratio = 1.0;
  FecPolicyOptions policy;
  // See FecEncoderOptions::flush_delay.
  Duration flush_delay = std::chrono::milliseconds(2);
  // How often the receiver reports its measured loss while FEC packets arrive.
  Duration feedback_interval = std::chrono::milliseconds(20);
  // Under FEC, a congestion event leaves the window at this fraction of what it was
  // (CongestionOptions::loss_reduction; NewReno's 0.5 without FEC). In [0.5, 1).
  double congestion_loss_reduction = 0.85;
  FecDecoderOptions decoder;
};

// Counters of one filter, or the sum over an endpoint's connections.
// (A connection's FEC filter, fec_filter.h.)
struct FecFilterStats {
  std::uint64_t connections = 0;         // connections that negotiated FEC (endpoint sums only)
  std::uint64_t source_packets = 0;      // datagrams sent inside FEC blocks
  std::uint64_t repair_sent = 0;
  std::uint64_t repair_received = 0;
  std::uint64_t recovered = 0;           // datagrams rebuilt and handed to the connection
  std::uint64_t unrecoverable_blocks = 0;  // blocks given up with sources missing
  std::uint64_t malformed = 0;           // bad FEC packets (damaged or forged), bad feedback
  std::uint64_t feedback_sent = 0;
  std::uint64_t feedback_received = 0;

  void add(const FecFilterStats& o);
};

class FecDecoder {
 public:
  explicit FecDecoder(const FecDecoderOptions& options = {});
  FecDecoder(const FecDecoder&) = delete;
  FecDecoder& operator=(const FecDecoder&) = delete;

  // One received datagram. Returns what to hand to the connection now: the source datagram
  // inside a FEC source packet (a view into `datagram`), `datagram` itself when it is not a FEC
  // packet, or an empty view (a repair packet, a duplicate, a malformed packet). Rebuilt
  // datagrams then wait in poll_recovered().
  ByteView on_datagram(Instant now, ByteView datagram);
  // A rebuilt source datagram, in the order rebuilt; a view valid until the next call on the
  // decoder. Call until it returns nullopt after every on_datagram().
  std::optional<ByteView> poll_recovered();
  // When the oldest block expires; kNever when none is tracked.
  Instant next_timeout() const;
  void on_timeout(Instant now);

  // The fraction of FEC packets (sources and repairs) lost on the way here, an EWMA over
  // blocks: what the peer's encoder should be told (set_loss_estimate).
  double loss_estimate() const { return loss_; }
  const FecDecoderStats& stats() const { return stats_; }
  std::size_t blocks() const { return blocks_.size(); }
  std::size_t buffered_bytes() const { return buffered_; }

 private:
  struct Block {
    std::uint32_t id = 0;
    Instant created{};
    std::uint8_t k = 0;  // 0 until a repair packet says
    std::uint8_t m = 0;
    std::size_t symbol_len = 0;  // L, from the repair packets
    std::uint64_t sources = 0;   // indices delivered (received or rebuilt)
    std::uint64_t received = 0;  // indices received as source packets
    std::uint32_t repairs = 0;   // repair indices received
    bool done = false;           // nothing more to rebuild; buffers released
    bool sampled = false;        // loss counted in the estimate
    std::array<std::vector<std::uint8_t>, kFecMaxSources> src;  // coded form (length prefix + bytes)
    std::array<std::vector<std::uint8_t>, kFecMaxRepairs> rep;
  };

  Block* find(std::uint32_t id);
  Block* open_block(Instant now, std::uint32_t id);
  bool store(Block& b, std::vector<std::uint8_t>& slot, ByteView prefix, ByteView bytes);
  void release(Block& b);
  void forget(std::size_t index, bool evicted);
  void sample_loss(Block& b);
  void try_recover(Block& b);
  std::vector<std::uint8_t> take_buffer();
  void give_buffer(std::vector<std::uint8_t>& v);

  FecDecoderOptions options_;
  std::vector<std::unique_ptr<Block>> blocks_;  // in order of creation
  std::optional<std::uint32_t> newest_;
  std::size_t buffered_ = 0;
  std::deque<std::vector<std::uint8_t>> recovered_;
  std::vector<std::uint8_t> current_;
  std::vector<std::vector<std::uint8_t>> spare_;
  std::vector<std::uint8_t> tables_;  // ec_init_tables scratch
  double loss_ = 0;
  FecDecoderStats stats_;
};

}  // namespace slip::transport::udp
