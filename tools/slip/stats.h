// `slip stats`: a live terminal view of a slipd's figures, read from its HTTP listener.
#pragma once

#include <string>

namespace slip::cli {

struct StatsOptions {
  std::string server_http = "127.0.0.1:8222";  // slipd --http-listen
  bool once = false;                           // one plain print, then exit
  unsigned interval_ms = 1000;
  unsigned top = 10;  // connections shown, busiest first
};

// Returns the process exit code: 0, or 1 when the server cannot be read.
int run_stats(const StatsOptions& options);

}  // namespace slip::cli
