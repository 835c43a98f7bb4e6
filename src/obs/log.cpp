// The shared "respite" logger: stderr, timestamped, level from RESPITE_LOG_LEVEL.
#include <array>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/sinks/stdout_color_sinks.h>  // also declares the stderr sinks

#include <respite/obs/log.hpp>

namespace respite::obs {

namespace {

constexpr std::string_view logger_name = "respite";

std::optional<spdlog::level::level_enum> parse_level(std::string_view name) {
    using spdlog::level::level_enum;
    // Our own table: spdlog::level::from_str maps unknown names to "off", which would silence a
    // mistyped RESPITE_LOG_LEVEL instead of reporting it.
    constexpr std::array<std::pair<std::string_view, level_enum>, 6> table = {{
        {"trace", level_enum::trace},
        {"debug", level_enum::debug},
        {"info", level_enum::info},
        {"warn", level_enum::warn},
        {"error", level_enum::err},
        {"off", level_enum::off},
    }};
    for (const auto& [n, level] : table) {
        if (n == name) {
            return level;
        }
    }
    return std::nullopt;
}

std::shared_ptr<spdlog::logger> make_logger() {
    // An application that wants respite's lines elsewhere registers its own "respite" logger
    // before first use; we then leave its sinks, pattern and level alone.
    if (auto existing = spdlog::get(std::string(logger_name))) {
        return existing;
    }
    auto logger = std::make_shared<spdlog::logger>(
        std::string(logger_name), std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");

    const char* env = std::getenv("RESPITE_LOG_LEVEL");
    const auto level = env != nullptr ? parse_level(env) : std::nullopt;
    logger->set_level(level.value_or(spdlog::level::warn));
    if (env != nullptr && !level) {
        logger->warn("log_level_unknown RESPITE_LOG_LEVEL={} using=warn", env);
    }

    try {
        spdlog::register_logger(logger);
    } catch (const spdlog::spdlog_ex&) {
        // Someone registered one between our lookup and now; use theirs so there is one logger.
        if (auto existing = spdlog::get(std::string(logger_name))) {
            return existing;
        }
    }
    return logger;
}

}  // namespace

spdlog::logger& log() {
    // Never destroyed: components may still log from threads or destructors during exit.
    static auto* const instance = new std::shared_ptr<spdlog::logger>(make_logger());
    return **instance;
}

bool set_log_level(std::string_view level) {
    const auto parsed = parse_level(level);
    if (!parsed) {
        return false;
    }
    log().set_level(*parsed);
    return true;
}

}  // namespace respite::obs
