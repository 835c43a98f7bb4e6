// The proxy's routing table: every Redis 7.0 command lands where it must.
#include "classify.hpp"

#include <gtest/gtest.h>

namespace respite::proxy::server {
namespace {

route of(std::initializer_list<std::string_view> args) {
    std::vector<std::string_view> v(args);
    return classify(v, commands::command_table::builtin()).kind;
}

TEST(proxy_classify, commands_the_original_missed_are_routed_by_the_table) {
    EXPECT_EQ(of({"BZMPOP", "1", "1", "z", "MIN"}), route::blocking);
    EXPECT_EQ(of({"BLMPOP", "0", "1", "l", "LEFT"}), route::blocking);
    EXPECT_EQ(of({"LMPOP", "1", "l", "LEFT"}), route::write);
    EXPECT_EQ(of({"ZMPOP", "1", "z", "MIN"}), route::write);
    EXPECT_EQ(of({"BITFIELD", "k", "INCRBY", "u8", "0", "1"}), route::write);
    EXPECT_EQ(of({"BITFIELD_RO", "k", "GET", "u8", "0"}), route::read);
    EXPECT_EQ(of({"EXPIRETIME", "k"}), route::read);
    EXPECT_EQ(of({"PEXPIRETIME", "k"}), route::read);
    EXPECT_EQ(of({"SPUBLISH", "ch", "m"}), route::write);
    EXPECT_EQ(of({"PUBLISH", "ch", "m"}), route::write);
    EXPECT_EQ(of({"LCS", "a", "b"}), route::read);
    EXPECT_EQ(of({"ZRANDMEMBER", "z"}), route::read);
    EXPECT_EQ(of({"SETBIT", "k", "1", "1"}), route::write);
    EXPECT_EQ(of({"GETEX", "k", "EX", "1"}), route::write);
}

TEST(proxy_classify, blocking_is_decided_by_the_block_option_not_a_key_named_block) {
    EXPECT_EQ(of({"XREAD", "COUNT", "1", "STREAMS", "block", "0"}), route::read);
    EXPECT_EQ(of({"XREAD", "BLOCK", "100", "STREAMS", "s", "$"}), route::blocking);
    EXPECT_EQ(of({"GET", "block"}), route::read);
    // XREADGROUP moves the group's cursor and PEL: a write even without BLOCK.
    EXPECT_EQ(of({"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}), route::write);
    EXPECT_EQ(of({"XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">"}),
              route::blocking);
    EXPECT_EQ(of({"BLPOP", "l", "0"}), route::blocking);
    EXPECT_EQ(of({"WAIT", "1", "0"}), route::blocking);
}

TEST(proxy_classify, session_state_is_pinned_or_local) {
    EXPECT_EQ(of({"MULTI"}), route::transaction);
    EXPECT_EQ(of({"WATCH", "k"}), route::transaction);
    EXPECT_EQ(of({"UNWATCH"}), route::transaction);
    EXPECT_EQ(of({"CLIENT", "TRACKING", "on"}), route::pinning);
    EXPECT_EQ(of({"CLIENT", "REPLY", "OFF"}), route::local);  // refused by the session
    EXPECT_EQ(of({"MONITOR"}), route::pinning);
    EXPECT_EQ(of({"CLIENT", "SETNAME", "x"}), route::local);
    EXPECT_EQ(of({"CLIENT", "LIST"}), route::local);  // the proxy's own clients
    EXPECT_EQ(of({"CLIENT", "KILL", "ID", "1"}), route::local);
    EXPECT_EQ(of({"CLIENT", "PAUSE", "10"}), route::admin);
    EXPECT_EQ(of({"SELECT", "1"}), route::local);
    EXPECT_EQ(of({"HELLO", "3"}), route::local);
    EXPECT_EQ(of({"AUTH", "pw"}), route::local);
    EXPECT_EQ(of({"RESET"}), route::local);
    EXPECT_EQ(of({"INFO", "proxy"}), route::local);
    EXPECT_EQ(of({"INFO"}), route::admin);
    EXPECT_EQ(of({"SSUBSCRIBE", "c"}), route::subscribe);
    EXPECT_EQ(of({"PUNSUBSCRIBE"}), route::subscribe);
}

TEST(proxy_classify, scripts_and_keyspace_writes) {
    EXPECT_EQ(of({"EVAL", "return 1", "0"}), route::write);
    EXPECT_EQ(of({"EVALSHA_RO", "abc", "0"}), route::read);
    EXPECT_EQ(of({"FCALL", "f", "0"}), route::write);
    EXPECT_EQ(of({"SCRIPT", "LOAD", "return 1"}), route::write);
    EXPECT_EQ(of({"SCRIPT", "EXISTS", "abc"}), route::admin);
    EXPECT_EQ(of({"FLUSHALL"}), route::write);
    EXPECT_EQ(of({"FUNCTION", "LOAD", "x"}), route::write);
    EXPECT_EQ(of({"CONFIG", "GET", "x"}), route::admin);
}

// PFCOUNT of one key writes its cached cardinality into the value (the secondary's bytes would
// differ without it); of several keys it writes nothing.
TEST(proxy_classify, pfcount_of_one_key_is_a_write) {
    EXPECT_EQ(of({"PFCOUNT", "h"}), route::write);
    EXPECT_EQ(of({"PFCOUNT", "h", "g"}), route::read);
}

TEST(proxy_classify, unknown_commands_are_writes_under_one_label) {
    std::vector<std::string_view> v{"MODULE.DOTHING", "k"};
    const auto c = classify(v, commands::command_table::builtin());
    EXPECT_EQ(c.kind, route::write);
    EXPECT_EQ(c.label, "other");
    std::vector<std::string_view> sub{"CONFIG", "NOSUCHSUB"};
    EXPECT_EQ(classify(sub, commands::command_table::builtin()).label, "config");
    std::vector<std::string_view> get{"get", "k"};
    EXPECT_EQ(classify(get, commands::command_table::builtin()).label, "get");
}

TEST(proxy_classify, only_deterministic_reads_are_shadowed) {
    auto shadowed = [](std::initializer_list<std::string_view> args) {
        std::vector<std::string_view> v(args);
        return classify(v, commands::command_table::builtin()).shadowable;
    };
    EXPECT_TRUE(shadowed({"GET", "k"}));
    EXPECT_TRUE(shadowed({"SMEMBERS", "s"}));
    EXPECT_FALSE(shadowed({"SRANDMEMBER", "s"}));
    EXPECT_FALSE(shadowed({"RANDOMKEY"}));
    EXPECT_FALSE(shadowed({"SCAN", "0"}));
    EXPECT_FALSE(shadowed({"SET", "k", "v"}));
    EXPECT_FALSE(shadowed({"OBJECT", "ENCODING", "k"}));
}

}  // namespace
}  // namespace respite::proxy::server

namespace respite::proxy::server {
namespace {

TEST(proxy_classifier, the_cache_agrees_with_the_full_classification_for_every_command) {
    const auto& t = commands::command_table::builtin();
    const classifier fast(t);
    for (const auto& spec : t.specs()) {
        const std::string_view name = spec.name;
        const auto bar = name.find('|');
        std::vector<std::string_view> args{name.substr(0, bar)};
        if (bar != std::string_view::npos)
            args.push_back(name.substr(bar + 1));
        args.push_back("k");
        const auto a = fast(args);
        const auto b = classify(args, t);
        EXPECT_EQ(a.kind, b.kind) << name;
        EXPECT_EQ(a.label, b.label) << name;
        EXPECT_EQ(a.shadowable, b.shadowable) << name;
        EXPECT_EQ(a.plain, b.plain) << name;
        // Every command session::handle treats by name, or that is backend-wide, is not plain:
        // the handler's name checks run for it.
        if (!backend_wide_command(args).empty()) {
            EXPECT_FALSE(a.plain) << name;
        }
    }
    const auto plain = [&](std::initializer_list<std::string_view> a) {
        return fast(std::span<const std::string_view>(a.begin(), a.size())).plain;
    };
    EXPECT_TRUE(plain({"SET", "k", "v"}));
    EXPECT_TRUE(plain({"get", "k"}));
    EXPECT_TRUE(plain({"LPUSH", "k", "v"}));
    for (auto n :
         {"CONFIG",  "config",   "CLUSTER", "READONLY", "READWRITE", "ASKING",    "INFO",
          "PROXY",   "CLIENT",   "AUTH",    "HELLO",    "QUIT",      "PING",      "RESET",
          "MONITOR", "SHUTDOWN", "DEBUG",   "ACL",      "MODULE",    "REPLICAOF", "SAVE"}) {
        EXPECT_FALSE(plain({n, "get", "x"})) << n;
    }
    EXPECT_FALSE(plain({"NOSUCHCOMMAND", "k"}));  // unknown: every check runs
    std::vector<std::string_view> x{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"};
    EXPECT_EQ(fast(x).kind, route::blocking);
    std::vector<std::string_view> info{"INFO", "proxy"};
    EXPECT_EQ(fast(info).kind, route::local);
}

// The per-thread cache of the last name: the same name twice in a row (any spelling, other
// arguments), a container's subcommands, commands whose route depends on their arguments and
// a second classifier in between all classify as the full path does.
TEST(proxy_classifier, the_last_name_cache_agrees_with_the_full_classification) {
    const auto& t = commands::command_table::builtin();
    const classifier fast(t);
    const classifier other(t);
    const std::vector<std::vector<std::string_view>> seq = {
        {"SET", "k", "v"},
        {"SET", "k", "v"},
        {"set", "k", "v"},
        {"CLIENT", "SETNAME", "x"},
        {"CLIENT", "TRACKING", "on"},
        {"CLIENT", "PAUSE", "10"},
        {"XREAD", "STREAMS", "s", "0"},
        {"XREAD", "BLOCK", "0", "STREAMS", "s", "$"},
        {"XREAD", "STREAMS", "s", "0"},
        {"INFO", "proxy"},
        {"INFO"},
        {"INFO", "proxy"},
        {"BLPOP", "l", "0"},
        {"BLPOP", "l", "0"},
        {"GET", "k"},
        {"NOSUCHCOMMAND", "k"},
        {"NOSUCHCOMMAND", "k"},
        {"CONFIG", "GET", "port"},
        {"CONFIG", "SET", "port", "1"},
        {"GET", "k"},
        {"PUBLISH", "c", "m"},
        {"SUBSCRIBE", "c"},
        {"SUBSCRIBE", "c"},
        {"PFCOUNT", "h", "g"},
        {"PFCOUNT", "h"},
        {"PFCOUNT", "h", "g"},
    };
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto& args : seq) {
            for (const classifier* c : {&fast, &fast, &other}) {
                const auto a = (*c)(args);
                const auto b = classify(args, t);
                EXPECT_EQ(a.kind, b.kind) << args[0] << " " << (args.size() > 1 ? args[1] : "");
                EXPECT_EQ(a.label, b.label) << args[0];
                EXPECT_EQ(a.spec, b.spec) << args[0];
                EXPECT_EQ(a.shadowable, b.shadowable) << args[0];
                EXPECT_EQ(a.plain, b.plain) << args[0];
            }
        }
    }
}

// A table read from an older server's COMMAND (Redis 6: no subcommand entries, no `blocking`
// flag): the commands whose route depends on their arguments still take the full path. The
// per-entry cache had CLIENT TRACKING as admin (not pinning), SCRIPT LOAD as admin (never
// replayed) and BLPOP as a plain write on the shared connection.
TEST(proxy_classifier, a_table_without_subcommands_routes_by_the_arguments) {
    using resp::value;
    const auto entry = [](std::string_view name, std::int64_t arity,
                          std::initializer_list<std::string_view> flags, std::int64_t first,
                          std::int64_t last) {
        std::vector<value> f;
        for (auto x : flags)
            f.push_back(value::simple_string(std::string(x)));
        return value::array({value::bulk_string(std::string(name)), value::integer(arity),
                             value::array(std::move(f)), value::integer(first),
                             value::integer(last), value::integer(1)});
    };
    const value reply = value::array({
        entry("client", -2, {"admin", "noscript", "random", "loading", "stale"}, 0, 0),
        entry("script", -2, {"noscript"}, 0, 0),
        entry("blpop", -3, {"write", "noscript"}, 1, -2),
        entry("bzpopmin", -3, {"write", "noscript", "fast"}, 1, -2),
        entry("set", -3, {"write", "denyoom"}, 1, 1),
        entry("get", 2, {"readonly", "fast"}, 1, 1),
    });
    std::string error;
    const auto t = commands::command_table::from_command_reply(reply, &error);
    ASSERT_EQ(error, "");
    const classifier fast(t);
    const std::vector<std::vector<std::string_view>> cases = {
        {"CLIENT", "TRACKING", "on"},
        {"CLIENT", "SETNAME", "x"},
        {"CLIENT", "TRACKING", "on"},
        {"SCRIPT", "LOAD", "return 1"},
        {"SCRIPT", "EXISTS", "x"},
        {"SCRIPT", "LOAD", "return 1"},
        {"BLPOP", "l", "0"},
        {"BLPOP", "l", "0"},
        {"BZPOPMIN", "z", "1"},
        {"SET", "k", "v"},
        {"GET", "k"},
    };
    for (const auto& args : cases) {
        const auto a = fast(args);
        const auto b = classify(args, t);
        EXPECT_EQ(a.kind, b.kind) << args[0] << " " << args[1];
        EXPECT_EQ(a.plain, b.plain) << args[0];
    }
    std::vector<std::string_view> tracking{"CLIENT", "TRACKING", "on"};
    EXPECT_EQ(fast(tracking).kind, route::pinning);
    std::vector<std::string_view> load{"SCRIPT", "LOAD", "return 1"};
    EXPECT_EQ(fast(load).kind, route::write);
    std::vector<std::string_view> blpop{"BLPOP", "l", "0"};
    EXPECT_EQ(fast(blpop).kind, route::blocking);
}

}  // namespace
}  // namespace respite::proxy::server

namespace respite::proxy::server {
namespace {

TEST(proxy_classify, backend_wide_commands_are_named_and_the_rest_are_not) {
    const auto named = [](std::vector<std::string_view> args) {
        return backend_wide_command(args);
    };
    EXPECT_EQ(named({"SHUTDOWN"}), "shutdown");
    EXPECT_EQ(named({"shutdown", "NOSAVE"}), "shutdown");
    EXPECT_EQ(named({"Client", "Pause", "100"}), "client|pause");
    EXPECT_EQ(named({"CLIENT", "UNPAUSE"}), "client|unpause");
    EXPECT_EQ(named({"DEBUG", "SLEEP", "1"}), "debug");
    EXPECT_EQ(named({"DEBUG", "SEGFAULT"}), "debug");
    EXPECT_EQ(named({"REPLICAOF", "h", "1"}), "replicaof");
    EXPECT_EQ(named({"SLAVEOF", "NO", "ONE"}), "slaveof");
    EXPECT_EQ(named({"FAILOVER"}), "failover");
    EXPECT_EQ(named({"SYNC"}), "sync");
    EXPECT_EQ(named({"PSYNC", "?", "-1"}), "psync");
    EXPECT_EQ(named({"DEBUG", "DIGEST"}), "debug");  // hashes the whole dataset
    EXPECT_EQ(named({"SAVE"}), "save");
    EXPECT_EQ(named({"ACL", "SETUSER", "proxy", "off"}), "acl|setuser");
    EXPECT_EQ(named({"acl", "deluser", "proxy"}), "acl|deluser");
    EXPECT_EQ(named({"ACL", "LOAD"}), "acl|load");
    EXPECT_EQ(named({"ACL", "LIST"}), "acl|list");
    EXPECT_EQ(named({"acl", "getuser", "default"}), "acl|getuser");
    EXPECT_EQ(named({"CONFIG", "SET", "client-output-buffer-limit", "normal 1 0 0"}),
              "config|set client-output-buffer-limit");
    EXPECT_EQ(named({"config", "rewrite"}), "config|rewrite");
    EXPECT_EQ(named({"MODULE", "LOAD", "/x.so"}), "module|load");
    EXPECT_EQ(named({"CONFIG", "SET", "port", "1"}), "config|set port");
    EXPECT_EQ(named({"CONFIG", "SET", "maxmemory", "1mb", "BIND", "0.0.0.0"}), "config|set bind");
    // Reads, data writes and this client's own state pass.
    for (std::vector<std::string_view> args :
         {std::vector<std::string_view>{"debug", "digest-value", "k"},
          {"CONFIG", "SET", "maxmemory", "1mb"},
          {"CONFIG", "GET", "port"},
          {"ACL", "WHOAMI"},
          {"CLUSTER", "INFO"},
          {"CLUSTER", "RESET"},  // answered by the proxy
          {"CLUSTER", "SLOTS"},
          {"MODULE", "LIST"},
          {"BGSAVE"},
          {"SCAN", "0"},
          {"DEBUG", "OBJECT", "k"},
          {"DEBUG"},
          {"CLIENT", "LIST"},
          {"CLIENT", "SETNAME", "pause"},
          {"CLIENT"},
          {"SET", "shutdown", "v"},
          {"GET", "k"},
          {"FLUSHALL"},
          {"CONFIG", "GET", "maxmemory"},
          {}})
        EXPECT_EQ(named(args), "") << (args.empty() ? "" : args[0]);
}

}  // namespace
}  // namespace respite::proxy::server
