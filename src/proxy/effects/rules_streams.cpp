// Effect rules for streams: generated IDs are pinned to the primary's, and consumer-group moves
// the reply cannot describe are copied.
#include "rules.hpp"

namespace respite::proxy::effects_detail {

namespace {

// The index of XADD's ID argument, skipping options as Redis's streamParseAddOrTrimArgsOrReply
// does: NOMKSTREAM, MAXLEN|MINID [=|~] threshold, LIMIT count, in any order.
std::size_t xadd_id_at(args_t a) {
    std::size_t i = 2;
    while (i < a.size()) {
        const bool more = i + 1 < a.size();
        if (a[i] == "*")
            return i;
        if ((iequals(a[i], "maxlen") || iequals(a[i], "minid")) && more) {
            ++i;
            if (i + 1 < a.size() && (a[i] == "~" || a[i] == "="))
                ++i;
            ++i;
        } else if (iequals(a[i], "limit") && more) {
            i += 2;
        } else if (iequals(a[i], "nomkstream")) {
            ++i;
        } else {
            return i;
        }
    }
    return a.size();
}

}  // namespace

// XADD k [NOMKSTREAM] [MAXLEN|MINID [=|~] n [LIMIT c]] *|ms-*|id field value ... -> the same with
// the generated ID replaced by the one the primary returned. Approximate trimming (~) is kept:
// it cuts whole radix-tree nodes, the same ones on both servers as long as they share
// stream-node-max-entries/-bytes and the stream's history.
void rule_xadd(const primary_command& c, secondary_write& out) {
    if (c.reply.is_null())
        return;  // NOMKSTREAM on a missing stream: nothing added
    const std::size_t at = xadd_id_at(c.args);
    const auto* id = reply_text(c.reply);
    if (at >= c.args.size() || id == nullptr)
        return cannot_derive(out);
    command xadd = verbatim(c.args);
    const auto given = c.args[at];
    if (given == "*" || given.ends_with("-*"))
        xadd[at] = *id;
    out.commands.push_back(std::move(xadd));
}

// XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS k... id...: delivering entries moves
// the group's last ID and PEL with the primary's delivery times, which the reply does not carry,
// so the streams are copied. A nil reply served nothing: Redis 7.0 creates the consumer only when
// it serves a stream (checked against redis-server 7.0.15), so there is nothing to apply.
void rule_xreadgroup(const primary_command& c, secondary_write& out) {
    if (!c.reply.is_null())
        cannot_derive(out);
}

// XGROUP CREATE k g id|$ ... / XGROUP SETID k g id|$ ...: `$` means the stream's last ID on the
// primary, which the reply (OK) does not say.
void rule_xgroup_id(const primary_command& c, secondary_write& out) {
    if (c.args.size() < 5 || c.args[4] == "$")
        return cannot_derive(out);
    out.commands.push_back(verbatim(c.args));
}

// XCLAIM, XAUTOCLAIM: which entries move depends on idle times measured on the primary.
void rule_copy_keys(const primary_command&, secondary_write& out) {
    cannot_derive(out);
}

}  // namespace respite::proxy::effects_detail
