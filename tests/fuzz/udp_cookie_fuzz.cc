// libFuzzer target: retry cookies (src/transport/udp/cookie.h) with a fuzzed clock.
//
// Input layout: [flags u8][address 16][port u16][context length u8][context][mint time u32 ms]
// [validation delay u32 ms][mutations of the cookie (udp_fuzz_input.h)][raw cookie bytes].
//   flags bit 0: validate from another port; bit 1: with another context byte; bit 2: also
//   rotate the secret at an arbitrary earlier time; bits 3-4: lifetime 1, 10, 30 or 120 s.
// Checks: a cookie validates exactly when it is unchanged, for the same address and context,
// and younger than its lifetime; raw bytes never validate.
#include <chrono>
#include <string>

#include "transport/udp/cookie.h"
#include "udp_fuzz_input.h"

namespace {

using namespace slip;
using namespace slip::transport::udp;
using fuzz::fail;
using fuzz::Input;

constexpr const char* kName = "udp_cookie_fuzz";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(ByteView(data, size));
  const std::uint8_t flags = in.u8();
  std::array<std::uint8_t, 16> ip{};
  const ByteView ipb = in.bytes(16);
  std::copy(ipb.begin(), ipb.end(), ip.begin());
  const std::uint16_t port = in.u16();
  const ByteView context = in.bytes(in.u8() % 33);
  const std::int64_t mint_at = static_cast<std::int64_t>(in.u32()) * 1'000'000;
  const std::int64_t delay = static_cast<std::int64_t>(in.u32() % (3600 * 1000)) * 1'000'000;

  static constexpr int kLifetimes[] = {1, 10, 30, 120};
  CookieConfig config;
  config.lifetime = std::chrono::seconds(kLifetimes[(flags >> 3) & 3]);
  config.rotation = std::chrono::seconds(120);
  CookieValidator v(config, 0);
  if (flags & 4) (void)v.validate(ByteView(), PeerAddress{}, ByteView(), mint_at / 2);  // may rotate

  const PeerAddress peer = PeerAddress::ipv6(ip, port);
  Cookie c = v.mint(peer, context, mint_at);
  std::vector<std::uint8_t> cookie(c.begin(), c.end());
  const bool changed = fuzz::mutate(in, cookie);

  PeerAddress from = peer;
  if (flags & 1) from.port = static_cast<std::uint16_t>(from.port + 1);
  std::vector<std::uint8_t> ctx(context.begin(), context.end());
  if (flags & 2) ctx.push_back(0);
  const bool same_peer = !(flags & 3);

  const std::int64_t now = mint_at + delay;
  const Status s = v.validate(ByteView(cookie.data(), cookie.size()), from, ByteView(ctx.data(), ctx.size()), now);
  const bool fresh = delay < config.lifetime.count();
  const bool should_pass = !changed && same_peer && fresh;
  if (s.is_ok() != should_pass) {
    fail(kName, should_pass ? "a good cookie was refused" : "a bad cookie was accepted", s.to_string());
  }
  if (!s.is_ok() && s.message().empty()) fail(kName, "refusal without a message");

  // Raw bytes, whatever they are, do not validate (unless they are the minted cookie itself).
  const ByteView raw = in.rest();
  if (raw != ByteView(c.data(), c.size()) && v.validate(raw, peer, context, mint_at).is_ok()) {
    fail(kName, "raw bytes validated");
  }
  return 0;
}
