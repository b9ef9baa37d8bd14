// The broker across two running loops: messages handed to another loop arrive there, and the
// idle hints (EventLoop::skip_next_spin, keep_next_spin) let a loop that only handed messages
// over sleep at once, but not one that also wrote to a client of its own. Counted, never timed.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "eventually.h"
#include "io/loop_group.h"
#include "io/run_on.h"
#include "recording_connection.h"

namespace slip::broker {
namespace {

using test::RecordingConnection;
using io::run_on;


io::LoopOptions fixed_spin() {
  io::LoopOptions o;
  o.idle = io::IdleStrategy::kSpin;
  o.spin = std::chrono::milliseconds(20);
  o.spin_adaptive = false;  // every spin without work expires and is counted
  return o;
}

// A publisher and a subscriber on loop 0, a subscriber on loop 1. Clients are made, used and
// destroyed on their own loop's thread.
class BrokerLoops : public ::testing::Test {
 protected:
  void SetUp() override {
    loops_.start();
    run_on(a(), [&] {
      pub_conn_ = std::make_unique<RecordingConnection>(a());
      local_conn_ = std::make_unique<RecordingConnection>(a());
      pub_ = std::make_unique<BrokerClient>(broker_, *pub_conn_, "pub");
      local_ = std::make_unique<BrokerClient>(broker_, *local_conn_, "local");
      ASSERT_TRUE(local_->subscribe(1, "both", "").is_ok());
    });
    run_on(b(), [&] {
      remote_conn_ = std::make_unique<RecordingConnection>(b());
      remote_ = std::make_unique<BrokerClient>(broker_, *remote_conn_, "remote");
      ASSERT_TRUE(remote_->subscribe(1, "remote.only", "").is_ok());
      ASSERT_TRUE(remote_->subscribe(2, "both", "").is_ok());
    });
  }
  void TearDown() override {
    run_on(a(), [&] {
      pub_.reset();
      local_.reset();
    });
    run_on(b(), [&] { remote_.reset(); });
    loops_.stop();
  }

  io::EventLoop& a() { return loops_.loop(0); }
  io::EventLoop& b() { return loops_.loop(1); }
  void publish(const std::string& subject) {
    run_on(a(), [&] { ASSERT_TRUE(pub_->publish(subject, "", false, {}, Slice::copy_of("m")).is_ok()); });
  }
  std::size_t received_remote() {
    std::size_t n = 0;
    run_on(b(), [&] { n = remote_conn_->got.size(); });
    return n;
  }

  io::LoopGroup loops_{2, fixed_spin()};
  Broker broker_;
  std::unique_ptr<RecordingConnection> pub_conn_, local_conn_, remote_conn_;
  std::unique_ptr<BrokerClient> pub_, local_, remote_;
};

TEST_F(BrokerLoops, ATurnThatOnlyHandsOverSleepsAtOnceAndOneThatAlsoDeliversSpins) {
  // Read while loop 0 runs a handler (so no spin is under way), then wait for the spin after
  // that handler to run out: from then on loop 0 blocks until work comes.
  std::uint64_t before = 0;
  run_on(a(), [&] { before = a().spins_expired(); });
  ASSERT_TRUE(slip::test::eventually([&] { return a().spins_expired() == before + 1; }));
  const std::uint64_t expired = before + 1;
  EXPECT_EQ(a().spins_skipped(), 0u);

  // Only another loop's client takes it: loop 0 sleeps at once, without a spin that expires.
  publish("remote.only");
  ASSERT_TRUE(slip::test::eventually([&] { return a().spins_skipped() == 1; }));
  ASSERT_TRUE(slip::test::eventually([&] { return received_remote() == 1; }));
  EXPECT_EQ(a().spins_expired(), expired);

  // A client of loop 0 takes it as well: loop 0 spins for the answer (and the spin expires).
  publish("both");
  ASSERT_TRUE(slip::test::eventually([&] { return a().spins_expired() == expired + 1; }))
      << "expired " << a().spins_expired() << ", skipped " << a().spins_skipped();
  EXPECT_EQ(a().spins_skipped(), 1u);
  ASSERT_TRUE(slip::test::eventually([&] { return received_remote() == 2; }));
  std::vector<std::string> local;
  run_on(a(), [&] { local = local_conn_->got; });
  EXPECT_EQ(local, std::vector<std::string>{"both||m"});
}

}  // namespace
}  // namespace slip::broker
