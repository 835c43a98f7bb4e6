// The shared "respite" logger: stderr, timestamped, level from RESPITE_LOG_LEVEL.
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>  // also declares the stderr sinks

#include <respite/obs/json_line.hpp>
#include <respite/obs/log.hpp>

namespace respite::obs {

namespace {

constexpr std::string_view logger_name = "respite";
constexpr const char* text_pattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v";

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
    logger->set_pattern(text_pattern);
    const char* format = std::getenv("RESPITE_LOG_FORMAT");
    const bool format_ok = format == nullptr || std::string_view(format) == "text" ||
                           std::string_view(format) == "json";
    if (format != nullptr && std::string_view(format) == "json")
        logger->set_formatter(make_json_formatter());

    const char* env = std::getenv("RESPITE_LOG_LEVEL");
    const auto level = env != nullptr ? parse_level(env) : std::nullopt;
    logger->set_level(level.value_or(spdlog::level::warn));
    if (env != nullptr && !level) {
        logger->warn("log_level_unknown RESPITE_LOG_LEVEL={} using=warn", env);
    }
    if (!format_ok) {
        logger->warn("log_format_unknown RESPITE_LOG_FORMAT={} using=text", format);
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

namespace {

class json_formatter final : public spdlog::formatter {
  public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const auto t = std::chrono::system_clock::to_time_t(msg.time);
        const auto ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch())
                .count() %
            1000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char ts[40];
        const auto n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(ms));
        const auto level = spdlog::level::to_string_view(msg.level);
        const auto line = json_log_line(ts, std::string_view(level.data(), level.size()),
                                        std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(line.data(), line.data() + line.size());
        dest.push_back('\n');
    }
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<json_formatter>();
    }
};

}  // namespace

std::unique_ptr<spdlog::formatter> make_json_formatter() {
    return std::make_unique<json_formatter>();
}

bool set_log_level(std::string_view level) {
    const auto parsed = parse_level(level);
    if (!parsed) {
        return false;
    }
    log().set_level(*parsed);
    return true;
}

bool set_log_format(std::string_view format) {
    if (format == "json") {
        log().set_formatter(make_json_formatter());
        return true;
    }
    if (format == "text") {
        log().set_pattern(text_pattern);
        return true;
    }
    return false;
}

}  // namespace respite::obs
