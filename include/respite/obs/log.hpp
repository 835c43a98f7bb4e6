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

// A value from outside (a key, a channel, a client's command) in a log line: formatted as a
// quoted string with `"` and `\` escaped and control bytes as \n, \r, \t, \xNN, so that a value
// with spaces, quotes or "k=v" in it stays one field (and one string in JSON logs).
struct quoted {
    std::string_view text;
};

}  // namespace respite::obs

template <>
struct fmt::formatter<respite::obs::quoted> {
    constexpr auto parse(fmt::format_parse_context& ctx) { return ctx.begin(); }
    template <class Context>
    auto format(const respite::obs::quoted& q, Context& ctx) const {
        auto out = ctx.out();
        *out++ = '"';
        for (const char c : q.text) {
            const auto u = static_cast<unsigned char>(c);
            if (c == '"' || c == '\\') {
                *out++ = '\\';
                *out++ = c;
            } else if (c == '\n') {
                *out++ = '\\';
                *out++ = 'n';
            } else if (c == '\r') {
                *out++ = '\\';
                *out++ = 'r';
            } else if (c == '\t') {
                *out++ = '\\';
                *out++ = 't';
            } else if (u < 0x20 || u == 0x7f) {
                constexpr char hex[] = "0123456789abcdef";
                *out++ = '\\';
                *out++ = 'x';
                *out++ = hex[u >> 4];
                *out++ = hex[u & 15];
            } else {
                *out++ = c;
            }
        }
        *out++ = '"';
        return out;
    }
};
