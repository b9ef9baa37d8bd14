// libFuzzer target: ServerHandshake and ClientHandshake.
//
// Input layout:
//   byte 0   bits 0-1 mode: 0 = bytes from a client into a ServerHandshake,
//                           1 = bytes from a server into a ClientHandshake,
//                           2 = a client config built from the input, run against a server,
//                           3 = as 0, then the server's answer into a standard client;
//            bit 2 the server's link is encrypted; bit 3 the server has an authenticate hook
//            (refuses token "bad"); bit 4 small limits (max frame size 2048)
//   byte 1   split seed: 0 feeds the bytes in one piece, otherwise piece lengths come from a
//            small PRNG seeded with it
//   rest     the bytes (modes 0, 1, 3) or the client config (mode 2, see client_config_from)
//
// Checks, beyond "no crash, no sanitizer report": failures are sticky; a refusing server
// answers with exactly its preface and one ERROR carrying the refusal's code; a WELCOME sent
// after any accepted HELLO is accepted by a client that offered every codec; after success
// both sides agree, and frames pipelined behind HELLO or WELCOME decode from the decoder.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include "wire/decoder.h"
#include "wire/encoder.h"
#include "wire/frames.h"
#include "wire/handshake.h"

namespace {

using namespace slip;
using namespace slip::wire;

[[noreturn]] void fail(const char* what, const std::string& detail = {}) {
  std::fprintf(stderr, "handshake_fuzz: %s %s\n", what, detail.c_str());
  std::abort();
}

// Piece lengths for feeding bytes in several calls.
class Splitter {
 public:
  explicit Splitter(std::uint8_t seed) : seed_(seed), rng_(seed * 2654435761u + 7) {}
  std::size_t next(std::size_t left) {
    if (seed_ == 0 || left == 0) return left;
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    return std::min<std::size_t>(left, 1 + rng_ % (1 + seed_ % 37u));
  }

 private:
  std::uint8_t seed_;
  std::uint32_t rng_;
};

// Feeds `bytes` in pieces until the handshake finishes or fails; checks stickiness.
template <typename Handshake>
Result<bool> feed_all(Handshake& hs, ByteView bytes, std::uint8_t seed) {
  Splitter split(seed);
  std::size_t pos = 0;
  Result<bool> r = false;
  do {
    const std::size_t n = split.next(bytes.size() - pos);
    r = hs.feed(Slice::copy_of(bytes.sub(pos, n)));
    pos += n;
    if (!r.is_ok() || *r) break;
  } while (pos < bytes.size());
  if (!r.is_ok()) {
    Result<bool> again = hs.feed(Slice::copy_of(ByteView("SLIP")));
    if (again.is_ok() || !(again.status() == r.status())) fail("handshake error is not sticky");
    if (r.status().message().empty()) fail("handshake error without a message");
  } else if (*r) {
    Result<bool> again = hs.feed(Slice());
    if (!again.is_ok() || !*again) fail("handshake success is not sticky");
  }
  return r;
}

// Parses every frame left in a decoder (pipelined frames); must not crash.
void drain(FrameDecoder& dec) {
  for (int i = 0; i < 1000; ++i) {
    Frame f;
    Result<bool> r = dec.next(f);
    if (!r.is_ok() || !*r) return;
    (void)parse_frame(f, dec.limits());
  }
}

// A refused handshake must have produced the server preface and one ERROR with the code.
void check_refusal(ServerHandshake& server, const Status& refusal) {
  const std::string out = server.take_output().to_string();
  FrameDecoder dec({}, /*expect_preface=*/true);
  dec.feed(Slice::copy_of(ByteView(out)));
  Frame f;
  Result<bool> r = dec.next(f);
  if (!r.is_ok() || !*r) fail("refusal is not preface + frame");
  if (f.type != FrameType::kError) fail("refusal is not an ERROR frame");
  Result<AnyFrame> e = parse_frame(f, {});
  if (!e.is_ok()) fail("refusal ERROR does not parse", e.status().to_string());
  const auto& ef = std::get<ErrorFrame>(*e);
  if (ef.stream_id != 0 || ef.code != refusal.code()) fail("refusal ERROR has the wrong stream or code");
  if (dec.buffered() != 0) fail("refusal has bytes after the ERROR");
  if (!server.take_output().empty()) fail("server wrote twice");

  // A client reading the refusal reports the same code.
  ClientHandshakeConfig cc;
  ClientHandshake client(cc);
  Result<bool> c = client.feed(Slice::copy_of(ByteView(out)));
  if (c.is_ok()) fail("client accepted a refusal");
  if (c.status().code() != refusal.code()) fail("client reports another code", c.status().to_string());
}

ServerHandshakeConfig server_config(std::uint8_t options) {
  ServerHandshakeConfig sc;
  sc.link_encrypted = options & 4;
  if (options & 8) {
    sc.authenticate = [](const Hello& h, std::string&) {
      return h.auth_token == "bad" ? unauthenticated("bad token") : Status();
    };
  }
  sc.server_id = "fuzz";
  return sc;
}

WireLimits limits_for(std::uint8_t options) {
  WireLimits l;
  if (options & 16) l.max_frame_size = 2048;
  return l;
}

// Runs a server over client bytes; on success hands its WELCOME to a standard client.
void run_server(std::uint8_t options, std::uint8_t seed, ByteView bytes, bool answer_to_client) {
  const ServerHandshakeConfig sc = server_config(options);
  ServerHandshake server(sc, 42, limits_for(options));
  Result<bool> r = feed_all(server, bytes, seed);
  if (!r.is_ok()) {
    check_refusal(server, r.status());
    return;
  }
  if (!*r) {
    if (!server.take_output().empty()) fail("server answered before the handshake finished");
    return;
  }
  const Negotiated& n = server.negotiated();
  if (n.connection_id != 42) fail("server lost the connection id");
  if ((n.codecs & ~sc.codecs) != 0) fail("server agreed to codecs it does not support");
  if (n.peer_max_frame_size < kMinMaxFrameSize) fail("peer max frame size below the minimum");
  if (n.peer_max_frame_size > kHardMaxFrameSize) fail("peer max frame size over the hard limit");
  drain(server.decoder());

  const std::string welcome = server.take_output().to_string();
  if (!answer_to_client) return;
  ClientHandshakeConfig cc;  // offers every codec this build supports
  ClientHandshake client(cc);
  Result<bool> c = feed_all(client, ByteView(welcome), seed);
  if (!c.is_ok() || !*c) fail("a standard client refused the server's WELCOME", c.status().to_string());
  if (client.negotiated().codecs != n.codecs) fail("client and server disagree on codecs");
  if (client.negotiated().connection_id != 42) fail("client got another connection id");
  if (client.negotiated().server_id != "fuzz") fail("client got another server id");
}

void run_client(std::uint8_t options, std::uint8_t seed, ByteView bytes) {
  ClientHandshakeConfig cc;
  if (options & 4) cc.codecs = 1u << static_cast<int>(Codec::kLz4);
  ClientHandshake client(cc, limits_for(options));
  (void)client.take_output();
  Result<bool> r = feed_all(client, bytes, seed);
  if (!r.is_ok() || !*r) return;
  const Negotiated& n = client.negotiated();
  if ((n.codecs & ~cc.codecs) != 0) fail("client accepted codecs it did not offer");
  if (n.peer_max_frame_size > cc.max_frame_size) fail("client may send more than it allowed itself");
  if (n.peer_max_frame_size < kMinMaxFrameSize) fail("client may send less than the minimum frame size");
  drain(client.decoder());
}

// Mode 2: the input describes the client.
//   [codecs u8][flags u8: bit 0 require_encryption][max_frame_size u32 LE]
//   then up to four length-prefixed (u8) strings: name, token, user, password.
ClientHandshakeConfig client_config_from(ByteView in) {
  ClientHandshakeConfig cc;
  std::size_t pos = 0;
  auto u8 = [&]() -> std::uint8_t { return pos < in.size() ? in[pos++] : 0; };
  cc.codecs = u8();
  cc.require_encryption = u8() & 1;
  std::uint32_t mfs = 0;
  for (int i = 0; i < 4; ++i) mfs |= static_cast<std::uint32_t>(u8()) << (8 * i);
  if (mfs != 0) cc.max_frame_size = mfs;
  std::string* fields[] = {&cc.client_name, &cc.auth_token, &cc.auth_user, &cc.auth_password};
  for (std::string* field : fields) {
    const std::size_t len = std::min<std::size_t>(u8(), in.size() - pos);
    field->assign(in.sub(pos, len).as_string_view());
    pos += len;
  }
  return cc;
}

void run_pair(std::uint8_t options, std::uint8_t seed, ByteView in) {
  const ClientHandshakeConfig cc = client_config_from(in);
  const ServerHandshakeConfig sc = server_config(options);
  ClientHandshake client(cc);
  ServerHandshake server(sc, 9);
  const std::string hello = client.take_output().to_string();
  Result<bool> s = feed_all(server, ByteView(hello), seed);
  if (!s.is_ok()) {
    // The only reasons a well-formed HELLO may be refused.
    const bool allowed = (cc.require_encryption && !sc.link_encrypted) || (sc.authenticate && cc.auth_token == "bad") ||
                         cc.max_frame_size < kMinMaxFrameSize;
    if (!allowed) fail("server refused a well-formed HELLO", s.status().to_string());
    check_refusal(server, s.status());
    return;
  }
  if (!*s) fail("server wants more than a complete HELLO");
  const std::string welcome = server.take_output().to_string();
  Result<bool> c = feed_all(client, ByteView(welcome), seed);
  if (!c.is_ok() || !*c) fail("client refused the server's WELCOME", c.status().to_string());

  const Negotiated& sn = server.negotiated();
  const Negotiated& cn = client.negotiated();
  if (sn.codecs != cn.codecs) fail("codecs differ");
  if (sn.codecs != (cc.codecs & sc.codecs & kSupportedCodecs)) fail("codecs are not the intersection");
  if (sn.peer_max_frame_size != cn.peer_max_frame_size) fail("frame size limits differ");
  if (sn.heartbeat_ms != cn.heartbeat_ms) fail("heartbeats differ");
  if (sn.peer_name != cc.client_name) fail("server got another client name");
  if (cn.peer_name != sc.server_name) fail("client got another server name");
  if (sn.auth_user != cc.auth_user) fail("server got another user");
  if (cn.connection_id != 9) fail("client got another connection id");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t options = data[0];
  const std::uint8_t seed = data[1];
  const ByteView rest(data + 2, size - 2);
  switch (options & 3) {
    case 0: run_server(options, seed, rest, /*answer_to_client=*/false); break;
    case 1: run_client(options, seed, rest); break;
    case 2: run_pair(options, seed, rest); break;
    case 3: run_server(options, seed, rest, /*answer_to_client=*/true); break;
  }
  return 0;
}
