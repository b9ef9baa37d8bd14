#include "transport/udp/handshake.h"

#include <sodium.h>

#include <cstring>
#include <string>

#include "core/assert.h"

namespace slip::transport::udp {

namespace {

constexpr std::string_view kPrologueLabel = "slipstream-udp";
constexpr std::string_view kRetryKeyLabel = "slipstream-udp retry v1";

// Reads fields front to back; every read checks the bytes left.
class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}
  bool u8(std::uint8_t& v) {
    if (left() < 1) return false;
    v = d_[pos_++];
    return true;
  }
  bool u16(std::uint16_t& v) {
    if (left() < 2) return false;
    v = static_cast<std::uint16_t>((d_[pos_] << 8) | d_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (left() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | d_[pos_++];
    return true;
  }
  bool cid(ConnectionId& c) {
    if (left() < c.size()) return false;
    std::memcpy(c.data(), d_.data() + pos_, c.size());
    pos_ += c.size();
    return true;
  }
  bool bytes(std::size_t n, ByteView& v) {
    if (left() < n) return false;
    v = d_.sub(pos_, n);
    pos_ += n;
    return true;
  }
  std::size_t left() const { return d_.size() - pos_; }
  std::size_t pos() const { return pos_; }
  ByteView rest() const { return d_.sub(pos_); }

 private:
  ByteView d_;
  std::size_t pos_ = 0;
};

void put_u16(std::vector<std::uint8_t>& out, std::size_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}
void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put(std::vector<std::uint8_t>& out, ByteView b) { out.insert(out.end(), b.begin(), b.end()); }

// Type and version of a long-header packet of the expected type.
Status read_long_prefix(Reader& r, LongType want, const char* name) {
  std::uint8_t flags = 0;
  std::uint32_t version = 0;
  if (!r.u8(flags) || !r.u32(version)) return invalid_argument(std::string(name) + ": truncated header");
  if ((flags & ~kLongTypeMask) != kLongHeaderForm || (flags & kLongTypeMask) != static_cast<std::uint8_t>(want)) {
    return invalid_argument(std::string(name) + ": wrong packet type");
  }
  if (version != kUdpVersion) return unimplemented(std::string(name) + ": version " + std::to_string(version));
  return Status();
}

std::array<std::uint8_t, 32> retry_key(const PublicKey& server_static) {
  std::array<std::uint8_t, 32> key;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, key.size());
  crypto_generichash_update(&st, reinterpret_cast<const std::uint8_t*>(kRetryKeyLabel.data()), kRetryKeyLabel.size());
  crypto_generichash_update(&st, server_static.data(), server_static.size());
  crypto_generichash_final(&st, key.data(), key.size());
  return key;
}

std::array<std::uint8_t, kRetryTagLen> retry_tag(ByteView tagged, const PublicKey& server_static,
                                                 ByteView client_ephemeral) {
  const auto key = retry_key(server_static);
  std::array<std::uint8_t, kRetryTagLen> tag;
  crypto_generichash_state st;
  crypto_generichash_init(&st, key.data(), key.size(), tag.size());
  crypto_generichash_update(&st, tagged.data(), tagged.size());
  crypto_generichash_update(&st, client_ephemeral.data(), client_ephemeral.size());
  crypto_generichash_final(&st, tag.data(), tag.size());
  return tag;
}

}  // namespace

Result<PacketKind> classify_packet(ByteView d) {
  if (d.empty()) return invalid_argument("empty datagram");
  const std::uint8_t b0 = d[0];
  if (!(b0 & kFixedBit)) return invalid_argument("fixed bit is clear: not a slipstream packet");
  if (!(b0 & kLongHeaderBit)) return PacketKind::kProtected;
  if ((b0 & ~kLongTypeMask) != kLongHeaderForm) return invalid_argument("reserved long-header bits are set");
  switch (static_cast<LongType>(b0 & kLongTypeMask)) {
    case LongType::kInitial: return PacketKind::kInitial;
    case LongType::kRetry: return PacketKind::kRetry;
    case LongType::kResponse: return PacketKind::kResponse;
    case LongType::kRefused: return PacketKind::kRefused;
  }
  return invalid_argument("unknown long-header packet type " + std::to_string(b0 & kLongTypeMask));
}

Result<InitialPacket> parse_initial(ByteView d) {
  Reader r(d);
  SLIP_TRY(read_long_prefix(r, LongType::kInitial, "initial"));
  InitialPacket p;
  std::uint16_t token_len = 0, msg_len = 0;
  if (!r.cid(p.scid) || !r.u16(token_len)) return invalid_argument("initial: truncated header");
  if (token_len > kMaxTokenLen) return invalid_argument("initial: token longer than " + std::to_string(kMaxTokenLen));
  if (!r.bytes(token_len, p.token)) return invalid_argument("initial: token runs past the datagram");
  if (!r.u16(msg_len) || !r.bytes(msg_len, p.message)) return invalid_argument("initial: message runs past the datagram");
  // Padding must be zeros: nothing can hide in it, and a parser that ignored it would accept
  // two encodings of one packet.
  for (std::uint8_t b : r.rest()) {
    if (b != 0) return invalid_argument("initial: non-zero padding");
  }
  p.version = kUdpVersion;
  return p;
}

Result<RetryPacket> parse_retry(ByteView d) {
  Reader r(d);
  SLIP_TRY(read_long_prefix(r, LongType::kRetry, "retry"));
  RetryPacket p;
  std::uint16_t token_len = 0;
  if (!r.cid(p.dcid) || !r.u16(token_len)) return invalid_argument("retry: truncated header");
  if (token_len == 0 || token_len > kMaxTokenLen) return invalid_argument("retry: token length out of range");
  if (!r.bytes(token_len, p.token)) return invalid_argument("retry: token runs past the datagram");
  p.tagged = d.sub(0, r.pos());
  if (!r.bytes(kRetryTagLen, p.tag)) return invalid_argument("retry: truncated tag");
  if (r.left() != 0) return invalid_argument("retry: bytes after the tag");
  p.version = kUdpVersion;
  return p;
}

Result<ResponsePacket> parse_response(ByteView d) {
  Reader r(d);
  SLIP_TRY(read_long_prefix(r, LongType::kResponse, "response"));
  ResponsePacket p;
  std::uint16_t msg_len = 0;
  if (!r.cid(p.dcid) || !r.u16(msg_len)) return invalid_argument("response: truncated header");
  if (!r.bytes(msg_len, p.message)) return invalid_argument("response: message runs past the datagram");
  if (r.left() != 0) return invalid_argument("response: bytes after the message");
  p.version = kUdpVersion;
  return p;
}

Result<RefusedPacket> parse_refused(ByteView d) {
  Reader r(d);
  SLIP_TRY(read_long_prefix(r, LongType::kRefused, "refused"));
  RefusedPacket p;
  if (!r.cid(p.dcid) || !r.u8(p.reason)) return invalid_argument("refused: truncated");
  if (r.left() != 0) return invalid_argument("refused: bytes after the reason");
  p.version = kUdpVersion;
  return p;
}

void encode_refused(const RefusedPacket& p, std::vector<std::uint8_t>& out) {
  out.push_back(kLongHeaderForm | static_cast<std::uint8_t>(LongType::kRefused));
  put_u32(out, p.version);
  put(out, view(p.dcid));
  out.push_back(p.reason);
}

void encode_initial(const InitialPacket& p, std::size_t min_datagram, std::vector<std::uint8_t>& out) {
  SLIP_ASSERT(p.token.size() <= kMaxTokenLen && p.message.size() <= 0xFFFF);
  const std::size_t start = out.size();
  out.push_back(kLongHeaderForm | static_cast<std::uint8_t>(LongType::kInitial));
  put_u32(out, p.version);
  put(out, view(p.scid));
  put_u16(out, p.token.size());
  put(out, p.token);
  put_u16(out, p.message.size());
  put(out, p.message);
  if (out.size() - start < min_datagram) out.resize(start + min_datagram, 0);
}

void encode_response(const ResponsePacket& p, std::vector<std::uint8_t>& out) {
  SLIP_ASSERT(p.message.size() <= 0xFFFF);
  out.push_back(kLongHeaderForm | static_cast<std::uint8_t>(LongType::kResponse));
  put_u32(out, p.version);
  put(out, view(p.dcid));
  put_u16(out, p.message.size());
  put(out, p.message);
}

void encode_retry(std::uint32_t version, const ConnectionId& dcid, ByteView token, const PublicKey& server_static,
                  ByteView client_ephemeral, std::vector<std::uint8_t>& out) {
  SLIP_ASSERT(!token.empty() && token.size() <= kMaxTokenLen);
  const std::size_t start = out.size();
  out.push_back(kLongHeaderForm | static_cast<std::uint8_t>(LongType::kRetry));
  put_u32(out, version);
  put(out, view(dcid));
  put_u16(out, token.size());
  put(out, token);
  const auto tag = retry_tag(ByteView(out.data() + start, out.size() - start), server_static, client_ephemeral);
  put(out, view(tag));
}

bool verify_retry_tag(const RetryPacket& p, const PublicKey& server_static, ByteView client_ephemeral) {
  if (p.tag.size() != kRetryTagLen) return false;
  const auto tag = retry_tag(p.tagged, server_static, client_ephemeral);
  return crypto_verify_16(tag.data(), p.tag.data()) == 0;
}

std::vector<std::uint8_t> handshake_prologue(std::uint32_t version, const ConnectionId& client_cid) {
  // Filled by offset into a vector sized up front (g++ 12 misreads appends to an empty
  // vector here as overflows).
  std::vector<std::uint8_t> p(kPrologueLabel.size() + 4 + kConnectionIdLen);
  std::memcpy(p.data(), kPrologueLabel.data(), kPrologueLabel.size());
  std::size_t at = kPrologueLabel.size();
  for (int i = 3; i >= 0; --i) p[at++] = static_cast<std::uint8_t>(version >> (8 * i));
  std::memcpy(p.data() + at, client_cid.data(), kConnectionIdLen);
  return p;
}

// ---- ClientHandshake ----

ClientHandshake::ClientHandshake(ClientHandshakeConfig config, std::optional<ConnectionId> local_cid)
    : config_(std::move(config)),
      local_cid_(local_cid ? *local_cid : random_connection_id()),
      noise_(HandshakeState::initiator(config_.static_key, config_.server_key,
                                       view(handshake_prologue(kUdpVersion, local_cid_)))) {}

Result<std::vector<std::uint8_t>> ClientHandshake::initial_datagram() {
  if (complete()) return failed_precondition("handshake already complete");
  if (msg1_.empty()) SLIP_TRY(noise_.write_message(view(config_.transport_params), msg1_));
  InitialPacket p;
  p.scid = local_cid_;
  p.token = ByteView(token_.data(), token_.size());
  p.message = ByteView(msg1_.data(), msg1_.size());
  std::vector<std::uint8_t> out;
  encode_initial(p, config_.min_initial_datagram, out);
  return out;
}

Status ClientHandshake::refuse(Status s) {
  ++refused_;
  return s;
}

Result<ClientHandshake::Event> ClientHandshake::on_datagram(ByteView datagram) {
  if (complete()) return refuse(failed_precondition("handshake already complete"));
  if (msg1_.empty()) return refuse(failed_precondition("no Initial sent yet"));
  Result<PacketKind> kind = classify_packet(datagram);
  if (!kind.is_ok()) return refuse(kind.status());
  const ByteView client_ephemeral(msg1_.data(), kDhLen);
  if (*kind == PacketKind::kRetry) {
    Result<RetryPacket> r = parse_retry(datagram);
    if (!r.is_ok()) return refuse(r.status());
    if (r->dcid != local_cid_) return refuse(invalid_argument("retry for another connection id"));
    if (!verify_retry_tag(*r, config_.server_key, client_ephemeral)) {
      return refuse(unauthenticated("retry tag does not verify"));
    }
    // One Retry per handshake: a second could only loop us.
    if (retried_) return refuse(failed_precondition("second retry ignored"));
    retried_ = true;
    token_.assign(r->token.begin(), r->token.end());
    return Event::kResend;
  }
  if (*kind == PacketKind::kRefused) {
    Result<RefusedPacket> r = parse_refused(datagram);
    if (!r.is_ok()) return refuse(r.status());
    if (r->dcid != local_cid_) return refuse(invalid_argument("refusal for another connection id"));
    return Event::kRefused;
  }
  if (*kind != PacketKind::kResponse) return refuse(invalid_argument("expected a retry or a response"));
  Result<ResponsePacket> r = parse_response(datagram);
  if (!r.is_ok()) return refuse(r.status());
  if (r->dcid != local_cid_) return refuse(invalid_argument("response for another connection id"));
  // Try on a copy: a forged or damaged response must not spoil the state for the real one.
  HandshakeState attempt = noise_;
  std::vector<std::uint8_t> payload;
  Status s = attempt.read_message(r->message, payload);
  if (!s.is_ok()) return refuse(s);
  // Authenticated, so a short payload is the server's bug, not an attacker's: still refused.
  if (payload.size() < kConnectionIdLen) return refuse(invalid_argument("response: no server connection id"));
  ClientHandshakeResult res;
  res.keys = attempt.finish();
  res.local_cid = local_cid_;
  std::memcpy(res.server_cid.data(), payload.data(), kConnectionIdLen);
  res.server_params.assign(payload.begin() + kConnectionIdLen, payload.end());
  result_ = std::move(res);
  return Event::kComplete;
}

// ---- ServerHandshake ----

ServerHandshake::ServerHandshake(ServerHandshakeConfig config, std::int64_t now_ns)
    : config_(std::move(config)), cookies_(config_.cookie, now_ns) {}

ServerHandshake::Decision ServerHandshake::on_initial(ByteView datagram, const PeerAddress& from, std::size_t load,
                                                      std::int64_t now_ns) {
  Decision d;
  ++counters_.initials;
  if (datagram.size() < config_.min_initial_datagram) {
    ++counters_.malformed;
    d.reason = invalid_argument("initial datagram of " + std::to_string(datagram.size()) + " bytes, below " +
                                std::to_string(config_.min_initial_datagram));
    return d;
  }
  Result<InitialPacket> p = parse_initial(datagram);
  if (!p.is_ok()) {
    ++counters_.malformed;
    d.reason = p.status();
    return d;
  }
  // Message 1 is at least e, encrypted s and an empty payload's tag.
  if (p->message.size() < 2 * kDhLen + 2 * kTagLen) {
    ++counters_.malformed;
    d.reason = invalid_argument("initial: message 1 too short");
    return d;
  }
  const bool want_cookie = config_.cookies == CookiePolicy::kAlways ||
                           (config_.cookies == CookiePolicy::kUnderLoad && load >= config_.load_threshold);
  if (!p->token.empty()) {
    // A cookie is checked whenever one is sent, even when not required, so a client cannot
    // get a forged one past us by timing it with a change of load.
    Status s = cookies_.validate(p->token, from, view(p->scid), now_ns);
    if (!s.is_ok()) {
      ++counters_.bad_cookies;
      d.reason = s;
      return d;
    }
  } else if (want_cookie) {
    const Cookie c = cookies_.mint(from, view(p->scid), now_ns);
    encode_retry(kUdpVersion, p->scid, view(c), config_.static_key.public_key, p->message.sub(0, kDhLen), d.retry);
    ++counters_.retries_sent;
    d.action = Decision::Action::kRetry;
    return d;
  }
  ++counters_.accepted;
  d.action = Decision::Action::kAccept;
  d.initial = *p;
  return d;
}

Result<ServerHandshake::Accepted> ServerHandshake::respond(const InitialPacket& initial, const ConnectionId& local_cid,
                                                           ByteView transport_params) {
  // The Response goes to an address nobody has proven yet: keep it no larger than the smallest
  // Initial we accept, so it amplifies nothing.
  const std::size_t response_len = 1 + 4 + kConnectionIdLen + 2 + kDhLen + kConnectionIdLen +
                                   transport_params.size() + kTagLen;
  if (response_len > config_.min_initial_datagram) {
    return invalid_argument("server transport parameters make the response larger than the smallest initial");
  }
  HandshakeState noise = HandshakeState::responder(config_.static_key, view(handshake_prologue(initial.version, initial.scid)));
  if (ephemeral_for_test_) noise.set_ephemeral_for_test(*ephemeral_for_test_);
  Accepted a;
  Status s = noise.read_message(initial.message, a.client_params);
  if (!s.is_ok()) {
    ++counters_.noise_failures;
    return s;
  }
  std::vector<std::uint8_t> payload(kConnectionIdLen + transport_params.size());
  std::memcpy(payload.data(), local_cid.data(), kConnectionIdLen);
  if (!transport_params.empty()) {
    std::memcpy(payload.data() + kConnectionIdLen, transport_params.data(), transport_params.size());
  }
  std::vector<std::uint8_t> msg2;
  s = noise.write_message(view(payload), msg2);
  if (!s.is_ok()) {
    ++counters_.noise_failures;
    return s;
  }
  a.keys = noise.finish();
  a.client_cid = initial.scid;
  a.local_cid = local_cid;
  a.client_static = noise.remote_static();
  ResponsePacket r;
  r.dcid = initial.scid;
  r.message = ByteView(msg2.data(), msg2.size());
  encode_response(r, a.response);
  ++counters_.completed;
  return a;
}

}  // namespace slip::transport::udp
