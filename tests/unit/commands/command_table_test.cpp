// The command table: built-in contents, lookups, flags and refreshing from a COMMAND reply.
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <respite/commands/command_table.hpp>
#include <respite/resp/parser.hpp>

#include "captured_command_info.hpp"

namespace {

using respite::commands::command_spec;
using respite::commands::command_table;
using respite::resp::value;
namespace cmd = respite::commands;

const command_table& builtin = command_table::builtin();

const command_spec& spec(std::string_view name, std::string_view sub = {}) {
    const command_spec* s = builtin.find(name, sub);
    if (s == nullptr) {
        ADD_FAILURE() << "no spec for " << name << " " << sub;
        static const command_spec none;
        return none;
    }
    return *s;
}

value parse(std::string_view bytes) {
    respite::resp::parser p;
    const auto r = p.feed(bytes);
    EXPECT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, bytes.size());
    return p.take();
}

TEST(BuiltinTable, CoversRedis70) {
    EXPECT_GT(builtin.size(), 200U);
    for (std::string_view name : {"bzmpop",
                                  "lmpop",
                                  "zmpop",
                                  "bitfield",
                                  "bitfield_ro",
                                  "expiretime",
                                  "pexpiretime",
                                  "spublish",
                                  "ssubscribe",
                                  "sunsubscribe",
                                  "sintercard",
                                  "zintercard",
                                  "eval_ro",
                                  "evalsha_ro",
                                  "fcall",
                                  "fcall_ro",
                                  "sort_ro",
                                  "lcs",
                                  "object",
                                  "xautoclaim",
                                  "function|load",
                                  "function|delete",
                                  "function|list",
                                  "function|dump",
                                  "function|restore",
                                  "function|flush",
                                  "function|stats",
                                  "function|kill",
                                  "client|kill",
                                  "config|get",
                                  "config|set",
                                  "xinfo|stream",
                                  "xinfo|groups",
                                  "object|encoding",
                                  "memory|usage",
                                  "script|load",
                                  "cluster|shards",
                                  "command|docs",
                                  "acl|setuser",
                                  "pubsub|shardchannels"}) {
        EXPECT_NE(builtin.find(name), nullptr) << name;
    }
}

TEST(BuiltinTable, SortedUniqueLowerCase) {
    const auto specs = builtin.specs();
    for (std::size_t i = 0; i < specs.size(); ++i) {
        EXPECT_FALSE(specs[i].name.empty());
        for (char c : specs[i].name)
            EXPECT_FALSE(c >= 'A' && c <= 'Z') << specs[i].name;
        if (i > 0) {
            EXPECT_LT(specs[i - 1].name, specs[i].name);
        }
        EXPECT_EQ(builtin.find(specs[i].name), &specs[i]);
    }
}

TEST(Lookup, CaseInsensitiveWithSubcommands) {
    EXPECT_EQ(builtin.find("GET"), builtin.find("get"));
    EXPECT_EQ(builtin.find("gEt")->name, "get");
    EXPECT_EQ(builtin.find("CONFIG", "GET")->name, "config|get");
    EXPECT_EQ(builtin.find("config|get"), builtin.find("Config", "get"));
    EXPECT_EQ(builtin.find("CONFIG|GET"), builtin.find("config", "GET"));
    EXPECT_EQ(builtin.find("config")->name, "config");
    EXPECT_TRUE(cmd::has_flag(*builtin.find("config"), cmd::flag::has_subcommands));
    EXPECT_EQ(builtin.find("config", "nosuch"), nullptr);
    // A command without subcommands ignores the second argument.
    EXPECT_EQ(builtin.find("get", "whatever")->name, "get");
    EXPECT_EQ(builtin.find("nosuchcommand"), nullptr);
    EXPECT_EQ(builtin.find(""), nullptr);
    EXPECT_EQ(builtin.find("ge"), nullptr);
    EXPECT_EQ(builtin.find("gets"), nullptr);
    EXPECT_EQ(builtin.find("config|"), nullptr);

    const std::vector<std::string_view> req{"XINFO", "Stream", "s"};
    EXPECT_EQ(builtin.lookup(req)->name, "xinfo|stream");
    const std::vector<std::string_view> get{"get", "k"};
    EXPECT_EQ(builtin.lookup(get)->name, "get");
    EXPECT_EQ(builtin.lookup({}), nullptr);
}

TEST(Flags, OfWellKnownCommands) {
    EXPECT_TRUE(cmd::is_readonly(spec("get")));
    EXPECT_TRUE(cmd::is_fast(spec("get")));
    EXPECT_FALSE(cmd::is_write(spec("get")));
    EXPECT_EQ(spec("get").arity, 2);
    EXPECT_EQ(spec("get").first_key, 1);

    EXPECT_TRUE(cmd::is_write(spec("set")));
    EXPECT_TRUE(cmd::has_flag(spec("set"), cmd::flag::denyoom));
    EXPECT_FALSE(cmd::is_readonly(spec("set")));
    EXPECT_EQ(spec("set").arity, -3);

    EXPECT_TRUE(cmd::is_blocking(spec("blpop")));
    EXPECT_TRUE(cmd::is_blocking(spec("bzmpop")));
    EXPECT_TRUE(cmd::is_blocking(spec("xread")));
    EXPECT_FALSE(cmd::is_blocking(spec("lpop")));

    EXPECT_TRUE(cmd::is_pubsub(spec("subscribe")));
    EXPECT_TRUE(cmd::is_pubsub(spec("ssubscribe")));
    EXPECT_TRUE(cmd::is_pubsub(spec("spublish")));
    EXPECT_TRUE(cmd::is_write(spec("flushall")));
    EXPECT_TRUE(cmd::has_flag(spec("flushall"), cmd::flag::request_all_shards));
    EXPECT_TRUE(cmd::is_readonly(spec("keys")));
    EXPECT_TRUE(cmd::has_unordered_output(spec("keys")));
    EXPECT_TRUE(cmd::has_unordered_output(spec("smembers")));
    EXPECT_TRUE(cmd::is_nondeterministic(spec("randomkey")));
    EXPECT_TRUE(cmd::is_nondeterministic(spec("spop")));
    EXPECT_TRUE(cmd::has_flag(spec("spop"), cmd::flag::random));  // the Redis 6 name
    EXPECT_FALSE(cmd::is_nondeterministic(spec("get")));

    EXPECT_TRUE(cmd::is_admin(spec("config", "set")));
    EXPECT_TRUE(cmd::is_admin(spec("client", "kill")));
    EXPECT_TRUE(cmd::is_readonly(spec("object", "encoding")));
    EXPECT_EQ(spec("object", "encoding").first_key, 2);
    EXPECT_TRUE(cmd::is_write(spec("function", "load")));
    EXPECT_TRUE(cmd::has_flag(spec("script", "load"), cmd::flag::request_all_nodes));
    EXPECT_TRUE(cmd::has_flag(spec("mset"), cmd::flag::request_multi_shard));
    EXPECT_TRUE(cmd::has_flag(spec("scan"), cmd::flag::request_special));

    EXPECT_TRUE(cmd::has_movable_keys(spec("eval")));
    EXPECT_TRUE(cmd::has_flag(spec("eval"), cmd::flag::noscript));
    EXPECT_TRUE(cmd::is_readonly(spec("eval_ro")));
    EXPECT_TRUE(cmd::has_keys(spec("eval")));
    EXPECT_FALSE(cmd::has_keys(spec("ping")));
    EXPECT_TRUE(cmd::has_flag(spec("auth"), cmd::flag::no_auth));
    EXPECT_TRUE(cmd::has_flag(spec("hello"), cmd::flag::no_auth));
    EXPECT_TRUE(cmd::has_flag(spec("multi"), cmd::flag::allow_busy));
    EXPECT_TRUE(cmd::has_flag(spec("save"), cmd::flag::no_multi));
    EXPECT_TRUE(cmd::has_flag(spec("ping"), cmd::flag::fast));
}

TEST(Flags, NamesRoundTrip) {
    EXPECT_EQ(cmd::flag_from_name("readonly"), cmd::flag::readonly);
    EXPECT_EQ(cmd::flag_from_name("READONLY"), cmd::flag::readonly);
    EXPECT_EQ(cmd::flag_from_name("skip-monitor"), cmd::flag::skip_monitor);
    EXPECT_EQ(cmd::flag_from_name("random"), cmd::flag::nondeterministic_output);
    EXPECT_EQ(cmd::flag_from_name("sort_for_script"), cmd::flag::nondeterministic_output_order);
    EXPECT_EQ(cmd::flag_from_name("request_policy:all_shards"), cmd::flag::request_all_shards);
    EXPECT_EQ(cmd::flag_from_name("response_policy:agg_sum"), 0U);
    EXPECT_EQ(cmd::flag_from_name(""), 0U);
    EXPECT_EQ(cmd::flag_name(cmd::flag::random), "nondeterministic_output");
    EXPECT_EQ(cmd::flag_name(cmd::flag::write), "write");
    for (unsigned bit = 0; bit < 28; ++bit) {
        const auto f = static_cast<cmd::flag>(1U << bit);
        EXPECT_FALSE(cmd::flag_name(f).empty()) << bit;
        EXPECT_EQ(cmd::flag_from_name(cmd::flag_name(f)), f);
    }
    EXPECT_TRUE(cmd::flag_name(static_cast<cmd::flag>(1U << 31)).empty());
}

// ---- from_command_reply --------------------------------------------------------------------

value strings(std::initializer_list<std::string_view> xs, bool as_set = false) {
    std::vector<value> out;
    for (auto x : xs)
        out.push_back(value::simple_string(std::string(x)));
    return as_set ? value::set(std::move(out)) : value::array(std::move(out));
}

value entry(std::string_view name, std::int64_t arity, value flags, std::int64_t first,
            std::int64_t last, std::int64_t step, value tips = value::array({}),
            value subcommands = value::array({})) {
    return value::array({value::bulk_string(std::string(name)), value::integer(arity),
                         std::move(flags), value::integer(first), value::integer(last),
                         value::integer(step), strings({"@read"}), std::move(tips),
                         value::array({}), std::move(subcommands)});
}

TEST(FromCommandReply, HandBuiltResp2Reply) {
    const value reply = value::array(
        {entry("GET", 2, strings({"readonly", "fast"}), 1, 1, 1),
         entry("mset", -3, strings({"write", "denyoom"}), 1, -1, 2,
               strings({"request_policy:multi_shard", "response_policy:all_succeeded"})),
         entry("object", -2, strings({}), 0, 0, 0, value::array({}),
               value::array({entry("object|encoding", 3, strings({"readonly"}), 2, 2, 1,
                                   strings({"nondeterministic_output"}))})),
         value::null()});
    std::string error = "stale";
    const command_table t = command_table::from_command_reply(reply, &error);
    EXPECT_EQ(error, "");
    ASSERT_EQ(t.size(), 4U);
    const command_spec* get = t.find("get");
    ASSERT_NE(get, nullptr);
    EXPECT_EQ(*get, (command_spec{"get", 2, cmd::flag::readonly | cmd::flag::fast, 1, 1, 1}));
    EXPECT_EQ(t.find("MSET")->flags,
              cmd::flag::write | cmd::flag::denyoom | cmd::flag::request_multi_shard);
    EXPECT_EQ(t.find("object")->flags, cmd::flag::has_subcommands);
    const command_spec* enc = t.find("object", "encoding");
    ASSERT_NE(enc, nullptr);
    EXPECT_EQ(enc->flags, cmd::flag::readonly | cmd::flag::nondeterministic_output);

    std::vector<std::size_t> out;
    const std::vector<std::string_view> mset{"MSET", "a", "1", "b", "2"};
    ASSERT_TRUE(t.key_positions(mset, out));
    EXPECT_EQ(out, (std::vector<std::size_t>{1, 3}));
    const std::vector<std::string_view> object{"OBJECT", "ENCODING", "k"};
    ASSERT_TRUE(t.key_positions(object, out));
    EXPECT_EQ(out, (std::vector<std::size_t>{2}));
    const std::vector<std::string_view> del{"DEL", "k"};
    EXPECT_FALSE(t.key_positions(del, out));  // not in this table
}

TEST(FromCommandReply, Resp3SetsAndRedis6Shape) {
    // RESP3 flags are sets; a Redis 6 entry has no tips, key specs or subcommands, and says
    // "random" where Redis 7 has a tip.
    const value reply =
        value::array({value::array({value::bulk_string("spop"), value::integer(-2),
                                    strings({"write", "random", "fast"}, true), value::integer(1),
                                    value::integer(1), value::integer(1), strings({"@set"}, true)}),
                      value::array({value::bulk_string("ping"), value::integer(-1),
                                    strings({"stale", "fast"}, true), value::integer(0),
                                    value::integer(0), value::integer(0)})});
    const command_table t = command_table::from_command_reply(reply);
    ASSERT_EQ(t.size(), 2U);
    EXPECT_TRUE(cmd::is_nondeterministic(*t.find("spop")));
    EXPECT_TRUE(cmd::is_write(*t.find("spop")));
    EXPECT_EQ(t.find("ping")->flags, cmd::flag::stale | cmd::flag::fast);
}

TEST(FromCommandReply, CapturedCommandInfoMatchesBuiltin) {
    for (auto bytes : {captured::command_info_resp2, captured::command_info_resp3}) {
        std::string error;
        const command_table t = command_table::from_command_reply(parse(bytes), &error);
        EXPECT_EQ(error, "");
        // get, memory and its 6 subcommands, zunionstore; the unknown name is a null.
        EXPECT_EQ(t.size(), 9U);
        for (const auto& s : t.specs()) {
            ASSERT_NE(builtin.find(s.name), nullptr) << s.name;
            EXPECT_EQ(s, *builtin.find(s.name));
        }
        std::vector<std::size_t> out;
        const std::vector<std::string_view> req{"ZUNIONSTORE", "d", "2", "a", "b"};
        ASSERT_TRUE(t.key_positions(req, out));
        EXPECT_EQ(out, (std::vector<std::size_t>{1, 3, 4}));
    }
}

TEST(FromCommandReply, MalformedRepliesAndEntries) {
    std::string error;
    EXPECT_TRUE(
        command_table::from_command_reply(value::simple_error("ERR unknown"), &error).empty());
    EXPECT_NE(error.find("ERR unknown"), std::string::npos);
    EXPECT_TRUE(command_table::from_command_reply(value::integer(1), &error).empty());
    EXPECT_FALSE(error.empty());

    const value reply = value::array({
        entry("get", 2, strings({"readonly"}), 1, 1, 1),
        value::integer(7),                                               // not an entry
        value::array({value::bulk_string("short"), value::integer(1)}),  // too short
        entry("", 1, strings({}), 0, 0, 0),                              // no name
        value::array({value::bulk_string("x"), value::bulk_string("two"), strings({}),
                      value::integer(0), value::integer(0), value::integer(0)}),  // bad arity
        value::array({value::bulk_string("y"), value::integer(1), value::integer(3),
                      value::integer(0), value::integer(0), value::integer(0)}),  // bad flags
        value::array({value::bulk_string("z"), value::integer(99999999999), strings({}),
                      value::integer(0), value::integer(0), value::integer(0)}),  // overflow
        // A container keeps its good subcommands when one is bad.
        entry("memory", -2, strings({}), 0, 0, 0, value::array({}),
              value::array(
                  {entry("memory|usage", -3, strings({"readonly"}), 2, 2, 1), value::integer(3)})),
    });
    const command_table t = command_table::from_command_reply(reply, &error);
    EXPECT_EQ(error, "skipped 6 malformed COMMAND entries");
    EXPECT_EQ(t.size(), 3U);
    EXPECT_NE(t.find("get"), nullptr);
    EXPECT_NE(t.find("memory", "usage"), nullptr);
}

TEST(CommandTable, ConstructorSortsLowerCasesAndKeepsTheLastDuplicate) {
    const command_table t(std::vector<command_spec>{{"ZZZ", 1, 0, 0, 0, 0},
                                                    {"Get", 2, cmd::flag::readonly, 1, 1, 1},
                                                    {"get", 2, cmd::flag::write, 1, 1, 1}});
    ASSERT_EQ(t.size(), 2U);
    EXPECT_EQ(t.specs()[0].name, "get");
    EXPECT_EQ(t.specs()[0].flags, cmd::flag::write);
    EXPECT_EQ(t.specs()[1].name, "zzz");
    EXPECT_EQ(command_table{}.find("get"), nullptr);
    EXPECT_TRUE(command_table{}.empty());
}

}  // namespace
