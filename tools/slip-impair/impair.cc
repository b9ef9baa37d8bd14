#include "impair.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <csignal>
#include <sys/signalfd.h>

namespace slip::impair {

std::vector<Clock::time_point> Impairer::on_datagram(Clock::time_point now, std::size_t size) {
  ++counters_.received;
  const double u_loss = rng_.uniform();
  const double u_dup = rng_.uniform();
  const double u_reorder = rng_.uniform();
  const double u_jitter1 = rng_.uniform();
  const double u_jitter2 = rng_.uniform();
  std::vector<Clock::time_point> out;

  Clock::time_point depart = now;
  if (options_.rate_bps > 0) {
    const Clock::time_point start = std::max(now, busy_until_);
    const double backlog = std::chrono::duration<double>(start - now).count() * static_cast<double>(options_.rate_bps) / 8;
    if (backlog + static_cast<double>(size) > static_cast<double>(options_.queue_bytes)) {
      ++counters_.queue_dropped;
      return out;
    }
    busy_until_ = start + Duration(static_cast<std::int64_t>(static_cast<double>(size) * 8e9 /
                                                             static_cast<double>(options_.rate_bps)));
    depart = busy_until_;
  }
  if (u_loss < options_.loss) {
    ++counters_.lost;
    return out;
  }
  const bool dup = u_dup < options_.duplicate;
  if (dup) ++counters_.duplicated;
  const bool held = u_reorder < options_.reorder;
  if (held) ++counters_.reordered;
  const double jit[2] = {u_jitter1, u_jitter2};
  for (int i = 0; i < (dup ? 2 : 1); ++i) {
    Clock::time_point at = depart + options_.delay;
    at += Duration(static_cast<std::int64_t>(jit[i] * static_cast<double>(options_.jitter.count())));
    if (held && i == 0) at += options_.reorder_delay;
    out.push_back(at);
  }
  return out;
}

namespace {

// A number followed by a unit from `units` (longest first); false when the unit is unknown.
bool split_number(const std::string& text, double& value, std::string& unit) {
  if (text.empty()) return false;
  char* end = nullptr;
  value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !(value >= 0)) return false;
  unit.clear();
  for (const char* p = end; *p; ++p) unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(*p))));
  return true;
}

}  // namespace

bool parse_rate(const std::string& text, std::uint64_t& bps) {
  double v = 0;
  std::string unit;
  if (!split_number(text, v, unit)) return false;
  double mult = 0;
  if (unit.empty() || unit == "bit" || unit == "bps") {
    mult = 1;
  } else if (unit == "kbit") {
    mult = 1e3;
  } else if (unit == "mbit") {
    mult = 1e6;
  } else if (unit == "gbit") {
    mult = 1e9;
  } else {
    return false;
  }
  bps = static_cast<std::uint64_t>(v * mult);
  return true;
}

bool parse_bytes(const std::string& text, std::size_t& bytes) {
  double v = 0;
  std::string unit;
  if (!split_number(text, v, unit)) return false;
  double mult = 0;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    mult = 1024;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    mult = 1024.0 * 1024;
  } else {
    return false;
  }
  bytes = static_cast<std::size_t>(v * mult);
  return true;
}

bool parse_duration(const std::string& text, Duration& d) {
  double v = 0;
  std::string unit;
  if (!split_number(text, v, unit)) return false;
  double ns = 0;
  if (unit.empty() || unit == "ms") {
    ns = 1e6;
  } else if (unit == "us") {
    ns = 1e3;
  } else if (unit == "s") {
    ns = 1e9;
  } else {
    return false;
  }
  d = Duration(static_cast<std::int64_t>(v * ns));
  return true;
}

std::string format_counters(const char* direction, const ImpairCounters& c) {
  char line[512];
  std::snprintf(line, sizeof line,
                "%s: received %llu sent %llu lost %llu queue_dropped %llu duplicated %llu reordered %llu "
                "bytes_sent %llu",
                direction, static_cast<unsigned long long>(c.received), static_cast<unsigned long long>(c.sent),
                static_cast<unsigned long long>(c.lost), static_cast<unsigned long long>(c.queue_dropped),
                static_cast<unsigned long long>(c.duplicated), static_cast<unsigned long long>(c.reordered),
                static_cast<unsigned long long>(c.bytes_sent));
  return line;
}

int stop_signal_fd() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) return -1;
  return signalfd(-1, &mask, SFD_CLOEXEC);
}

}  // namespace slip::impair
