// The udp:// transport across event-loop threads on 127.0.0.1: bytes arrive intact and in
// order, close() flushes, abort() drops, callbacks come once; the pinned key is enforced; many
// connections share one socket; a flood of Initials leaves no state; a datagram filter sits in
// the path. Runs under ThreadSanitizer too. Waits are bounded; nothing asserts on time.
#include <dirent.h>
#include <malloc.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "eventually.h"
#include "io/loop_group.h"
#include "sink.h"
#include "transport/udp/fec_filter.h"
#include "transport/udp/handshake.h"
#include "transport/udp/keys.h"
#include "transport/udp/udp.h"

namespace slip::transport::udp {
namespace {

using test::Sink;
using slip::test::eventually;

constexpr auto kLiveness = std::chrono::seconds(30);

class Echo final : public ConnectionHandler {
 public:
  explicit Echo(ConnectionPtr c) : conn_(std::move(c)) {}
  void on_bytes(Slice bytes) override { conn_->send(Chain(std::move(bytes))); }
  void on_closed(Status) override {
    closes_.fetch_add(1);
    conn_.reset();
  }
  std::atomic<int> closes_{0};

 private:
  ConnectionPtr conn_;
};

struct Fixture {
  io::LoopGroup server_loops{1, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  io::LoopGroup client_loops{1, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  std::unique_ptr<UdpListener> listener;
  UdpOptions server_options;
  UdpOptions client_options;
  std::mutex mu;
  std::vector<std::shared_ptr<ConnectionHandler>> handlers;

  Fixture() {
    server_options.static_key = KeyPair::generate();
    client_options.server_key = server_options.static_key.public_key;
  }

  template <typename MakeHandler>
  void listen(MakeHandler make) {
    server_loops.start();
    client_loops.start();
    auto l = udp_listen(server_loops, HostPort{"127.0.0.1", 0}, server_options, [this, make](ConnectionPtr c) {
      auto h = make(c);
      {
        std::lock_guard<std::mutex> g(mu);
        handlers.push_back(h);
      }
      c->start(h.get());
    });
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    listener = std::move(l).value();
  }

  HostPort address() const { return *parse_host_port(listener->local_address()); }

  Result<ConnectionPtr> dial(const UdpOptions& o) {
    std::promise<Result<ConnectionPtr>> p;
    auto f = p.get_future();
    udp_connect(client_loops.loop(0), address(), o, [&p](Result<ConnectionPtr> c) { p.set_value(std::move(c)); });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("test: no connect result");
    return f.get();
  }
  ConnectionPtr connect() {
    auto r = dial(client_options);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : nullptr;
  }

  template <typename Fn>
  void on_client(Fn fn) {
    std::promise<void> p;
    client_loops.loop(0).post([&] {
      fn();
      p.set_value();
    });
    p.get_future().wait();
  }

  ~Fixture() {
    if (listener) listener->stop();
    client_loops.stop();
    server_loops.stop();
  }
};

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

TEST(UdpTransport, EchoesRandomChunksIntactAndInOrder) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->secure());
  EXPECT_EQ(c->peer_address(), fx.listener->local_address());
  std::string sent;
  std::mt19937 rng(42);
  while (sent.size() < 2 * 1024 * 1024) {
    std::string chunk(1 + rng() % 70000, '\0');
    for (auto& ch : chunk) ch = static_cast<char>(rng());
    sent += chunk;
  }
  Sink sink(sent.size());
  auto done = sink.done();
  fx.on_client([&] {
    c->start(&sink);
    std::size_t pos = 0;
    std::mt19937 r2(7);
    while (pos < sent.size()) {
      const std::size_t n = std::min<std::size_t>(1 + r2() % 50000, sent.size() - pos);
      c->send(Chain(Slice::copy_of(ByteView(sent.data() + pos, n))));
      pos += n;
    }
  });
  ASSERT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.got().size(), sent.size());
  EXPECT_TRUE(sink.got() == sent);
  auto closed = sink.closed();
  fx.on_client([&] { c->close(); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_TRUE(sink.reason().is_ok()) << sink.reason().to_string();
  EXPECT_EQ(sink.closes(), 1);
}

class Blaster final : public ConnectionHandler {
 public:
  Blaster(ConnectionPtr c, std::size_t n) : conn_(std::move(c)), n_(n) {}
  void on_bytes(Slice) override {
    if (sent_) return;
    sent_ = true;
    std::string data(n_, 'z');
    for (std::size_t i = 0; i < n_; i += 4096) data[i] = static_cast<char>('a' + (i / 4096) % 26);
    conn_->send(Chain(Slice::copy_of(data)));
    conn_->close();
  }
  void on_closed(Status) override { conn_.reset(); }

 private:
  ConnectionPtr conn_;
  std::size_t n_;
  bool sent_ = false;
};

constexpr std::size_t kBytes = 4 * 1024 * 1024;

TEST(UdpTransport, CloseDeliversQueuedBytesThenPeerSeesDisconnect) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Blaster>(c, kBytes); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Sink sink(kBytes + 1);  // only the close ends it
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of("go")));
  });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  std::string got = sink.got();
  ASSERT_EQ(got.size(), kBytes);
  for (std::size_t i = 0; i < kBytes; i += 4096) ASSERT_EQ(got[i], static_cast<char>('a' + (i / 4096) % 26)) << i;
  EXPECT_EQ(sink.reason().code(), StatusCode::kDisconnected);
  EXPECT_EQ(sink.closes(), 1);
}

TEST(UdpTransport, AbortReportsItsReasonOnceAndThePeerHearsOfIt) {
  Fixture fx;
  auto server_sink = std::make_shared<Sink>(1000);
  auto server_closed = server_sink->closed();
  fx.listen([server_sink](ConnectionPtr) { return server_sink; });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Sink sink(1);
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of("hello")));
  });
  ASSERT_TRUE(eventually([&] { return server_sink->got() == "hello"; }));
  fx.on_client([&] {
    c->abort(cancelled("test abort"));
    c->abort(cancelled("second abort is ignored"));
    c->close();
    c->send(Chain(Slice::copy_of("ignored")));
  });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.reason().code(), StatusCode::kCancelled);
  EXPECT_EQ(sink.reason().message(), "test abort");
  EXPECT_EQ(sink.closes(), 1);
  // The server side learns from the CLOSE frame, with the code.
  ASSERT_EQ(server_closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(server_sink->reason().code(), StatusCode::kCancelled) << server_sink->reason().to_string();
  EXPECT_EQ(server_sink->closes(), 1);
}

TEST(UdpTransport, PausedReaderMakesTheWriterQueueAndResumingDeliversEverything) {
  class Mute final : public ConnectionHandler {
   public:
    explicit Mute(ConnectionPtr c) : conn_(std::move(c)) {}
    void on_bytes(Slice b) override {
      got_ += b.size();
      if (!resumed_) conn_->pause_reading();
    }
    void on_closed(Status) override { conn_.reset(); }
    void resume() {
      resumed_ = true;
      conn_->resume_reading();
    }
    ConnectionPtr conn_;
    std::atomic<std::size_t> got_{0};
    bool resumed_ = false;
  };
  constexpr std::size_t kPayload = 16 * 1024 * 1024;
  Fixture fx;
  std::shared_ptr<Mute> mute;
  std::promise<void> have;
  fx.listen([&](ConnectionPtr c) {
    mute = std::make_shared<Mute>(c);
    have.set_value();
    return mute;
  });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Sink sink(1);
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(std::string(kPayload, 'q'))));
  });
  ASSERT_EQ(have.get_future().wait_for(kLiveness), std::future_status::ready);
  // The reader's windows fill; the writer's transport keeps the rest queued.
  std::size_t queued = 0;
  std::size_t last = kPayload + 1;
  ASSERT_TRUE(eventually([&] {
    fx.on_client([&] { queued = c->queued_bytes(); });
    const bool stable = queued > 0 && queued < kPayload && queued == last;
    last = queued;
    if (stable) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return stable;
  }));
  EXPECT_LT(mute->got_.load(), kPayload);
  fx.server_loops.loop(0).post([&] { mute->resume(); });
  EXPECT_TRUE(eventually([&] { return mute->got_.load() == kPayload; }));
  auto closed = sink.closed();
  fx.on_client([&] { c->abort(cancelled("done")); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
}

TEST(UdpTransport, SendDrainedFollowsAQueueThatEmptied) {
  class Drain final : public ConnectionHandler {
   public:
    void on_bytes(Slice) override {}
    void on_closed(Status) override { closed_ = true; }
    void on_send_drained() override { ++drained_; }
    std::atomic<int> drained_{0};
    std::atomic<bool> closed_{false};
  };
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Drain d;
  fx.on_client([&] {
    c->start(&d);
    c->send(Chain(Slice::copy_of(std::string(100000, 'd'))));
    EXPECT_EQ(c->queued_bytes(), 100000u);  // nothing leaves inside the call
    EXPECT_EQ(d.drained_.load(), 0);
  });
  EXPECT_TRUE(eventually([&] { return d.drained_.load() >= 1; }));
  fx.on_client([&] { c->abort(cancelled("done")); });
  EXPECT_TRUE(eventually([&] { return d.closed_.load(); }));
}

TEST(UdpTransport, AWrongPinnedKeyIsRefusedWithAMessageNamingTheKey) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  UdpOptions wrong = fx.client_options;
  wrong.server_key = KeyPair::generate().public_key;
  Result<ConnectionPtr> r = fx.dial(wrong);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().to_string();
  const std::string msg(r.status().message());
  EXPECT_NE(msg.find("pinned key"), std::string::npos) << msg;
  EXPECT_NE(msg.find(format_public_key(wrong.server_key)), std::string::npos) << msg;
  EXPECT_NE(msg.find(fx.listener->local_address()), std::string::npos) << msg;
  EXPECT_EQ(fx.listener->stats().connections, 0u);
  EXPECT_GE(fx.listener->stats().handshakes_refused, 1u);
  // The right key still works.
  EXPECT_TRUE(fx.connect());
}

TEST(UdpTransport, NoServerIsATimeoutNamingTheAddress) {
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  // A bound socket that never answers.
  auto silent = UdpSocket::bind(HostPort{"127.0.0.1", 0}, SocketOptions{});
  ASSERT_TRUE(silent.is_ok());
  UdpOptions o;
  o.server_key = KeyPair::generate().public_key;
  o.connect_timeout = std::chrono::milliseconds(300);
  std::promise<Status> p;
  udp_connect(loops.loop(0), *parse_host_port(silent->local_address()), o,
              [&p](Result<ConnectionPtr> c) { p.set_value(c.status()); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  Status s = f.get();
  EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.to_string();
  EXPECT_NE(std::string(s.message()).find("udp://" + silent->local_address()), std::string::npos) << s.to_string();
}

TEST(UdpTransport, ConnectWithoutAKeyOrToANonNumericListenAddressIsInvalid) {
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  std::promise<Status> p;
  udp_connect(loops.loop(0), HostPort{"127.0.0.1", 9}, UdpOptions{},
              [&p](Result<ConnectionPtr> c) { p.set_value(c.status()); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kInvalidArgument);
  UdpOptions so;
  so.static_key = KeyPair::generate();
  auto l = udp_listen(loops, HostPort{"not-an-ip", 0}, so, [](ConnectionPtr) {});
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
  auto nokey = udp_listen(loops, HostPort{"127.0.0.1", 0}, UdpOptions{}, [](ConnectionPtr) {});
  EXPECT_FALSE(nokey.is_ok());
}

TEST(UdpTransport, AThousandConnectionsShareOneServerSocket) {
  constexpr int kConnections = 1000;
  Fixture fx;
  std::atomic<int> accepted{0};
  fx.listen([&](ConnectionPtr c) {
    ++accepted;
    return std::make_shared<Echo>(c);
  });
  std::vector<ConnectionPtr> conns;
  conns.push_back(fx.connect());
  ASSERT_TRUE(conns.back());
  const std::size_t fds = open_fds();
  std::atomic<int> results{0};
  std::mutex mu;
  // In waves, so that the Initials (1200 bytes each) never overflow the socket's receive buffer
  // (they would be resent, only later).
  constexpr int kWave = 50;
  for (int i = 1; i < kConnections; ++i) {
    udp_connect(fx.client_loops.loop(0), fx.address(), fx.client_options, [&](Result<ConnectionPtr> c) {
      std::lock_guard<std::mutex> g(mu);
      if (c.is_ok()) conns.push_back(*c);
      ++results;
    });
    if (i % kWave == 0) {
      ASSERT_TRUE(eventually([&] { return results.load() == i; }));
    }
  }
  ASSERT_TRUE(eventually([&] { return results.load() == kConnections - 1; }));
  ASSERT_EQ(conns.size(), static_cast<std::size_t>(kConnections));
  // Every connection talks: each gets its own bytes back.
  std::vector<std::unique_ptr<Sink>> sinks;
  for (int i = 0; i < kConnections; ++i) sinks.push_back(std::make_unique<Sink>(std::to_string(i).size()));
  fx.on_client([&] {
    for (int i = 0; i < kConnections; ++i) {
      conns[i]->start(sinks[i].get());
      conns[i]->send(Chain(Slice::copy_of(std::to_string(i))));
    }
  });
  for (int i = 0; i < kConnections; ++i) {
    auto d = sinks[i]->done();
    ASSERT_EQ(d.wait_for(kLiveness), std::future_status::ready) << i;
    EXPECT_EQ(sinks[i]->got(), std::to_string(i));
  }
  EXPECT_EQ(accepted.load(), kConnections);
  EXPECT_EQ(fx.listener->stats().connections, static_cast<std::uint64_t>(kConnections));
  // No descriptor per connection, on either side.
  EXPECT_EQ(open_fds(), fds);
  fx.on_client([&] {
    for (auto& c : conns) c->abort(cancelled("done"));
  });
  for (auto& s : sinks) {
    auto cl = s->closed();
    ASSERT_EQ(cl.wait_for(kLiveness), std::future_status::ready);
  }
}

// Connections cost memory, not descriptors, and not much of it: an idle connection holds at
// most 16 KiB at each end, counted by the allocator (both ends live in this process, so the heap
// grows by both). bench/udp_idle_bench measures the same at 100,000 connections.
TEST(UdpTransport, AnIdleConnectionHoldsAtMost16KiBAtEachEnd) {
  constexpr std::size_t kConnections = 1000;
  auto heap_in_use = [] {
    const struct mallinfo2 m = ::mallinfo2();
    return m.uordblks + m.hblkhd;
  };
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  std::vector<ConnectionPtr> conns;
  conns.reserve(kConnections + 1);
  // The first connection makes the client's socket and batches: per-endpoint state, not counted.
  conns.push_back(fx.connect());
  ASSERT_TRUE(conns.back());
  const std::size_t before = heap_in_use();
  for (std::size_t i = 0; i < kConnections; ++i) {
    conns.push_back(fx.connect());
    ASSERT_TRUE(conns.back()) << i;
  }
  ASSERT_TRUE(eventually([&] { return fx.listener->stats().accepted == kConnections + 1; }));
  const std::size_t after = heap_in_use();
  if (after <= before) GTEST_SKIP() << "this allocator does not report bytes in use (a sanitizer's)";
  const double per_end = static_cast<double>(after - before) / 2.0 / static_cast<double>(kConnections);
  RecordProperty("bytes_per_connection_and_end", static_cast<int>(per_end));
  EXPECT_LE(per_end, 16.0 * 1024) << (after - before) << " bytes for " << kConnections << " connections";
  std::vector<std::unique_ptr<Sink>> sinks;
  for (std::size_t i = 0; i < conns.size(); ++i) sinks.push_back(std::make_unique<Sink>(0));
  fx.on_client([&] {
    for (std::size_t i = 0; i < conns.size(); ++i) {
      conns[i]->start(sinks[i].get());
      conns[i]->abort(cancelled("done"));
    }
  });
  for (auto& sk : sinks) {
    auto cl = sk->closed();
    ASSERT_EQ(cl.wait_for(kLiveness), std::future_status::ready);
  }
}

// Initials that never complete (the sender does not, or cannot, answer: a spoofed source) make
// the server answer with retries and keep no state.
std::vector<std::uint8_t> initial_for(const PublicKey& server) {
  ClientHandshakeConfig hs;
  hs.static_key = KeyPair::generate();
  hs.server_key = server;
  TransportParams tp{1 << 16, 1 << 20, 25000, 30000};
  hs.transport_params = encode_transport_params(tp);
  ClientHandshake h(hs);
  return *h.initial_datagram();
}

TEST(UdpTransport, AFloodOfInitialsWithRetryAlwaysLeavesNoState) {
  Fixture fx;
  fx.server_options.cookies = CookiePolicy::kAlways;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  auto raw = UdpSocket::bind(HostPort{"127.0.0.1", 0}, SocketOptions{});
  ASSERT_TRUE(raw.is_ok());
  SocketAddress to = *SocketAddress::from_host_port(fx.address());
  constexpr int kFlood = 500;
  const std::vector<std::uint8_t> one = initial_for(fx.server_options.static_key.public_key);
  int sent = 0;
  while (sent < kFlood) {
    // Batch by batch, each counted by the server before the next, so that none is lost to a
    // full receive buffer.
    SendBatch b(SocketOptions{}, 1500);
    for (; sent < kFlood && !b.full(); ++sent) {
      std::vector<std::uint8_t> d = one;
      // Another connection id each time (the prologue binds it, so these would not even
      // authenticate; the cookie check comes first and refuses them all the same).
      d[5] = static_cast<std::uint8_t>(sent);
      d[6] = static_cast<std::uint8_t>(sent >> 8);
      b.push(ByteView(d.data(), d.size()), to);
    }
    while (!raw->send(b)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_TRUE(eventually([&] { return fx.listener->stats().initials == static_cast<std::uint64_t>(sent); }));
  }
  UdpEndpointStats s = fx.listener->stats();
  EXPECT_EQ(s.retries_sent, static_cast<std::uint64_t>(kFlood));
  EXPECT_EQ(s.connections, 0u);
  EXPECT_EQ(s.unconfirmed, 0u);
  // A real client passes the retry.
  EXPECT_TRUE(fx.connect());
}

TEST(UdpTransport, UnconfirmedHandshakesAreBoundedUnderLoadAndExpire) {
  Fixture fx;
  fx.server_options.cookies = CookiePolicy::kUnderLoad;
  fx.server_options.cookie_load_threshold = 8;
  // Long enough that none expires while the flood is sent, short enough for the end of the test.
  fx.server_options.unconfirmed_timeout = std::chrono::milliseconds(2000);
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  auto raw = UdpSocket::bind(HostPort{"127.0.0.1", 0}, SocketOptions{});
  ASSERT_TRUE(raw.is_ok());
  SocketAddress to = *SocketAddress::from_host_port(fx.address());
  constexpr int kFlood = 100;
  for (int i = 0; i < kFlood; ++i) {
    SendBatch b(SocketOptions{}, 1500);
    std::vector<std::uint8_t> d = initial_for(fx.server_options.static_key.public_key);
    b.push(ByteView(d.data(), d.size()), to);
    while (!raw->send(b)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(eventually([&] { return fx.listener->stats().initials == static_cast<std::uint64_t>(kFlood); }));
  UdpEndpointStats s = fx.listener->stats();
  EXPECT_LE(s.connections, 8u);
  EXPECT_GE(s.retries_sent, 1u);
  // Every Initial either made a state (held now, or already forgotten on a slow machine) or was
  // answered with a retry: past 8 held states, retries.
  EXPECT_EQ(s.retries_sent + s.connections + s.expired_unconfirmed, static_cast<std::uint64_t>(kFlood));
  // Nobody confirms them: they are forgotten.
  EXPECT_TRUE(eventually([&] { return fx.listener->stats().connections == 0; }));
  EXPECT_GE(fx.listener->stats().expired_unconfirmed, 1u);
}

// The filter seam: a filter that drops every fifth datagram the client sends and counts what
// passes both ways. The reliability layer recovers; the filter saw the traffic.
class DroppingFilter final : public DatagramFilter {
 public:
  explicit DroppingFilter(std::atomic<int>* seen) : seen_(seen) {}
  void outgoing(ByteView d, DatagramSink& wire) override {
    seen_->fetch_add(1);
    if (++n_ % 5 == 0) return;
    wire.deliver(d);
  }
  void incoming(ByteView d, DatagramSink& connection) override {
    seen_->fetch_add(1);
    connection.deliver(d);
  }

 private:
  std::atomic<int>* seen_;
  int n_ = 0;
};

TEST(UdpTransport, ADatagramFilterSeesEveryDatagramAndLossBelowItIsRecovered) {
  // Before the fixture, so that it outlives the loops: the endpoint may still pass a datagram
  // through the filter after the connection was aborted, until the fixture stops the loops.
  std::atomic<int> seen{0};
  Fixture fx;
  fx.client_options.filter = [&seen](Role role) -> std::unique_ptr<DatagramFilter> {
    EXPECT_EQ(role, Role::kClient);
    return std::make_unique<DroppingFilter>(&seen);
  };
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  const std::string sent(300000, 'f');
  Sink sink(sent.size());
  auto done = sink.done();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(sent)));
  });
  ASSERT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_TRUE(sink.got() == sent);
  EXPECT_GT(seen.load(), 100);
  auto closed = sink.closed();
  fx.on_client([&] { c->abort(cancelled("done")); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
}

// Echoes 300 KB with FEC offered as given on each side; returns the server's endpoint counters.
UdpEndpointStats echo_with_fec(const FecOptions& server, const FecOptions& client) {
  Fixture fx;
  fx.server_options.fec = server;
  fx.client_options.fec = client;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  EXPECT_TRUE(c);
  if (!c) return {};
  std::string sent(300000, '\0');
  std::mt19937 rng(11);
  for (auto& ch : sent) ch = static_cast<char>(rng());
  Sink sink(sent.size());
  auto done = sink.done();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(sent)));
  });
  EXPECT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_TRUE(sink.got() == sent);
  auto closed = sink.closed();
  fx.on_client([&] { c->close(); });
  EXPECT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  return fx.listener->stats();
}

// Path MTU discovery on real sockets: loopback carries any datagram up to 64 KiB, so the server's
// connection ends at the configured maximum. Echoes 300 KB before and after, intact.
UdpEndpointStats echo_with_mtu(bool probe, std::size_t max) {
  Fixture fx;
  for (UdpOptions* o : {&fx.server_options, &fx.client_options}) {
    o->connection.mtu.enabled = probe;
    o->connection.mtu.max_packet_size = max;
  }
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  EXPECT_TRUE(c);
  if (!c) return {};
  std::string sent(600000, '\0');
  std::mt19937 rng(13);
  for (auto& ch : sent) ch = static_cast<char>(rng());
  Sink sink(sent.size());
  auto done = sink.done();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(ByteView(sent.data(), sent.size() / 2))));
  });
  // The second half goes once the search settled (or at once when probing is off).
  if (probe) {
    EXPECT_TRUE(eventually([&] {
      const UdpEndpointStats s = fx.listener->stats();
      return s.max_packet_size_min > 1200 && s.traffic.mtu_probes_sent == s.traffic.mtu_probes_acked +
                                                                              s.traffic.mtu_probes_lost;
    }));
  }
  fx.on_client([&] { c->send(Chain(Slice::copy_of(ByteView(sent.data() + sent.size() / 2, sent.size() / 2)))); });
  EXPECT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_TRUE(sink.got() == sent);
  const UdpEndpointStats stats = fx.listener->stats();
  auto closed = sink.closed();
  fx.on_client([&] { c->close(); });
  EXPECT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  return stats;
}

TEST(UdpTransportMtu, TheDefaultCeilingIsWhatTheRoutesMtuAllowsUpToAJumboFrame) {
  // Loopback's MTU is 64 KiB: the ceiling is a 9000-byte MTU's.
  auto v4 = SocketAddress::from_host_port(HostPort{"127.0.0.1", 9});
  ASSERT_TRUE(v4.is_ok());
  Result<std::size_t> mtu = route_mtu(*v4);
  ASSERT_TRUE(mtu.is_ok()) << mtu.status().to_string();
  EXPECT_GE(*mtu, 9000u);
  EXPECT_EQ(default_max_datagram(*v4), kJumboUdpPayloadIpv4);
  auto v6 = SocketAddress::from_host_port(HostPort{"::1", 9});
  ASSERT_TRUE(v6.is_ok());
  if (route_mtu(*v6).is_ok()) {  // a machine without IPv6 loopback has no route to ::1
    EXPECT_EQ(default_max_datagram(*v6), kJumboUdpPayloadIpv6);
  }
  // When the kernel gives no MTU (here: an address of no family): the Ethernet size.
  const SocketAddress none;
  EXPECT_FALSE(route_mtu(none).is_ok());
  EXPECT_EQ(default_max_datagram(none), kEthernetUdpPayloadIpv4);
}

TEST(UdpTransportMtu, OnLoopbackTheDatagramSizeRisesAbove1200ToTheJumboCeiling) {
  const UdpEndpointStats s = echo_with_mtu(true, 0);
  EXPECT_EQ(s.max_packet_size_min, kJumboUdpPayloadIpv4);
  EXPECT_EQ(s.max_packet_size_max, kJumboUdpPayloadIpv4);
  EXPECT_GE(s.traffic.mtu_probes_acked, 1u);
  EXPECT_EQ(s.traffic.mtu_probes_lost, 0u);
  EXPECT_EQ(s.traffic.mtu_black_holes, 0u);
  EXPECT_EQ(s.socket.truncated, 0u);
}

TEST(UdpTransportMtu, AConfiguredMaximumAboveTheDefaultIsReachedOnLoopbackAndTheSocketHoldsIt) {
  const UdpEndpointStats s = echo_with_mtu(true, 16000);
  EXPECT_EQ(s.max_packet_size_min, 16000u);
  EXPECT_GE(s.traffic.mtu_probes_acked, 1u);
  EXPECT_EQ(s.socket.truncated, 0u);
}

TEST(UdpTransportMtu, AConfiguredEthernetMaximumIsKeptOnLoopback) {
  const UdpEndpointStats s = echo_with_mtu(true, kEthernetUdpPayloadIpv4);
  EXPECT_EQ(s.max_packet_size_min, kEthernetUdpPayloadIpv4);
  EXPECT_EQ(s.max_packet_size_max, kEthernetUdpPayloadIpv4);
  EXPECT_EQ(s.socket.truncated, 0u);
}

TEST(UdpTransportMtu, WithProbingOffTheSizeStaysAt1200) {
  const UdpEndpointStats s = echo_with_mtu(false, 0);
  EXPECT_EQ(s.max_packet_size_min, 1200u);
  EXPECT_EQ(s.traffic.mtu_probes_sent, 0u);
}

FecOptions fec_fixed(std::uint8_t k, std::uint8_t m) {
  FecOptions f;
  EXPECT_TRUE(parse_fec_mode(std::to_string(k) + "," + std::to_string(m), f).is_ok());
  return f;
}

TEST(UdpTransportFec, BothEndsOfferingFecSendAndReceiveRepairsAndTheBytesArriveIntact) {
  const UdpEndpointStats s = echo_with_fec(fec_fixed(4, 2), fec_fixed(4, 2));
  EXPECT_EQ(s.fec.connections, 1u);
  EXPECT_GT(s.fec.source_packets, 0u);
  EXPECT_GT(s.fec.repair_sent, 0u);      // the echo back to the client
  EXPECT_GT(s.fec.repair_received, 0u);  // the client's bytes
  EXPECT_EQ(s.fec.malformed, 0u);
}

TEST(UdpTransportFec, FecOfferedByOneEndOnlyIsOffAndTheConnectionWorks) {
  FecOptions off;
  const UdpEndpointStats client_only = echo_with_fec(off, fec_fixed(4, 2));
  EXPECT_EQ(client_only.fec.connections, 0u);
  EXPECT_EQ(client_only.fec.repair_received, 0u);
  EXPECT_EQ(client_only.fec.repair_sent, 0u);
  const UdpEndpointStats server_only = echo_with_fec(fec_fixed(4, 2), off);
  EXPECT_EQ(server_only.fec.connections, 0u);
  EXPECT_EQ(server_only.fec.repair_sent, 0u);
  EXPECT_EQ(server_only.fec.repair_received, 0u);
}

TEST(UdpTransportFec, BadFecOptionsAreRefusedWithAClearError) {
  FecOptions f;
  EXPECT_FALSE(parse_fec_mode("8;2", f).is_ok());
  EXPECT_FALSE(parse_fec_mode("0,2", f).is_ok());
  EXPECT_FALSE(parse_fec_mode("8,17", f).is_ok());
  EXPECT_FALSE(parse_fec_mode("sometimes", f).is_ok());
  ASSERT_TRUE(parse_fec_mode("adaptive", f).is_ok());
  EXPECT_TRUE(f.enabled && f.adaptive);
  ASSERT_TRUE(parse_fec_mode("off", f).is_ok());
  EXPECT_FALSE(f.enabled);
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  UdpOptions o = fx.client_options;
  o.fec.enabled = true;
  o.fec.max_repair_ratio = 0;
  Result<ConnectionPtr> r = fx.dial(o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("max repair ratio"), std::string::npos) << r.status().to_string();
}

TEST(UdpTransportParams, TheFecFlagRoundTripsAndAnOlderPeerOffersNone) {
  TransportParams p{1, 2, 3, 4};
  p.fec = true;
  auto bytes = encode_transport_params(p);
  auto back = decode_transport_params(ByteView(bytes.data(), bytes.size()));
  ASSERT_TRUE(back.is_ok());
  EXPECT_TRUE(back->fec);
  // The four numbers alone, as an older version sends them.
  auto old = encode_transport_params(TransportParams{1, 2, 3, 4});
  ASSERT_EQ(old.back(), 0u);  // the flags varint, zero
  old.pop_back();
  auto older = decode_transport_params(ByteView(old.data(), old.size()));
  ASSERT_TRUE(older.is_ok());
  EXPECT_FALSE(older->fec);
  // A flags varint cut short.
  auto cut = encode_transport_params(TransportParams{1, 2, 3, 4});
  cut.back() = 0x80;
  EXPECT_FALSE(decode_transport_params(ByteView(cut.data(), cut.size())).is_ok());
}

TEST(UdpTransportParams, RoundTripAndRefuseBadInput) {
  TransportParams p{1, 2, 3, 4};
  auto bytes = encode_transport_params(p);
  auto back = decode_transport_params(ByteView(bytes.data(), bytes.size()));
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->stream_receive_window, 1u);
  EXPECT_EQ(back->idle_timeout_ms, 4u);
  bytes.push_back(0x7f);  // later versions may append
  EXPECT_TRUE(decode_transport_params(ByteView(bytes.data(), bytes.size())).is_ok());
  EXPECT_FALSE(decode_transport_params(ByteView(bytes.data(), 2)).is_ok());
  TransportParams zero{0, 2, 3, 4};
  auto z = encode_transport_params(zero);
  EXPECT_FALSE(decode_transport_params(ByteView(z.data(), z.size())).is_ok());
  EXPECT_EQ(udp_url_address("udp://127.0.0.1:7421").value_or(""), "127.0.0.1:7421");
  EXPECT_FALSE(udp_url_address("127.0.0.1:7421").has_value());
  EXPECT_FALSE(udp_url_address("udp://").has_value());
}

}  // namespace
}  // namespace slip::transport::udp
