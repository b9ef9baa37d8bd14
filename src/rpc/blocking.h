// Blocking calls over any channel (ChannelInterface): the calling thread waits (never call
// these on the channel's own loop). Byte strings in and out; rpc/typed.h adds message types on
// top.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "rpc/channel.h"

namespace slip::rpc {

class BlockingCall {
 public:
  // Starts the call; `requests` and `half_close` as ChannelInterface::start_call.
  BlockingCall(ChannelInterface& channel, std::string method, CallOptions options,
               std::vector<std::string> requests = {}, bool half_close = false);
  ~BlockingCall();  // cancels the call if it has not ended
  BlockingCall(const BlockingCall&) = delete;
  BlockingCall& operator=(const BlockingCall&) = delete;

  // False once the call ended.
  bool write(std::string message);
  void writes_done();
  // The next response message; false when the call ended and none is left.
  bool read(std::string* out);
  // Waits for the end of the call; its status. Unread messages are dropped.
  Status finish();
  void cancel();
  bool done() const;

  // Valid after finish().
  const Metadata& trailers() const { return state_->trailers; }
  // Response headers (empty when the server sent none); after the first read() or finish().
  Metadata headers() const;

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> messages;
    Metadata headers;
    Metadata trailers;
    Status status;
    bool done = false;
  };
  std::shared_ptr<State> state_;
  CallPtr call_;
};

// One request, one response.
Result<std::string> call_unary(ChannelInterface& channel, std::string method, std::string request,
                               const CallOptions& options = {}, Metadata* trailers = nullptr);

}  // namespace slip::rpc
