// translate(): finds the command's rule and applies the rules every command shares (errors,
// reads, keys, keyless writes); translate_transaction() folds a MULTI/EXEC over it.
#include <algorithm>
#include <array>

#include <respite/proxy/effects.hpp>

#include "rules.hpp"

namespace respite::proxy {

namespace {

using namespace effects_detail;

struct named_rule {
    std::string_view name;  // as command_spec::name: lower case, "container|sub"
    rule apply;
};

// Commands whose effect is not "replay verbatim". Sorted by name for the binary search.
constexpr auto rules = std::to_array<named_rule>({
    {"blmove", rule_list_move},
    {"blmpop", rule_list_mpop},
    {"blpop", rule_list_bpop},
    {"brpop", rule_list_bpop},
    {"brpoplpush", rule_list_move},
    {"bzmpop", rule_zset_mpop},
    {"bzpopmax", rule_zset_bpop},
    {"bzpopmin", rule_zset_bpop},
    {"copy", rule_copy},
    {"del", rule_unless_zero},
    {"expire", rule_expire},
    {"expireat", rule_expireat},
    {"georadius", rule_when_storing},
    {"georadiusbymember", rule_when_storing},
    {"getdel", rule_getdel},
    {"getex", rule_getex},
    {"hincrbyfloat", rule_hincrbyfloat},
    {"hsetnx", rule_hsetnx},
    {"incrbyfloat", rule_incrbyfloat},
    {"lmove", rule_list_move},
    {"lmpop", rule_list_mpop},
    {"lpop", rule_list_pop},
    {"lpushx", rule_unless_zero},
    {"migrate", rule_migrate},
    {"move", rule_unless_zero},
    {"msetnx", rule_msetnx},
    {"persist", rule_unless_zero},
    {"pexpire", rule_expire},
    {"pexpireat", rule_expireat},
    {"pfcount", rule_pfcount},
    {"psetex", rule_setex},
    {"renamenx", rule_renamenx},
    {"restore", rule_restore},
    {"restore-asking", rule_restore},
    {"rpop", rule_list_pop},
    {"rpoplpush", rule_list_move},
    {"rpushx", rule_unless_zero},
    {"set", rule_set},
    {"setex", rule_setex},
    {"setnx", rule_setnx},
    {"smove", rule_unless_zero},
    {"sort", rule_sort},
    {"spop", rule_spop},
    {"unlink", rule_unless_zero},
    {"xadd", rule_xadd},
    {"xautoclaim", rule_copy_keys},
    {"xclaim", rule_copy_keys},
    {"xgroup|create", rule_xgroup_id},
    {"xgroup|setid", rule_xgroup_id},
    {"xreadgroup", rule_xreadgroup},
    {"zadd", rule_zadd},
    {"zmpop", rule_zset_mpop},
    {"zpopmax", rule_zset_pop},
    {"zpopmin", rule_zset_pop},
});
static_assert(std::ranges::is_sorted(rules, {}, &named_rule::name));

rule find_rule(std::string_view name) noexcept {
    const auto it = std::ranges::lower_bound(rules, name, {}, &named_rule::name);
    return it != rules.end() && it->name == name ? it->apply : nullptr;
}

bool is_script(std::string_view name) noexcept {
    return name == "eval" || name == "evalsha" || name == "fcall";
}

bool is_publish(std::string_view name) noexcept {
    return name == "publish" || name == "spublish";
}

// SCRIPT FLUSH and SCRIPT LOAD change what EVALSHA finds without the write flag.
bool is_script_cache_write(std::string_view name) noexcept {
    return name == "script|flush" || name == "script|load";
}

void add_key(std::vector<std::string>& keys, std::string_view key) {
    if (std::ranges::find(keys, key) == keys.end())
        keys.emplace_back(key);
}

// EVAL/EVALSHA/FCALL. A script that failed may have written before the error (scripts do not
// roll back), so its KEYS are copied rather than nothing applied.
void translate_script(const primary_command& c, secondary_write& out) {
    if (c.reply.is_error() || c.ctx.copy_scripts) {
        if (!c.key_at.empty())
            return cannot_derive(out);
        if (c.reply.is_error())
            return;  // nothing to copy; undeclared keys are beyond reach
    }
    auto* scripts = c.ctx.scripts;
    const std::string_view name = c.args[0];
    if (scripts != nullptr && c.args.size() > 1 && iequals(name, "eval")) {
        scripts->remember(c.args[1]);
    } else if (scripts != nullptr && c.args.size() > 1 && iequals(name, "evalsha")) {
        if (auto body = scripts->find(c.args[1])) {
            // The follower may not have the script (restarted, flushed, its SCRIPT LOAD on
            // another lane): the body runs it anyway.
            command eval = verbatim(c.args);
            eval[0] = "EVAL";
            eval[1] = std::move(*body);
            out.commands.push_back(std::move(eval));
            out.global = c.key_at.empty();
            return;
        }
    }
    out.commands.push_back(verbatim(c.args));
    // Without KEYS the script may touch anything: order it against every lane.
    out.global = c.key_at.empty();
}

}  // namespace

bool is_replayable_write(const commands::command_spec* spec) noexcept {
    if (spec == nullptr)
        return true;
    const std::string_view name = spec->name;
    return commands::is_write(*spec) || is_publish(name) || is_script(name) ||
           is_script_cache_write(name) || name == "pfcount";
}

bool reply_independent(std::span<const std::string_view> args,
                       const commands::command_table& table) noexcept {
    return !args.empty() && reply_independent(table.lookup(args), args);
}

bool reply_independent(const commands::command_spec* spec,
                       std::span<const std::string_view> args) noexcept {
    if (args.empty() || spec == nullptr || !is_replayable_write(spec) ||
        commands::has_flag(*spec, commands::flag::has_subcommands))
        return false;
    const std::string_view name = spec->name;
    // A plain SET k v sets whatever the reply (its rule only rewrites options): the most common
    // write of all stays on the fast path.
    if (name == "set" && args.size() == 3)
        return true;
    if (is_script(name) || is_publish(name) || find_rule(name) != nullptr)
        return false;
    // Keyless writes (FLUSHALL, SCRIPT LOAD ...) are ordered against every lane: slow path.
    return spec->first_key > 0 && !commands::has_movable_keys(*spec);
}

merge_hint merge_hint_of(const commands::command_spec* spec,
                         std::span<const std::string_view> args) noexcept {
    if (spec == nullptr || args.size() < 2)
        return {};
    const std::string_view name = spec->name;
    // SET k v and MSET k v ...: set the value, drop any TTL, whatever the type was.
    if (name == "set")
        return args.size() == 3 ? merge_hint{1, "MSET"} : merge_hint{};
    // Variadic writes of one key whose arguments apply one after another, with no options:
    // the sequence on one key is the one command with the arguments joined.
    if (args.size() >= 3 &&
        (name == "lpush" || name == "rpush" || name == "sadd" || name == "srem" || name == "hdel" ||
         (name == "hset" && args.size() % 2 == 0)))
        return {2, {}};
    return {};
}

secondary_write translate(std::span<const std::string_view> args, const resp::value& reply,
                          const effect_context& ctx) {
    secondary_write out;
    if (args.empty())
        return out;
    const auto& table = ctx.table != nullptr ? *ctx.table : commands::command_table::builtin();
    const commands::command_spec* spec = table.lookup(args);
    if (spec == nullptr) {
        // Unknown to the table: we cannot tell what it touches, so it runs as written, in order
        // with everything.
        if (!reply.is_error()) {
            out.commands.push_back(verbatim(args));
            out.global = true;
        }
        return out;
    }
    const std::string_view name = spec->name;
    std::vector<std::size_t> key_at;
    const bool keys_known = table.key_positions(*spec, args, key_at);
    if (is_publish(name) && args.size() > 1) {
        key_at.assign({1});  // the channel: one lane per channel keeps messages in order
    }
    for (auto i : key_at)
        add_key(out.keys, args[i]);

    if (!is_replayable_write(spec))
        return out;
    const primary_command c{args, reply, ctx, key_at};
    if (is_script(name)) {
        translate_script(c, out);
        return out;
    }
    if (reply.is_error())
        return out;
    if (ctx.scripts != nullptr && name == "script|load" && args.size() > 2)
        ctx.scripts->remember(args[2]);
    else if (ctx.scripts != nullptr && name == "script|flush")
        ctx.scripts->clear();
    bool same_reply = false;
    if (const rule apply = find_rule(name)) {
        apply(c, out);
        // Not DEL/UNLINK: a key deleted on one side and expired on the other counts
        // differently, and both end without it.
        same_reply = (apply == rule_unless_zero && name != "del" && name != "unlink") ||
                     apply == rule_expire || apply == rule_expireat || apply == rule_hsetnx;
    } else {
        out.commands.push_back(verbatim(args));
        // FLUSHALL, SWAPDB, FUNCTION LOAD, SCRIPT FLUSH, ...: no key, so no lane of their own.
        out.global = !keys_known || key_at.empty();
        // PUBLISH counts the receivers, which differ between the sides.
        same_reply = !out.global && !is_publish(name);
    }
    if (same_reply && out.commands.size() == 1 && !out.copy && reply.type() == resp::type::integer)
        out.expect_reply = reply.integer();
    if (out.none())
        out.global = false;
    return out;
}

secondary_write translate_transaction(const std::vector<std::vector<std::string>>& queued,
                                      const resp::value& exec_reply, const effect_context& ctx) {
    secondary_write out;
    const bool ran = exec_reply.is_aggregate() && exec_reply.elements().size() == queued.size();
    std::vector<std::string_view> args;
    const auto not_run = resp::value::simple_error("ERR not run");
    for (std::size_t i = 0; i < queued.size(); ++i) {
        args.assign(queued[i].begin(), queued[i].end());
        // An aborted EXEC (nil, EXECABORT) ran nothing; the keys are still listed.
        const resp::value& reply = ran ? exec_reply[i] : not_run;
        auto one = translate(args, reply, ctx);
        for (auto& k : one.keys)
            add_key(out.keys, k);
        for (auto& command : one.commands) {
            out.commands.push_back(std::move(command));
            out.expect_replies.push_back(one.expect_reply);
        }
        out.copy = out.copy || one.copy;
        out.global = out.global || one.global;
    }
    // EXEC answered, but not with one reply per queued command: we cannot tell what ran.
    if (!ran && !exec_reply.is_null() && !exec_reply.is_error() && !out.keys.empty()) {
        out.commands.clear();
        out.global = false;
        out.copy = true;
    }
    if (out.commands.empty() ||
        std::ranges::none_of(out.expect_replies, [](const auto& e) { return e.has_value(); }))
        out.expect_replies.clear();
    return out;
}

}  // namespace respite::proxy
