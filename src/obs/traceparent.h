// W3C Trace Context: the `traceparent` header (https://www.w3.org/TR/trace-context/), carried in
// message headers for pub/sub and, later, RPC. The broker passes headers through unchanged, so a
// trace started by a publisher reaches every subscriber.
//
//   traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
//
// Lowercase hex only; all-zero ids and version ff are invalid. A version above 00 may carry
// more fields after a '-', which are ignored (the format's forward-compatibility rule).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "slipstream/status.h"

namespace slip::obs {

inline constexpr std::string_view kTraceparentHeader = "traceparent";

struct TraceContext {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;  // bit 0: sampled

  bool sampled() const { return (flags & 1) != 0; }
  bool operator==(const TraceContext&) const = default;
};

// kInvalidArgument, saying what is wrong, for anything the format forbids.
Result<TraceContext> parse_traceparent(std::string_view header);
// Always version 00.
std::string format_traceparent(const TraceContext& t);
// A new trace with random ids.
TraceContext new_trace(bool sampled = true);
// The same trace, a new parent (span) id: what a hop that forwards the trace sends on.
TraceContext child_of(const TraceContext& parent);

}  // namespace slip::obs
