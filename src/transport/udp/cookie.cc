#include "transport/udp/cookie.h"

#include <arpa/inet.h>
#include <sodium.h>

#include <cstring>

#include "core/assert.h"
#include "core/sodium.h"

namespace slip::transport::udp {

namespace {

constexpr std::string_view kCookieLabel = "slipstream-udp cookie v1";

}  // namespace

PeerAddress PeerAddress::ipv4(std::uint32_t address_host_order, std::uint16_t port) {
  PeerAddress a;
  a.ip[10] = 0xff;
  a.ip[11] = 0xff;
  for (int i = 0; i < 4; ++i) a.ip[12 + i] = static_cast<std::uint8_t>(address_host_order >> (24 - 8 * i));
  a.port = port;
  return a;
}

PeerAddress PeerAddress::ipv6(const std::array<std::uint8_t, 16>& address, std::uint16_t port) {
  PeerAddress a;
  a.ip = address;
  a.port = port;
  return a;
}

Result<PeerAddress> PeerAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return invalid_argument("no address");
  if (sa->sa_family == AF_INET) {
    if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return invalid_argument("short sockaddr_in");
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof(in));
    return ipv4(ntohl(in.sin_addr.s_addr), ntohs(in.sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    if (len < static_cast<socklen_t>(sizeof(sockaddr_in6))) return invalid_argument("short sockaddr_in6");
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof(in6));
    std::array<std::uint8_t, 16> ip;
    std::memcpy(ip.data(), &in6.sin6_addr, 16);
    return ipv6(ip, ntohs(in6.sin6_port));
  }
  return invalid_argument("address family is neither IPv4 nor IPv6");
}

std::array<std::uint8_t, 18> PeerAddress::bytes() const {
  std::array<std::uint8_t, 18> b;
  std::memcpy(b.data(), ip.data(), 16);
  b[16] = static_cast<std::uint8_t>(port >> 8);
  b[17] = static_cast<std::uint8_t>(port);
  return b;
}

std::string PeerAddress::to_string() const {
  char text[INET6_ADDRSTRLEN + 1] = {};
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const bool v4 = std::memcmp(ip.data(), kMapped, 12) == 0;
  if (v4) {
    inet_ntop(AF_INET, ip.data() + 12, text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, ip.data(), text, sizeof(text));
  }
  std::string out;
  out.reserve(sizeof(text) + 8);
  if (!v4) out.push_back('[');
  out.append(text);
  if (!v4) out.push_back(']');
  out.push_back(':');
  out.append(std::to_string(port));
  return out;
}

Status CookieValidator::validate_config(const CookieConfig& config) {
  if (config.lifetime.count() <= 0) return invalid_argument("cookie lifetime must be positive");
  if (config.lifetime > config.rotation) {
    // A cookie must stay verifiable under the previous secret until it expires.
    return invalid_argument("cookie lifetime may not exceed the secret rotation period");
  }
  return Status();
}

CookieValidator::CookieValidator(CookieConfig config, std::int64_t now_ns) : config_(config), rotated_at_ns_(now_ns) {
  SLIP_ASSERT(sodium_ready());
  randombytes_buf(current_.data(), current_.size());
}

CookieValidator::~CookieValidator() {
  sodium_memzero(current_.data(), current_.size());
  sodium_memzero(previous_.data(), previous_.size());
}

void CookieValidator::rotate_if_due(std::int64_t now_ns) {
  if (now_ns - rotated_at_ns_ < config_.rotation.count()) return;
  // After a long quiet spell both secrets are stale: a cookie minted under the one being
  // demoted is at least `rotation` old, so demoting it is harmless either way.
  previous_ = current_;
  have_previous_ = true;
  randombytes_buf(current_.data(), current_.size());
  rotated_at_ns_ = now_ns;
  ++counters_.rotations;
}

std::array<std::uint8_t, 16> CookieValidator::mac(const Secret& secret, std::uint64_t issued_at,
                                                  const PeerAddress& peer, ByteView context) const {
  std::uint8_t ts[8];
  for (int i = 0; i < 8; ++i) ts[i] = static_cast<std::uint8_t>(issued_at >> (56 - 8 * i));
  const auto addr = peer.bytes();
  std::array<std::uint8_t, 16> out;
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret.data(), secret.size(), out.size());
  crypto_generichash_update(&st, reinterpret_cast<const std::uint8_t*>(kCookieLabel.data()), kCookieLabel.size());
  crypto_generichash_update(&st, ts, sizeof(ts));
  crypto_generichash_update(&st, addr.data(), addr.size());
  crypto_generichash_update(&st, context.data(), context.size());
  crypto_generichash_final(&st, out.data(), out.size());
  return out;
}

Cookie CookieValidator::mint(const PeerAddress& peer, ByteView context, std::int64_t now_ns) {
  rotate_if_due(now_ns);
  const auto issued_at = static_cast<std::uint64_t>(now_ns);
  Cookie c;
  for (int i = 0; i < 8; ++i) c[i] = static_cast<std::uint8_t>(issued_at >> (56 - 8 * i));
  const auto tag = mac(current_, issued_at, peer, context);
  std::memcpy(c.data() + 8, tag.data(), tag.size());
  ++counters_.minted;
  return c;
}

Status CookieValidator::validate(ByteView cookie, const PeerAddress& peer, ByteView context, std::int64_t now_ns) {
  rotate_if_due(now_ns);
  if (cookie.size() != kCookieLen) {
    ++counters_.malformed;
    return invalid_argument("cookie of " + std::to_string(cookie.size()) + " bytes, expected " +
                            std::to_string(kCookieLen));
  }
  std::uint64_t issued_at = 0;
  for (int i = 0; i < 8; ++i) issued_at = (issued_at << 8) | cookie[i];
  // Check the MAC before the time, so that the error a forger sees does not depend on the
  // time they wrote.
  const auto now = static_cast<std::uint64_t>(now_ns);
  const ByteView tag = cookie.sub(8, 16);
  bool ok = crypto_verify_16(tag.data(), mac(current_, issued_at, peer, context).data()) == 0;
  if (!ok && have_previous_) ok = crypto_verify_16(tag.data(), mac(previous_, issued_at, peer, context).data()) == 0;
  if (!ok) {
    ++counters_.forged;
    return unauthenticated("cookie does not verify (another address, a forged cookie, or an old secret)");
  }
  if (issued_at > now || now - issued_at >= static_cast<std::uint64_t>(config_.lifetime.count())) {
    ++counters_.expired;
    return timed_out("cookie expired");
  }
  ++counters_.valid;
  return Status();
}

}  // namespace slip::transport::udp
