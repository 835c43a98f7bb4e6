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

// The line format: "text" (the default: "<time> <level> <event> key=value ...") or "json" (one
// object per line: ts, level, event, then each key=value as a field, numbers and booleans bare,
// trailing free text as "note"). Also read from RESPITE_LOG_FORMAT at first use. False for an
// unknown name.
bool set_log_format(std::string_view format);

// The formatter set_log_format("json") installs (json_line.hpp), for loggers of one's own.
std::unique_ptr<spdlog::formatter> make_json_formatter();

}  // namespace respite::obs
