// Command metadata shared by the cluster router and the proxy: flags, arity and key positions.
//
// Module boundary: commands depends only on resp (to read a server's COMMAND reply) and the
// standard library. It does no I/O; refreshing from a server is the caller's round trip.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/resp/value.hpp>

namespace respite::commands {

// One bit per Redis command flag (COMMAND's third field), plus bits respite derives from Redis 7
// command tips and from the table's shape. Unscoped so `spec.flags & flag::write` reads naturally.
enum flag : std::uint32_t {
    write = 1U << 0,
    readonly = 1U << 1,
    denyoom = 1U << 2,
    module = 1U << 3,
    admin = 1U << 4,
    pubsub = 1U << 5,
    noscript = 1U << 6,
    blocking = 1U << 7,
    loading = 1U << 8,
    stale = 1U << 9,
    skip_monitor = 1U << 10,
    skip_slowlog = 1U << 11,
    asking = 1U << 12,
    fast = 1U << 13,
    no_auth = 1U << 14,
    may_replicate = 1U << 15,
    no_mandatory_keys = 1U << 16,
    no_async_loading = 1U << 17,
    no_multi = 1U << 18,
    movablekeys = 1U << 19,
    allow_busy = 1U << 20,
    // From the tip "nondeterministic_output" (the Redis 6 flag "random").
    nondeterministic_output = 1U << 21,
    random = nondeterministic_output,
    // From the tip "nondeterministic_output_order" (the Redis 6 flag "sort_for_script"): the
    // reply is a set whose order may differ between servers.
    nondeterministic_output_order = 1U << 22,
    sort_for_script = nondeterministic_output_order,
    // From the tips "request_policy:...": how a cluster client fans the command out.
    request_all_nodes = 1U << 23,
    request_all_shards = 1U << 24,
    request_multi_shard = 1U << 25,
    request_special = 1U << 26,
    // Derived: the command is a container ("config", "xinfo") whose subcommands are entries of
    // their own, named "container|sub".
    has_subcommands = 1U << 27,
};

// The flag with this Redis name ("readonly", "sort_for_script", "request_policy:all_shards";
// '-' and '_' are the same, case-insensitive), or 0 when respite does not track it.
std::uint32_t flag_from_name(std::string_view name) noexcept;
// The Redis name of a single flag bit ("nondeterministic_output" for random); empty otherwise.
std::string_view flag_name(flag f) noexcept;

struct command_spec {
    std::string name;  // lower case; "container|sub" for subcommands
    int arity = 0;     // N: exactly N arguments (name included); -N: at least N
    std::uint32_t flags = 0;
    int first_key = 0;  // 0: no keys (or movable keys only)
    int last_key = 0;   // negative: counted from the end (-1 is the last argument)
    int step = 0;

    // `argc` arguments (the name included) fit the arity.
    [[nodiscard]] bool arity_ok(std::size_t argc) const noexcept {
        if (arity > 0)
            return argc == static_cast<std::size_t>(arity);
        if (arity < 0)
            return argc >= static_cast<std::size_t>(-static_cast<long long>(arity));
        return true;
    }

    friend bool operator==(const command_spec&, const command_spec&) = default;
};

[[nodiscard]] constexpr bool has_flag(const command_spec& s, flag f) noexcept {
    return (s.flags & f) != 0;
}
[[nodiscard]] constexpr bool is_write(const command_spec& s) noexcept {
    return has_flag(s, flag::write);
}
[[nodiscard]] constexpr bool is_readonly(const command_spec& s) noexcept {
    return has_flag(s, flag::readonly);
}
[[nodiscard]] constexpr bool is_blocking(const command_spec& s) noexcept {
    return has_flag(s, flag::blocking);
}
[[nodiscard]] constexpr bool is_pubsub(const command_spec& s) noexcept {
    return has_flag(s, flag::pubsub);
}
[[nodiscard]] constexpr bool is_admin(const command_spec& s) noexcept {
    return has_flag(s, flag::admin);
}
[[nodiscard]] constexpr bool is_fast(const command_spec& s) noexcept {
    return has_flag(s, flag::fast);
}
[[nodiscard]] constexpr bool has_movable_keys(const command_spec& s) noexcept {
    return has_flag(s, flag::movablekeys);
}
// The reply may differ between two servers holding the same data (RANDOMKEY, SPOP, TIME, ...).
[[nodiscard]] constexpr bool is_nondeterministic(const command_spec& s) noexcept {
    return has_flag(s, flag::nondeterministic_output);
}
// The reply is a collection whose order may differ between servers (SMEMBERS, KEYS, ...).
[[nodiscard]] constexpr bool has_unordered_output(const command_spec& s) noexcept {
    return has_flag(s, flag::nondeterministic_output_order);
}
[[nodiscard]] constexpr bool has_keys(const command_spec& s) noexcept {
    return s.first_key > 0 || has_movable_keys(s);
}

// An immutable set of command specs, sorted by name. Lookups are case-insensitive binary
// searches that allocate nothing; a table is safe to share between threads.
class command_table {
  public:
    command_table() = default;
    // Names are lower-cased; on duplicates the last spec wins.
    explicit command_table(std::vector<command_spec> specs);

    // Every command and subcommand of Redis 7.0 (generated by src/commands/gen/).
    static const command_table& builtin();

    // Builds a table from a server's COMMAND (or COMMAND INFO) reply, RESP2 or RESP3, Redis 6 or
    // 7 shapes; subcommands become "container|sub" entries and Redis 7 tips become flags. Key
    // specs are ignored: key_positions uses first/last/step plus its own movable-keys rules.
    // Malformed entries are skipped (and counted in *error); a reply that is not an array gives
    // an empty table and a reason in *error.
    static command_table from_command_reply(const resp::value& reply, std::string* error = nullptr);

    // The spec of `name`, or of "name|sub" when `sub` is given and `name` has subcommands (an
    // unknown subcommand is nullptr; `sub` is ignored for a command without subcommands).
    // `name` may also be given as "container|sub".
    [[nodiscard]] const command_spec* find(std::string_view name,
                                           std::string_view sub = {}) const noexcept;
    // The spec a request runs: args[0] is the command, args[1] the subcommand of a container.
    // nullptr for an unknown command or subcommand; the container for a container alone.
    [[nodiscard]] const command_spec* lookup(std::span<const std::string_view> args) const noexcept;

    // Replaces `out` with the indices into `args` (args[0] is the command name) of every key
    // the request touches, in argument order. False, with `out` empty, when the command is
    // unknown, the argument count breaks its arity, or the arguments are malformed (a numkeys
    // that is negative, not a number or larger than what follows; an odd key/value tail; no
    // STREAMS in XREAD; ...) — such a request would be rejected by the server. True with `out`
    // empty for a valid request without keys.
    bool key_positions(std::span<const std::string_view> args, std::vector<std::size_t>& out) const;
    // The same for a spec already found with lookup(args), saving the second lookup.
    bool key_positions(const command_spec& spec, std::span<const std::string_view> args,
                       std::vector<std::size_t>& out) const;

    [[nodiscard]] std::span<const command_spec> specs() const noexcept { return specs_; }
    [[nodiscard]] std::size_t size() const noexcept { return specs_.size(); }
    [[nodiscard]] bool empty() const noexcept { return specs_.empty(); }

  private:
    void build_index();

    std::vector<command_spec> specs_;   // sorted by name
    std::vector<std::uint32_t> index_;  // open addressing: 1 + position in specs_, 0 = empty
};

}  // namespace respite::commands
