// Blocking calls over any channel (ChannelInterface): the calling thread waits (never call
// these on the channel's own loop). Byte strings in and out; rpc/typed.h adds message types on
// top.
//
// While it waits, a blocking call runs the channel's loop itself when the channel lends it
// (ChannelInterface::lendable_loop; a Channel with a loop of its own does by default) and no
// other thread has borrowed it: no hand-off to the loop's thread and back. Otherwise it sleeps
// until the loop's callbacks wake it. A reader that falls more than kReadAhead bytes behind
// pauses its call (Call::set_read_paused), so that a fast server waits instead of filling memory.
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

  // Response bytes received and not yet read past which the call stops taking more.
  static constexpr std::size_t kReadAhead = 1u << 20;

 private:
  struct State {
    mutable std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> messages;
    std::size_t buffered = 0;  // bytes in messages
    bool paused = false;       // set_read_paused(true) was asked for
    bool discard = false;      // finish() is waiting: messages are dropped
    Metadata headers;
    Metadata trailers;
    Status status;
    bool done = false;
  };
  // Waits until ready() (called with state_->mu held) holds.
  template <typename Pred>
  void wait(Pred ready);
  void resume_if_drained();

  ChannelInterface* channel_;
  std::shared_ptr<State> state_;
  CallPtr call_;
};

// One request, one response.
Result<std::string> call_unary(ChannelInterface& channel, std::string method, std::string request,
                               const CallOptions& options = {}, Metadata* trailers = nullptr);

}  // namespace slip::rpc
