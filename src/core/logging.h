// Logging through spdlog: one process-wide logger named "slip". Hot paths do not log per
// message; they count, and log once per event that a person must see.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "slipstream/status.h"

namespace slip {

// Sets up the "slip" logger on stderr with `level` ("trace", "debug", "info", "warn", "error",
// "off"). Unknown levels are an error. Safe to call again to change the level.
Status init_logging(std::string_view level);

// The process logger; init_logging() need not have run.
spdlog::logger& logger();

}  // namespace slip

#define SLIP_LOG_TRACE(...) ::slip::logger().trace(__VA_ARGS__)
#define SLIP_LOG_DEBUG(...) ::slip::logger().debug(__VA_ARGS__)
#define SLIP_LOG_INFO(...) ::slip::logger().info(__VA_ARGS__)
#define SLIP_LOG_WARN(...) ::slip::logger().warn(__VA_ARGS__)
#define SLIP_LOG_ERROR(...) ::slip::logger().error(__VA_ARGS__)
