// Black-box tests of slipd: a real process on 127.0.0.1, driven over raw sockets and by `slip`.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "process.h"
#include "wire/encoder.h"
#include "wire/handshake.h"

namespace slip::test {
namespace {

using wire::FrameType;

// A parsed frame with the bytes its string_views point into.
struct Typed {
  wire::Frame frame;
  wire::AnyFrame any;
};

Result<Typed> read_typed_frame(RawClient& c) {
  SLIP_ASSIGN_OR_RETURN(wire::Frame f, c.read_frame());
  SLIP_ASSIGN_OR_RETURN(wire::AnyFrame any, wire::parse_frame(f, wire::WireLimits{}));
  return Typed{std::move(f), std::move(any)};
}

// Reads one frame and holds it in `holder`; returns its typed form.
#define READ_TYPED(holder, client)                                  \
  auto holder = read_typed_frame(client);                           \
  ASSERT_TRUE(holder.is_ok()) << holder.status().to_string()


TEST(Slipd, AnswersHandshakeAndPing) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.handshake().is_ok());
  wire::FrameEncoder e;
  e.add(wire::Ping{0x0123456789abcdefULL});
  c.send_chain(e.take());
  READ_TYPED(f_h, c);
  const wire::AnyFrame* f = &f_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::Pong>(*f));
  EXPECT_EQ(std::get<wire::Pong>(*f).opaque, 0x0123456789abcdefULL);
}

TEST(Slipd, AnswersPipelinedPingsInOrder) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  ASSERT_TRUE(c.handshake().is_ok());
  constexpr int kPings = 2000;
  wire::FrameEncoder e;
  for (int i = 0; i < kPings; ++i) e.add(wire::Ping{static_cast<std::uint64_t>(i)});
  c.send_chain(e.take());
  for (int i = 0; i < kPings; ++i) {
    READ_TYPED(f_h, c);
    const wire::AnyFrame* f = &f_h->any;
    ASSERT_EQ(std::get<wire::Pong>(*f).opaque, static_cast<std::uint64_t>(i));
  }
}

TEST(Slipd, HandshakeSentOneByteAtATimeSucceeds) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  wire::ClientHandshakeConfig cfg;
  wire::ClientHandshake hs(cfg);
  std::string bytes = hs.take_output().to_string();
  for (char ch : bytes) c.send_bytes(ByteView(&ch, 1));
  wire::FrameEncoder e;
  e.add(wire::Ping{7});
  c.send_chain(e.take());
  // The server answers with its preface, WELCOME, then PONG.
  c.decoder() = wire::FrameDecoder(wire::WireLimits{}, true);
  auto welcome = c.read_frame();
  ASSERT_TRUE(welcome.is_ok()) << welcome.status().to_string();
  EXPECT_EQ(welcome->type, FrameType::kWelcome);
  READ_TYPED(pong_h, c);
  const wire::AnyFrame* pong = &pong_h->any;
  EXPECT_EQ(std::get<wire::Pong>(*pong).opaque, 7u);
}

TEST(Slipd, MalformedFrameGetsErrorAndCloseWhileOthersKeepWorking) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient bad(slipd.port());
  RawClient good(slipd.port());
  ASSERT_TRUE(bad.handshake().is_ok());
  ASSERT_TRUE(good.handshake().is_ok());

  const std::uint8_t unknown_type[] = {0x55, 0x00, 0x00};
  bad.send_bytes(ByteView(unknown_type, sizeof(unknown_type)));
  READ_TYPED(err_h, bad);
  const wire::AnyFrame* err = &err_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::ErrorFrame>(*err));
  EXPECT_EQ(std::get<wire::ErrorFrame>(*err).code, StatusCode::kUnimplemented);
  EXPECT_EQ(std::get<wire::ErrorFrame>(*err).stream_id, 0u);
  EXPECT_TRUE(bad.wait_closed());

  wire::FrameEncoder e;
  e.add(wire::Ping{99});
  good.send_chain(e.take());
  READ_TYPED(pong_h, good);
  const wire::AnyFrame* pong = &pong_h->any;
  EXPECT_EQ(std::get<wire::Pong>(*pong).opaque, 99u);
}

TEST(Slipd, OversizedFrameIsRefusedWithResourceExhausted) {
  SlipdProcess slipd({"--max-frame-size", "4096"});
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  ASSERT_TRUE(c.handshake().is_ok());
  wire::FrameEncoder e;
  std::string big(8192, 'x');
  e.add(wire::Data{1, wire::data_flags::kOpen, Slice::copy_of(big)});
  c.send_chain(e.take());
  READ_TYPED(err_h, c);
  const wire::AnyFrame* err = &err_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::ErrorFrame>(*err));
  EXPECT_EQ(std::get<wire::ErrorFrame>(*err).code, StatusCode::kOverloaded);
  EXPECT_TRUE(c.wait_closed());
}

TEST(Slipd, NonSlipstreamClientIsRefusedWithClearError) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  c.send_bytes(ByteView("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  c.decoder() = wire::FrameDecoder(wire::WireLimits{}, true);
  READ_TYPED(err_h, c);
  const wire::AnyFrame* err = &err_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::ErrorFrame>(*err));
  EXPECT_EQ(std::get<wire::ErrorFrame>(*err).code, StatusCode::kInvalidArgument);
  EXPECT_NE(std::get<wire::ErrorFrame>(*err).message.find("preface"), std::string_view::npos);
  EXPECT_TRUE(c.wait_closed());
}

TEST(Slipd, UnsupportedVersionIsRefusedWithUnimplemented) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  wire::FrameEncoder e;
  e.add_preface();
  wire::Hello h;
  h.min_version = 2;
  h.max_version = 3;
  e.add(h);
  c.send_chain(e.take());
  c.decoder() = wire::FrameDecoder(wire::WireLimits{}, true);
  READ_TYPED(err_h, c);
  const wire::AnyFrame* err = &err_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::ErrorFrame>(*err));
  EXPECT_EQ(std::get<wire::ErrorFrame>(*err).code, StatusCode::kUnimplemented);
  EXPECT_TRUE(c.wait_closed());
}

TEST(Slipd, SigtermSendsGoAwayAndExitsCleanly) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  RawClient c(slipd.port());
  ASSERT_TRUE(c.handshake().is_ok());
  kill(slipd.pid(), SIGTERM);
  READ_TYPED(f_h, c);
  const wire::AnyFrame* f = &f_h->any;
  ASSERT_TRUE(std::holds_alternative<wire::GoAway>(*f));
  EXPECT_EQ(std::get<wire::GoAway>(*f).code, StatusCode::kDisconnected);
  EXPECT_TRUE(c.wait_closed());
  int status = slipd.stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// A self-signed certificate for 127.0.0.1 made with the openssl command; empty dir on failure.
struct SelfSigned {
  std::string dir;
  SelfSigned() {
    char tmpl[] = "/tmp/slip-tls-XXXXXX";
    dir = mkdtemp(tmpl);
    for (const char* name : {"server", "other"}) {
      std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
                        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
                        dir + "/" + name + ".key -out " + dir + "/" + name + ".pem >/dev/null 2>&1";
      if (std::system(cmd.c_str()) != 0) dir.clear();
    }
  }
  ~SelfSigned() {
    if (!dir.empty()) (void)std::system(("rm -rf " + dir).c_str());
  }
  std::string path(const char* f) const { return dir + "/" + f; }
};

TEST(SlipdTls, PingOverTlsSucceedsAndAWrongCertificateIsRefused) {
  SelfSigned pki;
  ASSERT_FALSE(pki.dir.empty()) << "openssl could not make a certificate";
  SlipdProcess slipd({"--tls-cert", pki.path("server.pem"), "--tls-key", pki.path("server.key")});
  ASSERT_TRUE(slipd.ok()) << slipd.log();

  std::string out;
  int rc = run_program({SLIP_PATH, "ping", "--server", slipd.address(), "--count", "3", "--tls-ca",
                        pki.path("server.pem")}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("3 pongs"), std::string::npos) << out;

  // A client that trusts another certificate refuses the server, with the reason.
  rc = run_program({SLIP_PATH, "ping", "--server", slipd.address(), "--tls-ca", pki.path("other.pem")}, &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("certificate verify failed"), std::string::npos) << out;

  // A plain-text client gets no session: the TLS port closes on it.
  RawClient plain(slipd.port());
  ASSERT_TRUE(plain.connected());
  Status hs = plain.handshake();
  EXPECT_FALSE(hs.is_ok());
  EXPECT_NE(slipd.log().find("TLS"), std::string::npos) << slipd.log();
}

TEST(SlipCli, PingSucceedsAgainstSlipd) {
  SlipdProcess slipd;
  ASSERT_TRUE(slipd.ok()) << slipd.log();
  std::string out;
  int rc = run_program({SLIP_PATH, "ping", "--server", slipd.address(), "--count", "3"}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("3 pongs"), std::string::npos) << out;
}

TEST(SlipCli, PingFailsClearlyWithoutServer) {
  std::string out;
  int rc = run_program({SLIP_PATH, "ping", "--server", "127.0.0.1:1"}, &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("cannot connect"), std::string::npos) << out;
}

TEST(SlipCli, VersionAndHelpWork) {
  std::string out;
  EXPECT_EQ(run_program({SLIPD_PATH, "--version"}, &out), 0);
  EXPECT_NE(out.find("slipd "), std::string::npos) << out;
  EXPECT_EQ(run_program({SLIPD_PATH, "--help"}, &out), 0);
  EXPECT_NE(out.find("--listen"), std::string::npos) << out;
  EXPECT_EQ(run_program({SLIP_PATH, "--help"}, &out), 0);
  EXPECT_NE(out.find("ping"), std::string::npos) << out;
}

TEST(SlipCli, SlipdRejectsBadListenAddress) {
  std::string out;
  int rc = run_program({SLIPD_PATH, "--listen", "127.0.0.1:notaport"}, &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("port must be a number"), std::string::npos) << out;
}

}  // namespace
}  // namespace slip::test
