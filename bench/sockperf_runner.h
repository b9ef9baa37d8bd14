// sockperf's TCP ping-pong on 127.0.0.1, run as the loopback floor the session round trips are
// read against (Debian's `sockperf`; scripts/install-deps.sh --bench installs it).
#pragma once

#include <string>

#include "latency_stats.h"

namespace slip::bench {

struct SockperfResult {
  bool ok = false;
  std::string error;
  Percentiles rtt;        // round-trip times in microseconds, whatever sockperf printed
  bool halved = false;    // sockperf printed one-way latency (RTT/2): the figures were doubled
  std::string command;    // the client command line, for the record
};

// Starts `sockperf server --tcp` on a free port, runs `sockperf ping-pong --tcp --full-rtt` with
// `size`-byte messages for `seconds`, stops the server and parses the client's percentiles.
SockperfResult run_sockperf_pingpong(const std::string& sockperf, int size, int seconds);

// Parses sockperf's ping-pong report ("---> percentile 50.000 = 13.580", "<MIN> observation",
// "Summary: Round trip is ..." or "Summary: Latency is ..."). Exposed for the record: the format
// was checked against sockperf 3.7.
SockperfResult parse_sockperf_output(const std::string& text);

}  // namespace slip::bench
