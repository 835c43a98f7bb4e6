// Classification of commands by how they affect the connection (blocking, pub/sub, state).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

#include <respite/client/command_info.hpp>

namespace respite::client {

namespace {

char lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

// How a blocking command says how long it blocks.
enum class block_rule : unsigned char { none, last_seconds, second_seconds, last_millis, xread };

struct known_command {
    std::string_view name;  // lower case
    command_kind kind;
    block_rule rule;
};

// Every command the client treats specially, grouped by name length (checked on every command,
// so an ordinary command such as GET or SET is dismissed by its length alone or a few compares).
constexpr known_command known[] = {
    {"exec", command_kind::connection_state, block_rule::none},
    {"wait", command_kind::blocking, block_rule::last_millis},
    {"auth", command_kind::connection_state, block_rule::none},
    {"quit", command_kind::connection_state, block_rule::none},
    {"sync", command_kind::connection_state, block_rule::none},
    {"blpop", command_kind::blocking, block_rule::last_seconds},
    {"brpop", command_kind::blocking, block_rule::last_seconds},
    {"multi", command_kind::connection_state, block_rule::none},
    {"watch", command_kind::connection_state, block_rule::none},
    {"reset", command_kind::connection_state, block_rule::none},
    {"hello", command_kind::connection_state, block_rule::none},
    {"xread", command_kind::blocking, block_rule::xread},
    {"psync", command_kind::connection_state, block_rule::none},
    {"blmove", command_kind::blocking, block_rule::last_seconds},
    {"blmpop", command_kind::blocking, block_rule::second_seconds},
    {"bzmpop", command_kind::blocking, block_rule::second_seconds},
    {"select", command_kind::connection_state, block_rule::none},
    {"client", command_kind::connection_state, block_rule::none},
    {"discard", command_kind::connection_state, block_rule::none},
    {"unwatch", command_kind::connection_state, block_rule::none},
    {"waitaof", command_kind::blocking, block_rule::last_millis},
    {"monitor", command_kind::connection_state, block_rule::none},
    {"bzpopmin", command_kind::blocking, block_rule::last_seconds},
    {"bzpopmax", command_kind::blocking, block_rule::last_seconds},
    {"readonly", command_kind::connection_state, block_rule::none},
    {"subscribe", command_kind::subscribe, block_rule::none},
    {"readwrite", command_kind::connection_state, block_rule::none},
    {"psubscribe", command_kind::subscribe, block_rule::none},
    {"ssubscribe", command_kind::subscribe, block_rule::none},
    {"brpoplpush", command_kind::blocking, block_rule::last_seconds},
    {"xreadgroup", command_kind::blocking, block_rule::xread},
    {"unsubscribe", command_kind::unsubscribe, block_rule::none},
    {"punsubscribe", command_kind::unsubscribe, block_rule::none},
    {"sunsubscribe", command_kind::unsubscribe, block_rule::none},
};
constexpr std::size_t shortest = 4, longest = 12;

const known_command* find_known(std::string_view name) noexcept {
    if (name.size() < shortest || name.size() > longest)
        return nullptr;
    char buf[longest];
    for (std::size_t i = 0; i < name.size(); ++i)
        buf[i] = lower(name[i]);
    std::string_view lowered(buf, name.size());
    for (const auto& k : known) {
        if (k.name.size() == lowered.size() && k.name == lowered)
            return &k;
    }
    return nullptr;
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

block_time from_number(std::string_view s, double to_millis) noexcept {
    auto v = parse_number(s);
    if (!v)
        return {true, std::chrono::milliseconds(0)};  // the server rejects it at once
    if (*v == 0)
        return {true, std::nullopt};
    // Beyond ~30 years (Redis refuses such timeouts anyway): clamped, so that the conversion
    // stays defined and deadlines computed from it cannot overflow.
    const double ms = std::min(std::ceil(*v * to_millis), 1e12);
    return {true, std::chrono::milliseconds(static_cast<long long>(ms))};
}

block_time block_of(const known_command& k, std::span<const std::string_view> args) noexcept {
    auto n = args.size();
    switch (k.rule) {
        case block_rule::none:
            return {};
        case block_rule::last_seconds:
            return n >= 2 ? from_number(args[n - 1], 1000.0) : block_time{true, std::nullopt};
        case block_rule::second_seconds:
            return n >= 2 ? from_number(args[1], 1000.0) : block_time{true, std::nullopt};
        case block_rule::last_millis:
            return n >= 2 ? from_number(args[n - 1], 1.0) : block_time{true, std::nullopt};
        case block_rule::xread:
            // Options before STREAMS, their values skipped: a group or consumer named
            // "streams" or "block" (XREADGROUP GROUP g c ...) is a value, not a keyword.
            for (std::size_t i = 1; i + 1 < n; ++i) {
                if (iequals(args[i], "STREAMS"))
                    break;
                if (iequals(args[i], "BLOCK"))
                    return from_number(args[i + 1], 1.0);
                if (iequals(args[i], "GROUP"))
                    i += 2;
                else if (iequals(args[i], "COUNT"))
                    i += 1;
            }
            return {};
    }
    return {};
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

block_time blocking_time(std::span<const std::string_view> args) noexcept {
    if (args.empty())
        return {};
    const auto* k = find_known(args[0]);
    return k ? block_of(*k, args) : block_time{};
}

command_kind classify(std::span<const std::string_view> args) noexcept {
    if (args.empty())
        return command_kind::ordinary;
    const auto* k = find_known(args[0]);
    if (!k)
        return command_kind::ordinary;
    // XREAD without BLOCK does not block.
    if (k->kind == command_kind::blocking && !block_of(*k, args).is_blocking) {
        return command_kind::ordinary;
    }
    return k->kind;
}

}  // namespace respite::client
