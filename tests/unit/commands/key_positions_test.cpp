// Key positions of requests: ranges, subcommands, the movable-keys rules and malformed input.
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <respite/commands/command_table.hpp>

namespace {

using respite::commands::command_table;
using positions = std::vector<std::size_t>;

// Key indices of a request, or nullopt when key_positions refuses it.
std::optional<positions> keys(std::initializer_list<std::string_view> request,
                              const command_table& table = command_table::builtin()) {
    const std::vector<std::string_view> args(request);
    positions out{99};  // must be replaced, not appended to
    if (!table.key_positions(args, out)) {
        EXPECT_TRUE(out.empty());
        return std::nullopt;
    }
    return out;
}

TEST(KeyPositions, FirstLastStepRanges) {
    EXPECT_EQ(keys({"GET", "k"}), (positions{1}));
    EXPECT_EQ(keys({"set", "k", "v", "EX", "10"}), (positions{1}));
    EXPECT_EQ(keys({"MSET", "k1", "v1", "k2", "v2"}), (positions{1, 3}));
    EXPECT_EQ(keys({"MSETNX", "k1", "v1"}), (positions{1}));
    EXPECT_EQ(keys({"MGET", "a", "b", "c"}), (positions{1, 2, 3}));
    EXPECT_EQ(keys({"DEL", "a", "b"}), (positions{1, 2}));
    EXPECT_EQ(keys({"RENAME", "a", "b"}), (positions{1, 2}));
    EXPECT_EQ(keys({"BITOP", "AND", "dest", "s1", "s2"}), (positions{2, 3, 4}));
    EXPECT_EQ(keys({"SMOVE", "src", "dst", "member"}), (positions{1, 2}));
    EXPECT_EQ(keys({"LMOVE", "src", "dst", "LEFT", "RIGHT"}), (positions{1, 2}));
    EXPECT_EQ(keys({"BLPOP", "l1", "l2", "0"}), (positions{1, 2}));
    EXPECT_EQ(keys({"BZPOPMIN", "z", "1.5"}), (positions{1}));
    EXPECT_EQ(keys({"SINTERSTORE", "d", "a", "b"}), (positions{1, 2, 3}));
    EXPECT_EQ(keys({"WATCH", "a", "b"}), (positions{1, 2}));
    EXPECT_EQ(keys({"PFMERGE", "d", "a"}), (positions{1, 2}));
    EXPECT_EQ(keys({"SSUBSCRIBE", "c1", "c2"}), (positions{1, 2}));
    EXPECT_EQ(keys({"SPUBLISH", "c", "msg"}), (positions{1}));
    EXPECT_EQ(keys({"BITFIELD_RO", "k", "GET", "u8", "0"}), (positions{1}));
    EXPECT_EQ(keys({"EXPIRETIME", "k"}), (positions{1}));
    EXPECT_EQ(keys({"LCS", "a", "b", "LEN"}), (positions{1, 2}));
    EXPECT_EQ(keys({"GEOSEARCHSTORE", "d", "s", "FROMMEMBER", "m", "BYRADIUS", "1", "km"}),
              (positions{1, 2}));
}

TEST(KeyPositions, CommandsWithoutKeys) {
    EXPECT_EQ(keys({"PING"}), positions{});
    EXPECT_EQ(keys({"FLUSHALL"}), positions{});
    EXPECT_EQ(keys({"KEYS", "*"}), positions{});
    EXPECT_EQ(keys({"PUBLISH", "ch", "m"}), positions{});
    EXPECT_EQ(keys({"SUBSCRIBE", "ch"}), positions{});
    EXPECT_EQ(keys({"MULTI"}), positions{});
    EXPECT_EQ(keys({"SUNSUBSCRIBE"}), positions{});  // variadic: every shard channel
    EXPECT_EQ(keys({"SUNSUBSCRIBE", "c"}), (positions{1}));
}

TEST(KeyPositions, Subcommands) {
    EXPECT_EQ(keys({"OBJECT", "ENCODING", "k"}), (positions{2}));
    EXPECT_EQ(keys({"object", "freq", "k"}), (positions{2}));
    EXPECT_EQ(keys({"XINFO", "STREAM", "s", "FULL"}), (positions{2}));
    EXPECT_EQ(keys({"xinfo", "groups", "s"}), (positions{2}));
    EXPECT_EQ(keys({"MEMORY", "USAGE", "k", "SAMPLES", "5"}), (positions{2}));
    EXPECT_EQ(keys({"CONFIG", "GET", "maxmemory"}), positions{});
    EXPECT_EQ(keys({"CLIENT", "KILL", "ID", "7"}), positions{});
    EXPECT_EQ(keys({"FUNCTION", "LOAD", "code"}), positions{});
    EXPECT_EQ(keys({"SCRIPT", "LOAD", "return 1"}), positions{});
    EXPECT_EQ(keys({"OBJECT", "NOSUCH", "k"}), std::nullopt);
    EXPECT_EQ(keys({"OBJECT"}), std::nullopt);  // a container alone breaks its arity
}

TEST(KeyPositions, ScriptsAndFunctions) {
    EXPECT_EQ(keys({"EVAL", "return 1", "2", "a", "b", "arg"}), (positions{3, 4}));
    EXPECT_EQ(keys({"EVAL", "return 1", "0"}), positions{});
    EXPECT_EQ(keys({"EVAL", "return 1", "0", "arg"}), positions{});
    EXPECT_EQ(keys({"evalsha", "abc", "1", "k"}), (positions{3}));
    EXPECT_EQ(keys({"EVAL_RO", "s", "1", "k"}), (positions{3}));
    EXPECT_EQ(keys({"EVALSHA_RO", "s", "2", "k1", "k2"}), (positions{3, 4}));
    EXPECT_EQ(keys({"FCALL", "f", "1", "k", "a"}), (positions{3}));
    EXPECT_EQ(keys({"FCALL_RO", "f", "0"}), positions{});
}

TEST(KeyPositions, NumkeysCommands) {
    EXPECT_EQ(keys({"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}), (positions{1, 3, 4}));
    EXPECT_EQ(keys({"ZINTERSTORE", "d", "1", "a"}), (positions{1, 3}));
    EXPECT_EQ(keys({"ZDIFFSTORE", "d", "2", "a", "b"}), (positions{1, 3, 4}));
    EXPECT_EQ(keys({"ZUNION", "2", "a", "b", "WITHSCORES"}), (positions{2, 3}));
    EXPECT_EQ(keys({"ZINTER", "1", "a"}), (positions{2}));
    EXPECT_EQ(keys({"ZDIFF", "2", "a", "b"}), (positions{2, 3}));
    EXPECT_EQ(keys({"ZINTERCARD", "2", "a", "b", "LIMIT", "5"}), (positions{2, 3}));
    EXPECT_EQ(keys({"SINTERCARD", "3", "a", "b", "c"}), (positions{2, 3, 4}));
    EXPECT_EQ(keys({"LMPOP", "2", "a", "b", "LEFT"}), (positions{2, 3}));
    EXPECT_EQ(keys({"ZMPOP", "1", "z", "MIN", "COUNT", "2"}), (positions{2}));
    EXPECT_EQ(keys({"BLMPOP", "0.5", "2", "a", "b", "RIGHT"}), (positions{3, 4}));
    EXPECT_EQ(keys({"BZMPOP", "0", "1", "z", "MAX"}), (positions{3}));
}

TEST(KeyPositions, Streams) {
    EXPECT_EQ(keys({"XREAD", "STREAMS", "s1", "s2", "0", "0"}), (positions{2, 3}));
    EXPECT_EQ(keys({"XREAD", "COUNT", "10", "BLOCK", "0", "streams", "s", "$"}), (positions{6}));
    EXPECT_EQ(keys({"XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "NOACK", "STREAMS", "a", "b",
                    ">", ">"}),
              (positions{8, 9}));
    // A group or consumer named "streams" is not the keyword.
    EXPECT_EQ(keys({"XREADGROUP", "GROUP", "streams", "streams", "STREAMS", "s", ">"}),
              (positions{5}));
    // A key named "streams" after the keyword is a key.
    EXPECT_EQ(keys({"XREAD", "STREAMS", "streams", "0"}), (positions{2}));
    EXPECT_EQ(keys({"XADD", "s", "*", "f", "v"}), (positions{1}));
}

TEST(KeyPositions, Migrate) {
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "k", "0", "5000"}), (positions{3}));
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "k", "0", "5000", "COPY", "REPLACE"}), (positions{3}));
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "", "0", "5000", "KEYS", "a", "b"}), (positions{7, 8}));
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "", "0", "5000", "COPY", "AUTH", "keys", "KEYS", "a"}),
              (positions{10}));
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "", "0", "5000", "AUTH2", "keys", "keys", "KEYS", "a",
                    "b", "c"}),
              (positions{10, 11, 12}));
    // KEYS together with a single key is a syntax error.
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "k", "0", "5000", "KEYS", "a"}), std::nullopt);
}

TEST(KeyPositions, SortPatternsAreNotKeys) {
    EXPECT_EQ(keys({"SORT", "list"}), (positions{1}));
    EXPECT_EQ(keys({"SORT", "list", "BY", "w_*", "GET", "o_*", "GET", "#", "STORE", "dst"}),
              (positions{1, 9}));
    EXPECT_EQ(keys({"SORT", "l", "LIMIT", "0", "10", "ALPHA", "DESC"}), (positions{1}));
    // The pattern of GET may be spelled "store"; the last STORE wins.
    EXPECT_EQ(keys({"SORT", "l", "GET", "store", "STORE", "d1", "STORE", "d2"}), (positions{1, 7}));
    EXPECT_EQ(keys({"SORT_RO", "l", "BY", "nosort", "GET", "x_*"}), (positions{1}));
}

TEST(KeyPositions, GeoradiusStore) {
    EXPECT_EQ(keys({"GEORADIUS", "g", "15", "37", "200", "km"}), (positions{1}));
    EXPECT_EQ(keys({"GEORADIUS", "g", "15", "37", "200", "km", "STORE", "dst"}), (positions{1, 7}));
    EXPECT_EQ(keys({"GEORADIUSBYMEMBER", "g", "m", "10", "km", "STOREDIST", "dd"}),
              (positions{1, 6}));
    EXPECT_EQ(keys({"GEORADIUS_RO", "g", "15", "37", "200", "km"}), (positions{1}));
}

TEST(KeyPositions, MalformedRequestsAreRefused) {
    EXPECT_EQ(keys({}), std::nullopt);
    EXPECT_EQ(keys({"NOSUCHCOMMAND", "k"}), std::nullopt);
    EXPECT_EQ(keys({"GET"}), std::nullopt);                     // arity 2
    EXPECT_EQ(keys({"GET", "a", "b"}), std::nullopt);           // arity 2
    EXPECT_EQ(keys({"MSET", "k1", "v1", "k2"}), std::nullopt);  // odd key/value tail
    EXPECT_EQ(keys({"MSET", "k1"}), std::nullopt);
    EXPECT_EQ(keys({"BITOP", "AND", "d"}), std::nullopt);
    // numkeys larger than what follows, negative, not a number, zero where a key is needed.
    EXPECT_EQ(keys({"EVAL", "s", "3", "a", "b"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "-1", "a"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "x", "a"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "1x", "a"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "", "a"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "+1", "a"}), std::nullopt);
    EXPECT_EQ(keys({"EVAL", "s", "99999999999999999999999", "a"}), std::nullopt);
    EXPECT_EQ(keys({"FCALL", "f", "18446744073709551615", "a"}), std::nullopt);
    EXPECT_EQ(keys({"ZUNIONSTORE", "d", "5", "a"}), std::nullopt);
    EXPECT_EQ(keys({"ZUNION", "0", "a"}), std::nullopt);
    EXPECT_EQ(keys({"SINTERCARD", "-2", "a", "b"}), std::nullopt);
    EXPECT_EQ(keys({"LMPOP", "3", "a", "LEFT"}), std::nullopt);
    EXPECT_EQ(keys({"BLMPOP", "0", "notanumber", "a", "LEFT"}), std::nullopt);
    EXPECT_EQ(keys({"BZMPOP", "0", "9", "a", "MIN"}), std::nullopt);
    // XREAD without STREAMS, with an odd tail, with nothing after STREAMS, unknown option.
    EXPECT_EQ(keys({"XREAD", "COUNT", "1", "s1", "0"}), std::nullopt);
    EXPECT_EQ(keys({"XREAD", "STREAMS", "a", "b", "0"}), std::nullopt);
    EXPECT_EQ(keys({"XREAD", "BLOCK", "0", "STREAMS"}), std::nullopt);
    EXPECT_EQ(keys({"XREAD", "BOGUS", "STREAMS", "a", "0"}), std::nullopt);
    EXPECT_EQ(keys({"XREADGROUP", "GROUP", "g", "c", "COUNT", "STREAMS", "s", ">"}),
              std::nullopt);  // COUNT swallows STREAMS
    EXPECT_EQ(keys({"MIGRATE", "h", "6379", "k", "0"}), std::nullopt);
}

// Every prefix of a long request, for every command: never a crash or an out-of-bounds read
// (this runs under ASan), and a refusal always leaves `out` empty.
TEST(KeyPositions, EveryCommandWithEveryArgumentCountIsSafe) {
    const std::vector<std::string> pool = {"STREAMS", "2",  "KEYS",  "STORE", "k", "-1", "",
                                           "GET",     "BY", "LIMIT", "AUTH2", "1", "x"};
    std::vector<std::string_view> args;
    std::vector<std::size_t> out;
    std::size_t accepted = 0;
    for (const auto& spec : command_table::builtin().specs()) {
        const auto bar = spec.name.find('|');
        for (std::size_t rotate = 0; rotate < pool.size(); ++rotate) {
            args.clear();
            if (bar == std::string::npos) {
                args.push_back(spec.name);
            } else {
                args.push_back(std::string_view(spec.name).substr(0, bar));
                args.push_back(std::string_view(spec.name).substr(bar + 1));
            }
            for (std::size_t n = 0; n <= 12; ++n) {
                if (command_table::builtin().key_positions(args, out)) {
                    ++accepted;
                    for (auto i : out)
                        ASSERT_LT(i, args.size()) << spec.name;
                } else {
                    ASSERT_TRUE(out.empty()) << spec.name;
                }
                args.push_back(pool[(n + rotate) % pool.size()]);
            }
        }
    }
    EXPECT_GT(accepted, 1000U);
}

}  // namespace
