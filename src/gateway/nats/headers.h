// NATS message headers <-> the broker's headers (wire::Metadata).
//
// A NATS header block is "NATS/1.0[ CODE[ TEXT]]\r\n", then "Name: Value\r\n" lines, then an
// empty line. The status line's code travels as the header ":status" and its text as
// ":description" (the broker's own no-responders answer is ":status" = "503").
#pragma once

#include <string>
#include <string_view>

#include "wire/frames.h"

namespace slip::gateway::nats {

inline constexpr std::string_view kStatusKey = ":status";
inline constexpr std::string_view kDescriptionKey = ":description";

// Appends the header block for `headers`. Names or values that would break the block's lines
// (CR, LF; in names also ':', space, tab) are left out.
void append_header_block(std::string& out, const wire::Metadata& headers);
// Decodes a whole header block into `out` (views into `block`). False when it is not one.
bool parse_header_block(std::string_view block, wire::Metadata& out);

}  // namespace slip::gateway::nats
