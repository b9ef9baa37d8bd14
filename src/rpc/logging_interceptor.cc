#include "rpc/logging_interceptor.h"

#include "core/logging.h"
#include "rpc/server.h"

namespace slip::rpc {

void LoggingInterceptor::on_call_end(const ServerCall& call, const Status& status, std::chrono::nanoseconds elapsed) {
  spdlog::logger& log = options_.logger != nullptr ? *options_.logger : logger();
  const auto level = status.is_ok() ? options_.level : options_.error_level;
  if (!log.should_log(level)) return;
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
  const char* cached = call.served_from_cache() ? " cached" : "";
  if (status.is_ok()) {
    log.log(level, "rpc {} OK {}us{} peer={} conn={}", call.method(), us, cached, call.peer(), call.connection_id());
  } else {
    log.log(level, "rpc {} {} {}us peer={} conn={}: {}", call.method(), status_code_name(status.code()), us,
            call.peer(), call.connection_id(), status.message());
  }
}

}  // namespace slip::rpc
