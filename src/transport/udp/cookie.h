// Stateless address validation: the retry cookie.
//
// A UDP source address costs nothing to forge, so a server under load must not run a Noise
// responder (two X25519 operations, then connection state) for every Initial packet it sees.
// Instead it answers with a Retry carrying a cookie and forgets the packet. Only a client that
// receives at that address can repeat its Initial with the cookie; the server checks the cookie
// without any per-peer memory (the idea of RFC 9000's Retry tokens, section 8.1.2, and of
// WireGuard's cookie reply; the construction here is our own, on BLAKE2b).
//
//   cookie = issued_at (8 bytes, big-endian, ns of the server's clock)
//            || BLAKE2b-128(key = secret, "slipstream-udp cookie v1" || issued_at
//                           || address (16 bytes, IPv4 as ::ffff:a.b.c.d) || port (2, BE)
//                           || context)
//
// The context binds the cookie to more than the address (the transport passes the client's
// connection id). Secrets are 32 random bytes, replaced every `rotation`; a cookie verifies
// under the current or the previous one and only while younger than `lifetime`, which may
// not exceed `rotation`, so the previous secret is always enough. The only state is the two
// secrets, shared by every peer.
//
// Thread safety: none; one validator per loop (or guard it).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>

#include "slipstream/buffer.h"
#include "slipstream/status.h"

namespace slip::transport::udp {

// A peer's IP address and port in one canonical form (IPv4 mapped into IPv6), for cookies and
// for comparing addresses.
struct PeerAddress {
  std::array<std::uint8_t, 16> ip{};
  std::uint16_t port = 0;

  static PeerAddress ipv4(std::uint32_t address_host_order, std::uint16_t port);
  static PeerAddress ipv6(const std::array<std::uint8_t, 16>& address, std::uint16_t port);
  // From what recvfrom()/recvmmsg() filled in. kInvalidArgument for families other than
  // AF_INET and AF_INET6, or a short length.
  static Result<PeerAddress> from_sockaddr(const sockaddr* sa, socklen_t len);

  // 18 bytes: ip then port big-endian.
  std::array<std::uint8_t, 18> bytes() const;
  std::string to_string() const;
  bool operator==(const PeerAddress&) const = default;
};

inline constexpr std::size_t kCookieLen = 8 + 16;
using Cookie = std::array<std::uint8_t, kCookieLen>;

struct CookieConfig {
  std::chrono::nanoseconds rotation = std::chrono::seconds(120);  // new secret this often
  std::chrono::nanoseconds lifetime = std::chrono::seconds(30);   // a cookie is good this long
};

// Counters for metrics.
struct CookieCounters {
  std::uint64_t minted = 0;
  std::uint64_t valid = 0;
  std::uint64_t malformed = 0;
  std::uint64_t forged = 0;   // MAC matched neither secret: another address, context or server
  std::uint64_t expired = 0;  // too old, or issued in the future
  std::uint64_t rotations = 0;
};

class CookieValidator {
 public:
  // Starts with a random secret. Precondition (checked with kInvalidArgument by validate_config):
  // 0 < lifetime <= rotation.
  CookieValidator(CookieConfig config, std::int64_t now_ns);
  ~CookieValidator();
  CookieValidator(const CookieValidator&) = delete;
  CookieValidator& operator=(const CookieValidator&) = delete;

  static Status validate_config(const CookieConfig& config);

  // A cookie for `peer` and `context`, issued now.
  Cookie mint(const PeerAddress& peer, ByteView context, std::int64_t now_ns);
  // OK when `cookie` was minted by this validator (current or previous secret) for the same
  // peer and context less than `lifetime` ago. kInvalidArgument (wrong length),
  // kUnauthenticated (forged, other address or context, or secret rotated away), kTimeout
  // (expired or from the future).
  Status validate(ByteView cookie, const PeerAddress& peer, ByteView context, std::int64_t now_ns);

  const CookieCounters& counters() const { return counters_; }
  void set_secret_for_test(const std::array<std::uint8_t, 32>& secret) { current_ = secret; }

 private:
  using Secret = std::array<std::uint8_t, 32>;
  void rotate_if_due(std::int64_t now_ns);
  std::array<std::uint8_t, 16> mac(const Secret& secret, std::uint64_t issued_at, const PeerAddress& peer,
                                   ByteView context) const;

  CookieConfig config_;
  Secret current_{};
  Secret previous_{};
  bool have_previous_ = false;
  std::int64_t rotated_at_ns_ = 0;
  CookieCounters counters_;
};

}  // namespace slip::transport::udp
