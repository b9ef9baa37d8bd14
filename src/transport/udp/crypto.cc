#include "transport/udp/crypto.h"

#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <string>

#include "core/assert.h"

namespace slip::transport::udp {

ConnectionId random_connection_id() {
  static const bool ok = sodium_init() >= 0;
  SLIP_ASSERT(ok);
  ConnectionId id;
  randombytes_buf(id.data(), id.size());
  return id;
}

std::size_t packet_number_length(std::uint64_t pn, std::optional<std::uint64_t> largest_acked) {
  // The receiver must recover pn from a window centred on what it has seen, so the truncated
  // number needs one bit more than the distance from the largest acknowledged number.
  const std::uint64_t num_unacked = largest_acked && *largest_acked < pn ? pn - *largest_acked : pn + 1;
  for (std::size_t n = 1; n <= 4; ++n) {
    if (num_unacked < (std::uint64_t{1} << (8 * n - 1))) return n;
  }
  return 0;
}

std::uint64_t decode_packet_number(std::uint64_t expected_pn, std::uint64_t truncated_pn, unsigned pn_bits) {
  const std::uint64_t pn_win = std::uint64_t{1} << pn_bits;
  const std::uint64_t pn_hwin = pn_win / 2;
  const std::uint64_t pn_mask = pn_win - 1;
  const std::uint64_t candidate = (expected_pn & ~pn_mask) | (truncated_pn & pn_mask);
  // Appendix A.3's comparisons, rearranged so that no unsigned subtraction can wrap:
  //   candidate <= expected - hwin  <=>  candidate + hwin <= expected.
  if (candidate + pn_hwin <= expected_pn && candidate < (std::uint64_t{1} << 62) - pn_win) {
    return candidate + pn_win;
  }
  if (candidate > expected_pn + pn_hwin && candidate >= pn_win) return candidate - pn_win;
  return candidate;
}

Result<ShortHeader> parse_short_header(ByteView d) {
  if (d.empty()) return invalid_argument("empty datagram");
  const std::uint8_t b0 = d[0];
  if (b0 & kLongHeaderBit) return invalid_argument("long-header packet where a protected packet was expected");
  if (!(b0 & kFixedBit)) return invalid_argument("fixed bit is clear: not a slipstream packet");
  if (b0 & kShortReservedBits) return invalid_argument("reserved header bits are set");
  ShortHeader h;
  h.key_phase = (b0 & kKeyPhaseBit) != 0;
  h.pn_len = static_cast<std::size_t>(b0 & kPacketNumberLenMask) + 1;
  h.header_len = 1 + kConnectionIdLen + h.pn_len;
  if (d.size() < h.header_len + kTagLen) {
    return invalid_argument("datagram of " + std::to_string(d.size()) + " bytes is shorter than header and tag");
  }
  std::memcpy(h.dcid.data(), d.data() + 1, kConnectionIdLen);
  for (std::size_t i = 0; i < h.pn_len; ++i) h.truncated_pn = (h.truncated_pn << 8) | d[1 + kConnectionIdLen + i];
  return h;
}

std::size_t write_short_header(std::uint8_t* out, const ConnectionId& dcid, std::uint64_t pn, std::size_t pn_len,
                               bool key_phase) {
  SLIP_ASSERT(pn_len >= 1 && pn_len <= 4);
  out[0] = static_cast<std::uint8_t>(kFixedBit | (key_phase ? kKeyPhaseBit : 0) | (pn_len - 1));
  std::memcpy(out + 1, dcid.data(), kConnectionIdLen);
  for (std::size_t i = 0; i < pn_len; ++i) {
    out[1 + kConnectionIdLen + i] = static_cast<std::uint8_t>(pn >> (8 * (pn_len - 1 - i)));
  }
  return 1 + kConnectionIdLen + pn_len;
}

// ---- PacketCipher ----

void PacketCipher::CtxDeleter::operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }

PacketCipher::~PacketCipher() { sodium_memzero(key_.data(), key_.size()); }

PacketCipher& PacketCipher::operator=(const PacketCipher& other) {
  if (this != &other) {
    key_ = other.key_;
    // Contexts keyed with the old key must not be used again.
    seal_ctx_.reset();
    open_ctx_.reset();
  }
  return *this;
}

EVP_CIPHER_CTX* PacketCipher::context(Ctx& slot, bool encrypt) const {
  if (slot) return slot.get();
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return nullptr;
  // The key goes in once; per packet only the nonce is set (EVP_CipherInit_ex with no cipher
  // and no key keeps both). EVP_CIPHER_CTX_free cleanses the key schedule.
  if (EVP_CipherInit_ex(ctx.get(), EVP_chacha20_poly1305(), nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_IVLEN, 12, nullptr) != 1 ||
      EVP_CipherInit_ex(ctx.get(), nullptr, nullptr, key_.data(), nullptr, encrypt ? 1 : 0) != 1) {
    return nullptr;
  }
  slot = std::move(ctx);
  return slot.get();
}

void PacketCipher::seal(std::uint64_t pn, ByteView ad, ByteView plaintext, std::uint8_t* out) const {
  static_assert(kTagLen == 16);
  const auto nonce = noise_nonce(pn);
  if (plaintext.size() < kOpenSslMinBytes) {
    unsigned long long tag_len = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + plaintext.size(), &tag_len, plaintext.data(),
                                                       plaintext.size(), ad.data(), ad.size(), nullptr, nonce.data(),
                                                       key_.data());
    return;
  }
  EVP_CIPHER_CTX* ctx = context(seal_ctx_, true);
  SLIP_ASSERT(ctx != nullptr);
  int n = 0;
  const bool ok =
      EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data(), 1) == 1 &&
      (ad.empty() || EVP_CipherUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())) == 1) &&
      (plaintext.empty() ||
       (EVP_CipherUpdate(ctx, out, &n, plaintext.data(), static_cast<int>(plaintext.size())) == 1 &&
        static_cast<std::size_t>(n) == plaintext.size())) &&
      EVP_CipherFinal_ex(ctx, out + plaintext.size(), &n) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagLen), out + plaintext.size()) == 1;
  SLIP_ASSERT(ok);
}

Status PacketCipher::open(std::uint64_t pn, ByteView ad, ByteView ciphertext, std::uint8_t* out) const {
  if (ciphertext.size() < kTagLen) return unauthenticated("ciphertext shorter than its tag");
  const auto nonce = noise_nonce(pn);
  const std::size_t len = ciphertext.size() - kTagLen;
  if (len < kOpenSslMinBytes) {
    // libsodium checks the tag before it writes anything.
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, nullptr, ciphertext.data(), len,
                                                           ciphertext.data() + len, ad.data(), ad.size(),
                                                           nonce.data(), key_.data()) != 0) {
      if (len != 0) sodium_memzero(out, len);
      return unauthenticated("packet authentication failed");
    }
    return Status();
  }
  EVP_CIPHER_CTX* ctx = context(open_ctx_, false);
  if (ctx == nullptr) return internal_error("cannot create the packet cipher's context");
  // The tag is read before decrypting: `out` may overwrite the ciphertext in place.
  std::array<std::uint8_t, kTagLen> tag;
  std::memcpy(tag.data(), ciphertext.data() + len, kTagLen);
  int n = 0;
  const bool ok = EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce.data(), 0) == 1 &&
                  (ad.empty() || EVP_CipherUpdate(ctx, nullptr, &n, ad.data(), static_cast<int>(ad.size())) == 1) &&
                  (len == 0 || (EVP_CipherUpdate(ctx, out, &n, ciphertext.data(), static_cast<int>(len)) == 1 &&
                                static_cast<std::size_t>(n) == len)) &&
                  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagLen), tag.data()) == 1 &&
                  EVP_CipherFinal_ex(ctx, out + len, &n) == 1;
  if (!ok) {
    // OpenSSL decrypts before it checks the tag: leave no unverified plaintext behind.
    if (len != 0) sodium_memzero(out, len);
    return unauthenticated("packet authentication failed");
  }
  return Status();
}

// ---- PacketProtection ----

PacketProtection::PacketProtection(const CipherKey& send_key, const CipherKey& receive_key,
                                   PacketProtectionLimits limits)
    : send_(send_key), receive_(receive_key), window_(limits.replay_window), limits_(limits) {}

Result<std::size_t> PacketProtection::seal_packet(const ConnectionId& dcid, std::uint64_t pn,
                                                  std::optional<std::uint64_t> largest_acked, ByteView payload,
                                                  std::span<std::uint8_t> out) {
  if (pn > kMaxPacketNumber) return out_of_range("packet number past 2^62-1: the connection must end");
  if (sealed_any_ && pn < next_pn_) {
    return out_of_range("packet number " + std::to_string(pn) + " was used already (next is " +
                        std::to_string(next_pn_) + "): a nonce must never repeat");
  }
  const std::size_t pn_len = packet_number_length(pn, largest_acked);
  if (pn_len == 0) return out_of_range("more than 2^31 packets unacknowledged: packet number cannot be truncated");
  const std::size_t header_len = 1 + kConnectionIdLen + pn_len;
  const std::size_t total = header_len + payload.size() + kTagLen;
  if (out.size() < total) {
    return invalid_argument("output of " + std::to_string(out.size()) + " bytes cannot hold a packet of " +
                            std::to_string(total));
  }
  // The payload may overlap the header's bytes (the caller left room for the longest header),
  // so move it first, then write the header in front of it.
  std::uint8_t* body = out.data() + header_len;
  if (payload.data() != body && !payload.empty()) std::memmove(body, payload.data(), payload.size());
  write_short_header(out.data(), dcid, pn, pn_len);
  send_.seal(pn, ByteView(out.data(), header_len), ByteView(body, payload.size()), body);
  next_pn_ = pn + 1;
  sealed_any_ = true;
  ++counters_.sealed;
  return total;
}

Result<OpenedPacket> PacketProtection::open_packet(ByteView datagram, std::span<std::uint8_t> out) {
  if (counters_.auth_failures > limits_.max_auth_failures) {
    return permission_denied("too many packets failed authentication: the connection must close");
  }
  Result<ShortHeader> h = parse_short_header(datagram);
  if (!h.is_ok()) {
    ++counters_.malformed;
    return h.status();
  }
  if (h->key_phase) {
    ++counters_.key_phase;
    return unimplemented("key phase 1: key update is not supported yet");
  }
  const std::uint64_t expected = window_.empty() ? 0 : window_.largest() + 1;
  const std::uint64_t pn = decode_packet_number(expected, h->truncated_pn, static_cast<unsigned>(8 * h->pn_len));
  if (pn > kMaxPacketNumber) {
    ++counters_.malformed;
    return invalid_argument("packet number past 2^62-1");
  }
  switch (window_.check(pn)) {
    case ReplayVerdict::kFresh:
      break;
    case ReplayVerdict::kDuplicate:
      ++counters_.duplicates;
      return Status(StatusCode::kAlreadyExists, "packet " + std::to_string(pn) + " was received already");
    case ReplayVerdict::kTooOld:
      ++counters_.too_old;
      return out_of_range("packet " + std::to_string(pn) + " is below the replay window");
  }
  const ByteView ciphertext = datagram.sub(h->header_len);
  if (out.size() < ciphertext.size() - kTagLen) return invalid_argument("output too small for the payload");
  // The header is the associated data; keep a copy, since `out` may cover it.
  std::array<std::uint8_t, kMaxShortHeaderLen> ad;
  std::memcpy(ad.data(), datagram.data(), h->header_len);
  // The cipher decrypts in place only when output and input start at the same byte; a shift
  // towards the front of the same buffer copies the ciphertext there first.
  ByteView input = ciphertext;
  const bool overlaps = out.data() < ciphertext.end() && ciphertext.data() < out.data() + out.size();
  if (overlaps && out.data() != ciphertext.data()) {
    if (out.size() < ciphertext.size()) return invalid_argument("output too small to decrypt in place");
    std::memmove(out.data(), ciphertext.data(), ciphertext.size());
    input = ByteView(out.data(), ciphertext.size());
  }
  Status s = receive_.open(pn, ByteView(ad.data(), h->header_len), input, out.data());
  if (!s.is_ok()) {
    ++counters_.auth_failures;
    return s;
  }
  window_.mark(pn);
  ++counters_.opened;
  OpenedPacket p;
  p.pn = pn;
  p.dcid = h->dcid;
  p.payload_len = ciphertext.size() - kTagLen;
  return p;
}

std::optional<std::uint64_t> PacketProtection::largest_received() const {
  if (window_.empty()) return std::nullopt;
  return window_.largest();
}

std::optional<std::uint64_t> PacketProtection::last_sealed() const {
  if (!sealed_any_) return std::nullopt;
  return next_pn_ - 1;
}

}  // namespace slip::transport::udp
