// One log line per finished RPC call (docs/rpc.md, "Logging"):
//   rpc /kv.KeyValue/Get OK 84us peer=127.0.0.1:53012 conn=3
// through spdlog (core/logging.h), at a configurable level, failures at another.
#pragma once

#include <spdlog/spdlog.h>

#include "rpc/interceptor.h"

namespace slip::rpc {

struct LoggingOptions {
  // Level of lines for calls that ended OK, and for the others.
  spdlog::level::level_enum level = spdlog::level::info;
  spdlog::level::level_enum error_level = spdlog::level::warn;
  // Where to log; null: the process logger (slip::logger()). Must outlive the interceptor.
  spdlog::logger* logger = nullptr;
};

// Formats nothing unless the logger would print the line.
class LoggingInterceptor final : public ServerInterceptor {
 public:
  explicit LoggingInterceptor(LoggingOptions options = {}) : options_(options) {}

  void on_call_end(const ServerCall& call, const Status& status, std::chrono::nanoseconds elapsed) override;

 private:
  LoggingOptions options_;
};

}  // namespace slip::rpc
