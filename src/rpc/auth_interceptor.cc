#include "rpc/auth_interceptor.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>

#include "rpc/credentials.h"
#include "rpc/server.h"

namespace slip::rpc {

namespace {

std::string digest(std::string_view token) {
  std::string out(crypto_generichash_BYTES, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(token.data()), token.size(), nullptr, 0);
  return out;
}

}  // namespace

AuthInterceptor::AuthInterceptor(AuthOptions options) : options_(std::move(options)) {
  if (sodium_init() < 0) std::abort();  // libsodium could not start: nothing here can be trusted
  for (const auto& t : options_.tokens) digests_.insert(digest(t));
}

void AuthInterceptor::on_attach(const ServerLayout& layout) {
  public_.assign(layout.methods.size(), false);
  for (std::size_t i = 0; i < layout.methods.size(); ++i) {
    public_[i] = std::find(options_.public_methods.begin(), options_.public_methods.end(), layout.methods[i]) !=
                 options_.public_methods.end();
  }
}

Status AuthInterceptor::check(ServerCall& call) const {
  const Metadata& md = call.metadata();
  auto it = std::find_if(md.begin(), md.end(), [&](const auto& kv) { return kv.first == options_.metadata_key; });
  if (it == md.end()) {
    std::string msg = "missing ";
    msg.append(options_.metadata_key).append(" metadata");
    return unauthenticated(msg);
  }
  std::string_view token = it->second;
  if (options_.bearer) {
    SLIP_ASSIGN_OR_RETURN(token, parse_bearer(token, options_.max_token_bytes));
  } else if (token.empty() || token.size() > options_.max_token_bytes) {
    return unauthenticated("credentials are empty or too long");
  }
  if (options_.verify) return options_.verify(token, call);
  if (digests_.count(digest(token)) == 0) return unauthenticated("invalid token");
  return Status();
}

Status AuthInterceptor::on_call_start(ServerCall& call) {
  if (call.method_index() < public_.size() && public_[call.method_index()]) return Status();
  Status s = check(call);
  if (!s.is_ok()) rejected_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

}  // namespace slip::rpc
