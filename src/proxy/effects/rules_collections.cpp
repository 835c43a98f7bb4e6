// Effect rules for pops and moves: the secondary removes exactly the members the primary
// returned, so a lagging or diverged secondary never loses different ones.
#include "rules.hpp"

namespace respite::proxy::effects_detail {

namespace {

// LREM count that removes one occurrence from the end the element was popped from.
std::string_view lrem_count(bool from_left) {
    return from_left ? "1" : "-1";
}

// One LREM per popped element, in pop order: each removes the element now at that end.
void remove_from_list(std::string_view key, bool from_left, const resp::value& elements,
                      secondary_write& out) {
    for (const auto& e : elements.elements()) {
        const auto* text = reply_text(e);
        if (text == nullptr)
            return cannot_derive(out);
        out.commands.push_back(make({"LREM", key, lrem_count(from_left), *text}));
    }
}

// ZPOPMIN/ZPOPMAX replies: flat member, score, ... (RESP2, and RESP3 without a count) or
// [member, score] pairs (RESP3 with a count, and ZMPOP in both protocols).
void remove_from_zset(std::string_view key, const resp::value& popped, secondary_write& out) {
    const auto& items = popped.elements();
    if (items.empty())
        return;
    command zrem = make({"ZREM", key});
    const bool pairs = items.front().is_aggregate();
    for (std::size_t i = 0; i < items.size(); i += pairs ? 1 : 2) {
        const auto& member =
            pairs ? (items[i].elements().empty() ? items[i] : items[i][0]) : items[i];
        const auto* text = reply_text(member);
        if (text == nullptr)
            return cannot_derive(out);
        zrem.push_back(*text);
    }
    out.commands.push_back(std::move(zrem));
}

// [key, elements] from LMPOP/BLMPOP/ZMPOP/BZMPOP; a RESP3 map with one entry is read the same.
bool key_and_elements(const resp::value& reply, const std::string*& key,
                      const resp::value*& elements) {
    if (!reply.is_aggregate() || reply.elements().size() != 2)
        return false;
    key = reply_text(reply[0]);
    elements = &reply[1];
    return key != nullptr && elements->is_aggregate();
}

}  // namespace

// SPOP k [count] -> SREM k members.
void rule_spop(const primary_command& c, secondary_write& out) {
    const auto& r = c.reply;
    if (r.is_null())
        return;
    command srem = make({"SREM", c.args[1]});
    if (const auto* text = reply_text(r)) {
        srem.push_back(*text);
    } else if (r.is_aggregate()) {
        if (r.elements().empty())
            return;
        for (const auto& e : r.elements()) {
            const auto* member = reply_text(e);
            if (member == nullptr)
                return cannot_derive(out);
            srem.push_back(*member);
        }
    } else {
        return cannot_derive(out);
    }
    out.commands.push_back(std::move(srem));
}

// LPOP/RPOP k [count] -> LREM k 1 e (LPOP) or LREM k -1 e (RPOP) per element, in order.
void rule_list_pop(const primary_command& c, secondary_write& out) {
    const bool left = iequals(c.args[0], "lpop");
    const auto& r = c.reply;
    if (r.is_null())
        return;
    if (const auto* text = reply_text(r))
        return out.commands.push_back(make({"LREM", c.args[1], lrem_count(left), *text}));
    if (!r.is_aggregate())
        return cannot_derive(out);
    remove_from_list(c.args[1], left, r, out);
}

// LMPOP numkeys k... LEFT|RIGHT [COUNT n] / BLMPOP timeout numkeys ...: the direction follows
// the last key; the reply names the key popped from.
void rule_list_mpop(const primary_command& c, secondary_write& out) {
    if (c.reply.is_null())
        return;
    const std::string* key = nullptr;
    const resp::value* elements = nullptr;
    const std::size_t where = c.key_at.empty() ? 0 : c.key_at.back() + 1;
    if (where == 0 || where >= c.args.size() || !key_and_elements(c.reply, key, elements))
        return cannot_derive(out);
    remove_from_list(*key, iequals(c.args[where], "left"), *elements, out);
}

// BLPOP/BRPOP k... timeout -> [key, element].
void rule_list_bpop(const primary_command& c, secondary_write& out) {
    const auto& r = c.reply;
    if (r.is_null())
        return;
    if (!r.is_aggregate() || r.elements().size() != 2)
        return cannot_derive(out);
    const auto* key = reply_text(r[0]);
    const auto* element = reply_text(r[1]);
    if (key == nullptr || element == nullptr)
        return cannot_derive(out);
    out.commands.push_back(make({"LREM", *key, lrem_count(iequals(c.args[0], "blpop")), *element}));
}

// ZPOPMIN/ZPOPMAX k [count] -> ZREM k members.
void rule_zset_pop(const primary_command& c, secondary_write& out) {
    if (c.reply.is_null())
        return;
    if (!c.reply.is_aggregate())
        return cannot_derive(out);
    remove_from_zset(c.args[1], c.reply, out);
}

// ZMPOP/BZMPOP -> [key, [[member, score], ...]].
void rule_zset_mpop(const primary_command& c, secondary_write& out) {
    if (c.reply.is_null())
        return;
    const std::string* key = nullptr;
    const resp::value* elements = nullptr;
    if (!key_and_elements(c.reply, key, elements))
        return cannot_derive(out);
    remove_from_zset(*key, *elements, out);
}

// BZPOPMIN/BZPOPMAX k... timeout -> [key, member, score].
void rule_zset_bpop(const primary_command& c, secondary_write& out) {
    const auto& r = c.reply;
    if (r.is_null())
        return;
    if (!r.is_aggregate() || r.elements().size() != 3)
        return cannot_derive(out);
    const auto* key = reply_text(r[0]);
    const auto* member = reply_text(r[1]);
    if (key == nullptr || member == nullptr)
        return cannot_derive(out);
    out.commands.push_back(make({"ZREM", *key, *member}));
}

// LMOVE/BLMOVE src dst from to, RPOPLPUSH/BRPOPLPUSH src dst (RIGHT, LEFT) -> push the element
// onto dst, then LREM it from src's `from` end. Pushing first matters when src == dst: the key
// never empties in between, so it keeps its TTL as it does on the primary; the LREM then skips
// the copy just pushed because it counts from the other end — or, when both ends are the same,
// removes one of two equal neighbours. Either way the list is exactly the primary's.
void rule_list_move(const primary_command& c, secondary_write& out) {
    const auto* element = reply_text(c.reply);
    if (c.reply.is_null())
        return;
    if (element == nullptr)
        return cannot_derive(out);
    bool from_left = false;
    bool to_left = true;
    if (iequals(c.args[0], "lmove") || iequals(c.args[0], "blmove")) {
        if (c.args.size() < 5)
            return cannot_derive(out);
        from_left = iequals(c.args[3], "left");
        to_left = iequals(c.args[4], "left");
    }
    out.commands.push_back(make({to_left ? "LPUSH" : "RPUSH", c.args[2], *element}));
    out.commands.push_back(make({"LREM", c.args[1], lrem_count(from_left), *element}));
}

}  // namespace respite::proxy::effects_detail
