#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <string>

namespace slip {

namespace {
std::shared_ptr<spdlog::logger> make_logger() {
  auto l = spdlog::stderr_color_mt("slip");
  l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  return l;
}
}  // namespace

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> l = make_logger();
  return *l;
}

Status init_logging(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return invalid_argument("unknown log level '" + std::string(level) +
                            "' (use trace, debug, info, warn, error or off)");
  }
  logger().set_level(lvl);
  return Status();
}

}  // namespace slip
