// The TLS transport over real sockets on 127.0.0.1, across event-loop threads: handshakes that
// succeed, handshakes that are refused (wrong CA, wrong name, plain text, silence, missing or
// foreign client certificates), and the same byte-pipe behaviour as TCP once established.
// Certificates are made at start with the `openssl` command line in a temporary directory.
// Runs under ThreadSanitizer too.
#include "sink.h"
#include "transport/tls/tls.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "io/loop_group.h"

namespace slip::transport {
namespace {

// What the paused-reader tests send: far more than the kernel buffers.
constexpr std::size_t kPayload = 64u * 1024 * 1024;

using test::Sink;

constexpr auto kLiveness = std::chrono::seconds(30);

// A throwaway PKI: a CA with a server (127.0.0.1, localhost) and a client certificate, and an
// unrelated CA with its own client certificate.
class TestPki {
 public:
  static const TestPki& get() {
    static const TestPki pki;
    return pki;
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& error() const { return error_; }

  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;
  ~TestPki() {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

 private:
  TestPki() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "slip-tls-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    std::ofstream(path("pki.cnf")) << "[req]\n"
                                      "distinguished_name = dn\n"
                                      "prompt = no\n"
                                      "[dn]\n"
                                      "CN = unused\n"
                                      "[ca_ext]\n"
                                      "basicConstraints = critical,CA:TRUE\n"
                                      "keyUsage = critical,keyCertSign,cRLSign\n"
                                      "subjectKeyIdentifier = hash\n"
                                      "[server_ext]\n"
                                      "basicConstraints = CA:FALSE\n"
                                      "keyUsage = critical,digitalSignature\n"
                                      "extendedKeyUsage = serverAuth\n"
                                      "subjectAltName = IP:127.0.0.1,DNS:localhost\n"
                                      "[client_ext]\n"
                                      "basicConstraints = CA:FALSE\n"
                                      "keyUsage = critical,digitalSignature\n"
                                      "extendedKeyUsage = clientAuth\n";
    make_ca("ca", "/CN=Slipstream Test CA");
    make_ca("other-ca", "/CN=Unrelated Test CA");
    make_leaf("server", "ca", "/CN=127.0.0.1", "server_ext");
    make_leaf("client", "ca", "/O=Slipstream Tests/CN=slip-test-client", "client_ext");
    make_leaf("other-client", "other-ca", "/CN=stranger", "client_ext");
  }

  void run(const std::string& args) {
    if (!error_.empty()) return;
    const std::string cmd = "cd '" + dir_ + "' && openssl " + args + " >>openssl.log 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::ifstream log(path("openssl.log"));
      error_ = "failed: " + cmd + "\n" + std::string(std::istreambuf_iterator<char>(log), {});
    }
  }

  void make_ca(const std::string& name, const std::string& subject) {
    run("req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -config pki.cnf"
        " -extensions ca_ext -subj '" + subject + "' -keyout " + name + ".key -out " + name + ".pem");
  }

  void make_leaf(const std::string& name, const std::string& ca, const std::string& subject,
                 const std::string& ext) {
    run("req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -config pki.cnf -subj '" + subject +
        "' -keyout " + name + ".key -out " + name + ".csr");
    run("x509 -req -in " + name + ".csr -CA " + ca + ".pem -CAkey " + ca + ".key -CAcreateserial -days 2" +
        " -extfile pki.cnf -extensions " + ext + " -out " + name + ".pem");
  }

  std::string dir_;
  std::string error_;
};

#define REQUIRE_PKI() ASSERT_EQ(TestPki::get().error(), "")

TlsOptions server_tls() {
  const auto& pki = TestPki::get();
  TlsOptions o;
  o.cert_file = pki.path("server.pem");
  o.key_file = pki.path("server.key");
  return o;
}

TlsOptions client_tls() {
  TlsOptions o;
  o.ca_file = TestPki::get().path("ca.pem");
  o.server_name = "127.0.0.1";
  return o;
}

// Echoes every byte back; counts its close callbacks.
class Echo final : public ConnectionHandler {
 public:
  explicit Echo(ConnectionPtr c) : conn_(std::move(c)) {}
  void on_bytes(Slice bytes) override { conn_->send(Chain(std::move(bytes))); }
  void on_closed(Status) override { conn_.reset(); }  // breaks the cycle connection -> handler

 private:
  ConnectionPtr conn_;
};


struct Fixture {
  io::LoopGroup server_loops{2, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  io::LoopGroup client_loops{1, io::LoopOptions{io::IdleStrategy::kBlock, {}}};
  std::unique_ptr<Listener> listener;
  std::atomic<int> accepted{0};
  std::mutex mu;
  std::vector<std::shared_ptr<ConnectionHandler>> handlers;
  std::vector<std::string> peer_subjects;

  template <typename MakeHandler>
  void listen(const TlsOptions& tls, MakeHandler make) {
    server_loops.start();
    client_loops.start();
    auto l = tls_listen(server_loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, tls, [this, make](ConnectionPtr c) {
      accepted.fetch_add(1);
      auto h = make(c);
      {
        std::lock_guard<std::mutex> g(mu);
        handlers.push_back(h);
        peer_subjects.push_back(tls_peer_subject(*c));
      }
      c->start(h.get());
    });
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    listener = std::move(l).value();
  }

  HostPort address() const { return *parse_host_port(listener->local_address()); }

  Result<ConnectionPtr> connect(const TlsOptions& tls) {
    std::promise<Result<ConnectionPtr>> p;
    auto f = p.get_future();
    tls_connect(client_loops.loop(0), address(), TcpOptions{}, tls,
                [&p](Result<ConnectionPtr> c) { p.set_value(std::move(c)); });
    if (f.wait_for(kLiveness) != std::future_status::ready) return timed_out("connect did not finish");
    return f.get();
  }

  // A plain TCP connection to the TLS port.
  ConnectionPtr connect_plain() {
    std::promise<Result<ConnectionPtr>> p;
    auto f = p.get_future();
    tcp_connect(client_loops.loop(0), address(), TcpOptions{},
                [&p](Result<ConnectionPtr> c) { p.set_value(std::move(c)); });
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

  std::vector<std::string> subjects() {
    std::lock_guard<std::mutex> g(mu);
    return peer_subjects;
  }

  ~Fixture() {
    if (listener) listener->stop();
    client_loops.stop();
    server_loops.stop();
  }
};

auto make_echo = [](ConnectionPtr c) { return std::make_shared<Echo>(c); };

TEST(TlsTransport, HandshakesThenEchoesRandomChunksIntactAndInOrder) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  auto r = fx.connect(client_tls());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ConnectionPtr c = *r;
  EXPECT_TRUE(c->secure());
  EXPECT_EQ(tls_peer_subject(*c), "CN=127.0.0.1");
  std::string sent;
  std::mt19937 rng(42);
  while (sent.size() < 4 * 1024 * 1024) {
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
      // Several slices per send, small and large: the transport packs them into records.
      Chain chain;
      for (int k = 0; k < 3 && pos < sent.size(); ++k) {
        std::size_t n = std::min<std::size_t>(1 + r2() % (k == 0 ? 300 : 50000), sent.size() - pos);
        chain.append(Slice::copy_of(ByteView(sent.data() + pos, n)));
        pos += n;
      }
      c->send(std::move(chain));
    }
  });
  ASSERT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.got().size(), sent.size());
  EXPECT_TRUE(sink.got() == sent);
  EXPECT_EQ(fx.accepted.load(), 1);
  auto subjects = fx.subjects();
  ASSERT_EQ(subjects.size(), 1u);
  EXPECT_EQ(subjects[0], "");  // the server asked for no client certificate
  auto closed = sink.closed();
  fx.on_client([&] { c->close(); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_TRUE(sink.reason().is_ok()) << sink.reason().to_string();
  EXPECT_EQ(sink.closes(), 1);
}

TEST(TlsTransport, ServerNameMayBeADnsName) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  TlsOptions tls = client_tls();
  tls.server_name = "localhost";
  auto r = fx.connect(tls);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  Sink sink(5);
  auto done = sink.done();
  fx.on_client([&] {
    (*r)->start(&sink);
    (*r)->send(Chain(Slice::copy_of("hello")));
  });
  ASSERT_EQ(done.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.got(), "hello");
  auto closed = sink.closed();
  fx.on_client([&] { (*r)->close(); });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
}

TEST(TlsTransport, ClientTrustingAnotherCaIsRefusedWithVerifyError) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  TlsOptions tls = client_tls();
  tls.ca_file = TestPki::get().path("other-ca.pem");
  auto r = fx.connect(tls);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().to_string();
  EXPECT_NE(r.status().message().find("certificate verify failed"), std::string_view::npos)
      << r.status().to_string();
  EXPECT_EQ(fx.accepted.load(), 0);
}

TEST(TlsTransport, ServerCertificateForAnotherNameIsRefused) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  TlsOptions tls = client_tls();
  tls.server_name = "db.example.com";
  auto r = fx.connect(tls);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << r.status().to_string();
  EXPECT_NE(r.status().message().find("hostname mismatch"), std::string_view::npos) << r.status().to_string();
}

TEST(TlsTransport, PlainTextClientIsClosedAndNeverAccepted) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  ConnectionPtr c = fx.connect_plain();
  ASSERT_TRUE(c);
  Sink sink(1 << 20);  // only the close ends it
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    // A native client's preface and HELLO (docs/protocol.md), as if it had the wrong port.
    static const std::uint8_t kHello[] = {0x53, 0x4C, 0x49, 0x50, 0x01, 0x00, 0x06, 0x01, 0x01,
                                          0x07, 0x03, 0x63, 0x6C, 0x69};
    c->send(Chain(Slice::copy_of(ByteView(kHello, sizeof(kHello)))));
  });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_FALSE(sink.reason().is_ok());
  EXPECT_EQ(fx.accepted.load(), 0);
}

TEST(TlsTransport, SilentClientIsClosedWhenTheHandshakeTimesOut) {
  REQUIRE_PKI();
  Fixture fx;
  TlsOptions tls = server_tls();
  tls.handshake_timeout = std::chrono::milliseconds(100);
  fx.listen(tls, make_echo);
  ConnectionPtr c = fx.connect_plain();
  ASSERT_TRUE(c);
  Sink sink(1);
  auto closed = sink.closed();
  fx.on_client([&] { c->start(&sink); });  // and never say anything
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.reason().code(), StatusCode::kDisconnected);
  EXPECT_EQ(fx.accepted.load(), 0);
}

// Connects with `tls` to a server that requires client certificates and returns how the client
// saw it end: OK when it was accepted and echoed, else the refusal.
Status try_client_cert(Fixture& fx, const TlsOptions& tls) {
  auto r = fx.connect(tls);
  if (!r.is_ok()) return r.status();
  ConnectionPtr c = *r;
  // TLS 1.3 clients finish before the server has checked their certificate: a refusal arrives
  // as an alert on the established connection.
  Sink sink(4);
  auto done = sink.done();
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of("ping")));
  });
  if (done.wait_for(kLiveness) != std::future_status::ready) return timed_out("no echo and no close");
  Status result;
  if (sink.got() == "ping") {
    fx.on_client([&] { c->close(); });
  } else {
    result = sink.reason();
    if (result.is_ok()) result = internal_error("closed without a reason");
  }
  if (closed.wait_for(kLiveness) != std::future_status::ready) return timed_out("no close");
  return result;
}

TEST(TlsTransport, RequiredClientCertificateMustBePresentAndTrusted) {
  REQUIRE_PKI();
  Fixture fx;
  TlsOptions server = server_tls();
  server.ca_file = TestPki::get().path("ca.pem");
  server.require_client_cert = true;
  fx.listen(server, make_echo);

  Status none = try_client_cert(fx, client_tls());
  EXPECT_EQ(none.code(), StatusCode::kUnauthenticated) << none.to_string();
  EXPECT_NE(none.message().find("certificate required"), std::string_view::npos) << none.to_string();

  TlsOptions stranger = client_tls();
  stranger.cert_file = TestPki::get().path("other-client.pem");
  stranger.key_file = TestPki::get().path("other-client.key");
  Status foreign = try_client_cert(fx, stranger);
  EXPECT_EQ(foreign.code(), StatusCode::kUnauthenticated) << foreign.to_string();
  EXPECT_EQ(fx.accepted.load(), 0);

  TlsOptions good = client_tls();
  good.cert_file = TestPki::get().path("client.pem");
  good.key_file = TestPki::get().path("client.key");
  Status ok = try_client_cert(fx, good);
  EXPECT_TRUE(ok.is_ok()) << ok.to_string();
  EXPECT_EQ(fx.accepted.load(), 1);
  auto subjects = fx.subjects();
  ASSERT_EQ(subjects.size(), 1u);
  EXPECT_EQ(subjects[0], "CN=slip-test-client,O=Slipstream Tests");
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

TEST(TlsTransport, CloseFlushesQueuedBytesThenPeerSeesDisconnect) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), [](ConnectionPtr c) { return std::make_shared<Blaster>(c, kBytes); });
  auto r = fx.connect(client_tls());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ConnectionPtr c = *r;
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
  // close_notify came after the last byte.
  EXPECT_EQ(sink.reason().code(), StatusCode::kDisconnected);
  EXPECT_EQ(sink.reason().message(), "read: connection closed by peer");
}

TEST(TlsTransport, AbortReportsItsReasonOnce) {
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), make_echo);
  auto r = fx.connect(client_tls());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ConnectionPtr c = *r;
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

TEST(TlsTransport, PausedReaderMakesTheWriterQueue) {
  // The server stops reading: its kernel buffers fill, and the client's transport keeps the rest.
  class Mute final : public ConnectionHandler {
   public:
    explicit Mute(ConnectionPtr c) : conn_(std::move(c)) {}
    void on_bytes(Slice) override { conn_->pause_reading(); }
    void on_closed(Status) override { conn_.reset(); }
    ConnectionPtr conn_;
  };
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), [](ConnectionPtr c) { return std::make_shared<Mute>(c); });
  auto r = fx.connect(client_tls());
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ConnectionPtr c = *r;
  Sink sink(1);
  std::size_t queued = 0;
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(std::string(64 * 1024 * 1024, 'q'))));
  });
  // Waits for the first writes however long a busy machine takes, up to the liveness bound.
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

TEST(TlsTransport, CloseGivesUpOnAPeerThatDoesNotReadAfterTheLinger) {
  class Mute final : public ConnectionHandler {
   public:
    explicit Mute(ConnectionPtr c) : conn_(std::move(c)) {}
    void on_bytes(Slice) override { conn_->pause_reading(); }
    void on_closed(Status) override { conn_.reset(); }
    ConnectionPtr conn_;
  };
  REQUIRE_PKI();
  Fixture fx;
  fx.listen(server_tls(), [](ConnectionPtr c) { return std::make_shared<Mute>(c); });
  TcpOptions tcp;
  tcp.close_linger = std::chrono::milliseconds(100);
  std::promise<Result<ConnectionPtr>> p;
  auto f = p.get_future();
  tls_connect(fx.client_loops.loop(0), fx.address(), tcp, client_tls(),
              [&p](Result<ConnectionPtr> c) { p.set_value(std::move(c)); });
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ConnectionPtr c = *r;
  Sink sink(1);
  auto closed = sink.closed();
  fx.on_client([&] {
    c->start(&sink);
    c->send(Chain(Slice::copy_of(std::string(64 * 1024 * 1024, 'q'))));
    c->close();
  });
  ASSERT_EQ(closed.wait_for(kLiveness), std::future_status::ready);
  EXPECT_EQ(sink.reason().code(), StatusCode::kTimeout) << sink.reason().to_string();
  EXPECT_EQ(sink.closes(), 1);
}

TEST(TlsTransport, ListenWithBadFilesIsInvalidArgument) {
  REQUIRE_PKI();
  io::LoopGroup loops(1, io::LoopOptions{});
  TlsOptions missing = server_tls();
  missing.cert_file = TestPki::get().path("no-such-cert.pem");
  auto a = tls_listen(loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, missing, [](ConnectionPtr) {});
  ASSERT_FALSE(a.is_ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("no-such-cert.pem"), std::string_view::npos) << a.status().to_string();

  TlsOptions mismatched = server_tls();
  mismatched.key_file = TestPki::get().path("client.key");
  auto b = tls_listen(loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, mismatched, [](ConnectionPtr) {});
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().to_string();

  TlsOptions not_pem = server_tls();
  not_pem.cert_file = TestPki::get().path("pki.cnf");
  auto c = tls_listen(loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, not_pem, [](ConnectionPtr) {});
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << c.status().to_string();

  TlsOptions no_ca = server_tls();
  no_ca.require_client_cert = true;
  auto d = tls_listen(loops, HostPort{"127.0.0.1", 0}, TcpOptions{}, no_ca, [](ConnectionPtr) {});
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << d.status().to_string();
}

TEST(TlsTransport, ConnectWithBadCaFileIsInvalidArgument) {
  REQUIRE_PKI();
  io::LoopGroup loops(1, io::LoopOptions{io::IdleStrategy::kBlock, {}});
  loops.start();
  TlsOptions tls = client_tls();
  tls.ca_file = TestPki::get().path("missing-ca.pem");
  std::promise<Status> p;
  tls_connect(loops.loop(0), HostPort{"127.0.0.1", 1}, TcpOptions{}, tls,
              [&p](Result<ConnectionPtr> c) { p.set_value(c.status()); });
  auto f = p.get_future();
  ASSERT_EQ(f.wait_for(kLiveness), std::future_status::ready);
  Status s = f.get();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("missing-ca.pem"), std::string_view::npos) << s.to_string();
}

}  // namespace
}  // namespace slip::transport
