// Session: one native-protocol connection, multiplexed into streams.
//
// On top of the handshake, PING/PONG, GOAWAY and ERROR, a Session carries any number of
// streams, each a sequence of messages in one priority class:
//   - Messages are cut into chunks of at most chunk_size bytes (DATA frames with MORE), and the
//     scheduler interleaves chunks of different streams: control streams strictly first, then
//     interactive, stream and bulk by weight (default 8:4:1 chunks). A 64-byte call therefore
//     waits behind at most the chunks already handed to the transport, never a whole 100 MB
//     message.
//   - Credit-based flow control per stream and per connection (CREDIT frames). The receiver
//     returns credit as the application takes the bytes; a paused stream returns none, so a
//     reader that stops reading stalls only that stream's writer, and the memory it costs is
//     bounded by the window. The sender buffers at most max_stream_buffer bytes per stream and
//     max_session_buffer per session: send() past that is kOverloaded.
//   - The transport is fed only while its queue is under send_high_water; the rest waits in the
//     streams, so priorities still apply to what has not left yet. While interactive traffic is
//     active (a control or interactive DATA frame sent or received within interactive_hold),
//     stream and bulk chunks are framed only while the transport holds less than
//     bulk_high_water: a call then waits behind that much bulk, not behind send_high_water.
//   - Heartbeats: a PING when nothing arrived for the heartbeat interval; nothing at all for
//     idle_timeout closes the session with kTimeout.
//   - GOAWAY drains: no new streams, streams in flight finish, then the connection closes.
//   - Messages are compressed per message when both sides negotiated a codec (compress/).
//
// Stream ids: client-initiated odd, server-initiated even. A Session lives on its connection's
// loop; every call and callback happens on that thread. Callbacks may call back into the
// session.
#pragma once

#include <array>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "compress/compressor.h"
#include "compress/decompressor.h"
#include "transport/transport.h"
#include "wire/encoder.h"
#include "wire/frames.h"
#include "wire/handshake.h"

namespace slip::session {

class Session;
using wire::Priority;

inline constexpr std::size_t kPriorityClasses = 4;

// Receives one stream's events. Runs on the session's loop.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // A whole message, reassembled and decompressed.
  virtual void on_message(Session& s, std::uint64_t stream, Chain message) = 0;
  // The peer will send nothing more on this stream.
  virtual void on_end(Session&, std::uint64_t /*stream*/) {}
  // The stream was abandoned (by the peer's RESET, a limit, or the session closing). No
  // callback for this stream follows.
  virtual void on_reset(Session&, std::uint64_t /*stream*/, const Status&) {}
  // The stream's send buffer went back to half its bound after a kOverloaded send(), or to the
  // level asked for with Session::watch_writable().
  virtual void on_writable(Session&, std::uint64_t /*stream*/) {}
};

// What a session reports; callbacks run on the session's loop.
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // The handshake finished; streams may open.
  virtual void on_ready(Session&) {}
  // The peer opened a stream. Return its handler (which must live until on_reset or the
  // session closes), or null to refuse it (the peer gets RESET with kUnimplemented).
  virtual StreamHandler* on_stream_open(Session&, std::uint64_t /*stream*/, Priority) { return nullptr; }
  // A frame outside the stream layer (pub/sub, RPC control, ...). A failed Status closes the
  // session with an ERROR frame carrying it.
  virtual Status on_frame(Session&, const wire::Frame&) {
    return unimplemented("this endpoint does not handle these frames");
  }
  // The peer opened an RPC stream with CALL (interactive class). Return its handler (which must
  // live until on_reset, the stream's TRAILERS or close_stream(), or the session closing). An
  // error closes the session with it; by default, endpoints without the RPC layer refuse CALL.
  virtual Result<StreamHandler*> on_call(Session&, const wire::Call&) {
    return unimplemented("this endpoint does not serve RPC");
  }
  // A PONG answering our ping(); rtt_ns measured from when it was sent.
  virtual void on_pong(Session&, std::int64_t /*rtt_ns*/) {}
  // The transport wrote everything it held (after the streams were offered the room): a good
  // moment to send what was held back for a slow peer.
  virtual void on_send_drained(Session&) {}
  // Last callback: why the session ended (OK when it closed cleanly).
  virtual void on_closed(Session&, const Status&) {}
};

struct SessionOptions {
  wire::WireLimits limits;
  std::chrono::milliseconds handshake_timeout{10000};
  // Server side, while the client's credentials are being checked asynchronously: bytes it
  // pipelines after HELLO are kept up to about this many, then reading pauses until the verdict.
  std::size_t max_pipelined_bytes = 64 * 1024;
  // Largest DATA payload per frame (also capped by the peer's max frame size).
  std::size_t chunk_size = 16 * 1024;
  // Chunks per scheduling round for interactive, stream and bulk (control is strict).
  std::array<std::uint32_t, kPriorityClasses> weights = {0, 8, 4, 1};
  // Stop feeding the transport while it holds this many bytes.
  std::size_t send_high_water = 128 * 1024;
  // While interactive traffic is active, stream and bulk chunks stop at this many bytes in the
  // transport instead (control and interactive chunks still use send_high_water). At least
  // one chunk always fits. Setting it to send_high_water turns the limit off.
  std::size_t bulk_high_water = 16 * 1024;
  // How long after the last control or interactive DATA frame, in either direction, the
  // interactive traffic counts as active.
  std::chrono::microseconds interactive_hold{2000};
  // Send-side bounds: send() past these is kOverloaded. A stream with nothing queued may always
  // queue one message, whatever its size.
  std::size_t max_stream_buffer = 4u << 20;
  std::size_t max_session_buffer = 64u << 20;
  // Receive-side bound on one reassembled message.
  std::size_t max_message_size = 128u << 20;
  // Streams open at once, per session.
  std::size_t max_streams = 4096;
  // Nothing received for this long closes the session; 0: 3 heartbeat intervals.
  std::chrono::milliseconds idle_timeout{0};
  // How long a GOAWAY drain may take before the connection is closed anyway.
  std::chrono::milliseconds drain_timeout{5000};
  // Compression of outgoing messages (codecs are limited to what was negotiated).
  compress::CompressOptions compression;
  // After this many frames of one read, what the session has to send by then (answers to the
  // frames handled so far) goes to the transport, and the rest of the read is handled on the
  // next loop turn, after that write. The peer then works on the first answers while this side
  // handles the rest, instead of both sides taking turns over whole batches. A session with
  // nothing of its own to send keeps going (a publisher's PUBs, say). 0: never.
  std::size_t frames_per_turn = 16;
};

struct SessionStats {
  std::uint64_t frames_in = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  std::uint64_t flushes = 0;  // batches handed to the transport
  std::uint64_t pings_answered = 0;
  std::array<std::uint64_t, kPriorityClasses> chunks_out{};  // DATA frames sent, per class
  std::array<std::uint64_t, kPriorityClasses> chunks_in{};   // DATA frames received, per class
  std::uint64_t send_buffered = 0;      // bytes accepted by send() and not yet framed, now
  std::uint64_t send_buffered_max = 0;  // the highest send_buffered has been
  std::uint64_t credit_stalls = 0;      // times a stream had data but no credit
  std::uint64_t bulk_held = 0;  // times stream/bulk chunks waited for bulk_high_water
  std::uint64_t streams_opened = 0;
  std::uint64_t turns_yielded = 0;  // reads split by frames_per_turn
};

class Session final : public transport::ConnectionHandler, public std::enable_shared_from_this<Session> {
 public:
  enum class Role { kServer, kClient };

  // `config` and `handler` must outlive the session.
  static std::shared_ptr<Session> server(transport::ConnectionPtr conn, const wire::ServerHandshakeConfig& config,
                                         std::uint64_t connection_id, const SessionOptions& options,
                                         SessionHandler* handler);
  static std::shared_ptr<Session> client(transport::ConnectionPtr conn, const wire::ClientHandshakeConfig& config,
                                         const SessionOptions& options, SessionHandler* handler);
  ~Session() override;

  // Sends the client's HELLO (client role) and starts reading. From here until on_closed the
  // session keeps itself alive: the transport may call it whatever its owner does.
  void start();
  // Replaces the handler (e.g. with null_handler() when the owner goes away first).
  void set_handler(SessionHandler* handler) { handler_ = handler; }
  // A handler that refuses streams and ignores everything.
  static SessionHandler* null_handler();

  bool ready() const { return ready_; }
  bool closed() const { return closed_; }
  bool going_away() const { return going_away_ || peer_going_away_; }
  Role role() const { return role_; }
  // Valid once ready().
  const wire::Negotiated& negotiated() const { return negotiated_; }
  transport::Connection& connection() { return *conn_; }
  const SessionOptions& options() const { return options_; }

  // Opens a stream in `priority`; `handler` must live until on_reset or the session closes.
  // kFailedPrecondition before ready(), kDisconnected once closing or going away,
  // kOverloaded at max_streams.
  Result<std::uint64_t> open_stream(Priority priority, StreamHandler* handler);
  // RPC caller: opens an interactive stream with `call` (its stream_id is filled in) as its first
  // frame; the stream's DATA then carries no OPEN. Errors as open_stream().
  Result<std::uint64_t> open_call(wire::Call call, StreamHandler* handler);
  // RPC callee: queues TRAILERS after the stream's queued messages; once it is sent the stream
  // is closed on this side (later DATA from the caller is discarded). kNotFound, as send().
  Status send_trailers(std::uint64_t stream, StatusCode code, std::string message,
                       std::vector<std::pair<std::string, std::string>> metadata);
  // Forgets a stream without a frame to the peer and without on_reset (after CANCEL, or the
  // caller's side of received TRAILERS).
  void close_stream(std::uint64_t stream);
  // The stream's handler is going away: what the stream still has queued (TRAILERS) is sent,
  // and whatever arrives for it later is discarded instead of reaching the handler.
  void detach_stream(std::uint64_t stream);
  // Queues one message; `end` also ends our side of the stream. kNotFound for an unknown
  // stream, kFailedPrecondition after our side ended, kOverloaded past a send bound.
  Status send(std::uint64_t stream, Chain message, bool end = false);
  // Ends our side of the stream (after what is queued).
  Status end_stream(std::uint64_t stream);
  // Abandons a stream in both directions: queued data is dropped, the peer gets RESET.
  void reset_stream(std::uint64_t stream, const Status& reason);
  // Stops delivering messages of a stream and returning its credit; resume delivers what
  // arrived meanwhile.
  void pause_stream(std::uint64_t stream);
  void resume_stream(std::uint64_t stream);
  // Bytes queued on a stream and not yet framed (0 for unknown streams).
  std::size_t stream_buffered(std::uint64_t stream) const;
  // The stream's handler gets on_writable once the stream's send buffer holds at most
  // `at_most` bytes (posted at once if it already does). For writers that wait for room instead
  // of being refused.
  void watch_writable(std::uint64_t stream, std::size_t at_most);
  std::size_t open_streams() const { return streams_.size(); }
  // Bytes the peer has not taken: stream buffers and what the kernel would not accept yet.
  // What a slow consumer is measured by. Frames encoded in the current loop turn do not count:
  // they leave at the end of the turn, and a fast reader would look slow for a burst.
  std::size_t pending_out_bytes() const { return stats_.send_buffered + conn_->queued_bytes(); }

  // Queues a frame outside the stream layer (pub/sub, RPC control); ignored before ready() or
  // after close. It leaves with the next batch, ahead of queued stream data.
  template <typename F>
  void send_frame(const F& frame) {
    if (!ready_ || closed_) return;
    encoder_.add(frame);
    flush_soon();
  }

  // send_frame(wire::Msg{...}) from the message's parts, without building the Msg.
  void send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                const wire::Metadata& headers, const Slice& payload) {
    if (!ready_ || closed_) return;
    encoder_.add_msg(sid, subject, reply, has_headers, headers, payload);
    flush_soon();
  }

  // Sends PING; on_pong reports the round trip.
  void ping();
  // Announces shutdown (GOAWAY with `reason`): no new streams; closes once streams in flight
  // finish or drain_timeout passes.
  void go_away(const Status& reason);
  // Sends ERROR on stream 0 with `reason`, then closes.
  void fail(const Status& reason);
  // Closes without a word.
  void abort(const Status& reason);

  const SessionStats& stats() const { return stats_; }
  // Compression counters (empty before ready()).
  compress::CompressStats compress_stats() const { return compressor_ ? compressor_->stats() : compress::CompressStats{}; }

  // transport::ConnectionHandler
  void on_bytes(Slice bytes) override;
  void on_closed(Status reason) override;
  void on_send_drained() override;

 private:
  struct OutTrailers {
    StatusCode code = StatusCode::kOk;
    std::string message;
    std::vector<std::pair<std::string, std::string>> metadata;
  };
  struct OutMessage {
    Chain bytes;
    wire::Codec codec = wire::Codec::kNone;
    bool end = false;
    std::unique_ptr<OutTrailers> trailers;  // an RPC callee's last frame instead of DATA
  };
  // A stream's state apart from its queues: reset in one assignment when the object of a closed
  // stream is reused.
  struct StreamState {
    std::uint64_t id = 0;
    Priority priority = Priority::kStream;
    StreamHandler* handler = nullptr;
    // Sending.
    std::size_t out_bytes = 0;
    std::int64_t send_window = 0;
    bool open_sent = false;  // our first DATA carried OPEN
    bool local_ended = false;  // end queued
    bool end_sent = false;
    bool queued = false;     // in a ready ring
    bool overloaded = false;  // a send() was refused, or watch_writable(): tell on_writable when it drains
    std::size_t writable_at = 0;  // ... to this many bytes
    bool trailers_sent = false;  // RPC callee: our last frame left; the stream is done
    // Receiving.
    Chain partial;
    wire::Codec partial_codec = wire::Codec::kNone;
    bool remote_ended = false;
    bool paused = false;
    std::uint64_t unacked = 0;  // bytes taken by the application, not yet credited back
    std::uint64_t held = 0;     // bytes received while paused: credited on resume
    std::int64_t recv_window = 0;
  };
  struct Stream : StreamState {
    std::deque<OutMessage> out;  // messages to send
    std::deque<Chain> inbox;     // complete messages held while paused
  };
  // Objects of closed streams kept for new ones: a std::deque allocates when it is made, so a
  // new Stream costs five allocations, and every RPC opens a stream. Bounded by kSpareStreams:
  // as many as a busy client keeps in flight (gRPC's default limit of concurrent streams is
  // 100), so that a steady load of calls allocates no Stream; a session keeps this many only
  // once it had that many streams open at once.
  static constexpr std::size_t kSpareStreams = 128;

  Session(Role role, transport::ConnectionPtr conn, const SessionOptions& options, SessionHandler* handler);

  void handshake_bytes(Slice bytes);
  // Server side, with authenticate_async: hands HELLO's credentials to the hook; the verdict
  // comes back on this loop through on_auth_verdict().
  void start_authentication();
  void on_auth_verdict(wire::AuthVerdict verdict);
  void become_ready(const wire::Negotiated& n, wire::FrameDecoder&& decoder);
  void process_frames();
  Status handle(wire::Frame& f);
  Status on_data(wire::Frame& f);
  Status on_call_frame(const wire::Frame& f);
  Status on_credit(const wire::Credit& c);
  void on_peer_reset(std::uint64_t id, const Status& reason);
  void deliver(Stream& s, Chain message);
  // The application took n bytes of stream s: credit them back (in batches).
  void credit_back(Stream& s, std::uint64_t n);
  void credit_connection(std::uint64_t n);
  Stream* find(std::uint64_t id);
  Stream& add_stream(std::uint64_t id, Priority priority, StreamHandler* handler);
  void remove_stream(std::uint64_t id, const Status* reset_reason);
  void maybe_remove(Stream& s);
  void make_ready(Stream& s);
  bool local_stream(std::uint64_t id) const { return (id & 1) == (role_ == Role::kClient ? 1u : 0u); }
  void pump();
  bool emit_chunk(Stream& s);
  // What stream and bulk chunks may fill the transport up to now: bulk_high_water while
  // interactive traffic is active, send_high_water otherwise.
  std::size_t bulk_limit();
  void flush_soon();
  void flush();
  void arm_heartbeat();
  void on_heartbeat();
  void maybe_finish_drain();
  void close_all_streams(const Status& reason);

  Role role_;
  transport::ConnectionPtr conn_;
  SessionOptions options_;
  SessionHandler* handler_;
  std::optional<wire::ServerHandshake> server_hs_;
  std::optional<wire::ClientHandshake> client_hs_;
  std::optional<wire::FrameDecoder> decoder_;
  wire::FrameEncoder encoder_;
  wire::Negotiated negotiated_;
  std::optional<compress::Compressor> compressor_;
  std::optional<compress::Decompressor> decompressor_;
  boost::asio::steady_timer handshake_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer drain_timer_;

  std::unordered_map<std::uint64_t, std::unique_ptr<Stream>> streams_;
  std::vector<std::unique_ptr<Stream>> spare_streams_;  // emptied, at most kSpareStreams
  std::array<std::deque<std::uint64_t>, kPriorityClasses> sendable_;  // streams with data to send
  std::array<std::uint32_t, kPriorityClasses> round_{};            // picks left this round
  std::uint64_t next_stream_id_ = 0;
  std::uint64_t last_peer_stream_ = 0;  // highest stream id the peer opened
  std::int64_t conn_send_window_ = 0;
  std::int64_t conn_recv_window_ = 0;
  std::uint64_t conn_unacked_ = 0;
  std::size_t chunk_size_ = 0;
  std::int64_t last_rx_ns_ = 0;
  std::int64_t last_interactive_ns_ = 0;  // last control/interactive DATA frame, either way
  std::int64_t interactive_hold_ns_ = 0;
  // An interactive chunk left since the clock was last read for the bulk limit: it counts as
  // sent at the next read (a clock read is ~250 ns on these VMs, more than framing the chunk,
  // so a call does not pay one per chunk; bulk may be held back up to that much longer).
  bool interactive_unstamped_ = false;

  bool ready_ = false;
  bool closed_ = false;
  bool flush_posted_ = false;
  bool resume_posted_ = false;  // process_frames continues on a later turn (frames_per_turn)
  bool going_away_ = false;       // we sent GOAWAY
  bool peer_going_away_ = false;  // we received GOAWAY
  bool in_pump_ = false;
  bool auth_started_ = false;    // the async credential check was handed off
  bool reading_paused_ = false;  // by us, while pipelined bytes wait for the credential check
  // Expires when the session closes: a credential check still queued for it is skipped.
  std::shared_ptr<const void> auth_alive_;
  SessionStats stats_;
  std::shared_ptr<Session> self_;  // set from start() to on_closed()
  Status close_reason_;            // set by fail() and abort()
};

}  // namespace slip::session
