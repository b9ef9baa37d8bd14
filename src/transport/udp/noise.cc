#include "transport/udp/noise.h"

#include <sodium.h>

#include <cstring>

#include "core/assert.h"
#include "core/sodium.h"

namespace slip::transport::udp {

namespace {

static_assert(crypto_scalarmult_BYTES == kDhLen && crypto_scalarmult_SCALARBYTES == kDhLen);
static_assert(crypto_aead_chacha20poly1305_IETF_KEYBYTES == kKeyLen);
static_assert(crypto_aead_chacha20poly1305_IETF_ABYTES == kTagLen);
static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12);
static_assert(crypto_generichash_BYTES_MAX == kHashLen);

void wipe(void* p, std::size_t n) { sodium_memzero(p, n); }

}  // namespace

KeyPair::~KeyPair() { wipe(private_key.data(), private_key.size()); }

KeyPair KeyPair::generate() {
  SLIP_ASSERT(sodium_ready());
  PrivateKey priv;
  randombytes_buf(priv.data(), priv.size());
  KeyPair kp = from_private(priv);
  wipe(priv.data(), priv.size());
  return kp;
}

KeyPair KeyPair::from_private(const PrivateKey& private_key) {
  SLIP_ASSERT(sodium_ready());
  KeyPair kp;
  kp.private_key = private_key;
  // X25519 clamps the scalar itself, so any 32 bytes are a valid private key.
  crypto_scalarmult_base(kp.public_key.data(), kp.private_key.data());
  return kp;
}

Status dh(const PrivateKey& private_key, const PublicKey& public_key, std::array<std::uint8_t, kDhLen>& out) {
  SLIP_ASSERT(sodium_ready());
  if (crypto_scalarmult(out.data(), private_key.data(), public_key.data()) != 0) {
    wipe(out.data(), out.size());
    return invalid_argument("X25519 with a public key of small order (all-zero shared secret)");
  }
  return Status();
}

HashBytes noise_hash(std::initializer_list<ByteView> parts) {
  SLIP_ASSERT(sodium_ready());
  HashBytes out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, out.size());
  for (ByteView p : parts) crypto_generichash_update(&st, p.data(), p.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

HashBytes hmac_hash(ByteView key, std::initializer_list<ByteView> parts) {
  // RFC 2104 with the hash's block length; every key Noise passes is HASHLEN or shorter, so
  // the "hash a long key first" branch is never needed.
  SLIP_ASSERT(key.size() <= kBlockLen);
  SLIP_ASSERT(sodium_ready());
  std::array<std::uint8_t, kBlockLen> pad{};
  std::memcpy(pad.data(), key.data(), key.size());
  for (auto& b : pad) b ^= 0x36;
  HashBytes inner;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, inner.size());
  crypto_generichash_update(&st, pad.data(), pad.size());
  for (ByteView p : parts) crypto_generichash_update(&st, p.data(), p.size());
  crypto_generichash_final(&st, inner.data(), inner.size());

  for (auto& b : pad) b ^= 0x36 ^ 0x5c;
  HashBytes out;
  crypto_generichash_init(&st, nullptr, 0, out.size());
  crypto_generichash_update(&st, pad.data(), pad.size());
  crypto_generichash_update(&st, inner.data(), inner.size());
  crypto_generichash_final(&st, out.data(), out.size());
  wipe(pad.data(), pad.size());
  wipe(inner.data(), inner.size());
  return out;
}

void noise_hkdf(ByteView chaining_key, ByteView input_key_material, HashBytes& first, HashBytes& second,
                HashBytes* third) {
  HashBytes temp_key = hmac_hash(chaining_key, {input_key_material});
  const std::uint8_t one = 0x01, two = 0x02, three = 0x03;
  first = hmac_hash(view(temp_key), {ByteView(&one, 1)});
  second = hmac_hash(view(temp_key), {view(first), ByteView(&two, 1)});
  if (third) *third = hmac_hash(view(temp_key), {view(second), ByteView(&three, 1)});
  wipe(temp_key.data(), temp_key.size());
}

std::array<std::uint8_t, 12> noise_nonce(std::uint64_t n) {
  std::array<std::uint8_t, 12> nonce{};
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(n >> (8 * i));
  return nonce;
}

// ---- CipherState ----

CipherState::~CipherState() { wipe(k_.data(), k_.size()); }

void CipherState::initialize_key(const CipherKey& key) {
  k_ = key;
  has_key_ = true;
  n_ = 0;
}

void CipherState::clear_key() {
  wipe(k_.data(), k_.size());
  has_key_ = false;
  n_ = 0;
}

Status CipherState::encrypt_with_ad(ByteView ad, ByteView plaintext, std::vector<std::uint8_t>& out) {
  if (!has_key_) {
    out.insert(out.end(), plaintext.begin(), plaintext.end());
    return Status();
  }
  if (n_ == kMaxNonce) return out_of_range("cipher nonce exhausted");
  const auto nonce = noise_nonce(n_);
  const std::size_t at = out.size();
  out.resize(at + plaintext.size() + kTagLen);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data() + at, &clen, plaintext.data(), plaintext.size(), ad.data(),
                                            ad.size(), nullptr, nonce.data(), k_.data());
  ++n_;
  return Status();
}

Status CipherState::decrypt_with_ad(ByteView ad, ByteView ciphertext, std::vector<std::uint8_t>& out) {
  if (!has_key_) {
    out.insert(out.end(), ciphertext.begin(), ciphertext.end());
    return Status();
  }
  if (n_ == kMaxNonce) return out_of_range("cipher nonce exhausted");
  if (ciphertext.size() < kTagLen) return unauthenticated("ciphertext shorter than its tag");
  const auto nonce = noise_nonce(n_);
  const std::size_t at = out.size();
  out.resize(at + ciphertext.size() - kTagLen);
  unsigned long long mlen = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out.data() + at, &mlen, nullptr, ciphertext.data(), ciphertext.size(),
                                                ad.data(), ad.size(), nonce.data(), k_.data()) != 0) {
    out.resize(at);
    return unauthenticated("authentication tag mismatch");
  }
  ++n_;
  return Status();
}

// ---- SymmetricState ----

SymmetricState::~SymmetricState() {
  wipe(ck_.data(), ck_.size());
  wipe(h_.data(), h_.size());
}

void SymmetricState::initialize(std::string_view protocol_name) {
  if (protocol_name.size() <= kHashLen) {
    h_.fill(0);
    std::memcpy(h_.data(), protocol_name.data(), protocol_name.size());
  } else {
    h_ = noise_hash({ByteView(protocol_name)});
  }
  ck_ = h_;
  cipher_.clear_key();
}

void SymmetricState::mix_key(ByteView input_key_material) {
  HashBytes temp_k;
  noise_hkdf(view(ck_), input_key_material, ck_, temp_k);
  // HASHLEN is 64: the cipher key is the first 32 bytes.
  CipherKey k;
  std::memcpy(k.data(), temp_k.data(), k.size());
  cipher_.initialize_key(k);
  wipe(temp_k.data(), temp_k.size());
  wipe(k.data(), k.size());
}

void SymmetricState::mix_hash(ByteView data) { h_ = noise_hash({view(h_), data}); }

Status SymmetricState::encrypt_and_hash(ByteView plaintext, std::vector<std::uint8_t>& out) {
  const std::size_t at = out.size();
  SLIP_TRY(cipher_.encrypt_with_ad(view(h_), plaintext, out));
  mix_hash(ByteView(out.data() + at, out.size() - at));
  return Status();
}

Status SymmetricState::decrypt_and_hash(ByteView ciphertext, std::vector<std::uint8_t>& out) {
  SLIP_TRY(cipher_.decrypt_with_ad(view(h_), ciphertext, out));
  mix_hash(ciphertext);
  return Status();
}

void SymmetricState::split(CipherState& first, CipherState& second) const {
  HashBytes t1, t2;
  noise_hkdf(view(ck_), ByteView(), t1, t2);
  CipherKey k;
  std::memcpy(k.data(), t1.data(), k.size());
  first.initialize_key(k);
  std::memcpy(k.data(), t2.data(), k.size());
  second.initialize_key(k);
  wipe(t1.data(), t1.size());
  wipe(t2.data(), t2.size());
  wipe(k.data(), k.size());
}

// ---- HandshakeState ----

HandshakeState HandshakeState::initiator(const KeyPair& local_static, const PublicKey& remote_static,
                                         ByteView prologue) {
  HandshakeState hs;
  hs.role_ = HandshakeRole::kInitiator;
  hs.s_ = local_static;
  hs.rs_ = remote_static;
  hs.ss_.initialize(kNoiseProtocolName);
  hs.ss_.mix_hash(prologue);
  hs.ss_.mix_hash(view(remote_static));  // pre-message "<- s"
  return hs;
}

HandshakeState HandshakeState::responder(const KeyPair& local_static, ByteView prologue) {
  HandshakeState hs;
  hs.role_ = HandshakeRole::kResponder;
  hs.s_ = local_static;
  hs.ss_.initialize(kNoiseProtocolName);
  hs.ss_.mix_hash(prologue);
  hs.ss_.mix_hash(view(local_static.public_key));  // pre-message "<- s"
  return hs;
}

Status HandshakeState::fail(Status s) {
  status_ = s;
  return s;
}

Status HandshakeState::mix_dh(const PrivateKey& priv, const PublicKey& pub) {
  std::array<std::uint8_t, kDhLen> shared;
  SLIP_TRY(dh(priv, pub, shared));
  ss_.mix_key(view(shared));
  wipe(shared.data(), shared.size());
  return Status();
}

Status HandshakeState::write_ephemeral(std::vector<std::uint8_t>& out) {
  if (!e_preset_) e_ = KeyPair::generate();
  out.insert(out.end(), e_.public_key.begin(), e_.public_key.end());
  ss_.mix_hash(view(e_.public_key));
  return Status();
}

Status HandshakeState::write_message(ByteView payload, std::vector<std::uint8_t>& out) {
  if (!status_.is_ok()) return status_;
  const bool my_turn = (role_ == HandshakeRole::kInitiator && step_ == 0) ||
                       (role_ == HandshakeRole::kResponder && step_ == 1);
  if (!my_turn) return failed_precondition("noise: not this side's turn to write");
  const std::size_t overhead = step_ == 0 ? kDhLen + kDhLen + kTagLen + kTagLen : kDhLen + kTagLen;
  if (payload.size() > kMaxNoiseMessage - overhead) {
    return invalid_argument("noise: handshake payload makes the message exceed 65535 bytes");
  }
  const std::size_t at = out.size();
  Status s;
  if (step_ == 0) {
    // -> e, es, s, ss
    SLIP_TRY(write_ephemeral(out));
    s = mix_dh(e_.private_key, rs_);
    if (s.is_ok()) s = ss_.encrypt_and_hash(view(s_.public_key), out);
    if (s.is_ok()) s = mix_dh(s_.private_key, rs_);
  } else {
    // <- e, ee, se
    SLIP_TRY(write_ephemeral(out));
    s = mix_dh(e_.private_key, re_);
    if (s.is_ok()) s = mix_dh(e_.private_key, rs_);
  }
  if (s.is_ok()) s = ss_.encrypt_and_hash(payload, out);
  if (!s.is_ok()) {
    out.resize(at);
    return fail(s.with_context("noise: writing message " + std::to_string(step_ + 1)));
  }
  ++step_;
  return Status();
}

Status HandshakeState::read_message(ByteView message, std::vector<std::uint8_t>& payload_out) {
  if (!status_.is_ok()) return status_;
  const bool my_turn = (role_ == HandshakeRole::kResponder && step_ == 0) ||
                       (role_ == HandshakeRole::kInitiator && step_ == 1);
  if (!my_turn) return failed_precondition("noise: not this side's turn to read");
  const std::string what = "noise: reading message " + std::to_string(step_ + 1);
  if (message.size() > kMaxNoiseMessage) return fail(invalid_argument(what + ": longer than 65535 bytes"));
  const std::size_t need = step_ == 0 ? kDhLen + kDhLen + kTagLen + kTagLen : kDhLen + kTagLen;
  if (message.size() < need) {
    return fail(invalid_argument(what + ": " + std::to_string(message.size()) + " bytes, at least " +
                                 std::to_string(need) + " needed"));
  }
  std::size_t pos = 0;
  std::memcpy(re_.data(), message.data(), kDhLen);
  pos += kDhLen;
  ss_.mix_hash(view(re_));
  const std::size_t at = payload_out.size();
  Status s;
  if (step_ == 0) {
    // -> e, es, s, ss (responder side)
    s = mix_dh(s_.private_key, re_);
    std::vector<std::uint8_t> static_plain;
    if (s.is_ok()) {
      s = ss_.decrypt_and_hash(message.sub(pos, kDhLen + kTagLen), static_plain);
      // The initiator's static key is encrypted under a key that needs the responder's static
      // private key: failing here means the initiator pinned another server key (or the bytes
      // changed on the way).
      if (!s.is_ok()) s = unauthenticated("cannot decrypt the initiator's static key: the client pinned another "
                                          "server key, or message 1 was altered");
    }
    pos += kDhLen + kTagLen;
    if (s.is_ok()) {
      std::memcpy(rs_.data(), static_plain.data(), kDhLen);
      s = mix_dh(s_.private_key, rs_);
    }
  } else {
    // <- e, ee, se (initiator side)
    s = mix_dh(e_.private_key, re_);
    if (s.is_ok()) s = mix_dh(s_.private_key, re_);
  }
  if (s.is_ok()) {
    s = ss_.decrypt_and_hash(message.sub(pos), payload_out);
    if (!s.is_ok() && s.code() == StatusCode::kUnauthenticated) {
      s = unauthenticated(step_ == 0 ? "message 1 payload does not authenticate (altered, or another static key)"
                                     : "message 2 does not authenticate: the server does not hold the pinned key, "
                                       "or the message was altered");
    }
  }
  if (!s.is_ok()) {
    payload_out.resize(at);
    return fail(s.with_context(what));
  }
  ++step_;
  return Status();
}

HandshakeResult HandshakeState::finish() const {
  SLIP_ASSERT(finished());
  HandshakeResult r;
  CipherState c1, c2;
  ss_.split(c1, c2);
  if (role_ == HandshakeRole::kInitiator) {
    r.send = c1;
    r.receive = c2;
  } else {
    r.send = c2;
    r.receive = c1;
  }
  r.handshake_hash = ss_.handshake_hash();
  r.remote_static = rs_;
  return r;
}

}  // namespace slip::transport::udp
