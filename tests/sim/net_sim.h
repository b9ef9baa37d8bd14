// A deterministic network simulator for the sans-IO UDP core: a virtual clock and two
// endpoints joined by one link per direction. Each link can lose, delay, jitter, reorder,
// duplicate and corrupt packets, limit bandwidth behind a bounded queue, and drop datagrams
// larger than its path MTU. All randomness
// comes from a seeded generator, so a seed replays exactly, on any machine, in any build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "slipstream/buffer.h"
#include "transport/udp/connection.h"
#include "transport/udp/time.h"

namespace slip::transport::udp::sim {

// SplitMix64: small, fast, and the same sequence everywhere (unlike std:: distributions).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return p > 0 && uniform() < p; }
  // Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) { return next() % n; }

 private:
  std::uint64_t s_;
};

struct LinkOptions {
  double loss = 0;       // probability a packet vanishes
  double duplicate = 0;  // probability a second copy is delivered (with its own delay)
  double reorder = 0;    // probability a packet is held back by reorder_delay
  double corrupt = 0;    // probability a delivered packet has 1 to 3 bits flipped
  Duration delay = std::chrono::milliseconds(10);  // one way
  Duration jitter{};                               // uniform extra delay in [0, jitter)
  Duration reorder_delay = std::chrono::milliseconds(15);
  std::uint64_t bandwidth_bps = 0;  // 0 = unlimited
  std::size_t queue_bytes = 64 * 1024;  // bottleneck queue (tail drop) when bandwidth-limited
  // The path MTU, as the largest datagram (UDP payload) the path carries: larger ones are
  // dropped (counted in too_big), as a router does with the don't-fragment bit set. 0 = any.
  std::size_t max_datagram = 0;
};

struct LinkStats {
  std::uint64_t sent = 0;          // packets handed to the link
  std::uint64_t delivered = 0;     // copies delivered (duplicates included)
  std::uint64_t lost = 0;
  std::uint64_t queue_dropped = 0;
  std::uint64_t too_big = 0;       // larger than max_datagram: dropped
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t corrupted = 0;     // delivered copies with flipped bits
  std::uint64_t bytes_delivered = 0;
};

// One direction.
class Link {
 public:
  Link(const LinkOptions& options, std::uint64_t seed) : options_(options), rng_(seed) {}

  void set_options(const LinkOptions& options) { options_ = options; }
  const LinkOptions& options() const { return options_; }
  void send(Instant now, ByteView packet);
  // The next delivery time, if a packet is on its way.
  std::optional<Instant> next_delivery() const;
  // Pops a packet due at or before now.
  bool pop_due(Instant now, std::string& out);
  bool empty() const { return q_.empty(); }
  const LinkStats& stats() const { return stats_; }

 private:
  struct InFlight {
    Instant at;
    std::uint64_t seq;  // ties keep sending order
    std::string bytes;
    bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  void schedule(Instant at, std::string bytes);

  LinkOptions options_;
  Rng rng_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> q_;
  std::uint64_t seq_ = 0;
  Instant busy_until_{};  // the bottleneck transmits until then
  LinkStats stats_;
};

// Two connections, a and b, joined by links a->b and b->a.
class Network {
 public:
  // Called once per simulation step, after packets and timers, before transmitting: the place
  // for application logic (send, read, check invariants).
  using Hook = std::function<void()>;

  Network(const LinkOptions& a_to_b, const LinkOptions& b_to_a, std::uint64_t seed);

  void attach(Connection* a, Connection* b) {
    a_ = a;
    b_ = b;
  }
  Instant now() const { return now_; }
  Link& a_to_b() { return ab_; }
  Link& b_to_a() { return ba_; }

  // Runs until `done` is true (checked after every step) or `limit` of virtual time passes.
  bool run_until(const std::function<bool()>& done, Duration limit, const Hook& hook = {});
  void run_for(Duration d, const Hook& hook = {});
  // Runs until both connections are quiescent and no packet is in the air.
  bool run_until_idle(Duration limit, const Hook& hook = {});
  std::uint64_t steps() const { return steps_; }

 private:
  void step(const Hook& hook);
  Instant next_event() const;

  Link ab_;
  Link ba_;
  Connection* a_ = nullptr;
  Connection* b_ = nullptr;
  Instant now_{};
  std::uint64_t steps_ = 0;
};

// A time origin for simulations, far from zero so that nothing relies on time being small.
inline constexpr Instant kSimStart = Instant(std::chrono::hours(1000));

}  // namespace slip::transport::udp::sim
