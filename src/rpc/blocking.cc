#include "rpc/blocking.h"

namespace slip::rpc {

BlockingCall::BlockingCall(ChannelInterface& channel, std::string method, CallOptions options,
                           std::vector<std::string> requests, bool half_close)
    : state_(std::make_shared<State>()) {
  CallCallbacks cb;
  cb.on_headers = [st = state_](const Metadata& h) {
    std::lock_guard lock(st->mu);
    st->headers = h;
  };
  cb.on_message = [st = state_](std::string m) {
    std::lock_guard lock(st->mu);
    st->messages.push_back(std::move(m));
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
}

BlockingCall::~BlockingCall() {
  if (!done()) call_->cancel();
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

bool BlockingCall::read(std::string* out) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [&] { return !state_->messages.empty() || state_->done; });
  if (state_->messages.empty()) return false;
  *out = std::move(state_->messages.front());
  state_->messages.pop_front();
  return true;
}

Status BlockingCall::finish() {
  std::unique_lock lock(state_->mu);
  state_->cv.wait(lock, [&] { return state_->done; });
  return state_->status;
}

void BlockingCall::cancel() { call_->cancel(); }

Metadata BlockingCall::headers() const {
  std::lock_guard lock(state_->mu);
  return state_->headers;
}

Result<std::string> call_unary(ChannelInterface& channel, std::string method, std::string request,
                               const CallOptions& options, Metadata* trailers) {
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
