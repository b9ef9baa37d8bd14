// One reliable-UDP connection as a sans-IO state machine (docs/udp.md).
//
// No sockets, no threads, no clock: the owner feeds it received datagrams with on_datagram(),
// takes the packets it wants sent with poll_transmit(), calls on_timeout() when next_timeout()
// passes, and drains events with poll_event(). Every call takes `now`, so the same code runs
// on an event loop's steady clock and on a simulator's virtual clock.
//
// Inside: streams with reliable, ordered delivery (send buffers, retransmission of lost ranges,
// reassembly of out-of-order and duplicate data), unreliable datagrams, credit-based flow
// control per stream and per connection, ACKs with ranges (delayed, or immediate on reordering),
// RTT estimation, loss detection by packet and time thresholds, probe timeouts, NewReno with
// pacing, keepalive and idle timeout, and path MTU discovery (MtuOptions).
//
// Streams are bidirectional byte streams numbered like QUIC's: the client opens even ids, the
// server odd ones; the peer's first STREAM frame on a new id opens it (and every lower id of
// that side). Each stream has one of the session layer's four priority classes: control is
// served strictly first, interactive, stream and bulk share what is left by weight.
//
// Thread safety: none; one owner (an event loop) calls everything.
// Packet protection is the PacketProtector's business (protector.h); it outlives the connection.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/ack_tracker.h"
#include "transport/udp/congestion.h"
#include "transport/udp/crypto.h"
#include "transport/udp/frames.h"
#include "transport/udp/protector.h"
#include "transport/udp/range_set.h"
#include "transport/udp/recovery.h"
#include "transport/udp/rtt.h"
#include "transport/udp/time.h"
#include "wire/frame.h"

namespace slip::transport::udp {

using wire::Priority;
inline constexpr std::size_t kPriorityClasses = 4;

enum class Role : std::uint8_t { kClient, kServer };

// Datagram packetization-layer path MTU discovery (RFC 8899; docs/udp.md, "Path MTU"). The
// connection starts at ConnectionOptions::max_packet_size (the base, 1200 by default) and, once
// the peer has acknowledged a packet, sends probe packets (PING + PADDING to the probed size)
// at larger sizes: first max_packet_size below, then a binary search between the largest size
// acknowledged and the smallest size given up on, until they are within search_granularity.
// A probe acknowledged raises the connection's packet size (and congestion control's datagram
// size); a size whose probe is lost max_probes times in a row is too big. Probes are outside
// congestion control: never counted in flight, their loss never shrinks the window, and they
// carry no data, so nothing is retransmitted for them.
//
// Black holes: when black_hole_threshold packets larger than the base are declared lost in a
// row, with no larger packet acknowledged in between, while a base-sized one still got through
// (probe-timeout packets are kept at the base size for this), the path no longer carries the
// raised size: the connection falls back to the base at once and searches again after
// reprobe_interval. A finished search also starts again after reprobe_interval when it ended
// below max_packet_size (the path may have grown).
struct MtuOptions {
  bool enabled = false;
  // Largest UDP payload probed. 1472 is a 1500-byte Ethernet MTU less the IPv4 and UDP headers
  // (20 + 8); over IPv6 the transport uses 1452 (40 + 8). The transport also caps it at what its
  // socket buffers hold.
  std::size_t max_packet_size = 1472;
  Duration reprobe_interval = std::chrono::minutes(10);
  std::uint32_t max_probes = 3;
  std::size_t search_granularity = 16;
  std::uint32_t black_hole_threshold = 3;
};

struct ConnectionOptions {
  Role role = Role::kClient;
  // Connection ids (docs/udp.md, "Protected packet"): ours, which the peer's packets carry (one
  // with another id is dropped), and the peer's, which ours carry. Both zero in tests.
  ConnectionId local_cid{};
  ConnectionId peer_cid{};
  // Largest UDP payload sent (header, frames and protection overhead). 1200 fits every path
  // IPv6 allows. With MTU probing (mtu) this is the base size the connection starts at and
  // falls back to; the size in use is current_max_packet_size().
  std::size_t max_packet_size = 1200;
  MtuOptions mtu;
  // Larger received datagrams are dropped unread.
  std::size_t max_receive_packet_size = 65527;

  AckOptions ack;                 // our ACK policy (ack.max_ack_delay is ours)
  RecoveryOptions recovery;       // recovery.peer_max_ack_delay is the peer's
  CongestionOptions congestion;   // max_datagram_size is taken from max_packet_size
  FrameLimits frame_limits;
  bool pacing = true;
  std::size_t pacing_burst_packets = 10;
  Duration initial_rtt = std::chrono::milliseconds(333);

  // No packet from the peer for this long closes the connection (kTimeout). At least 3 PTOs.
  Duration idle_timeout = std::chrono::seconds(30);
  // A PING after this long without any packet either way; zero turns keepalive off.
  Duration keepalive_interval = std::chrono::seconds(10);

  // Credit we grant: the peer may send this far beyond what we have read.
  std::uint64_t stream_receive_window = 256 * 1024;
  std::uint64_t connection_receive_window = 1024 * 1024;
  // Credit the peer grants us at the start (its windows, learned in the handshake).
  std::uint64_t peer_stream_receive_window = 256 * 1024;
  std::uint64_t peer_connection_receive_window = 1024 * 1024;

  // Streams the peer may have open at once; opening more closes the connection.
  std::size_t max_peer_streams = 256;
  // Bytes a stream holds that are written and not yet acknowledged; send() refuses beyond.
  std::size_t stream_send_buffer = 1024 * 1024;
  // Datagrams waiting to be sent (the oldest is dropped, and counted, beyond) and received
  // datagrams waiting to be read (the newest is dropped, and counted, beyond).
  std::size_t max_outgoing_datagrams = 64;
  std::size_t max_incoming_datagrams = 256;
  // Frames per scheduling round for interactive, stream and bulk (control is strict).
  std::array<std::uint32_t, kPriorityClasses> weights = {0, 8, 4, 1};
};

struct ConnectionStats {
  std::uint64_t packets_sent = 0;
  std::uint64_t packets_received = 0;       // accepted: authentic, new, well formed
  std::uint64_t packets_lost = 0;           // ack-eliciting packets declared lost
  std::uint64_t packets_spuriously_lost = 0;  // declared lost, then acknowledged
  std::uint64_t packets_retransmitted = 0;  // packets that carried retransmitted stream data
  std::uint64_t packets_rejected = 0;       // failed the header or packet protection
  std::uint64_t packets_duplicate = 0;      // packet numbers seen before (or too old)
  std::uint64_t bytes_sent = 0;             // UDP payload bytes
  std::uint64_t bytes_received = 0;
  std::uint64_t stream_bytes_sent = 0;           // first transmissions
  std::uint64_t stream_bytes_retransmitted = 0;
  std::uint64_t datagrams_sent = 0;
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_lost = 0;            // in packets declared lost (never resent)
  std::uint64_t datagrams_dropped_outgoing = 0;  // queue overflow
  std::uint64_t datagrams_dropped_incoming = 0;
  std::uint64_t acks_sent = 0;                 // packets carrying an ACK
  std::uint64_t probes_sent = 0;               // PTO probe packets
  std::uint64_t mtu_probes_sent = 0;           // path MTU probe packets
  std::uint64_t mtu_probes_acked = 0;
  std::uint64_t mtu_probes_lost = 0;
  std::uint64_t mtu_black_holes = 0;           // fallbacks to the base size
  std::uint64_t max_packet_size = 0;           // the packet size in use (UDP payload)
  std::uint64_t congestion_events = 0;
  std::uint64_t congestion_events_undone = 0;  // reductions undone: every loss in them was spurious
  std::uint64_t persistent_congestion_events = 0;
  std::uint64_t cwnd = 0;
  std::uint64_t ssthresh = 0;
  std::uint64_t bytes_in_flight = 0;
  Duration srtt{};
  Duration rttvar{};
  Duration min_rtt{};
  Duration latest_rtt{};
};

enum class EventType : std::uint8_t {
  kStreamOpened,     // the peer opened stream_id
  kStreamReadable,   // stream_id has bytes (or its end) to read
  kStreamWritable,   // stream_id refused a send() before and now has room
  kDatagramsReadable,
  kClosed,           // the connection is over: `status` says why (OK when we closed it)
};

struct Event {
  EventType type;
  std::uint64_t stream_id = 0;
  Status status;
};

enum class ConnectionState : std::uint8_t {
  kOpen,
  kClosing,   // we sent CLOSE; it is repeated to packets that still arrive
  kDraining,  // the peer sent CLOSE; nothing more is sent
  kClosed,    // terminal: the owner may destroy the connection
};

class Connection {
 public:
  Connection(const ConnectionOptions& options, PacketProtector* protector, Instant now);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // --- I/O driven by the owner ---

  // One received UDP payload. Malformed or unauthentic packets are dropped and counted; a
  // protocol violation inside an authentic packet closes the connection.
  void on_datagram(Instant now, ByteView datagram);
  // Same, but the packet is opened where it lies: `datagram` is the caller's receive buffer and
  // holds plaintext or garbage afterwards. Saves on_datagram()'s copy of every packet.
  void on_datagram_in_place(Instant now, std::span<std::uint8_t> datagram);
  // The next packet to send, if any: a view valid until the next call on the connection.
  // Respects the congestion window and the pacer; call until it returns nullopt.
  std::optional<ByteView> poll_transmit(Instant now);
  // Same, into the caller's buffer (at least max_packet_size bytes); returns 0 for none.
  std::size_t poll_transmit_into(Instant now, std::span<std::uint8_t> out);
  // When on_timeout() is due next: ACK delay, loss or probe timer, pacing release, keepalive,
  // idle timeout, end of draining. kNever when no timer is armed.
  Instant next_timeout() const;
  void on_timeout(Instant now);
  std::optional<Event> poll_event();

  // --- Streams ---

  // Opens a stream of ours.
  Result<std::uint64_t> open_stream(Priority priority = Priority::kStream);
  Status set_priority(std::uint64_t stream_id, Priority priority);
  // Queues all of `data` (and the end of the stream when fin), or nothing: kOverloaded when the
  // send buffer would pass stream_send_buffer (a kStreamWritable event follows when it drains);
  // kNotFound for an unknown stream; kFailedPrecondition after fin or close.
  Status send(std::uint64_t stream_id, ByteView data, bool fin = false);
  // Queues the first min(n, data.size()) bytes of `data`, as send() does (all or nothing), copied
  // once from the chain's slices into the stream's buffer.
  Status send(std::uint64_t stream_id, const Chain& data, std::size_t n);
  // Room left in the stream's send buffer.
  std::size_t send_capacity(std::uint64_t stream_id) const;
  // Copies up to out.size() in-order bytes; `fin` becomes true once every byte up to the end of
  // the stream has been read. Reading returns credit to the peer.
  Result<std::size_t> read(std::uint64_t stream_id, std::span<std::uint8_t> out, bool& fin);

  // --- Datagrams ---

  // Largest datagram that fits in one packet at the current packet size (it grows with MTU
  // probing and falls back with it: queued datagrams that no longer fit are dropped, counted).
  std::size_t max_datagram_size() const;
  // The UDP payload size in use: max_packet_size, or what MTU probing found.
  std::size_t current_max_packet_size() const { return mtu_current_; }
  // The largest packet this connection may ever build (buffers handed to poll_transmit_into
  // need this much room for MTU probes to go out).
  std::size_t packet_buffer_size() const { return mtu_max_; }
  // Queues an unreliable datagram: kInvalidArgument when it does not fit in a packet.
  Status send_datagram(ByteView data);
  std::optional<std::string> read_datagram();

  // --- Lifecycle and state ---

  // Sends CLOSE with the reason's code and message, then drains for 3 PTOs. The kClosed event
  // carries `reason`.
  void close(Instant now, Status reason = Status());
  ConnectionState state() const { return state_; }
  bool is_closed() const { return state_ == ConnectionState::kClosed; }
  // Nothing waits to be sent or acknowledged: no stream data outstanding, no ACK owed.
  bool is_quiescent() const;

  ConnectionStats stats() const;
  // stats().packets_received without building the whole record (the transport asks after every
  // datagram whether it was accepted).
  std::uint64_t packets_received() const { return stats_.packets_received; }
  const RttEstimator& rtt() const { return rtt_; }
  const NewReno& congestion() const { return cc_; }
  const ConnectionOptions& options() const { return options_; }

  // Flow-control bookkeeping of one stream as the receiver sees it (tests assert the peer never
  // exceeded the credit): the highest offset received and the credit advertised.
  struct ReceiveLimits {
    std::uint64_t highest_received = 0;
    std::uint64_t max_advertised = 0;
  };
  std::optional<ReceiveLimits> stream_receive_limits_for_test(std::uint64_t stream_id) const;
  ReceiveLimits connection_receive_limits_for_test() const { return {conn_recv_highest_sum_, conn_recv_max_}; }

 private:
  struct Stream;
  class Recovery;
  friend class Recovery;

  Stream* find_stream(std::uint64_t id);
  // The stream send() writes `n` bytes to, or why it cannot take them now (see send()).
  Result<Stream*> stream_taking(std::uint64_t stream_id, std::size_t n);
  const Stream* find_stream(std::uint64_t id) const;
  Result<Stream*> stream_for_frame(std::uint64_t id);
  Stream& add_stream(std::uint64_t id, Priority priority, bool local);
  void maybe_reap(Stream& s);
  bool is_local(std::uint64_t id) const;
  void mark_sendable(Stream& s);

  Status handle_frame(Instant now, const Frame& f);
  Status on_stream_frame(const StreamFrame& f);
  void on_max_data(std::uint64_t max);
  void on_max_stream_data(std::uint64_t id, std::uint64_t max);
  void on_packet_acked(const SentPacket& p);
  void on_spurious_loss(const SentPacket& p);
  void on_packets_lost(const std::vector<const SentPacket*>& lost, bool persistent);
  bool requeue_for_probe();
  bool stream_has_work(const Stream& s) const;

  // Path MTU discovery.
  bool mtu_probe_due(Instant now) const;
  std::size_t build_mtu_probe(Instant now, std::span<std::uint8_t> out);
  void on_mtu_probe_acked(std::uint64_t pn, std::size_t size);
  void on_mtu_probe_lost(std::uint64_t pn, std::size_t size);
  void mtu_start_search();
  void mtu_next_candidate();
  void mtu_fall_back();
  void set_packet_size(std::size_t size);

  bool has_ack_eliciting_work() const;
  // The end of building any packet: seals the `payload_len` bytes after the `header_len`-byte
  // header at `out` and records the packet as sent (ACK bookkeeping when it carried one, the
  // idle timer, counters, the loss detector). Returns the datagram's length, or 0 when sealing
  // failed (the connection is then closed).
  std::size_t seal_and_record(Instant now, std::uint8_t* out, std::size_t header_len, std::size_t payload_len,
                              SentPacket&& sp, bool has_ack);
  bool fill_streams(FrameWriter& w, SentPacket& sp, bool& retransmitted);
  bool fill_stream(Stream& s, FrameWriter& w, SentPacket& sp, bool& retransmitted);
  void enter_closing(Instant now, Status reason, bool send_close);
  void enter_closed(Status reason);
  void push_event(EventType type, std::uint64_t id, Status status = Status());
  Duration pto_duration() const;
  Instant idle_deadline() const;

  ConnectionOptions options_;
  PacketProtector* protector_;
  ConnectionState state_ = ConnectionState::kOpen;
  bool closed_event_sent_ = false;

  AckTracker acks_;
  RttEstimator rtt_;
  LossDetector loss_;
  NewReno cc_;
  Pacer pacer_;
  std::unique_ptr<Recovery> recovery_handler_;

  std::map<std::uint64_t, std::unique_ptr<Stream>> streams_;
  std::uint64_t next_local_index_ = 0;
  std::uint64_t next_peer_index_ = 0;
  std::size_t live_peer_streams_ = 0;
  std::size_t live_local_streams_ = 0;
  std::array<std::deque<std::uint64_t>, kPriorityClasses> sendable_;
  std::array<std::uint32_t, kPriorityClasses> round_{};

  // Connection flow control. Send side: bytes of new stream data sent vs the peer's credit.
  std::uint64_t conn_sent_ = 0;
  std::uint64_t conn_send_max_ = 0;
  // Receive side: sum over streams of the highest offset received, what the application
  // consumed, and the credit we advertised.
  std::uint64_t conn_recv_highest_sum_ = 0;
  std::uint64_t conn_consumed_ = 0;
  std::uint64_t conn_recv_max_ = 0;
  bool max_data_pending_ = false;
  std::vector<std::uint64_t> max_stream_data_pending_;  // stream ids

  std::deque<std::string> out_datagrams_;
  std::deque<std::string> in_datagrams_;
  bool datagrams_event_pending_ = false;

  bool ping_pending_ = false;
  std::uint32_t probes_pending_ = 0;
  bool close_pending_ = false;
  std::uint64_t close_code_ = 0;
  std::string close_reason_;
  Status close_status_;
  Instant drain_deadline_ = kNever;

  Instant now_{};  // the time of the call in progress (for callbacks from the loss detector)
  Instant last_received_{};
  Instant last_sent_{};
  Instant idle_start_{};  // the idle timer restarts here
  bool eliciting_sent_since_receive_ = false;

  std::deque<Event> events_;
  ConnectionStats stats_;
  std::vector<std::uint8_t> rx_scratch_;  // on_datagram()'s copy of a read-only datagram
  std::vector<std::uint8_t> tx_buffer_;  // poll_transmit()'s packet, sized on first use
  std::vector<AckRange> ack_scratch_;

  // Path MTU discovery state (MtuOptions). The search runs between mtu_low_ (acknowledged) and
  // mtu_high_ (given up on; max + 1 before any); mtu_probe_size_ is the size being tried.
  std::size_t mtu_base_ = 0;
  std::size_t mtu_current_ = 0;
  std::size_t mtu_max_ = 0;
  std::size_t mtu_low_ = 0;
  std::size_t mtu_high_ = 0;
  std::size_t mtu_probe_size_ = 0;  // 0: no search running
  std::uint32_t mtu_tries_ = 0;
  bool mtu_probe_in_flight_ = false;
  std::uint64_t mtu_probe_pn_ = 0;  // the packet number of the probe in flight
  bool mtu_started_ = false;        // the first search began (after the first acknowledgement)
  Instant mtu_next_search_ = kNever;
  std::uint32_t mtu_large_losses_ = 0;  // packets above the base lost in a row
  std::uint64_t mtu_epoch_pn_ = 0;      // probes numbered below were sent before the last fallback
};

}  // namespace slip::transport::udp
