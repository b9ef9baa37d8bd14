// Stream consumers against a real slipd: redelivery after the ack wait, nak, term, max_deliver,
// durable positions across a restart and across SIGKILL, every deliver policy, filters, pull
// fetches (batches, and waiting for new messages), push with max_ack_pending, ephemeral
// consumers ending with their connection, clear errors, and the `slip consume` / `slip
// consumer` commands.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <future>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "eventually.h"
#include "peer.h"
#include "process.h"

namespace slip::broker {
namespace {

using test::SlipdProcess;

std::string cat(std::string a, std::string_view b) {
  a.append(b);
  return a;
}
std::string cat(std::string a, std::uint64_t n) { return cat(std::move(a), std::to_string(n)); }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/slip-consumers-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { (void)std::system(cat("rm -rf ", dir_).c_str()); }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

struct Got {
  std::uint64_t sequence = 0;
  std::uint64_t deliveries = 0;
  std::string subject;
  std::string payload;
};

std::string field(const StreamFields& f, const std::string& key) {
  for (const auto& [k, v] : f) {
    if (k == key) return v;
  }
  return "";
}

// A PubSubClient with blocking helpers for streams and consumers.
class Peer : public test::PubSubPeer {
 public:
  using PubSubPeer::PubSubPeer;
  ~Peer() { stop(); }

  Result<StreamFields> request(wire::StreamOp op, StreamFields args) {
    std::promise<Result<StreamFields>> p;
    auto f = p.get_future();
    run([&] {
      Status st = client().stream_request(op, args, [&p](Result<StreamFields> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no STREAM_RESPONSE");
    return f.get();
  }

  Status add_stream(const std::string& name, const std::string& subjects) {
    return request(wire::StreamOp::kAdd, {{"name", name}, {"subjects", subjects}}).status();
  }

  Result<std::uint64_t> publish(const std::string& subject, const std::string& payload) {
    std::promise<Result<std::uint64_t>> p;
    auto f = p.get_future();
    run([&] {
      Status st = client().publish_acked(subject, Slice::copy_of(ByteView(payload)), nullptr,
                                         [&p](Result<std::uint64_t> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no LOG_ACK");
    return f.get();
  }

  // An ephemeral consumer gets a long inactivity threshold unless the test sets one: a slow
  // (sanitized) run must not lose it between two calls.
  Result<StreamFields> add_consumer(const std::string& stream, StreamFields config) {
    bool durable = false, threshold = false;
    for (const auto& [k, v] : config) {
      durable = durable || (k == "durable" && v == "true");
      threshold = threshold || k == "inactive_threshold_ms";
    }
    if (!durable && !threshold) config.emplace_back("inactive_threshold_ms", "600000");
    std::promise<Result<StreamFields>> p;
    auto f = p.get_future();
    run([&] {
      Status st = client().add_consumer(stream, config, [&p](Result<StreamFields> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no answer to CONSUMER_ADD");
    return f.get();
  }

  Result<std::vector<Got>> fetch(const std::string& stream, const std::string& consumer, std::size_t batch,
                                 std::chrono::milliseconds expires = std::chrono::milliseconds(0)) {
    std::promise<Result<std::size_t>> p;
    auto f = p.get_future();
    std::vector<Got> got;  // filled on the client's loop, read after the future
    run([&] {
      FetchOptions o;
      o.batch = batch;
      o.expires = expires;
      Status st = client().fetch(
          stream, consumer, o,
          [&got](const StoredMessage& m) {
            got.push_back({m.sequence, m.deliveries, std::string(m.subject), std::string(m.payload.as_string_view())});
          },
          [&p](Result<std::size_t> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no answer to CONSUMER_FETCH");
    auto n = f.get();
    if (!n.is_ok()) return n.status();
    EXPECT_EQ(*n, got.size());
    return got;
  }

  Status ack(const std::string& stream, const std::string& consumer, std::vector<std::uint64_t> seqs,
             AckKind kind = AckKind::kAck) {
    std::promise<Status> p;
    auto f = p.get_future();
    run([&] {
      Status st = client().ack(stream, consumer, seqs, kind, [&p](Status s) { p.set_value(std::move(s)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no answer to CONSUMER_ACK");
    return f.get();
  }

  Result<StreamFields> info(const std::string& stream, const std::string& consumer) {
    return request(wire::StreamOp::kConsumerInfo, {{"stream", stream}, {"name", consumer}});
  }
  std::string info_field(const std::string& stream, const std::string& consumer, const std::string& key) {
    auto i = info(stream, consumer);
    return i.is_ok() ? field(*i, key) : i.status().to_string();
  }
};

std::vector<std::uint64_t> seqs_of(const std::vector<Got>& g) {
  std::vector<std::uint64_t> out;
  for (const auto& x : g) out.push_back(x.sequence);
  return out;
}

class Consumers : public ::testing::Test {
 protected:
  void SetUp() override {
    slipd_ = std::make_unique<SlipdProcess>(std::vector<std::string>{"--data-dir", data_.path()});
    ASSERT_TRUE(slipd_->ok()) << slipd_->log();
    peer_ = std::make_unique<Peer>(slipd_->address());
    ASSERT_TRUE(peer_->wait_ready());
  }
  void TearDown() override {
    peer_.reset();
    slipd_.reset();
  }
  void restart(int sig) {
    peer_.reset();
    if (sig == SIGKILL) {
      (void)slipd_->stop(SIGKILL);
    } else {
      EXPECT_EQ(slipd_->stop(sig), 0) << slipd_->log();
    }
    slipd_ = std::make_unique<SlipdProcess>(std::vector<std::string>{"--data-dir", data_.path()});
    ASSERT_TRUE(slipd_->ok()) << slipd_->log();
    peer_ = std::make_unique<Peer>(slipd_->address());
    ASSERT_TRUE(peer_->wait_ready());
  }
  void publish_n(const std::string& subject, int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(peer_->publish(subject, cat("m", i + 1)).is_ok());
  }

  TempDir data_;
  std::unique_ptr<SlipdProcess> slipd_;
  std::unique_ptr<Peer> peer_;
};

constexpr auto kLongWait = std::chrono::milliseconds(30'000);

TEST_F(Consumers, UnackedMessageIsRedeliveredAfterAckWaitWithItsDeliveryCount) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 1);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "C"}, {"durable", "true"}, {"ack_wait_ms", "100"}}).is_ok());
  auto first = peer_->fetch("S", "C", 10);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_EQ(first->size(), 1u);
  EXPECT_EQ((*first)[0].sequence, 1u);
  EXPECT_EQ((*first)[0].deliveries, 1u);
  EXPECT_EQ((*first)[0].payload, "m1");
  // Not acknowledged: it comes back once the ack wait has passed.
  auto again = peer_->fetch("S", "C", 10, kLongWait);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].sequence, 1u);
  EXPECT_EQ((*again)[0].deliveries, 2u);
  EXPECT_EQ(peer_->info_field("S", "C", "num_redelivered"), "1");
  ASSERT_TRUE(peer_->ack("S", "C", {1}).is_ok());
  EXPECT_EQ(peer_->info_field("S", "C", "num_ack_pending"), "0");
  EXPECT_EQ(peer_->info_field("S", "C", "ack_floor"), "1");
  EXPECT_EQ(peer_->info_field("S", "C", "delivered_seq"), "1");
}

TEST_F(Consumers, NakRedeliversAtOnceAndTermNeverAgain) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 2);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "C"}, {"durable", "true"}, {"ack_wait_ms", "100"}}).is_ok());
  auto first = peer_->fetch("S", "C", 10);
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(seqs_of(*first), (std::vector<std::uint64_t>{1, 2}));
  ASSERT_TRUE(peer_->ack("S", "C", {1}, AckKind::kNak).is_ok());
  ASSERT_TRUE(peer_->ack("S", "C", {2}, AckKind::kTerm).is_ok());
  EXPECT_EQ(peer_->info_field("S", "C", "num_terminated"), "1");
  // 1 keeps coming back (nak, then every ack wait); 2 never does.
  std::map<std::uint64_t, std::uint64_t> most;
  while (most[1] < 4) {
    auto got = peer_->fetch("S", "C", 10, kLongWait);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    for (const auto& g : *got) {
      EXPECT_EQ(g.sequence, 1u);
      most[g.sequence] = std::max(most[g.sequence], g.deliveries);
    }
  }
  EXPECT_EQ(most.count(2), 0u);
}

TEST_F(Consumers, MaxDeliverStopsRedeliveryAndCountsIt) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 1);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "C"}, {"ack_wait_ms", "50"}, {"max_deliver", "2"}}).is_ok());
  auto a = peer_->fetch("S", "C", 1);
  ASSERT_TRUE(a.is_ok());
  ASSERT_EQ(a->size(), 1u);
  auto b = peer_->fetch("S", "C", 1, kLongWait);
  ASSERT_TRUE(b.is_ok());
  ASSERT_EQ(b->size(), 1u);
  EXPECT_EQ((*b)[0].deliveries, 2u);
  ASSERT_TRUE(test::eventually([&] { return peer_->info_field("S", "C", "num_max_delivered") == "1"; }))
      << peer_->info_field("S", "C", "num_max_delivered");
  EXPECT_EQ(peer_->info_field("S", "C", "num_ack_pending"), "0");
  EXPECT_EQ(peer_->info_field("S", "C", "ack_floor"), "1");
  auto none = peer_->fetch("S", "C", 1);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(Consumers, DurablePositionSurvivesRestartAndSigkill) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 10);
  ASSERT_TRUE(
      peer_->add_consumer("S", {{"name", "D"}, {"durable", "true"}, {"ack_wait_ms", "600000"}}).is_ok());
  auto got = peer_->fetch("S", "D", 10);
  ASSERT_TRUE(got.is_ok());
  ASSERT_EQ(got->size(), 10u);
  ASSERT_TRUE(peer_->ack("S", "D", {1, 2, 3, 4, 5}).is_ok());

  restart(SIGTERM);
  // Acknowledged messages are not delivered again; the unacknowledged ones are, at once (their
  // ack wait does not outlive the server), with their delivery counts.
  auto after = peer_->fetch("S", "D", 100);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  ASSERT_EQ(seqs_of(*after), (std::vector<std::uint64_t>{6, 7, 8, 9, 10}));
  for (const auto& g : *after) EXPECT_EQ(g.deliveries, 2u);
  EXPECT_EQ(peer_->info_field("S", "D", "ack_floor"), "5");
  ASSERT_TRUE(peer_->ack("S", "D", {6, 7, 8}).is_ok());
  publish_n("s.b", 2);  // 11, 12

  restart(SIGKILL);
  auto crash = peer_->fetch("S", "D", 100);
  ASSERT_TRUE(crash.is_ok()) << crash.status().to_string();
  std::set<std::uint64_t> seen;
  for (const auto& g : *crash) seen.insert(g.sequence);
  // 9 and 10 were delivered twice and not acknowledged; 11 and 12 are new (or were delivered
  // by the time of the kill: either way they come now).
  EXPECT_EQ(seen, (std::set<std::uint64_t>{9, 10, 11, 12}));
  for (const auto& g : *crash) {
    if (g.sequence <= 10) {
      EXPECT_EQ(g.deliveries, 3u);
    }
  }
  auto list = peer_->request(wire::StreamOp::kConsumerList, {{"stream", "S"}});
  ASSERT_TRUE(list.is_ok());
  EXPECT_EQ(field(*list, "names"), "D");
  auto si = peer_->request(wire::StreamOp::kInfo, {{"name", "S"}});
  ASSERT_TRUE(si.is_ok());
  EXPECT_EQ(field(*si, "consumers"), "1");
}

TEST_F(Consumers, DeliverPolicies) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 3);
  // The stored time of message 3, for deliver time.
  std::uint64_t ts3 = 0;
  {
    std::promise<void> p;
    auto f = p.get_future();
    peer_->run([&] {
      (void)peer_->client().stream_request(
          wire::StreamOp::kRead, {{"name", "S"}, {"from_seq", "3"}, {"max_msgs", "1"}},
          [&p](Result<StreamFields>) { p.set_value(); }, [&ts3](const StoredMessage& m) { ts3 = m.timestamp_ns; });
    });
    ASSERT_EQ(f.wait_for(test::PubSubPeer::kLiveness), std::future_status::ready);
    ASSERT_NE(ts3, 0u);
  }
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "ALL"}, {"deliver", "all"}}).is_ok());
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "LAST"}, {"deliver", "last"}}).is_ok());
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "NEW"}, {"deliver", "new"}}).is_ok());
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "SEQ"}, {"deliver", "seq"}, {"start_seq", "2"}}).is_ok());
  ASSERT_TRUE(
      peer_->add_consumer("S", {{"name", "TIME"}, {"deliver", "time"}, {"start_time_ns", std::to_string(ts3)}}).is_ok());
  publish_n("s.b", 1);  // 4
  auto seqs = [&](const std::string& c) {
    auto g = peer_->fetch("S", c, 100);
    EXPECT_TRUE(g.is_ok()) << g.status().to_string();
    return g.is_ok() ? seqs_of(*g) : std::vector<std::uint64_t>{};
  };
  EXPECT_EQ(seqs("ALL"), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(seqs("LAST"), (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(seqs("NEW"), (std::vector<std::uint64_t>{4}));
  EXPECT_EQ(seqs("SEQ"), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(seqs("TIME"), (std::vector<std::uint64_t>{3, 4}));
  // A time after every message: only what comes next.
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "LATER"}, {"deliver", "time"},
                                        {"start_time_ns", std::to_string(ts3 + 3'600'000'000'000ull)}})
                  .is_ok());
  EXPECT_EQ(seqs("LATER"), (std::vector<std::uint64_t>{}));
}

TEST_F(Consumers, FilterSubjectDeliversOnlyMatchingMessages) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(peer_->publish(i % 2 == 0 ? "s.eu" : "s.us", cat("m", i + 1)).is_ok());
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "EU"}, {"filter", "s.eu"}}).is_ok());
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "LASTUS"}, {"filter", "s.us"}, {"deliver", "last"}}).is_ok());
  EXPECT_EQ(peer_->info_field("S", "EU", "num_pending"), "3");
  auto got = peer_->fetch("S", "EU", 100);
  ASSERT_TRUE(got.is_ok());
  ASSERT_EQ(seqs_of(*got), (std::vector<std::uint64_t>{1, 3, 5}));
  for (const auto& g : *got) EXPECT_EQ(g.subject, "s.eu");
  auto last = peer_->fetch("S", "LASTUS", 100);
  ASSERT_TRUE(last.is_ok());
  EXPECT_EQ(seqs_of(*last), (std::vector<std::uint64_t>{6}));
  // A filter outside the stream's subjects is refused.
  auto bad = peer_->add_consumer("S", {{"name", "X"}, {"filter", "t.>"}});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("filter"), std::string::npos) << bad.status().to_string();
}

TEST_F(Consumers, PullFetchesBatchesAndWaitsForNewMessages) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 5);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "P"}, {"ack", "none"}}).is_ok());
  auto a = peer_->fetch("S", "P", 3);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(seqs_of(*a), (std::vector<std::uint64_t>{1, 2, 3}));
  auto b = peer_->fetch("S", "P", 3);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(seqs_of(*b), (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(peer_->info_field("S", "P", "num_pending"), "0");
  EXPECT_EQ(peer_->info_field("S", "P", "num_ack_pending"), "0");
  // A fetch with nothing to take waits; a message published meanwhile answers it.
  Peer waiter(slipd_->address(), "waiter");
  ASSERT_TRUE(waiter.wait_ready());
  auto pending = std::async(std::launch::async, [&] { return waiter.fetch("S", "P", 10, kLongWait); });
  ASSERT_TRUE(test::eventually([&] { return peer_->info_field("S", "P", "num_waiting") == "1"; }));
  ASSERT_TRUE(peer_->publish("s.z", "late").is_ok());
  auto late = pending.get();
  ASSERT_TRUE(late.is_ok()) << late.status().to_string();
  ASSERT_EQ(late->size(), 1u);
  EXPECT_EQ((*late)[0].sequence, 6u);
  EXPECT_EQ((*late)[0].payload, "late");
  // A fetch that expires with nothing answers with no messages.
  auto empty = peer_->fetch("S", "P", 10, std::chrono::milliseconds(50));
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(Consumers, PushDeliversWithinMaxAckPending) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  publish_n("s.a", 10);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "PUSH"}, {"durable", "true"}, {"max_ack_pending", "3"}}).is_ok());
  Peer sub(slipd_->address(), "push");
  ASSERT_TRUE(sub.wait_ready());
  std::vector<Got> got;  // on sub's loop
  Status ended;
  bool done = false;
  sub.run([&] {
    ASSERT_TRUE(sub.client()
                    .subscribe_consumer(
                        "S", "PUSH",
                        [&](const StoredMessage& m) {
                          got.push_back({m.sequence, m.deliveries, std::string(m.subject),
                                         std::string(m.payload.as_string_view())});
                        },
                        [&](Result<StreamFields> r) {
                          ended = r.status();
                          done = true;
                        })
                    .is_ok());
  });
  auto count = [&] {
    std::size_t n = 0;
    sub.run([&] { n = got.size(); });
    return n;
  };
  ASSERT_TRUE(test::eventually([&] { return count() == 3; }));
  // The server holds the rest back: 3 delivered, 3 pending, nothing more on its way.
  EXPECT_EQ(peer_->info_field("S", "PUSH", "num_ack_pending"), "3");
  EXPECT_EQ(peer_->info_field("S", "PUSH", "delivered_seq"), "3");
  EXPECT_EQ(peer_->info_field("S", "PUSH", "push_bound"), "true");
  sub.sync();
  EXPECT_EQ(count(), 3u);
  // Each ack makes room for one more.
  ASSERT_TRUE(peer_->ack("S", "PUSH", {1}).is_ok());
  ASSERT_TRUE(test::eventually([&] { return count() == 4; }));
  EXPECT_EQ(peer_->info_field("S", "PUSH", "num_ack_pending"), "3");
  for (std::uint64_t s = 2; s <= 10; ++s) {
    ASSERT_TRUE(test::eventually([&] { return count() >= std::min<std::size_t>(s + 2, 10); }));
    ASSERT_TRUE(peer_->ack("S", "PUSH", {s}).is_ok());
  }
  ASSERT_TRUE(test::eventually([&] { return count() == 10; }));
  sub.run([&] {
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].sequence, i + 1);
      EXPECT_EQ(got[i].deliveries, 1u);
    }
  });
  // A second push subscriber is refused while the first is there.
  auto second = peer_->request(wire::StreamOp::kConsumerSubscribe, {{"stream", "S"}, {"name", "PUSH"}});
  EXPECT_EQ(second.status().code(), StatusCode::kFailedPrecondition);
  // Unsubscribing ends the subscription's call.
  std::promise<Status> p;
  sub.run([&] { (void)sub.client().unsubscribe_consumer("S", "PUSH", [&p](Status s) { p.set_value(s); }); });
  ASSERT_TRUE(p.get_future().get().is_ok());
  ASSERT_TRUE(sub.wait_for([&] { return done; }));
  sub.run([&] { EXPECT_TRUE(ended.is_ok()) << ended.to_string(); });
}

TEST_F(Consumers, EphemeralConsumerEndsWithItsConnection) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  std::string name;
  {
    Peer owner(slipd_->address(), "owner");
    ASSERT_TRUE(owner.wait_ready());
    auto c = owner.add_consumer("S", {});
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    name = field(*c, "name");
    ASSERT_FALSE(name.empty());
    EXPECT_EQ(field(*c, "durable"), "false");
    auto list = peer_->request(wire::StreamOp::kConsumerList, {{"stream", "S"}});
    ASSERT_TRUE(list.is_ok());
    EXPECT_EQ(field(*list, "names"), name);
    auto si = peer_->request(wire::StreamOp::kInfo, {{"name", "S"}});
    EXPECT_EQ(field(*si, "consumers"), "1");
  }
  ASSERT_TRUE(test::eventually([&] {
    auto list = peer_->request(wire::StreamOp::kConsumerList, {{"stream", "S"}});
    return list.is_ok() && field(*list, "names").empty();
  }));
  EXPECT_EQ(peer_->info("S", name).status().code(), StatusCode::kNotFound);
  auto si = peer_->request(wire::StreamOp::kInfo, {{"name", "S"}});
  EXPECT_EQ(field(*si, "consumers"), "0");
  // An unused ephemeral consumer goes after its inactivity threshold, connection or not.
  auto idle = peer_->add_consumer("S", {{"inactive_threshold_ms", "50"}});
  ASSERT_TRUE(idle.is_ok());
  ASSERT_TRUE(test::eventually([&] {
    return peer_->info("S", field(*idle, "name")).status().code() == StatusCode::kNotFound;
  }));
}

TEST_F(Consumers, ClearErrors) {
  ASSERT_TRUE(peer_->add_stream("S", "s.>").is_ok());
  auto no_stream = peer_->add_consumer("NOPE", {{"name", "C"}});
  EXPECT_EQ(no_stream.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_stream.status().message().find("no stream \"NOPE\""), std::string::npos);
  auto no_consumer = peer_->fetch("S", "GHOST", 1);
  EXPECT_EQ(no_consumer.status().code(), StatusCode::kNotFound);
  EXPECT_NE(no_consumer.status().message().find("no consumer \"GHOST\""), std::string::npos)
      << no_consumer.status().to_string();
  EXPECT_EQ(peer_->ack("S", "GHOST", {1}).code(), StatusCode::kNotFound);
  EXPECT_EQ(peer_->add_consumer("S", {{"name", "C"}, {"deliver", "sometimes"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(peer_->add_consumer("S", {{"name", "C"}, {"deliver", "seq"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(peer_->add_consumer("S", {{"name", "C"}, {"colour", "red"}}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(peer_->add_consumer("S", {{"durable", "true"}}).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "C"}, {"durable", "true"}}).is_ok());
  EXPECT_TRUE(peer_->add_consumer("S", {{"name", "C"}, {"durable", "true"}}).is_ok());  // the same: fine
  EXPECT_EQ(peer_->add_consumer("S", {{"name", "C"}, {"durable", "true"}, {"max_deliver", "3"}}).status().code(),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(peer_->request(wire::StreamOp::kConsumerAck, {{"stream", "S"}, {"name", "C"}, {"seqs", "1,x"}})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // Deleting the consumer, then the stream with its consumers.
  ASSERT_TRUE(peer_->request(wire::StreamOp::kConsumerDelete, {{"stream", "S"}, {"name", "C"}}).is_ok());
  EXPECT_EQ(peer_->info("S", "C").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(peer_->add_consumer("S", {{"name", "C2"}, {"durable", "true"}}).is_ok());
  ASSERT_TRUE(peer_->request(wire::StreamOp::kDelete, {{"name", "S"}}).is_ok());
  EXPECT_EQ(peer_->info("S", "C2").status().code(), StatusCode::kNotFound);
}

TEST_F(Consumers, SlipCommands) {
  const std::string s = slipd_->address();
  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "add", "LOGS", "--subjects", "logs.>"}, &out), 0) << out;
  for (int i = 1; i <= 4; ++i) {
    ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "pub", "--ack", "logs.app", cat("line ", i)}, &out), 0) << out;
  }
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "add", "LOGS", "READER", "--ack-wait", "1m",
                               "--max-deliver", "5"},
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("created consumer READER on stream LOGS (durable)"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--durable", "READER", "--count", "2"}, &out), 0)
      << out;
  EXPECT_EQ(out, "[1] logs.app (delivery 1): line 1\n[2] logs.app (delivery 1): line 2\n");
  // Acknowledged by the first run: the second goes on from 3.
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--durable", "READER", "--push", "--count", "2"},
                              &out),
            0)
      << out;
  EXPECT_EQ(out, "[3] logs.app (delivery 1): line 3\n[4] logs.app (delivery 1): line 4\n");
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "info", "LOGS", "READER"}, &out), 0) << out;
  EXPECT_NE(out.find("ack floor:        4"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "ls", "LOGS"}, &out), 0) << out;
  EXPECT_EQ(out, "READER\n");
  // An ephemeral consumer from a start sequence, ending when nothing more arrives.
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--deliver", "seq:4", "--wait", "200ms"}, &out),
            0)
      << out;
  EXPECT_EQ(out, "[4] logs.app (delivery 1): line 4\n");
  // Bad options: exit 2 with the reason; unknown names: exit 1 with NOT_FOUND.
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--deliver", "yesterday"}, &out), 2);
  EXPECT_NE(out.find("--deliver"), std::string::npos) << out;
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--deliver", "time:noon"}, &out), 2);
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--ack-wait", "soon"}, &out), 2);
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "LOGS", "--ack", "maybe"}, &out), 2);
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "info", "LOGS", "NOPE"}, &out), 1);
  EXPECT_NE(out.find("no consumer \"NOPE\""), std::string::npos) << out;
  EXPECT_EQ(test::run_program({SLIP_PATH, "-s", s, "consume", "NOPE", "--count", "1"}, &out), 1);
  EXPECT_NE(out.find("no stream \"NOPE\""), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "rm", "LOGS", "READER"}, &out), 0) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "consumer", "ls", "LOGS"}, &out), 0) << out;
  EXPECT_EQ(out, "no consumers on stream LOGS\n");
}

}  // namespace
}  // namespace slip::broker
