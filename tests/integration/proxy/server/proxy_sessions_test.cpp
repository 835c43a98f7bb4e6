// Session semantics: the same bytes get the same replies through the proxy as from Redis itself
// (transactions, WATCH, RESP2/RESP3), deep pipelines in order, blocking commands.
#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>

#include "proxy_fixture.hpp"

namespace respite::test {
namespace {

using proxy::mode;

class proxy_sessions : public proxy_fixture {
  protected:
    // In primary-only mode the secondary is idle: it serves as the "Redis directly" reference.
    void SetUp() override { start(mode::primary_only); }

    // Runs the same commands on a direct connection and through the proxy; expects equal frames.
    void same_as_redis(const std::vector<std::vector<std::string>>& script,
                       const std::function<void(raw_conn&, bool direct)>& between = {}) {
        raw_conn direct(secondary_.port());
        raw_conn proxied(proxy_->port());
        for (std::size_t i = 0; i < script.size(); ++i) {
            const auto& cmd = script[i];
            if (cmd.size() == 1 && cmd[0] == "<between>") {
                if (between) {
                    between(direct, true);
                    between(proxied, false);
                }
                continue;
            }
            std::string out = "*" + std::to_string(cmd.size()) + "\r\n";
            for (const auto& a : cmd)
                out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
            direct.send(out);
            proxied.send(out);
            auto a = direct.frame();
            auto b = proxied.frame();
            ASSERT_TRUE(a.has_value()) << "step " << i;
            ASSERT_TRUE(b.has_value()) << "step " << i << " (proxy gave no reply)";
            if (cmd[0] == "HELLO") {
                // Connection ids differ between two connections; nothing else may.
                const auto id_of = [](std::string& f) {
                    auto p = f.find("id\r\n:");
                    if (p != std::string::npos)
                        f.erase(p + 5, f.find("\r\n", p + 5) - (p + 5));
                };
                id_of(*a);
                id_of(*b);
            }
            EXPECT_EQ(*b, *a) << "step " << i << ": " << cmd[0];
        }
    }
};

// The established IPv4 sockets of this machine whose local (or remote) port is `port`, each with
// whether a timer runs on it ("tr" in /proc/net/tcp: 2 keepalive, 1 retransmit; an idle socket
// without keepalive has none).
std::vector<bool> keepalive_of_sockets(std::uint16_t port, bool local) {
    std::ifstream in("/proc/net/tcp");
    std::string line;
    std::getline(in, line);  // header
    std::vector<bool> out;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string sl, local_addr, remote_addr, st, queues, timer;
        f >> sl >> local_addr >> remote_addr >> st >> queues >> timer;
        const auto& addr = local ? local_addr : remote_addr;
        const auto p =
            static_cast<std::uint16_t>(std::stoul(addr.substr(addr.find(':') + 1), nullptr, 16));
        if (p == port && st == "01")
            out.push_back(!timer.starts_with("00:"));  // 02: keepalive (01: data unacked)
    }
    return out;
}

TEST_F(proxy_sessions, client_and_backend_connections_have_tcp_keepalive) {
    // Without it a client whose host vanished while blocked (BLPOP k 0) is never seen gone, and a
    // black-holed backend connection is never found dead.
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    const auto clients = keepalive_of_sockets(proxy_->port(), true);
    ASSERT_FALSE(clients.empty());
    EXPECT_TRUE(std::ranges::all_of(clients, [](bool k) { return k; }));
    // The proxy's connections to the primary (the test's own redis-cli calls are short-lived).
    const auto backends = keepalive_of_sockets(primary_.port(), false);
    ASSERT_FALSE(backends.empty());
    EXPECT_EQ(std::ranges::count(backends, false), 0) << backends.size() << " connections";
}

// One write of many commands, then a command that goes out on another backend connection (a
// transaction's pin, the other protocol's connection after HELLO, a blocking command's own
// connection): it ran before the commands ahead of it had (a DEL that left the key, a GET that
// read an old value, a BLMPOP that popped part of the list). Each round must see everything
// before it, as from Redis.
TEST_F(proxy_sessions, a_command_on_another_connection_runs_after_the_pipeline_before_it) {
    constexpr int n = 3000;
    const auto sets = [](std::string_view key) {
        std::string out;
        for (int i = 1; i <= n; ++i) {
            const auto v = std::to_string(i);
            out += "*3\r\n$3\r\nSET\r\n$" + std::to_string(key.size()) + "\r\n" + std::string(key) +
                   "\r\n$" + std::to_string(v.size()) + "\r\n" + v + "\r\n";
        }
        return out;
    };
    const auto read_n = [](raw_conn& c, int count) {
        std::string last;
        for (int i = 0; i < count; ++i) {
            auto f = c.frame();
            if (!f)
                return std::string("(no reply)");
            last = *f;
        }
        return last;
    };
    for (int round = 0; round < 3; ++round) {
        raw_conn c(proxy_->port());
        // A transaction after the SETs: its DEL runs last.
        c.send(sets("fk") +
               "*1\r\n$5\r\nMULTI\r\n*2\r\n$3\r\nDEL\r\n$2\r\nfk\r\n"
               "*1\r\n$4\r\nEXEC\r\n*2\r\n$3\r\nGET\r\n$2\r\nfk\r\n");
        EXPECT_EQ(read_n(c, n + 3), "*1\r\n:1\r\n") << "round " << round;
        EXPECT_EQ(read_n(c, 1), "$-1\r\n") << "round " << round;
        // HELLO 3 moves the client to the RESP3 connection: the GET sees the last SET.
        c.send(sets("hk") + "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$2\r\nhk\r\n");
        read_n(c, n + 1);
        EXPECT_EQ(read_n(c, 1), "$4\r\n3000\r\n") << "round " << round;
        // A blocking pop on its own connection pops every element pushed before it.
        std::string pushes;
        for (int i = 0; i < n; ++i)
            pushes += "*3\r\n$5\r\nRPUSH\r\n$2\r\nbq\r\n$1\r\nx\r\n";
        c.send(pushes +
               "*7\r\n$6\r\nBLMPOP\r\n$1\r\n1\r\n$1\r\n1\r\n$2\r\nbq\r\n$4\r\nLEFT\r\n"
               "$5\r\nCOUNT\r\n$7\r\n1000000\r\n");
        read_n(c, n);
        const auto popped = read_n(c, 1);
        // RESP3 now: *2 bq *3000 ...
        EXPECT_NE(popped.find("*3000\r\n"), std::string::npos)
            << "round " << round << ": " << popped.substr(0, 40);
        EXPECT_EQ(primary_.cli({"EXISTS", "bq"}), "0");
    }
}

// Numbers the proxy reads itself (HELLO's version, SELECT's database) as Redis reads them: no
// leading zeros, no "-0", no "+".
TEST_F(proxy_sessions, numbers_the_proxy_reads_are_read_as_redis_reads_them) {
    same_as_redis({{"HELLO", "03"},
                   {"HELLO", "+3"},
                   {"SELECT", "00"},
                   {"SELECT", "-0"},
                   {"SELECT", "+0"},
                   {"SELECT", " 0"},
                   {"SELECT", "0"},
                   {"HELLO", "2"}});
}

// Replies the proxy writes itself, checked against Redis 7.0: arity before "cluster support
// disabled", the full command name in a subscriber's refusal, keyspace commands refused on a
// MONITOR connection.
TEST_F(proxy_sessions, replies_the_proxy_writes_itself_match_redis) {
    same_as_redis({{"READONLY", "x"},
                   {"READWRITE", "x"},
                   {"ASKING", "x"},
                   {"CLUSTER"},
                   {"CLUSTER", "INFO"},
                   {"READONLY"}});
    same_as_redis({{"SUBSCRIBE", "c"}, {"CLIENT", "ID"}, {"GET", "k"}, {"PING"}});
    same_as_redis({{"MONITOR"}, {"GET", "k"}, {"SET", "k", "v"}});
    // CLIENT SETINFO is Redis 7.2's: its checks, without storing anything.
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"CLIENT", "SETINFO", "lib-name"}),
              "-ERR wrong number of arguments for 'client|setinfo' command\r\n");
    EXPECT_EQ(c.call({"CLIENT", "SETINFO", "nope", "x"}), "-ERR Unrecognized option 'nope'\r\n");
    EXPECT_EQ(c.call({"CLIENT", "SETINFO", "LIB-NAME", "respite"}), "+OK\r\n");
}

TEST_F(proxy_sessions, multi_or_watch_then_reset_in_one_pipeline_match_redis) {
    // RESET closed the pinned connection while MULTI's (or WATCH's, or a queued command's)
    // reply was still due on it: those commands got "-ERR proxy: serving backend unavailable".
    auto bytes_of = [](const std::vector<std::vector<std::string>>& cmds) {
        std::string out;
        for (const auto& cmd : cmds) {
            out += "*" + std::to_string(cmd.size()) + "\r\n";
            for (const auto& a : cmd)
                out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
        }
        return out;
    };
    const std::vector<std::vector<std::vector<std::string>>> scripts = {
        {{"MULTI"}, {"RESET"}, {"PING"}},
        {{"WATCH", "a"}, {"RESET"}, {"PING"}},
        {{"MULTI"}, {"SET", "discarded", "v"}, {"RESET"}, {"GET", "discarded"}},
        {{"CLIENT", "TRACKING", "ON"}, {"RESET"}, {"CLIENT", "TRACKINGINFO"}},
    };
    for (const auto& script : scripts) {
        raw_conn direct(secondary_.port());
        raw_conn proxied(proxy_->port());
        const auto bytes = bytes_of(script);
        direct.send(bytes);
        proxied.send(bytes);
        for (std::size_t i = 0; i < script.size(); ++i) {
            auto a = direct.frame();
            auto b = proxied.frame();
            ASSERT_TRUE(a.has_value() && b.has_value()) << script[0][0] << " step " << i;
            EXPECT_EQ(*b, *a) << script[0][0] << " step " << i << ": " << script[i][0];
        }
        EXPECT_EQ(proxied.call({"PING"}), "+PONG\r\n");
    }
}

TEST_F(proxy_sessions, a_subscribe_the_proxy_refuses_inside_multi_aborts_exec) {
    // Redis 7.0 queues SUBSCRIBE inside MULTI; the proxy refuses it (the subscription would live
    // on the transaction's connection). EXEC then ran the rest of the transaction anyway; it now
    // aborts it, as after any command refused while queueing.
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "tx:k", "v"}), "+QUEUED\r\n");
    EXPECT_NE(c.call({"SUBSCRIBE", "ch"}).find("-ERR proxy: subscribe inside MULTI"),
              std::string::npos);
    EXPECT_EQ(c.call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    EXPECT_EQ(c.call({"GET", "tx:k"}), "$-1\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "-ERR EXEC without MULTI\r\n");
    // PROXY inside MULTI would act at once, before EXEC or despite DISCARD: refused, aborts.
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_NE(
        c.call({"PROXY", "MODE", "GET"}).find("-ERR proxy: PROXY is not allowed inside MULTI"),
        std::string::npos);
    EXPECT_EQ(c.call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    // The next transaction runs.
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "tx:k", "w"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "*1\r\n+OK\r\n");
    EXPECT_EQ(c.call({"GET", "tx:k"}), "$1\r\nw\r\n");
}

TEST_F(proxy_sessions, transactions_behave_as_in_redis) {
    same_as_redis({{"MULTI"},
                   {"SET", "t", "1"},
                   {"INCR", "t"},
                   {"GET", "t"},
                   {"EXEC"},
                   {"EXEC"},
                   {"DISCARD"},
                   {"MULTI"},
                   {"MULTI"},
                   {"SET", "t"},
                   {"INCR", "t"},
                   {"EXEC"},
                   {"GET", "t"},
                   {"MULTI"},
                   {"INCR", "t"},
                   {"DISCARD"},
                   {"GET", "t"},
                   {"MULTI"},
                   {"LPUSH", "t", "x"},
                   {"INCR", "t"},
                   {"EXEC"},
                   {"MULTI"},
                   {"BLPOP", "nolist", "0"},
                   {"EXEC"}});
}

TEST_F(proxy_sessions, watch_aborts_like_redis_and_does_not_leak_to_other_clients) {
    same_as_redis({{"SET", "w", "0"},
                   {"WATCH", "w"},
                   {"<between>"},
                   {"MULTI"},
                   {"SET", "w", "mine"},
                   {"EXEC"},
                   {"GET", "w"},
                   {"WATCH", "w"},
                   {"UNWATCH"},
                   {"<between>"},
                   {"MULTI"},
                   {"SET", "w", "mine"},
                   {"EXEC"},
                   {"MULTI"},
                   {"WATCH", "w"},
                   {"DISCARD"}},
                  [&](raw_conn& c, bool direct) {
                      // Another client changes the watched key.
                      raw_conn other(direct ? secondary_.port() : proxy_->port());
                      EXPECT_EQ(other.call({"SET", "w", "theirs"}), "+OK\r\n");
                      (void)c;
                  });
    // A WATCH that aborted one client's EXEC must not touch another client's transaction.
    raw_conn a(proxy_->port()), b(proxy_->port());
    EXPECT_EQ(a.call({"WATCH", "x"}), "+OK\r\n");
    EXPECT_EQ(b.call({"SET", "x", "1"}), "+OK\r\n");
    EXPECT_EQ(b.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(b.call({"SET", "y", "1"}), "+QUEUED\r\n");
    EXPECT_EQ(b.call({"EXEC"}), "*1\r\n+OK\r\n");
    EXPECT_EQ(a.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(a.call({"SET", "x", "2"}), "+QUEUED\r\n");
    EXPECT_EQ(a.call({"EXEC"}), "*-1\r\n");
}

TEST_F(proxy_sessions, resp3_replies_are_forwarded_as_redis_sends_them) {
    same_as_redis({{"HELLO", "3"},
                   {"HSET", "h", "f", "v"},
                   {"HGETALL", "h"},
                   {"SADD", "s", "a"},
                   {"SMEMBERS", "s"},
                   {"ZADD", "z", "1.5", "m"},
                   {"ZSCORE", "z", "m"},
                   {"GET", "missing"},
                   {"MULTI"},
                   {"HGETALL", "h"},
                   {"EXEC"},
                   {"HELLO", "2"},
                   {"HGETALL", "h"},
                   {"GET", "missing"},
                   {"HELLO", "4"},
                   {"TYPE", "h"}},
                  {});
}

TEST_F(proxy_sessions, hello_replies_with_a_server_map) {
    raw_conn c(proxy_->port());
    c.command({"HELLO", "3", "SETNAME", "app"});
    auto f = c.frame();
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->substr(0, 4), "%7\r\n");
    EXPECT_NE(f->find("proto\r\n:3"), std::string::npos) << *f;
    EXPECT_EQ(c.call({"CLIENT", "GETNAME"}), "$3\r\napp\r\n");
    EXPECT_EQ(c.call({"GET", "nothing"}), "_\r\n");
}

TEST_F(proxy_sessions, deep_pipelines_keep_their_order) {
    raw_conn c(proxy_->port());
    std::string batch;
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
        if (i % 7 == 3)
            batch += "*2\r\n$4\r\nECHO\r\n$" + std::to_string(std::to_string(i).size()) + "\r\n" +
                     std::to_string(i) + "\r\n";
        else
            batch += "*2\r\n$4\r\nINCR\r\n$3\r\nctr\r\n";
    }
    c.send(batch);
    int expect = 0;
    for (int i = 0; i < n; ++i) {
        auto f = c.frame();
        ASSERT_TRUE(f.has_value()) << "reply " << i;
        if (i % 7 == 3) {
            EXPECT_EQ(*f, "$" + std::to_string(std::to_string(i).size()) + "\r\n" +
                              std::to_string(i) + "\r\n");
        } else {
            ++expect;
            ASSERT_EQ(*f, ":" + std::to_string(expect) + "\r\n") << "reply " << i;
        }
    }
}

TEST_F(proxy_sessions, many_clients_pipelining_at_once_get_their_own_replies) {
    std::vector<std::thread> ts;
    std::atomic<int> bad{0};
    for (int t = 0; t < 8; ++t) {
        ts.emplace_back([&, t] {
            raw_conn c(proxy_->port());
            const std::string key = "k" + std::to_string(t);
            std::string batch;
            for (int i = 0; i < 2000; ++i)
                batch +=
                    "*2\r\n$4\r\nINCR\r\n$" + std::to_string(key.size()) + "\r\n" + key + "\r\n";
            c.send(batch);
            for (int i = 1; i <= 2000; ++i)
                if (c.frame() != ":" + std::to_string(i) + "\r\n")
                    ++bad;
        });
    }
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(bad.load(), 0);
}

TEST_F(proxy_sessions, blocking_commands_block_without_stalling_others) {
    raw_conn blocked(proxy_->port());
    blocked.command({"BLPOP", "q", "5"});
    raw_conn other(proxy_->port());
    EXPECT_EQ(other.call({"SET", "x", "1"}), "+OK\r\n");
    EXPECT_EQ(other.call({"RPUSH", "q", "v"}), ":1\r\n");
    EXPECT_EQ(blocked.frame(), "*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
    // A timeout is Redis's nil array.
    EXPECT_EQ(blocked.call({"BLPOP", "q", "0.05"}), "*-1\r\n");
    // Commands pipelined behind a blocking one wait for it, like in Redis.
    blocked.send("*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n5\r\n*1\r\n$4\r\nPING\r\n");
    EXPECT_EQ(other.call({"RPUSH", "q", "w"}), ":1\r\n");
    EXPECT_EQ(blocked.frame(), "*2\r\n$1\r\nq\r\n$1\r\nw\r\n");
    EXPECT_EQ(blocked.frame(), "+PONG\r\n");
}

// CLIENT UNBLOCK of a proxy client (by the id CLIENT ID gave it) wakes it as Redis does: with
// the timeout's reply, or -UNBLOCKED with ERROR. It answered :0 and the client stayed blocked.
TEST_F(proxy_sessions, client_unblock_wakes_a_blocked_client_like_redis) {
    raw_conn blocked(proxy_->port());
    const auto id_frame = blocked.call({"CLIENT", "ID"});
    const auto id = id_frame.substr(1, id_frame.size() - 3);
    raw_conn other(proxy_->port());
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", id}), ":0\r\n");  // not blocked
    const auto wait_blocked = [&] {
        return eventually([&] {
            return primary_.cli({"INFO", "clients"}).find("blocked_clients:1") != std::string::npos;
        });
    };
    blocked.command({"BLPOP", "q", "0"});
    ASSERT_TRUE(wait_blocked());
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", id}), ":1\r\n");
    EXPECT_EQ(blocked.frame(std::chrono::seconds(5)), "*-1\r\n");
    blocked.command({"BLPOP", "q", "0"});
    ASSERT_TRUE(wait_blocked());
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", id, "ERROR"}), ":1\r\n");
    EXPECT_EQ(blocked.frame(std::chrono::seconds(5)),
              "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    EXPECT_EQ(blocked.call({"PING"}), "+PONG\r\n");
    // Redis's replies to bad arguments.
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", id, "FOO"}),
              "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n");
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", "abc"}),
              "-ERR value is not an integer or out of range\r\n");
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", "0"}), ":0\r\n");
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK", "999999"}), ":0\r\n");
    EXPECT_EQ(other.call({"CLIENT", "UNBLOCK"}),
              "-ERR wrong number of arguments for 'client|unblock' command\r\n");
}

// WAIT counts the replicas that have this client's writes, as against Redis directly. The writes
// travel over the proxy's shared connections and WAIT over a connection of its own, and Redis
// waits for the offset of that connection's own last write: none, so a stopped replica counted.
TEST_F(proxy_sessions, wait_counts_only_replicas_that_have_the_clients_writes) {
    primary_.cli({"CONFIG", "SET", "repl-diskless-sync-delay", "0"});  // the replica syncs at once
    redis_server replica(
        {.config = {{"replicaof", "127.0.0.1 " + std::to_string(primary_.port())}}});
    ASSERT_TRUE(eventually([&] {
        return primary_.cli({"INFO", "replication"}).find("state=online") != std::string::npos;
    }));
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "w", "1"}), "+OK\r\n");
    EXPECT_EQ(c.call({"WAIT", "1", "5000"}), ":1\r\n");

    // The replica stops acknowledging: a write from now on is not on it.
    auto stopped = std::make_unique<stopped_process>(replica.pid());
    EXPECT_EQ(c.call({"SET", "w", "2"}), "+OK\r\n");
    EXPECT_EQ(c.call({"WAIT", "1", "300"}), ":0\r\n") << "a replica without the write counted";
    // Pipelined behind the write: the WAIT goes out once the write is answered.
    c.send(
        "*3\r\n$3\r\nSET\r\n$1\r\nw\r\n$1\r\n3\r\n*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n"
        "300\r\n*1\r\n$4\r\nPING\r\n");
    EXPECT_EQ(c.frame(), "+OK\r\n");
    EXPECT_EQ(c.frame(), ":0\r\n");
    EXPECT_EQ(c.frame(), "+PONG\r\n");
    // Resumed: the replica catches up and counts again.
    stopped.reset();
    EXPECT_EQ(c.call({"WAIT", "1", "5000"}), ":1\r\n");
    EXPECT_EQ(replica.cli({"GET", "w"}), "3");
}

// A client that leaves while its WAIT still waits for an earlier reply leaves nothing behind: a
// WAIT is not a write (it once counted as one in flight, forever, and held every mode switch).
TEST_F(proxy_sessions, a_wait_not_sent_yet_leaves_nothing_behind_when_its_client_goes) {
    primary_.cli({"CLIENT", "PAUSE", "500", "WRITE"});  // the SET waits on the server
    {
        raw_conn c(proxy_->port());
        c.send(
            "*3\r\n$3\r\nSET\r\n$2\r\nwl\r\n$1\r\n1\r\n*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$1\r\n0\r\n");
        // The SET waits on the server (a paused client counts as blocked there).
        ASSERT_TRUE(eventually([&] {
            return primary_.cli({"INFO", "clients"}).find("blocked_clients:1") != std::string::npos;
        }));
        c.close();
    }
    EXPECT_TRUE(eventually([&] { return primary_.cli({"GET", "wl"}) == "1"; }));
    EXPECT_TRUE(eventually([&] { return info_field("writes_in_flight") == "0"; }))
        << "writes_in_flight:" << info_field("writes_in_flight");
    ASSERT_TRUE(proxy_->set_mode(mode::dual_write, false).has_value());
    ASSERT_TRUE(proxy_->set_mode(mode::primary_only, false).has_value());
}

// Commands are counted per command, and everything the table does not know under one label.
TEST_F(proxy_sessions, commands_are_counted_with_bounded_labels) {
    const auto count = [&](std::string_view label) { return commands_counted(label); };
    const auto gets = count("get");
    const auto sets = count("set");
    const auto others = count("other");
    raw_conn c(proxy_->port());
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(c.call({"GET", "cnt"}), "$-1\r\n");
    }
    EXPECT_EQ(c.call({"SET", "cnt", "1"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "cnt", "2"}), "+OK\r\n");
    EXPECT_EQ(c.call({"NOSUCHCOMMAND", "x"}).substr(0, 4), "-ERR");
    EXPECT_EQ(c.call({"NOSUCHCOMMAND2"}).substr(0, 4), "-ERR");
    EXPECT_TRUE(eventually([&] {
        return count("get") == gets + 3 && count("set") == sets + 2 && count("other") == others + 2;
    })) << "get "
        << count("get") - gets << " set " << count("set") - sets << " other "
        << count("other") - others;
    const auto text = http(proxy_->admin_port(), "GET", "/metrics");
    EXPECT_EQ(text.find("NOSUCHCOMMAND"), std::string::npos);
    EXPECT_EQ(text.find("nosuchcommand"), std::string::npos);
}

TEST_F(proxy_sessions, a_blocked_client_that_leaves_loses_no_value) {
    for (int round = 0; round < 5; ++round) {
        const std::string key = "lq" + std::to_string(round);
        {
            raw_conn blocked(proxy_->port());
            blocked.command({"BLPOP", key, "0"});
            // Make sure the command reached Redis before the client goes away.
            EXPECT_TRUE(eventually([&] {
                return primary_.cli({"INFO", "clients"}).find("blocked_clients:1") !=
                       std::string::npos;
            }));
            blocked.close();
        }
        // Right after the disconnect (racing with the cancellation), a value arrives.
        primary_.cli({"RPUSH", key, "precious"});
        EXPECT_TRUE(eventually([&] {
            return primary_.cli({"INFO", "clients"}).find("blocked_clients:0") != std::string::npos;
        }));
        EXPECT_TRUE(eventually([&] {
            return primary_.cli({"LRANGE", key, "0", "-1"}) == "precious";
        })) << "round "
            << round << ": " << primary_.cli({"LRANGE", key, "0", "-1"});
    }
}

TEST_F(proxy_sessions, select_pins_a_connection_in_single_backend_modes) {
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SELECT", "0"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SELECT", "2"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "in2", "v"}), "+OK\r\n");
    EXPECT_EQ(primary_.cli({"-n", "2", "GET", "in2"}), "v");
    EXPECT_EQ(primary_.cli({"EXISTS", "in2"}), "0");
    raw_conn d(proxy_->port());
    EXPECT_EQ(d.call({"GET", "in2"}), "$-1\r\n");
    EXPECT_EQ(c.call({"SELECT", "abc"}), "-ERR value is not an integer or out of range\r\n");
}

TEST_F(proxy_sessions, connection_commands_are_answered_locally) {
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
    EXPECT_EQ(c.call({"PING", "hi"}), "$2\r\nhi\r\n");
    EXPECT_EQ(c.call({"ECHO", "e"}), "$1\r\ne\r\n");
    EXPECT_EQ(c.call({"CLIENT", "SETNAME", "n1"}), "+OK\r\n");
    EXPECT_EQ(c.call({"CLIENT", "GETNAME"}), "$2\r\nn1\r\n");
    EXPECT_EQ(c.call({"CLIENT", "SETNAME", "bad name"}).substr(0, 4), "-ERR");
    EXPECT_EQ(c.call({"RESET"}), "+RESET\r\n");
    EXPECT_EQ(c.call({"CLIENT", "GETNAME"}), "$-1\r\n");
    EXPECT_EQ(c.call({"QUIT"}), "+OK\r\n");
    EXPECT_TRUE(c.closed_by_peer());
}

// The text of a bulk or verbatim string reply ("" otherwise).
std::string text_of(const std::string& frame) {
    const auto body = frame.find("\r\n");
    if (body == std::string::npos || (frame[0] != '$' && frame[0] != '='))
        return {};
    auto text = frame.substr(body + 2, frame.size() - body - 4);
    return frame[0] == '=' ? text.substr(4) : text;
}

// The CLIENT LIST line of the client whose field `field` is `value` ("" when none).
std::string line_with(const std::string& list, const std::string& field, const std::string& value) {
    std::stringstream ss(list);
    std::string line;
    while (std::getline(ss, line))
        if (line.find(" " + field + "=" + value + " ") != std::string::npos ||
            line.starts_with(field + "=" + value + " "))
            return line;
    return {};
}

std::string local_address(raw_conn& c) {
    const auto ep = c.socket().local_endpoint();
    return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// To its clients the proxy is one server: CLIENT LIST lists the proxy's clients (across its
// workers), not the backend's (the proxy's own connections), and CLIENT KILL closes them.
TEST_F(proxy_sessions, client_list_and_kill_are_about_the_proxys_clients) {
    raw_conn a(proxy_->port()), b(proxy_->port()), sub(proxy_->port()), admin(proxy_->port());
    EXPECT_EQ(a.call({"CLIENT", "SETNAME", "alpha"}), "+OK\r\n");
    EXPECT_EQ(b.call({"CLIENT", "SETNAME", "beta"}), "+OK\r\n");
    EXPECT_EQ(sub.call({"SUBSCRIBE", "news"}).substr(0, 2), "*3");
    const auto a_id = a.call({"CLIENT", "ID"}).substr(1, std::string::npos);
    const std::string a_id_text = a_id.substr(0, a_id.size() - 2);

    const auto list = text_of(admin.call({"CLIENT", "LIST"}));
    const auto alpha = line_with(list, "name", "alpha");
    ASSERT_FALSE(alpha.empty()) << list;
    EXPECT_NE(alpha.find("id=" + a_id_text + " "), std::string::npos) << alpha;
    EXPECT_NE(alpha.find("addr=" + local_address(a) + " "), std::string::npos) << alpha;
    EXPECT_NE(alpha.find("laddr=127.0.0.1:" + std::to_string(proxy_->port()) + " "),
              std::string::npos)
        << alpha;
    EXPECT_NE(alpha.find("cmd=client|id "), std::string::npos) << alpha;
    // The connection's descriptor, as Redis shows it (-1 is for connectionless clients).
    const auto fd_at = alpha.find(" fd=");
    ASSERT_NE(fd_at, std::string::npos) << alpha;
    EXPECT_GE(std::stoi(alpha.substr(fd_at + 4)), 0) << alpha;
    EXPECT_FALSE(line_with(list, "name", "beta").empty()) << list;
    EXPECT_NE(line_with(list, "addr", local_address(admin)).find("cmd=client|list"),
              std::string::npos)
        << list;
    EXPECT_NE(line_with(list, "addr", local_address(sub)).find(" flags=P db=0 sub=1 psub=0 "),
              std::string::npos)
        << list;
    // Nothing of the backend: not its port, not the proxy's upstream connections.
    EXPECT_EQ(list.find(":" + std::to_string(primary_.port())), std::string::npos) << list;
    EXPECT_EQ(std::ranges::count(list, '\n'), 4) << list;
    // Oldest first, as Redis lists them (the workers' parts are merged by id).
    std::vector<std::uint64_t> ids;
    for (std::size_t at = 0; (at = list.find("id=", at)) != std::string::npos; at += 3)
        if (at == 0 || list[at - 1] == '\n')
            ids.push_back(std::stoull(list.substr(at + 3)));
    EXPECT_EQ(ids.size(), 4u) << list;
    EXPECT_TRUE(std::ranges::is_sorted(ids)) << list;

    // Filters.
    const auto pubsub = text_of(admin.call({"CLIENT", "LIST", "TYPE", "pubsub"}));
    EXPECT_EQ(std::ranges::count(pubsub, '\n'), 1) << pubsub;
    const auto by_id = text_of(admin.call({"CLIENT", "LIST", "ID", a_id_text, "999999"}));
    EXPECT_EQ(by_id, alpha + "\n");
    // In the order asked for, as Redis answers (newest first here).
    const auto b_id = b.call({"CLIENT", "ID"}).substr(1, std::string::npos);
    const std::string b_id_text = b_id.substr(0, b_id.size() - 2);
    const auto both = text_of(admin.call({"CLIENT", "LIST", "ID", b_id_text, a_id_text}));
    EXPECT_EQ(both.find("id=" + b_id_text + " "), 0u) << both;
    EXPECT_NE(both.find("\nid=" + a_id_text + " "), std::string::npos) << both;
    EXPECT_EQ(admin.call({"CLIENT", "LIST", "TYPE", "nope"}),
              "-ERR Unknown client type 'nope'\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "LIST", "ID", "x"}), "-ERR Invalid client ID\r\n");
    // CLIENT INFO is this client's line.
    const auto info = text_of(admin.call({"CLIENT", "INFO"}));
    EXPECT_NE(info.find("addr=" + local_address(admin) + " "), std::string::npos) << info;
    EXPECT_NE(info.find("cmd=client|info "), std::string::npos) << info;

    // CLIENT KILL ID: that client goes, the others stay.
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "ID", a_id_text}), ":1\r\n");
    EXPECT_TRUE(a.closed_by_peer());
    // The old form by address.
    EXPECT_EQ(admin.call({"CLIENT", "KILL", local_address(b)}), "+OK\r\n");
    EXPECT_TRUE(b.closed_by_peer());
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "10.9.8.7:6"}), "-ERR No such client\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "ID", "0"}),
              "-ERR client-id should be greater than 0\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "TYPE", "x"}), "-ERR Unknown client type 'x'\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "ID"}), "-ERR No such client\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "SKIPME", "maybe", "ID", "1"}),
              "-ERR syntax error\r\n");
    // Every normal client but the caller (SKIPME yes by default); the subscriber stays; the
    // proxy's connections to the backend are not clients of the proxy and stay up.
    raw_conn c1(proxy_->port()), c2(proxy_->port());
    EXPECT_EQ(c1.call({"SET", "k", "1"}), "+OK\r\n");
    EXPECT_EQ(c2.call({"PING"}), "+PONG\r\n");
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "TYPE", "normal"}), ":2\r\n");
    EXPECT_TRUE(c1.closed_by_peer());
    EXPECT_TRUE(c2.closed_by_peer());
    EXPECT_EQ(admin.call({"SET", "k", "2"}), "+OK\r\n");
    EXPECT_EQ(sub.call({"PING"}).substr(0, 1), "*");
    // A blocked client goes at once, its block cancelled on the backend.
    raw_conn blocked(proxy_->port());
    blocked.command({"BLPOP", "never", "0"});
    EXPECT_TRUE(eventually([&] {
        return primary_.cli({"INFO", "clients"}).find("blocked_clients:1") != std::string::npos;
    }));
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "ADDR", local_address(blocked)}), ":1\r\n");
    EXPECT_TRUE(blocked.closed_by_peer());
    EXPECT_TRUE(eventually([&] {
        return primary_.cli({"INFO", "clients"}).find("blocked_clients:0") != std::string::npos;
    }));
    // Inside MULTI they would run on the backend: refused, and EXEC aborts.
    raw_conn tx(proxy_->port());
    EXPECT_EQ(tx.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(tx.call({"CLIENT", "KILL", "TYPE", "normal"}),
              "-ERR proxy: client|kill is not allowed inside MULTI; the transaction is "
              "aborted\r\n");
    EXPECT_EQ(tx.call({"EXEC"}).substr(0, 9), "-EXECABOR");
    EXPECT_EQ(tx.call({"PING"}), "+PONG\r\n");
    // A client name with a newline would forge CLIENT LIST lines (HELLO's SETNAME too).
    EXPECT_EQ(tx.call({"HELLO", "2", "SETNAME", "x\nid=1 addr=1.2.3.4:5"}),
              "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
    tx.close();
    EXPECT_TRUE(eventually([&] {
        return std::ranges::count(text_of(admin.call({"CLIENT", "LIST"})), '\n') == 2;
    }));
    // SKIPME no: the caller too, after its reply.
    EXPECT_EQ(admin.call({"CLIENT", "KILL", "USER", "default", "SKIPME", "no"}), ":2\r\n");
    EXPECT_TRUE(admin.closed_by_peer());
    EXPECT_TRUE(sub.closed_by_peer());
}

}  // namespace
}  // namespace respite::test

namespace respite::test {
namespace {

// --backend-timeout: a serving backend that does not answer in time fails the commands waiting
// on that connection (with an error that says so) instead of hanging them until TCP gives up.
class proxy_backend_timeout : public proxy_fixture {
  protected:
    void SetUp() override {
        start(mode::dual_write, [](proxy::proxy_config& cfg) {
            cfg.admin_users = {"default"};  // DEBUG SLEEP goes through for named admin users
            cfg.primary.connection.command_timeout = std::chrono::milliseconds(300);
            cfg.secondary->connection.command_timeout = std::chrono::milliseconds(300);
        });
    }
};

TEST_F(proxy_backend_timeout, a_backend_that_does_not_answer_in_time_fails_the_command) {
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "before", "1"}), "+OK\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    // The primary sleeps 1.5 s; a write pipelined behind the sleep was sent too.
    c.send(
        "*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n1.5\r\n"
        "*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$1\r\nv\r\n");
    const auto first = c.frame(std::chrono::seconds(5));
    const auto waited = std::chrono::steady_clock::now() - t0;
    const std::string may_have_run =
        "-ERR proxy: the serving backend did not answer in time; the command may have run\r\n";
    EXPECT_EQ(first.value_or("<none>"), may_have_run);
    EXPECT_LT(waited, std::chrono::milliseconds(1200)) << "the proxy waited for the sleep";
    EXPECT_EQ(c.frame().value_or("<none>"), may_have_run);
    // The proxy serves again once the primary answers, on a new connection (while it sleeps,
    // the new connection's handshake times out too: "unavailable").
    std::string last;
    EXPECT_TRUE(eventually([&] {
        return (last = c.call({"SET", "after", "1"})) == "+OK\r\n";
    })) << last;
    // The write whose outcome was unknown was copied to the secondary: both sides end equal.
    EXPECT_TRUE(converged());
    EXPECT_EQ(secondary_.cli({"GET", "slow"}), primary_.cli({"GET", "slow"}));
}

// A blocking command's long patience does not carry over to the commands after it on the same
// connection (here the session's pinned one): a hang right after it is still found in time.
TEST_F(proxy_backend_timeout, the_command_after_a_blocking_one_gets_the_backend_timeout) {
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"WATCH", "w"}), "+OK\r\n");  // pins a connection of its own
    c.command({"BLPOP", "bq", "5"});
    // Blocked past the backend timeout, so that the watchdog waits for the BLPOP's deadline
    // (a deliberate passage of time, not a wait for a condition).
    EXPECT_TRUE(eventually([&] {
        return primary_.cli({"INFO", "clients"}).find("blocked_clients:1") != std::string::npos;
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    raw_conn other(proxy_->port());
    EXPECT_EQ(other.call({"RPUSH", "bq", "v"}), ":1\r\n");
    EXPECT_EQ(c.frame(), "*2\r\n$2\r\nbq\r\n$1\r\nv\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(c.call({"DEBUG", "SLEEP", "2"}).substr(0, 49),
              "-ERR proxy: the serving backend did not answer in");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}

// A hung primary (stopped: its kernel still accepts bytes until the buffers are full) under a
// stream of writes: the proxy's write stops moving, and that is no progress either.
TEST_F(proxy_backend_timeout, a_hung_backend_whose_buffers_fill_up_times_out) {
    raw_conn c(proxy_->port());
    // Its worker's connection to the primary is up before the primary stops.
    EXPECT_EQ(c.call({"SET", "warm", "1"}), "+OK\r\n");
    ASSERT_EQ(::kill(primary_.pid(), SIGSTOP), 0);
    struct resume {
        pid_t pid;
        ~resume() { ::kill(pid, SIGCONT); }
    } cont{primary_.pid()};
    // One 128 MB command: the proxy's write of it stops moving once the loopback buffers are
    // full (tcp_rmem may let the kernel take 32 MB), and stays out until the primary reads.
    const std::string value(128 << 20, 'v');
    const std::string pipeline = "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$" +
                                 std::to_string(value.size()) + "\r\n" + value + "\r\n";
    c.socket().non_blocking(false);  // raw_conn's reads made it non-blocking: send it all
    c.send(pipeline);
    const auto reply = c.frame(std::chrono::seconds(20));
    ::kill(primary_.pid(), SIGCONT);
    ASSERT_TRUE(reply.has_value()) << "no reply: the proxy waited for the hung primary";
    EXPECT_EQ(reply->substr(0, 49), "-ERR proxy: the serving backend did not answer in");
}

TEST_F(proxy_backend_timeout, blocking_commands_wait_for_their_own_timeout) {
    raw_conn blocked(proxy_->port());
    // BLPOP's timeout (1 s) is longer than the backend timeout (0.3 s): Redis's nil, no error.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(blocked.call({"BLPOP", "q", "1"}), "*-1\r\n");
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(900));
    // A block of 0 waits for as long as it takes.
    blocked.command({"BLPOP", "q", "0"});
    EXPECT_FALSE(blocked.frame(std::chrono::milliseconds(1000)).has_value());
    raw_conn other(proxy_->port());
    EXPECT_EQ(other.call({"RPUSH", "q", "v"}), ":1\r\n");
    EXPECT_EQ(blocked.frame(), "*2\r\n$1\r\nq\r\n$1\r\nv\r\n");
}

}  // namespace
}  // namespace respite::test
