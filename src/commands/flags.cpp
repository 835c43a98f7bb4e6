// Names of command flags as COMMAND reports them (Redis 6 flags, Redis 7 flags and tips).
#include <array>
#include <utility>

#include <respite/commands/command_table.hpp>

#include "ascii.hpp"

namespace respite::commands {

namespace {

// The canonical name of each bit comes first; later rows are aliases.
constexpr std::array<std::pair<std::string_view, flag>, 31> names{{
    {"write", flag::write},
    {"readonly", flag::readonly},
    {"denyoom", flag::denyoom},
    {"module", flag::module},
    {"admin", flag::admin},
    {"pubsub", flag::pubsub},
    {"noscript", flag::noscript},
    {"blocking", flag::blocking},
    {"loading", flag::loading},
    {"stale", flag::stale},
    {"skip_monitor", flag::skip_monitor},
    {"skip_slowlog", flag::skip_slowlog},
    {"asking", flag::asking},
    {"fast", flag::fast},
    {"no_auth", flag::no_auth},
    {"may_replicate", flag::may_replicate},
    {"no_mandatory_keys", flag::no_mandatory_keys},
    {"no_async_loading", flag::no_async_loading},
    {"no_multi", flag::no_multi},
    {"movablekeys", flag::movablekeys},
    {"allow_busy", flag::allow_busy},
    {"nondeterministic_output", flag::nondeterministic_output},
    {"nondeterministic_output_order", flag::nondeterministic_output_order},
    {"request_policy:all_nodes", flag::request_all_nodes},
    {"request_policy:all_shards", flag::request_all_shards},
    {"request_policy:multi_shard", flag::request_multi_shard},
    {"request_policy:special", flag::request_special},
    {"has_subcommands", flag::has_subcommands},
    // Redis 6 spellings.
    {"random", flag::random},
    {"sort_for_script", flag::sort_for_script},
    {"ok_loading", flag::loading},
}};

bool same_name(std::string_view canonical, std::string_view given) noexcept {
    if (canonical.size() != given.size())
        return false;
    for (std::size_t i = 0; i < given.size(); ++i) {
        char c = detail::lower(given[i]);
        if (c == '-')
            c = '_';
        if (c != canonical[i])
            return false;
    }
    return true;
}

}  // namespace

std::uint32_t flag_from_name(std::string_view name) noexcept {
    for (const auto& [n, f] : names) {
        if (same_name(n, name))
            return f;
    }
    return 0;
}

std::string_view flag_name(flag f) noexcept {
    for (const auto& [n, bit] : names) {
        if (bit == f)
            return n;
    }
    return {};
}

}  // namespace respite::commands
