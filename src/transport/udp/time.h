// Time in the sans-IO UDP core: every call takes `now` from the caller (the event loop's
// steady clock, or a simulator's virtual clock), so the core never reads a clock itself.
#pragma once

#include <chrono>

#include "core/clock.h"

namespace slip::transport::udp {

using Instant = std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;

inline constexpr Instant kNever = Instant::max();

}  // namespace slip::transport::udp
