// Noise_IK_25519_ChaChaPoly_BLAKE2b (src/transport/udp/noise.h): the published test vector,
// HMAC/HKDF known answers, and the ways a handshake must fail.
#include "transport/udp/noise.h"

#include <gtest/gtest.h>

#include "transport/udp/crypto.h"
#include "udp_test_util.h"

namespace slip::transport::udp {
namespace {

using test::array_from_hex;
using test::from_hex;
using test::to_hex;

// The Noise_IK_25519_ChaChaPoly_BLAKE2b vector of the cacophony suite (vectors/cacophony.txt
// of the Haskell implementation, also shipped by other Noise libraries as their
// interoperability reference): fixed keys, prologue "John Galt", two handshake messages, then
// four transport messages alternating initiator -> responder, responder -> initiator.
constexpr std::string_view kPrologue = "4a6f686e2047616c74";
constexpr std::string_view kInitStatic = "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1";
constexpr std::string_view kInitEphemeral = "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a";
constexpr std::string_view kInitRemoteStatic = "31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62";
constexpr std::string_view kRespStatic = "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893";
constexpr std::string_view kRespEphemeral = "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b";
struct VectorMessage {
  std::string_view payload;
  std::string_view ciphertext;
};
constexpr VectorMessage kMessages[] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944ba83a447b38c83e327ad936929812f624884847b7831e95e"
     "197b2f797088efdd2f88f1db7e1fb0e99c64419097af91cee64e470f4b6fcd9298ce0b56fe20f86e13bf70439c538e3602a7127af71a2"
     "9cc"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088439f069b267a06b3de3ecb1043bcb098e9af91d9c64748d998c"
     "7b47890871571"},
    {"462e20412e20486179656b", "cd54383060e7a28434cca27fb1cc524cfbabeb18181589df219d07"},
    {"4361726c204d656e676572", "a856d3bf0246bfc476c655009cd1ed677b8dcc5b349ae8ef2a05f2"},
    {"4a65616e2d426170746973746520536179", "49063084b2c51f098337cb8a13739ac848f907e67cfb2cc8a8b60586467aa02fc7"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "8b9709d23b47e4639df7678d7a21741eba4ef1e9c60383001c7435549c20f9d56f30e935d3"},
};

KeyPair key(std::string_view hex) { return KeyPair::from_private(array_from_hex<32>(hex)); }

TEST(UdpNoise, DerivesPublicKeysOfTheVector) {
  EXPECT_EQ(to_hex(view(key(kRespStatic).public_key)), kInitRemoteStatic);
}

TEST(UdpNoise, MatchesTheCacophonyVectorForIk25519ChaChaPolyBlake2b) {
  const auto prologue = from_hex(kPrologue);
  HandshakeState init = HandshakeState::initiator(key(kInitStatic), array_from_hex<32>(kInitRemoteStatic), view(prologue));
  init.set_ephemeral_for_test(key(kInitEphemeral));
  HandshakeState resp = HandshakeState::responder(key(kRespStatic), view(prologue));
  resp.set_ephemeral_for_test(key(kRespEphemeral));

  // Message 1.
  std::vector<std::uint8_t> msg, payload;
  ASSERT_TRUE(init.write_message(view(from_hex(kMessages[0].payload)), msg).is_ok());
  EXPECT_EQ(to_hex(view(msg)), kMessages[0].ciphertext);
  ASSERT_TRUE(resp.read_message(view(msg), payload).is_ok());
  EXPECT_EQ(to_hex(view(payload)), kMessages[0].payload);
  EXPECT_EQ(resp.remote_static(), key(kInitStatic).public_key);

  // Message 2.
  msg.clear();
  payload.clear();
  ASSERT_TRUE(resp.write_message(view(from_hex(kMessages[1].payload)), msg).is_ok());
  EXPECT_EQ(to_hex(view(msg)), kMessages[1].ciphertext);
  ASSERT_TRUE(init.read_message(view(msg), payload).is_ok());
  EXPECT_EQ(to_hex(view(payload)), kMessages[1].payload);

  ASSERT_TRUE(init.finished());
  ASSERT_TRUE(resp.finished());
  HandshakeResult i = init.finish();
  HandshakeResult r = resp.finish();
  EXPECT_EQ(i.handshake_hash, r.handshake_hash);
  EXPECT_EQ(i.send.key(), r.receive.key());
  EXPECT_EQ(i.receive.key(), r.send.key());
  EXPECT_NE(i.send.key(), i.receive.key());

  // Transport messages: the CipherStates' own counters, empty associated data.
  for (std::size_t m = 2; m < std::size(kMessages); ++m) {
    const bool from_initiator = m % 2 == 0;
    CipherState& sender = from_initiator ? i.send : r.send;
    CipherState& receiver = from_initiator ? r.receive : i.receive;
    msg.clear();
    payload.clear();
    ASSERT_TRUE(sender.encrypt_with_ad({}, view(from_hex(kMessages[m].payload)), msg).is_ok());
    EXPECT_EQ(to_hex(view(msg)), kMessages[m].ciphertext) << "message " << m + 1;
    ASSERT_TRUE(receiver.decrypt_with_ad({}, view(msg), payload).is_ok());
    EXPECT_EQ(to_hex(view(payload)), kMessages[m].payload);
  }
}

// The packet cipher uses Noise's nonce layout with the packet number in place of the counter,
// so packet 0 and 1 of each direction reproduce the vector's transport messages.
TEST(UdpNoise, PacketCipherReproducesTheVectorsTransportMessages) {
  const auto prologue = from_hex(kPrologue);
  HandshakeState init = HandshakeState::initiator(key(kInitStatic), array_from_hex<32>(kInitRemoteStatic), view(prologue));
  init.set_ephemeral_for_test(key(kInitEphemeral));
  HandshakeState resp = HandshakeState::responder(key(kRespStatic), view(prologue));
  resp.set_ephemeral_for_test(key(kRespEphemeral));
  std::vector<std::uint8_t> m1, m2, p;
  ASSERT_TRUE(init.write_message(view(from_hex(kMessages[0].payload)), m1).is_ok());
  ASSERT_TRUE(resp.read_message(view(m1), p).is_ok());
  ASSERT_TRUE(resp.write_message(view(from_hex(kMessages[1].payload)), m2).is_ok());
  ASSERT_TRUE(init.read_message(view(m2), p).is_ok());
  const HandshakeResult i = init.finish();
  const HandshakeResult r = resp.finish();

  const PacketCipher i_send(i.send.key()), r_send(r.send.key());
  for (std::size_t m = 2; m < std::size(kMessages); ++m) {
    const auto plain = from_hex(kMessages[m].payload);
    std::vector<std::uint8_t> out(plain.size() + kTagLen);
    const std::uint64_t pn = (m - 2) / 2;
    (m % 2 == 0 ? i_send : r_send).seal(pn, {}, view(plain), out.data());
    EXPECT_EQ(to_hex(view(out)), kMessages[m].ciphertext) << "message " << m + 1;
  }
}

// Known answers computed with Python's hmac and hashlib.blake2b, an implementation independent
// of libsodium and of this code.
TEST(UdpNoise, HmacBlake2bMatchesAnIndependentImplementation) {
  std::array<std::uint8_t, 64> k;
  for (std::size_t n = 0; n < k.size(); ++n) k[n] = static_cast<std::uint8_t>(n);
  EXPECT_EQ(to_hex(view(hmac_hash(view(k), {ByteView("slip"), ByteView("stream")}))),
            "39431c72c18c4f46d8076dc637386f25bd16012755816d5d2a9a87637ccc2d2963479b78bac62b3fa90d56e10cc2744e5a290c6d6f"
            "fa3d7a226474438d96d880");
}

TEST(UdpNoise, HkdfMatchesAnIndependentImplementation) {
  HashBytes ck;
  ck.fill(0x11);
  std::array<std::uint8_t, 32> ikm;
  ikm.fill(0x22);
  HashBytes o1, o2, o3;
  noise_hkdf(view(ck), view(ikm), o1, o2, &o3);
  EXPECT_EQ(to_hex(view(o1)),
            "f40cb5e07d2427ba7f73913ac1fda74f774012188c442e04d7b6738430612e573151cce099cd56d36e167cfa2761a052518e82dd02e4"
            "5be173470479d72f544c");
  EXPECT_EQ(to_hex(view(o2)),
            "acdbfbc9fca30a9a12e37d7c6dc98d203af3dadc116d8aec4d51491ffe8c370ed6593becd2f5bbf31ca7b8983fdf4cb3031a9d331a03"
            "8a007de628a416c55915");
  EXPECT_EQ(to_hex(view(o3)),
            "54b0eb2eb9af4a8e98b77ad6428586833bfc156c84d4480cd7fafc47231f7ff27546fec2ec4e5b4041ae9e431bab416dade6c147b597"
            "cae32ccf06f15b65173f");
  HashBytes a, b;
  noise_hkdf(view(ck), ByteView(), a, b);
  EXPECT_EQ(to_hex(ByteView(a.data(), 16)), "b58a83a7e2104cdf50baaf9c50b340f5");
  // Two outputs are the first two of three.
  noise_hkdf(view(ck), view(ikm), a, b);
  EXPECT_EQ(a, o1);
  EXPECT_EQ(b, o2);
}

struct Pair {
  KeyPair client = KeyPair::generate();
  KeyPair server = KeyPair::generate();
  std::vector<std::uint8_t> prologue = {'v', '1'};
};

TEST(UdpNoise, RandomHandshakeDerivesMatchingKeys) {
  Pair k;
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  std::vector<std::uint8_t> m1, m2, p1, p2;
  ASSERT_TRUE(init.write_message(ByteView("client params"), m1).is_ok());
  EXPECT_EQ(m1.size(), 32u + 48u + 13u + 16u);
  ASSERT_TRUE(resp.read_message(view(m1), p1).is_ok());
  EXPECT_EQ(ByteView(p1.data(), p1.size()), ByteView("client params"));
  ASSERT_TRUE(resp.write_message(ByteView("server params"), m2).is_ok());
  EXPECT_EQ(m2.size(), 32u + 13u + 16u);
  ASSERT_TRUE(init.read_message(view(m2), p2).is_ok());
  EXPECT_EQ(ByteView(p2.data(), p2.size()), ByteView("server params"));
  const HandshakeResult i = init.finish();
  const HandshakeResult r = resp.finish();
  EXPECT_EQ(i.send.key(), r.receive.key());
  EXPECT_EQ(i.receive.key(), r.send.key());
  EXPECT_EQ(i.handshake_hash, r.handshake_hash);
  EXPECT_EQ(r.remote_static, k.client.public_key);
  EXPECT_EQ(i.remote_static, k.server.public_key);
  EXPECT_EQ(i.send.nonce(), 0u);
}

TEST(UdpNoise, ClientPinningAnotherServerKeyIsRefusedByTheServer) {
  Pair k;
  const KeyPair impostor = KeyPair::generate();
  HandshakeState init = HandshakeState::initiator(k.client, impostor.public_key, view(k.prologue));
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  std::vector<std::uint8_t> m1, p;
  ASSERT_TRUE(init.write_message({}, m1).is_ok());
  const Status s = resp.read_message(view(m1), p);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("pinned another server key"), std::string_view::npos) << s.to_string();
  EXPECT_TRUE(p.empty());
  // Sticky: the failed state answers every later call with the same Status.
  EXPECT_EQ(resp.read_message(view(m1), p), s);
  EXPECT_EQ(resp.write_message({}, m1), s);
}

// An impostor server that answers with its own key cannot produce a message 2 the client
// accepts: "se" and "es" need the pinned private key.
TEST(UdpNoise, ClientRefusesAResponseFromAServerWithoutThePinnedKey) {
  Pair k;
  const KeyPair impostor = KeyPair::generate();
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  std::vector<std::uint8_t> m1, m2, p;
  ASSERT_TRUE(init.write_message({}, m1).is_ok());
  // The impostor cannot read m1 (that needs the pinned private key), so it answers with a
  // message 2 from a handshake it ran with its own key.
  HandshakeState fake_init = HandshakeState::initiator(k.client, impostor.public_key, view(k.prologue));
  HandshakeState fake_resp = HandshakeState::responder(impostor, view(k.prologue));
  std::vector<std::uint8_t> fm1;
  ASSERT_TRUE(fake_init.write_message({}, fm1).is_ok());
  ASSERT_TRUE(fake_resp.read_message(view(fm1), p).is_ok());
  ASSERT_TRUE(fake_resp.write_message({}, m2).is_ok());
  const Status s = init.read_message(view(m2), p);
  EXPECT_EQ(s.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(s.message().find("pinned key"), std::string_view::npos) << s.to_string();
  EXPECT_FALSE(init.finished());
}

TEST(UdpNoise, EveryFlippedByteOfMessage1IsRefused) {
  Pair k;
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  std::vector<std::uint8_t> m1;
  ASSERT_TRUE(init.write_message(ByteView("params"), m1).is_ok());
  for (std::size_t i = 0; i < m1.size(); ++i) {
    for (std::uint8_t flip : {0x01, 0x80}) {
      std::vector<std::uint8_t> bad = m1, p;
      bad[i] ^= flip;
      HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
      const Status s = resp.read_message(view(bad), p);
      // A flipped bit of e can land on another encoding of the same point (X25519 ignores the
      // top bit); the message still fails, because e is hashed into every later tag.
      EXPECT_FALSE(s.is_ok()) << "byte " << i << " flip " << int(flip);
    }
  }
  // Truncated and lengthened.
  for (std::size_t n : {std::size_t{0}, std::size_t{31}, std::size_t{79}, std::size_t{95}, m1.size() - 1}) {
    std::vector<std::uint8_t> p;
    HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
    EXPECT_FALSE(resp.read_message(ByteView(m1.data(), n), p).is_ok()) << n;
  }
  std::vector<std::uint8_t> longer = m1, p;
  longer.push_back(0);
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  EXPECT_FALSE(resp.read_message(view(longer), p).is_ok());
}

TEST(UdpNoise, EveryFlippedByteOfMessage2IsRefused) {
  Pair k;
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  std::vector<std::uint8_t> m1, m2, p;
  ASSERT_TRUE(init.write_message({}, m1).is_ok());
  ASSERT_TRUE(resp.read_message(view(m1), p).is_ok());
  ASSERT_TRUE(resp.write_message(ByteView("server"), m2).is_ok());
  for (std::size_t i = 0; i < m2.size(); ++i) {
    std::vector<std::uint8_t> bad = m2;
    bad[i] ^= 0x04;
    HandshakeState attempt = init;
    EXPECT_FALSE(attempt.read_message(view(bad), p).is_ok()) << "byte " << i;
  }
  for (std::size_t n = 0; n < m2.size(); ++n) {
    HandshakeState attempt = init;
    EXPECT_FALSE(attempt.read_message(ByteView(m2.data(), n), p).is_ok()) << n;
  }
  // The untouched message still completes on an unspoiled copy.
  ASSERT_TRUE(init.read_message(view(m2), p).is_ok());
  EXPECT_TRUE(init.finished());
}

TEST(UdpNoise, DifferentProloguesDoNotHandshake) {
  Pair k;
  const std::vector<std::uint8_t> other = {'v', '2'};
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  HandshakeState resp = HandshakeState::responder(k.server, view(other));
  std::vector<std::uint8_t> m1, p;
  ASSERT_TRUE(init.write_message({}, m1).is_ok());
  EXPECT_EQ(resp.read_message(view(m1), p).code(), StatusCode::kUnauthenticated);
}

TEST(UdpNoise, RefusesSmallOrderEphemeralKeys) {
  Pair k;
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  std::vector<std::uint8_t> m1, p;
  ASSERT_TRUE(init.write_message({}, m1).is_ok());
  std::fill(m1.begin(), m1.begin() + 32, 0);  // the identity point: DH output all zeros
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  const Status s = resp.read_message(view(m1), p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("small order"), std::string_view::npos) << s.to_string();
}

TEST(UdpNoise, RefusesCallsOutOfTurn) {
  Pair k;
  HandshakeState init = HandshakeState::initiator(k.client, k.server.public_key, view(k.prologue));
  HandshakeState resp = HandshakeState::responder(k.server, view(k.prologue));
  std::vector<std::uint8_t> m, p;
  EXPECT_EQ(init.read_message(ByteView("x"), p).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(resp.write_message({}, m).code(), StatusCode::kFailedPrecondition);
  std::vector<std::uint8_t> huge(kMaxNoiseMessage, 0);
  EXPECT_EQ(init.write_message(view(huge), m).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(m.empty());
}

TEST(UdpNoise, CipherStateRefusesTheReservedNonceAndKeepsItsNonceOnFailure) {
  CipherState c;
  CipherKey key{};
  key[0] = 1;
  c.initialize_key(key);
  std::vector<std::uint8_t> out, plain;
  ASSERT_TRUE(c.encrypt_with_ad(ByteView("ad"), ByteView("hello"), out).is_ok());
  CipherState d;
  d.initialize_key(key);
  std::vector<std::uint8_t> bad = out;
  bad.back() ^= 1;
  EXPECT_EQ(d.decrypt_with_ad(ByteView("ad"), view(bad), plain).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(d.nonce(), 0u);
  EXPECT_EQ(d.decrypt_with_ad(ByteView("AD"), view(out), plain).code(), StatusCode::kUnauthenticated);
  ASSERT_TRUE(d.decrypt_with_ad(ByteView("ad"), view(out), plain).is_ok());
  EXPECT_EQ(ByteView(plain.data(), plain.size()), ByteView("hello"));
  EXPECT_EQ(d.nonce(), 1u);

  c.set_nonce(kMaxNonce);
  EXPECT_EQ(c.encrypt_with_ad({}, ByteView("x"), out).code(), StatusCode::kOutOfRange);
  c.set_nonce(kMaxNonce - 1);
  EXPECT_TRUE(c.encrypt_with_ad({}, ByteView("x"), out).is_ok());
}

}  // namespace
}  // namespace slip::transport::udp
