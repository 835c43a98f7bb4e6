// A Redis Cluster behind the proxy: migrating a standalone Redis into a cluster (the cluster as
// the follower), and serving from a cluster (the proxy looks like one standalone server).
#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "proxy_fixture.hpp"
#include "support/memory_pressure.hpp"
#include "support/redis_cluster.hpp"

namespace respite::test {
namespace {

using proxy::mode;

class proxy_cluster : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        redis_cluster_options o;
        o.replicas_per_master = 0;
        cluster_ = new redis_cluster(o);
    }
    static void TearDownTestSuite() {
        delete cluster_;
        cluster_ = nullptr;
    }
    void SetUp() override {
        for (auto i : cluster_->masters())
            cluster_->node(i).cli({"FLUSHALL"});
    }
    void TearDown() override {
        if (proxy_)
            proxy_->stop();
    }

    proxy::backend_config cluster_backend() const {
        proxy::backend_config b;
        b.cluster = true;
        b.connection.host = cluster_->seed_host();
        b.connection.port = cluster_->seed_port();
        return b;
    }
    // The standalone server serves, the cluster follows (a migration into a cluster).
    proxy::proxy_config into_cluster(mode m) const {
        proxy::proxy_config cfg;
        cfg.primary.connection.host = standalone_.host();
        cfg.primary.connection.port = standalone_.port();
        cfg.secondary = cluster_backend();
        cfg.initial_mode = m;
        return cfg;
    }
    void start(proxy::proxy_config cfg) {
        cfg.listen_port = 0;
        cfg.threads = 2;
        cfg.admin_host.clear();
        cfg.log_level = "warn";
        proxy_ = std::make_unique<proxy::proxy_server>(cfg);
        auto r = proxy_->start();
        ASSERT_TRUE(r.has_value()) << r.error();
    }
    // The cluster serves; with `followed`, dual-write into the standalone server.
    void serve_from_cluster(bool followed) {
        proxy::proxy_config cfg;
        cfg.primary = cluster_backend();
        if (followed) {
            proxy::backend_config s;
            s.connection.host = standalone_.host();
            s.connection.port = standalone_.port();
            cfg.secondary = s;
        }
        cfg.initial_mode = followed ? mode::dual_write : mode::primary_only;
        start(cfg);
    }
    // `node` counts n subscribers of `ch` (PUBSUB SHARDNUMSUB / NUMSUB).
    static bool shard_subscribers(const redis_server& node, const std::string& ch, int n) {
        return node.cli({"PUBSUB", "SHARDNUMSUB", ch}).find("\n" + std::to_string(n)) !=
               std::string::npos;
    }
    static bool subscribers(const redis_server& node, const std::string& ch, int n) {
        return node.cli({"PUBSUB", "NUMSUB", ch}).find("\n" + std::to_string(n)) !=
               std::string::npos;
    }
    bool info_has(std::string_view field) const {
        return proxy_->info().find(field) != std::string::npos;
    }
    redis_server& owner_of(const std::string& key) {
        return cluster_->node(cluster_->master_of_slot(redis_cluster::key_slot(key)));
    }

    static redis_cluster* cluster_;
    redis_server standalone_;
    std::unique_ptr<proxy::proxy_server> proxy_;
};
redis_cluster* proxy_cluster::cluster_ = nullptr;

// Single-key writes (a cluster refuses multi-key commands across slots).
std::vector<std::string> single_key_command(std::mt19937& rng) {
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    auto key = [&](std::string_view p) { return std::string(p) + std::to_string(pick(50)); };
    auto val = [&] { return "v" + std::to_string(pick(100)); };
    switch (pick(14)) {
        case 0:
            return {"SET", key("s:"), val()};
        case 1:
            return {"INCR", key("n:")};
        case 2:
            return {"INCRBYFLOAT", key("f:"), "0.5"};
        case 3:
            return {"LPUSH", key("l:"), val(), val()};
        case 4:
            return {"RPOP", key("l:")};
        case 5:
            return {"SADD", key("st:"), val(), val()};
        case 6:
            return {"SPOP", key("st:")};
        case 7:
            return {"HSET", key("h:"), "f" + std::to_string(pick(5)), val()};
        case 8:
            return {"ZADD", key("z:"), std::to_string(pick(50)), val()};
        case 9:
            return {"ZPOPMIN", key("z:")};
        case 10:
            return {"XADD", key("x:"), "*", "f", val()};
        case 11:
            return {"SETEX", key("s:"), "200", val()};
        case 12:
            return {"DEL", key("s:")};
        default:
            return {"GET", key("s:")};
    }
}

TEST_F(proxy_cluster, a_standalone_redis_migrates_into_a_cluster) {
    auto cfg = into_cluster(mode::dual_write_shadow);
    start(cfg);
    std::vector<std::thread> ts;
    std::atomic<int> errors{0};
    for (int t = 0; t < 3; ++t) {
        ts.emplace_back([&, t] {
            client::client_config c;
            c.connection.port = proxy_->port();
            client::sync_client cl(c);
            std::mt19937 rng(77U + static_cast<unsigned>(t));
            for (int b = 0; b < 60; ++b) {
                client::request req;
                for (int i = 0; i < 30; ++i)
                    req.push_args(single_key_command(rng));
                if (!cl.exec(std::move(req)))
                    ++errors;
            }
        });
    }
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(errors.load(), 0);
    // Every key of the standalone server has the same value on the cluster node that owns it.
    std::vector<std::string> keys;
    {
        std::stringstream ss(standalone_.cli({"KEYS", "*"}));
        std::string k;
        while (std::getline(ss, k))
            if (!k.empty())
                keys.push_back(k);
    }
    ASSERT_FALSE(keys.empty());
    std::size_t cluster_keys = 0;
    EXPECT_TRUE(eventually(
        [&] {
            cluster_keys = 0;
            for (auto i : cluster_->masters())
                cluster_keys += std::stoul(cluster_->node(i).cli({"DBSIZE"}));
            if (cluster_keys != keys.size())
                return false;
            for (const auto& k : keys)
                if (standalone_.cli({"DEBUG", "DIGEST-VALUE", k}) !=
                    owner_of(k).cli({"DEBUG", "DIGEST-VALUE", k}))
                    return false;
            return true;
        },
        std::chrono::seconds(30)))
        << "standalone keys " << keys.size() << ", cluster keys " << cluster_keys << "\n"
        << proxy_->info();
    const auto info = proxy_->info();
    EXPECT_NE(info.find("divergence_data_mismatch:0"), std::string::npos) << info;
}

// Plain SETs back to back go to a cluster follower as MSETs only within a hash slot: "{one}:"
// keys share one and merge; "burst:" keys spread over many and must not be joined (the
// cluster refuses CROSSSLOT: every key of such a write would need a copy).
// A value longer than a cluster follower's proto-max-bulk-len (the smallest over its masters)
// is refused unsent: the key waits in the rejected set, the lane stays up (a node answers such
// a bulk with a protocol error and closes the connection), and the copy goes once the limit
// was raised.
TEST_F(proxy_cluster, a_value_over_a_cluster_followers_bulk_limit_is_refused_unsent) {
    const auto set_limit = [&](std::string_view v) {
        for (auto i : cluster_->masters())
            cluster_->node(i).cli({"CONFIG", "SET", "proto-max-bulk-len", std::string(v)});
    };
    set_limit("1mb");
    struct restore {
        std::function<void()> f;
        ~restore() { f(); }
    } restore_limit{[&] { set_limit("512mb"); }};
    auto cfg = into_cluster(mode::dual_write);
    cfg.replay_rejected_retry = std::chrono::milliseconds(300);
    cfg.restart_check_interval = std::chrono::milliseconds(200);
    start(cfg);
    ASSERT_TRUE(eventually([&] {
        return info_has("follow_secondary_target_bulk_limit:1048576\r\n");
    })) << proxy_->info();
    raw_conn c(proxy_->port());
    const auto big = incompressible(2 << 20);  // a DUMP payload as long (LZF gains nothing)
    ASSERT_EQ(c.call({"SET", "big", big}), "+OK\r\n");
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_rejected_keys:1\r\n"); }))
        << proxy_->info();
    EXPECT_EQ(owner_of("big").cli({"EXISTS", "big"}), "0");
    ASSERT_EQ(c.call({"SET", "small", "v"}), "+OK\r\n");
    ASSERT_TRUE(eventually([&] { return owner_of("small").cli({"GET", "small"}) == "v"; }));
    EXPECT_TRUE(info_has("follow_secondary_lane_failures:0\r\n")) << proxy_->info();
    set_limit("4mb");
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_rejected_keys:0\r\n"); }))
        << proxy_->info();
    EXPECT_EQ(owner_of("big").cli({"STRLEN", "big"}), std::to_string(2 << 20));
}

TEST_F(proxy_cluster, plain_sets_merge_within_a_slot_for_a_cluster_follower) {
    auto cfg = into_cluster(mode::dual_write);
    cfg.replay_lanes = 1;  // every write in one lane: neighbours of other slots meet
    start(cfg);
    client::client_config c;
    c.connection.port = proxy_->port();
    client::sync_client cl(c);
    client::request req;
    for (int i = 0; i < 600; ++i)
        req.push_args({"SET", (i % 3 == 0 ? "burst:" : "{one}:") + std::to_string(i), "v"});
    ASSERT_TRUE(cl.exec(std::move(req)));
    EXPECT_TRUE(eventually([&] {
        std::size_t n = 0;
        for (auto i : cluster_->masters())
            n += std::stoul(cluster_->node(i).cli({"DBSIZE"}));
        return n == 600;
    }));
    const auto info = proxy_->info();
    EXPECT_NE(info.find("follow_secondary_failed:0\r\n"), std::string::npos) << info;
    EXPECT_NE(info.find("follow_secondary_repaired:0\r\n"), std::string::npos) << info;
    EXPECT_EQ(info.find("follow_secondary_merged:0\r\n"), std::string::npos) << info;
}

TEST_F(proxy_cluster, a_dead_first_seed_is_passed_over) {
    // --primary a,b,c with --primary-cluster: the proxy starts and serves while the first seed
    // does not answer.
    proxy::proxy_config cfg;
    cfg.primary = cluster_backend();
    const auto live = cfg.primary.connection;
    cfg.primary.connection.port = free_port();  // nothing listens there
    cfg.primary.more_seeds.push_back({live.host, live.port});
    cfg.initial_mode = mode::primary_only;
    start(cfg);
    raw_conn c(proxy_->port());
    EXPECT_TRUE(eventually([&] { return c.call({"SET", "seeded", "v"}) == "+OK\r\n"; }));
    EXPECT_EQ(owner_of("seeded").cli({"GET", "seeded"}), "v");
}

TEST_F(proxy_cluster, a_cluster_serves_clients_as_one_server) {
    serve_from_cluster(false);
    raw_conn c(proxy_->port());
    std::string batch;
    for (int i = 0; i < 500; ++i) {
        const auto k = "key" + std::to_string(i);
        batch += "*3\r\n$3\r\nSET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n$1\r\nv\r\n";
        batch += "*2\r\n$3\r\nGET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    }
    c.send(batch);
    for (int i = 0; i < 500; ++i) {
        ASSERT_EQ(c.frame(), "+OK\r\n") << i;
        ASSERT_EQ(c.frame(), "$1\r\nv\r\n") << i;
    }
    EXPECT_EQ(owner_of("key7").cli({"GET", "key7"}), "v");
    // HELLO 3 clients get RESP3 replies re-encoded from the cluster client's values.
    EXPECT_EQ(c.call({"HELLO", "3"}).substr(0, 2), "%7");
    EXPECT_EQ(c.call({"HSET", "h", "a", "1"}), ":1\r\n");
    EXPECT_EQ(c.call({"HGETALL", "h"}), "%1\r\n$1\r\na\r\n$1\r\n1\r\n");
    // A blocking command through the cluster client.
    raw_conn b(proxy_->port());
    b.command({"BLPOP", "q", "5"});
    EXPECT_EQ(c.call({"RPUSH", "q", "x"}), ":1\r\n");
    EXPECT_EQ(b.frame(), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
    // Transactions run on the node that owns their slot.
    EXPECT_EQ(c.call({"HELLO", "2"}).substr(0, 3), "*14");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "{t}a", "1"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"INCR", "{t}a"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"GET", "{t}b"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "*3\r\n+OK\r\n:2\r\n$-1\r\n");
    EXPECT_EQ(owner_of("{t}a").cli({"GET", "{t}a"}), "2");
    // Redis's queue-time checks abort the transaction.
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "{t}a"}), "-ERR wrong number of arguments for 'set' command\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"NOSUCH", "{t}a"}),
              "-ERR unknown command 'NOSUCH', with args beginning with: '{t}a' \r\n");
    EXPECT_EQ(c.call({"EXEC"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    // Keys of different slots cannot share a transaction in a cluster.
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "a", "1"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"SET", "b", "1"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}).substr(0, 9), "-CROSSSLO");
    EXPECT_EQ(c.call({"DISCARD"}), "-ERR DISCARD without MULTI\r\n");
    // State that spans the whole keyspace has no node to pin: refused with a clear error.
    EXPECT_EQ(c.call({"CLIENT", "TRACKING", "on"}).substr(0, 10), "-ERR proxy");
    // So has WAIT: a connection's writes went to many masters, one master's count is no answer.
    const auto wait = c.call({"WAIT", "1", "10"});
    EXPECT_EQ(wait.substr(0, 16), "-ERR proxy: wait") << wait;
    EXPECT_NE(wait.find("Redis Cluster"), std::string::npos) << wait;
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
}

// Replies through a cluster backend are the node's own, byte for byte, in both protocols. The
// RESP2 ones were RESP3 replies converted: nested score pairs, XREAD's map flattened, $-1 for
// *-1, scores printed shorter than Redis does.
TEST_F(proxy_cluster, replies_have_the_shapes_redis_gives_in_each_protocol) {
    serve_from_cluster(false);
    raw_conn setup(proxy_->port());
    ASSERT_EQ(setup.call({"ZADD", "{t}z", "1.1", "a", "2", "b", "3", "c"}), ":3\r\n");
    ASSERT_EQ(setup.call({"XADD", "{t}x", "1-1", "f", "v"}), "$3\r\n1-1\r\n");
    ASSERT_EQ(setup.call({"GEOADD", "{t}g", "13.361389", "38.115556", "p"}), ":1\r\n");
    ASSERT_EQ(setup.call({"HSET", "{t}h", "f", "v"}), ":1\r\n");
    const std::vector<std::vector<std::string_view>> script = {
        {"ZRANGE", "{t}z", "0", "-1", "WITHSCORES"},
        {"ZSCORE", "{t}z", "a"},
        {"ZUNION", "1", "{t}z", "WITHSCORES"},
        {"ZREVRANGEBYSCORE", "{t}z", "+inf", "-inf", "WITHSCORES"},
        {"XREAD", "STREAMS", "{t}x", "0"},
        {"XREAD", "STREAMS", "{t}x", "$"},
        {"XRANGE", "{t}x", "-", "+"},
        {"LMPOP", "1", "{t}none", "LEFT"},
        {"ZMPOP", "1", "{t}none", "MIN"},
        {"GEOPOS", "{t}g", "p", "missing"},
        {"HGETALL", "{t}h"},
        {"HGETALL", "{t}none"},
        {"GET", "{t}none"},
        {"ZPOPMIN", "{t}z", "2"},
    };
    for (int proto : {2, 3}) {
        SCOPED_TRACE("RESP" + std::to_string(proto));
        raw_conn direct(owner_of("{t}z").port());
        raw_conn proxied(proxy_->port());
        if (proto == 3) {
            direct.call({"HELLO", "3"});
            proxied.call({"HELLO", "3"});
        }
        for (const auto& cmd : script) {
            const bool pops = cmd[0] == "ZPOPMIN";
            const auto want = direct.call(cmd);
            if (pops) {  // the same members again for the proxy's pop
                ASSERT_EQ(setup.call({"ZADD", "{t}z", "1.1", "a", "2", "b"}), ":2\r\n");
            }
            EXPECT_EQ(proxied.call(cmd), want) << cmd[0];
            if (pops) {
                ASSERT_EQ(setup.call({"ZADD", "{t}z", "1.1", "a", "2", "b"}), ":2\r\n");
            }
        }
    }
    // What the cluster client refuses to run is said so, not reported as a lost connection
    // (the command may have run) and counted as a backend error.
    for (auto sub : {"HELP", "NOSUCH"}) {
        const auto r = setup.call({"CLIENT", sub});
        EXPECT_EQ(r.find("connection to the serving backend lost"), std::string::npos) << r;
        EXPECT_EQ(r.substr(0, 1), "-") << r;
    }
    EXPECT_EQ(setup.call({"PING"}), "+PONG\r\n");
}

// The proxy in front of a cluster, optionally followed by the standalone server (dual-write).
class proxy_cluster_pinned : public proxy_cluster {
  protected:
    bool blocked_on(redis_server& node, int n) {
        return node.cli({"INFO", "clients"}).find("blocked_clients:" + std::to_string(n)) !=
               std::string::npos;
    }
};

TEST_F(proxy_cluster_pinned, watch_multi_exec_run_on_the_slots_master_and_are_followed) {
    serve_from_cluster(true);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"WATCH", "{w}a"}), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", "{w}a"}), "$-1\r\n");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "{w}a", "1"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"INCR", "{w}a"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "*2\r\n+OK\r\n:2\r\n");
    EXPECT_EQ(owner_of("{w}a").cli({"GET", "{w}a"}), "2");
    EXPECT_TRUE(eventually([&] {
        return standalone_.cli({"GET", "{w}a"}) == "2";
    })) << standalone_.cli({"GET", "{w}a"});
    // The pin ended with EXEC: a WATCH of another slot pins that slot's master.
    EXPECT_EQ(c.call({"WATCH", "other"}), "+OK\r\n");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "other", "x"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "*1\r\n+OK\r\n");
    EXPECT_EQ(owner_of("other").cli({"GET", "other"}), "x");
    EXPECT_EQ(c.call({"UNWATCH"}), "+OK\r\n");
}

TEST_F(proxy_cluster_pinned, a_write_after_watch_aborts_exec_like_redis) {
    serve_from_cluster(true);
    raw_conn c(proxy_->port());
    raw_conn other(proxy_->port());
    EXPECT_EQ(c.call({"WATCH", "{w}b"}), "+OK\r\n");
    EXPECT_EQ(other.call({"SET", "{w}b", "theirs"}), "+OK\r\n");
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "{w}b", "mine"}), "+QUEUED\r\n");
    EXPECT_EQ(c.call({"EXEC"}), "*-1\r\n");
    EXPECT_EQ(owner_of("{w}b").cli({"GET", "{w}b"}), "theirs");
    // The follower never gets the transaction that did not run: once a later write arrived,
    // the key still has the other client's value.
    EXPECT_EQ(other.call({"SET", "{w}marker", "1"}), "+OK\r\n");
    EXPECT_TRUE(eventually([&] { return standalone_.cli({"GET", "{w}marker"}) == "1"; }));
    EXPECT_EQ(standalone_.cli({"GET", "{w}b"}), "theirs");
}

TEST_F(proxy_cluster_pinned, watch_of_keys_in_two_slots_is_crossslot) {
    serve_from_cluster(false);
    ASSERT_NE(redis_cluster::key_slot("a"), redis_cluster::key_slot("b"));
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"WATCH", "a", "b"}),
              "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    EXPECT_EQ(c.call({"WATCH", "{x}a", "{x}b"}), "+OK\r\n");
    EXPECT_EQ(c.call({"UNWATCH"}), "+OK\r\n");
}

TEST_F(proxy_cluster_pinned, blpop_is_answered_when_another_client_pushes) {
    serve_from_cluster(false);
    raw_conn b(proxy_->port());
    b.command({"BLPOP", "bq", "5"});
    EXPECT_TRUE(eventually([&] { return blocked_on(owner_of("bq"), 1); }));
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"RPUSH", "bq", "x"}), ":1\r\n");
    EXPECT_EQ(b.frame(), "*2\r\n$2\r\nbq\r\n$1\r\nx\r\n");
    // Keys of two slots are refused as a cluster node refuses them.
    EXPECT_EQ(b.call({"BLPOP", "a", "b", "1"}),
              "-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    EXPECT_EQ(b.call({"BLPOP", "bq", "0.05"}), "*-1\r\n");
}

TEST_F(proxy_cluster_pinned, a_blocked_client_that_leaves_loses_no_value) {
    serve_from_cluster(false);
    for (int round = 0; round < 6; ++round) {
        const std::string key = "lq" + std::to_string(round);
        auto& owner = owner_of(key);
        // Odd rounds: the value arrives right after the disconnect, racing with the
        // cancellation (if the pop wins, the proxy pushes the value back).
        const bool racing = round % 2 == 1;
        {
            raw_conn blocked(proxy_->port());
            blocked.command({"BLPOP", key, "0"});
            ASSERT_TRUE(eventually([&] { return blocked_on(owner, 1); }));
            blocked.close();
        }
        if (racing)
            owner.cli({"RPUSH", key, "precious"});
        // The proxy unblocks the departed client's command on the node it blocks on.
        EXPECT_TRUE(eventually([&] { return blocked_on(owner, 0); }))
            << owner.cli({"INFO", "clients"});
        if (!racing)
            owner.cli({"RPUSH", key, "precious"});
        EXPECT_TRUE(eventually([&] {
            return owner.cli({"LLEN", key}) == "1";
        })) << "round "
            << round << ": " << owner.cli({"LRANGE", key, "0", "-1"});
    }
}

// One shard channel per master ("{s<i>}<suffix>", so that channels of one tag share a slot).
std::map<std::size_t, std::string> shard_tag_per_master(const redis_cluster& c) {
    std::map<std::size_t, std::string> tags;
    for (int i = 0; tags.size() < c.masters().size() && i < 1000; ++i) {
        const auto tag = "{s" + std::to_string(i) + "}";
        tags.emplace(c.master_of_slot(redis_cluster::key_slot(tag)), tag);
    }
    return tags;
}

std::string bulk(std::string_view s) {
    return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
// A pub/sub frame as Redis writes it: an array in RESP2, a push in RESP3.
std::string pubsub_frame(int proto, std::string_view kind, std::string_view name,
                         std::string_view last) {
    return std::string(proto == 3 ? ">3\r\n" : "*3\r\n") + bulk(kind) + bulk(name) +
           std::string(last);
}

TEST_F(proxy_cluster_pinned, ssubscribe_receives_spublish_of_every_master) {
    serve_from_cluster(false);
    const auto tags = shard_tag_per_master(*cluster_);
    ASSERT_EQ(tags.size(), cluster_->masters().size());
    ASSERT_GE(tags.size(), 2U);
    // One RESP2 client subscribing to every channel at once, and one RESP3 client, one by one.
    raw_conn r2(proxy_->port());
    raw_conn r3(proxy_->port());
    EXPECT_EQ(r3.call({"HELLO", "3"}).substr(0, 2), "%7");
    std::string all = "*" + std::to_string(tags.size() * 2 + 1) + "\r\n" + bulk("SSUBSCRIBE");
    for (const auto& [node, tag] : tags)
        all += bulk(tag + "ch") + bulk(tag + "marker");
    r2.send(all);
    int n = 0;
    int n3 = 0;
    for (const auto& [node, tag] : tags) {
        for (const auto* suffix : {"ch", "marker"}) {
            const auto name = tag + suffix;
            ASSERT_EQ(r2.frame(),
                      pubsub_frame(2, "ssubscribe", name, ":" + std::to_string(++n) + "\r\n"));
        }
        r3.command({"SSUBSCRIBE", tag + "ch"});
        ASSERT_EQ(r3.frame(),
                  pubsub_frame(3, "ssubscribe", tag + "ch", ":" + std::to_string(++n3) + "\r\n"));
    }
    // SPUBLISH on the channel's own master reaches both (the proxy's subscriptions live there).
    for (const auto& [node, tag] : tags) {
        const auto name = tag + "ch";
        const auto payload = "to " + name;
        EXPECT_GE(std::stoi(cluster_->node(node).cli({"SPUBLISH", name, payload})), 1)
            << "no subscriber on the slot's master for " << name;
        EXPECT_EQ(r2.frame(), pubsub_frame(2, "smessage", name, bulk(payload))) << name;
        EXPECT_EQ(r3.frame(), pubsub_frame(3, "smessage", name, bulk(payload))) << name;
    }
    // SUNSUBSCRIBE stops the delivery: a message published after it on the same master, to a
    // channel still subscribed, is the next one the client sees.
    for (const auto& [node, tag] : tags) {
        EXPECT_EQ(r2.call({"SUNSUBSCRIBE", tag + "ch"}),
                  pubsub_frame(2, "sunsubscribe", tag + "ch", ":" + std::to_string(--n) + "\r\n"));
        cluster_->node(node).cli({"SPUBLISH", tag + "ch", "unsubscribed"});
        cluster_->node(node).cli({"SPUBLISH", tag + "marker", "still"});
        EXPECT_EQ(r3.frame(), pubsub_frame(3, "smessage", tag + "ch", bulk("unsubscribed")));
        EXPECT_EQ(r2.frame(), pubsub_frame(2, "smessage", tag + "marker", bulk("still")));
    }
}

TEST_F(proxy_cluster_pinned, a_shard_channel_follows_its_slot_and_its_lost_connection) {
    serve_from_cluster(false);
    const std::string channel = "{moving}ch";
    const auto slot = redis_cluster::key_slot(channel);
    const auto from = cluster_->master_of_slot(slot);
    raw_conn c(proxy_->port());
    ASSERT_EQ(c.call({"SSUBSCRIBE", channel}), pubsub_frame(2, "ssubscribe", channel, ":1\r\n"));
    auto publish = [&](const std::string& payload) {
        return cluster_->node(cluster_->master_of_slot(slot)).cli({"SPUBLISH", channel, payload});
    };
    // Reads until `payload` arrives (a message published while the subscription moved may be
    // lost, and "again" may be published more than once).
    auto receives = [&](const std::string& payload) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < end) {
            auto f = c.frame(std::chrono::milliseconds(200));
            if (f && *f == pubsub_frame(2, "smessage", channel, bulk(payload)))
                return true;
        }
        return false;
    };
    EXPECT_EQ(publish("before"), "1");
    EXPECT_TRUE(receives("before"));
    // The slot moves to another master: Redis drops the subscription there ("sunsubscribe"
    // push) and the proxy subscribes on the new master.
    const auto to = cluster_->another_master(from);
    cluster_->migrate_slot(slot, to);
    ASSERT_EQ(cluster_->master_of_slot(slot), to);
    EXPECT_TRUE(eventually([&] { return publish("after move") == "1"; }, std::chrono::seconds(20)))
        << "the proxy did not subscribe on the slot's new master";
    EXPECT_TRUE(receives("after move"));
    // The proxy's connection to that master is killed: it subscribes again.
    cluster_->node(to).cli({"CLIENT", "KILL", "TYPE", "pubsub"});
    EXPECT_TRUE(eventually([&] { return publish("after kill") == "1"; }, std::chrono::seconds(20)))
        << "the proxy did not subscribe again after its connection was lost";
    EXPECT_TRUE(receives("after kill"));
    cluster_->migrate_slot(slot, from);
    EXPECT_EQ(c.call({"SUNSUBSCRIBE"}), pubsub_frame(2, "sunsubscribe", channel, ":0\r\n"));
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
}

// rejected_calls of a command on a node: a -MOVED reply counts there.
int rejected_calls(redis_server& node, const std::string& command) {
    const auto stats = node.cli({"INFO", "commandstats"});
    const auto at = stats.find("cmdstat_" + command + ":");
    if (at == std::string::npos)
        return 0;
    const auto field = stats.find("rejected_calls=", at);
    return field == std::string::npos ? 0 : std::stoi(stats.substr(field + 15));
}

TEST_F(proxy_cluster_pinned, blpop_on_a_slot_that_moved_is_answered_after_the_redirect) {
    serve_from_cluster(false);
    raw_conn b(proxy_->port());
    raw_conn c(proxy_->port());
    // Right after the move the proxy's slot map is stale: it is read from the cluster client,
    // whose map changes only after a redirect or every ~10 s. Should that refresh fall between
    // the move and the BLPOP, the attempt proves nothing and runs again on another slot.
    bool redirected = false;
    for (int attempt = 0; attempt < 3 && !redirected; ++attempt) {
        const auto key = "{moved" + std::to_string(attempt) + "}q";
        const auto slot = redis_cluster::key_slot(key);
        const auto from = cluster_->master_of_slot(slot);
        const auto to = cluster_->another_master(from);
        // The proxy knows the slot's owner (a raw BLPOP there that times out).
        EXPECT_EQ(b.call({"BLPOP", key, "0.01"}), "*-1\r\n");
        const auto rejected = rejected_calls(cluster_->node(from), "blpop");
        cluster_->migrate_slot(slot, to);  // the slot is empty: only the owner changes
        b.command({"BLPOP", key, "5"});
        EXPECT_TRUE(eventually([&] { return blocked_on(cluster_->node(to), 1); }))
            << cluster_->node(to).cli({"INFO", "clients"});
        EXPECT_EQ(c.call({"RPUSH", key, "x"}), ":1\r\n");
        EXPECT_EQ(b.frame(), "*2\r\n" + bulk(key) + bulk("x"));
        redirected = rejected_calls(cluster_->node(from), "blpop") > rejected;
        cluster_->migrate_slot(slot, from);
    }
    EXPECT_TRUE(redirected) << "the raw BLPOP never went to the slot's old master";
}

TEST_F(proxy_cluster_pinned, ssubscribe_on_a_slot_that_moved_follows_the_redirect) {
    serve_from_cluster(false);
    raw_conn c(proxy_->port());
    // As for BLPOP below: right after the move the proxy's slot map is stale, unless the cluster
    // client's periodic refresh fell in between (then the attempt runs again on another slot).
    bool redirected = false;
    for (int attempt = 0; attempt < 3 && !redirected; ++attempt) {
        const auto channel = "{smoved" + std::to_string(attempt) + "}ch";
        const auto warm = "{smoved" + std::to_string(attempt) + "}warm";
        const auto slot = redis_cluster::key_slot(channel);
        const auto from = cluster_->master_of_slot(slot);
        const auto to = cluster_->another_master(from);
        // The proxy knows the slot's owner (a subscription there, ended again).
        ASSERT_EQ(c.call({"SSUBSCRIBE", warm}), pubsub_frame(2, "ssubscribe", warm, ":1\r\n"));
        ASSERT_EQ(c.call({"SUNSUBSCRIBE", warm}), pubsub_frame(2, "sunsubscribe", warm, ":0\r\n"));
        const auto rejected = rejected_calls(cluster_->node(from), "ssubscribe");
        cluster_->migrate_slot(slot, to);
        // The old master answers -MOVED; the client gets the new master's confirmation.
        ASSERT_EQ(c.call({"SSUBSCRIBE", channel}),
                  pubsub_frame(2, "ssubscribe", channel, ":1\r\n"));
        EXPECT_EQ(cluster_->node(to).cli({"SPUBLISH", channel, "here"}), "1");
        EXPECT_EQ(c.frame(), pubsub_frame(2, "smessage", channel, bulk("here")));
        EXPECT_EQ(c.call({"SUNSUBSCRIBE", channel}),
                  pubsub_frame(2, "sunsubscribe", channel, ":0\r\n"));
        redirected = rejected_calls(cluster_->node(from), "ssubscribe") > rejected;
        cluster_->migrate_slot(slot, from);
    }
    EXPECT_TRUE(redirected) << "the SSUBSCRIBE never went to the slot's old master";
}

TEST_F(proxy_cluster_pinned, pubsub_shadow_compares_shard_channels_of_a_cluster) {
    proxy::proxy_config cfg;
    cfg.primary = cluster_backend();
    proxy::backend_config s;
    s.connection.host = standalone_.host();
    s.connection.port = standalone_.port();
    cfg.secondary = s;
    cfg.initial_mode = mode::dual_write_shadow;
    cfg.pubsub_compare_window = std::chrono::milliseconds(300);
    start(cfg);
    // A channel whose slot is not on the seed (node 0).
    std::string channel;
    for (const auto& [node, tag] : shard_tag_per_master(*cluster_))
        if (node != 0)
            channel = tag + "shadowed";
    ASSERT_FALSE(channel.empty());
    auto& owner = owner_of(channel);
    raw_conn sub(proxy_->port());
    ASSERT_EQ(sub.call({"SSUBSCRIBE", channel}), pubsub_frame(2, "ssubscribe", channel, ":1\r\n"));
    EXPECT_TRUE(eventually([&] { return shard_subscribers(standalone_, channel, 1); }))
        << "no shadow subscription on the secondary";
    // Published through the proxy: the cluster's master and, through the follower, the
    // secondary deliver it; nothing to report.
    raw_conn pub(proxy_->port());
    EXPECT_EQ(pub.call({"SPUBLISH", channel, "both"}), ":1\r\n");
    EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", channel, bulk("both")));
    // A publisher that bypasses the proxy: the secondary misses it, reported once its window
    // passed. The message seen through the proxy was matched by then (else two would be).
    EXPECT_EQ(owner.cli({"SPUBLISH", channel, "only-cluster"}), "1");
    EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", channel, bulk("only-cluster")));
    EXPECT_TRUE(eventually([&] { return info_has("divergence_data_mismatch:1\r\n"); }))
        << proxy_->info();
    EXPECT_EQ(sub.call({"SUNSUBSCRIBE"}), pubsub_frame(2, "sunsubscribe", channel, ":0\r\n"));
    EXPECT_TRUE(info_has("divergence_extra_data:0\r\n")) << proxy_->info();
}

// The index of the cluster's seed node (where the shadow's seed connection goes).
std::size_t seed_index(redis_cluster& c) {
    for (auto i : c.masters())
        if (c.node(i).port() == c.seed_port())
            return i;
    return 0;
}

// A shard channel of a master other than the seed.
std::string channel_off_seed(redis_cluster& c, std::string_view suffix) {
    const auto seed = seed_index(c);
    for (const auto& [node, tag] : shard_tag_per_master(c))
        if (node != seed)
            return tag + std::string(suffix);
    return {};
}

proxy::proxy_config shadow_into_cluster(const redis_server& primary,
                                        proxy::backend_config cluster) {
    proxy::proxy_config cfg;
    proxy::backend_config p;
    p.connection.host = primary.host();
    p.connection.port = primary.port();
    cfg.primary = p;
    cfg.secondary = std::move(cluster);
    cfg.initial_mode = mode::dual_write_shadow;
    cfg.pubsub_compare_window = std::chrono::milliseconds(300);
    return cfg;
}

// A MULTI queued in the proxy for a cluster side (no WATCH: no pinned connection) across a
// switch to a standalone side: EXEC took the standalone path with no connection and the proxy
// crashed (SIGSEGV). The switch now closes such a client, as it closes a pinned MULTI.
TEST_F(proxy_cluster_pinned, a_cluster_multi_across_a_switch_of_the_serving_side_is_closed) {
    start(shadow_into_cluster(standalone_, cluster_backend()));
    ASSERT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
    for (const auto* end : {"EXEC", "DISCARD"}) {
        raw_conn c(proxy_->port());
        ASSERT_EQ(c.call({"MULTI"}), "+OK\r\n");
        ASSERT_EQ(c.call({"SET", "{a}k", "1"}), "+QUEUED\r\n");
        ASSERT_TRUE(proxy_->set_mode(mode::dual_write_shadow, false).has_value());
        c.command({end});
        EXPECT_FALSE(c.frame(std::chrono::seconds(5)).has_value()) << end;  // closed
        raw_conn other(proxy_->port());
        ASSERT_EQ(other.call({"PING"}), "+PONG\r\n") << "after " << end;
        EXPECT_EQ(other.call({"EXISTS", "{a}k"}), ":0\r\n");
        ASSERT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
    }
}

// The other way round: the shadow side is the cluster. The twin subscription of a shard channel
// must go to the master of the channel's slot there, not to the configured seed.
TEST_F(proxy_cluster_pinned, pubsub_shadow_subscribes_shard_channels_on_the_clusters_owner) {
    start(shadow_into_cluster(standalone_, cluster_backend()));
    std::vector<std::string> channels;  // one per master, the seed's included
    for (const auto& [node, tag] : shard_tag_per_master(*cluster_))
        channels.push_back(tag + "twin");
    ASSERT_GE(channels.size(), 2U);
    raw_conn sub(proxy_->port());
    for (std::size_t i = 0; i < channels.size(); ++i)
        ASSERT_EQ(sub.call({"SSUBSCRIBE", channels[i]}),
                  pubsub_frame(2, "ssubscribe", channels[i], ":" + std::to_string(i + 1) + "\r\n"));
    for (const auto& ch : channels)
        EXPECT_TRUE(eventually([&] { return shard_subscribers(owner_of(ch), ch, 1); }))
            << "no shadow subscription for " << ch << " on its master";
    // Through the proxy: both sides deliver every message, nothing to report.
    raw_conn pub(proxy_->port());
    for (const auto& ch : channels) {
        EXPECT_EQ(pub.call({"SPUBLISH", ch, "both"}), ":1\r\n");
        EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", ch, bulk("both")));
    }
    // A publisher that bypasses the proxy on the primary: reported once per message.
    EXPECT_EQ(standalone_.cli({"SPUBLISH", channels.back(), "only-primary"}), "1");
    EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", channels.back(), bulk("only-primary")));
    EXPECT_TRUE(eventually([&] { return info_has("divergence_data_mismatch:1\r\n"); }))
        << proxy_->info();
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // two windows: no late reports
    EXPECT_TRUE(info_has("divergence_data_mismatch:1\r\n")) << proxy_->info();
    EXPECT_TRUE(info_has("divergence_migration_gap:0\r\n")) << proxy_->info();
    EXPECT_TRUE(info_has("divergence_extra_data:0\r\n")) << proxy_->info();

    // The twin's slot moves on the cluster: Redis drops it there, the proxy subscribes it on the
    // new master, and a message that bypasses the proxy is reported again (the shadow is live).
    const auto& ch = channels.front();
    const auto slot = redis_cluster::key_slot(ch);
    const auto from = cluster_->master_of_slot(slot);
    const auto to = cluster_->another_master(from);
    cluster_->migrate_slot(slot, to);
    EXPECT_TRUE(eventually([&] { return shard_subscribers(cluster_->node(to), ch, 1); },
                           std::chrono::seconds(20)))
        << "the twin subscription did not follow its slot";
    EXPECT_EQ(pub.call({"SPUBLISH", ch, "after-move"}), ":1\r\n");
    EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", ch, bulk("after-move")));
    // Messages of the first window after the restart are matched but never reported (their
    // twins may have come while the shadow was off): bypass messages until one is reported.
    int bypassed = 0;
    EXPECT_TRUE(eventually([&] {
        const auto payload = "only-primary-" + std::to_string(++bypassed);
        EXPECT_EQ(standalone_.cli({"SPUBLISH", ch, payload}), "1");
        EXPECT_EQ(sub.frame(), pubsub_frame(2, "smessage", ch, bulk(payload)));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return !info_has("divergence_data_mismatch:1\r\n");
    })) << proxy_->info();
    std::this_thread::sleep_for(std::chrono::milliseconds(600));  // the last bypass expires too
    EXPECT_TRUE(info_has("divergence_extra_data:0\r\n")) << proxy_->info();
    EXPECT_TRUE(info_has("divergence_migration_gap:0\r\n")) << proxy_->info();
    cluster_->migrate_slot(slot, from);
}

// The seed's shadow connection drops and the mode leaves dual-write-shadow before the next tick:
// every twin goes (none left subscribed on the cluster).
TEST_F(proxy_cluster_pinned, pubsub_shadow_twins_end_when_the_seed_drops_and_the_mode_leaves) {
    start(shadow_into_cluster(standalone_, cluster_backend()));
    const auto seed = seed_index(*cluster_);
    const auto ch = channel_off_seed(*cluster_, "leak");
    ASSERT_FALSE(ch.empty());
    raw_conn sub(proxy_->port());
    sub.call({"SUBSCRIBE", "plain"});
    sub.call({"SSUBSCRIBE", ch});
    ASSERT_TRUE(eventually([&] { return shard_subscribers(owner_of(ch), ch, 1); }));
    ASSERT_TRUE(eventually([&] { return subscribers(cluster_->node(seed), "plain", 1); }));
    cluster_->node(seed).cli({"CLIENT", "KILL", "TYPE", "pubsub"});
    ASSERT_TRUE(proxy_->set_mode(mode::dual_write, false).has_value());
    EXPECT_TRUE(eventually([&] { return shard_subscribers(owner_of(ch), ch, 0); }))
        << "a twin outlived the shadow mode";
    EXPECT_EQ(cluster_->node(seed).cli({"PUBSUB", "NUMSUB", "plain"}), "plain\n0");
}

// The other side refuses one twin (an ACL without that channel): that name is not compared, and
// the rest of the shadow keeps working, without reconnecting in a loop.
TEST_F(proxy_cluster_pinned, a_refused_twin_leaves_the_rest_of_the_shadow_working) {
    const auto ch = channel_off_seed(*cluster_, "denied");
    ASSERT_FALSE(ch.empty());
    auto& owner = owner_of(ch);
    owner.cli({"ACL", "SETUSER", "default", "resetchannels", "&plain"});
    struct restore {
        redis_server& s;
        ~restore() { s.cli({"ACL", "SETUSER", "default", "allchannels"}); }
    } restore_acl{owner};
    start(shadow_into_cluster(standalone_, cluster_backend()));
    raw_conn sub(proxy_->port());
    sub.call({"SUBSCRIBE", "plain"});
    sub.call({"SSUBSCRIBE", ch});
    auto connections = [&] {
        const auto info = owner.cli({"INFO", "stats"});
        const auto at = info.find("total_connections_received:") + 27;
        return std::stol(info.substr(at));
    };
    ASSERT_TRUE(eventually([&] { return subscribers(standalone_, "plain", 1); }));
    // The follower's first look at the masters' proto-max-bulk-len opens its connections to
    // them (kept): counted before.
    ASSERT_TRUE(eventually([&] {
        return proxy_->info().find("follow_secondary_target_bulk_limit:0\r\n") == std::string::npos;
    })) << proxy_->info();
    const auto before = connections();
    // Published on the primary only, bypassing the proxy: each one is reported.
    for (int i = 0; i < 5; ++i)
        standalone_.cli({"PUBLISH", "plain", "only-primary-" + std::to_string(i)});
    EXPECT_TRUE(eventually([&] {
        return proxy_->info().find("divergence_data_mismatch:5\r\n") != std::string::npos;
    })) << proxy_->info();
    // The refused shard channel: not compared, so nothing reported for it.
    EXPECT_EQ(standalone_.cli({"SPUBLISH", ch, "unverified"}), "1");
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_NE(proxy_->info().find("divergence_data_mismatch:5\r\n"), std::string::npos)
        << proxy_->info();
    EXPECT_LT(connections() - before, 2) << "the shadow reconnected to the refusing node";
}

// Twin links killed again and again while messages flow through the proxy: every message
// reaches both sides, so nothing may be reported.
TEST_F(proxy_cluster_pinned, pubsub_shadow_restarts_under_traffic_report_nothing) {
    start(shadow_into_cluster(standalone_, cluster_backend()));
    const auto ch = channel_off_seed(*cluster_, "r");
    ASSERT_FALSE(ch.empty());
    raw_conn sub(proxy_->port());
    sub.call({"SUBSCRIBE", "plain"});
    sub.call({"SSUBSCRIBE", ch});
    ASSERT_TRUE(eventually([&] { return shard_subscribers(owner_of(ch), ch, 1); }));
    std::atomic<bool> stop{false};
    std::atomic<long> published{0};
    std::jthread publisher([&] {
        raw_conn pub(proxy_->port());
        for (int i = 0; !stop; ++i) {
            pub.call({"PUBLISH", "plain", std::to_string(i)});
            ++published;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::jthread reader([&] {
        while (!stop)
            (void)sub.frame(std::chrono::milliseconds(200));
    });
    for (int k = 0; k < 10; ++k) {
        ASSERT_TRUE(eventually([&] { return shard_subscribers(owner_of(ch), ch, 1); }));
        owner_of(ch).cli({"CLIENT", "KILL", "TYPE", "pubsub"});
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the last windows close
    stop = true;
    publisher.join();
    reader.join();
    EXPECT_GT(published.load(), 500);
    const auto info = proxy_->info();
    EXPECT_NE(info.find("divergence_data_mismatch:0\r\n"), std::string::npos) << info;
    EXPECT_NE(info.find("divergence_extra_data:0\r\n"), std::string::npos) << info;
}

TEST_F(proxy_cluster_pinned, select_answers_like_a_cluster_node) {
    serve_from_cluster(false);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SELECT", "1"}), "-ERR SELECT is not allowed in cluster mode\r\n");
    EXPECT_EQ(c.call({"SELECT", "0"}), "+OK\r\n");
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
}

// A client that asks the proxy whether it is a cluster (INFO, CLUSTER SLOTS, as libraries that
// detect the topology do) hears "standalone": with the real cluster's slots it would connect to
// the nodes directly and bypass the proxy (and the follower).
TEST_F(proxy_cluster_pinned, info_and_cluster_commands_show_one_standalone_server) {
    serve_from_cluster(false);
    for (int proto : {2, 3}) {
        raw_conn c(proxy_->port());
        if (proto == 3) {
            ASSERT_EQ(c.call({"HELLO", "3"}).substr(0, 2), "%7");
        }
        const std::string disabled = "-ERR This instance has cluster support disabled\r\n";
        EXPECT_EQ(c.call({"CLUSTER", "SLOTS"}), disabled);
        EXPECT_EQ(c.call({"CLUSTER", "SHARDS"}), disabled);
        EXPECT_EQ(c.call({"cluster", "nodes"}), disabled);
        EXPECT_EQ(c.call({"CLUSTER", "INFO"}), disabled);
        EXPECT_EQ(c.call({"CLUSTER", "KEYSLOT", "k"}), disabled);
        EXPECT_EQ(c.call({"READONLY"}), disabled);
        EXPECT_EQ(c.call({"READWRITE"}), disabled);
        EXPECT_EQ(c.call({"ASKING"}), disabled);
        for (std::vector<std::string_view> info : {std::vector<std::string_view>{"INFO"},
                                                   {"INFO", "server"},
                                                   {"INFO", "cluster"},
                                                   {"INFO", "everything"},
                                                   {"info", "SERVER", "cluster"}}) {
            c.command(info);
            const auto reply = c.frame().value_or("<none>");
            EXPECT_EQ(reply.substr(0, 1), proto == 3 ? "=" : "$") << reply;
            EXPECT_EQ(reply.find("redis_mode:cluster"), std::string::npos) << reply;
            EXPECT_EQ(reply.find("cluster_enabled:1"), std::string::npos) << reply;
            const bool server = info.size() == 1 || info[1] != "cluster";
            const bool cluster = info.size() == 1 || info.back() != "server";
            if (server) {
                EXPECT_NE(reply.find("redis_mode:standalone\r\n"), std::string::npos) << reply;
            }
            if (cluster) {
                EXPECT_NE(reply.find("cluster_enabled:0\r\n"), std::string::npos) << reply;
            }
            // The bulk's length still matches its text.
            const auto crlf = reply.find("\r\n");
            EXPECT_EQ(std::stoul(reply.substr(1, crlf - 1)), reply.size() - crlf - 4) << reply;
        }
        const auto enabled = c.call({"CONFIG", "GET", "cluster-enabled"});
        EXPECT_NE(enabled.find("$15\r\ncluster-enabled\r\n$2\r\nno\r\n"), std::string::npos)
            << enabled;
        // Inside MULTI, EXEC's array would carry the node's own answers: refused, aborted.
        EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
        EXPECT_EQ(c.call({"INFO", "server"}).substr(0, 22), "-ERR proxy: INFO insid");
        EXPECT_EQ(c.call({"EXEC"}),
                  "-EXECABORT Transaction discarded because of previous errors.\r\n");
        EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
        EXPECT_EQ(c.call({"CLUSTER", "SLOTS"}), disabled);
        EXPECT_EQ(c.call({"EXEC"}),
                  "-EXECABORT Transaction discarded because of previous errors.\r\n");
        EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
    }
}

TEST_F(proxy_cluster_pinned, monitor_sees_the_commands_of_every_master) {
    serve_from_cluster(false);
    // One key per master.
    std::map<std::size_t, std::string> key_of_master;
    for (int i = 0; key_of_master.size() < cluster_->masters().size() && i < 1000; ++i) {
        const auto k = "mon" + std::to_string(i);
        key_of_master.emplace(cluster_->master_of_slot(redis_cluster::key_slot(k)), k);
    }
    ASSERT_GE(key_of_master.size(), 2U);
    raw_conn m(proxy_->port());
    EXPECT_EQ(m.call({"MONITOR"}), "+OK\r\n");
    raw_conn c(proxy_->port());
    std::set<std::string> unseen;
    for (const auto& [node, k] : key_of_master) {
        EXPECT_EQ(c.call({"SET", k, "v"}), "+OK\r\n");
        unseen.insert("\"" + k + "\"");
    }
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!unseen.empty() && std::chrono::steady_clock::now() < end) {
        auto line = m.frame(std::chrono::seconds(1));
        if (!line)
            continue;
        EXPECT_EQ(line->front(), '+') << *line;
        std::erase_if(unseen, [&](const std::string& k) { return line->find(k) != line->npos; });
    }
    EXPECT_TRUE(unseen.empty()) << "not seen: " << *unseen.begin();
    // RESET ends it (lines already on their way may come first).
    m.command({"RESET"});
    EXPECT_TRUE(eventually([&] { return m.frame() == "+RESET\r\n"; }));
    EXPECT_EQ(m.call({"PING"}), "+PONG\r\n");
}

TEST_F(proxy_cluster_pinned, monitor_reset_pipelined_and_keyspace_commands_while_pinned) {
    serve_from_cluster(false);
    // MONITOR and RESET in one packet: RESET closes the MONITOR connections while their
    // confirmations are still due. The client gets two replies and the proxy keeps serving.
    for (int round = 0; round < 5; ++round) {
        raw_conn m(proxy_->port());
        m.send("*1\r\n$7\r\nMONITOR\r\n*1\r\n$5\r\nRESET\r\n*1\r\n$4\r\nPING\r\n");
        auto first = m.frame();
        ASSERT_TRUE(first.has_value());
        EXPECT_TRUE(*first == "+OK\r\n" || first->starts_with("-ERR proxy")) << *first;
        // Lines of the short-lived MONITOR may come before RESET's reply.
        EXPECT_TRUE(eventually([&] { return m.frame() == "+RESET\r\n"; }));
        EXPECT_TRUE(eventually([&] { return m.frame() == "+PONG\r\n"; }));
    }
    // While WATCH pins one node, keyspace-wide state is refused instead of living on that node.
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"WATCH", "{w}k"}), "+OK\r\n");
    EXPECT_NE(c.call({"MONITOR"}).find("-ERR proxy: monitor is not supported while"),
              std::string::npos);
    EXPECT_NE(c.call({"CLIENT", "TRACKING", "ON"}).find("-ERR proxy:"), std::string::npos);
    // A key of another node inside the pinned session: no node address in the reply.
    std::string other;
    const auto pinned_master = cluster_->master_of_slot(redis_cluster::key_slot("{w}k"));
    for (int i = 0; other.empty() && i < 1000; ++i) {
        const auto k = "o" + std::to_string(i);
        if (cluster_->master_of_slot(redis_cluster::key_slot(k)) != pinned_master)
            other = k;
    }
    ASSERT_FALSE(other.empty());
    EXPECT_EQ(c.call({"MULTI"}), "+OK\r\n");
    const auto moved = c.call({"SET", other, "v"});
    EXPECT_EQ(moved.find("MOVED"), std::string::npos) << moved;
    EXPECT_EQ(moved.find("127.0.0.1"), std::string::npos) << moved;
    EXPECT_NE(moved.find("-ERR proxy: this key is served by another Redis Cluster node"),
              std::string::npos)
        << moved;
    EXPECT_NE(c.call({"EXEC"}).find("EXECABORT"), std::string::npos);
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
}

// `n` keys written through `cl`, spread so that every master of the cluster holds some.
std::set<std::string> write_keys_on_every_master(client::sync_client& cl, std::string_view prefix,
                                                 int n) {
    std::set<std::string> keys;
    for (int i = 0; i < n; ++i) {
        auto k = std::string(prefix) + std::to_string(i);
        auto r = cl.command("SET", k, "v");
        EXPECT_TRUE(r && !r->is_error());
        keys.insert(std::move(k));
    }
    return keys;
}

std::set<std::string> strings_of(const resp::value& array) {
    std::set<std::string> out;
    for (const auto& e : array.elements())
        out.insert(e.str());
    return out;
}

// Every page of a SCAN from 0 to 0 (each key as often as it came).
std::multiset<std::string> scan_all(client::sync_client& cl, std::vector<std::string> options) {
    std::multiset<std::string> seen;
    std::string cursor = "0";
    for (int pages = 0; pages < 1000; ++pages) {
        std::vector<std::string> args{"SCAN", cursor};
        args.insert(args.end(), options.begin(), options.end());
        client::request req;
        req.push_args(args);
        auto r = cl.run(std::move(req));
        if (!r || r->type() != resp::type::array || r->size() != 2) {
            ADD_FAILURE() << (r ? r->to_display() : r.error().message());
            return seen;
        }
        cursor = r->elements()[0].str();
        for (const auto& e : r->elements()[1].elements())
            seen.insert(e.str());
        if (cursor == "0")
            return seen;
    }
    ADD_FAILURE() << "SCAN did not end";
    return seen;
}

TEST_F(proxy_cluster_pinned, keyspace_commands_answer_for_every_master) {
    serve_from_cluster(false);
    client::client_config cc;
    cc.connection.port = proxy_->port();
    client::sync_client cl(cc);
    const auto keys = write_keys_on_every_master(cl, "ks", 60);
    std::size_t total = 0;
    for (auto i : cluster_->masters()) {
        const auto n = std::stoul(cluster_->node(i).cli({"DBSIZE"}));
        EXPECT_GT(n, 0U) << "master " << i;
        total += n;
    }
    ASSERT_EQ(total, keys.size());

    EXPECT_EQ(cl.command("DBSIZE")->integer(), 60);
    const auto all = cl.command("KEYS", "*");
    ASSERT_TRUE(all && all->type() == resp::type::array);
    EXPECT_EQ(all->size(), keys.size());
    EXPECT_EQ(strings_of(*all), keys);
    EXPECT_TRUE(keys.contains(cl.command("RANDOMKEY")->str()));

    // SCAN walks every master: each key exactly once.
    const auto seen = scan_all(cl, {"COUNT", "5"});
    EXPECT_EQ(seen.size(), keys.size());
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), keys);
    // MATCH and TYPE reach every master.
    const auto matched = scan_all(cl, {"MATCH", "ks1*", "COUNT", "3"});
    EXPECT_EQ(std::set<std::string>(matched.begin(), matched.end()),
              (std::set<std::string>{"ks1", "ks10", "ks11", "ks12", "ks13", "ks14", "ks15", "ks16",
                                     "ks17", "ks18", "ks19"}));
    EXPECT_EQ(matched.size(), 11U);
    ASSERT_EQ(cl.command("HSET", "kh", "f", "v")->integer(), 1);
    const auto hashes = scan_all(cl, {"TYPE", "hash"});
    EXPECT_EQ(hashes, (std::multiset<std::string>{"kh"}));
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SCAN", "x"}), "-ERR invalid cursor\r\n");

    // FLUSHALL empties every master, FLUSHDB ASYNC too.
    EXPECT_EQ(c.call({"FLUSHALL"}), "+OK\r\n");
    for (auto i : cluster_->masters())
        EXPECT_EQ(cluster_->node(i).cli({"DBSIZE"}), "0") << "master " << i;
    EXPECT_EQ(c.call({"DBSIZE"}), ":0\r\n");
    EXPECT_EQ(c.call({"RANDOMKEY"}), "$-1\r\n");
    EXPECT_EQ(c.call({"SCAN", "0"}), "*2\r\n$1\r\n0\r\n*0\r\n");
    write_keys_on_every_master(cl, "kf", 30);
    EXPECT_EQ(c.call({"FLUSHDB", "ASYNC"}), "+OK\r\n");
    for (auto i : cluster_->masters())
        EXPECT_TRUE(eventually([&] { return cluster_->node(i).cli({"DBSIZE"}) == "0"; }))
            << "master " << i;
}

TEST_F(proxy_cluster_pinned, a_scan_across_a_slot_move_still_visits_every_master) {
    serve_from_cluster(false);
    client::client_config cc;
    cc.connection.port = proxy_->port();
    client::sync_client cl(cc);
    const auto keys = write_keys_on_every_master(cl, "mv", 90);
    const std::string moved_key = "mv0";
    const auto slot = redis_cluster::key_slot(moved_key);
    const auto from = cluster_->master_of_slot(slot);
    const auto to = cluster_->another_master(from);
    // A few pages, then the slot moves (resharding between the same masters), then the rest.
    std::multiset<std::string> seen;
    std::string cursor = "0";
    bool moved = false;
    for (int page = 0; page < 1000; ++page) {
        auto r = cl.command("SCAN", cursor, "COUNT", 5);
        ASSERT_TRUE(r && r->type() == resp::type::array) << (r ? r->to_display() : "");
        cursor = r->elements()[0].str();
        for (const auto& e : r->elements()[1].elements())
            seen.insert(e.str());
        if (page == 3) {
            cluster_->migrate_slot(slot, to);
            moved = true;
        }
        if (cursor == "0")
            break;
    }
    EXPECT_TRUE(moved);
    EXPECT_EQ(cursor, "0");
    cluster_->migrate_slot(slot, from);
    // Keys of the moved slot may be missed; every other key comes (a node's table that grew
    // meanwhile may repeat some, as SCAN allows): no master was skipped.
    for (const auto& k : keys) {
        if (redis_cluster::key_slot(k) == slot)
            continue;
        EXPECT_GE(seen.count(k), 1U) << k;
    }
}

TEST_F(proxy_cluster_pinned, scripts_and_functions_are_loaded_on_every_master) {
    serve_from_cluster(false);
    client::client_config cc;
    cc.connection.port = proxy_->port();
    client::sync_client cl(cc);
    std::map<std::size_t, std::string> key_of_master;
    for (int i = 0; key_of_master.size() < cluster_->masters().size() && i < 1000; ++i) {
        const auto k = "sc" + std::to_string(i);
        key_of_master.emplace(cluster_->master_of_slot(redis_cluster::key_slot(k)), k);
    }
    ASSERT_GE(key_of_master.size(), 2U);
    for (const auto& [node, k] : key_of_master)
        ASSERT_EQ(cl.command("SET", k, "m" + std::to_string(node))->str(), "OK");

    const auto sha = cl.command("SCRIPT", "LOAD", "return redis.call('GET', KEYS[1])");
    ASSERT_TRUE(sha && sha->is_string()) << (sha ? sha->to_display() : "");
    for (const auto& [node, k] : key_of_master) {
        const auto r = cl.command("EVALSHA", sha->str(), 1, k);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->str(), "m" + std::to_string(node)) << r->to_display();
    }
    const auto exists = cl.command("SCRIPT", "EXISTS", sha->str(), "0000");
    ASSERT_TRUE(exists && exists->size() == 2) << (exists ? exists->to_display() : "");
    EXPECT_EQ(exists->elements()[0].integer(), 1);
    EXPECT_EQ(exists->elements()[1].integer(), 0);
    // Gone from one master only: not there for the client (a cluster-aware client's AND).
    cluster_->node(key_of_master.begin()->first).cli({"SCRIPT", "FLUSH"});
    EXPECT_EQ(cl.command("SCRIPT", "EXISTS", sha->str())->elements()[0].integer(), 0);
    EXPECT_EQ(cl.command("SCRIPT", "FLUSH")->str(), "OK");
    for (const auto& [node, k] : key_of_master)
        EXPECT_TRUE(cl.command("EVALSHA", sha->str(), 1, k)->is_error()) << "master " << node;

    const auto lib = cl.command("FUNCTION", "LOAD",
                                "#!lua name=kllib\nredis.register_function('kl_get', "
                                "function(keys, args) return redis.call('GET', keys[1]) end)");
    ASSERT_TRUE(lib);
    EXPECT_EQ(lib->str(), "kllib") << lib->to_display();
    for (const auto& [node, k] : key_of_master)
        EXPECT_EQ(cl.command("FCALL", "kl_get", 1, k)->str(), "m" + std::to_string(node));
    EXPECT_EQ(cl.command("FUNCTION", "DELETE", "kllib")->str(), "OK");
    for (const auto& [node, k] : key_of_master)
        EXPECT_TRUE(cl.command("FCALL", "kl_get", 1, k)->is_error()) << "master " << node;
    // A refusal of every master is the client's error.
    EXPECT_TRUE(cl.command("FUNCTION", "DELETE", "kllib")->is_error());
}

TEST_F(proxy_cluster_pinned, a_keyspace_write_some_masters_refused_needs_a_full_resync) {
    serve_from_cluster(true);
    // A library on one master only: FUNCTION DELETE runs there and is refused by the others.
    auto& one = cluster_->node(cluster_->masters().front());
    ASSERT_EQ(one.cli({"FUNCTION", "LOAD",
                       "#!lua name=partlib\nredis.register_function('part_f', function() return 1 "
                       "end)"}),
              "partlib");
    raw_conn c(proxy_->port());
    EXPECT_NE(c.call({"FUNCTION", "DELETE", "partlib"}).find("-ERR Library not found"),
              std::string::npos);
    EXPECT_EQ(one.cli({"FUNCTION", "LIST", "LIBRARYNAME", "partlib"}), "");
    // The serving side changed in part: the follower cannot have it, and says so.
    const auto info = c.call({"INFO", "proxy"});
    EXPECT_NE(info.find("full_resync_needed:1"), std::string::npos) << info;
}

TEST_F(proxy_cluster, keyless_writes_reach_every_master_of_a_cluster_follower) {
    auto cfg = into_cluster(mode::dual_write);
    start(cfg);
    client::client_config cc;
    cc.connection.port = proxy_->port();
    client::sync_client cl(cc);
    const auto keys = write_keys_on_every_master(cl, "fk", 60);
    auto cluster_size = [&] {
        std::size_t n = 0;
        for (auto i : cluster_->masters())
            n += std::stoul(cluster_->node(i).cli({"DBSIZE"}));
        return n;
    };
    ASSERT_TRUE(eventually([&] { return cluster_size() == keys.size(); })) << cluster_size();
    for (auto i : cluster_->masters())
        ASSERT_NE(cluster_->node(i).cli({"DBSIZE"}), "0") << "master " << i;

    const auto sha = cl.command("SCRIPT", "LOAD", "return 7");
    ASSERT_TRUE(sha && sha->is_string());
    EXPECT_EQ(cl.command("FLUSHALL")->str(), "OK");
    EXPECT_EQ(cl.command("SET", "after", "1")->str(), "OK");
    for (auto i : cluster_->masters()) {
        EXPECT_TRUE(eventually([&] {
            const auto n = cluster_->node(i).cli({"DBSIZE"});
            return n == "0" || (n == "1" && cluster_->node(i).cli({"EXISTS", "after"}) == "1");
        })) << "master "
            << i << " DBSIZE " << cluster_->node(i).cli({"DBSIZE"});
        EXPECT_EQ(cluster_->node(i).cli({"SCRIPT", "EXISTS", sha->str()}), "1") << "master " << i;
    }
    EXPECT_TRUE(eventually([&] { return owner_of("after").cli({"GET", "after"}) == "1"; }));
    raw_conn c(proxy_->port());
    const auto info = c.call({"INFO", "proxy"});
    EXPECT_NE(info.find("full_resync_needed:0"), std::string::npos) << info;
}

// PROXY SYNC and PROXY VERIFY with a cluster on either side: every master is scanned.
class proxy_cluster_sync : public proxy_cluster {
  protected:
    // The proxy between the standalone server and the cluster, `cluster_serves` picking which
    // one is the primary; dual-write (the other side follows), the admin HTTP port on.
    void start_between(bool cluster_serves,
                       const std::function<void(proxy::proxy_config&)>& tweak = {}) {
        proxy::backend_config standalone;
        standalone.connection.host = standalone_.host();
        standalone.connection.port = standalone_.port();
        proxy::proxy_config cfg;
        cfg.primary = cluster_serves ? cluster_backend() : standalone;
        cfg.secondary = cluster_serves ? standalone : cluster_backend();
        cfg.initial_mode = mode::dual_write;
        cfg.repair_rate = 0;
        cfg.verify_chunk_elements = 20;
        if (tweak)
            tweak(cfg);
        start(cfg);
        ASSERT_FALSE(HasFatalFailure());
    }
    void start(proxy::proxy_config cfg) {
        cfg.listen_port = 0;
        cfg.threads = 2;
        cfg.admin_host = "127.0.0.1";
        cfg.admin_port = 0;
        cfg.log_level = "warn";
        proxy_ = std::make_unique<proxy::proxy_server>(cfg);
        auto r = proxy_->start();
        ASSERT_TRUE(r.has_value()) << r.error();
    }

    std::string call(std::initializer_list<std::string_view> args) {
        raw_conn c(proxy_->port());
        return c.call(args);
    }
    // Runs PROXY <job> START <args...> to its end; its STATUS.
    std::string run(std::string_view job, std::vector<std::string_view> args = {},
                    std::chrono::milliseconds limit = std::chrono::seconds(60)) {
        raw_conn c(proxy_->port());
        std::string cmd = "*" + std::to_string(3 + args.size()) + "\r\n";
        for (auto a : std::vector<std::string_view>{"PROXY", job, "START"})
            cmd += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
        for (auto a : args)
            cmd += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
        c.send(cmd);
        EXPECT_EQ(c.frame(), "+OK\r\n");
        const std::string done = (job == "SYNC" ? "sync" : "verify") + std::string("_state:done");
        std::string status;
        EXPECT_TRUE(eventually(
            [&] {
                status = call({"PROXY", job, "STATUS"});
                return status.find(done) != std::string::npos;
            },
            limit))
            << status;
        return status;
    }
    static long field(const std::string& status, std::string_view name) {
        const auto at = status.find("\n" + std::string(name) + ":");
        return at == std::string::npos ? -1 : std::stol(status.substr(at + name.size() + 2));
    }

    // The key of a single-key command.
    static const std::string& key_of(const std::vector<std::string>& c) {
        if (c.at(0) == "XGROUP" ||
            c.at(0) == "DEBUG")  // XGROUP CREATE <key>, DEBUG DIGEST-VALUE <key>
            return c.at(2);
        if (c.at(0) == "XREADGROUP")
            return c.at(c.size() - 2);  // ... STREAMS <key> >
        return c.at(1);
    }
    // Runs commands on a server as one pipeline; the replies (none on a failure).
    static std::vector<resp::value> on(const redis_server& server,
                                       const std::vector<std::vector<std::string>>& commands) {
        client::client_config cc;
        cc.connection.host = server.host();
        cc.connection.port = server.port();
        client::sync_client cl(cc);
        client::request req;
        for (const auto& c : commands)
            req.push_args(c);
        auto res = cl.exec(std::move(req));
        EXPECT_TRUE(res.has_value());
        return res ? std::move(*res) : std::vector<resp::value>{};
    }
    // Runs commands on the cluster: each on the master of its key's slot, pipelined per master;
    // the replies in command order.
    std::vector<resp::value> on_cluster(const std::vector<std::vector<std::string>>& commands) {
        std::map<std::size_t, std::vector<std::size_t>> per_master;
        for (std::size_t i = 0; i < commands.size(); ++i) {
            const auto slot = redis_cluster::key_slot(key_of(commands[i]));
            per_master[cluster_->master_of_slot(slot)].push_back(i);
        }
        std::vector<resp::value> out(commands.size());
        for (const auto& [node, indices] : per_master) {
            std::vector<std::vector<std::string>> batch;
            for (auto i : indices)
                batch.push_back(commands[i]);
            auto replies = on(cluster_->node(node), batch);
            for (std::size_t j = 0; j < indices.size() && j < replies.size(); ++j)
                out[indices[j]] = std::move(replies[j]);
        }
        return out;
    }
    static void expect_no_error(const std::vector<resp::value>& replies) {
        for (const auto& v : replies)
            EXPECT_FALSE(v.is_error()) << v.to_display();
    }
    // Writes straight to the cluster (behind the proxy's back).
    void write_to_cluster(const std::vector<std::vector<std::string>>& commands) {
        expect_no_error(on_cluster(commands));
    }
    void write_to_standalone(const std::vector<std::vector<std::string>>& commands) {
        expect_no_error(on(standalone_, commands));
    }

    // Keys of every type: `strings` strings "s:<i>" (a tenth with a TTL), small hashes, lists,
    // sets and sorted sets, big ones (60 elements, above verify_chunk_elements 20) and streams
    // with a consumer group (two entries delivered, one acknowledged).
    static std::vector<std::vector<std::string>> every_type(int strings) {
        std::vector<std::vector<std::string>> out;
        for (int i = 0; i < strings; ++i) {
            const auto k = "s:" + std::to_string(i);
            if (i % 10 == 0)
                out.push_back({"SET", k, "v" + std::to_string(i), "EX", "1000"});
            else
                out.push_back({"SET", k, "v" + std::to_string(i)});
        }
        for (int i = 0; i < 6; ++i) {
            const auto n = std::to_string(i);
            out.push_back({"HSET", "h:" + n, "a", n, "b", "2"});
            out.push_back({"RPUSH", "l:" + n, "x", n});
            out.push_back({"SADD", "set:" + n, "m", n});
            out.push_back({"ZADD", "z:" + n, "1.5", "a", n, "b"});
            const auto st = "st:" + n;
            out.push_back({"XADD", st, "1-1", "f", "a"});
            out.push_back({"XADD", st, "2-1", "f", "b"});
            out.push_back({"XGROUP", "CREATE", st, "g", "0"});
            out.push_back({"XREADGROUP", "GROUP", "g", "alice", "COUNT", "2", "STREAMS", st, ">"});
            out.push_back({"XACK", st, "g", "1-1"});
        }
        for (int b = 0; b < 3; ++b) {
            const auto n = std::to_string(b);
            for (int e = 0; e < 60; ++e) {
                const auto s = std::to_string(e);
                out.push_back({"RPUSH", "big:list:" + n, "e" + s});
                out.push_back({"HSET", "big:hash:" + n, "f" + s, "v" + s});
                out.push_back({"SADD", "big:set:" + n, "m" + s});
                out.push_back({"ZADD", "big:zset:" + n, s, "m" + s});
                out.push_back({"XADD", "big:stream:" + n, std::to_string(e + 1) + "-1", "f", s});
            }
        }
        return out;
    }
    static std::vector<std::string> keys_of(const std::vector<std::vector<std::string>>& cmds) {
        std::set<std::string> keys;
        for (const auto& c : cmds)
            if (c[0] != "XREADGROUP")
                keys.insert(key_of(c));
        return {keys.begin(), keys.end()};
    }

    std::size_t cluster_size() const {
        std::size_t n = 0;
        for (auto i : cluster_->masters())
            n += std::stoul(cluster_->node(i).cli({"DBSIZE"}));
        return n;
    }
    // Keys whose value (DEBUG DIGEST-VALUE) or consumer groups differ between the standalone
    // server and the cluster; empty when they hold the same.
    // Every key of `keys` reaches the standalone server with the cluster's value, and no other.
    void expect_copied_to_standalone(const std::vector<std::string>& keys) {
        std::string diff;
        EXPECT_TRUE(eventually(
            [&] {
                diff = differences(keys);
                return diff.empty() && std::stoul(standalone_.cli({"DBSIZE"})) == keys.size();
            },
            std::chrono::seconds(30)))
            << "differ: " << diff << " standalone keys " << standalone_.cli({"DBSIZE"});
    }
    std::string differences(const std::vector<std::string>& keys) {
        std::vector<std::vector<std::string>> reads;
        for (const auto& k : keys) {
            reads.push_back({"DEBUG", "DIGEST-VALUE", k});
            if (k.starts_with("st:"))
                reads.push_back({"XPENDING", k, "g"});
        }
        const auto here = on(standalone_, reads);
        const auto there = on_cluster(reads);
        std::string out;
        for (std::size_t i = 0; i < reads.size(); ++i)
            if (i >= here.size() || here[i].to_display() != there[i].to_display())
                out += reads[i][0] + " " + reads[i].at(reads[i][0] == "DEBUG" ? 2 : 1) + " (" +
                       (i < here.size() ? here[i].to_display() : "") + " / " +
                       there[i].to_display() + "); ";
        return out;
    }
    // Every master holds some of the keys.
    void expect_spread_over_every_master() {
        for (auto i : cluster_->masters())
            EXPECT_GT(std::stoul(cluster_->node(i).cli({"DBSIZE"})), 0U) << "master " << i;
    }
    // A key name with this prefix whose slot a given master owns.
    std::string key_on(std::size_t master, std::string_view prefix) {
        for (int i = 0; i < 10000; ++i) {
            auto k = std::string(prefix) + std::to_string(i);
            if (cluster_->master_of_slot(redis_cluster::key_slot(k)) == master)
                return k;
        }
        ADD_FAILURE() << "no key for master " << master;
        return {};
    }
    std::string divergences() { return http(proxy_->admin_port(), "GET", "/divergences"); }
};

TEST_F(proxy_cluster_sync, a_standalone_redis_is_copied_into_a_cluster_and_verified_clean) {
    const auto data = every_type(300);
    write_to_standalone(data);
    const auto keys = keys_of(data);
    start_between(false);
    auto s = run("SYNC", {"COUNT", "50"});
    EXPECT_EQ(field(s, "sync_nodes_scanned"), 1) << s;
    EXPECT_EQ(field(s, "sync_rescans"), 0) << s;
    EXPECT_GE(field(s, "sync_keys_scanned"), static_cast<long>(keys.size())) << s;
    std::string diff;
    EXPECT_TRUE(eventually(
        [&] {
            diff = differences(keys);
            return diff.empty() && cluster_size() == keys.size();
        },
        std::chrono::seconds(30)))
        << "differ: " << diff << " cluster keys " << cluster_size() << " of " << keys.size();
    expect_spread_over_every_master();

    // VERIFY reads the other side (the cluster) by key and scans all its masters for extras.
    const auto v = run("VERIFY", {"COUNT", "50"});
    // The standalone server, then the cluster's three masters for extra keys.
    EXPECT_EQ(field(v, "verify_nodes_scanned"), 4) << v;
    EXPECT_EQ(field(v, "verify_keys_scanned"), static_cast<long>(keys.size())) << v;
    EXPECT_EQ(field(v, "verify_extra_scanned"), static_cast<long>(keys.size())) << v;
    EXPECT_EQ(field(v, "verify_diverged"), 0) << v << divergences();
    EXPECT_EQ(field(v, "verify_errors"), 0) << v;
    EXPECT_EQ(field(v, "verify_unstable"), 0) << v;
    EXPECT_EQ(field(v, "verify_extra_keys"), 0) << v;
    EXPECT_EQ(field(v, "verify_chunked_keys"), 15) << v;  // 3 of each collection type
    EXPECT_EQ(field(v, "verify_groups_compared"), 6) << v;
    EXPECT_EQ(field(v, "verify_matched"), field(v, "verify_compared")) << v;
}

TEST_F(proxy_cluster_sync, a_cluster_is_copied_into_a_standalone_redis_master_by_master) {
    const auto data = every_type(300);
    write_to_cluster(data);
    const auto keys = keys_of(data);
    expect_spread_over_every_master();
    standalone_.cli({"SET", "stale-only-here", "1"});
    start_between(true);
    const auto s = run("SYNC", {"COUNT", "50", "PRUNE"});
    // The cluster's three masters, then the standalone follower for keys to prune.
    EXPECT_EQ(field(s, "sync_nodes_scanned"), 4) << s;
    EXPECT_EQ(field(s, "sync_rescans"), 0) << s;
    EXPECT_GE(field(s, "sync_keys_scanned"), static_cast<long>(keys.size())) << s;
    EXPECT_EQ(field(s, "sync_pruned"), 1) << s;
    EXPECT_EQ(field(s, "sync_complete"), 1) << s;
    expect_copied_to_standalone(keys);
    // VERIFY from the cluster: every master's keys compared with the standalone server.
    const auto v = run("VERIFY");
    EXPECT_EQ(field(v, "verify_keys_scanned"), static_cast<long>(keys.size())) << v;
    EXPECT_EQ(field(v, "verify_diverged"), 0) << v << divergences();
    EXPECT_EQ(field(v, "verify_extra_keys"), 0) << v;
}

TEST_F(proxy_cluster_sync, verify_against_a_cluster_reports_each_difference_on_its_master) {
    const auto masters = cluster_->masters();
    ASSERT_EQ(masters.size(), 3U);
    const auto gone = key_on(masters[0], "gone:");
    const auto changed = key_on(masters[1], "changed:");
    const auto extra = key_on(masters[2], "extra:");
    auto data = every_type(100);
    data.push_back({"SET", gone, "v"});
    data.push_back({"SET", changed, "v"});
    write_to_standalone(data);
    start_between(false);
    run("SYNC");
    ASSERT_TRUE(eventually([&] { return owner_of(changed).cli({"GET", changed}) == "v"; }));
    ASSERT_TRUE(eventually([&] { return owner_of(gone).cli({"GET", gone}) == "v"; }));
    // Behind the proxy's back, on three different masters.
    cluster_->node(masters[0]).cli({"DEL", gone});
    cluster_->node(masters[1]).cli({"SET", changed, "other"});
    cluster_->node(masters[2]).cli({"SET", extra, "1"});
    const auto v = run("VERIFY");
    // The missing key shows in its GET and its PTTL (-1 / -2).
    EXPECT_EQ(field(v, "verify_diverged"), 3) << v << divergences();
    EXPECT_EQ(field(v, "verify_extra_keys"), 1) << v;
    const auto d = divergences();
    EXPECT_NE(d.find("migration_gap command=get key=" + gone), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=get key=" + changed), std::string::npos) << d;
    EXPECT_NE(d.find("extra_data command=exists key=" + extra), std::string::npos) << d;
}

TEST_F(proxy_cluster_sync, prune_deletes_what_only_the_cluster_follower_has_on_every_master) {
    write_to_standalone(every_type(50));
    std::vector<std::vector<std::string>> extras;
    std::vector<std::string> extra_keys;
    for (auto m : cluster_->masters())
        for (int i = 0; i < 3; ++i) {
            extra_keys.push_back(key_on(m, "only-cluster:" + std::to_string(i) + ":"));
            extras.push_back({"SET", extra_keys.back(), "x"});
        }
    write_to_cluster(extras);
    start_between(false);
    const auto s = run("SYNC", {"PRUNE", "COUNT", "20"});
    EXPECT_EQ(field(s, "sync_pruned"), 9) << s;
    EXPECT_EQ(field(s, "sync_nodes_scanned"), 4) << s;  // the standalone server, 3 masters
    EXPECT_EQ(field(s, "sync_complete"), 1) << s;
    for (const auto& k : extra_keys)
        EXPECT_EQ(owner_of(k).cli({"EXISTS", k}), "0") << k;
    EXPECT_EQ(cluster_size(), std::stoul(standalone_.cli({"DBSIZE"})));
}

TEST_F(proxy_cluster_sync, a_scan_racing_a_slot_migration_still_copies_every_key) {
    // One slot full of keys ({mig}), and keys spread over every master; SCAN COUNT 1 makes the
    // pass long enough for the migration to begin while it runs.
    std::vector<std::vector<std::string>> data;
    for (int i = 0; i < 300; ++i)
        data.push_back({"SET", "{mig}:" + std::to_string(i), "m" + std::to_string(i)});
    for (int i = 0; i < 1500; ++i)
        data.push_back({"SET", "k:" + std::to_string(i), "v" + std::to_string(i)});
    write_to_cluster(data);
    const auto keys = keys_of(data);
    const auto slot = redis_cluster::key_slot("{mig}");
    const auto from = cluster_->master_of_slot(slot);
    const auto to = cluster_->another_master(from);
    start_between(true);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"PROXY", "SYNC", "START", "COUNT", "1"}), "+OK\r\n");
    ASSERT_TRUE(eventually([&] {
        return field(call({"PROXY", "SYNC", "STATUS"}), "sync_scan_calls") > 0;
    }));
    // Half the slot's keys move while the pass runs: the slot is in migration at the end of a
    // master's scan, so the pass is scanned again once the migration ended.
    cluster_->begin_migration(slot, to);
    cluster_->migrate_keys(slot, 150);
    const auto mid = call({"PROXY", "SYNC", "STATUS"});
    const bool raced = mid.find("sync_state:scanning") != std::string::npos;
    cluster_->finish_migration(slot);
    ASSERT_EQ(cluster_->master_of_slot(slot), to);
    std::string s;
    ASSERT_TRUE(eventually(
        [&] {
            s = call({"PROXY", "SYNC", "STATUS"});
            return s.find("sync_state:done") != std::string::npos;
        },
        std::chrono::seconds(60)))
        << s;
    ASSERT_TRUE(raced) << "the pass ended before the migration began: " << mid;
    EXPECT_GE(field(s, "sync_rescans"), 1) << s;
    expect_copied_to_standalone(keys);
    const auto metrics = http(proxy_->admin_port(), "GET", "/metrics");
    EXPECT_EQ(metrics.find("respite_proxy_sync_rescans_total 0"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("respite_proxy_sync_rescans_total"), std::string::npos) << metrics;
}

// The restart watch on a Redis Cluster follower, with a cluster of its own (replicas, failovers
// and restarts would disturb the other suites' cluster).
class proxy_cluster_restarts : public proxy_cluster {
  protected:
    static void SetUpTestSuite() { cluster_ = new redis_cluster(redis_cluster_options{}); }
    std::string field(std::string_view name) const {
        const auto text = proxy_->info();
        const auto key = "\n" + std::string(name) + ":";
        const auto at = text.find(key);
        if (at == std::string::npos)
            return {};
        const auto end = text.find("\r\n", at + 1);
        return text.substr(at + key.size(), end - at - key.size());
    }
    // The replica whose master is node `master`.
    std::size_t replica_of(std::size_t master) const {
        const auto port = std::to_string(cluster_->node(master).port());
        for (auto r : cluster_->replicas())
            if (cluster_->cli(r, {"INFO", "replication"}).find("master_port:" + port + "\r") !=
                std::string::npos)
                return r;
        throw std::runtime_error("no replica of node " + std::to_string(master));
    }
};

TEST_F(proxy_cluster_restarts, a_failover_or_a_restarted_master_of_the_follower_needs_a_sync) {
    auto cfg = into_cluster(mode::dual_write);
    cfg.restart_check_interval = std::chrono::milliseconds(100);
    start(cfg);
    // A first complete look: the run_ids of the three masters.
    ASSERT_TRUE(eventually([&] {
        const auto ids = field("secondary_run_id");
        return std::count(ids.begin(), ids.end(), ',') == 2;
    })) << proxy_->info();
    raw_conn c(proxy_->port());
    const std::string key = "{restart-watch}k";
    const auto slot = redis_cluster::key_slot(key);
    // A slot that moves between masters loses nothing: not a restart. The follower's next write
    // to it meets -MOVED, which refreshes the map the watch reads.
    const auto from = cluster_->master_of_slot(slot);
    const auto to = cluster_->another_master(from);
    cluster_->migrate_slot(slot, to);
    EXPECT_TRUE(eventually([&] {
        EXPECT_EQ(c.call({"SET", key, "moved"}), "+OK\r\n");
        return cluster_->node(to).cli({"GET", key}) == "moved";
    }));
    const auto ids_after_move = field("secondary_run_id");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // five checks of the new map
    EXPECT_EQ(field("secondary_restarts"), "0") << proxy_->info();
    EXPECT_EQ(field("secondary_needs_sync"), "0");
    EXPECT_EQ(field("secondary_run_id"), ids_after_move);

    // A failover: the replica of the slot's master takes over its slots.
    const auto promoted = replica_of(to);
    cluster_->failover(promoted);
    EXPECT_TRUE(eventually(
        [&] {
            c.call({"SET", key, "after-failover"});  // lets the follower meet the new map
            return field("secondary_restarts") == "1";
        },
        std::chrono::seconds(20)))
        << proxy_->info();
    EXPECT_EQ(field("secondary_needs_sync"), "1");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // one failover, one restart
    EXPECT_EQ(field("secondary_restarts"), "1") << proxy_->info();
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("PROXY SYNC"), std::string::npos) << r.error();

    // A master that restarts in place (same address, new run_id; without persistence its data
    // is gone).
    const auto other = cluster_->another_master(promoted);
    cluster_->kill_node(other);
    cluster_->restart_node(other);
    cluster_->wait_until_stable();
    EXPECT_TRUE(eventually(
        [&] {
            c.call({"SET", key, "after-restart"});
            return std::stoi("0" + field("secondary_restarts")) >= 2;
        },
        std::chrono::seconds(20)))
        << proxy_->info();

    // A PROXY SYNC that started after them clears the flag.
    EXPECT_EQ(c.call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    EXPECT_TRUE(
        eventually([&] { return field("secondary_needs_sync") == "0"; }, std::chrono::seconds(30)))
        << proxy_->info();
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

TEST_F(proxy_cluster_restarts, monitor_follows_a_failover_to_the_new_master) {
    // MONITOR on a cluster used to open one link per master once and never look
    // again: after a failover the new master had no link, and the demoted one went on streaming
    // what it replicated (each command twice once both are monitored).
    serve_from_cluster(false);
    raw_conn m(proxy_->port());
    ASSERT_EQ(m.call({"MONITOR"}), "+OK\r\n");
    const std::string key = "{monitor-failover}k";
    const auto old_master = cluster_->master_of_slot(redis_cluster::key_slot(key));
    auto monitored = [&](std::size_t node) {
        return cluster_->cli(node, {"CLIENT", "LIST"}).find("flags=O") != std::string::npos;
    };
    ASSERT_TRUE(monitored(old_master));
    const auto promoted = replica_of(old_master);
    ASSERT_FALSE(monitored(promoted));
    cluster_->failover(promoted);

    // The promoted node gets a MONITOR of its own and the demoted one loses it; a write to the
    // failed-over slot shows up in the stream.
    raw_conn c(proxy_->port());
    int n = 0;
    bool seen = false;
    EXPECT_TRUE(eventually(
        [&] {
            const auto value = "after-failover-" + std::to_string(n++);
            if (c.call({"SET", key, value}) != "+OK\r\n")
                return false;  // the proxy's map may still point at the old master
            for (auto line = m.frame(std::chrono::milliseconds(300)); line && !seen;
                 line = m.frame(std::chrono::milliseconds(300)))
                seen = line->find(value) != std::string::npos;
            return seen && monitored(promoted) && !monitored(old_master);
        },
        std::chrono::seconds(30)))
        << "seen=" << seen << " promoted=" << monitored(promoted)
        << " old=" << monitored(old_master);
    // RESET ends every link.
    m.command({"RESET"});
    EXPECT_TRUE(eventually([&] { return m.frame() == "+RESET\r\n"; }));
    EXPECT_TRUE(eventually([&] { return !monitored(promoted); }));
}

}  // namespace
}  // namespace respite::test
