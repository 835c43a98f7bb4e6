// Effect rules for strings, TTLs and conditional writes: relative times become absolute, and a
// conditional write is replayed, unconditionally, only when the reply says it took effect.
#include <string>

#include "rules.hpp"

namespace respite::proxy::effects_detail {

namespace {

std::string decimal(std::int64_t n) {
    return std::to_string(n);
}

bool reply_is(const resp::value& reply, std::int64_t expected) {
    std::int64_t n = 0;
    return reply_int(reply, n) && n == expected;
}

}  // namespace

// SET k v [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]. Once we know the value was set the
// condition is dropped, so a secondary that lags or diverged still ends with the primary's value.
void rule_set(const primary_command& c, secondary_write& out) {
    enum class condition { none, nx, xx } cond = condition::none;
    bool get = false;
    std::string_view expiry;  // "EX", "PX", "EXAT", "PXAT", "KEEPTTL" or empty (last one wins)
    std::string_view amount;
    const auto& a = c.args;
    if (a.size() < 3)
        return cannot_derive(out);
    for (std::size_t i = 3; i < a.size(); ++i) {
        if (iequals(a[i], "nx")) {
            cond = condition::nx;
        } else if (iequals(a[i], "xx")) {
            cond = condition::xx;
        } else if (iequals(a[i], "get")) {
            get = true;
        } else if (iequals(a[i], "keepttl")) {
            expiry = a[i];
        } else if ((iequals(a[i], "ex") || iequals(a[i], "px") || iequals(a[i], "exat") ||
                    iequals(a[i], "pxat")) &&
                   i + 1 < a.size()) {
            expiry = a[i];
            amount = a[++i];
        } else {
            return cannot_derive(out);  // the primary accepted what we cannot read
        }
    }
    bool applied = true;
    if (cond != condition::none) {
        // Without GET the reply is OK or nil. With GET it is the old value: NX sets only when
        // there was none (nil), XX only when there was one (non-nil).
        if (!get)
            applied = !c.reply.is_null();
        else
            applied = (cond == condition::nx) == c.reply.is_null();
    }
    if (!applied)
        return;
    command set = make({"SET", a[1], a[2]});
    if (iequals(expiry, "ex") || iequals(expiry, "px")) {
        std::int64_t n = 0;
        std::int64_t at = 0;
        if (!parse_int(amount, n) ||
            !absolute_ms(c.ctx.now_ms, n, iequals(expiry, "ex") ? 1000 : 1, at))
            return cannot_derive(out);
        set.insert(set.end(), {"PXAT", decimal(at)});
    } else if (iequals(expiry, "exat") || iequals(expiry, "pxat")) {
        set.insert(set.end(), {std::string(expiry), std::string(amount)});
    } else if (iequals(expiry, "keepttl")) {
        set.emplace_back("KEEPTTL");
    }
    out.commands.push_back(std::move(set));
}

// SETEX k s v / PSETEX k ms v -> SET k v PXAT abs.
void rule_setex(const primary_command& c, secondary_write& out) {
    std::int64_t n = 0;
    std::int64_t at = 0;
    const std::int64_t unit = iequals(c.args[0], "setex") ? 1000 : 1;
    if (c.args.size() != 4 || !parse_int(c.args[2], n) || !absolute_ms(c.ctx.now_ms, n, unit, at))
        return cannot_derive(out);
    out.commands.push_back(make({"SET", c.args[1], c.args[3], "PXAT", decimal(at)}));
}

void rule_setnx(const primary_command& c, secondary_write& out) {
    if (reply_is(c.reply, 1))
        out.commands.push_back(make({"SET", c.args[1], c.args[2]}));
}

void rule_msetnx(const primary_command& c, secondary_write& out) {
    if (!reply_is(c.reply, 1))
        return;
    command mset = verbatim(c.args);
    mset[0] = "MSET";
    out.commands.push_back(std::move(mset));
}

void rule_hsetnx(const primary_command& c, secondary_write& out) {
    if (reply_is(c.reply, 1))
        out.commands.push_back(make({"HSET", c.args[1], c.args[2], c.args[3]}));
}

void rule_renamenx(const primary_command& c, secondary_write& out) {
    if (reply_is(c.reply, 1))
        out.commands.push_back(make({"RENAME", c.args[1], c.args[2]}));
}

void rule_getdel(const primary_command& c, secondary_write& out) {
    if (!c.reply.is_null())
        out.commands.push_back(make({"DEL", c.args[1]}));
}

// GETEX k [EX s|PX ms|EXAT s|PXAT ms|PERSIST]: only the TTL change is a write; nil means no key.
void rule_getex(const primary_command& c, secondary_write& out) {
    if (c.reply.is_null())
        return;
    std::string_view option;
    std::string_view amount;
    const auto& a = c.args;
    for (std::size_t i = 2; i < a.size(); ++i) {
        if (iequals(a[i], "persist")) {
            option = a[i];
        } else if (i + 1 < a.size()) {
            option = a[i];
            amount = a[++i];
        } else {
            return cannot_derive(out);
        }
    }
    if (option.empty())
        return;
    if (iequals(option, "persist"))
        return out.commands.push_back(make({"PERSIST", a[1]}));
    std::int64_t n = 0;
    std::int64_t at = 0;
    if (!parse_int(amount, n))
        return cannot_derive(out);
    if (iequals(option, "exat"))
        return out.commands.push_back(make({"EXPIREAT", a[1], amount}));
    if (iequals(option, "pxat"))
        return out.commands.push_back(make({"PEXPIREAT", a[1], amount}));
    if (!(iequals(option, "ex") || iequals(option, "px")) ||
        !absolute_ms(c.ctx.now_ms, n, iequals(option, "ex") ? 1000 : 1, at))
        return cannot_derive(out);
    out.commands.push_back(make({"PEXPIREAT", a[1], decimal(at)}));
}

// EXPIRE/PEXPIRE k t [NX|XX|GT|LT] -> PEXPIREAT k abs when the reply is 1. A non-positive t
// deleted the key; a PEXPIREAT in the past deletes it too.
void rule_expire(const primary_command& c, secondary_write& out) {
    if (!reply_is(c.reply, 1))
        return;
    std::int64_t n = 0;
    std::int64_t at = 0;
    const std::int64_t unit = iequals(c.args[0], "expire") ? 1000 : 1;
    if (!parse_int(c.args[2], n) || !absolute_ms(c.ctx.now_ms, n, unit, at))
        return cannot_derive(out);
    out.commands.push_back(make({"PEXPIREAT", c.args[1], decimal(at)}));
}

// EXPIREAT/PEXPIREAT k t [NX|XX|GT|LT]: already absolute; the condition held, so drop it.
void rule_expireat(const primary_command& c, secondary_write& out) {
    if (reply_is(c.reply, 1))
        out.commands.push_back(make({c.args[0], c.args[1], c.args[2]}));
}

// COPY src dst [DB n] [REPLACE]: dst did not exist on the primary (or was replaced), so REPLACE
// makes the secondary converge even if it had a stale dst.
void rule_copy(const primary_command& c, secondary_write& out) {
    if (!reply_is(c.reply, 1))
        return;
    command copy = verbatim(c.args);
    bool replace = false;
    for (std::size_t i = 3; i < c.args.size(); ++i)
        replace = replace || iequals(c.args[i], "replace");
    if (!replace)
        copy.emplace_back("REPLACE");
    out.commands.push_back(std::move(copy));
}

// RESTORE k ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]: a relative ttl becomes ABSTTL.
void rule_restore(const primary_command& c, secondary_write& out) {
    command restore = verbatim(c.args);
    std::int64_t ttl = 0;
    if (!parse_int(c.args[2], ttl))
        return cannot_derive(out);
    bool abs = false;
    for (std::size_t i = 4; i < c.args.size(); ++i)
        abs = abs || iequals(c.args[i], "absttl");
    if (ttl != 0 && !abs) {
        std::int64_t at = 0;
        if (!absolute_ms(c.ctx.now_ms, ttl, 1, at))
            return cannot_derive(out);
        restore[2] = decimal(at);
        restore.emplace_back("ABSTTL");
    }
    out.commands.push_back(std::move(restore));
}

// Float formatting differs between servers (and versions), so store the primary's text.
void rule_incrbyfloat(const primary_command& c, secondary_write& out) {
    const auto* text = reply_text(c.reply);
    if (text == nullptr)
        return cannot_derive(out);
    out.commands.push_back(make({"SET", c.args[1], *text, "KEEPTTL"}));
}

void rule_hincrbyfloat(const primary_command& c, secondary_write& out) {
    const auto* text = reply_text(c.reply);
    if (text == nullptr)
        return cannot_derive(out);
    out.commands.push_back(make({"HSET", c.args[1], c.args[2], *text}));
}

// MIGRATE moved the keys elsewhere: without COPY they are gone from the primary, so delete them.
void rule_migrate(const primary_command& c, secondary_write& out) {
    const auto* text = reply_text(c.reply);
    if (text == nullptr || !iequals(*text, "ok"))
        return;  // NOKEY: nothing moved
    for (std::size_t i = 6; i < c.args.size(); ++i) {
        if (iequals(c.args[i], "copy"))
            return;
        if (iequals(c.args[i], "keys"))
            break;
        if (iequals(c.args[i], "auth"))
            i += 1;
        else if (iequals(c.args[i], "auth2"))
            i += 2;
    }
    command del = make({"DEL"});
    for (auto k : c.key_at)
        del.emplace_back(c.args[k]);
    out.commands.push_back(std::move(del));
}

// ZADD k [NX|XX] [GT|LT] [CH] [INCR] score m ...: deterministic on equal state whatever the
// flags, so it is replayed verbatim. It is skipped only when the reply proves nothing changed:
// CH with 0 (no member added or updated) or INCR with nil (the condition refused). Without CH a
// 0 still allows updated scores.
void rule_zadd(const primary_command& c, secondary_write& out) {
    bool ch = false;
    bool incr = false;
    for (std::size_t i = 2; i < c.args.size(); ++i) {
        const auto a = c.args[i];
        if (iequals(a, "ch"))
            ch = true;
        else if (iequals(a, "incr"))
            incr = true;
        else if (!iequals(a, "nx") && !iequals(a, "xx") && !iequals(a, "gt") && !iequals(a, "lt"))
            break;
    }
    if (incr && c.reply.is_null())
        return;
    if (ch && !incr && reply_is(c.reply, 0))
        return;
    out.commands.push_back(verbatim(c.args));
}

// DEL, UNLINK, LPUSHX, RPUSHX, SMOVE, MOVE, PERSIST: deterministic; 0 means nothing happened.
void rule_unless_zero(const primary_command& c, secondary_write& out) {
    if (!reply_is(c.reply, 0))
        out.commands.push_back(verbatim(c.args));
}

// GEORADIUS, GEORADIUSBYMEMBER: writes only with a STORE destination (a second key).
void rule_when_storing(const primary_command& c, secondary_write& out) {
    if (c.key_at.size() > 1)
        out.commands.push_back(verbatim(c.args));
}

// SORT ... STORE: replayed as written, unless a BY or GET pattern reads other keys (one with a
// `*`; `#` is the element itself). Those keys are neither in its lane nor begun, so on the
// secondary SORT would read them before or after other writes than on the primary: the
// destination is copied instead.
void rule_sort(const primary_command& c, secondary_write& out) {
    if (c.key_at.size() < 2)
        return;  // no STORE: a read
    for (std::size_t i = 2; i < c.args.size();) {
        const auto a = c.args[i];
        if ((iequals(a, "by") || iequals(a, "get")) && i + 1 < c.args.size()) {
            const auto pattern = c.args[i + 1];
            if (pattern != "#" && pattern.find('*') != std::string_view::npos) {
                cannot_derive(out);
                return;
            }
            i += 2;
        } else if (iequals(a, "limit")) {
            i += 3;
        } else if (iequals(a, "store")) {
            i += 2;
        } else {
            ++i;
        }
    }
    out.commands.push_back(verbatim(c.args));
}

// PFCOUNT of one key caches the cardinality inside the HyperLogLog's bytes (Redis propagates it
// to replicas for that reason); replaying it keeps the two values byte-identical.
void rule_pfcount(const primary_command& c, secondary_write& out) {
    if (c.args.size() == 2)
        out.commands.push_back(verbatim(c.args));
}

}  // namespace respite::proxy::effects_detail
