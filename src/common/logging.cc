#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>

namespace needlefs {

Status InitLogging(const LogOptions& options) {
  auto level = spdlog::level::from_str(options.level);
  if (level == spdlog::level::off && options.level != "off") {
    return Status::InvalidArgument("unknown log level: " + options.level);
  }
  spdlog::drop("needlefs");  // InitLogging may run more than once
  auto logger = spdlog::stderr_logger_mt("needlefs");
  if (options.format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ [%t] %v");
  } else if (options.format == "json") {
    // Messages are event + key=value fields without quotes, so embedding
    // them in a JSON string is safe for our own log lines.
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","thread":%t,"msg":"%v"})");
  } else {
    spdlog::drop("needlefs");
    return Status::InvalidArgument("unknown log format: " + options.format);
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
  return Status::OK();
}

}  // namespace needlefs
