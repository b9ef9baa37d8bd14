// Retry cookies (src/transport/udp/cookie.h), with an injected clock.
#include "transport/udp/cookie.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <chrono>

#include "core/clock.h"

namespace slip::transport::udp {
namespace {

using std::chrono::seconds;

const PeerAddress kAlice = PeerAddress::ipv4(0x0a000001, 4000);  // 10.0.0.1:4000
const ByteView kContext("cid-1234");

CookieConfig config(seconds lifetime = seconds(30), seconds rotation = seconds(120)) {
  CookieConfig c;
  c.lifetime = lifetime;
  c.rotation = rotation;
  return c;
}

TEST(UdpCookie, ValidForTheSamePeerAndContext) {
  ManualClock clock;
  clock.advance(seconds(1000));
  CookieValidator v(config(), clock.now_ns());
  const Cookie c = v.mint(kAlice, kContext, clock.now_ns());
  EXPECT_TRUE(v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns()).is_ok());
  clock.advance(seconds(29));
  EXPECT_TRUE(v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns()).is_ok());
  EXPECT_EQ(v.counters().valid, 2u);
}

TEST(UdpCookie, RefusedFromAnotherAddressPortOrContext) {
  CookieValidator v(config(), 0);
  const Cookie c = v.mint(kAlice, kContext, 0);
  const ByteView cv(c.data(), c.size());
  EXPECT_EQ(v.validate(cv, PeerAddress::ipv4(0x0a000002, 4000), kContext, 1).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(v.validate(cv, PeerAddress::ipv4(0x0a000001, 4001), kContext, 1).code(), StatusCode::kUnauthenticated);
  std::array<std::uint8_t, 16> v6{};
  v6[15] = 1;
  EXPECT_EQ(v.validate(cv, PeerAddress::ipv6(v6, 4000), kContext, 1).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(v.validate(cv, kAlice, ByteView("cid-1235"), 1).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(v.counters().forged, 4u);
  EXPECT_TRUE(v.validate(cv, kAlice, kContext, 1).is_ok());
}

TEST(UdpCookie, ExpiresAfterItsLifetime) {
  ManualClock clock;
  CookieValidator v(config(seconds(30)), clock.now_ns());
  const Cookie c = v.mint(kAlice, kContext, clock.now_ns());
  clock.advance(seconds(30));
  const Status s = v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns());
  EXPECT_EQ(s.code(), StatusCode::kTimeout) << s.to_string();
  EXPECT_EQ(v.counters().expired, 1u);
}

TEST(UdpCookie, SurvivesOneRotationButNotTwo) {
  ManualClock clock;
  // Lifetime equal to the rotation period: the longest a cookie may live.
  CookieValidator v(config(seconds(60), seconds(60)), clock.now_ns());
  clock.advance(seconds(50));
  const Cookie c = v.mint(kAlice, kContext, clock.now_ns());
  clock.advance(seconds(15));  // t = 65: the secret rotated, the cookie is 15 s old
  EXPECT_TRUE(v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns()).is_ok());
  EXPECT_EQ(v.counters().rotations, 1u);
  clock.advance(seconds(60));  // t = 125: rotated again; its secret is gone
  EXPECT_EQ(v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns()).code(),
            StatusCode::kUnauthenticated);
  EXPECT_EQ(v.counters().rotations, 2u);
}

TEST(UdpCookie, ATimestampChangedToLookFreshIsForged) {
  ManualClock clock;
  CookieValidator v(config(), clock.now_ns());
  Cookie c = v.mint(kAlice, kContext, clock.now_ns());
  clock.advance(seconds(40));
  // Move issued_at forward by 20 s: the MAC covers it.
  std::uint64_t t = 0;
  for (int i = 0; i < 8; ++i) t = (t << 8) | c[i];
  t += 20'000'000'000ull;
  for (int i = 0; i < 8; ++i) c[i] = static_cast<std::uint8_t>(t >> (56 - 8 * i));
  EXPECT_EQ(v.validate(ByteView(c.data(), c.size()), kAlice, kContext, clock.now_ns()).code(),
            StatusCode::kUnauthenticated);
}

TEST(UdpCookie, EveryFlippedBitAndEveryWrongLengthIsRefused) {
  CookieValidator v(config(), 0);
  const Cookie c = v.mint(kAlice, kContext, 0);
  for (std::size_t i = 0; i < c.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      Cookie bad = c;
      bad[i] ^= static_cast<std::uint8_t>(1u << bit);
      EXPECT_FALSE(v.validate(ByteView(bad.data(), bad.size()), kAlice, kContext, 1).is_ok()) << i << " " << bit;
    }
  }
  for (std::size_t n = 0; n < c.size(); ++n) {
    EXPECT_EQ(v.validate(ByteView(c.data(), n), kAlice, kContext, 1).code(), StatusCode::kInvalidArgument);
  }
  std::array<std::uint8_t, kCookieLen + 1> longer{};
  std::copy(c.begin(), c.end(), longer.begin());
  EXPECT_EQ(v.validate(ByteView(longer.data(), longer.size()), kAlice, kContext, 1).code(),
            StatusCode::kInvalidArgument);
}

TEST(UdpCookie, AnotherServersCookieIsRefused) {
  CookieValidator a(config(), 0), b(config(), 0);
  const Cookie c = a.mint(kAlice, kContext, 0);
  EXPECT_EQ(b.validate(ByteView(c.data(), c.size()), kAlice, kContext, 1).code(), StatusCode::kUnauthenticated);
}

TEST(UdpCookie, ConfigMustLetTheLifetimeFitTheRotation) {
  EXPECT_TRUE(CookieValidator::validate_config(config(seconds(30), seconds(120))).is_ok());
  EXPECT_TRUE(CookieValidator::validate_config(config(seconds(120), seconds(120))).is_ok());
  EXPECT_FALSE(CookieValidator::validate_config(config(seconds(121), seconds(120))).is_ok());
  EXPECT_FALSE(CookieValidator::validate_config(config(seconds(0), seconds(120))).is_ok());
}

TEST(UdpPeerAddress, FromSockaddrMapsIpv4IntoIpv6) {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(7420);
  in.sin_addr.s_addr = htonl(0x7f000001);
  Result<PeerAddress> a = PeerAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&in), sizeof(in));
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(*a, PeerAddress::ipv4(0x7f000001, 7420));
  EXPECT_EQ(a->to_string(), "127.0.0.1:7420");

  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(9);
  in6.sin6_addr.s6_addr[15] = 1;
  Result<PeerAddress> b = PeerAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof(in6));
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->to_string(), "[::1]:9");
  EXPECT_NE(*a, *b);

  EXPECT_FALSE(PeerAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&in6), sizeof(in)).is_ok());
  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_FALSE(PeerAddress::from_sockaddr(&other, sizeof(other)).is_ok());
  EXPECT_FALSE(PeerAddress::from_sockaddr(nullptr, 0).is_ok());
}

}  // namespace
}  // namespace slip::transport::udp
