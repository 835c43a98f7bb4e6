// rule_for: which reads are shadowed and with which comparison, from the builtin table.
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy {
namespace {

shadow_rule rule(std::vector<std::string_view> args) {
    return rule_for(args, commands::command_table::builtin());
}

shadow_mode mode(std::vector<std::string_view> args) {
    return rule(std::move(args)).mode;
}

TEST(shadow_rules, plain_reads_are_exact_in_any_case) {
    EXPECT_EQ(mode({"GET", "k"}), shadow_mode::exact);
    EXPECT_EQ(mode({"get", "k"}), shadow_mode::exact);
    EXPECT_EQ(mode({"MGET", "a", "b"}), shadow_mode::exact);
    EXPECT_EQ(mode({"LRANGE", "l", "0", "-1"}), shadow_mode::exact);
    EXPECT_EQ(mode({"HGET", "h", "f"}), shadow_mode::exact);
    EXPECT_EQ(mode({"ZRANGE", "z", "0", "-1"}), shadow_mode::exact);
    EXPECT_EQ(mode({"XRANGE", "s", "-", "+"}), shadow_mode::exact);
    EXPECT_EQ(mode({"GETRANGE", "k", "0", "3"}), shadow_mode::exact);
}

TEST(shadow_rules, random_and_cursor_commands_are_skipped) {
    for (const auto& args : std::vector<std::vector<std::string_view>>{{"RANDOMKEY"},
                                                                       {"SRANDMEMBER", "s"},
                                                                       {"HRANDFIELD", "h"},
                                                                       {"ZRANDMEMBER", "z"},
                                                                       {"TIME"},
                                                                       {"SCAN", "0"},
                                                                       {"SSCAN", "s", "0"},
                                                                       {"HSCAN", "h", "0"},
                                                                       {"ZSCAN", "z", "0"}}) {
        EXPECT_FALSE(rule(args).shadowed()) << args[0];
    }
}

TEST(shadow_rules, admin_and_introspection_commands_are_skipped) {
    for (const auto& args :
         std::vector<std::vector<std::string_view>>{{"OBJECT", "ENCODING", "k"},
                                                    {"DUMP", "k"},
                                                    {"MEMORY", "USAGE", "k"},
                                                    {"DEBUG", "OBJECT", "k"},
                                                    {"INFO"},
                                                    {"CLIENT", "LIST"},
                                                    {"CONFIG", "GET", "maxmemory"},
                                                    {"PUBSUB", "CHANNELS"},
                                                    {"XINFO", "STREAM", "s"},
                                                    {"DBSIZE"},
                                                    {"EVAL_RO", "return 1", "0"}}) {
        EXPECT_FALSE(rule(args).shadowed()) << args[0];
    }
}

TEST(shadow_rules, writes_blocking_and_unknown_commands_are_skipped) {
    EXPECT_EQ(rule({"SET", "k", "v"}).reason, "not_readonly");
    EXPECT_FALSE(rule({"BLPOP", "l", "0"}).shadowed());
    EXPECT_FALSE(rule({"SUBSCRIBE", "c"}).shadowed());
    EXPECT_EQ(rule({"NOSUCHCOMMAND"}).reason, "unknown_command");
    EXPECT_EQ(rule({}).reason, "empty");
}

TEST(shadow_rules, xreadgroup_never_runs_on_the_secondary) {
    // It moves the group's cursor and PEL; the original proxy shadowed it.
    EXPECT_FALSE(rule({"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}).shadowed());
    EXPECT_FALSE(
        rule({"xreadgroup", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"}).shadowed());
}

TEST(shadow_rules, xread_is_compared_by_stream_unless_it_blocks) {
    EXPECT_EQ(mode({"XREAD", "STREAMS", "s", "0"}), shadow_mode::streams_by_key);
    EXPECT_EQ(mode({"XREAD", "COUNT", "5", "STREAMS", "s", "0"}), shadow_mode::streams_by_key);
    EXPECT_EQ(mode({"XREAD", "block", "100", "STREAMS", "s", "0"}), shadow_mode::skip);
}

TEST(shadow_rules, unordered_replies_come_from_the_table_flag) {
    EXPECT_EQ(mode({"SMEMBERS", "s"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"KEYS", "*"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"SINTER", "a", "b"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"SUNION", "a", "b"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"SDIFF", "a", "b"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"HKEYS", "h"}), shadow_mode::unordered);
    EXPECT_EQ(mode({"HVALS", "h"}), shadow_mode::unordered);
}

TEST(shadow_rules, hgetall_compares_pairs) {
    EXPECT_EQ(mode({"HGETALL", "h"}), shadow_mode::unordered_pairs);
}

TEST(shadow_rules, ttl_family_uses_the_tolerance_with_its_unit) {
    const auto ttl = rule({"TTL", "k"});
    EXPECT_EQ(ttl.mode, shadow_mode::ttl);
    EXPECT_TRUE(ttl.seconds);
    EXPECT_EQ(ttl.missing, missing_form::ttl_missing);
    EXPECT_TRUE(rule({"EXPIRETIME", "k"}).seconds);
    const auto pttl = rule({"PTTL", "k"});
    EXPECT_EQ(pttl.mode, shadow_mode::ttl);
    EXPECT_FALSE(pttl.seconds);
    EXPECT_EQ(mode({"PEXPIRETIME", "k"}), shadow_mode::ttl);
}

TEST(shadow_rules, scores_are_compared_numerically) {
    EXPECT_EQ(mode({"ZSCORE", "z", "m"}), shadow_mode::scored);
    EXPECT_EQ(mode({"ZMSCORE", "z", "a", "b"}), shadow_mode::scored);
    EXPECT_EQ(mode({"ZRANGE", "z", "0", "-1", "WITHSCORES"}), shadow_mode::scored);
    EXPECT_EQ(mode({"zrange", "z", "0", "-1", "withscores"}), shadow_mode::scored);
    EXPECT_EQ(mode({"ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES", "LIMIT", "0", "5"}),
              shadow_mode::scored);
    EXPECT_EQ(mode({"ZREVRANGE", "z", "0", "-1", "WITHSCORES"}), shadow_mode::scored);
    EXPECT_EQ(mode({"ZUNION", "2", "a", "b", "WITHSCORES"}), shadow_mode::scored);
    EXPECT_EQ(mode({"GEODIST", "g", "a", "b"}), shadow_mode::scored);
    EXPECT_EQ(mode({"ZRANGEBYSCORE", "z", "0", "10"}), shadow_mode::exact);
}

TEST(shadow_rules, counts_treat_zero_as_missing) {
    for (const std::string_view cmd : {"EXISTS", "SCARD", "HLEN", "LLEN", "ZCARD", "STRLEN"}) {
        const auto r = rule({cmd, "k"});
        EXPECT_EQ(r.mode, shadow_mode::exact) << cmd;
        EXPECT_EQ(r.missing, missing_form::zero) << cmd;
    }
    EXPECT_EQ(rule({"TYPE", "k"}).missing, missing_form::type_none);
    EXPECT_EQ(rule({"GET", "k"}).missing, missing_form::nil_or_empty);
}

TEST(shadow_rules, mode_names) {
    EXPECT_EQ(name(shadow_mode::unordered_pairs), "unordered_pairs");
    EXPECT_EQ(name(shadow_mode::skip), "skip");
}

}  // namespace
}  // namespace respite::proxy
