// The handshake state machines, wired back to back in memory.
#include "wire/handshake.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "wire_test_util.h"
#include "expect_status.h"

namespace slip::wire {
namespace {

using test::Bytes;

Slice as_slice(const Chain& c) { return c.flatten(); }

// Runs a full exchange; returns the client's and the server's final results.
struct Exchange {
  Result<bool> server = false;
  Result<bool> client = false;
};

Exchange run(ServerHandshake& server, ClientHandshake& client) {
  Exchange x;
  x.server = server.feed(as_slice(client.take_output()));
  x.client = client.feed(as_slice(server.take_output()));
  return x;
}

using ::slip::test::expect_error;

// The server's reply after a refusal: preface, then one ERROR frame.
ErrorFrame server_error_frame(ServerHandshake& server, std::vector<Frame>& keep) {
  std::string out = server.take_output().to_string();
  test::Decoded d = test::decode_all(ByteView(out), {}, /*preface=*/true);
  EXPECT_TRUE(d.error.is_ok()) << d.error.to_string();
  EXPECT_EQ(d.frames.size(), 1u);
  if (d.frames.size() != 1) return {};
  keep = d.frames;
  EXPECT_EQ(keep[0].type, FrameType::kError);
  Result<AnyFrame> p = parse_frame(keep[0], {});
  EXPECT_TRUE(p.is_ok());
  if (!p.is_ok() || !std::holds_alternative<ErrorFrame>(*p)) return {};
  return std::get<ErrorFrame>(*p);
}

// A preface plus a hand-made HELLO body.
Slice hello_bytes(const Bytes& body) {
  Bytes b;
  b.raw("SLIP").frame(static_cast<std::uint8_t>(FrameType::kHello), 0, body);
  return b.slice();
}

TEST(HandshakeTest, ClientAndServerAgree) {
  ServerHandshakeConfig sc;
  sc.codecs = 1u << static_cast<int>(Codec::kZstd);
  sc.max_frame_size = 64 * 1024;
  sc.heartbeat_ms = 3000;
  sc.initial_credit = 128 * 1024;
  sc.server_name = "slipd-test";
  sc.server_id = "srv-1";
  ClientHandshakeConfig cc;
  cc.codecs = (1u << static_cast<int>(Codec::kLz4)) | (1u << static_cast<int>(Codec::kZstd));
  cc.max_frame_size = 1u << 20;
  cc.heartbeat_ms = 2000;
  cc.initial_credit = 32 * 1024;
  cc.client_name = "client-a";
  cc.auth_user = "alice";

  ServerHandshake server(sc, 77);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_TRUE(x.server.is_ok()) << x.server.status().to_string();
  ASSERT_TRUE(*x.server);
  ASSERT_TRUE(x.client.is_ok()) << x.client.status().to_string();
  ASSERT_TRUE(*x.client);

  const Negotiated& s = server.negotiated();
  const Negotiated& c = client.negotiated();
  EXPECT_EQ(s.version, kProtocolVersion);
  EXPECT_EQ(c.version, kProtocolVersion);
  EXPECT_EQ(s.codecs, 1u << static_cast<int>(Codec::kZstd));  // the intersection
  EXPECT_EQ(c.codecs, s.codecs);
  EXPECT_EQ(s.peer_max_frame_size, 64u * 1024);  // the smaller of the two
  EXPECT_EQ(c.peer_max_frame_size, 64u * 1024);
  EXPECT_EQ(s.heartbeat_ms, 2000u);
  EXPECT_EQ(c.heartbeat_ms, 2000u);
  EXPECT_EQ(s.peer_initial_credit, 32u * 1024);  // what the client grants the server's streams
  EXPECT_EQ(c.peer_initial_credit, 128u * 1024);
  EXPECT_EQ(s.peer_name, "client-a");
  EXPECT_EQ(c.peer_name, "slipd-test");
  EXPECT_EQ(s.server_id, "srv-1");
  EXPECT_EQ(c.server_id, "srv-1");
  EXPECT_EQ(s.connection_id, 77u);
  EXPECT_EQ(c.connection_id, 77u);
  EXPECT_EQ(s.auth_user, "alice");

  // Each side's decoder now accepts frames up to its own limit.
  EXPECT_EQ(server.decoder().limits().max_frame_size, 64u * 1024);
  EXPECT_EQ(client.decoder().limits().max_frame_size, 1u << 20);
}

TEST(HandshakeTest, DefaultConfigsAgreeOnAllSupportedCodecs) {
  ServerHandshakeConfig sc;
  ClientHandshakeConfig cc;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_TRUE(x.server.is_ok() && *x.server);
  ASSERT_TRUE(x.client.is_ok() && *x.client);
  EXPECT_EQ(client.negotiated().codecs, kSupportedCodecs);
  EXPECT_EQ(client.negotiated().server_id, "");
  EXPECT_EQ(client.negotiated().peer_name, "slipd");
}

TEST(HandshakeTest, NoCommonCodecsLeavesOnlyUncompressed) {
  ServerHandshakeConfig sc;
  sc.codecs = 1u << static_cast<int>(Codec::kLz4);
  ClientHandshakeConfig cc;
  cc.codecs = 1u << static_cast<int>(Codec::kZstd);
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_TRUE(x.client.is_ok() && *x.client);
  EXPECT_EQ(client.negotiated().codecs, 0u);
  EXPECT_EQ(server.negotiated().codecs, 0u);
}

TEST(HandshakeTest, ExchangeWorksOneByteAtATime) {
  ServerHandshakeConfig sc;
  ClientHandshakeConfig cc;
  cc.client_name = "trickle";
  ServerHandshake server(sc, 5);
  ClientHandshake client(cc);
  const std::string hello = client.take_output().to_string();
  Result<bool> r = false;
  for (std::size_t i = 0; i < hello.size(); ++i) {
    r = server.feed(Slice::copy_of(ByteView(hello).sub(i, 1)));
    ASSERT_TRUE(r.is_ok()) << i << ": " << r.status().to_string();
    EXPECT_EQ(*r, i + 1 == hello.size()) << i;
  }
  const std::string welcome = server.take_output().to_string();
  for (std::size_t i = 0; i < welcome.size(); ++i) {
    r = client.feed(Slice::copy_of(ByteView(welcome).sub(i, 1)));
    ASSERT_TRUE(r.is_ok()) << i << ": " << r.status().to_string();
    EXPECT_EQ(*r, i + 1 == welcome.size()) << i;
  }
  EXPECT_EQ(server.negotiated().peer_name, "trickle");
  EXPECT_EQ(client.negotiated().connection_id, 5u);
}

TEST(HandshakeTest, FramesPipelinedAfterHelloStayInTheServerDecoder) {
  ServerHandshakeConfig sc;
  ClientHandshakeConfig cc;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Chain out = client.take_output();
  FrameEncoder enc;
  enc.add(Sub{1, "news", ""});
  Pub p;
  p.subject = "news";
  p.payload = Slice::copy_of(ByteView("first"));
  enc.add(p);
  out.append(enc.take());

  Result<bool> r = server.feed(out.flatten());
  ASSERT_TRUE(r.is_ok() && *r);
  Frame f;
  ASSERT_TRUE(*server.decoder().next(f));
  EXPECT_EQ(f.type, FrameType::kSub);
  EXPECT_EQ(std::get<Sub>(*parse_frame(f, server.decoder().limits())).subject, "news");
  ASSERT_TRUE(*server.decoder().next(f));
  EXPECT_EQ(f.type, FrameType::kPub);
  EXPECT_EQ(std::get<Pub>(*parse_frame(f, server.decoder().limits())).payload.to_string(), "first");
  EXPECT_FALSE(*server.decoder().next(f));
}

TEST(HandshakeTest, FramesPipelinedAfterWelcomeStayInTheClientDecoder) {
  ServerHandshakeConfig sc;
  ClientHandshakeConfig cc;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  ASSERT_TRUE(*server.feed(as_slice(client.take_output())));
  Chain out = server.take_output();
  out.append(Chain(encode_frame(Ping{99})));
  ASSERT_TRUE(*client.feed(out.flatten()));
  Frame f;
  ASSERT_TRUE(*client.decoder().next(f));
  EXPECT_EQ(std::get<Ping>(*parse_frame(f, {})).opaque, 99u);
}

TEST(HandshakeTest, FeedAfterSuccessKeepsReportingSuccess) {
  ServerHandshakeConfig sc;
  ClientHandshakeConfig cc;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_TRUE(*x.server && *x.client);
  Result<bool> again = server.feed(Slice());
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(*again);
  EXPECT_TRUE(server.take_output().empty());  // no second WELCOME
}

TEST(HandshakeTest, VersionMismatchIsRefusedWithUnimplemented) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Bytes hello;
  hello.u8(2).u8(3);  // a future client that dropped version 1
  Result<bool> r = server.feed(hello_bytes(hello));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kUnimplemented, "no common protocol version");

  std::vector<Frame> keep;
  ErrorFrame e = server_error_frame(server, keep);
  EXPECT_EQ(e.stream_id, 0u);
  EXPECT_EQ(e.code, StatusCode::kUnimplemented);
  EXPECT_NE(e.message.find("client speaks 2..3"), std::string_view::npos) << e.message;
}

TEST(HandshakeTest, ClientTurnsServerErrorIntoStatusWithTheServersCode) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Bytes hello;
  hello.u8(2).u8(2);
  ASSERT_FALSE(server.feed(hello_bytes(hello)).is_ok());

  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  (void)client.take_output();
  Result<bool> r = client.feed(as_slice(server.take_output()));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kUnimplemented, "server refused: handshake: no common protocol version");
  // Sticky.
  Result<bool> again = client.feed(Slice());
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status(), r.status());
}

TEST(HandshakeTest, RequireEncryptionOnPlainLinkIsRefused) {
  ServerHandshakeConfig sc;  // link_encrypted = false
  ClientHandshakeConfig cc;
  cc.require_encryption = true;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_FALSE(x.server.is_ok());
  expect_error(x.server.status(), StatusCode::kFailedPrecondition, "requires encryption");
  ASSERT_FALSE(x.client.is_ok());
  expect_error(x.client.status(), StatusCode::kFailedPrecondition, "requires encryption");
}

TEST(HandshakeTest, RequireEncryptionOnEncryptedLinkIsAccepted) {
  ServerHandshakeConfig sc;
  sc.link_encrypted = true;
  ClientHandshakeConfig cc;
  cc.require_encryption = true;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  EXPECT_TRUE(x.server.is_ok() && *x.server);
  EXPECT_TRUE(x.client.is_ok() && *x.client);
}

TEST(HandshakeTest, AuthenticateHookSeesCredentials) {
  std::string seen_user, seen_password, seen_token;
  ServerHandshakeConfig sc;
  sc.authenticate = [&](const Hello& h, std::string& identity) {
    identity = "id-" + std::string(h.auth_user);
    seen_user = std::string(h.auth_user);
    seen_password = std::string(h.auth_password);
    seen_token = std::string(h.auth_token);
    return Status();
  };
  ClientHandshakeConfig cc;
  cc.auth_user = "bob";
  cc.auth_password = "hunter2";
  cc.auth_token = "tkn";
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_TRUE(x.client.is_ok() && *x.client);
  EXPECT_EQ(seen_user, "bob");
  EXPECT_EQ(seen_password, "hunter2");
  EXPECT_EQ(seen_token, "tkn");
  EXPECT_EQ(server.negotiated().auth_user, "bob");
  EXPECT_EQ(server.negotiated().identity, "id-bob");
}

TEST(HandshakeTest, AuthenticateRejectionReachesTheClient) {
  ServerHandshakeConfig sc;
  sc.authenticate = [](const Hello& h, std::string&) {
    return h.auth_token == "good" ? Status() : unauthenticated("bad token");
  };
  ClientHandshakeConfig cc;
  cc.auth_token = "bad";
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_FALSE(x.server.is_ok());
  EXPECT_EQ(x.server.status().code(), StatusCode::kUnauthenticated);
  ASSERT_FALSE(x.client.is_ok());
  expect_error(x.client.status(), StatusCode::kUnauthenticated, "server refused: bad token");
}

TEST(HandshakeTest, RefusesNonHelloFirstFrame) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Chain in(Slice::copy_of(ByteView("SLIP")));
  in.append(Chain(encode_frame(Ping{1})));
  Result<bool> r = server.feed(in.flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "expected HELLO, got PING");
  std::vector<Frame> keep;
  EXPECT_EQ(server_error_frame(server, keep).code, StatusCode::kInvalidArgument);
}

TEST(HandshakeTest, RefusesGarbagePreface) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Result<bool> r = server.feed(Slice::copy_of(ByteView("GET / HTTP/1.1\r\n\r\n")));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "handshake: bad preface");
  std::vector<Frame> keep;
  ErrorFrame e = server_error_frame(server, keep);
  EXPECT_EQ(e.code, StatusCode::kInvalidArgument);
  EXPECT_NE(e.message.find("bad preface"), std::string_view::npos);
}

TEST(HandshakeTest, ServerErrorIsSticky) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  ASSERT_FALSE(server.feed(Slice::copy_of(ByteView("XXXX"))).is_ok());
  (void)server.take_output();
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Result<bool> r = server.feed(as_slice(client.take_output()));  // a good HELLO, too late
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(server.take_output().empty());  // refused once, not again
}

TEST(HandshakeTest, RefusesMalformedHello) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Bytes hello;
  hello.u8(1).u8(1).tlv_str(hs_key::kName, "a").tlv_str(hs_key::kName, "b");
  Result<bool> r = server.feed(hello_bytes(hello));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "appears twice");
}

TEST(HandshakeTest, RefusesHelloOverTheHandshakeFrameLimit) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Bytes hello;
  hello.u8(1).u8(1);
  for (std::uint64_t key = 100; hello.size() <= kMaxHandshakeFrameSize; ++key) {
    hello.tlv_str(key, std::string(1000, 'x'));
  }
  Result<bool> r = server.feed(hello_bytes(hello));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kOverloaded, "exceeds max_frame_size 16384");
}

TEST(HandshakeTest, ClientRefusesNonWelcomeReply) {
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Chain in(Slice::copy_of(ByteView("SLIP")));
  in.append(Chain(encode_frame(Pong{1})));
  Result<bool> r = client.feed(in.flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "expected WELCOME, got PONG");
}

TEST(HandshakeTest, ClientRefusesGarbagePreface) {
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Result<bool> r = client.feed(Slice::copy_of(ByteView("\x16\x03\x01", 3)));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "handshake: bad preface");
}

TEST(HandshakeTest, ClientRefusesCodecsItDidNotOffer) {
  ClientHandshakeConfig cc;
  cc.codecs = 1u << static_cast<int>(Codec::kLz4);
  ClientHandshake client(cc);
  Welcome w;
  w.codecs = 1u << static_cast<int>(Codec::kZstd);
  FrameEncoder enc;
  enc.add_preface();
  enc.add(w);
  Result<bool> r = client.feed(enc.take().flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "codecs the client did not offer");
}

TEST(HandshakeTest, ClientRefusesAnotherVersion) {
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Welcome w;
  w.version = 2;
  FrameEncoder enc;
  enc.add_preface();
  enc.add(w);
  Result<bool> r = client.feed(enc.take().flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kUnimplemented, "server chose version 2");
}

TEST(HandshakeTest, ServerErrorWithOkCodeBecomesUnknown) {
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  FrameEncoder enc;
  enc.add_preface();
  enc.add(ErrorFrame{0, StatusCode::kOk, "confused server"});
  Result<bool> r = client.feed(enc.take().flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kUnknown, "confused server");
}

TEST(HandshakeTest, ClientHelloCarriesItsConfiguration) {
  ClientHandshakeConfig cc;
  cc.codecs = 2;
  cc.max_frame_size = 4096;
  cc.heartbeat_ms = 10;
  cc.initial_credit = 20;
  cc.client_name = "me";
  cc.require_encryption = true;
  ClientHandshake client(cc, WireLimits{});
  std::string out = client.take_output().to_string();
  test::Decoded d = test::decode_all(ByteView(out), {}, /*preface=*/true);
  ASSERT_TRUE(d.error.is_ok());
  ASSERT_EQ(d.frames.size(), 1u);
  Result<Hello> h = decode_hello(d.frames[0], {});
  ASSERT_TRUE(h.is_ok());
  EXPECT_EQ(h->codecs, 2u);
  EXPECT_EQ(h->max_frame_size, 4096u);
  EXPECT_EQ(h->heartbeat_ms, 10u);
  EXPECT_EQ(h->initial_credit, 20u);
  EXPECT_EQ(h->client_name, "me");
  EXPECT_TRUE(h->require_encryption);
  EXPECT_EQ(h->min_version, kProtocolVersion);
  EXPECT_EQ(h->max_version, kProtocolVersion);
}

TEST(HandshakeTest, ClientLimitsCapTheAdvertisedFrameSize) {
  ClientHandshakeConfig cc;  // asks for 1 MiB
  WireLimits lim;
  lim.max_frame_size = 8192;
  ClientHandshake client(cc, lim);
  std::string out = client.take_output().to_string();
  test::Decoded d = test::decode_all(ByteView(out), {}, true);
  ASSERT_EQ(d.frames.size(), 1u);
  EXPECT_EQ(decode_hello(d.frames[0], {})->max_frame_size, 8192u);
}

// docs/protocol.md, section 11 (HELLO and WELCOME bytes are checked in frames_test.cc).
TEST(HandshakeTest, RefusalMatchesTheProtocolDoc) {
  ServerHandshakeConfig sc;
  sc.authenticate = [](const Hello&, std::string&) { return unauthenticated("bad token"); };
  ServerHandshake server(sc, 1);
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  ASSERT_FALSE(server.feed(as_slice(client.take_output())).is_ok());
  EXPECT_EQ(test::quoted(server.take_output().to_string()),
            test::quoted(test::hex_bytes("53 4C 49 50  06 00 0B 00 10 62 61 64 20 74 6F 6B 65 6E")));
}

TEST(HandshakeTest, AnyAuthenticateFailureIsReportedAsUnauthenticated) {
  ServerHandshakeConfig sc;
  sc.authenticate = [](const Hello&, std::string&) { return permission_denied("user is banned"); };
  ClientHandshakeConfig cc;
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  Exchange x = run(server, client);
  ASSERT_FALSE(x.client.is_ok());
  expect_error(x.client.status(), StatusCode::kUnauthenticated, "user is banned");
}

// authenticate_async: the handshake stops at the credentials, keeps what the client pipelines,
// and resumes with the verdict.
ServerHandshakeConfig async_config() {
  ServerHandshakeConfig sc;
  sc.authenticate_async = [](const Hello&, std::weak_ptr<const void>, AuthDone) -> std::optional<AuthVerdict> {
    return std::nullopt;
  };
  return sc;
}

TEST(HandshakeTest, AsyncAuthenticationWaitsForTheVerdictAndKeepsPipelinedFrames) {
  ServerHandshakeConfig sc = async_config();
  ClientHandshakeConfig cc;
  cc.auth_user = "bob";
  cc.auth_password = "hunter2";
  ServerHandshake server(sc, 1);
  ClientHandshake client(cc);
  FrameEncoder more(64);
  more.add(Ping{7});
  Chain first = client.take_output();
  first.append(more.take());
  Result<bool> r = server.feed(as_slice(first));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_FALSE(*r);
  ASSERT_TRUE(server.authenticating());
  EXPECT_EQ(server.pending_hello().auth_user, "bob");
  EXPECT_EQ(server.pending_hello().auth_password, "hunter2");
  EXPECT_TRUE(server.take_output().empty());  // nothing is said before the verdict
  // More bytes meanwhile are kept, not parsed.
  FrameEncoder later(64);
  later.add(Ping{8});
  ASSERT_TRUE(server.feed(as_slice(later.take())).is_ok());
  EXPECT_TRUE(server.authenticating());
  Result<bool> done = server.finish_authentication(AuthVerdict{Status(), "id-bob"});
  ASSERT_TRUE(done.is_ok() && *done) << done.status().to_string();
  EXPECT_FALSE(server.authenticating());
  EXPECT_EQ(server.negotiated().identity, "id-bob");
  EXPECT_EQ(server.negotiated().auth_user, "bob");
  Result<bool> c = client.feed(as_slice(server.take_output()));
  ASSERT_TRUE(c.is_ok() && *c) << c.status().to_string();
  // Both pings wait in the session's decoder, in order.
  for (std::uint64_t want : {7u, 8u}) {
    Frame f;
    Result<bool> got = server.decoder().next(f);
    ASSERT_TRUE(got.is_ok() && *got);
    ASSERT_EQ(f.type, FrameType::kPing);
    Result<Ping> p = decode_ping(f);
    ASSERT_TRUE(p.is_ok());
    EXPECT_EQ(p->opaque, want);
  }
  // A second verdict is a caller bug, reported as such.
  EXPECT_EQ(server.finish_authentication(AuthVerdict{}).status().code(), StatusCode::kFailedPrecondition);
}

TEST(HandshakeTest, AsyncRefusalIsUnauthenticatedAndBusyIsResourceExhausted) {
  ServerHandshakeConfig sc = async_config();
  ClientHandshakeConfig cc;
  {
    ServerHandshake server(sc, 1);
    ClientHandshake client(cc);
    ASSERT_TRUE(server.feed(as_slice(client.take_output())).is_ok());
    ASSERT_TRUE(server.authenticating());
    Result<bool> r = server.finish_authentication(AuthVerdict{permission_denied("authentication failed for user \"bob\""), {}});
    ASSERT_FALSE(r.is_ok());
    Result<bool> c = client.feed(as_slice(server.take_output()));
    ASSERT_FALSE(c.is_ok());
    expect_error(c.status(), StatusCode::kUnauthenticated, "authentication failed for user \"bob\"");
  }
  {
    ServerHandshake server(sc, 1);
    ClientHandshake client(cc);
    ASSERT_TRUE(server.feed(as_slice(client.take_output())).is_ok());
    Result<bool> r = server.finish_authentication(AuthVerdict{overloaded("authentication busy"), {}});
    ASSERT_FALSE(r.is_ok());
    Result<bool> c = client.feed(as_slice(server.take_output()));
    ASSERT_FALSE(c.is_ok());
    expect_error(c.status(), StatusCode::kOverloaded, "authentication busy");
  }
}

TEST(HandshakeTest, RefusesHelloStatingMaxFrameSizeBelowTheMinimum) {
  ServerHandshakeConfig sc;
  ServerHandshake server(sc, 1);
  Bytes hello;
  hello.u8(1).u8(1).tlv_varint(hs_key::kMaxFrameSize, kMinMaxFrameSize - 1);
  Result<bool> r = server.feed(hello_bytes(hello));
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "HELLO states max frame size 1023, below the minimum 1024");

  ServerHandshake ok_server(sc, 2);
  Bytes exact;
  exact.u8(1).u8(1).tlv_varint(hs_key::kMaxFrameSize, kMinMaxFrameSize);
  Result<bool> ok = ok_server.feed(hello_bytes(exact));
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ(ok_server.negotiated().peer_max_frame_size, kMinMaxFrameSize);
}

TEST(HandshakeTest, ClientRefusesWelcomeStatingMaxFrameSizeBelowTheMinimum) {
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Welcome w;
  w.max_frame_size = 100;
  FrameEncoder enc;
  enc.add_preface();
  enc.add(w);
  Result<bool> r = client.feed(enc.take().flatten());
  ASSERT_FALSE(r.is_ok());
  expect_error(r.status(), StatusCode::kInvalidArgument, "WELCOME states max frame size 100");
}

TEST(HandshakeTest, UnstatedFrameSizeAndCreditUseTheProtocolDefaults) {
  ServerHandshakeConfig sc;
  sc.max_frame_size = 4u << 20;
  sc.initial_credit = 1000;
  ServerHandshake server(sc, 1);
  Bytes hello;  // states nothing
  hello.u8(1).u8(1);
  ASSERT_TRUE(*server.feed(hello_bytes(hello)));
  EXPECT_EQ(server.negotiated().peer_max_frame_size, kDefaultMaxFrameSize);
  EXPECT_EQ(server.negotiated().peer_initial_credit, kDefaultInitialCredit);
  EXPECT_EQ(server.negotiated().heartbeat_ms, sc.heartbeat_ms);  // only the server stated one
  EXPECT_EQ(server.negotiated().codecs, 0u);

  ClientHandshakeConfig cc;
  cc.initial_credit = 5;
  ClientHandshake client(cc);
  FrameEncoder enc;
  enc.add_preface();
  enc.add(Welcome{});
  ASSERT_TRUE(*client.feed(enc.take().flatten()));
  EXPECT_EQ(client.negotiated().peer_max_frame_size, kDefaultMaxFrameSize);
  EXPECT_EQ(client.negotiated().peer_initial_credit, kDefaultInitialCredit);
}

TEST(HandshakeTest, StatedFrameSizesAreCappedAtTheHardMaximum) {
  ServerHandshakeConfig sc;
  sc.max_frame_size = 0xFFFFFFFFu;
  WireLimits lim;
  lim.max_frame_size = 0xFFFFFFFFu;
  ServerHandshake server(sc, 1, lim);
  Bytes hello;
  hello.u8(1).u8(1).tlv_varint(hs_key::kMaxFrameSize, 0xFFFFFFFFu);
  ASSERT_TRUE(*server.feed(hello_bytes(hello)));
  EXPECT_EQ(server.negotiated().peer_max_frame_size, kHardMaxFrameSize);
  EXPECT_EQ(server.decoder().limits().max_frame_size, kHardMaxFrameSize);
}

}  // namespace
}  // namespace slip::wire
