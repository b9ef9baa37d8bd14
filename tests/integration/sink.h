// Test helper shared by the transport tests: a handler that collects bytes.
#pragma once

#include <future>
#include <mutex>
#include <string>

#include "transport/transport.h"

namespace slip::transport::test {

// Collects bytes until `want` arrived or the connection closed. The promises are kept after
// the lock is released: a waiter may destroy the Sink as soon as its future is ready.
class Sink final : public ConnectionHandler {
 public:
  explicit Sink(std::size_t want) : want_(want) {}
  void on_bytes(Slice bytes) override {
    bool now_done = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      got_.append(bytes.as_string_view());
      now_done = got_.size() >= want_ && !done_set_;
      done_set_ = done_set_ || now_done;
    }
    if (now_done) done_.set_value();
  }
  void on_closed(Status reason) override {
    bool now_done = false;
    {
      std::lock_guard<std::mutex> g(mu_);
      ++closes_;
      reason_ = reason;
      now_done = !done_set_;
      done_set_ = true;
    }
    if (now_done) done_.set_value();
    closed_.set_value();  // last touch of *this
  }
  std::future<void> done() { return done_.get_future(); }
  std::future<void> closed() { return closed_.get_future(); }
  std::string got() {
    std::lock_guard<std::mutex> g(mu_);
    return got_;
  }
  Status reason() {
    std::lock_guard<std::mutex> g(mu_);
    return reason_;
  }
  int closes() {
    std::lock_guard<std::mutex> g(mu_);
    return closes_;
  }

 private:
  std::mutex mu_;
  std::size_t want_;
  std::string got_;
  bool done_set_ = false;
  int closes_ = 0;
  Status reason_;
  std::promise<void> done_;
  std::promise<void> closed_;
};

}  // namespace slip::transport::test
