// The TCP transport across event-loop threads: bytes arrive intact and in order, close()
// flushes, abort() drops, callbacks come once. Runs under ThreadSanitizer too.
#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "io/loop_group.h"
#include "sink.h"
#include "transport/tcp/sockets.h"
#include "transport/tcp/tcp.h"

namespace slip::transport {
namespace {

// What the paused-reader tests send: far more than the kernel buffers.
constexpr std::size_t kPayload = 64u * 1024 * 1024;

using test::Sink;

constexpr auto kLiveness = std::chrono::seconds(30);

// Echoes every byte back; counts its close callbacks.
class Echo final : public ConnectionHandler {
 public:
  explicit Echo(ConnectionPtr c) : conn_(std::move(c)) {}
  void on_bytes(Slice bytes) override { conn_->send(Chain(std::move(bytes))); }
  void on_closed(Status) override {
    closes_.fetch_add(1);
    conn_.reset();  // breaks the cycle connection -> handler -> connection
  }
  std::atomic<int> closes_{0};

 private:
  ConnectionPtr conn_;
};


struct Fixture {
  io::LoopGroup server_loops{2, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  io::LoopGroup client_loops{1, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  std::unique_ptr<Listener> listener;
  std::mutex mu;
  std::vector<std::shared_ptr<ConnectionHandler>> handlers;

  template <typename MakeHandler>
  void listen(MakeHandler make) {
    server_loops.start();
    client_loops.start();
    auto l = tcp_listen(server_loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, [this, make](ConnectionPtr c) {
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

  ConnectionPtr connect() {
    auto hp = parse_host_port(listener->local_address());
    std::promise<Result<ConnectionPtr>> p;
    auto f = p.get_future();
    tcp_connect(client_loops.loop(0), *hp, TcpOptions{}, [&p](Result<ConnectionPtr> c) { p.set_value(std::move(c)); });
    if (f.wait_for(kLiveness) != std::future_status::ready) return nullptr;
    auto r = f.get();
    return r.is_ok() ? *r : nullptr;
  }

  // Runs fn on the client loop and waits for it.
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

TEST(TcpTransport, EchoesRandomChunksIntactAndInOrder) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  std::string sent;
  std::mt19937 rng(42);
  for (int i = 0; sent.size() < 4 * 1024 * 1024; ++i) {
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
      // Several slices per send: the transport gathers them into writev.
      Chain chain;
      for (int k = 0; k < 3 && pos < sent.size(); ++k) {
        std::size_t n = std::min<std::size_t>(1 + r2() % 50000, sent.size() - pos);
        chain.append(Slice::copy_of(ByteView(sent.data() + pos, n)));
        pos += n;
      }
      c->send(std::move(chain));
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

// Hundreds of thousands of tiny slices queued at once (what a slow reader of messages sent by
// reference leaves behind): the kernel takes them in partial writes that end anywhere inside a
// slice, and every byte still arrives once, in order.
TEST(TcpTransport, ABacklogOfManySmallSlicesArrivesIntactAndInOrder) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  std::string sent;
  std::mt19937 rng(11);
  for (auto& ch : sent.assign(8 * 1024 * 1024, '\0')) ch = static_cast<char>(rng());
  Sink sink(sent.size());
  auto done = sink.done();
  std::size_t slices = 0;
  fx.on_client([&] {
    c->start(&sink);
    Chain chain;
    const Slice all = Slice::copy_of(sent);
    for (std::size_t pos = 0; pos < sent.size();) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 48, sent.size() - pos);
      chain.append(all.sub(pos, n));
      pos += n;
      ++slices;
    }
    c->send(std::move(chain));
  });
  EXPECT_GT(slices, 300000u);
  ASSERT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.got().size(), sent.size());
  EXPECT_TRUE(sink.got() == sent);
  auto closed = sink.closed();
  fx.on_client([&] { c->close(); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
}

// The server writes 8 MB and closes at once: close() must still deliver every byte.
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

constexpr std::size_t kBytes = 8 * 1024 * 1024;

TEST(TcpTransport, CloseFlushesQueuedBytesThenPeerSeesDisconnect) {
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
}

TEST(TcpTransport, AbortReportsItsReasonOnce) {
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Echo>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Sink sink(1);
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of("dropped")));
    c->abort(cancelled("test abort"));
    c->abort(cancelled("second abort is ignored"));
    c->close();
  });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.reason().code(), StatusCode::kCancelled);
  EXPECT_EQ(sink.reason().message(), "test abort");
  EXPECT_EQ(sink.closes(), 1);
}

TEST(TcpTransport, PausedReaderMakesTheWriterQueue) {
  // The server never reads: its kernel buffers fill, and the client's transport keeps the rest.
  class Mute final : public ConnectionHandler {
   public:
    explicit Mute(ConnectionPtr c) : conn_(std::move(c)) {}
    void on_bytes(Slice) override { conn_->pause_reading(); }
    void on_closed(Status) override { conn_.reset(); }
    ConnectionPtr conn_;
  };
  Fixture fx;
  fx.listen([](ConnectionPtr c) { return std::make_shared<Mute>(c); });
  ConnectionPtr c = fx.connect();
  ASSERT_TRUE(c);
  Sink sink(1);
  std::size_t queued = 0;
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(std::string(64 * 1024 * 1024, 'q'))));
  });
  // Let the loop write what the kernel accepts (a few MB at most); the rest stays queued. Waits
  // for the first write however long a busy machine takes, up to the liveness bound.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while ((queued == 0 || queued >= kPayload) && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    fx.on_client([&] { queued = c->queued_bytes(); });
  }
  EXPECT_GT(queued, 0u);
  EXPECT_LT(queued, kPayload);
  auto closed = sink.closed();
  fx.on_client([&] { c->abort(cancelled("done")); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
}

TEST(TcpTransport, ConnectToClosedPortFailsWithUnavailable) {
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  std::promise<Status> p;
  tcp_connect(loops.loop(0), HostPort{"127.0.0.1", 1}, TcpOptions{},
              [&p](Result<ConnectionPtr> c) { p.set_value(c.status()); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(f.get().code(), StatusCode::kDisconnected);
}

TEST(TcpTransport, ListenOnBadHostIsInvalidArgument) {
  io::LoopGroup loops(1, io::LoopOptions{});
  auto l = tcp_listen(loops, HostPort{"not-an-ip", 0}, TcpOptions{}, [](ConnectionPtr) {});
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), StatusCode::kInvalidArgument);
}

int notsent_lowat_of(int fd) {
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len) != 0) return -2;
  return v;
}

// Both ends of a real connection: the accepted socket and the dialed one.
void notsent_lowat_of_both_ends(const TcpOptions& o, int* accepted, int* dialed) {
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  std::promise<int> on_accept;
  auto l = detail::listen_sockets(loops, HostPort{"127.0.0.1", 0}, o, [&](io::EventLoop&, detail::tcp::socket s) {
    on_accept.set_value(notsent_lowat_of(s.native_handle()));
  });
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  std::promise<int> on_dial;
  std::shared_ptr<detail::tcp::socket> keep;
  loops.loop(0).post([&] {
    detail::dial(loops.loop(0), *parse_host_port((*l)->local_address()), o,
                 [&](Result<std::shared_ptr<detail::tcp::socket>> s) {
                   if (!s.is_ok()) return on_dial.set_value(-3);
                   keep = *s;
                   on_dial.set_value(notsent_lowat_of(keep->native_handle()));
                 });
  });
  auto a = on_accept.get_future(), d = on_dial.get_future();
  ASSERT_EQ(d.wait_for(kLiveness), std::future_status::ready);
  ASSERT_EQ(a.wait_for(kLiveness), std::future_status::ready);
  *accepted = a.get();
  *dialed = d.get();
  (*l)->stop();
  loops.stop();  // `keep` goes before the loop that owns it
}

TEST(TcpTransport, NotSentLowatIsSetOnAcceptedAndDialedSockets) {
  TcpOptions o;
  o.notsent_lowat = 24 * 1024;
  int accepted = 0, dialed = 0;
  notsent_lowat_of_both_ends(o, &accepted, &dialed);
  EXPECT_EQ(accepted, 24 * 1024);
  EXPECT_EQ(dialed, 24 * 1024);
}

TEST(TcpTransport, NotSentLowatZeroKeepsTheKernelDefault) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  const int untouched = notsent_lowat_of(fd);
  ::close(fd);
  int accepted = 0, dialed = 0;
  notsent_lowat_of_both_ends(TcpOptions{}, &accepted, &dialed);
  EXPECT_EQ(accepted, untouched);
  EXPECT_EQ(dialed, untouched);
}

TEST(Address, ParsesTheFormsPeopleType) {
  auto a = parse_host_port("127.0.0.1:4300");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 4300);
  auto b = parse_host_port("[::1]:80");
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->to_string(), "[::1]:80");
  auto c = parse_host_port(":9");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->host, "0.0.0.0");
  auto d = parse_host_port("7420");
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->port, 7420);
  EXPECT_FALSE(parse_host_port("host:99999").is_ok());
  EXPECT_FALSE(parse_host_port("host:").is_ok());
  EXPECT_FALSE(parse_host_port("::1:80").is_ok());
  EXPECT_FALSE(parse_host_port("[::1]80").is_ok());
}

}  // namespace
}  // namespace slip::transport
