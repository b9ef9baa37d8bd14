// Persistent streams against a real slipd: stream admin, publish with acknowledgement, capture of
// plain PUBs, de-duplication, restarts on the same data directory, the `slip` commands, and the
// crash test (SIGKILL at random moments under a windowed acked publisher; nothing acknowledged
// is lost or duplicated).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "peer.h"
#include "process.h"

namespace slip::broker {
namespace {

using test::SlipdProcess;

// a + b without operator+ chains (g++ 12 -O3 warns falsely about them: -Wrestrict).
std::string cat(std::string a, std::string_view b) {
  a.append(b);
  return a;
}
std::string cat(std::string a, std::uint64_t n) { return cat(std::move(a), std::to_string(n)); }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/slip-streams-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  ~TempDir() { (void)std::system(cat("rm -rf ", dir_).c_str()); }
  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
};

struct Stored {
  std::uint64_t sequence = 0;
  std::string subject;
  std::string payload;
  std::string msg_id;
};

// A PubSubClient with blocking helpers for stream calls.
class StreamPeer : public test::PubSubPeer {
 public:
  using PubSubPeer::PubSubPeer;
  ~StreamPeer() { stop(); }

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

  Result<std::uint64_t> publish(const std::string& subject, const std::string& payload, const std::string& msg_id = "") {
    std::promise<Result<std::uint64_t>> p;
    auto f = p.get_future();
    run([&] {
      const wire::Metadata h = {{"Slip-Msg-Id", msg_id}};
      Status st = client().publish_acked(subject, Slice::copy_of(ByteView(payload)), msg_id.empty() ? nullptr : &h,
                                         [&p](Result<std::uint64_t> r) { p.set_value(std::move(r)); });
      if (!st.is_ok()) p.set_value(st);
    });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no LOG_ACK");
    return f.get();
  }

  // Every stored message of `stream`, read in batches from sequence 1.
  Result<std::vector<Stored>> read_all(const std::string& stream) {
    std::vector<Stored> out;
    std::uint64_t from = 1;
    while (true) {
      std::promise<Result<StreamFields>> p;
      auto f = p.get_future();
      run([&] {
        Status st = client().stream_request(
            wire::StreamOp::kRead, {{"name", stream}, {"from_seq", std::to_string(from)}},
            [&p](Result<StreamFields> r) { p.set_value(std::move(r)); },
            [&out](const StoredMessage& m) {
              Stored s{m.sequence, std::string(m.subject), std::string(m.payload.as_string_view()), {}};
              if (m.headers != nullptr) {
                for (const auto& [k, v] : *m.headers) {
                  if (k == "Slip-Msg-Id") s.msg_id = std::string(v);
                }
              }
              out.push_back(std::move(s));
            });
        if (!st.is_ok()) p.set_value(st);
      });
      if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("no STREAM_RESPONSE to a read");
      auto r = f.get();
      if (!r.is_ok()) return r.status();
      const std::uint64_t next = std::stoull(field(*r, "next_seq"));
      const std::uint64_t last = std::stoull(field(*r, "last_seq"));
      if (next > last || next <= from) break;
      from = next;
    }
    return out;
  }

  static std::string field(const StreamFields& f, const std::string& key) {
    for (const auto& [k, v] : f) {
      if (k == key) return v;
    }
    return "";
  }
};

Status add_stream(StreamPeer& peer, const std::string& name, const std::string& subjects, StreamFields extra = {}) {
  StreamFields args = {{"name", name}, {"subjects", subjects}};
  for (auto& kv : extra) args.push_back(kv);
  return peer.request(wire::StreamOp::kAdd, args).status();
}

TEST(Streams, RefusedWithoutDataDir) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  Status st = add_stream(peer, "S", "s.>");
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("--data-dir"), std::string::npos) << st.to_string();
  auto ack = peer.publish("s.1", "x");
  ASSERT_FALSE(ack.is_ok());
  EXPECT_EQ(ack.status().code(), StatusCode::kFailedPrecondition);
  // The connection is still usable.
  EXPECT_EQ(peer.request(wire::StreamOp::kList, {}).status().code(), StatusCode::kFailedPrecondition);
}

TEST(Streams, PublishAckedIsStoredInOrderAndReachesSubscribers) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(add_stream(peer, "ORDERS", "orders.>").is_ok());

  StreamPeer listener(slipd.address(), "listener");
  ASSERT_TRUE(listener.wait_ready());
  std::vector<std::string> heard;  // on the listener's loop
  listener.run([&] {
    (void)listener.client().subscribe("orders.>", "", [&](const Message& m) {
      heard.emplace_back(m.payload.as_string_view());
    });
  });
  listener.sync();

  for (int i = 1; i <= 20; ++i) {
    auto seq = peer.publish(cat("orders.eu.", i), cat("order ", i));
    ASSERT_TRUE(seq.is_ok()) << seq.status().to_string();
    EXPECT_EQ(*seq, static_cast<std::uint64_t>(i));
  }
  ASSERT_TRUE(listener.wait_for([&] { return heard.size() == 20; }));
  listener.run([&] { EXPECT_EQ(heard.front(), "order 1"); });

  auto all = peer.read_all("ORDERS");
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 20u);
  for (std::size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].sequence, i + 1);
    EXPECT_EQ((*all)[i].subject, cat("orders.eu.", i + 1));
    EXPECT_EQ((*all)[i].payload, cat("order ", i + 1));
  }
  auto info = peer.request(wire::StreamOp::kInfo, {{"name", "ORDERS"}});
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(StreamPeer::field(*info, "messages"), "20");
  EXPECT_EQ(StreamPeer::field(*info, "first_seq"), "1");
  EXPECT_EQ(StreamPeer::field(*info, "last_seq"), "20");
  EXPECT_EQ(StreamPeer::field(*info, "consumers"), "0");
  EXPECT_EQ(StreamPeer::field(*info, "fsync"), "always");
}

TEST(Streams, PublishWithoutStreamIsNotFoundAndBadRequestsAreClearErrors) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  auto ack = peer.publish("nobody.here", "x");
  ASSERT_FALSE(ack.is_ok());
  EXPECT_EQ(ack.status().code(), StatusCode::kNotFound);
  EXPECT_NE(ack.status().message().find("no stream for subject"), std::string::npos) << ack.status().to_string();

  EXPECT_EQ(add_stream(peer, "bad name", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_stream(peer, "A", "a..b").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_stream(peer, "A", "a", {{"fsync", "sometimes"}}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(add_stream(peer, "A", "a", {{"colour", "red"}}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(add_stream(peer, "A", "a.>").is_ok());
  // The same again is fine; another configuration or an overlapping stream is not.
  EXPECT_TRUE(add_stream(peer, "A", "a.>").is_ok());
  EXPECT_EQ(add_stream(peer, "A", "a.>", {{"max_msgs", "5"}}).code(), StatusCode::kAlreadyExists);
  Status overlap = add_stream(peer, "B", "a.*.c");
  EXPECT_EQ(overlap.code(), StatusCode::kAlreadyExists);
  EXPECT_NE(overlap.message().find("stream \"A\""), std::string::npos) << overlap.to_string();
  EXPECT_EQ(peer.request(wire::StreamOp::kInfo, {{"name", "Z"}}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(peer.request(wire::StreamOp::kDelete, {{"name", "Z"}}).status().code(), StatusCode::kNotFound);
  // Deleted: gone from the list, and its subjects are free again.
  ASSERT_TRUE(peer.request(wire::StreamOp::kDelete, {{"name", "A"}}).is_ok());
  auto list = peer.request(wire::StreamOp::kList, {});
  ASSERT_TRUE(list.is_ok());
  EXPECT_EQ(StreamPeer::field(*list, "names"), "");
  EXPECT_EQ(peer.publish("a.b", "x").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(add_stream(peer, "B", "a.*.c").is_ok());
}

TEST(Streams, PlainPublishesAreCapturedAndDuplicatesStoredOnce) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(add_stream(peer, "EV", "ev.*", {{"fsync", "never"}}).is_ok());
  peer.run([&] {
    for (int i = 0; i < 50; ++i) (void)peer.client().publish("ev.x", Slice::copy_of(ByteView(cat("p", i))));
    (void)peer.client().publish("other", Slice::copy_of(ByteView("not captured")));
  });
  bool all_in = false;
  for (int attempt = 0; attempt < 3000 && !all_in; ++attempt) {
    auto info = peer.request(wire::StreamOp::kInfo, {{"name", "EV"}});
    ASSERT_TRUE(info.is_ok());
    all_in = StreamPeer::field(*info, "messages") == "50";
    if (!all_in) usleep(2000);
  }
  ASSERT_TRUE(all_in);
  auto a = peer.publish("ev.y", "once", "id-1");
  auto b = peer.publish("ev.y", "once again", "id-1");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(*a, 51u);
  EXPECT_EQ(*b, 51u);
  auto all = peer.read_all("EV");
  ASSERT_TRUE(all.is_ok());
  ASSERT_EQ(all->size(), 51u);
  EXPECT_EQ((*all)[0].payload, "p0");
  EXPECT_EQ((*all)[49].payload, "p49");
  EXPECT_EQ((*all)[50].payload, "once");
  EXPECT_EQ((*all)[50].msg_id, "id-1");
}

// A window of publishes spread over two streams whose acks come back at different paces (one
// fsyncs every batch, the other never): acks of one stream may overtake the other's. Every
// publish gets exactly one ack, with the next sequence of its own stream, and both streams read
// back complete and in order.
TEST(Streams, WindowedPublishesOverTwoStreamsGetEveryAckOnce) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  ASSERT_TRUE(add_stream(peer, "SLOW", "slow.>", {{"fsync", "always"}}).is_ok());
  ASSERT_TRUE(add_stream(peer, "FAST", "fast.>", {{"fsync", "never"}}).is_ok());

  constexpr std::uint64_t kCount = 3000;  // per stream
  constexpr std::size_t kWindow = 128;
  // All on the peer's loop.
  std::uint64_t sent = 0;
  std::uint64_t next_seq[2] = {1, 1};
  std::vector<int> acks_of(2 * kCount, 0);
  std::uint64_t acked = 0;
  std::string error;
  std::function<void()> fill;
  fill = [&] {
    while (sent < 2 * kCount && error.empty() && sent - acked < kWindow) {
      const std::uint64_t i = sent++;
      const int which = static_cast<int>(i % 2);
      const std::string subject = which == 0 ? "slow.x" : "fast.x";
      Status st = peer.client().publish_acked(subject, Slice::copy_of(ByteView(cat("m", i))), nullptr,
                                              [&, i, which](Result<std::uint64_t> r) {
                                                ++acked;
                                                if (!r.is_ok()) {
                                                  error = r.status().to_string();
                                                  return;
                                                }
                                                ++acks_of[i];
                                                if (*r != next_seq[which]) {
                                                  error = cat(cat(cat("publish ", i), " acked with sequence "), *r);
                                                }
                                                ++next_seq[which];
                                                fill();
                                              });
      if (!st.is_ok()) error = st.to_string();
    }
  };
  peer.run([&] {
    peer.client().set_ack_window(kWindow);
    fill();
  });
  ASSERT_TRUE(peer.wait_for([&] { return acked == 2 * kCount || !error.empty(); }));
  peer.run([&] {
    EXPECT_EQ(error, "");
    EXPECT_EQ(next_seq[0], kCount + 1);
    EXPECT_EQ(next_seq[1], kCount + 1);
    EXPECT_EQ(std::count(acks_of.begin(), acks_of.end(), 1), static_cast<std::ptrdiff_t>(2 * kCount));
    EXPECT_EQ(peer.client().unacked(), 0u);
  });
  for (int which = 0; which < 2; ++which) {
    auto all = peer.read_all(which == 0 ? "SLOW" : "FAST");
    ASSERT_TRUE(all.is_ok()) << all.status().to_string();
    ASSERT_EQ(all->size(), kCount);
    for (std::uint64_t k = 0; k < kCount; ++k) {
      ASSERT_EQ((*all)[k].sequence, k + 1);
      ASSERT_EQ((*all)[k].payload, cat("m", 2 * k + static_cast<std::uint64_t>(which)));
      ASSERT_EQ((*all)[k].subject, which == 0 ? "slow.x" : "fast.x");
    }
  }
}

// slipd remembers which stream took a subject until streams are added or removed: a subject
// without a stream finds one added later, and one whose stream was replaced goes to the new one.
TEST(Streams, PublishFollowsStreamsAddedAndReplaced) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  EXPECT_EQ(peer.publish("x.1", "lost").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(add_stream(peer, "X", "x.>").is_ok());
  for (std::uint64_t i = 1; i <= 3; ++i) {
    auto seq = peer.publish("x.1", cat("x", i));
    ASSERT_TRUE(seq.is_ok()) << seq.status().to_string();
    EXPECT_EQ(*seq, i);
  }
  ASSERT_TRUE(peer.request(wire::StreamOp::kDelete, {{"name", "X"}}).is_ok());
  ASSERT_TRUE(add_stream(peer, "Y", "x.*").is_ok());
  auto seq = peer.publish("x.1", "y1");
  ASSERT_TRUE(seq.is_ok()) << seq.status().to_string();
  EXPECT_EQ(*seq, 1u);
  auto all = peer.read_all("Y");
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].payload, "y1");
  EXPECT_EQ(peer.request(wire::StreamOp::kInfo, {{"name", "X"}}).status().code(), StatusCode::kNotFound);
}

TEST(Streams, StreamsAndMessagesSurviveARestart) {
  TempDir data;
  {
    SlipdProcess slipd({"--data-dir", data.path()});
    ASSERT_TRUE(slipd.ok()) << slipd.log();
    StreamPeer peer(slipd.address());
    ASSERT_TRUE(peer.wait_ready());
    ASSERT_TRUE(add_stream(peer, "KEEP", "keep.>", {{"max_msgs", "100"}, {"fsync", "100ms"}}).is_ok());
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(peer.publish("keep.a", cat("m", i)).is_ok());
    peer.stop();
    EXPECT_EQ(slipd.stop(SIGTERM), 0);
  }
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  StreamPeer peer(slipd.address());
  ASSERT_TRUE(peer.wait_ready());
  auto info = peer.request(wire::StreamOp::kInfo, {{"name", "KEEP"}});
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(StreamPeer::field(*info, "messages"), "5");
  EXPECT_EQ(StreamPeer::field(*info, "max_msgs"), "100");
  EXPECT_EQ(StreamPeer::field(*info, "fsync"), "100ms");
  auto seq = peer.publish("keep.b", "after");
  ASSERT_TRUE(seq.is_ok());
  EXPECT_EQ(*seq, 6u);
}

TEST(Streams, SlipCommands) {
  TempDir data;
  SlipdProcess slipd({"--data-dir", data.path()});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  const std::string s = slipd.address();
  std::string out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "add", "LOGS", "--subjects", "logs.>,audit.*",
                               "--max-msgs", "1000", "--max-age", "24h", "--discard", "new", "--fsync", "never"},
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("created stream LOGS"), std::string::npos) << out;
  EXPECT_NE(out.find("discard new"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "pub", "--ack", "logs.app", "hello"}, &out), 0) << out;
  EXPECT_NE(out.find("sequence 1"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "publish", "--ack", "audit.x", "second"}, &out), 0) << out;
  EXPECT_NE(out.find("sequence 2"), std::string::npos) << out;
  EXPECT_NE(test::run_program({SLIP_PATH, "-s", s, "pub", "--ack", "nothing.here", "x"}, &out), 0);
  EXPECT_NE(out.find("no stream for subject"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "ls"}, &out), 0) << out;
  EXPECT_EQ(out, "LOGS\n");
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "info", "LOGS"}, &out), 0) << out;
  EXPECT_NE(out.find("messages:   2"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "read", "LOGS"}, &out), 0) << out;
  EXPECT_EQ(out, "[1] logs.app: hello\n[2] audit.x: second\n");
  EXPECT_NE(test::run_program({SLIP_PATH, "-s", s, "stream", "info", "NOPE"}, &out), 0);
  EXPECT_NE(out.find("no stream \"NOPE\""), std::string::npos) << out;
  EXPECT_NE(test::run_program({SLIP_PATH, "-s", s, "stream", "add", "X", "--subjects", "x", "--max-age", "soon"}, &out), 0);
  EXPECT_NE(out.find("not a duration"), std::string::npos) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "rm", "LOGS"}, &out), 0) << out;
  ASSERT_EQ(test::run_program({SLIP_PATH, "-s", s, "stream", "ls"}, &out), 0) << out;
  EXPECT_EQ(out, "no streams\n");
  EXPECT_NE(test::run_program({SLIP_PATH, "-s", s, "stream", "rm", "LOGS"}, &out), 0);
}

// A full disk: the publish fails with a clear error, nothing acknowledged is lost, and the
// stream works again once there is room.
TEST(Streams, FullDiskFailsThePublishAndLosesNothingAcknowledged) {
  TempDir data;
  const std::string full = cat(data.path(), "/disk-full");
  setenv("SLIPD_FAIL_WRITES_FOR_TEST", full.c_str(), 1);
  SlipdProcess slipd({"--data-dir", cat(data.path(), "/d")});
  unsetenv("SLIPD_FAIL_WRITES_FOR_TEST");
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  {
    StreamPeer peer(slipd.address());
    ASSERT_TRUE(peer.wait_ready());
    ASSERT_TRUE(add_stream(peer, "DISK", "disk.>").is_ok());
    ASSERT_EQ(peer.publish("disk.a", "first").value_or(0), 1u);
    ASSERT_EQ(peer.publish("disk.a", "second").value_or(0), 2u);
    { std::ofstream(full) << "x"; }
    auto r = peer.publish("disk.a", "refused");
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kOverloaded);
    EXPECT_NE(r.status().message().find("no space left on device"), std::string::npos) << "[" << r.status().to_string() << "]";
    auto info = peer.request(wire::StreamOp::kInfo, {{"name", "DISK"}});
    ASSERT_TRUE(info.is_ok());
    EXPECT_EQ(StreamPeer::field(*info, "messages"), "2");
    EXPECT_EQ(StreamPeer::field(*info, "write_errors"), "1");
    std::remove(full.c_str());
    ASSERT_EQ(peer.publish("disk.a", "third").value_or(0), 3u);
  }
  slipd.stop(SIGKILL);
  SlipdProcess again({"--data-dir", cat(data.path(), "/d")});
  ASSERT_TRUE(again.ok()) << again.log();
  StreamPeer peer(again.address());
  ASSERT_TRUE(peer.wait_ready());
  auto all = peer.read_all("DISK");
  ASSERT_TRUE(all.is_ok()) << all.status().to_string();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].payload, "first");
  EXPECT_EQ((*all)[1].payload, "second");
  EXPECT_EQ((*all)[2].payload, "third");
}

// The crash test. A loader publishes with a window of unacknowledged publishes, each message
// carrying a unique Slip-Msg-Id; slipd is killed with SIGKILL at random moments (seeded) and
// restarted on the same data directory; after each restart the loader publishes again every
// message that had no ack (the de-duplication window makes a message stored before the kill
// count once). At the end every acknowledged message must be in the stream exactly once, in the
// order of its sequence, with its content, and the stream must hold nothing else.
TEST(Streams, CrashTestLosesNoAcknowledgedMessage) {
  constexpr int kKills = 5;
  constexpr std::size_t kWindow = 64;
  const unsigned seed = 20261201;
  std::mt19937 rng(seed);
  TempDir data;
  std::map<std::string, std::uint64_t> acked;  // msg id -> sequence
  std::map<std::string, std::string> payload_of;
  std::uint64_t next_msg = 0;
  std::vector<std::string> unacked;  // sent, no ack yet, in send order
  std::uint64_t published = 0;

  auto make_payload = [](std::uint64_t i) {
    std::string p = cat(cat("msg-", i), "-");
    p.append(static_cast<std::size_t>(20 + i % 200), static_cast<char>('a' + i % 26));
    return p;
  };

  for (int life = 0; life <= kKills; ++life) {
    SlipdProcess slipd({"--data-dir", data.path()});
    ASSERT_TRUE(slipd.ok()) << slipd.log();
    StreamPeer peer(slipd.address(), "loader", [](session::ClientOptions& o) { o.reconnect.enabled = false; });
    ASSERT_TRUE(peer.wait_ready());
    if (life == 0) {
      ASSERT_TRUE(add_stream(peer, "CRASH", "crash.>", {{"fsync", "always"}}).is_ok());
    }

    // Everything still unacknowledged goes again first, then new messages; the loop keeps
    // kWindow publishes outstanding. Runs on the peer's loop.
    std::mutex mu;
    std::size_t in_flight = 0;
    bool dead = false;
    std::vector<std::string> resend = unacked;
    unacked.clear();
    std::set<std::string> outstanding;
    std::function<void()> pump;
    pump = [&] {
      std::lock_guard lk(mu);
      while (!dead && in_flight < kWindow) {
        std::string id;
        if (!resend.empty()) {
          id = resend.front();
          resend.erase(resend.begin());
        } else {
          id = cat("m", next_msg);
          payload_of[id] = make_payload(next_msg);
          ++next_msg;
        }
        const wire::Metadata h = {{"Slip-Msg-Id", id}};
        ++in_flight;
        outstanding.insert(id);
        ++published;
        Status st = peer.client().publish_acked(
            "crash.data", Slice::copy_of(ByteView(payload_of[id])), &h, [&, id](Result<std::uint64_t> r) {
              {
                std::lock_guard lk2(mu);
                --in_flight;
                if (r.is_ok()) {
                  acked[id] = *r;
                  outstanding.erase(id);
                } else {
                  dead = true;
                }
              }
              if (r.is_ok()) pump();
            });
        if (!st.is_ok()) {
          dead = true;
          --in_flight;
        }
      }
    };
    peer.run([&] { pump(); });

    if (life < kKills) {
      // Kill at a random moment: after a random number of further acks.
      std::size_t target = 0;
      {
        std::lock_guard lk(mu);
        target = acked.size() + 500 + rng() % 3000;
      }
      ASSERT_TRUE(peer.wait_for([&] {
        std::lock_guard lk(mu);
        return acked.size() >= target || dead;
      }));
      slipd.stop(SIGKILL);
      ASSERT_TRUE(peer.wait_for([&] {
        std::lock_guard lk(mu);
        return dead && in_flight == 0;
      }));
      peer.stop();
      std::lock_guard lk(mu);
      for (const auto& id : resend) outstanding.insert(id);
      unacked.assign(outstanding.begin(), outstanding.end());
      continue;
    }

    // The last life: let everything outstanding finish, then check the stream.
    {
      std::lock_guard lk(mu);
      dead = true;  // no new messages
    }
    ASSERT_TRUE(peer.wait_for([&] {
      std::lock_guard lk(mu);
      return in_flight == 0;
    }));
    // Messages resent only now (none were outstanding while stopping: send the rest).
    std::vector<std::string> rest;
    {
      std::lock_guard lk(mu);
      rest = resend;
      for (const auto& id : outstanding) rest.push_back(id);
    }
    for (const auto& id : rest) {
      auto r = peer.publish("crash.data", payload_of[id], id);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      acked[id] = *r;
    }
    auto all = peer.read_all("CRASH");
    ASSERT_TRUE(all.is_ok()) << all.status().to_string();
    std::map<std::string, std::size_t> seen;
    std::uint64_t prev = 0;
    for (const Stored& s : *all) {
      EXPECT_GT(s.sequence, prev);
      prev = s.sequence;
      ++seen[s.msg_id];
      auto p = payload_of.find(s.msg_id);
      ASSERT_NE(p, payload_of.end()) << "unknown message " << s.msg_id;
      EXPECT_EQ(s.payload, p->second) << s.msg_id;
      EXPECT_EQ(s.subject, "crash.data");
    }
    std::size_t missing = 0, wrong_seq = 0, dup = 0;
    std::map<std::uint64_t, std::string> by_seq;
    for (const Stored& s : *all) by_seq[s.sequence] = s.msg_id;
    for (const auto& [id, seq] : acked) {
      if (seen[id] == 0) ++missing;
      if (seen[id] > 1) ++dup;
      auto it = by_seq.find(seq);
      if (it == by_seq.end() || it->second != id) ++wrong_seq;
    }
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(dup, 0u);
    EXPECT_EQ(wrong_seq, 0u);
    // The de-duplication left nothing but acknowledged messages.
    EXPECT_EQ(all->size(), acked.size());
    peer.stop();
    std::printf("crash test (seed %u): %d SIGKILLs, %zu messages acknowledged, %llu publishes sent, %zu stored\n",
                seed, kKills, acked.size(), static_cast<unsigned long long>(published), all->size());
  }
}

}  // namespace
}  // namespace slip::broker
