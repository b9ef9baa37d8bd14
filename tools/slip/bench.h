// `slip bench`: load against a running broker, with a result table.
//
//   pubsub  P publishers -> S subscribers on one subject; every subscriber gets every message
//           (S > 1 is fan-out).
//   queue   P publishers -> S subscribers in one queue group; each message goes to one of them.
//   reqrep  R requesters, one request outstanding each, against N responders that echo.
//
// Publishers stamp their send time into the first 8 bytes of every payload, so subscribers
// record end-to-end latency; requesters record round trips. Publishing is flow-controlled (a
// bounded number of messages in flight between publishers and the slowest subscriber), so a
// fast publisher does not turn its subscribers into slow consumers.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "common.h"

namespace slip::cli {

enum class BenchMode { kNone, kPubSub, kQueue, kReqRep };

struct BenchOptions {
  BenchMode mode = BenchMode::kNone;
  std::string subject;  // empty: a fresh "_bench.<random>"
  std::size_t size = 128;
  std::uint64_t count = 100000;      // per publisher
  std::uint64_t req_count = 10000;   // per requester
  double duration_s = 0;             // > 0: run this long instead of a count
  unsigned publishers = 1;
  unsigned subscribers = 1;
  unsigned requesters = 1;
  unsigned responders = 1;
  double rate = 0;          // messages/s per publisher; 0: as fast as flow control allows
  std::uint64_t window = 0;  // messages in flight across all publishers; 0: about 1 MiB worth
  unsigned threads = 0;      // event loops; 0: one per client, at most one per core
  std::string idle = "spin";
  bool no_progress = false;
  bool json = false;
};

// Adds `bench` and its modes to `app`; the parsed values land in `o`, which must outlive app.
CLI::App* add_bench_command(CLI::App& app, BenchOptions& o);

// Runs the mode chosen on the command line and prints the result. Returns the exit code: 0,
// 1 when the server was unreachable, a connection failed or messages were lost, 2 for bad options.
int run_bench(const Common& c, const BenchOptions& o);

}  // namespace slip::cli
