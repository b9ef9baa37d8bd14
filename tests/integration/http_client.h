// A blocking HTTP/1.1 client for black-box tests: one request per connection (Connection:
// close), bounded waits, no speed thresholds.
#pragma once

#include <string>

#include "slipstream/status.h"

namespace slip::test {

struct HttpReply {
  int status = 0;
  std::string head;  // status line and headers
  std::string body;
  // The value of header `name` (case-insensitive), empty when absent.
  std::string header(const std::string& name) const;
};

// Sends `method path` to "HOST:PORT" with `extra` header lines (each ending in "\r\n"), reads the
// whole reply (until close, at most 10 s). Bodies are plain (slipd does not chunk).
Result<HttpReply> http_request(const std::string& address, const std::string& method, const std::string& path,
                               const std::string& extra = {});
inline Result<HttpReply> http_get(const std::string& address, const std::string& path) {
  return http_request(address, "GET", path);
}

// Opens `path` as an event stream and returns the first "data:" payload (at most 10 s).
Result<std::string> first_event(const std::string& address, const std::string& path);

}  // namespace slip::test
