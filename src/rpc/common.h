// Types shared by the RPC server and client.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "slipstream/status.h"
#include "wire/frames.h"

namespace slip::rpc {

// Call metadata, response headers and trailers: ordered (key, value) pairs; keys may repeat.
using Metadata = std::vector<std::pair<std::string, std::string>>;

enum class MethodKind : std::uint8_t { kUnary, kServerStreaming, kClientStreaming, kBidiStreaming };

// "/package.Service/Method".
inline std::string full_method_name(std::string_view service, std::string_view method) {
  std::string s;
  s.reserve(service.size() + method.size() + 2);
  s += '/';
  s += service;
  s += '/';
  s += method;
  return s;
}

// Owned copy of decoded wire metadata.
inline Metadata to_metadata(const wire::Metadata& m) {
  Metadata out;
  out.reserve(m.size());
  for (const auto& [k, v] : m) out.emplace_back(std::string(k), std::string(v));
  return out;
}

// Views of owned metadata for encoding; valid while `m` lives unchanged.
inline wire::Metadata to_wire(const Metadata& m) {
  wire::Metadata out;
  out.reserve(m.size());
  for (const auto& [k, v] : m) out.emplace_back(k, v);
  return out;
}

// The first value of `key`, or empty.
inline std::string_view find_metadata(const Metadata& m, std::string_view key) {
  for (const auto& [k, v] : m) {
    if (k == key) return v;
  }
  return {};
}

}  // namespace slip::rpc
