// respite's logger: one spdlog logger named "respite", structured as "event key=value ...".
#pragma once

#include <memory>
#include <string_view>

#include <spdlog/spdlog.h>

namespace respite::obs {

// The shared logger (created on first use, stderr, level from RESPITE_LOG_LEVEL or "warn").
spdlog::logger& log();

// Changes the level at run time: "trace", "debug", "info", "warn", "error", "off".
// Returns false for an unknown name.
bool set_log_level(std::string_view level);

}  // namespace respite::obs
