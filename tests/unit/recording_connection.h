// A broker client connection for unit tests that records what the broker sends it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "broker/broker.h"
#include "io/event_loop.h"

namespace slip::broker::test {

class RecordingConnection final : public ClientConnection {
 public:
  explicit RecordingConnection(io::EventLoop& loop) : loop_(loop) {}
  io::EventLoop& loop() override { return loop_; }
  std::string peer_address() const override { return "test"; }
  bool closed() const override { return false; }
  std::size_t pending_out_bytes() const override { return 0; }
  void send_msg(std::uint64_t, std::string_view subject, std::string_view reply, bool, const wire::Metadata&,
                const Slice& payload) override {
    got.push_back(std::string(subject) + "|" + std::string(reply) + "|" + payload.to_string());
  }
  void fail(const Status& reason) override { failed.push_back(reason.to_string()); }
  void refuse(wire::FrameType, std::uint64_t, std::string_view subject, const Status&) override {
    refused.emplace_back(subject);
  }
  std::vector<std::string> got, refused, failed;

 private:
  io::EventLoop& loop_;
};

}  // namespace slip::broker::test
