// RPC client: a Channel to one server, and the calls made on it (docs/rpc.md).
//
// A Channel owns one event-loop thread (or runs on one it is given) and one reconnecting session
// (session::Client). Calls started before the session is ready wait for it, bounded by their
// deadline (or, without wait_for_ready, fail fast once the server could not be reached). Every call is an
// interactive stream opened with CALL; its deadline is sent with it and enforced here too: when
// it passes, the call ends with DEADLINE_EXCEEDED and the server gets CANCEL.
//
// Threading: Channel and ClientCall methods may be called from any thread; callbacks run on the
// channel's loop and must not block.
#pragma once

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/loop_group.h"
#include "rpc/call.h"
#include "rpc/common.h"
#include "session/client.h"

namespace slip::rpc {

class Channel;

class ClientCall final : public Call, public session::StreamHandler, public std::enable_shared_from_this<ClientCall> {
 public:
  ClientCall(Channel& channel, std::string method, CallOptions options, CallCallbacks callbacks);
  ~ClientCall() override;

  // Call
  void write(std::string message) override;
  void writes_done() override;
  void cancel() override;
  void set_read_paused(bool paused) override;

  // session::StreamHandler (on the loop)
  void on_message(session::Session& s, std::uint64_t stream, Chain message) override;
  void on_reset(session::Session& s, std::uint64_t stream, const Status& reason) override;

 private:
  friend class Channel;
  void begin();
  void open(session::Session& s);
  void complete(const Status& status, const Metadata& trailers);
  void give_up(StatusCode code, const std::string& why);
  void apply_read_paused();

  Channel& channel_;
  std::string method_;
  CallOptions options_;
  CallCallbacks callbacks_;
  std::chrono::steady_clock::time_point deadline_;
  boost::asio::steady_timer timer_;
  std::weak_ptr<session::Session> session_;
  std::uint64_t stream_ = 0;
  std::vector<std::string> unsent_;  // written before the stream opened
  bool half_close_ = false;
  bool done_ = false;
  bool read_paused_ = false;  // what the session was last told (on the loop)
  // What set_read_paused() last asked for. The posted step applies whatever was asked last, so
  // requests from different threads cannot land in the wrong order (a resume overtaken by an
  // older pause would leave the call paused for good).
  std::atomic<bool> want_read_paused_{false};
  // TRAILERS that arrived while reading was paused: the call ends once the messages the session
  // holds for it have been delivered.
  std::optional<std::pair<Status, Metadata>> pending_end_;
};

using ClientCallPtr = std::shared_ptr<ClientCall>;

struct ChannelOptions {
  io::LoopOptions loop{};
  transport::TcpOptions tcp;
  // For "udp://HOST:PORT" addresses: udp.server_key must be the server's pinned public key.
  transport::udp::UdpOptions udp;
  wire::ClientHandshakeConfig handshake;
  session::SessionOptions session;
  session::ReconnectPolicy reconnect;
  // True: calls started while the server cannot be reached wait for the connection (bounded by
  // their deadline). False: once a dial or the session failed, calls end at once with
  // UNAVAILABLE until the channel is connected again (calls started before the first attempt
  // ended still wait for it); what a channel over several endpoints wants, so that it can try
  // another one.
  bool wait_for_ready = true;
  // Blocking calls (rpc/blocking.h, the generated stubs) run the channel's loop on the calling
  // thread while they wait, when no other thread is doing so: the request leaves from the
  // caller's thread and the response wakes it, without a hand-off to and from the loop's
  // thread (docs/rpc.md, "Blocking calls"). Only on a loop of the channel's own.
  bool lend_loop = true;
};

// Where a channel's connection stands (gRPC's connectivity states, without IDLE).
enum class ConnectivityState : std::uint8_t {
  kConnecting,        // no session yet, and no failure since the last ready one
  kReady,             // a session that accepts calls
  kTransientFailure,  // the last dial or session failed (or the server is going away); retrying
};

class Channel final : public ChannelInterface, public session::SessionHandler {
 public:
  // `address` is "host:port" (TCP) or "udp://host:port" (encrypted UDP). Connects at once, in the background, on a loop thread of its own.
  explicit Channel(std::string address, ChannelOptions options = {});
  // The same on `loop`, which must outlive the channel and keep running until the destructor
  // returns (options.loop is then unused). Do not construct or destroy it on `loop`'s thread.
  Channel(std::string address, io::EventLoop& loop, ChannelOptions options = {});
  ~Channel() override;  // ends calls in flight with CANCELLED

  // ChannelInterface. Any thread.
  CallPtr start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                     std::vector<std::string> requests = {}, bool half_close = false) override;
  io::EventLoop* lendable_loop() override;
  bool loop_busy() override { return !calls_.empty() || !waiting_.empty(); }

  const std::string& address() const { return address_; }
  io::EventLoop& loop() { return *loop_; }
  // Calls whose stream is open now (loop thread only).
  std::size_t open_calls() const { return calls_.size(); }
  // Loop thread only.
  ConnectivityState state() const;
  // Why the last dial or session failed (loop thread only).
  const Status& last_error() const { return last_error_; }

  // session::SessionHandler (on the loop)
  void on_ready(session::Session& s) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_closed(session::Session& s, const Status& reason) override;

 private:
  friend class ClientCall;
  void connect();
  void on_connect_failed(const Status& why);
  // UNAVAILABLE, naming the server and the last error.
  Status not_connected_status() const;
  // wait_for_ready == false: ends the calls waiting for a connection.
  void fail_waiting();

  std::string address_;
  ChannelOptions options_;
  std::unique_ptr<io::LoopGroup> own_loops_;  // null on a loop given by the caller
  io::EventLoop* loop_;
  std::unique_ptr<session::Client> client_;
  std::unordered_map<std::uint64_t, ClientCallPtr> calls_;  // by stream id
  std::vector<ClientCallPtr> waiting_;  // started before the session was ready
  bool failed_ = false;  // the last dial or session failed (since the last ready session)
  Status last_error_;
  bool closing_ = false;
};

}  // namespace slip::rpc
