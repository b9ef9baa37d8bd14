// Packet protection for the reliable UDP transport: the short header every data packet
// carries, packet number truncation and recovery, and ChaCha20-Poly1305 sealing with the packet
// number as nonce. Wire format: docs/udp.md, "Protected packets".
//
//   0          1                 9             9+L
//   +----------+-----------------+-------------+----------------------------+------+
//   | 0 1 0 0 0 K L L | dcid (8) | pn (L bytes) | ciphertext of the payload  | tag  |
//   +----------+-----------------+-------------+----------------------------+------+
//   \____________ associated data ___________/                             16 bytes
//
// The nonce is Noise's: 4 zero bytes || the full 64-bit packet number, little-endian. The
// header is the associated data, so a changed flag, connection id or packet number fails the
// tag like a changed payload byte. Packet numbers are sent truncated to 1-4 bytes and recovered
// from the largest number authenticated so far (RFC 9000, section 17.1 and Appendix A).
//
// Keys come from the Noise handshake's Split() (noise.h, handshake.h): one per direction, and a
// packet number is never reused under a key (the sender counts up; the receiver's replay window
// accepts each number once).
//
// Thread safety: none; a PacketProtection belongs to its connection's loop.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "slipstream/buffer.h"
#include "slipstream/status.h"
#include "transport/udp/noise.h"
#include "transport/udp/replay.h"

// OpenSSL's EVP_CIPHER_CTX, declared here so that this header does not pull in <openssl/evp.h>.
struct evp_cipher_ctx_st;

namespace slip::transport::udp {

inline constexpr std::size_t kConnectionIdLen = 8;
using ConnectionId = std::array<std::uint8_t, kConnectionIdLen>;

// A random connection id (libsodium's randombytes).
ConnectionId random_connection_id();

// First-byte bits (docs/udp.md, "First byte").
inline constexpr std::uint8_t kLongHeaderBit = 0x80;  // set: handshake packet (handshake.h)
inline constexpr std::uint8_t kFixedBit = 0x40;       // always set: lets a demultiplexer tell us apart
inline constexpr std::uint8_t kShortReservedBits = 0x38;  // zero in version 1
inline constexpr std::uint8_t kKeyPhaseBit = 0x04;    // which key generation sealed the packet
inline constexpr std::uint8_t kPacketNumberLenMask = 0x03;  // packet number length - 1

inline constexpr std::size_t kMinShortHeaderLen = 1 + kConnectionIdLen + 1;
inline constexpr std::size_t kMaxShortHeaderLen = 1 + kConnectionIdLen + 4;
// Packet numbers stop here (as QUIC's): the connection must end, or rekey, before.
inline constexpr std::uint64_t kMaxPacketNumber = (std::uint64_t{1} << 62) - 1;

// Bytes needed to send `pn` truncated so that a receiver that has seen up to `largest_acked`
// (nullopt: nothing acknowledged yet) recovers it: RFC 9000, Appendix A.2. 0 when even 4 bytes
// are not enough (more than 2^31 packets unacknowledged).
std::size_t packet_number_length(std::uint64_t pn, std::optional<std::uint64_t> largest_acked);

// RFC 9000, Appendix A.3: the packet number closest to `expected_pn` (the largest number
// authenticated so far plus one; 0 before any) whose low `pn_bits` bits are `truncated_pn`.
// pn_bits is 8, 16, 24 or 32.
std::uint64_t decode_packet_number(std::uint64_t expected_pn, std::uint64_t truncated_pn, unsigned pn_bits);

struct ShortHeader {
  bool key_phase = false;
  ConnectionId dcid{};
  std::size_t pn_len = 0;         // 1..4
  std::uint64_t truncated_pn = 0;  // as sent
  std::size_t header_len = 0;     // bytes of associated data
};

// Parses the header of a protected packet. kInvalidArgument for a long-header packet, a
// cleared fixed bit, reserved bits set, or a datagram too short for header and tag.
Result<ShortHeader> parse_short_header(ByteView datagram);
// Writes a short header (1 + 8 + pn_len bytes) at `out`; returns its length.
std::size_t write_short_header(std::uint8_t* out, const ConnectionId& dcid, std::uint64_t pn, std::size_t pn_len,
                               bool key_phase = false);

// One direction's AEAD: ChaCha20-Poly1305 (RFC 8439) keyed from a Split() CipherState, nonce
// from the packet number. Stateless beyond the key, so it never reuses a nonce by itself: callers
// pass each packet number once.
//
// A payload of kOpenSslMinBytes or more is sealed and opened with OpenSSL's EVP
// ChaCha20-Poly1305 (the same cipher as libsodium's crypto_aead_chacha20poly1305_ietf, same nonce
// and tag, so the same bytes on the wire): one cipher context per operation, keyed on first use
// and from then on given only the nonce. Its vector code is the faster one per byte, but each
// EVP call has a fixed cost, so shorter payloads (ACKs, small messages) go to libsodium's
// function. The Noise handshake itself stays on libsodium (noise.h).
class PacketCipher {
 public:
  // Payload bytes (plaintext when sealing, ciphertext without the tag when opening) from which
  // OpenSSL does the work; below, libsodium. About where the two cost the same per packet in
  // udp_crypto_bench (x86-64 with AVX2: libsodium ahead at 64 B, OpenSSL at 256 B and above).
  static constexpr std::size_t kOpenSslMinBytes = 160;

  PacketCipher() = default;
  explicit PacketCipher(const CipherKey& key) : key_(key) {}
  ~PacketCipher();
  // A copy has the same key and contexts of its own.
  PacketCipher(const PacketCipher& other) : key_(other.key_) {}
  PacketCipher& operator=(const PacketCipher& other);

  // Writes plaintext.size() + 16 bytes at `out` (ciphertext, then tag). `out` may equal
  // plaintext.data() (in place); other overlaps are not allowed. OpenSSL failing on a context
  // it accepted (out of memory when the first large packet creates it) ends the process: a
  // packet that is not sealed cannot be sent, and its number cannot be reused.
  void seal(std::uint64_t pn, ByteView ad, ByteView plaintext, std::uint8_t* out) const;
  // Writes ciphertext.size() - 16 bytes at `out` (which may equal ciphertext.data()).
  // kUnauthenticated when the tag does not verify; `out` then holds zeros, never unverified
  // plaintext.
  Status open(std::uint64_t pn, ByteView ad, ByteView ciphertext, std::uint8_t* out) const;

 private:
  struct CtxDeleter {
    void operator()(evp_cipher_ctx_st* ctx) const;
  };
  using Ctx = std::unique_ptr<evp_cipher_ctx_st, CtxDeleter>;
  // The context of one operation (encrypt or decrypt), keyed; nullptr when OpenSSL failed.
  evp_cipher_ctx_st* context(Ctx& slot, bool encrypt) const;

  CipherKey key_{};
  mutable Ctx seal_ctx_;
  mutable Ctx open_ctx_;
};

struct PacketProtectionLimits {
  std::size_t replay_window = ReplayWindow::kDefaultSize;
  // Packets that fail authentication before the connection must close: RFC 9001 section 6.6
  // gives 2^36 forgery attempts for AEAD_CHACHA20_POLY1305.
  std::uint64_t max_auth_failures = std::uint64_t{1} << 36;
};

struct OpenedPacket {
  std::uint64_t pn = 0;
  ConnectionId dcid{};
  std::size_t payload_len = 0;  // bytes written to the output
};

// Why packets were refused, for metrics. Refusals are normal on the Internet (stray, late or
// forged packets); the transport drops the packet and goes on, until max_auth_failures.
struct PacketProtectionCounters {
  std::uint64_t sealed = 0;
  std::uint64_t opened = 0;
  std::uint64_t malformed = 0;      // header did not parse
  std::uint64_t auth_failures = 0;  // tag did not verify
  std::uint64_t duplicates = 0;     // replay window: seen before
  std::uint64_t too_old = 0;        // replay window: below it
  std::uint64_t key_phase = 0;      // sealed under a key generation we do not have
};

// Both directions of a connection: the send key with the next packet number, the receive key
// with its replay window. Build it from a finished handshake (handshake.h).
class PacketProtection {
 public:
  PacketProtection(const CipherKey& send_key, const CipherKey& receive_key, PacketProtectionLimits limits = {});
  explicit PacketProtection(const HandshakeResult& keys, PacketProtectionLimits limits = {})
      : PacketProtection(keys.send.key(), keys.receive.key(), limits) {}

  // Builds a protected packet for `dcid` with packet number `pn` (strictly greater than any
  // sealed before; the reliability layer owns numbering) into `out`, truncating the number
  // against `largest_acked`. `payload` may already sit in `out` at header length or anywhere
  // else. Returns the datagram length: header + payload + 16. kOutOfRange when pn is not above
  // the previous one or past kMaxPacketNumber, or when too many packets are unacknowledged to
  // truncate; kInvalidArgument when `out` is too small.
  Result<std::size_t> seal_packet(const ConnectionId& dcid, std::uint64_t pn,
                                  std::optional<std::uint64_t> largest_acked, ByteView payload,
                                  std::span<std::uint8_t> out);

  // Parses, recovers the packet number, refuses replays, authenticates and decrypts into `out`
  // (at least datagram.size() bytes; may be the datagram's own memory at any offset at or
  // before the payload). The replay window records the number only once the tag verified.
  // kInvalidArgument (malformed), kUnauthenticated (tag), kAlreadyExists (duplicate),
  // kOutOfRange (too old), kUnimplemented (key phase), kPermissionDenied once
  // max_auth_failures is exceeded (sticky: the connection must close).
  Result<OpenedPacket> open_packet(ByteView datagram, std::span<std::uint8_t> out);

  // The largest packet number authenticated so far; nullopt before any.
  std::optional<std::uint64_t> largest_received() const;
  std::optional<std::uint64_t> last_sealed() const;
  const PacketProtectionCounters& counters() const { return counters_; }
  // Test hook: records `pn` as received (fuzzing starts a receiver mid-connection).
  void mark_received_for_test(std::uint64_t pn) {
    if (window_.check(pn) == ReplayVerdict::kFresh) window_.mark(pn);
  }

  // TODO(security): key update. The key phase bit is reserved for it: on a flip, both sides
  // derive the next generation (e.g. HKDF of the current key), keep the previous receive key
  // for a few RTTs, and reset the packet number ceiling. Until then a connection ends before
  // kMaxPacketNumber.

 private:
  PacketCipher send_;
  PacketCipher receive_;
  ReplayWindow window_;
  PacketProtectionLimits limits_;
  std::uint64_t next_pn_ = 0;
  bool sealed_any_ = false;
  PacketProtectionCounters counters_;
};

}  // namespace slip::transport::udp
