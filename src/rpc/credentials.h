// Credentials carried in call metadata. Parsers of client input: bounded, never trusting.
#pragma once

#include <cstddef>
#include <string_view>

#include "slipstream/status.h"

namespace slip::rpc {

// The token of an `authorization` value "Bearer <token>" (RFC 6750, section 2.1): the scheme in
// any case, one or more spaces, then a token68 (letters, digits, "-._~+/", then any "=") of at
// most `max_token` bytes. The view points into `value`. kUnauthenticated with the reason
// otherwise (never the token itself, so it is safe to log).
Result<std::string_view> parse_bearer(std::string_view value, std::size_t max_token = 4096);

}  // namespace slip::rpc
