// The cluster client against a real 3+3 Redis Cluster: data types across slots, hash tags,
// client-side CROSSSLOT, pipelines split per node, transactions, fan-out, and slot migration
// under concurrent load with a ledger of acknowledged writes.
#include <map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <respite/cluster/slot.hpp>
#include <respite/obs/metrics.hpp>

#include "cluster_common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

namespace {

class cluster_basic : public shared_cluster_suite<cluster_basic> {};

resp::value ok(client::result<resp::value> r) {
    if (!r)
        throw std::runtime_error("command failed: " + r.error().message());
    return std::move(*r);
}

}  // namespace

TEST_F(cluster_basic, every_data_type_across_slots) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    for (int i = 0; i < 50; ++i) {
        auto k = "key:" + std::to_string(i);
        EXPECT_EQ(ok(get(c.async_command(cmd("SET", k, i), asio::use_future))).str(), "OK");
        EXPECT_EQ(ok(get(c.async_command(cmd("GET", k), asio::use_future))).str(),
                  std::to_string(i));
    }
    EXPECT_EQ(
        ok(get(c.async_command(cmd("HSET", "h", "a", 1, "b", 2), asio::use_future))).integer(), 2);
    auto h = ok(get(c.async_command(cmd("HGETALL", "h"), asio::use_future)));
    EXPECT_EQ(h.size(), 2u);
    ok(get(c.async_command(cmd("RPUSH", "l", "x", "y", "z"), asio::use_future)));
    EXPECT_EQ(ok(get(c.async_command(cmd("LRANGE", "l", 0, -1), asio::use_future))).size(), 3u);
    ok(get(c.async_command(cmd("SADD", "s", "m1", "m2"), asio::use_future)));
    EXPECT_EQ(ok(get(c.async_command(cmd("SCARD", "s"), asio::use_future))).integer(), 2);
    ok(get(c.async_command(cmd("ZADD", "z", "1.5", "m"), asio::use_future)));
    EXPECT_DOUBLE_EQ(
        ok(get(c.async_command(cmd("ZSCORE", "z", "m"), asio::use_future))).double_value(), 1.5);
    auto id = ok(get(c.async_command(cmd("XADD", "st", "*", "f", "v"), asio::use_future)));
    EXPECT_FALSE(id.str().empty());
    EXPECT_EQ(ok(get(c.async_command(cmd("XLEN", "st"), asio::use_future))).integer(), 1);
    // Keys with one hash tag share a slot: multi-key commands work.
    ok(get(c.async_command(cmd("MSET", "{user1}.a", 1, "{user1}.b", 2), asio::use_future)));
    auto m = ok(get(c.async_command(cmd("MGET", "{user1}.a", "{user1}.b"), asio::use_future)));
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m[1].str(), "2");
    ok(get(c.async_command(cmd("EVAL", "return redis.call('GET', KEYS[1])", 1, "{user1}.a"),
                           asio::use_future)));
}

TEST_F(cluster_basic, crossslot_is_reported_before_any_round_trip) {
    obs::registry reg;
    auto cfg = cluster_config_for(*cluster_);
    cfg.connection.metrics = &reg;
    cluster::cluster_client c(cfg);
    ASSERT_TRUE(get(c.async_refresh(asio::use_future)));
    auto& sent = reg.get_counter("respite_client_commands_total", "", {});
    (void)sent;
    auto total = [&] {
        // Sum of commands sent over every node connection.
        std::uint64_t n = 0;
        auto text = reg.prometheus_text();
        std::size_t pos = 0;
        while ((pos = text.find("\nrespite_client_commands_total{", pos)) != std::string::npos) {
            auto sp = text.find(' ', text.find('}', pos));
            n += std::stoull(text.substr(sp + 1, text.find('\n', sp) - sp - 1));
            pos = sp;
        }
        return n;
    };
    auto before = total();
    auto r = get(c.async_command(cmd("MGET", "a", "b", "c"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), cluster::cluster_error::crossslot);
    client::request tx;
    tx.push("SET", "{x}1", 1).push("SET", "{y}1", 1);
    auto t = get(c.async_transaction(std::move(tx), asio::use_future));
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error(), cluster::cluster_error::crossslot);
    EXPECT_EQ(total(), before);
}

TEST_F(cluster_basic, pipelines_split_per_node_and_keep_order) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    client::request p;
    constexpr int n = 10000;
    for (int i = 0; i < n; ++i)
        p.push("SET", "p:" + std::to_string(i), i);
    for (int i = 0; i < n; ++i)
        p.push("GET", "p:" + std::to_string(i));
    auto rs = get(c.async_exec(std::move(p), asio::use_future));
    ASSERT_TRUE(rs) << rs.error().message();
    ASSERT_EQ(rs->size(), 2u * n);
    for (int i = 0; i < n; ++i) {
        ASSERT_EQ((*rs)[i].str(), "OK");
        ASSERT_EQ((*rs)[n + i].str(), std::to_string(i));
    }
    // A CROSSSLOT command inside a pipeline is that command's error, the rest still runs.
    client::request mixed;
    mixed.push("SET", "solo", 1).push("MGET", "a", "b", "c").push("GET", "solo");
    auto mr = get(c.async_exec(std::move(mixed), asio::use_future));
    ASSERT_TRUE(mr);
    EXPECT_TRUE((*mr)[1].is_error());
    EXPECT_EQ((*mr)[2].str(), "1");
}

TEST_F(cluster_basic, transactions_and_fan_out) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    client::request tx;
    tx.push("SET", "{acct}.a", 10).push("DECRBY", "{acct}.a", 3).push("GET", "{acct}.a");
    auto r = get(c.async_transaction(std::move(tx), asio::use_future));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ((*r)[2].str(), "7");

    auto dbsizes = get(c.async_on_all_masters(cmd("DBSIZE"), asio::use_future));
    ASSERT_TRUE(dbsizes);
    EXPECT_EQ(dbsizes->size(), 3u);
    long long total = 0;
    for (auto& v : *dbsizes)
        total += v.integer();
    long long expected = 0;
    for (auto m : cluster_->masters())
        expected += std::stoll(cluster_->cli(m, {"DBSIZE"}));
    EXPECT_EQ(total, expected);
    auto pings = get(c.async_on_all_masters(cmd("PING"), asio::use_future));
    ASSERT_TRUE(pings);
    for (auto& v : *pings)
        EXPECT_EQ(v.str(), "PONG");
}

namespace {

class cluster_migration : public cluster_basic {};

}  // namespace

TEST_F(cluster_migration, slots_move_back_and_forth_under_load_without_failures) {
    // Keys in a few chosen slots (hash tags) plus keys spread everywhere.
    std::vector<std::uint16_t> slots;
    std::vector<std::string> keys;
    for (int t = 0; slots.size() < 3; ++t) {
        auto tag = "{mig" + std::to_string(t) + "}";
        auto slot = cluster::hash_slot(tag.substr(1, tag.size() - 2));
        if (std::find(slots.begin(), slots.end(), slot) != slots.end())
            continue;
        slots.push_back(slot);
        for (int i = 0; i < 30; ++i)
            keys.push_back(tag + ":" + std::to_string(i));
    }
    for (int i = 0; i < 100; ++i)
        keys.push_back("spread:" + std::to_string(i));
    ledger_load l(*cluster_, keys);
    l.start(8);
    ASSERT_TRUE(eventually([&] { return l.ops > 2000; }));
    for (int round = 0; round < 2; ++round) {
        for (auto slot : slots) {
            auto from = cluster_->master_of_slot(slot);
            auto masters = cluster_->masters();
            auto to =
                masters[(std::find(masters.begin(), masters.end(), from) - masters.begin() + 1) %
                        masters.size()];
            // Move the keys a few at a time while the writers run: some keys of the slot are
            // on the target already (ASK), others not yet; then the slot changes hands (MOVED).
            cluster_->begin_migration(slot, to);
            for (;;) {
                auto at = l.ops.load();
                ASSERT_TRUE(eventually([&] { return l.ops > at + 100; }));
                if (cluster_->migrate_keys(slot, 5) == 0)
                    break;
            }
            cluster_->finish_migration(slot);
            auto at = l.ops.load();
            ASSERT_TRUE(eventually([&] { return l.ops > at + 200; }));
        }
    }
    l.finish();
    EXPECT_EQ(l.failures.load(), 0);
    // Every key ends equal to the ledger: nothing lost, nothing applied twice.
    cluster::cluster_client check(cluster_config_for(*cluster_));
    long total = 0;
    for (const auto& [key, n] : l.acked) {
        auto v = get(check.async_command(cmd("GET", key), asio::use_future));
        ASSERT_TRUE(v);
        long have = v->is_null() ? 0 : std::stol(v->str());
        EXPECT_EQ(have, n) << key;
        total += n;
    }
    EXPECT_GT(total, 2000);
    auto& reg = obs::registry::global();
    EXPECT_GT(reg.get_counter("respite_cluster_redirects_total", "", {{"kind", "ask"}}).value(),
              0u);
    EXPECT_GT(reg.get_counter("respite_cluster_redirects_total", "", {{"kind", "moved"}}).value(),
              0u);
}

TEST_F(cluster_basic, blocking_commands_do_not_hold_up_the_node_connection) {
    auto cfg = cluster_config_for(*cluster_);
    cluster::cluster_client c(cfg);
    auto pending = c.async_command(cmd("BLPOP", "{q}.jobs", 0), asio::use_future);
    // Everything else keeps flowing, including keys on the same node and slot.
    for (int i = 0; i < 20; ++i) {
        auto r = get(c.async_command(cmd("INCR", "{q}.counter"), asio::use_future), 2s);
        ASSERT_TRUE(r) << r.error().message();
    }
    EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
    ASSERT_TRUE(get(c.async_command(cmd("RPUSH", "{q}.jobs", "job-1"), asio::use_future)));
    auto got = get(std::move(pending));
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[1].str(), "job-1");
}

TEST_F(cluster_basic, reads_can_go_to_replicas) {
    auto cfg = cluster_config_for(*cluster_);
    cfg.reads = cluster::read_preference::prefer_replica;
    cluster::cluster_client c(cfg);
    auto gets_on_replicas = [&] {
        long n = 0;
        for (auto r : cluster_->replicas()) {
            auto stats = cluster_->cli(r, {"INFO", "commandstats"});
            auto pos = stats.find("cmdstat_get:calls=");
            if (pos != std::string::npos)
                n += std::stol(stats.substr(pos + 18));
        }
        return n;
    };
    auto before = gets_on_replicas();
    ASSERT_TRUE(get(c.async_command(cmd("SET", "replicated", "v"), asio::use_future)));
    // Writes still go to the master; wait until the replica has the key.
    ASSERT_TRUE(get(c.async_command(cmd("WAIT", 1, 1000), asio::use_future)));
    // Redis 7.0 reports a replica that has replicated nothing yet as "loading": refresh now that
    // the replicas are "online".
    ASSERT_TRUE(eventually([&] {
        get(c.async_refresh(asio::use_future));
        auto topo = c.topology();
        const auto* sh = topo.shard_of(cluster::hash_slot("replicated"));
        if (!sh)
            return false;
        for (const auto& r : sh->replicas) {
            if (r.healthy)
                return true;
        }
        return false;
    }));
    for (int i = 0; i < 20; ++i) {
        auto r = get(c.async_command(cmd("GET", "replicated"), asio::use_future));
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_EQ(r->str(), "v");
    }
    EXPECT_GE(gets_on_replicas(), before + 20) << [&] {
        std::string t;
        auto topo = c.topology();
        for (const auto& sh : topo.shards()) {
            t += sh.master.address.to_string() + " replicas:";
            for (const auto& r : sh.replicas) {
                t += " " + r.address.to_string() + (r.healthy ? "(ok)" : "(down)");
            }
            t += "\n";
        }
        return t;
    }();
}

TEST_F(cluster_migration, multi_key_command_during_migration_retries_tryagain) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    std::vector<std::string> keys;
    for (int i = 0; i < 10; ++i)
        keys.push_back("{tryagain}:" + std::to_string(i));
    for (const auto& k : keys) {
        ASSERT_TRUE(get(c.async_command(cmd("SET", k, k), asio::use_future)));
    }
    auto slot = cluster::hash_slot("tryagain");
    auto to = cluster_->another_master(cluster_->master_of_slot(slot));
    // Half of the keys move: a multi-key command now spans both nodes and gets TRYAGAIN.
    cluster_->begin_migration(slot, to);
    cluster_->migrate_keys(slot, 5);
    auto& retries = obs::registry::global().get_counter("respite_cluster_retries_total", "");
    auto retries_before = retries.value();
    std::vector<std::string> args{"MGET"};
    args.insert(args.end(), keys.begin(), keys.end());
    client::request r;
    r.push_args(args);
    auto pending = c.async_command(std::move(r), asio::use_future);
    ASSERT_TRUE(eventually([&] { return retries.value() > retries_before; }, 5s));
    EXPECT_EQ(pending.wait_for(100ms), std::future_status::timeout);
    // Once the migration completes the retry succeeds with every value.
    while (cluster_->migrate_keys(slot, 100) > 0) {
    }
    cluster_->finish_migration(slot);
    auto v = get(std::move(pending));
    ASSERT_TRUE(v) << v.error().message();
    ASSERT_FALSE(v->is_error()) << v->str();
    ASSERT_EQ(v->size(), keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i)
        EXPECT_EQ((*v)[i].str(), keys[i]);
}

// retry_tryagain = false (the proxy's setting): TRYAGAIN is the command's reply at once, and a
// transaction on the migrating slot fails as EXECABORT (server_error), so a later write of the
// same key cannot run before a retried one. Retried, MSET a b then SET b left b = the MSET's.
TEST_F(cluster_migration, without_tryagain_retries_commands_keep_their_order) {
    auto cfg = cluster_config_for(*cluster_);
    cfg.retry_tryagain = false;
    cluster::cluster_client c(cfg);
    ASSERT_TRUE(get(c.async_command(cmd("SET", "{ordered}:a", "0"), asio::use_future)));
    ASSERT_TRUE(get(c.async_command(cmd("SET", "{ordered}:b", "0"), asio::use_future)));
    const auto slot = cluster::hash_slot("ordered");
    cluster_->begin_migration(slot, cluster_->another_master(cluster_->master_of_slot(slot)));
    cluster_->migrate_keys(slot, 1);  // one of the two keys moves
    auto mset = get(c.async_command(cmd("MSET", "{ordered}:a", "mset", "{ordered}:b", "mset"),
                                    asio::use_future));
    ASSERT_TRUE(mset) << mset.error().message();
    ASSERT_TRUE(mset->is_error());
    EXPECT_EQ(mset->str().substr(0, 8), "TRYAGAIN") << mset->str();
    client::request tx;
    tx.push("SET", "{ordered}:a", "tx").push("SET", "{ordered}:b", "tx");
    auto t = get(c.async_transaction(std::move(tx), asio::use_future));
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error(), client::error::server_error);
    ASSERT_TRUE(get(c.async_command(cmd("SET", "{ordered}:b", "final"), asio::use_future)));
    while (cluster_->migrate_keys(slot, 100) > 0) {
    }
    cluster_->finish_migration(slot);
    auto b = get(c.async_command(cmd("GET", "{ordered}:b"), asio::use_future));
    ASSERT_TRUE(b);
    EXPECT_EQ(b->str(), "final");
}

TEST_F(cluster_basic, connection_state_commands_never_touch_shared_connections) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    // CLIENT runs on a dedicated connection: the shared ones keep their replies in order.
    auto name = get(c.async_command(cmd("CLIENT", "SETNAME", "x"), asio::use_future));
    ASSERT_TRUE(name) << name.error().message();
    for (int i = 0; i < 10; ++i) {
        auto e = get(c.async_command(cmd("ECHO", i), asio::use_future));
        ASSERT_TRUE(e);
        EXPECT_EQ(e->str(), std::to_string(i));
    }
    // MULTI/WATCH in a pipeline would change a shared connection: refused.
    client::request p;
    p.push("MULTI").push("SET", "k", 1);
    auto r = get(c.async_exec(std::move(p), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::invalid_argument);
}

TEST_F(cluster_basic, watch_session_on_a_slot) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    ASSERT_TRUE(get(c.async_command(cmd("SET", "{acct:7}.balance", 100), asio::use_future)));
    auto s = get(c.async_session("{acct:7}", asio::use_future));
    ASSERT_TRUE(s) << s.error().message();
    ASSERT_TRUE(get(s->async_command(cmd("WATCH", "{acct:7}.balance"), asio::use_future)));
    auto balance = get(s->async_command(cmd("GET", "{acct:7}.balance"), asio::use_future));
    ASSERT_TRUE(balance);
    EXPECT_EQ(balance->str(), "100");
    // Another writer changes the watched key: EXEC returns null.
    ASSERT_TRUE(get(c.async_command(cmd("INCR", "{acct:7}.balance"), asio::use_future)));
    client::request tx;
    tx.push("MULTI").push("DECRBY", "{acct:7}.balance", 10).push("EXEC");
    auto r = get(s->async_exec(std::move(tx), asio::use_future));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE((*r)[2].is_null());
    // Without interference the same flow commits.
    ASSERT_TRUE(get(s->async_command(cmd("WATCH", "{acct:7}.balance"), asio::use_future)));
    client::request tx2;
    tx2.push("MULTI").push("DECRBY", "{acct:7}.balance", 10).push("EXEC");
    auto r2 = get(s->async_exec(std::move(tx2), asio::use_future));
    ASSERT_TRUE(r2);
    ASSERT_EQ((*r2)[2].type(), resp::type::array);
    EXPECT_EQ((*r2)[2][0].integer(), 91);
}

TEST_F(cluster_basic, a_session_may_outlive_its_cluster_client) {
    std::optional<client::session> kept;
    {
        cluster::cluster_client c(cluster_config_for(*cluster_));
        auto s = get(c.async_session("{outlive}", asio::use_future));
        ASSERT_TRUE(s) << s.error().message();
        kept.emplace(std::move(*s));
    }
    kept.reset();  // must not touch the destroyed client's io_context
    SUCCEED();
}
