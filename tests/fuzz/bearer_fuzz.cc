// libFuzzer target: parse_bearer, the "authorization: Bearer <token>" parser of the RPC auth
// interceptor (src/rpc/credentials.h).
//
// Input layout:
//   byte 0   bits 0-1: the token limit: 0 = 4096, 1 = 1, 2 = 8, 3 = 64
//   rest     the metadata value
//
// Checks, beyond "no crash, no sanitizer report": parse_bearer accepts exactly what an oracle
// written from RFC 6750 section 2.1 accepts ("Bearer" in any case, 1*SP, token68 within the
// limit); an accepted token is the value's suffix after the spaces; a refusal is
// UNAUTHENTICATED with a short fixed message (never an echo of the credentials).
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "rpc/credentials.h"

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "bearer_fuzz: %s '%.*s'\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool oracle(std::string_view v, std::size_t max_token, std::string_view* token) {
  if (v.size() < 7) return false;
  for (std::size_t i = 0; i < 6; ++i) {
    if (std::tolower(static_cast<unsigned char>(v[i])) != "bearer"[i]) return false;
  }
  std::size_t i = 6;
  if (v[i] != ' ') return false;
  while (i < v.size() && v[i] == ' ') ++i;
  const std::string_view t = v.substr(i);
  if (t.empty() || t.size() > max_token) return false;
  const std::string_view allowed =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
  std::size_t j = 0;
  while (j < t.size() && allowed.find(t[j]) != std::string_view::npos) ++j;
  if (j == 0) return false;
  while (j < t.size() && t[j] == '=') ++j;
  if (j != t.size()) return false;
  *token = t;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static constexpr std::size_t kLimits[] = {4096, 1, 8, 64};
  const std::size_t max_token = kLimits[data[0] & 3];
  const std::string_view value(reinterpret_cast<const char*>(data) + 1, size - 1);

  std::string_view expected;
  const bool valid = oracle(value, max_token, &expected);
  auto r = slip::rpc::parse_bearer(value, max_token);
  if (r.is_ok() != valid) fail(valid ? "refused a valid value" : "accepted an invalid value", value);
  if (r.is_ok()) {
    if (*r != expected) fail("token differs from the oracle's", value);
    if (r->data() + r->size() != value.data() + value.size()) fail("token is not the value's suffix", value);
    return 0;
  }
  if (r.status().code() != slip::StatusCode::kUnauthenticated) fail("refusal is not UNAUTHENTICATED", value);
  // Messages are fixed sentences: the credentials (maybe a real secret) never appear in them.
  if (r.status().message().empty() || r.status().message().size() > 64) fail("message is not a short sentence", value);
  return 0;
}
