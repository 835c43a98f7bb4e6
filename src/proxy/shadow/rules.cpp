// Which reads are shadowed and how their replies are compared: the command table's flags plus
// the explicit lists the flags cannot express.
#include <algorithm>
#include <array>
#include <string_view>

#include <respite/proxy/shadow.hpp>

#include "text.hpp"

namespace respite::proxy {

namespace {

using namespace std::string_view_literals;

template <std::size_t n>
bool contains(const std::array<std::string_view, n>& list, std::string_view name) {
    return std::find(list.begin(), list.end(), name) != list.end();
}

bool has_arg(std::span<const std::string_view> args, std::size_t from, std::string_view word) {
    for (std::size_t i = from; i < args.size(); ++i) {
        if (detail::iequals(args[i], word)) {
            return true;
        }
    }
    return false;
}

constexpr shadow_rule skip(std::string_view reason) {
    shadow_rule r;
    r.reason = reason;
    return r;
}

constexpr shadow_rule compared(shadow_mode mode, missing_form missing = missing_form::nil_or_empty,
                               bool seconds = false) {
    shadow_rule r;
    r.mode = mode;
    r.missing = missing;
    r.seconds = seconds;
    return r;
}

// Readonly commands whose reply is not comparable between two servers holding the same data:
// encodings, internals, server-local state, scripts (which may call random commands or whose
// SHA may be missing on the secondary), and keyspace-wide counts that differ by definition
// while a migration runs. Matched on the container name, so "object|encoding" is covered too.
constexpr std::array skipped = {
    "scan"sv,       "sscan"sv,    "hscan"sv,  "zscan"sv,  "object"sv,     "dump"sv,    "memory"sv,
    "debug"sv,      "info"sv,     "client"sv, "config"sv, "pubsub"sv,     "lolwut"sv,  "eval_ro"sv,
    "evalsha_ro"sv, "fcall_ro"sv, "xinfo"sv,  "dbsize"sv, "xreadgroup"sv, "sort_ro"sv,
};

// Redis 7 flags TTL and PTTL nondeterministic_output (they tick); they are compared with a
// tolerance instead, so these checks run before the flag checks.
constexpr std::array ttl_seconds = {"ttl"sv, "expiretime"sv};
constexpr std::array ttl_millis = {"pttl"sv, "pexpiretime"sv};

// Replies that are scores or distances whatever the arguments.
constexpr std::array always_scored = {"zscore"sv, "zmscore"sv, "geodist"sv, "geopos"sv};
// Replies that hold scores when a WITH... option is given.
constexpr std::array with_scores = {
    "zrange"sv, "zrangebyscore"sv, "zrevrange"sv, "zrevrangebyscore"sv,
    "zunion"sv, "zinter"sv,        "zdiff"sv};
constexpr std::array with_score = {"zrank"sv, "zrevrank"sv};  // Redis 7.2 WITHSCORE
constexpr std::array with_dist = {"georadius_ro"sv, "georadiusbymember_ro"sv, "geosearch"sv};

// Field/value replies whose pair order is the server's hash order. (CONFIG GET has the same
// shape but is admin and skipped; callers comparing it directly use unordered_pairs.)
constexpr std::array pairs = {"hgetall"sv};

// Counts and booleans that are 0 for a missing key, so 0 on the secondary is a migration gap.
constexpr std::array zero_when_missing = {
    "exists"sv,    "touch"sv,      "scard"sv,      "hlen"sv,      "llen"sv,
    "zcard"sv,     "strlen"sv,     "xlen"sv,       "hstrlen"sv,   "hexists"sv,
    "sismember"sv, "smismember"sv, "zcount"sv,     "zlexcount"sv, "pfcount"sv,
    "bitcount"sv,  "sintercard"sv, "zintercard"sv, "getbit"sv,
};

}  // namespace

std::string_view name(shadow_mode m) noexcept {
    switch (m) {
        case shadow_mode::skip:
            return "skip";
        case shadow_mode::exact:
            return "exact";
        case shadow_mode::unordered:
            return "unordered";
        case shadow_mode::unordered_pairs:
            return "unordered_pairs";
        case shadow_mode::ttl:
            return "ttl";
        case shadow_mode::scored:
            return "scored";
        case shadow_mode::consumer_groups:
            return "consumer_groups";
        case shadow_mode::stream_info:
            return "stream_info";
        case shadow_mode::streams_by_key:
            return "streams_by_key";
    }
    return "unknown";
}

shadow_rule rule_for(std::span<const std::string_view> args, const commands::command_table& table) {
    if (args.empty()) {
        return skip("empty");
    }
    const commands::command_spec* spec = table.lookup(args);
    if (spec == nullptr) {
        return skip("unknown_command");
    }
    const std::string_view full = spec->name;
    const std::string_view base = full.substr(0, full.find('|'));

    if (contains(ttl_seconds, base)) {
        return compared(shadow_mode::ttl, missing_form::ttl_missing, true);
    }
    if (contains(ttl_millis, base)) {
        return compared(shadow_mode::ttl, missing_form::ttl_missing);
    }
    if (contains(skipped, base)) {
        return skip("not_comparable");
    }
    if (!commands::is_readonly(*spec)) {
        // Also keeps XREADGROUP (flagged write) off the secondary: it moves the group's cursor.
        return skip("not_readonly");
    }
    if (commands::is_nondeterministic(*spec)) {
        return skip("nondeterministic");
    }
    if (commands::is_pubsub(*spec) || commands::is_admin(*spec)) {
        return skip("admin_or_pubsub");
    }
    if (commands::is_blocking(*spec)) {
        // XREAD is flagged blocking as a command; it only blocks when BLOCK is given.
        if (base != "xread" || has_arg(args, 1, "block")) {
            return skip("blocking");
        }
        return compared(shadow_mode::streams_by_key);
    }
    if (contains(always_scored, base) ||
        (contains(with_scores, base) && has_arg(args, 2, "withscores")) ||
        (contains(with_score, base) && has_arg(args, 3, "withscore")) ||
        (contains(with_dist, base) &&
         (has_arg(args, 2, "withdist") || has_arg(args, 2, "withcoord")))) {
        return compared(shadow_mode::scored);
    }
    if (contains(pairs, base)) {
        return compared(shadow_mode::unordered_pairs);
    }
    if (commands::has_unordered_output(*spec)) {
        return compared(shadow_mode::unordered);
    }
    if (contains(zero_when_missing, base)) {
        return compared(shadow_mode::exact, missing_form::zero);
    }
    if (base == "type") {
        return compared(shadow_mode::exact, missing_form::type_none);
    }
    return compared(shadow_mode::exact);
}

}  // namespace respite::proxy
