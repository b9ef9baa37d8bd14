// What a caller sees of an RPC client, whatever carries the call: the options and callbacks of a
// call, the handle of a call in progress, and the interface every client channel implements
// (Channel to one server, BalancedChannel over several). Blocking calls and the typed stubs
// (rpc/blocking.h, rpc/typed.h, the generated code) take a ChannelInterface.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rpc/common.h"
#include "slipstream/buffer.h"

namespace slip::io {
class EventLoop;
}

namespace slip::rpc {

struct CallOptions {
  // Time allowed for the call; zero: none (unless `deadline` is set).
  std::chrono::microseconds timeout{0};
  // An absolute deadline; the earlier of the two applies.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  Metadata metadata;
  // The call may run more than once on the server without harm: a channel over several
  // endpoints may hedge it (send it to a second endpoint while the first is slow). Methods can
  // also be declared idempotent in BalancedChannelOptions.
  bool idempotent = false;

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
  // Instead of on_message when set: each message as it was received, without the copy into a
  // std::string (no copy at all when it arrived in one piece). The Slice holds a reference to
  // the receive buffer it lies in: parse it, or copy what must stay, rather than keeping it.
  std::function<void(Slice message)> on_message_bytes;
  std::function<void(const Status& status, const Metadata& trailers)> on_done;
};

// A call in progress. Any thread. A call must not be used after its channel is destroyed.
class Call {
 public:
  virtual ~Call() = default;
  // Sends a request message; ignored after writes_done() or once the call ended.
  virtual void write(std::string message) = 0;
  // Ends the requests (END_STREAM).
  virtual void writes_done() = 0;
  // Gives up: the server gets CANCEL and on_done gets CANCELLED.
  virtual void cancel() = 0;
  // Flow control for a reader that falls behind: while paused, response messages stay in the
  // session and no credit goes back, so the server's writer is held back (see
  // ServerCall::write_wait). Any thread; it takes effect on the loop a little later, and the
  // last request made wins. Never calls back into the caller. Channels that cannot pause a
  // call ignore it.
  virtual void set_read_paused(bool /*paused*/) {}
};

using CallPtr = std::shared_ptr<Call>;

// A client channel: starts calls. Any thread, except that blocking calls made over it must not
// run on the channel's own loop (inside a callback).
class ChannelInterface {
 public:
  virtual ~ChannelInterface() = default;
  // Starts a call; `requests` are sent first and `half_close` ends the requests after them
  // (a unary call passes its request and true).
  virtual CallPtr start_call(std::string method, CallOptions options, CallCallbacks callbacks,
                             std::vector<std::string> requests = {}, bool half_close = false) = 0;
  // The loop a blocking call may borrow while it waits, so that the calling thread itself sends
  // the request and is woken by the response (io::EventLoop::borrow), or null: the call then
  // waits for the callbacks the channel's loop runs.
  virtual io::EventLoop* lendable_loop() { return nullptr; }
  // Asked by a borrower of lendable_loop() before it gives the loop back: whether calls are
  // still in flight on it (the loop's own thread then takes over at once).
  virtual bool loop_busy() { return true; }
};

}  // namespace slip::rpc
