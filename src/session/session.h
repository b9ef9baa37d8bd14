// Session: one native-protocol connection after the bytes are framed: the handshake, PING/PONG,
// GOAWAY and ERROR, and everything else handed to a SessionHandler frame by frame.
//
// A Session lives on its connection's loop; every call and callback happens on that thread.
// Frames leave in one batch per loop turn: send() encodes into the session's encoder and the
// transport gathers the batch into one writev.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "transport/transport.h"
#include "wire/encoder.h"
#include "wire/frames.h"
#include "wire/handshake.h"

namespace slip::session {

class Session;

// What a session reports; callbacks run on the session's loop.
class SessionHandler {
 public:
  virtual ~SessionHandler() = default;
  // The handshake finished; frames may flow.
  virtual void on_ready(Session&) {}
  // A frame the session does not handle itself. A failed Status closes the session with an
  // ERROR frame carrying that status.
  virtual Status on_frame(Session&, const wire::Frame&) {
    return unimplemented("this endpoint does not handle these frames");
  }
  // A PONG answering our ping(); rtt_ns measured from when it was sent.
  virtual void on_pong(Session&, std::int64_t /*rtt_ns*/) {}
  // Last callback: why the session ended (OK when we closed it cleanly).
  virtual void on_closed(Session&, const Status&) {}
};

struct SessionOptions {
  wire::WireLimits limits;
  std::chrono::milliseconds handshake_timeout{10000};
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

  // Sends the client's HELLO (client role) and starts reading.
  void start();

  bool ready() const { return ready_; }
  bool closed() const { return closed_; }
  Role role() const { return role_; }
  // Valid once ready().
  const wire::Negotiated& negotiated() const { return negotiated_; }
  transport::Connection& connection() { return *conn_; }

  // Queues a frame; ignored before ready() or after close.
  template <typename F>
  void send(const F& frame) {
    if (!ready_ || closed_) return;
    encoder_.add(frame);
    flush_soon();
  }

  // Sends PING; on_pong reports the round trip.
  void ping();
  // Announces shutdown (GOAWAY with `reason`), then closes once queued bytes are written.
  void go_away(const Status& reason);
  // Sends ERROR on stream 0 with `reason`, then closes.
  void fail(const Status& reason);
  // Closes without a word.
  void abort(const Status& reason);

  struct Stats {
    std::uint64_t frames_in = 0;
    std::uint64_t frames_out_batches = 0;
    std::uint64_t pings_answered = 0;
  };
  const Stats& stats() const { return stats_; }

  // transport::ConnectionHandler
  void on_bytes(Slice bytes) override;
  void on_closed(Status reason) override;

 private:
  Session(Role role, transport::ConnectionPtr conn, const SessionOptions& options, SessionHandler* handler);

  void handshake_bytes(Slice bytes);
  void become_ready(const wire::Negotiated& n, wire::FrameDecoder&& decoder);
  void process_frames();
  Status handle(const wire::Frame& f);
  void flush_soon();
  void flush();

  Role role_;
  transport::ConnectionPtr conn_;
  SessionOptions options_;
  SessionHandler* handler_;
  std::optional<wire::ServerHandshake> server_hs_;
  std::optional<wire::ClientHandshake> client_hs_;
  std::optional<wire::FrameDecoder> decoder_;
  wire::FrameEncoder encoder_;
  wire::Negotiated negotiated_;
  boost::asio::steady_timer handshake_timer_;
  bool ready_ = false;
  bool closed_ = false;
  bool flush_posted_ = false;
  bool closing_after_flush_ = false;
  Stats stats_;
};

}  // namespace slip::session
