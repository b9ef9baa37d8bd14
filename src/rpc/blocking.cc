#include "rpc/blocking.h"

#include "io/event_loop.h"

namespace slip::rpc {

namespace {
// Borrows the channel's loop for the calling thread, when the channel lends it, until destroyed.
class LoopLoan {
 public:
  explicit LoopLoan(ChannelInterface& channel) : channel_(channel), loop_(channel.lendable_loop()) {
    if (loop_ != nullptr && !loop_->borrow()) loop_ = nullptr;
  }
  ~LoopLoan() {
    if (loop_ != nullptr) loop_->give_back([this] { return channel_.loop_busy(); });
  }
  LoopLoan(const LoopLoan&) = delete;
  LoopLoan& operator=(const LoopLoan&) = delete;

 private:
  ChannelInterface& channel_;
  io::EventLoop* loop_;
};
}  // namespace

BlockingCall::BlockingCall(ChannelInterface& channel, std::string method, CallOptions options,
                           std::vector<std::string> requests, bool half_close)
    : channel_(&channel), state_(std::make_shared<State>()) {
  // The callbacks run on the loop, which may be this thread (a borrowed loop).
  CallCallbacks cb;
  cb.on_headers = [st = state_](const Metadata& h) {
    std::lock_guard lock(st->mu);
    st->headers = h;
  };
  auto pause = std::make_shared<std::weak_ptr<Call>>();
  // Pausing and resuming are asked for under the state's lock, so that the call is told them in
  // the order `paused` took them (a pause told after a resume would stop the call for good).
  cb.on_message = [st = state_, pause](std::string m) {
    std::shared_ptr<Call> c;  // released after the lock
    std::lock_guard lock(st->mu);
    if (st->discard) return;
    st->buffered += m.size();
    st->messages.push_back(std::move(m));
    if (!st->paused && st->buffered > kReadAhead) {
      st->paused = true;
      c = pause->lock();
      if (c) c->set_read_paused(true);
    }
    st->cv.notify_all();
  };
  cb.on_done = [st = state_](const Status& s, const Metadata& trailers) {
    std::lock_guard lock(st->mu);
    st->status = s;
    st->trailers = trailers;
    st->done = true;
    st->cv.notify_all();
  };
  call_ = channel.start_call(std::move(method), std::move(options), std::move(cb), std::move(requests), half_close);
  // Under the lock, as the loop reads `pause` there; a pause decided before the call was known
  // here is passed on now.
  std::lock_guard lock(state_->mu);
  *pause = call_;
  if (state_->paused) call_->set_read_paused(true);
}

BlockingCall::~BlockingCall() {
  if (!done()) call_->cancel();
}

template <typename Pred>
void BlockingCall::wait(Pred ready) {
  std::unique_lock lock(state_->mu);
  if (ready()) return;
  if (io::EventLoop* loop = channel_->lendable_loop()) {
    lock.unlock();
    auto check = [&] {
      std::lock_guard g(state_->mu);
      return ready();
    };
    if (loop->borrowed_here()) {
      loop->run_until(check);
    } else if (loop->borrow()) {
      loop->run_until(check);
      loop->give_back([this] { return channel_->loop_busy(); });
    }
    lock.lock();
  }
  state_->cv.wait(lock, ready);
}

bool BlockingCall::done() const {
  std::lock_guard lock(state_->mu);
  return state_->done;
}

bool BlockingCall::write(std::string message) {
  if (done()) return false;
  call_->write(std::move(message));
  return true;
}

void BlockingCall::writes_done() { call_->writes_done(); }

void BlockingCall::resume_if_drained() {
  std::lock_guard lock(state_->mu);
  if (state_->paused && state_->buffered <= kReadAhead / 2) {
    state_->paused = false;
    call_->set_read_paused(false);
  }
}

bool BlockingCall::read(std::string* out) {
  wait([&] { return !state_->messages.empty() || state_->done; });
  {
    std::lock_guard lock(state_->mu);
    if (state_->messages.empty()) return false;
    *out = std::move(state_->messages.front());
    state_->messages.pop_front();
    state_->buffered -= out->size();
  }
  resume_if_drained();
  return true;
}

Status BlockingCall::finish() {
  {
    std::lock_guard lock(state_->mu);
    state_->discard = true;
    state_->messages.clear();
    state_->buffered = 0;
  }
  resume_if_drained();
  wait([&] { return state_->done; });
  std::lock_guard lock(state_->mu);
  return state_->status;
}

void BlockingCall::cancel() { call_->cancel(); }

Metadata BlockingCall::headers() const {
  std::lock_guard lock(state_->mu);
  return state_->headers;
}

Result<std::string> call_unary(ChannelInterface& channel, std::string method, std::string request,
                               const CallOptions& options, Metadata* trailers) {
  // The whole call on a borrowed loop, when it can be had: the request is sent and the response
  // read on this thread.
  LoopLoan loan(channel);
  std::vector<std::string> reqs;
  reqs.push_back(std::move(request));
  BlockingCall call(channel, std::move(method), options, std::move(reqs), true);
  std::string response;
  const bool got = call.read(&response);
  Status s = call.finish();
  if (trailers != nullptr) *trailers = call.trailers();
  if (!s.is_ok()) return s;
  if (!got) return internal_error("the server finished a unary call without a response");
  return response;
}

}  // namespace slip::rpc
