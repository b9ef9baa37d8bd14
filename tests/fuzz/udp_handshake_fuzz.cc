// libFuzzer target: the reliable UDP handshake (src/transport/udp/handshake.h, noise.h).
//
// Input layout: byte 0 selects the mode (low 2 bits) and options (bit 2: the server requires
// cookies), the rest is the mode's input. Keys, ephemerals, connection ids and the cookie
// secret are fixed, so runs are deterministic.
//   0  a datagram into the server: on_initial(), then respond() when accepted. Checks: a
//      Retry parses and is smaller than what it answers; no Initial but a genuine one completes.
//   1  a datagram into a client that has sent its Initial. Checks: it never completes (that
//      would be a forged message 2) and never accepts a Retry (a forged tag).
//   2  a full exchange whose packets are mutated on the way: [mutations of the Initial]
//      [of the Retry][of the resent Initial][of the Response]. Checks: with no change the
//      handshake completes with matching keys; with any change it does not complete, or
//      (a change to a Retry the client refused) completes without it.
//   3  raw Noise messages: the rest is message 1 for a responder, then its tail message 2 for
//      an initiator. Checks: no crash, failures sticky.
#include <cstring>
#include <memory>
#include <string>

#include "transport/udp/handshake.h"
#include "transport/udp/noise.h"
#include "udp_fuzz_input.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;
using fuzz::fail;
using fuzz::Input;

constexpr const char* kName = "udp_handshake_fuzz";

KeyPair fixed_key(std::uint8_t b) {
  PrivateKey k;
  k.fill(b);
  return KeyPair::from_private(k);
}

const PeerAddress kFrom = PeerAddress::ipv4(0x0a000001, 1234);
const ConnectionId kClientCid = {1, 1, 1, 1, 1, 1, 1, 1};
const ConnectionId kServerCid = {2, 2, 2, 2, 2, 2, 2, 2};

std::unique_ptr<ServerHandshake> make_server(bool cookies) {
  ServerHandshakeConfig c;
  c.static_key = fixed_key(0x51);
  c.cookies = cookies ? CookiePolicy::kAlways : CookiePolicy::kNever;
  auto s = std::make_unique<ServerHandshake>(c, 1'000'000'000);
  s->set_ephemeral_for_test(fixed_key(0x52));
  std::array<std::uint8_t, 32> secret;
  secret.fill(0x53);
  s->set_cookie_secret_for_test(secret);
  return s;
}

ClientHandshake make_client() {
  ClientHandshakeConfig c;
  c.static_key = fixed_key(0x41);
  c.server_key = fixed_key(0x51).public_key;
  c.transport_params = {'c', 'p'};
  ClientHandshake client(c, kClientCid);
  client.set_ephemeral_for_test(fixed_key(0x42));
  return client;
}

void into_server(bool cookies, ByteView d) {
  std::unique_ptr<ServerHandshake> server = make_server(cookies);
  ServerHandshake::Decision dec = server->on_initial(d, kFrom, 0, 1'000'000'000);
  switch (dec.action) {
    case ServerHandshake::Decision::Action::kDrop:
      if (dec.reason.is_ok() || dec.reason.message().empty()) fail(kName, "drop without a reason");
      break;
    case ServerHandshake::Decision::Action::kRetry: {
      if (!parse_retry(ByteView(dec.retry.data(), dec.retry.size())).is_ok()) fail(kName, "retry does not parse");
      if (dec.retry.size() >= d.size()) fail(kName, "retry amplifies");
      break;
    }
    case ServerHandshake::Decision::Action::kAccept: {
      Result<ServerHandshake::Accepted> a = server->respond(dec.initial, kServerCid, ByteView("sp"));
      if (a.is_ok() && !parse_response(ByteView(a->response.data(), a->response.size())).is_ok()) {
        fail(kName, "response does not parse");
      }
      break;
    }
  }
}

void into_client(ByteView d) {
  ClientHandshake client = make_client();
  if (!client.initial_datagram().is_ok()) fail(kName, "no initial");
  Result<ClientHandshake::Event> e = client.on_datagram(d);
  if (client.complete()) fail(kName, "client completed on a forged response");
  if (e.is_ok()) fail(kName, "client accepted a forged retry");
}

// Mutates an Initial on the way; true when the server could see a different packet. More zero
// padding is the same packet.
bool hop_initial(Input& in, std::vector<std::uint8_t>& packet) {
  const std::vector<std::uint8_t> before = packet;
  if (!fuzz::mutate(in, packet)) return false;
  Result<InitialPacket> a = parse_initial(ByteView(before.data(), before.size()));
  Result<InitialPacket> b = parse_initial(ByteView(packet.data(), packet.size()));
  const bool same = a.is_ok() && b.is_ok() && a->scid == b->scid && a->token == b->token &&
                    a->message == b->message && packet.size() >= before.size();
  return !same;
}

void exchange(bool cookies, Input& in) {
  ClientHandshake client = make_client();
  std::unique_ptr<ServerHandshake> server = make_server(cookies);
  Result<std::vector<std::uint8_t>> initial = client.initial_datagram();
  if (!initial.is_ok()) fail(kName, "no initial");
  bool changed = hop_initial(in, *initial);
  std::int64_t now = 1'000'000'000;
  ServerHandshake::Decision dec = server->on_initial(ByteView(initial->data(), initial->size()), kFrom, 0, now);
  if (dec.action == ServerHandshake::Decision::Action::kRetry) {
    std::vector<std::uint8_t> retry = dec.retry;
    const bool retry_changed = fuzz::mutate(in, retry);
    Result<ClientHandshake::Event> e = client.on_datagram(ByteView(retry.data(), retry.size()));
    if (e.is_ok() && retry_changed) fail(kName, "client accepted a changed retry");
    if (!e.is_ok()) {
      if (!retry_changed && !changed) fail(kName, "client refused a genuine retry", e.status().to_string());
      return;  // a lost Retry costs the handshake a timeout, nothing more
    }
    // The client resends its own Initial: what the first one suffered no longer matters.
    initial = client.initial_datagram();
    if (!initial.is_ok()) fail(kName, "no second initial");
    changed = hop_initial(in, *initial);
    now += 1'000'000;
    dec = server->on_initial(ByteView(initial->data(), initial->size()), kFrom, 0, now);
  }
  if (dec.action != ServerHandshake::Decision::Action::kAccept) {
    if (!changed) fail(kName, "server refused a genuine initial", dec.reason.to_string());
    return;
  }
  Result<ServerHandshake::Accepted> a = server->respond(dec.initial, kServerCid, ByteView("sp"));
  if (!a.is_ok()) {
    if (!changed) fail(kName, "server could not answer a genuine initial", a.status().to_string());
    return;
  }
  if (changed) fail(kName, "server accepted a changed initial");
  std::vector<std::uint8_t> response = a->response;
  const bool response_changed = fuzz::mutate(in, response);
  Result<ClientHandshake::Event> e = client.on_datagram(ByteView(response.data(), response.size()));
  if (response_changed) {
    if (client.complete()) fail(kName, "client completed on a changed response");
    // Changing the type bits and cutting the Response to 14 bytes makes a well-formed Refused
    // for this client's connection id. Refused is not authenticated, by design (docs/udp.md,
    // "Refused"): the client reports it, and the caller ends the attempt. Anything else must be
    // refused.
    const Result<PacketKind> kind = classify_packet(ByteView(response.data(), response.size()));
    const bool became_refusal = e.is_ok() && *e == ClientHandshake::Event::kRefused && kind.is_ok() &&
                                *kind == PacketKind::kRefused;
    if (e.is_ok() && !became_refusal) fail(kName, "client accepted a changed response");
    // The genuine one still completes afterwards.
    e = client.on_datagram(ByteView(a->response.data(), a->response.size()));
  }
  if (!e.is_ok() || !client.complete()) fail(kName, "genuine exchange did not complete", e.status().to_string());
  const ClientHandshakeResult& c = client.result();
  if (c.keys.send.key() != a->keys.receive.key() || c.keys.receive.key() != a->keys.send.key()) {
    fail(kName, "keys differ");
  }
  if (c.server_cid != kServerCid || a->client_cid != kClientCid) fail(kName, "connection ids differ");
  if (a->client_static != fixed_key(0x41).public_key) fail(kName, "server sees another client key");
  if (c.server_params != std::vector<std::uint8_t>{'s', 'p'}) fail(kName, "server parameters differ");
}

void raw_noise(ByteView d) {
  HandshakeState resp = HandshakeState::responder(fixed_key(0x51), ByteView("p"));
  std::vector<std::uint8_t> payload;
  Status s = resp.read_message(d, payload);
  if (!s.is_ok()) {
    std::vector<std::uint8_t> out;
    if (!(resp.read_message(d, payload) == s) || !(resp.write_message({}, out) == s)) fail(kName, "not sticky");
  }
  HandshakeState init = HandshakeState::initiator(fixed_key(0x41), fixed_key(0x51).public_key, ByteView("p"));
  init.set_ephemeral_for_test(fixed_key(0x42));
  std::vector<std::uint8_t> m1;
  if (!init.write_message({}, m1).is_ok()) fail(kName, "cannot write message 1");
  const ByteView tail = d.size() > 8 ? d.sub(8) : d;
  if (init.read_message(tail, payload).is_ok()) fail(kName, "initiator accepted a forged message 2");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool cookies = data[0] & 4;
  const ByteView rest(data + 1, size - 1);
  Input in(rest);
  switch (data[0] & 3) {
    case 0: into_server(cookies, rest); break;
    case 1: into_client(rest); break;
    case 2: exchange(cookies, in); break;
    case 3: raw_noise(rest); break;
  }
  return 0;
}
