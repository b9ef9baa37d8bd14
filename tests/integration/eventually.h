// Bounded waiting for a condition in tests: no timing assertion, only a generous limit so a
// broken test fails instead of hanging.
#pragma once

#include <chrono>
#include <thread>

namespace slip::test {

inline constexpr auto kEventuallyLimit = std::chrono::seconds(60);

// Polls pred until it holds (true) or kEventuallyLimit passes (false).
template <typename Pred>
bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kEventuallyLimit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

}  // namespace slip::test
