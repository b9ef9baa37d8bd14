// `slip stream add|ls|info|rm|read` and `slip pub --ack`: persistent streams from the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/client.h"
#include "common.h"

namespace slip::cli {

// Runs one command on a connected PubSubClient (main.cc's run_pubsub).
using PubSubBody = std::function<void(broker::PubSubClient&, std::function<void(int)>)>;
using PubSubRunner = std::function<int(const Common&, std::string_view, bool, const PubSubBody&)>;

struct StreamCliOptions {
  std::string name;
  std::vector<std::string> subjects;
  std::uint64_t max_msgs = 0;
  std::uint64_t max_bytes = 0;
  std::string max_age;  // e.g. 90s, 10m, 24h, 500ms; empty: none
  std::string discard = "old";
  std::string fsync = "always";
  std::string dedup_window;  // a duration like max_age; empty: the server's default
  std::uint64_t from_seq = 1;
  unsigned count = 0;
  bool json = false;
  CLI::App* add = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* info = nullptr;
  CLI::App* rm = nullptr;
  CLI::App* read = nullptr;
};

// Adds `stream` and its subcommands to `app`.
CLI::App* add_stream_commands(CLI::App& app, StreamCliOptions& o);
int run_stream(const Common& c, const StreamCliOptions& o, const PubSubRunner& run);
// `slip pub --ack`: publishes `count` times with acknowledgement, printing each sequence.
int run_publish_acked(const Common& c, const std::string& subject, const std::string& data, unsigned count,
                      const std::string& msg_id, const PubSubRunner& run);
// One stream or consumer request, its reply printed by `print`: exit code 0, or 1 with the
// server's error on stderr.
int run_stream_request(const Common& c, const PubSubRunner& run, std::string_view what, wire::StreamOp op,
                       broker::StreamFields args, std::function<void(const broker::StreamFields&)> print,
                       broker::StoredMessageHandler on_msg = {});
// "slip WHAT: <status>" on stderr.
void print_error(std::string_view what, const Status& s);
// The value of `key` in a stream or consumer reply; empty when absent.
std::string field(const broker::StreamFields& f, std::string_view key);
// "90s" -> 90000; kInvalidArgument for anything else than <N>(ms|s|m|h|d).
Result<std::uint64_t> parse_duration_ms(std::string_view text);

}  // namespace slip::cli
