#include "transport/address.h"

#include <charconv>

namespace slip::transport {

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<HostPort> parse_host_port(std::string_view text) {
  HostPort hp;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return invalid_argument("bad address '" + std::string(text) + "': expected [IPV6]:PORT");
    }
    hp.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      port_text = text;
    } else {
      if (text.find(':') != colon) {
        return invalid_argument("bad address '" + std::string(text) + "': write IPv6 hosts as [HOST]:PORT");
      }
      hp.host = std::string(text.substr(0, colon));
      port_text = text.substr(colon + 1);
    }
  }
  if (hp.host.empty()) hp.host = "0.0.0.0";
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return invalid_argument("bad address '" + std::string(text) + "': port must be a number from 0 to 65535");
  }
  hp.port = static_cast<std::uint16_t>(port);
  return hp;
}

}  // namespace slip::transport
