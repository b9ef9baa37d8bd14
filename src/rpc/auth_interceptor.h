// Token authentication for RPC servers (docs/rpc.md, "Authentication"): a call must carry a
// metadata value such as "authorization: Bearer <token>" with a token the server knows, or it
// ends with UNAUTHENTICATED before its handler runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "rpc/interceptor.h"

namespace slip::rpc {

struct AuthOptions {
  // The metadata key holding the credentials (keys are compared exactly: send them lower-case,
  // as gRPC does).
  std::string metadata_key = "authorization";
  // The value is "Bearer <token>" (RFC 6750); false: the whole value is the token.
  bool bearer = true;
  // Accepted tokens.
  std::vector<std::string> tokens;
  // Instead of `tokens` when set: decides for each call (OK, or the Status to end it with:
  // UNAUTHENTICATED for unknown credentials, PERMISSION_DENIED for a caller not allowed this
  // method). Runs on the connection's loop: must not block.
  std::function<Status(std::string_view token, const ServerCall& call)> verify;
  // Methods callable without credentials ("/pkg.Service/Method"), e.g. a health check.
  std::vector<std::string> public_methods;
  // Longer credentials are refused without looking further.
  std::size_t max_token_bytes = 4096;
};

// Tokens are kept as BLAKE2b digests and a presented token is hashed before the set lookup, so
// how long a lookup takes says nothing about how much of a token was right.
class AuthInterceptor final : public ServerInterceptor {
 public:
  explicit AuthInterceptor(AuthOptions options);

  void on_attach(const ServerLayout& layout) override;
  Status on_call_start(ServerCall& call) override;

  // Calls refused so far. Any thread.
  std::uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  Status check(ServerCall& call) const;

  AuthOptions options_;
  std::unordered_set<std::string> digests_;
  std::vector<bool> public_;  // by method index
  std::atomic<std::uint64_t> rejected_{0};
};

}  // namespace slip::rpc
