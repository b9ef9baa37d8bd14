// How many simulator seeds a test runs per setting, from the environment: SLIP_SIM_SEEDS
// (default 20), starting at SLIP_SIM_SEED_BASE (default 1), so that a failing seed can be rerun
// alone.
#pragma once

#include <cstdint>
#include <cstdlib>

namespace slip::transport::udp::sim {

inline std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}
inline std::uint64_t seed_count() { return env_or("SLIP_SIM_SEEDS", 20); }
inline std::uint64_t seed_base() { return env_or("SLIP_SIM_SEED_BASE", 1); }

}  // namespace slip::transport::udp::sim
