// RPC client: a Channel to one server, and the calls made on it (docs/rpc.md).
//
// A Channel owns one event-loop thread and one reconnecting session (session::Client). Calls
// started before the session is ready wait for it, bounded by their deadline. Every call is an
// interactive stream opened with CALL; its deadline is sent with it and enforced here too: when
// it passes, the call ends with DEADLINE_EXCEEDED and the server gets CANCEL.
//
// Threading: Channel and ClientCall methods may be called from any thread; callbacks run on the
// channel's loop and must not block.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/loop_group.h"
#include "rpc/common.h"
#include "session/client.h"

namespace slip::rpc {

struct CallOptions {
  // Time allowed for the call; zero: none (unless `deadline` is set).
  std::chrono::microseconds timeout{0};
  // An absolute deadline; the earlier of the two applies.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  Metadata metadata;

  std::chrono::steady_clock::time_point effective_deadline(std::chrono::steady_clock::time_point now) const {
    auto d = deadline;
    if (timeout.count() > 0) d = std::min(d, now + timeout);
    return d;
  }
};

// What a call reports; all run on the channel's loop. on_done runs exactly once, last.
struct CallCallbacks {
  std::function<void(const Metadata& headers)> on_headers;
  std::function<void(std::string message)> on_message;
  std::function<void(const Status& status, const Metadata& trailers)> on_done;
};

class Channel;

class ClientCall final : public session::StreamHandler, public std::enable_shared_from_this<ClientCall> {
 public:
  ClientCall(Channel& channel, std::string method, CallOptions options, CallCallbacks callbacks);
  ~ClientCall() override;

  // Sends a request message; ignored after writes_done() or once the call ended.
  void write(std::string message);
  // Ends the requests (END_STREAM).
  void writes_done();
  // Gives up: the server gets CANCEL and on_done gets CANCELLED.
  void cancel();

  // session::StreamHandler (on the loop)
  void on_message(session::Session& s, std::uint64_t stream, Chain message) override;
  void on_reset(session::Session& s, std::uint64_t stream, const Status& reason) override;

 private:
  friend class Channel;
  void begin();
  void open(session::Session& s);
  void complete(const Status& status, const Metadata& trailers);
  void give_up(StatusCode code, const std::string& why);

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
};

using ClientCallPtr = std::shared_ptr<ClientCall>;

struct ChannelOptions {
  io::LoopOptions loop{};
  transport::TcpOptions tcp;
  wire::ClientHandshakeConfig handshake;
  session::SessionOptions session;
  session::ReconnectPolicy reconnect;
};

class Channel final : public session::SessionHandler {
 public:
  // `address` is "host:port". Connects at once, in the background.
  explicit Channel(std::string address, ChannelOptions options = {});
  ~Channel() override;  // ends calls in flight with CANCELLED

  // Starts a call; `requests` are sent first and `half_close` ends the requests after them
  // (a unary call passes its request and true). Any thread.
  ClientCallPtr start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                           std::vector<std::string> requests = {}, bool half_close = false);

  const std::string& address() const { return address_; }
  io::EventLoop& loop() { return loops_.loop(0); }
  // Calls whose stream is open now (loop thread only).
  std::size_t open_calls() const { return calls_.size(); }

  // session::SessionHandler (on the loop)
  void on_ready(session::Session& s) override;
  Status on_frame(session::Session& s, const wire::Frame& f) override;
  void on_closed(session::Session& s, const Status& reason) override;

 private:
  friend class ClientCall;

  std::string address_;
  ChannelOptions options_;
  io::LoopGroup loops_;
  std::unique_ptr<session::Client> client_;
  std::unordered_map<std::uint64_t, ClientCallPtr> calls_;  // by stream id
  std::vector<ClientCallPtr> waiting_;  // started before the session was ready
  bool closing_ = false;
};

}  // namespace slip::rpc
