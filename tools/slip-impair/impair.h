// The impairment model of slip-impair: what happens to each datagram of one direction (lost,
// queued behind a bandwidth limit and dropped when the queue is full, delayed with jitter, held
// back to reorder it, duplicated). No sockets and no clock: the proxy asks it per datagram, and
// tests replay a seed to know exactly which datagrams a run loses.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace slip::impair {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::nanoseconds;

struct ImpairOptions {
  double loss = 0;        // probability in [0, 1]
  double duplicate = 0;   // probability a second copy is sent
  double reorder = 0;     // probability a datagram is held back by reorder_delay
  Duration delay{};       // one way, added to every datagram
  Duration jitter{};      // uniform extra delay in [0, jitter)
  Duration reorder_delay = std::chrono::milliseconds(10);
  std::uint64_t rate_bps = 0;              // 0: unlimited
  std::size_t queue_bytes = 256 * 1024;    // the bottleneck's queue (tail drop) with a rate
};

struct ImpairCounters {
  std::uint64_t received = 0;
  std::uint64_t sent = 0;          // copies sent on (duplicates included)
  std::uint64_t lost = 0;
  std::uint64_t queue_dropped = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t reordered = 0;
  std::uint64_t bytes_sent = 0;
};

// SplitMix64: the same sequence everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t s_;
};

// One direction. Every datagram draws the same five random numbers whatever happens to it, so
// the fate of the n-th datagram depends only on the seed and n.
class Impairer {
 public:
  Impairer(const ImpairOptions& options, std::uint64_t seed) : options_(options), rng_(seed) {}

  // The times at which copies of a datagram of `size` bytes arriving at `now` leave (none when it
  // is lost or dropped). The counters are updated; `sent` is counted by the caller's
  // count_sent() when a copy actually goes out.
  std::vector<Clock::time_point> on_datagram(Clock::time_point now, std::size_t size);
  void count_sent(std::size_t size) {
    ++counters_.sent;
    counters_.bytes_sent += size;
  }
  const ImpairCounters& counters() const { return counters_; }

 private:
  ImpairOptions options_;
  Rng rng_;
  Clock::time_point busy_until_{};
  ImpairCounters counters_;
};

// "10mbit", "800kbit", "1gbit", "1500000" (bits per second); "64k", "1m" (bytes, binary);
// "20ms", "1.5ms", "250us", "2s". Return false on bad input.
bool parse_rate(const std::string& text, std::uint64_t& bps);
bool parse_bytes(const std::string& text, std::size_t& bytes);
bool parse_duration(const std::string& text, Duration& d);

std::string format_counters(const char* direction, const ImpairCounters& c);

// Blocks SIGINT and SIGTERM in the calling thread and returns a signalfd that reports them (so
// that a poll loop can stop cleanly and print its counters), or -1 with errno set.
int stop_signal_fd();

}  // namespace slip::impair
