// Classification of commands by how they affect the connection (blocking, pub/sub, state).
#include <respite/client/command_info.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <string>

namespace respite::client {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool one_of(std::string_view name, std::initializer_list<std::string_view> names) noexcept {
    for (auto n : names) {
        if (iequals(name, n)) return true;
    }
    return false;
}

// Parses a non-negative decimal (the "timeout" of BLPOP & co. is a float in seconds).
std::optional<double> parse_number(std::string_view s) noexcept {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(v) || v < 0) {
        return std::nullopt;
    }
    return v;
}

block_time from_seconds(std::string_view s) noexcept {
    auto v = parse_number(s);
    if (!v) return {true, std::chrono::milliseconds(0)};  // the server will reject it quickly
    if (*v == 0) return {true, std::nullopt};
    return {true, std::chrono::milliseconds(static_cast<long long>(std::ceil(*v * 1000.0)))};
}

block_time from_millis(std::string_view s) noexcept {
    auto v = parse_number(s);
    if (!v) return {true, std::chrono::milliseconds(0)};
    if (*v == 0) return {true, std::nullopt};
    return {true, std::chrono::milliseconds(static_cast<long long>(std::ceil(*v)))};
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

block_time blocking_time(std::span<const std::string_view> args) noexcept {
    if (args.empty()) return {};
    auto name = args[0];
    auto n = args.size();
    if (one_of(name, {"BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX", "BRPOPLPUSH", "BLMOVE"})) {
        return n >= 2 ? from_seconds(args[n - 1]) : block_time{true, std::nullopt};
    }
    if (one_of(name, {"BLMPOP", "BZMPOP"})) {
        return n >= 2 ? from_seconds(args[1]) : block_time{true, std::nullopt};
    }
    if (one_of(name, {"WAIT", "WAITAOF"})) {
        return n >= 2 ? from_millis(args[n - 1]) : block_time{true, std::nullopt};
    }
    if (one_of(name, {"XREAD", "XREADGROUP"})) {
        for (std::size_t i = 1; i + 1 < n; ++i) {
            if (iequals(args[i], "STREAMS")) break;
            if (iequals(args[i], "BLOCK")) return from_millis(args[i + 1]);
        }
        return {};
    }
    return {};
}

command_kind classify(std::span<const std::string_view> args) noexcept {
    if (args.empty()) return command_kind::ordinary;
    auto name = args[0];
    if (one_of(name, {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})) return command_kind::subscribe;
    if (one_of(name, {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"})) {
        return command_kind::unsubscribe;
    }
    if (blocking_time(args).is_blocking) return command_kind::blocking;
    if (one_of(name, {"SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "RESET", "CLIENT",
                      "HELLO", "AUTH", "QUIT", "MONITOR", "SYNC", "PSYNC", "READONLY",
                      "READWRITE"})) {
        return command_kind::connection_state;
    }
    return command_kind::ordinary;
}

}  // namespace respite::client
