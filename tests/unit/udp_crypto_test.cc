// Packet protection (src/transport/udp/crypto.h): packet number truncation and recovery
// against RFC 9000's algorithm, the short header, sealing and opening, tamper and replay
// refusal.
#include "transport/udp/crypto.h"

#include <gtest/gtest.h>

#include <sodium.h>

#include <random>

#include "udp_test_util.h"

namespace slip::transport::udp {
namespace {

// RFC 9000, Appendix A.3's worked example.
TEST(UdpPacketNumber, DecodesTheRfc9000Example) {
  EXPECT_EQ(decode_packet_number(0xa82f30eaull + 1, 0x9b32, 16), 0xa82f9b32ull);
}

// RFC 9000, Appendix A.2's examples: 0xac5c02 with 0xabe8b3 acknowledged needs 16 bits;
// 0xace8fe needs 24.
TEST(UdpPacketNumber, EncodesTheRfc9000Examples) {
  EXPECT_EQ(packet_number_length(0xac5c02, 0xabe8b3), 2u);
  EXPECT_EQ(packet_number_length(0xace8fe, 0xabe8b3), 3u);
  EXPECT_EQ(packet_number_length(0, std::nullopt), 1u);
  EXPECT_EQ(packet_number_length(126, std::nullopt), 1u);
  EXPECT_EQ(packet_number_length(127, std::nullopt), 2u);
  EXPECT_EQ(packet_number_length(1000, 999), 1u);
  EXPECT_EQ(packet_number_length((1ull << 31) - 2, std::nullopt), 4u);
  EXPECT_EQ(packet_number_length((1ull << 31) - 1, std::nullopt), 0u);
  EXPECT_EQ(packet_number_length(5ull << 40, (5ull << 40) - (1ull << 31) + 1), 4u);
}

TEST(UdpPacketNumber, DecodeWrapsAroundTheWindowEdges) {
  // Just past a truncation boundary going up, and just below one going down.
  EXPECT_EQ(decode_packet_number(0x1fe, 0x01, 8), 0x201u);
  EXPECT_EQ(decode_packet_number(0x201, 0xff, 8), 0x1ffu);
  // Near zero nothing wraps below 0.
  EXPECT_EQ(decode_packet_number(0, 0xff, 8), 0xffu);
  EXPECT_EQ(decode_packet_number(1, 0x00, 8), 0u);
  // At the 2^62 ceiling the candidate is not pushed past it.
  const std::uint64_t top = (1ull << 62) - 1;
  EXPECT_EQ(decode_packet_number(top, top & 0xff, 8), top);
  EXPECT_EQ(decode_packet_number(top - 0x10, (top - 0x90) & 0xff, 8), top - 0x90);
}

// Every packet number the sender may send (within the window the length was chosen for) comes
// back exactly, for every length and many random positions.
TEST(UdpPacketNumber, RoundTripsWhateverTheSenderMaySend) {
  std::mt19937_64 rng(8);
  for (int iter = 0; iter < 20000; ++iter) {
    const std::uint64_t largest_acked = rng() % (1ull << 61);
    const unsigned shift = static_cast<unsigned>(rng() % 31);
    const std::uint64_t pn = largest_acked + 1 + (rng() % (1ull << shift));
    const std::size_t len = packet_number_length(pn, largest_acked);
    ASSERT_GE(len, 1u);
    // The receiver has seen anything from largest_acked up to pn - 1.
    const std::uint64_t largest_received = largest_acked + rng() % (pn - largest_acked);
    const std::uint64_t truncated = pn & ((1ull << (8 * len)) - 1);
    ASSERT_EQ(decode_packet_number(largest_received + 1, truncated, static_cast<unsigned>(8 * len)), pn)
        << "pn " << pn << " acked " << largest_acked << " received " << largest_received << " len " << len;
  }
}

TEST(UdpShortHeader, WritesAndParses) {
  std::uint8_t buf[64] = {};
  const ConnectionId cid = {1, 2, 3, 4, 5, 6, 7, 8};
  const std::size_t n = write_short_header(buf, cid, 0x0a0b0c, 3);
  EXPECT_EQ(n, 12u);
  EXPECT_EQ(buf[0], 0x42);
  EXPECT_EQ(buf[9], 0x0a);
  EXPECT_EQ(buf[11], 0x0c);
  Result<ShortHeader> h = parse_short_header(ByteView(buf, n + kTagLen));
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->dcid, cid);
  EXPECT_EQ(h->pn_len, 3u);
  EXPECT_EQ(h->truncated_pn, 0x0a0b0cu);
  EXPECT_EQ(h->header_len, 12u);
  EXPECT_FALSE(h->key_phase);
}

TEST(UdpShortHeader, RefusesWhatIsNotAProtectedPacket) {
  std::uint8_t buf[64] = {};
  const ConnectionId cid{};
  const std::size_t n = write_short_header(buf, cid, 7, 1);
  EXPECT_TRUE(parse_short_header(ByteView(buf, n + kTagLen)).is_ok());
  EXPECT_FALSE(parse_short_header(ByteView(buf, n + kTagLen - 1)).is_ok());  // no room for the tag
  EXPECT_FALSE(parse_short_header(ByteView()).is_ok());
  for (std::uint8_t bad : {0x02, 0x80, 0xc0, 0x48, 0x50, 0x60}) {
    buf[0] = bad;
    EXPECT_FALSE(parse_short_header(ByteView(buf, sizeof(buf))).is_ok()) << int(bad);
  }
}

CipherKey key_of(std::uint8_t b) {
  CipherKey k;
  k.fill(b);
  return k;
}

struct Link {
  PacketProtection a{key_of(1), key_of(2)};
  PacketProtection b{key_of(2), key_of(1)};
  ConnectionId to_b = {9, 9, 9, 9, 9, 9, 9, 9};
};

std::vector<std::uint8_t> seal(PacketProtection& p, const ConnectionId& cid, std::uint64_t pn, ByteView payload,
                               std::optional<std::uint64_t> acked = std::nullopt) {
  std::vector<std::uint8_t> out(payload.size() + kMaxShortHeaderLen + kTagLen);
  Result<std::size_t> n = p.seal_packet(cid, pn, acked, payload, out);
  EXPECT_TRUE(n.is_ok()) << n.status().to_string();
  out.resize(n.is_ok() ? *n : 0);
  return out;
}

Result<std::string> open(PacketProtection& p, ByteView datagram) {
  std::vector<std::uint8_t> out(datagram.size());
  Result<OpenedPacket> r = p.open_packet(datagram, out);
  if (!r.is_ok()) return r.status();
  return std::string(reinterpret_cast<const char*>(out.data()), r->payload_len);
}

TEST(UdpPacketProtection, SealsAndOpensBothWays) {
  Link l;
  for (std::uint64_t pn = 0; pn < 300; ++pn) {
    const std::string msg = "message " + std::to_string(pn);
    const auto d = seal(l.a, l.to_b, pn, ByteView(msg), pn == 0 ? std::nullopt : std::optional<std::uint64_t>(pn - 1));
    EXPECT_EQ(d.size(), 1 + 8 + 1 + msg.size() + 16);
    Result<std::string> got = open(l.b, view(d));
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_EQ(*got, msg);
  }
  const auto back = seal(l.b, ConnectionId{}, 0, ByteView("pong"));
  EXPECT_EQ(open(l.a, view(back)).value_or("?"), "pong");
  EXPECT_EQ(l.b.counters().opened, 300u);
  EXPECT_EQ(*l.b.largest_received(), 299u);
  EXPECT_EQ(*l.a.last_sealed(), 299u);
}

TEST(UdpPacketProtection, EmptyPayloadIsOnlyATag) {
  Link l;
  const auto d = seal(l.a, l.to_b, 0, ByteView());
  EXPECT_EQ(d.size(), 10u + 16u);
  EXPECT_EQ(open(l.b, view(d)).value_or("?"), "");
}

TEST(UdpPacketProtection, RefusesEveryFlippedBitOfHeaderPayloadAndTag) {
  Link l;
  const auto d = seal(l.a, l.to_b, 5, ByteView("do not touch"));
  for (std::size_t i = 0; i < d.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      PacketProtection fresh(key_of(2), key_of(1));
      auto bad = d;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      EXPECT_FALSE(open(fresh, view(bad)).is_ok()) << "byte " << i << " bit " << bit;
    }
  }
  // Truncated and lengthened.
  for (std::size_t n = 0; n < d.size(); ++n) {
    PacketProtection fresh(key_of(2), key_of(1));
    EXPECT_FALSE(open(fresh, ByteView(d.data(), n)).is_ok()) << n;
  }
  auto longer = d;
  longer.push_back(0);
  EXPECT_EQ(open(l.b, view(longer)).status().code(), StatusCode::kUnauthenticated);
  // A failed packet did not burn its number: the genuine one still opens.
  EXPECT_EQ(open(l.b, view(d)).value_or("?"), "do not touch");
  EXPECT_EQ(l.b.counters().auth_failures, 1u);
}

TEST(UdpPacketProtection, RefusesTheWrongKeyAndTheWrongDirection) {
  Link l;
  const auto d = seal(l.a, l.to_b, 0, ByteView("x"));
  PacketProtection stranger(key_of(3), key_of(4));
  EXPECT_EQ(open(stranger, view(d)).status().code(), StatusCode::kUnauthenticated);
  // A's own packet reflected back to A: A receives under the other direction's key.
  EXPECT_EQ(open(l.a, view(d)).status().code(), StatusCode::kUnauthenticated);
}

TEST(UdpPacketProtection, RefusesReplaysAndCountsThem) {
  Link l;
  const auto d0 = seal(l.a, l.to_b, 0, ByteView("zero"));
  const auto d1 = seal(l.a, l.to_b, 1, ByteView("one"));
  ASSERT_TRUE(open(l.b, view(d1)).is_ok());
  ASSERT_TRUE(open(l.b, view(d0)).is_ok());  // reordered: still fresh
  EXPECT_EQ(open(l.b, view(d0)).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(open(l.b, view(d1)).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(l.b.counters().duplicates, 2u);
}

TEST(UdpPacketProtection, RefusesPacketsBelowTheReplayWindow) {
  PacketProtectionLimits limits;
  limits.replay_window = 64;
  PacketProtection a(key_of(1), key_of(2)), b(key_of(2), key_of(1), limits);
  const ConnectionId cid{};
  const auto old = seal(a, cid, 0, ByteView("old"));
  const auto late = seal(a, cid, 1, ByteView("late"));
  const auto now = seal(a, cid, 65, ByteView("now"), 0);
  ASSERT_TRUE(open(b, view(old)).is_ok());
  ASSERT_TRUE(open(b, view(now)).is_ok());
  // 65 - 1 = 64: just out of a 64-packet window.
  EXPECT_EQ(open(b, view(late)).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b.counters().too_old, 1u);
}

TEST(UdpPacketProtection, SenderRefusesToReuseAPacketNumber) {
  Link l;
  std::vector<std::uint8_t> out(64);
  ASSERT_TRUE(l.a.seal_packet(l.to_b, 4, std::nullopt, ByteView("a"), out).is_ok());
  EXPECT_EQ(l.a.seal_packet(l.to_b, 4, std::nullopt, ByteView("b"), out).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(l.a.seal_packet(l.to_b, 3, std::nullopt, ByteView("b"), out).status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(l.a.seal_packet(l.to_b, kMaxPacketNumber + 1, std::nullopt, ByteView("b"), out).status().code(),
            StatusCode::kOutOfRange);
  std::vector<std::uint8_t> tiny(10);
  EXPECT_EQ(l.a.seal_packet(l.to_b, 5, std::nullopt, ByteView("b"), tiny).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(UdpPacketProtection, SealsAndOpensInPlace) {
  Link l;
  const std::string msg(1200, 'q');
  // The payload already sits after room for the longest header, as a zero-copy sender lays it.
  std::vector<std::uint8_t> buf(kMaxShortHeaderLen + msg.size() + kTagLen);
  std::memcpy(buf.data() + kMaxShortHeaderLen, msg.data(), msg.size());
  Result<std::size_t> n =
      l.a.seal_packet(l.to_b, 7, std::nullopt, ByteView(buf.data() + kMaxShortHeaderLen, msg.size()), buf);
  ASSERT_TRUE(n.is_ok());
  buf.resize(*n);
  // Decrypt into the datagram's own memory, at its start.
  Result<OpenedPacket> p = l.b.open_packet(view(buf), std::span<std::uint8_t>(buf.data(), buf.size()));
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->pn, 7u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buf.data()), p->payload_len), msg);
}

TEST(UdpPacketProtection, RecoversTruncatedNumbersAcrossLongRuns) {
  Link l;
  std::mt19937 rng(3);
  std::uint64_t pn = 0;
  std::optional<std::uint64_t> acked;
  for (int i = 0; i < 5000; ++i) {
    const auto d = seal(l.a, l.to_b, pn, ByteView("p"), acked);
    std::vector<std::uint8_t> out(d.size());
    Result<OpenedPacket> r = l.b.open_packet(view(d), out);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r->pn, pn);
    acked = pn;
    pn += 1 + rng() % 3000;  // gaps: lost packets, and numbers needing 2 or 3 bytes
  }
}

TEST(UdpPacketProtection, RefusesTheUnsupportedKeyPhase) {
  Link l;
  auto d = seal(l.a, l.to_b, 0, ByteView("x"));
  d[0] |= kKeyPhaseBit;
  EXPECT_EQ(open(l.b, view(d)).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(l.b.counters().key_phase, 1u);
}

TEST(UdpPacketProtection, ClosesAfterTheForgeryLimit) {
  PacketProtectionLimits limits;
  limits.max_auth_failures = 3;
  PacketProtection a(key_of(1), key_of(2)), b(key_of(2), key_of(1), limits);
  const ConnectionId cid{};
  for (std::uint64_t pn = 0; pn < 4; ++pn) {
    auto d = seal(a, cid, pn, ByteView("x"));
    d.back() ^= 1;
    EXPECT_EQ(open(b, view(d)).status().code(), StatusCode::kUnauthenticated);
  }
  const auto good = seal(a, cid, 10, ByteView("x"));
  EXPECT_EQ(open(b, view(good)).status().code(), StatusCode::kPermissionDenied);
}

// PacketCipher runs on OpenSSL from kOpenSslMinBytes up; libsodium's
// crypto_aead_chacha20poly1305_ietf is the same cipher (RFC 8439) and the reference here: each
// opens what the other sealed, byte for byte the same, for every length around the 16-byte
// Poly1305 block, the 64-byte ChaCha20 block and the switch between the two, with and without
// associated data.
struct SodiumAead {
  CipherKey key;
  std::vector<std::uint8_t> seal(std::uint64_t pn, ByteView ad, ByteView plain) const {
    std::vector<std::uint8_t> out(plain.size() + kTagLen);
    const auto nonce = noise_nonce(pn);
    unsigned long long tag_len = 0;
    EXPECT_EQ(crypto_aead_chacha20poly1305_ietf_encrypt_detached(out.data(), out.data() + plain.size(), &tag_len,
                                                                 plain.data(), plain.size(), ad.data(), ad.size(),
                                                                 nullptr, nonce.data(), key.data()),
              0);
    return out;
  }
  bool open(std::uint64_t pn, ByteView ad, ByteView sealed, std::vector<std::uint8_t>& plain) const {
    if (sealed.size() < kTagLen) return false;
    const std::size_t len = sealed.size() - kTagLen;
    plain.assign(len, 0);
    const auto nonce = noise_nonce(pn);
    return crypto_aead_chacha20poly1305_ietf_decrypt_detached(plain.data(), nullptr, sealed.data(), len,
                                                              sealed.data() + len, ad.data(), ad.size(), nonce.data(),
                                                              key.data()) == 0;
  }
};

std::vector<std::uint8_t> random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

TEST(UdpPacketCipher, InteroperatesWithLibsodiumBothWays) {
  ASSERT_GE(sodium_init(), 0);
  std::mt19937_64 rng(8439);
  CipherKey key;
  for (auto& b : key) b = static_cast<std::uint8_t>(rng());
  const PacketCipher cipher(key);
  const SodiumAead sodium{key};
  const std::size_t lengths[] = {0,   1,   15,  16,  17,  63,  64,  65,   127,  128,  129,  159, 160,
                                 161, 255, 256, 257, 319, 320, 321, 1000, 1400, 1452, 9000};
  std::uint64_t pn = 0;
  for (const std::size_t len : lengths) {
    for (const std::size_t ad_len : {std::size_t{0}, std::size_t{10}, kMaxShortHeaderLen}) {
      const auto plain = random_bytes(rng, len);
      const auto ad = random_bytes(rng, ad_len);
      pn = pn * 3 + 1;
      std::vector<std::uint8_t> ours(len + kTagLen);
      cipher.seal(pn, view(ad), view(plain), ours.data());
      const auto theirs = sodium.seal(pn, view(ad), view(plain));
      EXPECT_EQ(ours, theirs) << "length " << len << " ad " << ad_len;

      std::vector<std::uint8_t> opened;
      ASSERT_TRUE(sodium.open(pn, view(ad), view(ours), opened)) << "length " << len;
      EXPECT_EQ(opened, plain);
      opened.assign(len, 0xee);
      ASSERT_TRUE(cipher.open(pn, view(ad), view(theirs), opened.data()).is_ok()) << "length " << len;
      EXPECT_EQ(opened, plain);

      // In place, both ways.
      auto buf = plain;
      buf.resize(len + kTagLen);
      cipher.seal(pn, view(ad), ByteView(buf.data(), len), buf.data());
      EXPECT_EQ(buf, theirs);
      ASSERT_TRUE(cipher.open(pn, view(ad), view(buf), buf.data()).is_ok());
      EXPECT_TRUE(std::equal(plain.begin(), plain.end(), buf.begin()));
    }
  }
}

// Below and above PacketCipher::kOpenSslMinBytes (libsodium's path and OpenSSL's).
class UdpPacketCipherSizes : public ::testing::TestWithParam<std::size_t> {};

TEST_P(UdpPacketCipherSizes, BothImplementationsRefuseAFlippedBit) {
  ASSERT_GE(sodium_init(), 0);
  std::mt19937_64 rng(1305);
  CipherKey key;
  for (auto& b : key) b = static_cast<std::uint8_t>(rng());
  const PacketCipher cipher(key);
  const SodiumAead sodium{key};
  const auto plain = random_bytes(rng, GetParam());
  const auto ad = random_bytes(rng, 11);
  const std::uint64_t pn = 77;
  const auto sealed = sodium.seal(pn, view(ad), view(plain));
  std::vector<std::uint8_t> out(plain.size());
  // Every byte of ciphertext and tag, one bit each (rotating through the eight).
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    auto bad = sealed;
    bad[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
    std::vector<std::uint8_t> ignored;
    EXPECT_FALSE(sodium.open(pn, view(ad), view(bad), ignored)) << "byte " << i;
    out.assign(plain.size(), 0xee);
    EXPECT_EQ(cipher.open(pn, view(ad), view(bad), out.data()).code(), StatusCode::kUnauthenticated) << "byte " << i;
    // No unverified plaintext is left behind.
    EXPECT_EQ(out, std::vector<std::uint8_t>(plain.size(), 0)) << "byte " << i;
  }
  // The associated data, the nonce and the key are all bound by the tag.
  for (std::size_t i = 0; i < ad.size(); ++i) {
    auto bad_ad = ad;
    bad_ad[i] ^= 0x80;
    EXPECT_FALSE(cipher.open(pn, view(bad_ad), view(sealed), out.data()).is_ok()) << "ad byte " << i;
  }
  EXPECT_FALSE(cipher.open(pn + 1, view(ad), view(sealed), out.data()).is_ok());
  CipherKey other = key;
  other[0] ^= 1;
  EXPECT_FALSE(PacketCipher(other).open(pn, view(ad), view(sealed), out.data()).is_ok());
  // The genuine packet still opens after all those failures (the context recovers).
  ASSERT_TRUE(cipher.open(pn, view(ad), view(sealed), out.data()).is_ok());
  EXPECT_EQ(out, plain);
}

INSTANTIATE_TEST_SUITE_P(UdpPacketCipher, UdpPacketCipherSizes,
                         ::testing::Values(std::size_t{100}, PacketCipher::kOpenSslMinBytes - 1,
                                           PacketCipher::kOpenSslMinBytes, std::size_t{1400}));

TEST(UdpPacketCipher, CopiesKeepTheKeyAndAssignmentReplacesIt) {
  CipherKey k1{}, k2{};
  k1[0] = 1;
  k2[0] = 2;
  const std::string msg = "same bytes, any copy";
  PacketCipher a(k1);
  std::vector<std::uint8_t> from_a(msg.size() + kTagLen), other(msg.size() + kTagLen);
  a.seal(5, {}, ByteView(msg), from_a.data());
  const PacketCipher copy(a);
  copy.seal(5, {}, ByteView(msg), other.data());
  EXPECT_EQ(from_a, other);
  a = PacketCipher(k2);
  a.seal(5, {}, ByteView(msg), other.data());
  EXPECT_NE(from_a, other);
  std::vector<std::uint8_t> out(msg.size());
  EXPECT_FALSE(a.open(5, {}, view(from_a), out.data()).is_ok());
  EXPECT_TRUE(PacketCipher(k1).open(5, {}, view(from_a), out.data()).is_ok());
}

}  // namespace
}  // namespace slip::transport::udp
