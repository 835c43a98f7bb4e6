// Key extraction: first/last/step ranges, and Redis's own rules for the movable-keys commands.
#include <respite/commands/command_table.hpp>

#include "ascii.hpp"

namespace respite::commands {

namespace {

using args_t = std::span<const std::string_view>;

// A count argument as Redis's string2ll reads it: digits only, no sign, no leading zero.
// Negative or non-numeric counts are malformed here, as they are for the server.
bool parse_count(std::string_view s, std::size_t& out) noexcept {
    if (s.empty() || s.size() > 18 || (s.size() > 1 && s[0] == '0'))
        return false;
    std::size_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        n = n * 10 + static_cast<std::size_t>(c - '0');
    }
    out = n;
    return true;
}

// numkeys at args[numkeys_at], then that many keys; `fixed` keys (destinations) before it.
bool numkeys_rule(args_t args, std::size_t numkeys_at, std::size_t fixed_key, bool allow_zero,
                  std::vector<std::size_t>& out) {
    std::size_t n = 0;
    if (numkeys_at >= args.size() || !parse_count(args[numkeys_at], n))
        return false;
    if (n == 0 && !allow_zero)
        return false;
    const std::size_t first = numkeys_at + 1;
    if (n > args.size() - first)
        return false;
    if (fixed_key != 0)
        out.push_back(fixed_key);
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(first + i);
    return true;
}

// XREAD [COUNT n] [BLOCK ms] STREAMS k... id...; XREADGROUP GROUP g c [...] [NOACK] STREAMS ...
// Options are skipped as Redis's xreadGetKeys does, so a group named "streams" is no keyword.
bool xread_rule(args_t args, std::vector<std::size_t>& out) {
    std::size_t streams = 0;
    for (std::size_t i = 1; i < args.size(); ++i) {
        const auto a = args[i];
        if (detail::iequals(a, "block") || detail::iequals(a, "count")) {
            ++i;
        } else if (detail::iequals(a, "group")) {
            i += 2;
        } else if (detail::iequals(a, "noack")) {
        } else if (detail::iequals(a, "streams")) {
            streams = i;
            break;
        } else {
            break;
        }
    }
    if (streams == 0)
        return false;
    const std::size_t rest = args.size() - streams - 1;
    if (rest == 0 || rest % 2 != 0)
        return false;
    for (std::size_t i = 0; i < rest / 2; ++i)
        out.push_back(streams + 1 + i);
    return true;
}

// MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw] [AUTH2 user pw] [KEYS k...]
bool migrate_rule(args_t args, std::vector<std::size_t>& out) {
    for (std::size_t i = 6; i < args.size(); ++i) {
        const auto a = args[i];
        if (detail::iequals(a, "keys")) {
            if (!args[3].empty())
                return false;  // both a single key and KEYS: a syntax error for the server
            for (std::size_t k = i + 1; k < args.size(); ++k)
                out.push_back(k);
            return true;
        }
        if (detail::iequals(a, "auth"))
            i += 1;
        else if (detail::iequals(a, "auth2"))
            i += 2;
    }
    out.push_back(3);
    return true;
}

// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
// [STORE destination]: patterns are not keys; the last STORE names the destination.
bool sort_rule(args_t args, std::vector<std::size_t>& out) {
    std::size_t store = 0;
    for (std::size_t i = 2; i < args.size(); ++i) {
        const auto a = args[i];
        if (detail::iequals(a, "limit"))
            i += 2;
        else if (detail::iequals(a, "get") || detail::iequals(a, "by"))
            i += 1;
        else if (detail::iequals(a, "store") && i + 1 < args.size())
            store = i + 1;
    }
    out.push_back(1);
    if (store != 0)
        out.push_back(store);
    return true;
}

// GEORADIUS key lon lat radius unit [...] [STORE key] [STOREDIST key]
// (GEORADIUSBYMEMBER has one argument fewer; Redis scans both from index 5, the last wins.)
bool georadius_rule(args_t args, std::vector<std::size_t>& out) {
    std::size_t store = 0;
    for (std::size_t i = 5; i < args.size(); ++i) {
        const auto a = args[i];
        if ((detail::iequals(a, "store") || detail::iequals(a, "storedist")) &&
            i + 1 < args.size()) {
            store = i + 1;
            ++i;
        }
    }
    out.push_back(1);
    if (store != 0)
        out.push_back(store);
    return true;
}

enum class movable : unsigned char {
    none,
    script,                // EVAL & co., FCALL & co.: numkeys at 2, zero allowed
    numkeys_at_1,          // ZUNION, ZINTER, ZDIFF, ZINTERCARD, SINTERCARD, LMPOP, ZMPOP
    dest_numkeys_at_2,     // ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE
    timeout_numkeys_at_2,  // BLMPOP, BZMPOP
    xread,
    migrate,
    sort,
    sort_ro,
    georadius,
};

struct movable_command {
    std::string_view name;
    movable rule;
};

constexpr movable_command movable_commands[] = {
    {"eval", movable::script},
    {"evalsha", movable::script},
    {"eval_ro", movable::script},
    {"evalsha_ro", movable::script},
    {"fcall", movable::script},
    {"fcall_ro", movable::script},
    {"zunion", movable::numkeys_at_1},
    {"zinter", movable::numkeys_at_1},
    {"zdiff", movable::numkeys_at_1},
    {"zintercard", movable::numkeys_at_1},
    {"sintercard", movable::numkeys_at_1},
    {"lmpop", movable::numkeys_at_1},
    {"zmpop", movable::numkeys_at_1},
    {"zunionstore", movable::dest_numkeys_at_2},
    {"zinterstore", movable::dest_numkeys_at_2},
    {"zdiffstore", movable::dest_numkeys_at_2},
    {"blmpop", movable::timeout_numkeys_at_2},
    {"bzmpop", movable::timeout_numkeys_at_2},
    {"xread", movable::xread},
    {"xreadgroup", movable::xread},
    {"migrate", movable::migrate},
    {"sort", movable::sort},
    {"sort_ro", movable::sort_ro},
    {"georadius", movable::georadius},
    {"georadiusbymember", movable::georadius},
};

movable movable_rule(std::string_view name) noexcept {
    for (const auto& m : movable_commands) {
        if (m.name == name)
            return m.rule;
    }
    return movable::none;
}

bool range_rule(const command_spec& spec, args_t args, std::vector<std::size_t>& out) {
    if (spec.first_key <= 0)
        return true;
    const auto argc = static_cast<long long>(args.size());
    const long long first = spec.first_key;
    long long last = spec.last_key < 0 ? argc + spec.last_key : spec.last_key;
    const long long step = spec.step > 0 ? spec.step : 1;
    // As in Redis, keys past the end of a variadic command are absent (SUNSUBSCRIBE alone has
    // none); for a fixed arity they mean the spec does not fit the request.
    if (last >= argc) {
        if (spec.arity >= 0)
            return false;
        last = argc - 1;
    }
    if (first >= argc || last < first)
        return spec.arity < 0;
    // A key/value tail (MSET k v k v) must be complete.
    if (spec.last_key < 0 && step > 1 && (last - first + 1) % step != 0)
        return false;
    for (long long i = first; i <= last; i += step)
        out.push_back(static_cast<std::size_t>(i));
    return true;
}

bool extract(const command_spec& spec, args_t args, std::vector<std::size_t>& out) {
    if (!spec.arity_ok(args.size()))
        return false;
    switch (movable_rule(spec.name)) {
        case movable::script:
            return numkeys_rule(args, 2, 0, true, out);
        case movable::numkeys_at_1:
            return numkeys_rule(args, 1, 0, false, out);
        case movable::dest_numkeys_at_2:
            return numkeys_rule(args, 2, 1, false, out);
        case movable::timeout_numkeys_at_2:
            return numkeys_rule(args, 2, 0, false, out);
        case movable::xread:
            return xread_rule(args, out);
        case movable::migrate:
            return args.size() >= 6 && migrate_rule(args, out);
        case movable::sort:
            return args.size() >= 2 && sort_rule(args, out);
        case movable::sort_ro:
            if (args.size() < 2)
                return false;
            out.push_back(1);
            return true;
        case movable::georadius:
            return args.size() >= 2 && georadius_rule(args, out);
        case movable::none:
            break;
    }
    // Movable keys respite has no rule for (a module command): first/last/step would be a guess.
    if (has_movable_keys(spec))
        return false;
    return range_rule(spec, args, out);
}

}  // namespace

bool command_table::key_positions(std::span<const std::string_view> args,
                                  std::vector<std::size_t>& out) const {
    out.clear();
    const command_spec* spec = lookup(args);
    if (spec == nullptr)
        return false;  // unknown command, or unknown subcommand of a container
    return key_positions(*spec, args, out);
}

bool command_table::key_positions(const command_spec& spec, std::span<const std::string_view> args,
                                  std::vector<std::size_t>& out) const {
    out.clear();
    if (!extract(spec, args, out)) {
        out.clear();
        return false;
    }
    return true;
}

}  // namespace respite::commands
