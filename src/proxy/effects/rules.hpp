// Private to effects: the per-command rules and the small readers they share.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/proxy/effects.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy::effects_detail {

using args_t = std::span<const std::string_view>;
using command = std::vector<std::string>;

// One primary command as a rule sees it. `key_at` holds the indices of its keys in `args`.
struct primary_command {
    args_t args;
    const resp::value& reply;
    const effect_context& ctx;
    std::span<const std::size_t> key_at;
};

// A rule appends the command's effect to out.commands, or sets out.copy when the reply does not
// say enough. Rules run only for non-error replies.
using rule = void (*)(const primary_command&, secondary_write&);

// --- shared readers and builders (support.cpp) ---

constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
bool iequals(std::string_view a, std::string_view b) noexcept;
// A decimal integer as Redis's string2ll reads it (an optional '-', no '+', no spaces).
bool parse_int(std::string_view s, std::int64_t& out) noexcept;
// An integer reply (or a RESP3 boolean, or a string holding an integer).
bool reply_int(const resp::value& v, std::int64_t& out) noexcept;
// The text of a string reply; nullptr for any other type.
const std::string* reply_text(const resp::value& v) noexcept;
// base + amount * unit without overflow.
bool absolute_ms(std::int64_t base, std::int64_t amount, std::int64_t unit,
                 std::int64_t& out) noexcept;

command make(std::initializer_list<std::string_view> parts);
command verbatim(args_t args);
// The effect cannot be derived: copy the keys instead of applying anything.
void cannot_derive(secondary_write& out);

// --- rules (rules_strings.cpp: strings, TTLs, conditional writes) ---
void rule_set(const primary_command&, secondary_write&);
void rule_setex(const primary_command&, secondary_write&);
void rule_setnx(const primary_command&, secondary_write&);
void rule_msetnx(const primary_command&, secondary_write&);
void rule_hsetnx(const primary_command&, secondary_write&);
void rule_renamenx(const primary_command&, secondary_write&);
void rule_getdel(const primary_command&, secondary_write&);
void rule_getex(const primary_command&, secondary_write&);
void rule_expire(const primary_command&, secondary_write&);
void rule_expireat(const primary_command&, secondary_write&);
void rule_copy(const primary_command&, secondary_write&);
void rule_restore(const primary_command&, secondary_write&);
void rule_incrbyfloat(const primary_command&, secondary_write&);
void rule_hincrbyfloat(const primary_command&, secondary_write&);
void rule_migrate(const primary_command&, secondary_write&);
void rule_zadd(const primary_command&, secondary_write&);
void rule_unless_zero(const primary_command&, secondary_write&);
void rule_when_storing(const primary_command&, secondary_write&);
void rule_sort(const primary_command&, secondary_write&);
void rule_pfcount(const primary_command&, secondary_write&);

// --- rules (rules_collections.cpp: pops and moves become removals of what was returned) ---
void rule_spop(const primary_command&, secondary_write&);
void rule_list_pop(const primary_command&, secondary_write&);
void rule_list_mpop(const primary_command&, secondary_write&);
void rule_list_bpop(const primary_command&, secondary_write&);
void rule_zset_pop(const primary_command&, secondary_write&);
void rule_zset_mpop(const primary_command&, secondary_write&);
void rule_zset_bpop(const primary_command&, secondary_write&);
void rule_list_move(const primary_command&, secondary_write&);

// --- rules (rules_streams.cpp) ---
void rule_xadd(const primary_command&, secondary_write&);
void rule_xreadgroup(const primary_command&, secondary_write&);
void rule_xgroup_id(const primary_command&, secondary_write&);
void rule_copy_keys(const primary_command&, secondary_write&);

}  // namespace respite::proxy::effects_detail
