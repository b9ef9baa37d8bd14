// The broker end to end: slipd as a real process, clients through the native protocol.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <unistd.h>
#include <map>
#include <set>

#include "broker/client.h"
#include "io/loop_group.h"
#include "peer.h"
#include "process.h"
#include "wire/encoder.h"

namespace slip::broker {
namespace {

constexpr auto kLiveness = std::chrono::seconds(30);

// A test client that records what its subscriptions receive.
class Peer : public test::PubSubPeer {
 public:
  explicit Peer(const std::string& address, std::string name = "test") : PubSubPeer(address, std::move(name)) {}
  ~Peer() { stop(); }  // before received_ goes: deliveries write to it

  // Subscribes and collects payloads; returns once the broker has surely taken the SUB (a
  // request to a fresh subject round-trips through the broker after it).
  std::uint64_t subscribe(const std::string& subject, const std::string& queue = "") {
    std::uint64_t sid = 0;
    run([&] {
      sid = *client_->subscribe(subject, queue, [this, subject](const Message& m) {
        received_[subject].push_back(m.payload.to_string());
        subjects_[subject].push_back(std::string(m.subject));
      });
    });
    sync();
    return sid;
  }

  std::size_t count(const std::string& subject) {
    std::size_t n = 0;
    run([&] { n = received_[subject].size(); });
    return n;
  }

  std::map<std::string, std::vector<std::string>> received_;
  std::map<std::string, std::vector<std::string>> subjects_;
};

TEST(Broker, WildcardsAndLiteralsEachGetTheirMessages) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer sub(slipd.address()), pub(slipd.address());
  ASSERT_TRUE(sub.wait_ready() && pub.wait_ready());
  sub.subscribe("orders.*.created");
  sub.subscribe("orders.>");
  sub.subscribe("orders.eu.created");
  sub.subscribe("other");
  pub.run([&] {
    ASSERT_TRUE(pub.client().publish("orders.eu.created", Slice::copy_of("1")).is_ok());
    ASSERT_TRUE(pub.client().publish("orders.us.shipped", Slice::copy_of("2")).is_ok());
    ASSERT_TRUE(pub.client().publish("orders", Slice::copy_of("3")).is_ok());
  });
  pub.sync();
  ASSERT_TRUE(sub.wait_for([&] { return sub.received_["orders.>"].size() == 2; }));
  sub.sync();
  sub.run([&] {
    EXPECT_EQ(sub.received_["orders.*.created"], std::vector<std::string>{"1"});
    EXPECT_EQ(sub.received_["orders.>"], (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(sub.received_["orders.eu.created"], std::vector<std::string>{"1"});
    EXPECT_TRUE(sub.received_["other"].empty());
    EXPECT_EQ(sub.subjects_["orders.>"][1], "orders.us.shipped");
  });
}

TEST(Broker, QueueGroupDeliversEachMessageToExactlyOneMember) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer a(slipd.address()), b(slipd.address()), c(slipd.address()), plain(slipd.address()), pub(slipd.address());
  for (Peer* p : {&a, &b, &c, &plain, &pub}) ASSERT_TRUE(p->wait_ready());
  for (Peer* p : {&a, &b, &c}) p->subscribe("jobs", "workers");
  plain.subscribe("jobs");
  constexpr int kMessages = 600;
  pub.run([&] {
    for (int i = 0; i < kMessages; ++i) ASSERT_TRUE(pub.client().publish("jobs", Slice::copy_of(std::to_string(i))).is_ok());
  });
  ASSERT_TRUE(plain.wait_for([&] { return plain.received_["jobs"].size() == kMessages; }));
  std::multiset<std::string> all;
  ASSERT_TRUE(a.wait_for([&] { return true; }));
  std::size_t total = 0;
  for (int tries = 0; tries < 3000 && total < kMessages; ++tries) {
    total = a.count("jobs") + b.count("jobs") + c.count("jobs");
    if (total < kMessages) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (Peer* p : {&a, &b, &c}) {
    p->sync();
    p->run([&] {
      for (auto& s : p->received_["jobs"]) all.insert(s);
      EXPECT_GT(p->received_["jobs"].size(), 0u);  // round robin reaches every member
    });
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) EXPECT_EQ(all.count(std::to_string(i)), 1u) << i;
}

TEST(Broker, QueueMembersJoiningAndLeavingLoseNothingPublishedWhileTheyAreIn) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer a(slipd.address()), b(slipd.address()), pub(slipd.address());
  for (Peer* p : {&a, &b, &pub}) ASSERT_TRUE(p->wait_ready());
  a.subscribe("q", "g");
  auto publish_range = [&](int from, int to) {
    pub.run([&] {
      for (int i = from; i < to; ++i) ASSERT_TRUE(pub.client().publish("q", Slice::copy_of(std::to_string(i))).is_ok());
    });
    pub.sync();
  };
  publish_range(0, 100);
  const std::uint64_t bsid = b.subscribe("q", "g");  // joins mid-stream
  publish_range(100, 200);
  b.run([&] { b.client().unsubscribe(bsid); });  // leaves mid-stream
  b.sync();
  publish_range(200, 300);
  ASSERT_TRUE(a.wait_for([&] { return a.received_["q"].size() + b.count("q") >= 300; }));
  std::multiset<std::string> all;
  a.run([&] { all.insert(a.received_["q"].begin(), a.received_["q"].end()); });
  b.run([&] { all.insert(b.received_["q"].begin(), b.received_["q"].end()); });
  EXPECT_EQ(all.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(all.count(std::to_string(i)), 1u) << i;
}

TEST(Broker, RequestsGetTheirOwnRepliesUnderConcurrency) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer r1(slipd.address()), r2(slipd.address()), req(slipd.address());
  for (Peer* p : {&r1, &r2, &req}) ASSERT_TRUE(p->wait_ready());
  for (Peer* r : {&r1, &r2}) {
    r->run([r] {
      (void)r->client().subscribe("echo", "responders", [r](const Message& m) {
        (void)r->client().publish(m.reply, Slice::copy_of("re:" + m.payload.to_string()));
      });
    });
    r->sync();
  }
  constexpr int kRequests = 300;
  std::map<int, std::string> replies;
  int failures = 0;
  req.run([&] {
    for (int i = 0; i < kRequests; ++i) {
      ASSERT_TRUE(req.client()
                      .request("echo", Slice::copy_of(std::to_string(i)), std::chrono::milliseconds(20000),
                               [&, i](Result<Message> r) {
                                 if (r.is_ok()) replies[i] = r->payload.to_string();
                                 else ++failures;
                               })
                      .is_ok());
    }
  });
  ASSERT_TRUE(req.wait_for([&] { return static_cast<int>(replies.size()) + failures == kRequests; }));
  req.run([&] {
    EXPECT_EQ(failures, 0);
    for (int i = 0; i < kRequests; ++i) EXPECT_EQ(replies[i], "re:" + std::to_string(i));
  });
}

TEST(Broker, NoRespondersAndTimeoutAreDistinctErrors) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer silent(slipd.address()), req(slipd.address());
  ASSERT_TRUE(silent.wait_ready() && req.wait_ready());
  silent.subscribe("black.hole");  // takes requests, never answers
  std::promise<Status> none, timeout;
  req.run([&] {
    (void)req.client().request("nobody.listens", Slice::copy_of("x"), std::chrono::milliseconds(20000),
                               [&](Result<Message> r) { none.set_value(r.status()); });
    (void)req.client().request("black.hole", Slice::copy_of("x"), std::chrono::milliseconds(200),
                               [&](Result<Message> r) { timeout.set_value(r.status()); });
  });
  auto n = none.get_future(), t = timeout.get_future();
  ASSERT_EQ(n.wait_for(kLiveness), std::future_status::ready);
  ASSERT_EQ(t.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(n.get().code(), StatusCode::kNotFound);
  EXPECT_EQ(t.get().code(), StatusCode::kTimeout);
}

TEST(Broker, AutoUnsubscribeStopsAfterMaxMessages) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  Peer sub(slipd.address()), pub(slipd.address());
  ASSERT_TRUE(sub.wait_ready() && pub.wait_ready());
  const std::uint64_t sid = sub.subscribe("tick");
  sub.run([&] { sub.client().unsubscribe(sid, 2); });
  sub.sync();
  pub.run([&] {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(pub.client().publish("tick", Slice::copy_of("t")).is_ok());
  });
  pub.sync();
  sub.sync();
  EXPECT_EQ(sub.count("tick"), 2u);
}

TEST(Broker, SlowConsumerIsCutOffWhileFastSubscribersGetEverything) {
  test::SlipdProcess slipd({"--max-pending-bytes", "1048576"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  // The slow consumer subscribes over a raw socket and then never reads.
  test::RawClient slow(slipd.port());
  ASSERT_TRUE(slow.handshake().is_ok());
  wire::FrameEncoder e;
  e.add(wire::Sub{1, "firehose", ""});
  slow.send_chain(e.take());
  Peer fast(slipd.address()), pub(slipd.address());
  ASSERT_TRUE(fast.wait_ready() && pub.wait_ready());
  fast.subscribe("firehose");
  constexpr int kMessages = 2000;
  const std::string body(16 * 1024, 'f');
  // Batches far below the bound, each taken by the fast subscriber before the next: only the
  // subscriber that never reads falls behind.
  constexpr int kBatch = 20;
  for (int batch = 0; batch < kMessages / kBatch; ++batch) {
    pub.run([&] {
      for (int i = 0; i < kBatch; ++i) ASSERT_TRUE(pub.client().publish("firehose", Slice::copy_of(body)).is_ok());
    });
    const std::size_t want = static_cast<std::size_t>((batch + 1) * kBatch);
    ASSERT_TRUE(fast.wait_for([&] { return fast.received_["firehose"].size() >= want; })) << slipd.log();
  }
  ASSERT_TRUE(fast.wait_for([&] { return fast.received_["firehose"].size() == kMessages; }))
      << fast.count("firehose") << " of " << kMessages << "\n" << slipd.log();
  EXPECT_TRUE(slow.wait_closed());
  EXPECT_NE(slipd.log().find("slow consumer"), std::string::npos) << slipd.log();
}

TEST(Broker, DropOldestSubscriptionKeepsTheNewestWhileFastSubscribersGetEverything) {
  // No heartbeats: the slow client below says nothing for as long as the publishing takes.
  test::SlipdProcess slipd({"--max-pending-bytes", "1048576", "--heartbeat-ms", "0"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  constexpr std::uint64_t kBacklog = 10;
  test::RawClient slow(slipd.port());
  ASSERT_TRUE(slow.handshake().is_ok());
  wire::FrameEncoder e;
  e.add(wire::Sub{1, "firehose", "", true, kBacklog, 0});
  slow.send_chain(e.take());
  Peer fast(slipd.address()), pub(slipd.address());
  ASSERT_TRUE(fast.wait_ready() && pub.wait_ready());
  fast.subscribe("firehose");
  constexpr int kMessages = 2000;
  constexpr int kBatch = 20;
  auto body = [](int i) {
    std::string b = std::to_string(1000000 + i);  // fixed width: "1000000" + i
    b.resize(16 * 1024, 'f');
    return b;
  };
  for (int batch = 0; batch < kMessages / kBatch; ++batch) {
    pub.run([&] {
      for (int i = batch * kBatch; i < (batch + 1) * kBatch; ++i) {
        ASSERT_TRUE(pub.client().publish("firehose", Slice::copy_of(body(i))).is_ok());
      }
    });
    const std::size_t want = static_cast<std::size_t>((batch + 1) * kBatch);
    ASSERT_TRUE(fast.wait_for([&] { return fast.received_["firehose"].size() >= want; })) << slipd.log();
  }
  fast.run([&] {
    for (int i = 0; i < kMessages; ++i) ASSERT_EQ(fast.received_["firehose"][static_cast<std::size_t>(i)], body(i));
  });
  // The slow client now reads: it is still connected, gets messages in publishing order with
  // the oldest of its backlog missing, and the newest kBacklog are all there.
  std::vector<int> got;
  while (got.empty() || got.back() != kMessages - 1) {
    Result<wire::Frame> f = slow.read_frame();
    ASSERT_TRUE(f.is_ok()) << f.status().to_string() << " after " << got.size() << " messages\n" << slipd.log();
    if (f->type != wire::FrameType::kMsg) continue;
    Result<wire::Msg> m = wire::decode_msg(*f, {});
    ASSERT_TRUE(m.is_ok());
    const std::string payload = m->payload.to_string();
    const int i = std::stoi(payload.substr(0, 7)) - 1000000;
    ASSERT_EQ(payload, body(i));
    if (!got.empty()) {
      ASSERT_GT(i, got.back()) << "out of order";
    }
    got.push_back(i);
  }
  EXPECT_LT(got.size(), static_cast<std::size_t>(kMessages));
  ASSERT_GE(got.size(), kBacklog);
  for (std::size_t k = 0; k < kBacklog; ++k) {
    EXPECT_EQ(got[got.size() - kBacklog + k], kMessages - static_cast<int>(kBacklog) + static_cast<int>(k));
  }
  EXPECT_NE(slipd.log().find("dropping the oldest"), std::string::npos) << slipd.log();
}

TEST(Broker, SlipCliPubReachesSlipCliSub) {
  test::SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  // `slip sub` in the background, `slip pub` in the foreground, `slip req` against `slip reply`.
  char tmpl[] = "/tmp/slip-sub-XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  std::string cmd = std::string(SLIP_PATH) + " sub -s " + slipd.address() + " 'greet.*' -n 2 > " + tmpl + " 2>&1 &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string out;
  // Wait until the subscriber is listening.
  for (int i = 0; i < 1000; ++i) {
    std::ifstream f(tmpl);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (s.find("listening") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(test::run_program({SLIP_PATH, "pub", "-s", slipd.address(), "greet.world", "hello", "-n", "2"}, &out), 0)
      << out;
  std::string got;
  for (int i = 0; i < 1000 && got.find("[#2]") == std::string::npos; ++i) {
    std::ifstream f(tmpl);
    got.assign((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_NE(got.find("[#1] greet.world: hello"), std::string::npos) << got;
  EXPECT_NE(got.find("[#2] greet.world: hello"), std::string::npos) << got;
  unlink(tmpl);

  EXPECT_NE(test::run_program({SLIP_PATH, "req", "-s", slipd.address(), "nobody", "x"}, &out), 0);
  EXPECT_NE(out.find("no responders"), std::string::npos) << out;
}

}  // namespace
}  // namespace slip::broker
