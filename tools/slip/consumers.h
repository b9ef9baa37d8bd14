// `slip consume` and `slip consumer add|ls|info|rm`: stream consumers from the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "streams.h"

namespace slip::cli {

struct ConsumerCliOptions {
  std::string stream;
  std::string name;     // consumer add|info|rm; consume --durable
  bool pull = false;
  bool push = false;
  std::string deliver = "all";  // all | last | new | seq:N | time:RFC3339
  std::string filter;
  std::string ack = "explicit";  // explicit | none
  std::string ack_wait;          // a duration; empty: the server's default (30s)
  std::uint64_t max_deliver = 0;
  std::uint64_t max_ack_pending = 0;  // 0: the server's default (1000)
  unsigned batch = 10;
  unsigned count = 0;           // consume: exit after this many messages (0: never)
  std::string wait;             // consume: exit when nothing arrives for this long (empty: never)
  CLI::App* consume = nullptr;
  CLI::App* add = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* info = nullptr;
  CLI::App* rm = nullptr;
};

// Adds `consume` and `consumer` with its subcommands to `app`; returns {consume, consumer}.
std::pair<CLI::App*, CLI::App*> add_consumer_commands(CLI::App& app, ConsumerCliOptions& o);
int run_consume(const Common& c, const ConsumerCliOptions& o, const PubSubRunner& run);
int run_consumer(const Common& c, const ConsumerCliOptions& o, const PubSubRunner& run);
// "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.5+01:00" -> nanoseconds since the Unix epoch.
Result<std::int64_t> parse_rfc3339_ns(std::string_view text);

}  // namespace slip::cli
