// Clocks. Monotonic time for timeouts and latency; wall time only for what people read.
#pragma once

#include <chrono>
#include <cstdint>

namespace slip {

using MonoClock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;

// Monotonic nanoseconds since an arbitrary start.
inline std::int64_t mono_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(MonoClock::now().time_since_epoch()).count();
}

// Nanoseconds since the Unix epoch.
inline std::int64_t wall_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A clock that tests advance by hand, for code that takes time as a parameter.
class ManualClock {
 public:
  std::int64_t now_ns() const { return now_; }
  void advance(Duration d) { now_ += d.count(); }

 private:
  std::int64_t now_ = 0;
};

}  // namespace slip
