// Parsing "HOST:PORT" the way people type it: "127.0.0.1:4300", "localhost:4300", "[::1]:4300",
// ":4300" (all interfaces) or "4300".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "slipstream/status.h"

namespace slip::transport {

struct HostPort {
  std::string host;  // "0.0.0.0" when omitted
  std::uint16_t port = 0;

  std::string to_string() const;
};

Result<HostPort> parse_host_port(std::string_view text);

}  // namespace slip::transport
