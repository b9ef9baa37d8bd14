#include "rpc/credentials.h"

#include <string>

namespace slip::rpc {

namespace {

bool token68_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/';
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

Result<std::string_view> parse_bearer(std::string_view value, std::size_t max_token) {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !equals_ignoring_case(value.substr(0, kScheme.size()), kScheme) ||
      value[kScheme.size()] != ' ') {
    return unauthenticated("authorization is not \"Bearer <token>\"");
  }
  std::size_t i = kScheme.size();
  while (i < value.size() && value[i] == ' ') ++i;
  const std::string_view token = value.substr(i);
  if (token.empty()) return unauthenticated("authorization has an empty bearer token");
  if (token.size() > max_token) {
    std::string msg = "bearer token longer than ";
    msg.append(std::to_string(max_token)).append(" bytes");
    return unauthenticated(msg);
  }
  std::size_t j = 0;
  while (j < token.size() && token68_char(token[j])) ++j;
  if (j == 0) return unauthenticated("bearer token has a character outside token68");
  while (j < token.size() && token[j] == '=') ++j;
  if (j != token.size()) return unauthenticated("bearer token has a character outside token68");
  return token;
}

}  // namespace slip::rpc
