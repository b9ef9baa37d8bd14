// Sessions over real TCP on 127.0.0.1, server and client in one process on separate loops:
// streams, flow control, priorities, heartbeats, reconnects, GOAWAY and compression. Every
// assertion is about counts and bytes, never time.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <mutex>
#include <random>

#include "io/loop_group.h"
#include "io/run_on.h"
#include "process.h"
#include "session/client.h"
#include "session/session.h"
#include "transport/tcp/tcp.h"
#include "wire/encoder.h"

namespace slip::session {
namespace {

constexpr auto kLiveness = std::chrono::seconds(60);

using io::run_on;

// Waits (with a liveness bound) until pred(), evaluated on `loop`, holds.
template <typename Pred>
bool wait_until(io::EventLoop& loop, Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kLiveness;
  while (std::chrono::steady_clock::now() < deadline) {
    bool ok = false;
    run_on(loop, [&] { ok = pred(); });
    if (ok) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

// Server-side behaviour, chosen per test.
struct ServerBehaviour {
  bool echo = true;          // send every message back on its stream
  bool pause_streams = false;  // never take messages: a reader that does not read
  bool go_away_on_open = false;
};

// A server: echoes messages back on the stream they came on (or holds them, per behaviour).
class TestServer final : public SessionHandler, public StreamHandler {
 public:
  explicit TestServer(ServerBehaviour b = {}, std::uint16_t port = 0, SessionOptions so = {})
      : behaviour_(b), options_(so), loops_(1, io::LoopOptions{io::IdleStrategy::kBlock, {}}) {
    loops_.start();
    auto l = transport::tcp_listen(loops_, transport::HostPort{"127.0.0.1", port}, {},
                                   [this](transport::ConnectionPtr c) {
                                     auto s = Session::server(c, hs_, ++ids_, options_, this);
                                     sessions_.push_back(s);
                                     s->start();
                                   });
    EXPECT_TRUE(l.is_ok()) << l.status().to_string();
    if (l.is_ok()) listener_ = std::move(l).value();
  }
  ~TestServer() override { stop(); }

  void stop() {
    if (!listener_) return;
    listener_->stop();
    run_on(loop(), [&] {
      for (auto& s : sessions_) s->abort(disconnected("test server stopping"));
    });
    // The close callbacks were posted by the aborts: let them run, then drop the sessions while
    // their loop (and its timers' io_context) still exists.
    run_on(loop(), [] {});
    run_on(loop(), [&] { sessions_.clear(); });
    loops_.stop();
    listener_.reset();
  }

  io::EventLoop& loop() { return loops_.loop(0); }
  std::uint16_t port() const {
    auto hp = transport::parse_host_port(listener_->local_address());
    return hp->port;
  }

  StreamHandler* on_stream_open(Session& s, std::uint64_t, Priority) override {
    if (behaviour_.go_away_on_open) s.go_away(Status(StatusCode::kDisconnected, "test drain"));
    return this;
  }
  void on_message(Session& s, std::uint64_t stream, Chain message) override {
    ++messages_;
    bytes_ += message.size();
    if (message.size() <= 64) bulk_chunks_at_small_.push_back(s.stats().chunks_in[3]);
    if (behaviour_.pause_streams) s.pause_stream(stream);
    if (behaviour_.echo) {
      EXPECT_TRUE(s.send(stream, std::move(message)).is_ok());
    }
  }
  void on_end(Session& s, std::uint64_t stream) override { (void)s.end_stream(stream); }

  // Touched on the server loop only.
  std::vector<std::shared_ptr<Session>> sessions_;
  std::uint64_t messages_ = 0;
  std::uint64_t bytes_ = 0;
  std::vector<std::uint64_t> bulk_chunks_at_small_;

 private:
  ServerBehaviour behaviour_;
  SessionOptions options_;
  wire::ServerHandshakeConfig hs_;
  io::LoopGroup loops_;
  std::unique_ptr<transport::Listener> listener_;
  std::uint64_t ids_ = 0;
};

// A client session on its own loop that records everything per stream.
class TestClient final : public SessionHandler, public StreamHandler {
 public:
  explicit TestClient(std::uint16_t port, SessionOptions so = {}, wire::ClientHandshakeConfig hs = {})
      : loops_(1, io::LoopOptions{io::IdleStrategy::kBlock, {}}) {
    loops_.start();
    ClientOptions o;
    o.dial = tcp_dialer(transport::HostPort{"127.0.0.1", port});
    o.handshake = hs;
    o.session = so;
    run_on(loop(), [&] {
      client_ = std::make_unique<Client>(loop(), o, this);
      client_->start();
    });
  }
  ~TestClient() override {
    run_on(loop(), [&] { client_.reset(); });
    // Callbacks posted by a handler reach the queue after anything posted meanwhile from
    // another thread: two empty turns let the session's close callback run before the stop.
    run_on(loop(), [] {});
    run_on(loop(), [] {});
    loops_.stop();
  }

  io::EventLoop& loop() { return loops_.loop(0); }
  Client& client() { return *client_; }
  Session& session() { return *client_->session(); }
  bool wait_ready() {
    return wait_until(loop(), [&] { return client_->session() && client_->session()->ready(); });
  }

  void on_ready(Session&) override { ++readies_; }
  void on_closed(Session&, const Status& reason) override {
    ++closes_;
    last_close_ = reason;
  }
  void on_message(Session&, std::uint64_t stream, Chain message) override {
    received_[stream].push_back(message.to_string());
  }
  void on_end(Session&, std::uint64_t stream) override { ended_.insert(stream); }
  void on_reset(Session&, std::uint64_t stream, const Status& reason) override { resets_[stream] = reason; }

  // Touched on the client loop only.
  std::map<std::uint64_t, std::vector<std::string>> received_;
  std::set<std::uint64_t> ended_;
  std::map<std::uint64_t, Status> resets_;
  int readies_ = 0;
  int closes_ = 0;
  Status last_close_;

 private:
  io::LoopGroup loops_;
  std::unique_ptr<Client> client_;
};

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Session, HundredsOfStreamsDeliverEveryMessageIntactAndInOrder) {
  TestServer server;
  TestClient client(server.port());
  ASSERT_TRUE(client.wait_ready());
  constexpr int kStreams = 300;
  constexpr int kMessages = 20;
  std::map<std::uint64_t, std::vector<std::string>> sent;
  run_on(client.loop(), [&] {
    std::mt19937 rng(1);
    std::vector<std::uint64_t> ids;
    for (int i = 0; i < kStreams; ++i) {
      auto id = client.session().open_stream(static_cast<Priority>(1 + i % 3), &client);
      ASSERT_TRUE(id.is_ok()) << id.status().to_string();
      ids.push_back(*id);
    }
    // Interleave: message m of every stream, then m + 1. Some exceed the chunk size.
    for (int m = 0; m < kMessages; ++m) {
      for (std::uint64_t id : ids) {
        std::size_t n = (rng() % 10 == 0) ? 20000 + rng() % 50000 : 1 + rng() % 300;
        std::string body = random_bytes(rng, n);
        sent[id].push_back(body);
        ASSERT_TRUE(client.session().send(id, Chain(Slice::copy_of(body)), m == kMessages - 1).is_ok());
      }
    }
  });
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.size() == kStreams; }));
  run_on(client.loop(), [&] {
    for (auto& [id, msgs] : sent) {
      ASSERT_EQ(client.received_[id].size(), msgs.size()) << "stream " << id;
      for (std::size_t i = 0; i < msgs.size(); ++i) ASSERT_TRUE(client.received_[id][i] == msgs[i]) << id << "/" << i;
    }
    EXPECT_EQ(client.session().open_streams(), 0u);  // both sides ended: streams are gone
  });
}

// frames_per_turn: a read of many requests is answered in parts (the first answers are written
// before the rest of the read is handled), and nothing is lost or reordered by the split.
TEST(Session, ReadSplitIntoTurnsAnswersEveryStreamInOrder) {
  for (std::size_t per_turn : {std::size_t{4}, std::size_t{0}}) {
    SCOPED_TRACE(per_turn);
    SessionOptions so;
    so.frames_per_turn = per_turn;
    TestServer server({}, 0, so);
    TestClient client(server.port());
    ASSERT_TRUE(client.wait_ready());
    constexpr int kStreams = 200;
    std::map<std::uint64_t, std::vector<std::string>> sent;
    run_on(client.loop(), [&] {
      std::mt19937 rng(7);
      // All in one loop turn: one write, which the server reads as one batch of frames.
      for (int i = 0; i < kStreams; ++i) {
        auto id = client.session().open_stream(Priority::kInteractive, &client);
        ASSERT_TRUE(id.is_ok()) << id.status().to_string();
        for (int m = 0; m < 3; ++m) {
          std::string body = random_bytes(rng, 1 + rng() % 100);
          sent[*id].push_back(body);
          ASSERT_TRUE(client.session().send(*id, Chain(Slice::copy_of(body)), m == 2).is_ok());
        }
      }
    });
    ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.size() == kStreams; }));
    run_on(client.loop(), [&] {
      for (auto& [id, msgs] : sent) ASSERT_EQ(client.received_[id], msgs) << "stream " << id;
    });
    run_on(server.loop(), [&] {
      ASSERT_EQ(server.sessions_.size(), 1u);
      const std::uint64_t yielded = server.sessions_[0]->stats().turns_yielded;
      if (per_turn == 0) {
        EXPECT_EQ(yielded, 0u);
      } else {
        EXPECT_GT(yielded, 0u);
      }
    });
  }
}

TEST(Session, ReaderThatNeverReadsBoundsTheSenderAndStallsOnlyItsStream) {
  ServerBehaviour paused;
  paused.echo = false;
  paused.pause_streams = true;
  TestServer server(paused);
  SessionOptions so;
  so.max_stream_buffer = 1u << 20;
  TestClient slow(server.port(), so);
  TestClient fast(server.port());
  ASSERT_TRUE(slow.wait_ready());
  ASSERT_TRUE(fast.wait_ready());

  // Push 64 KiB messages at the stalled stream until the session refuses more.
  std::uint64_t stream = 0;
  int accepted = 0;
  Status refused;
  std::mt19937 rng(5);
  const std::string chunk = random_bytes(rng, 64 * 1024);  // incompressible: no codec shrinks it
  run_on(slow.loop(), [&] {
    stream = *slow.session().open_stream(Priority::kStream, &slow);
  });
  for (int i = 0; i < 2000 && refused.is_ok(); ++i) {
    run_on(slow.loop(), [&] {
      refused = slow.session().send(stream, Chain(Slice::copy_of(chunk)));
      if (refused.is_ok()) ++accepted;
    });
  }
  EXPECT_EQ(refused.code(), StatusCode::kOverloaded) << refused.to_string();
  run_on(slow.loop(), [&] {
    const auto& st = slow.session().stats();
    // The sender never buffered more than its bound plus the one message that crossed it.
    EXPECT_LE(st.send_buffered_max, so.max_stream_buffer + chunk.size());
    EXPECT_LE(slow.session().stream_buffered(stream), so.max_stream_buffer + chunk.size());
    EXPECT_GT(st.credit_stalls, 0u);
  });
  // Only the peer's window (one stream's credit) ever crossed the wire.
  EXPECT_LT(static_cast<std::size_t>(accepted) * chunk.size(),
            so.max_stream_buffer + chunk.size() + wire::kDefaultInitialCredit + 2 * chunk.size());

  // Another connection to the same server is unaffected.
  ServerBehaviour echo;
  TestServer echo_server(echo);
  TestClient other(echo_server.port());
  ASSERT_TRUE(other.wait_ready());
  std::uint64_t s2 = 0;
  run_on(fast.loop(), [&] {
    s2 = *fast.session().open_stream(Priority::kInteractive, &fast);
    ASSERT_TRUE(fast.session().send(s2, Chain(Slice::copy_of("still flowing")), true).is_ok());
  });
  // The paused server takes the first message of the fast client's stream too (it pauses every
  // stream), but that client's session still opened and sent without hitting any bound.
  run_on(fast.loop(), [&] { EXPECT_EQ(fast.session().stats().credit_stalls, 0u); });
  run_on(other.loop(), [&] {
    std::uint64_t id = *other.session().open_stream(Priority::kInteractive, &other);
    ASSERT_TRUE(other.session().send(id, Chain(Slice::copy_of("ping")), true).is_ok());
  });
  ASSERT_TRUE(wait_until(other.loop(), [&] { return !other.received_.empty(); }));
}

TEST(Session, InteractiveMessageOvertakesA100MBBulkTransfer) {
  TestServer server;
  SessionOptions so;
  so.compression.codecs = 0;  // 100 MB of one letter would otherwise shrink to a few chunks
  TestClient client(server.port(), so);
  ASSERT_TRUE(client.wait_ready());
  std::uint64_t bulk = 0, interactive = 0;
  std::string big(100u << 20, 'b');
  run_on(client.loop(), [&] {
    bulk = *client.session().open_stream(Priority::kBulk, &client);
    interactive = *client.session().open_stream(Priority::kInteractive, &client);
    ASSERT_TRUE(client.session().send(bulk, Chain(Slice::copy_of(big)), true).is_ok());
  });
  big.clear();
  // Wait until the bulk transfer is well under way, then send a 64-byte request.
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.session().stats().chunks_out[3] >= 50; }));
  std::uint64_t bulk_sent_at_request = 0;
  run_on(client.loop(), [&] {
    bulk_sent_at_request = client.session().stats().chunks_out[3];
    ASSERT_TRUE(client.session().send(interactive, Chain(Slice::copy_of(std::string(64, 'i'))), true).is_ok());
  });
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.count(interactive) == 1; }));
  std::uint64_t bulk_done_when_reply = 0;
  run_on(client.loop(), [&] {
    ASSERT_EQ(client.received_[interactive].size(), 1u);
    EXPECT_EQ(client.received_[interactive][0], std::string(64, 'i'));
    bulk_done_when_reply = client.received_[bulk].size();
  });
  std::uint64_t bulk_seen_at_arrival = 0;
  run_on(server.loop(), [&] {
    ASSERT_EQ(server.bulk_chunks_at_small_.size(), 1u);
    bulk_seen_at_arrival = server.bulk_chunks_at_small_[0];
  });
  // Bulk chunks that the scheduler emitted after the request was queued and before it: none.
  EXPECT_LE(bulk_seen_at_arrival, bulk_sent_at_request + 1)
      << "bulk chunks framed before the request: " << bulk_sent_at_request
      << ", received before it: " << bulk_seen_at_arrival;
  EXPECT_EQ(bulk_done_when_reply, 0u);  // the reply did not wait for the 100 MB echo
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.count(bulk) == 1; }));
  run_on(client.loop(), [&] { EXPECT_EQ(client.received_[bulk][0].size(), 100u << 20); });
}

// Sends `bulk_bytes` on a bulk stream beside interactive echoes; returns the client's
// SessionStats::bulk_held once the bulk message came back whole.
std::uint64_t bulk_held_beside_calls(const SessionOptions& so, std::size_t bulk_bytes, int calls) {
  TestServer server;
  TestClient client(server.port(), so);
  EXPECT_TRUE(client.wait_ready());
  std::uint64_t bulk = 0, interactive = 0;
  run_on(client.loop(), [&] {
    bulk = *client.session().open_stream(Priority::kBulk, &client);
    interactive = *client.session().open_stream(Priority::kInteractive, &client);
    for (int i = 0; i < calls; ++i) {
      EXPECT_TRUE(client.session().send(interactive, Chain(Slice::copy_of(std::string(64, 'i')))).is_ok());
    }
    EXPECT_TRUE(client.session().send(bulk, Chain(Slice::copy_of(std::string(bulk_bytes, 'b'))), true).is_ok());
  });
  EXPECT_TRUE(wait_until(client.loop(), [&] { return client.ended_.count(bulk) == 1; }));
  std::uint64_t held = 0;
  run_on(client.loop(), [&] {
    EXPECT_EQ(client.received_[bulk].size(), 1u);
    if (!client.received_[bulk].empty()) {
      EXPECT_EQ(client.received_[bulk][0], std::string(bulk_bytes, 'b'));
    }
    EXPECT_EQ(client.received_[interactive].size(), static_cast<std::size_t>(calls));
    held = client.session().stats().bulk_held;
  });
  return held;
}

TEST(Session, BulkStopsAtBulkHighWaterWhileInteractiveCallsAreActive) {
  SessionOptions so;
  so.compression.codecs = 0;
  so.bulk_high_water = 16 * 1024;
  so.interactive_hold = std::chrono::hours(1);  // active from the first call to the end
  EXPECT_GT(bulk_held_beside_calls(so, 8u << 20, 4), 0u);
}

TEST(Session, BulkUsesSendHighWaterWithoutInteractiveCalls) {
  SessionOptions so;
  so.compression.codecs = 0;
  so.bulk_high_water = 16 * 1024;
  so.interactive_hold = std::chrono::hours(1);
  EXPECT_EQ(bulk_held_beside_calls(so, 8u << 20, 0), 0u);
}

TEST(Session, BulkHighWaterAtSendHighWaterHoldsNothingBack) {
  SessionOptions so;
  so.compression.codecs = 0;
  so.bulk_high_water = so.send_high_water;
  so.interactive_hold = std::chrono::hours(1);
  EXPECT_EQ(bulk_held_beside_calls(so, 8u << 20, 4), 0u);
}

// Completes the handshake, then never says another word.
class BlackHole final : public transport::ConnectionHandler {
 public:
  explicit BlackHole(transport::ConnectionPtr c) : conn_(std::move(c)), hs_(cfg_, 1) {}
  void on_bytes(Slice b) override {
    if (done_) return;
    auto r = hs_.feed(std::move(b));
    conn_->send(hs_.take_output());
    done_ = r.is_ok() && *r;
  }
  void on_closed(Status) override { conn_.reset(); }

 private:
  transport::ConnectionPtr conn_;
  wire::ServerHandshakeConfig cfg_;
  wire::ServerHandshake hs_;
  bool done_ = false;
};

TEST(Session, PeerThatStopsAnsweringIsDetectedByHeartbeat) {
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  std::vector<std::shared_ptr<BlackHole>> holes;
  auto l = transport::tcp_listen(loops, transport::HostPort{"127.0.0.1", 0}, {}, [&](transport::ConnectionPtr c) {
    auto h = std::make_shared<BlackHole>(c);
    holes.push_back(h);
    c->start(h.get());
  });
  ASSERT_TRUE(l.is_ok());
  wire::ClientHandshakeConfig hs;
  hs.heartbeat_ms = 20;
  SessionOptions so;
  TestClient client(transport::parse_host_port((*l)->local_address())->port, so, hs);
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.closes_ >= 1; }));
  run_on(client.loop(), [&] {
    EXPECT_EQ(client.readies_, 1);
    EXPECT_EQ(client.last_close_.code(), StatusCode::kTimeout) << client.last_close_.to_string();
    client.client().stop();
  });
  (*l)->stop();
  loops.stop();
}

TEST(Session, ClientReconnectsToARestartedServer) {
  auto server = std::make_unique<TestServer>();
  const std::uint16_t port = server->port();
  TestClient client(port);
  ASSERT_TRUE(client.wait_ready());
  server.reset();  // the server goes away entirely
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.closes_ >= 1; }));
  server = std::make_unique<TestServer>(ServerBehaviour{}, port);
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.client().connects() >= 2; }));
  // The new session works.
  std::uint64_t id = 0;
  run_on(client.loop(), [&] {
    id = *client.session().open_stream(Priority::kInteractive, &client);
    ASSERT_TRUE(client.session().send(id, Chain(Slice::copy_of("again")), true).is_ok());
  });
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.count(id) == 1; }));
  run_on(client.loop(), [&] {
    EXPECT_EQ(client.received_[id].at(0), "again");
    EXPECT_GE(client.client().attempts(), 2u);
  });
}

TEST(Session, BackoffGrowsAndStaysWithinItsBounds) {
  ReconnectPolicy p;
  p.initial = std::chrono::milliseconds(100);
  p.max = std::chrono::milliseconds(1000);
  std::mt19937_64 rng(3);
  for (std::uint32_t a = 0; a < 20; ++a) {
    const double full = std::min(1000.0, 100.0 * std::pow(2.0, a));
    for (int k = 0; k < 50; ++k) {
      auto d = backoff_delay(p, a, rng);
      EXPECT_GE(d.count(), static_cast<std::int64_t>(full / 2) - 1);
      EXPECT_LE(d.count(), static_cast<std::int64_t>(full));
    }
  }
  p.jitter = false;
  EXPECT_EQ(backoff_delay(p, 0, rng).count(), 100);
  EXPECT_EQ(backoff_delay(p, 3, rng).count(), 800);
  EXPECT_EQ(backoff_delay(p, 40, rng).count(), 1000);
}

TEST(Session, GoAwayLetsInFlightStreamsFinish) {
  ServerBehaviour b;
  b.go_away_on_open = true;
  TestServer server(b);
  TestClient client(server.port());
  ASSERT_TRUE(client.wait_ready());
  std::uint64_t id = 0;
  std::string body(20u << 20, 'g');
  run_on(client.loop(), [&] {
    id = *client.session().open_stream(Priority::kStream, &client);
    ASSERT_TRUE(client.session().send(id, Chain(Slice::copy_of(body)), true).is_ok());
  });
  // The server said GOAWAY when the stream opened; the 20 MB message and its echo still finish.
  ASSERT_TRUE(wait_until(client.loop(), [&] { return client.closes_ >= 1; }));
  run_on(client.loop(), [&] {
    ASSERT_EQ(client.received_[id].size(), 1u);
    EXPECT_TRUE(client.received_[id][0] == body);
    EXPECT_EQ(client.ended_.count(id), 1u);
    EXPECT_TRUE(client.resets_.empty());
    EXPECT_TRUE(client.last_close_.is_ok() || client.last_close_.code() == StatusCode::kDisconnected)
        << client.last_close_.to_string();
    client.client().stop();
  });
}

TEST(Session, NewStreamsAreRefusedAfterGoAway) {
  TestServer server;
  TestClient client(server.port());
  ASSERT_TRUE(client.wait_ready());
  run_on(client.loop(), [&] {
    client.client().stop();  // sends GOAWAY
    auto id = client.session().open_stream(Priority::kInteractive, &client);
    ASSERT_FALSE(id.is_ok());
    EXPECT_EQ(id.status().code(), StatusCode::kDisconnected);
  });
}

TEST(Session, CompressionRoundTripsWithEachCodec) {
  for (wire::Codec codec : {wire::Codec::kLz4, wire::Codec::kZstd}) {
    TestServer server;
    SessionOptions so;
    so.compression.preferred = codec;
    so.compression.estimate = false;
    TestClient client(server.port(), so);
    ASSERT_TRUE(client.wait_ready());
    std::string json;
    for (int i = 0; json.size() < 200000; ++i) {
      json += "{\"id\":" + std::to_string(i) + ",\"name\":\"sensor-" + std::to_string(i % 17) +
              "\",\"value\":" + std::to_string(i * 7 % 1000) + "},";
    }
    std::uint64_t id = 0;
    run_on(client.loop(), [&] {
      EXPECT_NE(client.session().negotiated().codecs & (1u << static_cast<unsigned>(codec)), 0u);
      id = *client.session().open_stream(Priority::kStream, &client);
      ASSERT_TRUE(client.session().send(id, Chain(Slice::copy_of(json)), true).is_ok());
    });
    ASSERT_TRUE(wait_until(client.loop(), [&] { return client.ended_.count(id) == 1; }));
    run_on(client.loop(), [&] {
      ASSERT_EQ(client.received_[id].size(), 1u);
      EXPECT_TRUE(client.received_[id][0] == json);
      auto cs = client.session().compress_stats();
      EXPECT_EQ(codec == wire::Codec::kLz4 ? cs.lz4 : cs.zstd, 1u);
      EXPECT_LT(cs.bytes_out, cs.bytes_in / 2);
      client.client().stop();
    });
  }
}

TEST(Session, CorruptCompressedFrameIsAnErrorNotACrash) {
  TestServer server;
  test::RawClient raw(server.port());
  ASSERT_TRUE(raw.handshake().is_ok());
  TestClient bystander(server.port());
  ASSERT_TRUE(bystander.wait_ready());
  wire::FrameEncoder e;
  const std::uint8_t flags = wire::data_flags::kOpen | wire::data_flags::kEndStream |
                             static_cast<std::uint8_t>(static_cast<unsigned>(wire::Codec::kLz4) << wire::data_flags::kCodecShift);
  e.add(wire::Data{1, flags, Slice::copy_of(std::string("\x10garbage that is not lz4", 24))});
  raw.send_chain(e.take());
  auto f = raw.read_frame();
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  auto any = wire::parse_frame(*f, {});
  ASSERT_TRUE(any.is_ok());
  ASSERT_TRUE(std::holds_alternative<wire::ErrorFrame>(*any));
  EXPECT_EQ(std::get<wire::ErrorFrame>(*any).code, StatusCode::kCorruption);
  EXPECT_TRUE(raw.wait_closed());
  // The server still serves others.
  std::uint64_t id = 0;
  run_on(bystander.loop(), [&] {
    id = *bystander.session().open_stream(Priority::kInteractive, &bystander);
    ASSERT_TRUE(bystander.session().send(id, Chain(Slice::copy_of("ok?")), true).is_ok());
  });
  ASSERT_TRUE(wait_until(bystander.loop(), [&] { return bystander.ended_.count(id) == 1; }));
}

TEST(Session, PeerExceedingTheFlowControlWindowIsCutOff) {
  TestServer server(ServerBehaviour{false, true, false});
  test::RawClient raw(server.port());
  ASSERT_TRUE(raw.handshake().is_ok());
  // Ignore credit: the server pauses the stream after the first message, so the window does not
  // come back; send more than the 256 KiB stream window in one go.
  wire::FrameEncoder e;
  std::string chunk(16 * 1024, 'w');
  for (int i = 0; i < 40; ++i) {
    std::uint8_t flags = i == 0 ? wire::data_flags::kOpen : 0;
    e.add(wire::Data{1, flags, Slice::copy_of(chunk)});
  }
  raw.send_chain(e.take());
  Result<wire::Frame> f = raw.read_frame();
  // CREDIT frames may come first; the ERROR follows.
  while (f.is_ok() && f->type != wire::FrameType::kError) f = raw.read_frame();
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  auto any = wire::parse_frame(*f, {});
  ASSERT_TRUE(any.is_ok());
  EXPECT_EQ(std::get<wire::ErrorFrame>(*any).code, StatusCode::kOverloaded);
  EXPECT_NE(std::get<wire::ErrorFrame>(*any).message.find("flow-control"), std::string_view::npos);
}

}  // namespace
}  // namespace slip::session
