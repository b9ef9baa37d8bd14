// Client: a session to one server that reconnects by itself.
//
// When the connection fails or the server goes away, the client waits and dials again, with
// exponential backoff and jitter so that a thousand clients of a restarted server do not all
// return in the same millisecond. Streams do not survive a reconnect: their handlers get
// on_reset, and the application opens new ones on the next on_ready.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>

#include "session/session.h"
#include "transport/address.h"
#include "transport/tcp/tcp.h"
#include "transport/udp/udp.h"

namespace slip::session {

struct ReconnectPolicy {
  bool enabled = true;
  std::chrono::milliseconds initial{50};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
  // Delay d becomes uniform in [d/2, d].
  bool jitter = true;
  // Give up after this many failed attempts in a row; 0 never gives up.
  std::uint32_t max_attempts = 0;
};

// The wait before reconnect attempt `attempt` (0 for the first retry).
std::chrono::milliseconds backoff_delay(const ReconnectPolicy& p, std::uint32_t attempt, std::mt19937_64& rng);

// Opens a transport connection; the default dials TCP.
using Dialer = std::function<void(io::EventLoop&, transport::ConnectHandler)>;
Dialer tcp_dialer(transport::HostPort address, transport::TcpOptions options = {});
// Dials encrypted reliable UDP (transport/udp/udp.h); options.server_key must be pinned.
Dialer udp_dialer(transport::HostPort address, transport::udp::UdpOptions options);
// Picks the transport by the address: "udp://HOST:PORT" dials UDP with `udp` (whose server_key
// must be set), "HOST:PORT" dials TCP with `tcp`. kInvalidArgument for a malformed address or
// a udp:// address without a pinned key.
Result<Dialer> dialer_for(std::string_view address, const transport::TcpOptions& tcp = {},
                          const transport::udp::UdpOptions& udp = {});

struct ClientOptions {
  Dialer dial;
  wire::ClientHandshakeConfig handshake;
  SessionOptions session;
  ReconnectPolicy reconnect;
  // Told (on the loop) when a dial fails, before the retry is scheduled; may be empty. A session
  // that fails after the dial is reported by on_closed instead.
  std::function<void(const Status&)> on_dial_failed;
};

class Client final : public SessionHandler {
 public:
  // `loop` and `handler` must outlive the client. Call every method on the loop's thread.
  Client(io::EventLoop& loop, ClientOptions options, SessionHandler* handler);
  ~Client() override;

  // Dials; on_ready follows each successful handshake.
  void start();
  // Closes the session (GOAWAY) and stops reconnecting.
  void stop();

  // The current session: null while disconnected; check ready() before use.
  Session* session() { return session_.get(); }
  std::uint64_t connects() const { return connects_; }  // handshakes completed
  std::uint64_t attempts() const { return attempts_; }  // dials started
  // Why the client stopped trying (max_attempts reached), or OK.
  const Status& gave_up() const { return gave_up_; }

  // SessionHandler: forwarded to the application's handler.
  void on_ready(Session& s) override;
  StreamHandler* on_stream_open(Session& s, std::uint64_t stream, Priority p) override;
  Status on_frame(Session& s, const wire::Frame& f) override;
  void on_pong(Session& s, std::int64_t rtt_ns) override;
  void on_closed(Session& s, const Status& reason) override;

 private:
  void dial();
  void schedule_retry(const Status& why);

  io::EventLoop& loop_;
  ClientOptions options_;
  SessionHandler* handler_;
  std::shared_ptr<Session> session_;
  boost::asio::steady_timer retry_timer_;
  std::mt19937_64 rng_;
  std::uint32_t failures_ = 0;  // in a row
  std::uint64_t connects_ = 0;
  std::uint64_t attempts_ = 0;
  bool stopped_ = false;
  Status gave_up_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slip::session
