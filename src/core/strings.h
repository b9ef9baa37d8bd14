// Small string helpers shared by the text parsers.
#pragma once

#include <string_view>

namespace slip {

// `s` without the leading and trailing characters found in `chars` (by default blanks: spaces
// and tabs).
inline std::string_view trim(std::string_view s, std::string_view chars = " \t") {
  const std::size_t first = s.find_first_not_of(chars);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(chars) - first + 1);
}

}  // namespace slip
