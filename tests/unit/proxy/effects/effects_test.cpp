// translate(): every rule of the effect table, with RESP2 and RESP3 reply shapes.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <respite/proxy/effects.hpp>

namespace {

using respite::proxy::effect_context;
using respite::proxy::merge_hint_of;
using respite::proxy::reply_independent;
using respite::proxy::secondary_write;
using respite::proxy::translate;
using respite::resp::null_kind;
using respite::resp::value;
using commands_t = std::vector<std::vector<std::string>>;
using keys_t = std::vector<std::string>;

constexpr std::int64_t now = 1'700'000'000'000;

value ok() {
    return value::simple_string("OK");
}
value nil2() {
    return value::null(null_kind::bulk);
}
value nil2_array() {
    return value::null(null_kind::array);
}
value nil3() {
    return value::null(null_kind::resp3);
}
value num(std::int64_t n) {
    return value::integer(n);
}
value bulk(std::string s) {
    return value::bulk_string(std::move(s));
}
value dbl(double d) {
    return value::double_(d);
}
value err(std::string s) {
    return value::simple_error(std::move(s));
}
value arr(std::vector<value> v) {
    return value::array(std::move(v));
}
value bulks(std::initializer_list<std::string_view> items) {
    std::vector<value> v;
    for (auto s : items)
        v.push_back(bulk(std::string(s)));
    return arr(std::move(v));
}

struct effect_case {
    std::string name;
    std::vector<std::string> args;
    value reply;
    commands_t commands;
    keys_t keys;
    bool copy = false;
    bool global = false;
    bool copy_scripts = false;
};

std::ostream& operator<<(std::ostream& os, const effect_case& c) {
    return os << c.name;
}

secondary_write run(const effect_case& c) {
    const std::vector<std::string_view> args(c.args.begin(), c.args.end());
    effect_context ctx;
    ctx.now_ms = now;
    ctx.copy_scripts = c.copy_scripts;
    return translate(args, c.reply, ctx);
}

class translate_table : public ::testing::TestWithParam<effect_case> {};

TEST_P(translate_table, effect) {
    const auto& c = GetParam();
    const auto out = run(c);
    EXPECT_EQ(out.commands, c.commands);
    EXPECT_EQ(out.keys, c.keys);
    EXPECT_EQ(out.copy, c.copy);
    EXPECT_EQ(out.global, c.global);
    EXPECT_EQ(out.none(), c.commands.empty() && !c.copy);
}

std::string name_of(const ::testing::TestParamInfo<effect_case>& info) {
    return info.param.name;
}

// Deterministic writes go through as written.
INSTANTIATE_TEST_SUITE_P(
    verbatim, translate_table,
    ::testing::Values(
        effect_case{"set", {"SET", "k", "v"}, ok(), {{"SET", "k", "v"}}, {"k"}},
        effect_case{"del_some", {"DEL", "a", "b"}, num(1), {{"DEL", "a", "b"}}, {"a", "b"}},
        effect_case{"del_none", {"DEL", "a"}, num(0), {}, {"a"}},
        effect_case{"unlink_none", {"unlink", "a", "b"}, num(0), {}, {"a", "b"}},
        effect_case{"hset", {"HSET", "h", "f", "v"}, num(1), {{"HSET", "h", "f", "v"}}, {"h"}},
        effect_case{"lpush_keeps_case",
                    {"lpush", "l", "a", "b"},
                    num(2),
                    {{"lpush", "l", "a", "b"}},
                    {"l"}},
        effect_case{
            "mset", {"MSET", "a", "1", "b", "2"}, ok(), {{"MSET", "a", "1", "b", "2"}}, {"a", "b"}},
        effect_case{"mset_same_key_listed_once",
                    {"MSET", "a", "1", "a", "2"},
                    ok(),
                    {{"MSET", "a", "1", "a", "2"}},
                    {"a"}},
        effect_case{"incr", {"INCR", "n"}, num(5), {{"INCR", "n"}}, {"n"}},
        effect_case{"append", {"APPEND", "k", "x"}, num(3), {{"APPEND", "k", "x"}}, {"k"}},
        effect_case{"rename", {"RENAME", "a", "b"}, ok(), {{"RENAME", "a", "b"}}, {"a", "b"}},
        effect_case{"getset", {"GETSET", "k", "v"}, nil3(), {{"GETSET", "k", "v"}}, {"k"}},
        effect_case{"zincrby_resp3",
                    {"ZINCRBY", "z", "1.5", "m"},
                    dbl(2.5),
                    {{"ZINCRBY", "z", "1.5", "m"}},
                    {"z"}},
        effect_case{"sort_store",
                    {"SORT", "src", "ALPHA", "LIMIT", "0", "5", "STORE", "dst"},
                    num(3),
                    {{"SORT", "src", "ALPHA", "LIMIT", "0", "5", "STORE", "dst"}},
                    {"src", "dst"}},
        // Patterns without `*` (nosort, #) read no other key.
        effect_case{"sort_store_nosort",
                    {"SORT", "src", "BY", "nosort", "GET", "#", "STORE", "dst"},
                    num(3),
                    {{"SORT", "src", "BY", "nosort", "GET", "#", "STORE", "dst"}},
                    {"src", "dst"}},
        // BY/GET patterns read keys outside the command's lanes: the result is copied.
        effect_case{"sort_store_by_pattern_is_copied",
                    {"sort", "src", "by", "w_*", "STORE", "dst"},
                    num(3),
                    {},
                    {"src", "dst"},
                    true},
        effect_case{"sort_store_get_pattern_is_copied",
                    {"SORT", "src", "GET", "#", "GET", "h_*->f", "STORE", "dst"},
                    num(3),
                    {},
                    {"src", "dst"},
                    true},
        // A destination named like an option is not a pattern.
        effect_case{"sort_store_into_a_key_named_by",
                    {"SORT", "src", "STORE", "by"},
                    num(3),
                    {{"SORT", "src", "STORE", "by"}},
                    {"src", "by"}},
        effect_case{
            "sort_without_store_is_a_read", {"SORT", "src"}, bulks({"1", "2"}), {}, {"src"}},
        effect_case{"georadius_store",
                    {"GEORADIUS", "g", "15", "37", "200", "km", "STORE", "dst"},
                    num(2),
                    {{"GEORADIUS", "g", "15", "37", "200", "km", "STORE", "dst"}},
                    {"g", "dst"}},
        effect_case{"georadius_without_store_is_a_read",
                    {"GEORADIUS", "g", "15", "37", "200", "km"},
                    bulks({"a"}),
                    {},
                    {"g"}},
        effect_case{"publish_channel_is_the_lane",
                    {"PUBLISH", "news", "hello"},
                    num(2),
                    {{"PUBLISH", "news", "hello"}},
                    {"news"}},
        effect_case{
            "spublish", {"SPUBLISH", "news", "hi"}, num(0), {{"SPUBLISH", "news", "hi"}}, {"news"}},
        effect_case{"pfadd", {"PFADD", "h", "a"}, num(1), {{"PFADD", "h", "a"}}, {"h"}},
        effect_case{"pfcount_one_key_rewrites_its_cache",
                    {"PFCOUNT", "h"},
                    num(1),
                    {{"PFCOUNT", "h"}},
                    {"h"}},
        effect_case{
            "pfcount_many_keys_is_a_read", {"PFCOUNT", "h1", "h2"}, num(1), {}, {"h1", "h2"}},
        effect_case{"xtrim",
                    {"XTRIM", "s", "MAXLEN", "~", "10"},
                    num(0),
                    {{"XTRIM", "s", "MAXLEN", "~", "10"}},
                    {"s"}},
        effect_case{"xdel", {"XDEL", "s", "1-0"}, num(1), {{"XDEL", "s", "1-0"}}, {"s"}},
        effect_case{"xack", {"XACK", "s", "g", "1-0"}, num(1), {{"XACK", "s", "g", "1-0"}}, {"s"}},
        effect_case{"xsetid", {"XSETID", "s", "5-0"}, ok(), {{"XSETID", "s", "5-0"}}, {"s"}}),
    name_of);

// Error replies apply nothing; reads apply nothing; both still name their keys.
INSTANTIATE_TEST_SUITE_P(
    errors_and_reads, translate_table,
    ::testing::Values(
        effect_case{"set_wrongtype",
                    {"SET", "k", "v", "GET"},
                    err("WRONGTYPE Operation against a key holding the wrong kind of value"),
                    {},
                    {"k"}},
        effect_case{"lpop_blob_error", {"LPOP", "k"}, value::blob_error("ERR boom"), {}, {"k"}},
        effect_case{
            "incr_not_an_integer", {"INCR", "k"}, err("ERR value is not an integer"), {}, {"k"}},
        effect_case{"flushall_error", {"FLUSHALL"}, err("ERR no"), {}, {}},
        effect_case{"get", {"GET", "k"}, bulk("v"), {}, {"k"}},
        effect_case{"srandmember", {"SRANDMEMBER", "s", "2"}, bulks({"a", "b"}), {}, {"s"}},
        effect_case{"randomkey", {"RANDOMKEY"}, bulk("k"), {}, {}},
        effect_case{
            "xread_block", {"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, nil2_array(), {}, {"s"}},
        effect_case{"xread",
                    {"XREAD", "COUNT", "1", "STREAMS", "s", "0"},
                    arr({arr({bulk("s"), arr({})})}),
                    {},
                    {"s"}},
        effect_case{"wait", {"WAIT", "1", "0"}, num(1), {}, {}},
        effect_case{"eval_ro", {"EVAL_RO", "return 1", "1", "k"}, num(1), {}, {"k"}},
        effect_case{"multi_alone", {"MULTI"}, ok(), {}, {}},
        effect_case{"script_exists", {"SCRIPT", "EXISTS", "abc"}, arr({num(0)}), {}, {}},
        effect_case{"unknown_with_error", {"NOSUCH", "x"}, err("ERR unknown command"), {}, {}}),
    name_of);

// Conditional writes replay, unconditionally, only when the reply shows they took effect.
INSTANTIATE_TEST_SUITE_P(
    conditional, translate_table,
    ::testing::Values(
        effect_case{"set_nx_set", {"SET", "k", "v", "NX"}, ok(), {{"SET", "k", "v"}}, {"k"}},
        effect_case{"set_nx_refused_resp2", {"SET", "k", "v", "NX"}, nil2(), {}, {"k"}},
        effect_case{"set_nx_refused_resp3", {"SET", "k", "v", "nx"}, nil3(), {}, {"k"}},
        effect_case{"set_xx_set", {"set", "k", "v", "xx"}, ok(), {{"SET", "k", "v"}}, {"k"}},
        effect_case{"set_nx_get_set_returns_nil",
                    {"SET", "k", "v", "NX", "GET"},
                    nil3(),
                    {{"SET", "k", "v"}},
                    {"k"}},
        effect_case{"set_nx_get_refused_returns_old",
                    {"SET", "k", "v", "NX", "GET"},
                    bulk("old"),
                    {},
                    {"k"}},
        effect_case{"set_xx_get_set_returns_old",
                    {"SET", "k", "v", "GET", "XX"},
                    bulk("old"),
                    {{"SET", "k", "v"}},
                    {"k"}},
        effect_case{
            "set_xx_get_refused_returns_nil", {"SET", "k", "v", "XX", "GET"}, nil2(), {}, {"k"}},
        effect_case{"set_get_without_condition",
                    {"SET", "k", "v", "GET"},
                    nil2(),
                    {{"SET", "k", "v"}},
                    {"k"}},
        effect_case{"set_nx_get_ex_together",
                    {"SET", "k", "v", "NX", "GET", "EX", "10"},
                    nil3(),
                    {{"SET", "k", "v", "PXAT", "1700000010000"}},
                    {"k"}},
        effect_case{"set_nx_get_ex_refused",
                    {"SET", "k", "v", "EX", "10", "NX", "GET"},
                    bulk("old"),
                    {},
                    {"k"}},
        effect_case{"setnx_set", {"SETNX", "k", "v"}, num(1), {{"SET", "k", "v"}}, {"k"}},
        effect_case{"setnx_refused", {"SETNX", "k", "v"}, num(0), {}, {"k"}},
        effect_case{"msetnx_set",
                    {"MSETNX", "a", "1", "b", "2"},
                    num(1),
                    {{"MSET", "a", "1", "b", "2"}},
                    {"a", "b"}},
        effect_case{"msetnx_refused", {"MSETNX", "a", "1", "b", "2"}, num(0), {}, {"a", "b"}},
        effect_case{
            "hsetnx_set", {"HSETNX", "h", "f", "v"}, num(1), {{"HSET", "h", "f", "v"}}, {"h"}},
        effect_case{"hsetnx_refused", {"HSETNX", "h", "f", "v"}, num(0), {}, {"h"}},
        effect_case{
            "renamenx_done", {"RENAMENX", "a", "b"}, num(1), {{"RENAME", "a", "b"}}, {"a", "b"}},
        effect_case{"renamenx_refused", {"RENAMENX", "a", "b"}, num(0), {}, {"a", "b"}},
        effect_case{"zadd_plain_zero_may_have_updated",
                    {"ZADD", "z", "5", "m"},
                    num(0),
                    {{"ZADD", "z", "5", "m"}},
                    {"z"}},
        effect_case{"zadd_xx_gt_zero_may_have_updated",
                    {"ZADD", "z", "XX", "GT", "5", "m"},
                    num(0),
                    {{"ZADD", "z", "XX", "GT", "5", "m"}},
                    {"z"}},
        effect_case{
            "zadd_ch_zero_changed_nothing", {"ZADD", "z", "NX", "CH", "5", "m"}, num(0), {}, {"z"}},
        effect_case{"zadd_ch_one",
                    {"ZADD", "z", "CH", "5", "m"},
                    num(1),
                    {{"ZADD", "z", "CH", "5", "m"}},
                    {"z"}},
        effect_case{"zadd_incr_refused", {"ZADD", "z", "NX", "INCR", "1", "m"}, nil3(), {}, {"z"}},
        effect_case{"zadd_incr_resp3_double",
                    {"ZADD", "z", "GT", "INCR", "1", "m"},
                    dbl(3),
                    {{"ZADD", "z", "GT", "INCR", "1", "m"}},
                    {"z"}},
        effect_case{"lpushx_no_list", {"LPUSHX", "l", "a"}, num(0), {}, {"l"}},
        effect_case{"rpushx_pushed", {"RPUSHX", "l", "a"}, num(3), {{"RPUSHX", "l", "a"}}, {"l"}},
        effect_case{"smove_moved",
                    {"SMOVE", "a", "b", "m"},
                    num(1),
                    {{"SMOVE", "a", "b", "m"}},
                    {"a", "b"}},
        effect_case{"smove_not_member", {"SMOVE", "a", "b", "m"}, num(0), {}, {"a", "b"}},
        effect_case{"persist_done", {"PERSIST", "k"}, num(1), {{"PERSIST", "k"}}, {"k"}},
        effect_case{"persist_no_ttl", {"PERSIST", "k"}, num(0), {}, {"k"}},
        effect_case{"copy_done_adds_replace",
                    {"COPY", "a", "b"},
                    num(1),
                    {{"COPY", "a", "b", "REPLACE"}},
                    {"a", "b"}},
        effect_case{"copy_with_replace",
                    {"COPY", "a", "b", "replace"},
                    num(1),
                    {{"COPY", "a", "b", "replace"}},
                    {"a", "b"}},
        effect_case{"copy_refused", {"COPY", "a", "b"}, num(0), {}, {"a", "b"}},
        effect_case{"move_refused", {"MOVE", "k", "1"}, num(0), {}, {"k"}},
        effect_case{"getdel_deleted", {"GETDEL", "k"}, bulk("v"), {{"DEL", "k"}}, {"k"}},
        effect_case{"getdel_missing", {"GETDEL", "k"}, nil3(), {}, {"k"}}),
    name_of);

// Relative times become absolute against the primary's clock.
INSTANTIATE_TEST_SUITE_P(
    ttl, translate_table,
    ::testing::Values(
        effect_case{
            "expire", {"EXPIRE", "k", "10"}, num(1), {{"PEXPIREAT", "k", "1700000010000"}}, {"k"}},
        effect_case{"pexpire",
                    {"pexpire", "k", "1500"},
                    num(1),
                    {{"PEXPIREAT", "k", "1700000001500"}},
                    {"k"}},
        effect_case{"expire_condition_held_is_dropped",
                    {"EXPIRE", "k", "10", "GT"},
                    num(1),
                    {{"PEXPIREAT", "k", "1700000010000"}},
                    {"k"}},
        effect_case{"expire_nx_refused", {"EXPIRE", "k", "10", "NX"}, num(0), {}, {"k"}},
        effect_case{"expire_missing_key", {"EXPIRE", "k", "10"}, num(0), {}, {"k"}},
        effect_case{"expire_negative_deletes",
                    {"EXPIRE", "k", "-1"},
                    num(1),
                    {{"PEXPIREAT", "k", "1699999999000"}},
                    {"k"}},
        effect_case{
            "expire_overflow_copies", {"EXPIRE", "k", "9223372036854775"}, num(1), {}, {"k"}, true},
        effect_case{"expireat",
                    {"EXPIREAT", "k", "1800000000"},
                    num(1),
                    {{"EXPIREAT", "k", "1800000000"}},
                    {"k"}},
        effect_case{"pexpireat_nx_held",
                    {"PEXPIREAT", "k", "1800000000000", "NX"},
                    num(1),
                    {{"PEXPIREAT", "k", "1800000000000"}},
                    {"k"}},
        effect_case{
            "expireat_xx_refused", {"EXPIREAT", "k", "1800000000", "XX"}, num(0), {}, {"k"}},
        effect_case{"set_ex",
                    {"SET", "k", "v", "EX", "10"},
                    ok(),
                    {{"SET", "k", "v", "PXAT", "1700000010000"}},
                    {"k"}},
        effect_case{"set_px_xx",
                    {"SET", "k", "v", "px", "250", "XX"},
                    ok(),
                    {{"SET", "k", "v", "PXAT", "1700000000250"}},
                    {"k"}},
        effect_case{"set_exat_kept",
                    {"SET", "k", "v", "EXAT", "1800000000"},
                    ok(),
                    {{"SET", "k", "v", "EXAT", "1800000000"}},
                    {"k"}},
        effect_case{"set_keepttl",
                    {"SET", "k", "v", "KEEPTTL"},
                    ok(),
                    {{"SET", "k", "v", "KEEPTTL"}},
                    {"k"}},
        effect_case{"setex",
                    {"SETEX", "k", "10", "v"},
                    ok(),
                    {{"SET", "k", "v", "PXAT", "1700000010000"}},
                    {"k"}},
        effect_case{"psetex",
                    {"PSETEX", "k", "10", "v"},
                    ok(),
                    {{"SET", "k", "v", "PXAT", "1700000000010"}},
                    {"k"}},
        effect_case{"getex_ex",
                    {"GETEX", "k", "EX", "10"},
                    bulk("v"),
                    {{"PEXPIREAT", "k", "1700000010000"}},
                    {"k"}},
        effect_case{"getex_px",
                    {"GETEX", "k", "px", "5"},
                    bulk("v"),
                    {{"PEXPIREAT", "k", "1700000000005"}},
                    {"k"}},
        effect_case{"getex_exat",
                    {"GETEX", "k", "EXAT", "1800000000"},
                    bulk("v"),
                    {{"EXPIREAT", "k", "1800000000"}},
                    {"k"}},
        effect_case{
            "getex_persist", {"GETEX", "k", "PERSIST"}, bulk("v"), {{"PERSIST", "k"}}, {"k"}},
        effect_case{"getex_plain_is_a_read", {"GETEX", "k"}, bulk("v"), {}, {"k"}},
        effect_case{"getex_missing_key", {"GETEX", "k", "EX", "10"}, nil2(), {}, {"k"}},
        effect_case{"restore_relative_ttl_becomes_absttl",
                    {"RESTORE", "k", "5000", "\x0e\x01payload", "REPLACE"},
                    ok(),
                    {{"RESTORE", "k", "1700000005000", "\x0e\x01payload", "REPLACE", "ABSTTL"}},
                    {"k"}},
        effect_case{"restore_no_ttl",
                    {"RESTORE", "k", "0", "p"},
                    ok(),
                    {{"RESTORE", "k", "0", "p"}},
                    {"k"}},
        effect_case{"restore_absttl_kept",
                    {"RESTORE", "k", "1800000000000", "p", "ABSTTL", "IDLETIME", "5"},
                    ok(),
                    {{"RESTORE", "k", "1800000000000", "p", "ABSTTL", "IDLETIME", "5"}},
                    {"k"}}),
    name_of);

// Server-formatted floats are stored as the primary printed them.
INSTANTIATE_TEST_SUITE_P(floats, translate_table,
                         ::testing::Values(effect_case{"incrbyfloat",
                                                       {"INCRBYFLOAT", "f", "0.1"},
                                                       bulk("1.6"),
                                                       {{"SET", "f", "1.6", "KEEPTTL"}},
                                                       {"f"}},
                                           effect_case{"hincrbyfloat",
                                                       {"HINCRBYFLOAT", "h", "f", "0.1"},
                                                       bulk("10.5"),
                                                       {{"HSET", "h", "f", "10.5"}},
                                                       {"h"}},
                                           effect_case{"incrbyfloat_unexpected_reply_copies",
                                                       {"INCRBYFLOAT", "f", "0.1"},
                                                       num(2),
                                                       {},
                                                       {"f"},
                                                       true}),
                         name_of);

// Pops and moves remove exactly the members the primary returned.
INSTANTIATE_TEST_SUITE_P(
    pops, translate_table,
    ::testing::Values(
        effect_case{"spop_one", {"SPOP", "s"}, bulk("a"), {{"SREM", "s", "a"}}, {"s"}},
        effect_case{"spop_count_resp2",
                    {"SPOP", "s", "2"},
                    bulks({"a", "b"}),
                    {{"SREM", "s", "a", "b"}},
                    {"s"}},
        effect_case{"spop_count_resp3_set",
                    {"SPOP", "s", "2"},
                    value::set({bulk("c"), bulk("d")}),
                    {{"SREM", "s", "c", "d"}},
                    {"s"}},
        effect_case{"spop_missing", {"SPOP", "s"}, nil3(), {}, {"s"}},
        effect_case{"spop_count_missing", {"SPOP", "s", "3"}, value::set({}), {}, {"s"}},
        effect_case{"lpop_one", {"LPOP", "l"}, bulk("a"), {{"LREM", "l", "1", "a"}}, {"l"}},
        effect_case{"lpop_count_in_order",
                    {"LPOP", "l", "2"},
                    bulks({"a", "b"}),
                    {{"LREM", "l", "1", "a"}, {"LREM", "l", "1", "b"}},
                    {"l"}},
        effect_case{"rpop_count_from_the_tail",
                    {"rpop", "l", "2"},
                    bulks({"e", "d"}),
                    {{"LREM", "l", "-1", "e"}, {"LREM", "l", "-1", "d"}},
                    {"l"}},
        effect_case{"lpop_missing_resp2", {"LPOP", "l"}, nil2(), {}, {"l"}},
        effect_case{"lpop_count_missing_resp2", {"LPOP", "l", "2"}, nil2_array(), {}, {"l"}},
        effect_case{"lpop_count_zero", {"LPOP", "l", "0"}, arr({}), {}, {"l"}},
        effect_case{"lpop_unexpected_reply_copies", {"LPOP", "l"}, num(1), {}, {"l"}, true},
        effect_case{"zpopmin_resp2_flat",
                    {"ZPOPMIN", "z", "2"},
                    bulks({"a", "1", "b", "2"}),
                    {{"ZREM", "z", "a", "b"}},
                    {"z"}},
        effect_case{"zpopmax_resp3_flat_pair",
                    {"ZPOPMAX", "z"},
                    arr({bulk("a"), dbl(1)}),
                    {{"ZREM", "z", "a"}},
                    {"z"}},
        effect_case{"zpopmin_resp3_nested_pairs",
                    {"ZPOPMIN", "z", "2"},
                    arr({arr({bulk("b"), dbl(2)}), arr({bulk("c"), dbl(3)})}),
                    {{"ZREM", "z", "b", "c"}},
                    {"z"}},
        effect_case{"zpopmin_empty", {"ZPOPMIN", "z"}, arr({}), {}, {"z"}},
        effect_case{"lmpop_left",
                    {"LMPOP", "2", "l1", "l2", "LEFT", "COUNT", "2"},
                    arr({bulk("l2"), bulks({"a", "b"})}),
                    {{"LREM", "l2", "1", "a"}, {"LREM", "l2", "1", "b"}},
                    {"l1", "l2"}},
        effect_case{"blmpop_right",
                    {"BLMPOP", "0", "1", "l", "right"},
                    arr({bulk("l"), bulks({"z"})}),
                    {{"LREM", "l", "-1", "z"}},
                    {"l"}},
        effect_case{"lmpop_missing", {"LMPOP", "1", "l", "LEFT"}, nil3(), {}, {"l"}},
        effect_case{"zmpop_nested",
                    {"ZMPOP", "1", "z", "MIN", "COUNT", "2"},
                    arr({bulk("z"), arr({arr({bulk("a"), dbl(1)}), arr({bulk("b"), dbl(2)})})}),
                    {{"ZREM", "z", "a", "b"}},
                    {"z"}},
        effect_case{"bzmpop_resp2",
                    {"BZMPOP", "1", "2", "z1", "z2", "MAX"},
                    arr({bulk("z2"), arr({bulks({"m", "5"})})}),
                    {{"ZREM", "z2", "m"}},
                    {"z1", "z2"}},
        effect_case{"blpop",
                    {"BLPOP", "a", "b", "0"},
                    bulks({"b", "x"}),
                    {{"LREM", "b", "1", "x"}},
                    {"a", "b"}},
        effect_case{
            "brpop", {"BRPOP", "a", "1.5"}, bulks({"a", "y"}), {{"LREM", "a", "-1", "y"}}, {"a"}},
        effect_case{"blpop_timeout_resp2", {"BLPOP", "a", "1"}, nil2_array(), {}, {"a"}},
        effect_case{"blpop_timeout_resp3", {"BLPOP", "a", "1"}, nil3(), {}, {"a"}},
        effect_case{"bzpopmin_resp2",
                    {"BZPOPMIN", "z", "0"},
                    bulks({"z", "q", "7"}),
                    {{"ZREM", "z", "q"}},
                    {"z"}},
        effect_case{"bzpopmax_resp3",
                    {"BZPOPMAX", "z1", "z2", "0"},
                    arr({bulk("z2"), bulk("q"), dbl(7)}),
                    {{"ZREM", "z2", "q"}},
                    {"z1", "z2"}},
        effect_case{"bzpopmin_timeout", {"BZPOPMIN", "z", "1"}, nil2_array(), {}, {"z"}},
        effect_case{"lmove_left_right",
                    {"LMOVE", "src", "dst", "LEFT", "RIGHT"},
                    bulk("a"),
                    {{"RPUSH", "dst", "a"}, {"LREM", "src", "1", "a"}},
                    {"src", "dst"}},
        effect_case{"lmove_rotation_same_key",
                    {"LMOVE", "l", "l", "RIGHT", "LEFT"},
                    bulk("c"),
                    {{"LPUSH", "l", "c"}, {"LREM", "l", "-1", "c"}},
                    {"l"}},
        effect_case{"lmove_empty_source",
                    {"LMOVE", "src", "dst", "LEFT", "LEFT"},
                    nil2(),
                    {},
                    {"src", "dst"}},
        effect_case{"blmove",
                    {"BLMOVE", "src", "dst", "right", "right", "0"},
                    bulk("z"),
                    {{"RPUSH", "dst", "z"}, {"LREM", "src", "-1", "z"}},
                    {"src", "dst"}},
        effect_case{"rpoplpush",
                    {"RPOPLPUSH", "src", "dst"},
                    bulk("e"),
                    {{"LPUSH", "dst", "e"}, {"LREM", "src", "-1", "e"}},
                    {"src", "dst"}},
        effect_case{
            "brpoplpush_timeout", {"BRPOPLPUSH", "src", "dst", "1"}, nil3(), {}, {"src", "dst"}}),
    name_of);

// Streams: generated IDs are pinned; consumer-group moves the reply cannot describe are copied.
INSTANTIATE_TEST_SUITE_P(
    streams, translate_table,
    ::testing::Values(
        effect_case{"xadd_auto_id",
                    {"XADD", "s", "*", "f", "v"},
                    bulk("1700000000000-0"),
                    {{"XADD", "s", "1700000000000-0", "f", "v"}},
                    {"s"}},
        effect_case{
            "xadd_nomkstream_maxlen_approx",
            {"XADD", "s", "NOMKSTREAM", "MAXLEN", "~", "1000", "*", "f", "v"},
            bulk("1700000000000-3"),
            {{"XADD", "s", "NOMKSTREAM", "MAXLEN", "~", "1000", "1700000000000-3", "f", "v"}},
            {"s"}},
        effect_case{"xadd_nomkstream_missing_stream",
                    {"XADD", "s", "NOMKSTREAM", "*", "f", "v"},
                    nil3(),
                    {},
                    {"s"}},
        effect_case{"xadd_minid_limit",
                    {"XADD", "s", "MINID", "=", "5-0", "LIMIT", "10", "*", "f", "v"},
                    bulk("9-0"),
                    {{"XADD", "s", "MINID", "=", "5-0", "LIMIT", "10", "9-0", "f", "v"}},
                    {"s"}},
        effect_case{"xadd_explicit_id",
                    {"XADD", "s", "5-1", "f", "v"},
                    bulk("5-1"),
                    {{"XADD", "s", "5-1", "f", "v"}},
                    {"s"}},
        effect_case{"xadd_partial_auto_sequence",
                    {"XADD", "s", "5-*", "f", "v"},
                    bulk("5-2"),
                    {{"XADD", "s", "5-2", "f", "v"}},
                    {"s"}},
        effect_case{"xadd_field_named_like_an_option",
                    {"XADD", "s", "*", "MAXLEN", "1"},
                    bulk("7-0"),
                    {{"XADD", "s", "7-0", "MAXLEN", "1"}},
                    {"s"}},
        effect_case{"xreadgroup_delivered_copies",
                    {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"},
                    arr({arr({bulk("s"), arr({arr({bulk("1-0"), bulks({"f", "v"})})})})}),
                    {},
                    {"s"},
                    true},
        effect_case{
            "xreadgroup_blocking_resp3_map_copies",
            {"XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s1", "s2", ">", ">"},
            value::map({bulk("s2"), arr({})}),
            {},
            {"s1", "s2"},
            true},
        effect_case{
            "xreadgroup_nothing_served",
            {"XREADGROUP", "GROUP", "g", "c", "BLOCK", "10", "STREAMS", "s1", "s2", ">", ">"},
            nil2_array(),
            {},
            {"s1", "s2"}},
        effect_case{"xreadgroup_nogroup",
                    {"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"},
                    err("NOGROUP No such key 's' or consumer group 'g'"),
                    {},
                    {"s"}},
        effect_case{
            "xclaim_copies", {"XCLAIM", "s", "g", "c", "1000", "1-0"}, arr({}), {}, {"s"}, true},
        effect_case{"xautoclaim_copies",
                    {"XAUTOCLAIM", "s", "g", "c", "1000", "0-0"},
                    arr({bulk("0-0"), arr({}), arr({})}),
                    {},
                    {"s"},
                    true},
        effect_case{"xgroup_create_dollar_copies",
                    {"XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"},
                    ok(),
                    {},
                    {"s"},
                    true},
        effect_case{"xgroup_create_explicit_id",
                    {"xgroup", "create", "s", "g", "0"},
                    ok(),
                    {{"xgroup", "create", "s", "g", "0"}},
                    {"s"}},
        effect_case{"xgroup_setid_dollar_copies",
                    {"XGROUP", "SETID", "s", "g", "$"},
                    ok(),
                    {},
                    {"s"},
                    true},
        effect_case{"xgroup_createconsumer",
                    {"XGROUP", "CREATECONSUMER", "s", "g", "c"},
                    num(1),
                    {{"XGROUP", "CREATECONSUMER", "s", "g", "c"}},
                    {"s"}}),
    name_of);

// Scripts, keyspace-wide writes and commands the table does not know.
INSTANTIATE_TEST_SUITE_P(
    scripts_and_global, translate_table,
    ::testing::Values(
        effect_case{"eval_replayed",
                    {"EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "k"},
                    ok(),
                    {{"EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "k"}},
                    {"k"}},
        effect_case{"eval_copied",
                    {"EVAL", "body", "2", "a", "b", "arg"},
                    num(1),
                    {},
                    {"a", "b"},
                    true,
                    false,
                    true},
        effect_case{
            "evalsha_copied", {"EVALSHA", "abc", "1", "a"}, num(1), {}, {"a"}, true, false, true},
        effect_case{"fcall_replayed",
                    {"FCALL", "f", "1", "a", "x"},
                    num(1),
                    {{"FCALL", "f", "1", "a", "x"}},
                    {"a"}},
        effect_case{"eval_without_keys_is_global",
                    {"EVAL", "body", "0"},
                    num(1),
                    {{"EVAL", "body", "0"}},
                    {},
                    false,
                    true},
        effect_case{"eval_without_keys_copy_mode_still_replays",
                    {"EVAL", "body", "0"},
                    num(1),
                    {{"EVAL", "body", "0"}},
                    {},
                    false,
                    true,
                    true},
        effect_case{"eval_error_may_have_written_copies",
                    {"EVAL", "body", "1", "k"},
                    err("ERR user_script:1: boom"),
                    {},
                    {"k"},
                    true},
        effect_case{"eval_error_without_keys", {"EVAL", "body", "0"}, err("ERR boom"), {}, {}},
        effect_case{
            "flushall", {"FLUSHALL", "ASYNC"}, ok(), {{"FLUSHALL", "ASYNC"}}, {}, false, true},
        effect_case{"flushdb", {"FLUSHDB"}, ok(), {{"FLUSHDB"}}, {}, false, true},
        effect_case{"swapdb", {"SWAPDB", "0", "1"}, ok(), {{"SWAPDB", "0", "1"}}, {}, false, true},
        effect_case{"script_load",
                    {"SCRIPT", "LOAD", "return 1"},
                    bulk("e0e1f9fabfc9d4800c877a703b823ac0578ff8db"),
                    {{"SCRIPT", "LOAD", "return 1"}},
                    {},
                    false,
                    true},
        effect_case{
            "script_flush", {"script", "flush"}, ok(), {{"script", "flush"}}, {}, false, true},
        effect_case{"function_load",
                    {"FUNCTION", "LOAD", "#!lua name=l\n"},
                    bulk("l"),
                    {{"FUNCTION", "LOAD", "#!lua name=l\n"}},
                    {},
                    false,
                    true},
        effect_case{"function_delete",
                    {"FUNCTION", "DELETE", "l"},
                    ok(),
                    {{"FUNCTION", "DELETE", "l"}},
                    {},
                    false,
                    true},
        effect_case{"unknown_command_is_global",
                    {"MODULE.SET", "k", "v"},
                    ok(),
                    {{"MODULE.SET", "k", "v"}},
                    {},
                    false,
                    true},
        effect_case{"migrate_moves_away",
                    {"MIGRATE", "h", "6379", "k", "0", "1000"},
                    ok(),
                    {{"DEL", "k"}},
                    {"k"}},
        effect_case{"migrate_keys",
                    {"MIGRATE", "h", "6379", "", "0", "1000", "AUTH", "pw", "KEYS", "a", "b"},
                    ok(),
                    {{"DEL", "a", "b"}},
                    {"a", "b"}},
        effect_case{
            "migrate_copy", {"MIGRATE", "h", "6379", "k", "0", "1000", "COPY"}, ok(), {}, {"k"}},
        effect_case{"migrate_nokey",
                    {"MIGRATE", "h", "6379", "k", "0", "1000"},
                    value::simple_string("NOKEY"),
                    {},
                    {"k"}}),
    name_of);

TEST(effects, replayable_writes) {
    const auto& table = respite::commands::command_table::builtin();
    using respite::proxy::is_replayable_write;
    EXPECT_TRUE(is_replayable_write(nullptr));
    EXPECT_TRUE(is_replayable_write(table.find("set")));
    EXPECT_TRUE(is_replayable_write(table.find("publish")));
    EXPECT_TRUE(is_replayable_write(table.find("eval")));
    EXPECT_TRUE(is_replayable_write(table.find("script", "load")));
    EXPECT_TRUE(is_replayable_write(table.find("xreadgroup")));
    EXPECT_FALSE(is_replayable_write(table.find("get")));
    EXPECT_FALSE(is_replayable_write(table.find("eval_ro")));
    EXPECT_FALSE(is_replayable_write(table.find("xread")));
    EXPECT_FALSE(is_replayable_write(table.find("wait")));
    EXPECT_FALSE(is_replayable_write(table.find("script", "exists")));
}

TEST(effects, uses_the_context_table) {
    // A table refreshed from a server that knows a module command with a key.
    const respite::commands::command_table table({
        {"mod.set", 3, respite::commands::flag::write, 1, 1, 1},
    });
    effect_context ctx;
    ctx.table = &table;
    const std::vector<std::string_view> args{"MOD.SET", "k", "v"};
    const auto out = translate(args, ok(), ctx);
    EXPECT_EQ(out.commands, (commands_t{{"MOD.SET", "k", "v"}}));
    EXPECT_EQ(out.keys, (keys_t{"k"}));
    EXPECT_FALSE(out.global);
    // The builtin table's SET is unknown to this one: replayed as written, ordered globally.
    const std::vector<std::string_view> set{"SET", "k", "v", "EX", "1"};
    const auto unknown = translate(set, ok(), ctx);
    EXPECT_EQ(unknown.commands, (commands_t{{"SET", "k", "v", "EX", "1"}}));
    EXPECT_TRUE(unknown.global);
}

TEST(effects, reply_independent_writes) {
    const auto& table = respite::commands::command_table::builtin();
    auto independent = [&](std::vector<std::string_view> args) {
        return reply_independent(args, table);
    };
    EXPECT_TRUE(independent({"SET", "k", "v"}));
    EXPECT_TRUE(independent({"set", "k", "v"}));
    EXPECT_TRUE(independent({"LPUSH", "l", "a"}));
    EXPECT_TRUE(independent({"HSET", "h", "f", "v"}));
    EXPECT_TRUE(independent({"INCR", "n"}));
    // Options make SET depend on its reply (NX, GET) or on the clock (EX).
    EXPECT_FALSE(independent({"SET", "k", "v", "NX"}));
    EXPECT_FALSE(independent({"SET", "k", "v", "EX", "10"}));
    EXPECT_FALSE(independent({"SET", "k"}));
    EXPECT_FALSE(independent({"SETNX", "k", "v"}));
    EXPECT_FALSE(independent({"DEL", "k"}));
    EXPECT_FALSE(independent({"LPOP", "l"}));
    EXPECT_FALSE(independent({"GET", "k"}));
    EXPECT_FALSE(independent({"PUBLISH", "c", "m"}));
    EXPECT_FALSE(independent({"FLUSHALL"}));
    EXPECT_FALSE(independent({}));
    // With the spec already looked up; a container (an unknown subcommand) is never independent.
    const std::vector<std::string_view> set{"SET", "k", "v"};
    EXPECT_TRUE(reply_independent(table.lookup(set), set));
    const std::vector<std::string_view> unknown_sub{"XGROUP", "NOPE", "k"};
    EXPECT_FALSE(reply_independent(table.find("xgroup"), unknown_sub));
    EXPECT_FALSE(reply_independent(nullptr, set));
}

// Writes replayed as written that may join the next ones of their lane into one command: only
// where the joined command has the sequence's effect.
TEST(effects, merge_hints) {
    const auto& table = respite::commands::command_table::builtin();
    auto hint = [&](std::vector<std::string_view> args) {
        EXPECT_TRUE(reply_independent(args, table)) << args[0];
        return merge_hint_of(table.lookup(args), args);
    };
    const auto set = hint({"set", "k", "v"});
    EXPECT_EQ(set.head, 1);
    EXPECT_EQ(set.rename, "MSET");
    for (auto name : {"LPUSH", "rpush", "SADD", "SREM", "HDEL"}) {
        const auto h = hint({name, "k", "a", "b"});
        EXPECT_EQ(h.head, 2) << name;
        EXPECT_EQ(h.rename, "") << name;
    }
    EXPECT_EQ(hint({"HSET", "h", "f", "v", "g", "w"}).head, 2);
    // Counters, appends and overwrites of part of a value have no multi-argument form.
    EXPECT_EQ(hint({"INCR", "n"}).head, 0);
    EXPECT_EQ(hint({"APPEND", "k", "v"}).head, 0);
    EXPECT_EQ(hint({"SETRANGE", "k", "1", "v"}).head, 0);
    EXPECT_EQ(hint({"HINCRBY", "h", "f", "1"}).head, 0);
    EXPECT_EQ(merge_hint_of(nullptr, std::vector<std::string_view>{"SET", "k", "v"}).head, 0);
    const std::vector<std::string_view> lone{"LPUSH"};
    EXPECT_EQ(merge_hint_of(table.find("lpush"), lone).head, 0);
}

// The integer the secondary must answer: set only where its one command answers like the
// primary's on the same data (replayed as written, PERSIST, EXPIRE -> PEXPIREAT, HSETNX -> HSET).
TEST(effects, expected_replies) {
    effect_context ctx;
    ctx.now_ms = now;
    auto expect = [&](std::vector<std::string_view> args, const value& reply) {
        return translate(args, reply, ctx).expect_reply;
    };
    EXPECT_EQ(expect({"ZUNIONSTORE", "d", "2", "a", "b"}, num(3)), 3);
    EXPECT_EQ(expect({"EXPIRE", "a", "10"}, num(1)), 1);
    EXPECT_EQ(expect({"PEXPIREAT", "a", "10", "GT"}, num(1)), 1);
    EXPECT_EQ(expect({"HSETNX", "h", "f", "v"}, num(1)), 1);
    EXPECT_EQ(expect({"PERSIST", "a"}, num(1)), 1);
    // Another reply, another command, or several: none.
    EXPECT_FALSE(expect({"SET", "a", "1"}, ok()));
    EXPECT_FALSE(expect({"SETNX", "a", "1"}, num(1)));     // SET answers +OK
    EXPECT_FALSE(expect({"RENAMENX", "a", "b"}, num(1)));  // RENAME answers +OK
    EXPECT_FALSE(expect({"LPOP", "l", "2"}, bulks({"x", "y"})));
    EXPECT_FALSE(expect({"SPOP", "s"}, bulk("m")));
    EXPECT_FALSE(expect({"PUBLISH", "ch", "m"}, num(3)));  // receivers differ by side
    EXPECT_FALSE(expect({"SPUBLISH", "ch", "m"}, num(3)));
    EXPECT_FALSE(expect({"EVAL", "return 1", "1", "k"}, num(1)));
    EXPECT_FALSE(expect({"FLUSHALL"}, ok()));
    EXPECT_FALSE(expect({"SORT", "l", "BY", "w_*", "STORE", "d"}, num(3)));  // copied
    EXPECT_FALSE(expect({"DEL", "a"}, num(0)));                              // nothing to replay
    // Deleted here, expired there: another count, the same end.
    EXPECT_FALSE(expect({"DEL", "a", "b"}, num(2)));
    EXPECT_FALSE(expect({"UNLINK", "a"}, num(1)));
    EXPECT_EQ(expect({"LPUSHX", "l", "x"}, num(3)), 3);
    EXPECT_FALSE(expect({"INCR", "a"}, err("ERR not an integer")));
}

TEST(effects, empty_request_applies_nothing) {
    const auto out = translate({}, ok(), effect_context{});
    EXPECT_TRUE(out.none());
    EXPECT_TRUE(out.keys.empty());
}

}  // namespace

namespace {

TEST(effects, evalsha_of_a_script_seen_is_replayed_as_eval_of_its_body) {
    respite::proxy::script_bodies scripts;
    effect_context ctx;
    ctx.scripts = &scripts;
    const std::string body = "return redis.call('SET', KEYS[1], ARGV[1])";
    const auto sha = respite::proxy::script_bodies::sha1_hex(body);
    ASSERT_EQ(sha.size(), 40U);
    // Not seen yet: replayed as written.
    std::vector<std::string_view> evalsha{"EVALSHA", sha, "1", "k", "v"};
    EXPECT_EQ(translate(evalsha, ok(), ctx).commands,
              (commands_t{{"EVALSHA", sha, "1", "k", "v"}}));
    // SCRIPT LOAD through the proxy teaches the body (any case of the SHA finds it).
    std::vector<std::string_view> load{"SCRIPT", "LOAD", body};
    (void)translate(load, value::bulk_string(sha), ctx);
    EXPECT_EQ(scripts.size(), 1U);
    const auto out = translate(evalsha, ok(), ctx);
    EXPECT_EQ(out.commands, (commands_t{{"EVAL", body, "1", "k", "v"}}));
    EXPECT_EQ(out.keys, (keys_t{"k"}));
    std::string upper = sha;
    for (auto& ch : upper)
        ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    std::vector<std::string_view> evalsha_upper{"evalsha", upper, "1", "k", "v"};
    EXPECT_EQ(translate(evalsha_upper, ok(), ctx).commands[0][0], "EVAL");
    // A failed SCRIPT LOAD teaches nothing; SCRIPT FLUSH forgets.
    std::vector<std::string_view> flush{"SCRIPT", "FLUSH"};
    (void)translate(flush, ok(), ctx);
    EXPECT_EQ(scripts.size(), 0U);
    // EVAL teaches its body too.
    std::vector<std::string_view> eval{"EVAL", body, "1", "k", "v"};
    (void)translate(eval, ok(), ctx);
    EXPECT_EQ(translate(evalsha, ok(), ctx).commands[0][0], "EVAL");
}

TEST(effects, script_bodies_are_bounded_in_bytes) {
    respite::proxy::script_bodies scripts(100);
    scripts.remember(std::string(60, 'a'));
    scripts.remember(std::string(60, 'b'));  // the first goes
    EXPECT_EQ(scripts.size(), 1U);
    EXPECT_FALSE(scripts.find(respite::proxy::script_bodies::sha1_hex(std::string(60, 'a'))));
    EXPECT_TRUE(scripts.find(respite::proxy::script_bodies::sha1_hex(std::string(60, 'b'))));
    scripts.remember(std::string(200, 'c'));  // larger than the bound: not kept
    EXPECT_EQ(scripts.size(), 1U);
    // Redis's name for "return 1".
    EXPECT_EQ(respite::proxy::script_bodies::sha1_hex("return 1"),
              "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
}

}  // namespace
