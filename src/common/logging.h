// Structured logging on spdlog. Messages are written as an event name followed
// by key=value fields, e.g. `volume.open id=3 needles=120 bytes=1048576`, so
// logs can be grepped and parsed. Thread-safe (spdlog's default logger).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "common/status.h"

namespace needlefs {

struct LogOptions {
  /// "trace", "debug", "info", "warn", "error". Default: "info".
  std::string level = "info";
  /// "text" (human, with timestamps) or "json" (one JSON object per line).
  std::string format = "text";
};

/// Configures the default logger (stderr). Errors: kInvalidArgument for an
/// unknown level or format.
Status InitLogging(const LogOptions& options);

}  // namespace needlefs
