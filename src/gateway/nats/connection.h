// One NATS client connection, mapped onto the broker: PUB/HPUB become BrokerClient::publish,
// SUB/UNSUB subscribe/unsubscribe, and deliveries come back as MSG/HMSG.
//
// Output: MSG/HMSG lines (and small payloads) are written into one block per connection and
// handed to the transport once per loop turn, so a burst of deliveries costs one writev, not
// one syscall per message. Payloads above kCopyThreshold go out as references to the
// publisher's bytes.
//
// Headers: a NATS header block ("NATS/1.0[ CODE[ TEXT]]\r\nK: V\r\n...\r\n") is carried through
// the broker as wire::Metadata; the status line's code becomes the ":status" header and its text
// ":description", which is how native clients see the broker's no-responders answer (":status"
// = "503") too. The reverse mapping builds the header block for NATS receivers that announced
// headers support; others get the body only, and a no-responders answer only reaches a client
// that asked for it (headers and no_responders in CONNECT), as with nats-server.
//
// Threading: everything runs on the connection's loop. Lifetime: owned by a shared_ptr (the
// server's); callbacks posted to the loop hold a reference.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "broker/broker.h"
#include "gateway/nats/parser.h"
#include "transport/transport.h"

namespace slip::gateway::nats {

// Decides whether CONNECT's credentials admit the client; returns the name it is known by (for
// logs), or any failure for "Authorization Violation". Fields the client did not send are empty.
// Checks CONNECT's credentials; the identity's permissions then apply to the connection.
using Authenticator = std::function<Result<broker::Identity>(std::string_view token, std::string_view user,
                                                             std::string_view password)>;
// Receives the verdict of an AsyncAuthenticator; may be called from any thread.
using AuthDone = std::function<void(Result<broker::Identity>)>;
// Checks CONNECT's credentials without blocking the loop: returns the verdict at once when it is
// cheap, or nullopt after keeping `done`, which it calls once later from any thread (or drops
// uncalled once `alive` has expired or the server stops). kOverloaded means "too busy to check"
// ('Authentication Busy'); any other failure is an 'Authorization Violation'.
using AsyncAuthenticator =
    std::function<std::optional<Result<broker::Identity>>(std::string_view token, std::string_view user,
                                                          std::string_view password, std::weak_ptr<const void> alive,
                                                          AuthDone done)>;

struct GatewayOptions {
  std::size_t max_control_line = 4096;
  // The server PINGs a client this often; after max_pings_out PINGs without a PONG the client is
  // cut off with 'Stale Connection'. 0: never.
  std::chrono::milliseconds ping_interval{120000};
  int max_pings_out = 2;
  // With an authenticator, CONNECT must come within this time ('Authorization Timeout').
  std::chrono::milliseconds auth_timeout{2000};
  std::string server_id = "SLIPSTREAM";
  std::string server_name = "slipd";
  std::string host = "0.0.0.0";  // INFO "host"/"port": where clients reached us
  int port = 4222;
  // When set, CONNECT must carry credentials it accepts (INFO says auth_required).
  Authenticator authenticate;
  // The same, asynchronously; used instead of `authenticate` when set. While CONNECT's
  // credentials are being checked, what the client sends after CONNECT is kept (up to
  // max_pipelined_bytes, then reading pauses) and processed, in order, once they are accepted.
  AsyncAuthenticator authenticate_async;
  std::size_t max_pipelined_bytes = 64 * 1024;

  bool auth_required() const { return static_cast<bool>(authenticate) || static_cast<bool>(authenticate_async); }
};

class NatsConnection final : public transport::ConnectionHandler,
                             public broker::ClientConnection,
                             public std::enable_shared_from_this<NatsConnection> {
 public:
  // Its broker state (identity and permissions, subscriptions); null before start().
  broker::BrokerClient* broker_client() { return client_.get(); }
  // `on_gone` runs (posted to the loop) once the connection has closed.
  NatsConnection(broker::Broker& broker, transport::ConnectionPtr conn, const GatewayOptions& options,
                 std::uint64_t id, std::function<void(NatsConnection&)> on_gone);
  ~NatsConnection() override;

  // Sends INFO and starts reading.
  void start();
  // Closes the connection (graceful shutdown): queued bytes are written first.
  void shutdown();
  std::uint64_t id() const { return id_; }
  // The "name" the client gave in CONNECT (empty before it or when none).
  const std::string& client_name() const { return connect_.name; }

  // transport::ConnectionHandler
  void on_bytes(Slice bytes) override;
  void on_closed(Status reason) override;

  // broker::ClientConnection
  io::EventLoop& loop() override { return conn_->loop(); }
  std::string peer_address() const override { return conn_->peer_address(); }
  bool closed() const override { return closing_; }
  std::size_t pending_out_bytes() const override;
  void send_msg(std::uint64_t sid, std::string_view subject, std::string_view reply, bool has_headers,
                const wire::Metadata& headers, const Slice& payload) override;
  void fail(const Status& reason) override;

  // Payloads up to this size are copied into the output block; larger ones are referenced.
  static constexpr std::size_t kCopyThreshold = 1024;

 private:
  struct OpSink;
  bool handle(const Op& op);
  bool on_connect(const Op& op);
  // CONNECT's verdict: accepts the client (true) or refuses it and closes (false).
  bool finish_connect(Result<broker::Identity> who);
  void on_auth_result(Result<broker::Identity> who);
  // Parses bytes; what follows a CONNECT whose credentials are being checked is kept in held_.
  void parse(const Slice& bytes);
  bool on_pub(const Op& op);
  bool on_sub(const Op& op);
  void ok();
  // Sends -ERR '<text>'; with `close`, then closes (queued bytes are written first).
  void error(std::string_view text, bool close);
  void close_now();

  // Output: `block_` holds bytes from `block_start_` on not yet handed to `chain_`.
  std::uint8_t* reserve(std::size_t n) {
    if (block_ && block_.tailroom() >= n) return block_.tail();
    return grow(n);
  }
  std::uint8_t* grow(std::size_t n);
  void write(std::string_view s);
  void write(const Slice& payload);
  void schedule_flush();
  void flush();

  void arm_ping();
  void on_ping_timer();

  broker::Broker& broker_;
  transport::ConnectionPtr conn_;
  const GatewayOptions& options_;
  const std::uint64_t id_;
  std::function<void(NatsConnection&)> on_gone_;
  Parser parser_;
  std::unique_ptr<broker::BrokerClient> client_;
  ConnectOptions connect_;
  bool connected_ = false;  // CONNECT accepted
  bool authenticating_ = false;  // CONNECT's credentials are being checked
  bool reading_paused_ = false;  // by us, while held_ is over max_pipelined_bytes
  std::deque<Slice> held_;       // bytes received while authenticating_, in order
  std::size_t held_bytes_ = 0;
  // Expires when the connection closes: a credential check still queued for it is skipped.
  std::shared_ptr<const void> auth_alive_;
  bool closing_ = false;
  bool gone_ = false;

  Buffer block_;
  std::size_t block_start_ = 0;
  Chain chain_;
  std::size_t buffered_ = 0;  // bytes in chain_ and block_ not yet handed to the transport
  bool flush_scheduled_ = false;

  boost::asio::steady_timer ping_timer_;
  boost::asio::steady_timer auth_timer_;
  int pings_out_ = 0;
  std::string scratch_;  // header blocks, reused
  // The MSG line of the last message without reply and headers ("MSG <subject> <sid> <size>\r\n"):
  // a stream of messages to one subscription repeats it, so it is built once, not per message.
  std::string line_;
  std::string line_subject_;
  std::uint64_t line_sid_ = 0;
  std::size_t line_size_ = 0;
};

}  // namespace slip::gateway::nats
