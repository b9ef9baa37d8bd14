// The Noise Protocol Framework (revision 34), instantiated once: Noise_IK_25519_ChaChaPoly_BLAKE2b.
//
// CipherState, SymmetricState and HandshakeState follow the specification's sections 5.1-5.3
// function by function, on libsodium's primitives: X25519 (crypto_scalarmult), ChaCha20-Poly1305
// IETF with the nonce 4 zero bytes || 64-bit little-endian counter, and BLAKE2b-512
// (crypto_generichash) with HMAC and HKDF built on it as section 4.3 defines them. Nothing here
// is a new primitive; the Noise test vectors (cacophony) pin the result byte for byte
// (tests/unit/udp_noise_test.cc).
//
// IK, the one pattern implemented:
//
//   <- s                        the initiator knows the responder's static key beforehand
//   ...
//   -> e, es, s, ss             message 1: 32 + 48 + (payload + 16) bytes
//   <- e, ee, se                message 2: 32 + (payload + 16) bytes
//
// after which both sides Split() into two CipherStates: the initiator sends with the first and
// receives with the second, the responder the other way round.
//
// Thread safety: none; each object belongs to one handshake on one thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::transport::udp {

inline constexpr std::string_view kNoiseProtocolName = "Noise_IK_25519_ChaChaPoly_BLAKE2b";
inline constexpr std::size_t kDhLen = 32;      // X25519 public keys and DH outputs
inline constexpr std::size_t kHashLen = 64;    // BLAKE2b-512
inline constexpr std::size_t kBlockLen = 128;  // BLAKE2b's block, for HMAC
inline constexpr std::size_t kKeyLen = 32;     // ChaCha20-Poly1305 key
inline constexpr std::size_t kTagLen = 16;     // Poly1305 tag
// Noise messages never exceed this (section 3).
inline constexpr std::size_t kMaxNoiseMessage = 65535;
// Counter value that Noise reserves; a CipherState refuses to use it (section 5.1).
inline constexpr std::uint64_t kMaxNonce = ~std::uint64_t{0};

using PublicKey = std::array<std::uint8_t, kDhLen>;
using PrivateKey = std::array<std::uint8_t, kDhLen>;
using CipherKey = std::array<std::uint8_t, kKeyLen>;
using HashBytes = std::array<std::uint8_t, kHashLen>;

// A view of a fixed-size key or hash.
template <std::size_t N>
constexpr ByteView view(const std::array<std::uint8_t, N>& a) {
  return ByteView(a.data(), N);
}
inline ByteView view(const std::vector<std::uint8_t>& v) { return ByteView(v.data(), v.size()); }

// An X25519 key pair. The destructor wipes the private half.
struct KeyPair {
  PrivateKey private_key{};
  PublicKey public_key{};

  KeyPair() = default;
  KeyPair(const KeyPair&) = default;
  KeyPair& operator=(const KeyPair&) = default;
  ~KeyPair();

  // A fresh random pair (Noise's GENERATE_KEYPAIR).
  static KeyPair generate();
  // The pair whose private half is `private_key` (the public half is derived).
  static KeyPair from_private(const PrivateKey& private_key);
};

// DH(key_pair, public_key): X25519. A public key of small order gives an all-zero output,
// which libsodium reports and this returns as kInvalidArgument (the specification allows
// either; refusing keeps a contributory exchange).
Status dh(const PrivateKey& private_key, const PublicKey& public_key, std::array<std::uint8_t, kDhLen>& out);

// HASH(data...) over the concatenation of `parts`.
HashBytes noise_hash(std::initializer_list<ByteView> parts);
// HMAC-HASH(key, data...) as in RFC 2104 with BLAKE2b and a 128-byte block. key.size() <= 128.
HashBytes hmac_hash(ByteView key, std::initializer_list<ByteView> parts);
// HKDF(chaining_key, input_key_material, num_outputs) of section 4.3, num_outputs 2 or 3
// (`third` may be null for 2).
void noise_hkdf(ByteView chaining_key, ByteView input_key_material, HashBytes& first, HashBytes& second,
                HashBytes* third = nullptr);

// Section 5.1. Also the per-packet cipher of the transport (crypto.h), where the nonce comes
// from the packet number rather than the internal counter.
class CipherState {
 public:
  CipherState() = default;
  ~CipherState();
  CipherState(const CipherState&) = default;
  CipherState& operator=(const CipherState&) = default;

  void initialize_key(const CipherKey& key);
  void clear_key();
  bool has_key() const { return has_key_; }
  void set_nonce(std::uint64_t n) { n_ = n; }
  std::uint64_t nonce() const { return n_; }
  const CipherKey& key() const { return k_; }

  // EncryptWithAd: appends the ciphertext (plaintext + 16-byte tag, or the plaintext itself
  // without a key) to `out` and increments the nonce. kOutOfRange once the nonce would reach
  // 2^64-1.
  Status encrypt_with_ad(ByteView ad, ByteView plaintext, std::vector<std::uint8_t>& out);
  // DecryptWithAd: appends the plaintext to `out`. kUnauthenticated when the tag does not
  // verify; the nonce then stays where it was (section 5.1).
  Status decrypt_with_ad(ByteView ad, ByteView ciphertext, std::vector<std::uint8_t>& out);

 private:
  CipherKey k_{};
  bool has_key_ = false;
  std::uint64_t n_ = 0;
};

// The ChaCha20-Poly1305 IETF nonce Noise uses: 4 zero bytes, then n little-endian.
std::array<std::uint8_t, 12> noise_nonce(std::uint64_t n);

// Section 5.2.
class SymmetricState {
 public:
  SymmetricState() = default;
  ~SymmetricState();

  void initialize(std::string_view protocol_name);
  void mix_key(ByteView input_key_material);
  void mix_hash(ByteView data);
  // Appends to `out`.
  Status encrypt_and_hash(ByteView plaintext, std::vector<std::uint8_t>& out);
  Status decrypt_and_hash(ByteView ciphertext, std::vector<std::uint8_t>& out);
  // The two CipherStates: first for initiator-to-responder, second for the other way.
  void split(CipherState& first, CipherState& second) const;

  const HashBytes& handshake_hash() const { return h_; }
  const HashBytes& chaining_key_for_test() const { return ck_; }
  bool has_key() const { return cipher_.has_key(); }

 private:
  CipherState cipher_;
  HashBytes ck_{};
  HashBytes h_{};
};

enum class HandshakeRole : std::uint8_t { kInitiator, kResponder };

// What a finished handshake leaves behind: one CipherState per direction (nonce 0), the
// handshake hash (a channel binding both sides share), and who the peer is.
struct HandshakeResult {
  CipherState send;
  CipherState receive;
  HashBytes handshake_hash{};
  PublicKey remote_static{};
};

// Section 5.3 for the IK pattern. The initiator is built with the responder's static public
// key (`remote_static`, pinned out of band); the responder learns the initiator's from message
// 1. Ephemeral keys are generated when their "e" token runs unless preset (test vectors only).
//
// Call order: initiator write_message(1), responder read_message(1), responder
// write_message(2), initiator read_message(2), then both finish(). A failed call leaves the
// state failed: every later call returns the same Status (a failed handshake is abandoned,
// never retried on the same state).
class HandshakeState {
 public:
  // `prologue` is data both sides must agree on without sending it (the transport binds its
  // version and connection id there; see handshake.h).
  static HandshakeState initiator(const KeyPair& local_static, const PublicKey& remote_static, ByteView prologue);
  static HandshakeState responder(const KeyPair& local_static, ByteView prologue);

  // Test hook: the ephemeral pair to use instead of a random one (Noise test vectors).
  void set_ephemeral_for_test(const KeyPair& e) {
    e_ = e;
    e_preset_ = true;
  }

  // Appends the next handshake message carrying `payload` to `out`. kFailedPrecondition when
  // it is not this side's turn, kInvalidArgument when the message would exceed 65535 bytes.
  Status write_message(ByteView payload, std::vector<std::uint8_t>& out);
  // Reads the peer's next message; appends its payload to `payload_out`. kInvalidArgument for
  // a message too short for its tokens, kUnauthenticated when a tag fails (a wrong pinned key,
  // a changed byte).
  Status read_message(ByteView message, std::vector<std::uint8_t>& payload_out);

  bool finished() const { return step_ == 2 && status_.is_ok(); }
  // Precondition: finished(). Splits into the transport CipherStates.
  HandshakeResult finish() const;

  HandshakeRole role() const { return role_; }
  const PublicKey& remote_static() const { return rs_; }
  const PublicKey& remote_ephemeral() const { return re_; }
  const HashBytes& handshake_hash() const { return ss_.handshake_hash(); }
  const Status& status() const { return status_; }

 private:
  HandshakeState() = default;
  Status fail(Status s);
  Status mix_dh(const PrivateKey& priv, const PublicKey& pub);
  Status write_ephemeral(std::vector<std::uint8_t>& out);

  SymmetricState ss_;
  HandshakeRole role_ = HandshakeRole::kInitiator;
  KeyPair s_;
  KeyPair e_;
  bool e_preset_ = false;
  PublicKey rs_{};
  PublicKey re_{};
  int step_ = 0;  // messages done: 0, 1, 2
  Status status_;
};

}  // namespace slip::transport::udp
