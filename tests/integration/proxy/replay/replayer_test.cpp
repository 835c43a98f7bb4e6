// The replayer against two real redis-servers: writes go to the primary first (as the proxy does),
// then to the replayer; the secondary must end equal (DEBUG DIGEST) through replay and repair.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <sched.h>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>
#include <respite/proxy/backend.hpp>
#include <respite/proxy/replayer.hpp>

#include "support/fault_proxy.hpp"
#include "support/memory_pressure.hpp"
#include "support/redis_server.hpp"

using namespace respite;
using namespace respite::proxy;
using namespace std::chrono_literals;
using respite::test::incompressible;
using respite::test::leave_no_room;
using respite::test::redis_server;

namespace {

client::client_config config_for(const redis_server& s) {
    client::client_config cfg;
    cfg.connection.host = s.host();
    cfg.connection.port = s.port();
    cfg.connection.command_timeout = 1s;
    cfg.connection.connect_timeout = 500ms;
    cfg.connection.reconnect.initial = 10ms;
    cfg.connection.reconnect.max = 100ms;
    return cfg;
}

// Polls `cond` until it holds or the deadline passes.
template <class F>
bool eventually(F&& cond, std::chrono::milliseconds limit = 30s,
                std::chrono::milliseconds poll = 5ms) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond())
            return true;
        std::this_thread::sleep_for(poll);
    }
    return cond();
}

client::result<replies> run(backend& b, client::request r) {
    auto p = std::make_shared<std::promise<client::result<replies>>>();
    auto f = p->get_future();
    b.exec(std::move(r), [p](client::result<replies> res) { p->set_value(std::move(res)); });
    if (f.wait_for(20s) != std::future_status::ready)
        throw std::runtime_error("primary did not answer within its deadline");
    return f.get();
}

struct pair_of_servers : ::testing::Test {
    redis_server primary_server;
    redis_server secondary_server;
    obs::registry registry;
    std::shared_ptr<backend> primary =
        make_standalone_backend("primary", config_for(primary_server));
    std::unique_ptr<replayer> rep;
    std::chrono::milliseconds secondary_timeout = 1s;
    bool park_while_disconnected = false;

    replayer_config fast_config() {
        replayer_config cfg;
        cfg.lanes = 4;
        cfg.probe_interval = 50ms;
        cfg.item_timeout = 3s;
        cfg.repair_rate = 0;
        return cfg;
    }

    std::string secondary_user;  // the follower's ACL user on the secondary (password "pw")

    // Lane 0 reaches the secondary through this port instead (a fault proxy), when set.
    std::uint16_t lane0_port = 0;
    std::unique_ptr<test::fault_proxy> lane0_fault;

    // Starts with lane 0 behind a fault proxy (stall() hangs the lane); by default with no
    // timeouts that would declare it down during a test (command_timeout 0: none).
    test::fault_proxy& start_with_lane0_behind_a_fault(
        replayer_config cfg, std::chrono::milliseconds item_timeout = 60s,
        std::chrono::milliseconds command_timeout = 60s) {
        lane0_fault =
            std::make_unique<test::fault_proxy>(secondary_server.host(), secondary_server.port());
        lane0_port = lane0_fault->port();
        secondary_timeout = command_timeout;
        cfg.item_timeout = item_timeout;
        start(cfg);
        return *lane0_fault;
    }

    void start(replayer_config cfg) {
        auto secondary_cfg = config_for(secondary_server);
        if (!secondary_user.empty()) {
            secondary_cfg.connection.username = secondary_user;
            secondary_cfg.connection.password = "pw";
        }
        secondary_cfg.connections = 1;
        secondary_cfg.connection.command_timeout = secondary_timeout;
        // A write parked during an outage would land after a restart that lost the secondary's
        // data: fail it instead, so its keys turn dirty and get copied.
        secondary_cfg.connection.queue_while_disconnected = park_while_disconnected;
        secondary_cfg.connection.kill_abandoned = true;  // as the proxy's lanes (follow.cpp)
        rep = std::make_unique<replayer>(
            cfg, primary,
            [secondary_cfg, lane0 = lane0_port](asio::io_context& ioc, std::size_t lane) {
                auto c = secondary_cfg;
                if (lane == 0 && lane0 != 0)
                    c.connection.port = lane0;
                return make_standalone_backend(ioc, "secondary", c);
            },
            &registry);
    }

    void TearDown() override { rep.reset(); }

    // A write of keys on lanes 0 and 1 goes out on lane 0's connection, which hangs until the
    // lane fails (item_timeout) or its client gives up (command_timeout). The primary then has
    // newer values; the late write must not land after their copies (lane 1 stays up, so a
    // copy of its key could go at once).
    void expect_no_copy_before_a_late_two_lane_write(std::chrono::milliseconds item_timeout,
                                                     std::chrono::milliseconds command_timeout) {
        auto cfg = fast_config();
        cfg.lanes = 2;
        auto& lane0 = start_with_lane0_behind_a_fault(cfg, item_timeout, command_timeout);
        const auto k0 = key_in_lane(0, "a");
        const auto k1 = key_in_lane(1, "b");
        write({"MSET", k0, "before", k1, "before"}, {k0, k1});
        ASSERT_TRUE(eventually([&] { return caught_up(); }));
        lane0.stall(true);
        write({"MSET", k0, "late", k1, "late"}, {k0, k1});
        ASSERT_TRUE(eventually([&] { return !rep->snapshot().secondary_up; }, 10s));
        primary_server.cli({"SET", k1, "newest"});
        primary_server.cli({"SET", k0, "newest"});
        EXPECT_FALSE(eventually(
            [&] {
                return secondary_server.cli({"GET", k1}) == "newest";
            },
            1500ms))
            << "k1 was copied while the late write could still land";
        lane0.stall(false);
        expect_equal();
        EXPECT_EQ(secondary_server.cli({"GET", k1}), "newest");
        EXPECT_EQ(secondary_server.cli({"GET", k0}), "newest");
    }

    // As the proxy does: begin, write on the primary, then submit (or abandon on failure).
    void write(std::vector<std::string> args, std::vector<std::string> keys,
               write_origin origin = 1, bool atomic = false) {
        std::vector<std::string_view> views(keys.begin(), keys.end());
        rep->begin_write(views, origin);
        client::request r;
        r.push_args(args);
        auto res = atomic ? run_tx(r) : run(*primary, r);
        ASSERT_TRUE(res.has_value()) << res.error().message();
        replay_item item;
        item.keys = keys;
        item.commands = std::move(r);
        item.atomic = atomic;
        rep->submit(std::move(item), views);
    }

    client::result<replies> run_tx(client::request r) {
        auto p = std::make_shared<std::promise<client::result<replies>>>();
        auto f = p->get_future();
        primary->transaction(std::move(r),
                             [p](client::result<replies> res) { p->set_value(std::move(res)); });
        return f.get();
    }

    bool caught_up() {
        auto s = rep->snapshot();
        return s.queued_items == 0 && s.dirty_keys == 0;
    }

    void expect_equal() {
        ASSERT_TRUE(eventually([&] { return caught_up(); }))
            << "queued=" << rep->snapshot().queued_items << " dirty=" << rep->snapshot().dirty_keys;
        const auto a = primary_server.cli({"DEBUG", "DIGEST"});
        const auto b = secondary_server.cli({"DEBUG", "DIGEST"});
        EXPECT_NE(a, std::string(40, '0')) << "the primary is empty: the test wrote nothing";
        EXPECT_EQ(a, b);
    }

    // How often the secondary ran `cmd` (lower case), from INFO commandstats; 0 when never.
    int secondary_calls(const std::string& cmd) const {
        const auto stats = secondary_server.cli({"INFO", "commandstats"});
        const auto at = stats.find("cmdstat_" + cmd + ":calls=");
        return at == std::string::npos ? 0 : std::stoi(stats.substr(at + cmd.size() + 15));
    }

    // As the proxy does for a write of one key, without waiting for the primary's reply: begin,
    // send to the primary, then submit (or abandon) when it answers. `async_replied` counts the
    // replies.
    std::atomic<int> async_replied{0};
    void write_async(std::vector<std::string> args, merge_hint hint) {
        const std::string key = args.at(1);
        std::string_view kv[] = {key};
        rep->begin_write(kv, 7);
        client::request r;
        r.push_args(args);
        std::string bytes(r.payload());
        primary->exec(std::move(r),
                      [this, key, hint, bytes = std::move(bytes)](client::result<replies> res) {
                          std::string_view k[] = {key};
                          if (res && !(*res)[0].is_error())
                              rep->submit_command(bytes, k, false, hint,
                                                  (*res)[0].type() == resp::type::integer
                                                      ? std::optional((*res)[0].integer())
                                                      : std::nullopt);
                          else
                              rep->abandon(k, true);
                          ++async_replied;
                      });
    }

    // As the proxy's fast path does for a write replayed as written: its request bytes, and
    // the primary's reply when it is an integer (the answer expected from the secondary).
    void write_checked(std::vector<std::string> args, merge_hint hint = {}) {
        const std::string key = args.at(1);
        std::string_view k[] = {key};
        rep->begin_write(k, 1);
        client::request r;
        r.push_args(args);
        std::string bytes(r.payload());
        auto res = run(*primary, r);
        ASSERT_TRUE(res.has_value()) << res.error().message();
        const auto& v = (*res)[0];
        ASSERT_FALSE(v.is_error()) << v.str();
        std::optional<std::int64_t> expect;
        if (v.type() == resp::type::integer)
            expect = v.integer();
        rep->submit_command(bytes, k, false, hint, expect);
    }

    // A key of the given lane (names by index until one hashes there).
    std::string key_in_lane(std::size_t lane, const std::string& prefix) {
        for (int i = 0;; ++i) {
            auto k = prefix + std::to_string(i);
            if (rep->lane_of(k) == lane)
                return k;
        }
    }
};

}  // namespace

// One origin pipelining writes (no waiting for each reply): the secondary applies them in the
// primary's order, with no repair needed.
TEST_F(pair_of_servers, one_origin_pipelined_writes_replay_in_order) {
    start(fast_config());
    constexpr int n = 3000;
    std::atomic<int> replied{0};
    for (int i = 0; i < n; ++i) {
        auto key = "list:" + std::to_string(i % 7);
        std::string_view kv[] = {key};
        rep->begin_write(kv, 42);
        auto args = std::vector<std::string>{"RPUSH", key, std::to_string(i)};
        if (i % 5 == 0)
            args = {"DEL", key};
        client::request r;
        r.push_args(args);
        replay_item item;
        item.keys = {key};
        item.commands = r;
        // Callbacks of one connection run in reply order: submits follow the primary's order.
        primary->exec(std::move(r), [this, &replied,
                                     item = std::move(item)](client::result<replies> res) mutable {
            std::string_view k[] = {item.keys.front()};
            if (res)
                rep->submit(std::move(item), k);
            else
                rep->abandon(k, true);
            ++replied;
        });
    }
    ASSERT_TRUE(eventually([&] { return replied == n; }));
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_EQ(s.applied, static_cast<std::uint64_t>(n));
    EXPECT_EQ(s.repaired, 0u);
    EXPECT_EQ(s.dropped_to_dirty, 0u);
    EXPECT_EQ(s.failed, 0u);
}

// Several threads (origins) writing the same keys: writes of different origins racing on a key
// make it dirty (their order on the primary is unknown); the repair settles it.
TEST_F(pair_of_servers, many_threads_same_keys_end_equal) {
    start(fast_config());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([this, t] {
            for (int i = 0; i < 400; ++i) {
                const auto k = std::to_string(i % 13);
                switch (i % 4) {
                    case 0:
                        write({"SET", "s:" + k, std::to_string(t * 1000 + i)}, {"s:" + k}, t);
                        break;
                    case 1:
                        write({"RPUSH", "l:" + k, std::to_string(t)}, {"l:" + k}, t);
                        break;
                    case 2:
                        write({"HINCRBY", "h:" + k, std::to_string(t), "1"}, {"h:" + k}, t);
                        break;
                    default:
                        write({"INCR", "n:" + k}, {"n:" + k}, t);
                        break;
                }
            }
        });
    for (auto& th : threads)
        th.join();
    expect_equal();
    EXPECT_GT(rep->snapshot().applied, 0u);
}

// Multi-lane items (MSET across lanes, RENAME, a transaction) interleaved with single-key writes.
// A PUBLISH whose channel is named like a dirty key is still sent: its key is the channel (for
// the order of messages), and a copy of that key brings no message back. It was skipped as
// superseded.
TEST_F(pair_of_servers, a_publish_is_never_superseded_by_a_dirty_key_of_its_name) {
    start(fast_config());
    ASSERT_TRUE(rep->pause_repairs(true, 5s));  // the key stays dirty
    std::string_view k[] = {"news"};
    rep->mark_dirty(k);
    ASSERT_EQ(rep->snapshot().dirty_keys, 1U);
    write({"PUBLISH", "news", "m"}, {"news"});
    EXPECT_TRUE(eventually([&] {
        return secondary_server.cli({"INFO", "commandstats"}).find("cmdstat_publish:calls=1") !=
               std::string::npos;
    })) << secondary_server.cli({"INFO", "commandstats"});
    EXPECT_EQ(rep->snapshot().superseded, 0U);
    rep->pause_repairs(false);
}

TEST_F(pair_of_servers, multi_key_items_are_barriers) {
    start(fast_config());
    const auto a = key_in_lane(0, "a");
    const auto b = key_in_lane(1, "b");
    const auto c = key_in_lane(2, "c");
    for (int i = 0; i < 300; ++i) {
        const auto v = std::to_string(i);
        write({"APPEND", a, v}, {a});
        write({"APPEND", b, v}, {b});
        write({"MSET", a, "m" + v, b, "n" + v}, {a, b});
        write({"APPEND", b, "x"}, {b});
        write({"RENAME", b, c}, {b, c});
        write({"SET", b, v}, {b});
        client::request tx;
        write({"INCR", "counter"}, {"counter"});
        std::vector<std::string> keys = {a, c};
        std::vector<std::string_view> views(keys.begin(), keys.end());
        rep->begin_write(views, 1);
        tx.push("APPEND", a, "t");
        tx.push("APPEND", c, "t");
        auto res = run_tx(tx);
        ASSERT_TRUE(res.has_value());
        replay_item item;
        item.keys = keys;
        item.commands = std::move(tx);
        item.atomic = true;
        rep->submit(std::move(item), views);
    }
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_EQ(s.repaired, 0u);
    EXPECT_EQ(s.failed, 0u);
    EXPECT_EQ(s.dropped_to_dirty, 0u);
}

// Two origins race on a key and one of the writes also writes another key from it (RENAME):
// their order on the primary is unknown, so the secondary may apply them the other way round.
// Not only the contended key but every key the racing writes wrote must be copied. Here the
// primary runs RENAME then INCR, the secondary gets INCR then RENAME; `b` would keep 2.
TEST_F(pair_of_servers, race_spreads_to_every_key_a_racing_write_wrote) {
    start(fast_config());
    const auto a = key_in_lane(0, "ra");
    const auto b = key_in_lane(1, "rb");
    write({"SET", a, "1"}, {a});
    for (bool rename_first : {true, false}) {
        std::vector<std::string> rk = {a, b};
        std::vector<std::string> ik = {a};
        std::vector<std::string_view> rv(rk.begin(), rk.end()), iv(ik.begin(), ik.end());
        // Either write may begin first; the other one sees the race.
        if (rename_first) {
            rep->begin_write(rv, 1);
            rep->begin_write(iv, 2);
        } else {
            rep->begin_write(iv, 2);
            rep->begin_write(rv, 1);
        }
        // The primary: RENAME, then INCR (b = 1, a = 1)...
        ASSERT_TRUE(run(*primary, client::cmd("RENAME", a, b)).has_value());
        ASSERT_TRUE(run(*primary, client::cmd("INCR", a)).has_value());
        // ... replies in the other order: the secondary gets INCR, then RENAME (b = 2).
        replay_item incr;
        incr.keys = ik;
        incr.commands = client::cmd("INCR", a);
        rep->submit(std::move(incr), iv);
        replay_item rename;
        rename.keys = rk;
        rename.commands = client::cmd("RENAME", a, b);
        rep->submit(std::move(rename), rv);
        expect_equal();
        EXPECT_EQ(secondary_server.cli({"GET", b}), "1");
        write({"DEL", b}, {b});
    }
}

// A key whose secondary copy is known to be wrong (dirty, not repaired yet) feeds a multi-key
// write (RENAME inside a transaction): the keys it writes inherit the doubt and are copied too.
TEST_F(pair_of_servers, dirty_key_read_by_a_transaction_spreads_to_its_keys) {
    start(fast_config());
    const auto a = key_in_lane(2, "ta");
    const auto b = key_in_lane(3, "tb");
    write({"SET", a, "1"}, {a});
    std::vector<std::string> tk = {a, b};
    std::vector<std::string> ik = {a};
    std::vector<std::string_view> tv(tk.begin(), tk.end()), iv(ik.begin(), ik.end());
    rep->begin_write(iv, 2);
    rep->begin_write(tv, 1);  // races with the INCR: `a` turns dirty
    ASSERT_TRUE(run(*primary, client::cmd("INCR", a)).has_value());
    client::request tx;
    tx.push("INCR", a);
    tx.push("RENAME", a, b);
    ASSERT_TRUE(run_tx(tx).has_value());  // primary: a gone, b = 3
    // Replies the other way round: the secondary runs the transaction first (b = 2, then a = 1).
    replay_item t;
    t.keys = tk;
    t.commands = std::move(tx);
    t.atomic = true;
    rep->submit(std::move(t), tv);
    replay_item incr;
    incr.keys = ik;
    incr.commands = client::cmd("INCR", a);
    rep->submit(std::move(incr), iv);
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", b}), "3");
    EXPECT_EQ(secondary_server.cli({"EXISTS", a}), "0");
}

TEST_F(pair_of_servers, global_item_is_ordered_against_every_lane) {
    start(fast_config());
    for (int i = 0; i < 50; ++i)
        write({"SET", "g" + std::to_string(i), "v"}, {"g" + std::to_string(i)});
    rep->begin_write({}, 1, true);
    ASSERT_TRUE(run(*primary, client::cmd("FLUSHALL")).has_value());
    replay_item flush;
    flush.commands = client::cmd("FLUSHALL");
    flush.global = true;
    rep->submit(std::move(flush), {});
    for (int i = 0; i < 10; ++i)
        write({"SET", "after" + std::to_string(i), "v"}, {"after" + std::to_string(i)});
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"DBSIZE"}), "10");
    EXPECT_FALSE(rep->snapshot().full_resync_needed);
}

// The secondary stops mid-stream and comes back empty (nothing saved): every key written while
// it was away is repaired from the primary.
TEST_F(pair_of_servers, secondary_down_then_repaired) {
    start(fast_config());
    constexpr int keys = 40;
    std::atomic<bool> stop{false};
    std::atomic<int> rounds{0};
    std::thread writer([&] {
        for (int i = 0; !stop; ++i) {
            const auto k = "k" + std::to_string(i % keys);
            write({"RPUSH", k, std::to_string(i)}, {k}, 7);
            if (i % keys == keys - 1)
                ++rounds;
        }
    });
    ASSERT_TRUE(eventually([&] { return rounds >= 3; }));
    secondary_server.stop();
    ASSERT_TRUE(eventually([&] { return !rep->snapshot().secondary_up; }));
    // Every key is written at least twice while the secondary is away.
    const int seen = rounds;
    ASSERT_TRUE(eventually([&] { return rounds >= seen + 2; }));
    EXPECT_GT(rep->snapshot().dirty_keys, 0u);
    secondary_server.start();
    ASSERT_TRUE(eventually([&] { return rep->snapshot().secondary_up; }));
    const int back = rounds;
    ASSERT_TRUE(eventually([&] { return rounds >= back + 2; }));
    stop = true;
    writer.join();
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_GT(s.repaired, 0u);
    EXPECT_GT(s.dropped_to_dirty, 0u);
    EXPECT_FALSE(s.full_resync_needed);
    const auto text = registry.prometheus_text();
    for (auto name : {"respite_proxy_follower_queue_items", "respite_proxy_follower_queue_bytes",
                      "respite_proxy_follower_lag_seconds", "respite_proxy_follower_applied_total",
                      "respite_proxy_follower_failed_total", "respite_proxy_follower_dirty_keys",
                      "respite_proxy_follower_repaired_total",
                      "respite_proxy_follower_dropped_to_dirty_total", "respite_proxy_follower_up"})
        EXPECT_NE(text.find(name), std::string::npos) << name;
}

TEST_F(pair_of_servers, tiny_queue_budget_turns_writes_dirty_then_repairs) {
    auto cfg = fast_config();
    cfg.max_queued_bytes = 600;
    cfg.repair_rate = 2000;
    start(cfg);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([this, t] {
            for (int i = 0; i < 300; ++i) {
                const auto k = "b" + std::to_string(t) + ":" + std::to_string(i % 17);
                write({"RPUSH", k, std::to_string(i)}, {k}, t);
            }
        });
    for (auto& th : threads)
        th.join();
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_GT(s.dropped_to_dirty, 0u);
    EXPECT_GT(s.repaired, 0u);
}

// Copies of big values are read a few at a time: a batch was up to 256 DUMPs whatever their
// size, all queued at once far over the budget (200 values of 1 MB took a proxy from 13 to
// 684 MB).
TEST_F(pair_of_servers, repairs_of_big_values_stay_within_the_queue_budget) {
    auto cfg = fast_config();
    cfg.max_queued_bytes = 4 * 1024 * 1024;
    start(cfg);
    std::vector<std::string> keys;
    for (int i = 0; i < 24; ++i) {
        keys.push_back("big:" + std::to_string(i));
        client::request r;
        r.push("SET", keys.back(), incompressible(1 << 20));
        ASSERT_TRUE(run(*primary, std::move(r)).has_value());
    }
    std::vector<std::string_view> views(keys.begin(), keys.end());
    rep->mark_dirty(views);
    std::uint64_t most = 0;
    ASSERT_TRUE(eventually(
        [&] {
            const auto x = rep->snapshot();
            most = std::max(most, x.queued_bytes);
            return x.dirty_keys == 0 && x.queued_items == 0 && x.repaired == keys.size();
        },
        std::chrono::milliseconds(60000), std::chrono::milliseconds(1)))
        << rep->snapshot().dirty_keys << " dirty";
    EXPECT_LE(most, cfg.max_queued_bytes + (3U << 20)) << "copies queued far over the budget";
    expect_equal();
}

// A lane that hangs holds the window's front: the other lanes' applied items wait behind it.
// Their slots count against the budget until they leave, so the writes beyond it turn dirty (and
// are copied once the lane is back) instead of the window growing for as long as the lane hangs.
TEST_F(pair_of_servers, a_hung_lane_keeps_the_window_within_the_budget) {
    auto cfg = fast_config();
    cfg.lanes = 2;
    cfg.max_queued_bytes = 64 * 1024;  // about 340 slots
    auto& lane0 = start_with_lane0_behind_a_fault(cfg);
    const auto stuck = key_in_lane(0, "stuck");
    write({"SET", stuck, "before"}, {stuck});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    lane0.stall(true);
    write({"SET", stuck, "during"}, {stuck});
    std::vector<std::string> keys;
    for (int i = 0; i < 64; ++i)
        keys.push_back(key_in_lane(1, "free" + std::to_string(i) + ":"));
    std::uint64_t most = 0;
    for (int i = 0; i < 4000; ++i) {  // 4000 slots: 750 KB without the budget
        const auto& k = keys[static_cast<std::size_t>(i) % keys.size()];
        write({"SET", k, std::to_string(i)}, {k});
        most = std::max(most, rep->snapshot().queued_bytes);
        // Paced: lane 1 applies each hundred writes before the next (only the stuck one stays
        // queued), so only the slots held behind lane 0 can fill the budget.
        if (i % 100 == 99) {
            ASSERT_TRUE(eventually([&] { return rep->snapshot().queued_items <= 1; }));
        }
    }
    auto s = rep->snapshot();
    EXPECT_GT(s.dropped_to_dirty, 0u) << "the applied slots behind the hung lane were not counted";
    // A repair round admitted just under the budget may add its copies (64 keys here).
    EXPECT_LE(most, cfg.max_queued_bytes + 32 * 1024) << "the queue outgrew its budget";
    lane0.stall(false);
    expect_equal();
    s = rep->snapshot();
    EXPECT_GT(s.repaired, 0u);
    EXPECT_FALSE(s.full_resync_needed);
    EXPECT_EQ(s.queued_bytes, 0u) << "a slot's share was not given back";
}

// A lane whose connection never answers (no command timeout: --backend-timeout 0) is declared
// down after item_timeout, and its writes in flight turn dirty then, instead of holding the
// window's front until the connection answers. The connection stays: what it still delivers
// lands before the copy of those keys, which waits for the probe's PING behind it.
TEST_F(pair_of_servers, a_lane_that_never_answers_releases_its_writes_in_flight) {
    auto cfg = fast_config();
    cfg.lanes = 2;
    auto& lane0 = start_with_lane0_behind_a_fault(cfg, 1s, 0ms);
    const auto stuck = key_in_lane(0, "stuck");
    write({"SET", stuck, "before"}, {stuck});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    lane0.stall(true);
    write({"SET", stuck, "late"}, {stuck});
    // Declared down after 1 s; the write in flight is counted lost while the lane still hangs.
    ASSERT_TRUE(eventually([&] { return rep->snapshot().dropped_to_dirty >= 1; }, 10s))
        << "the write in flight on the hung lane was never released";
    EXPECT_TRUE(eventually([&] { return rep->snapshot().queued_items == 0; }, 5s))
        << "queued_items=" << rep->snapshot().queued_items;
    EXPECT_FALSE(rep->snapshot().secondary_up);
    // The other lane still applies while lane 0 hangs.
    const auto free_key = key_in_lane(1, "free");
    write({"SET", free_key, "applied"}, {free_key});
    EXPECT_TRUE(eventually([&] { return secondary_server.cli({"GET", free_key}) == "applied"; }));
    // Newer on the primary while the lane is down: the copy must win over the late write.
    primary_server.cli({"SET", stuck, "newest"});
    lane0.stall(false);
    EXPECT_TRUE(eventually([&] { return secondary_server.cli({"GET", stuck}) == "newest"; }));
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", stuck}), "newest")
        << "the late write landed after the copy";
}

// A write of two lanes goes out on its first lane's connection. When that lane fails, the write
// is counted lost, but it may still land: no copy of either key is read before its call ends,
// or the late write would overwrite the copy unnoticed (here on the other lane's key).
TEST_F(pair_of_servers, a_late_write_of_a_failed_lane_never_lands_after_a_copy) {
    // Declared down after 1 s; the connection has no timeout: the call never completes while
    // the lane hangs.
    expect_no_copy_before_a_late_two_lane_write(1s, 0ms);
}

// A call the lane's client gave up on (a command timeout) may still run on the server until the
// lane's next connection has ended the old one (kill_abandoned). A key of another lane in that
// write is copied only after the lane's probe is answered on the new connection, not at once on
// its own lane, where the copy could land before the late write.
TEST_F(pair_of_servers, a_timed_out_write_is_fenced_before_its_keys_are_copied) {
    expect_no_copy_before_a_late_two_lane_write(60s, 300ms);
}

// Past max_stale_calls calls of failed lanes that never completed, the follower stops holding
// their keys and asks for a full resync (their writes may still land): memory stays bounded.
TEST_F(pair_of_servers, too_many_calls_that_never_complete_ask_for_a_full_resync) {
    auto cfg = fast_config();
    cfg.lanes = 1;
    cfg.max_stale_calls = 0;
    auto& lane0 = start_with_lane0_behind_a_fault(cfg, 500ms, 0ms);
    write({"SET", "k", "before"}, {"k"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    EXPECT_FALSE(rep->snapshot().full_resync_needed);
    lane0.stall(true);
    write({"SET", "k", "late"}, {"k"});
    EXPECT_TRUE(eventually([&] { return rep->snapshot().full_resync_needed; }, 10s));
    lane0.stall(false);
    EXPECT_TRUE(eventually([&] { return rep->snapshot().dirty_keys == 0; }));
}

// A copy in flight on a lane that fails stays counted on the wire: it may still land, so pausing
// the copies keeps waiting for it.
TEST_F(pair_of_servers, a_copy_on_a_failed_lane_is_still_waited_for) {
    auto cfg = fast_config();
    cfg.lanes = 1;
    auto& lane0 = start_with_lane0_behind_a_fault(cfg, 500ms, 0ms);
    primary_server.cli({"SET", "pk", "v"});
    ASSERT_TRUE(eventually([&] { return rep->snapshot().secondary_up; }));
    lane0.stall(true);
    std::string_view k[] = {"pk"};
    rep->mark_dirty(k);
    ASSERT_TRUE(eventually([&] { return !rep->snapshot().secondary_up; }, 10s));
    EXPECT_FALSE(rep->pause_repairs(true, 300ms)) << "a copy that may still land was forgotten";
    lane0.stall(false);
    EXPECT_TRUE(rep->pause_repairs(true, 10s));
    rep->pause_repairs(false);
    expect_equal();
}

// Pausing the copies waits for those already sent (they could land after the side they are
// copied to starts serving); a copy still unanswered at the deadline is reported.
TEST_F(pair_of_servers, pausing_waits_for_copies_already_sent) {
    auto cfg = fast_config();
    cfg.lanes = 1;
    auto& lane0 = start_with_lane0_behind_a_fault(cfg);
    primary_server.cli({"SET", "pk", "v"});
    ASSERT_TRUE(eventually([&] { return rep->snapshot().secondary_up; }));
    lane0.stall(true);
    std::string_view k[] = {"pk"};
    rep->mark_dirty(k);
    // Read from the primary and sent into the stalled connection.
    ASSERT_TRUE(eventually([&] { return rep->snapshot().queued_items == 1; }));
    EXPECT_FALSE(rep->pause_repairs(true, 300ms)) << "returned with a copy still on the wire";
    EXPECT_TRUE(rep->snapshot().repairs_paused);
    lane0.stall(false);
    EXPECT_TRUE(rep->pause_repairs(true, 10s));
    EXPECT_EQ(secondary_server.cli({"GET", "pk"}), "v");
    rep->pause_repairs(false);
    expect_equal();
}

// The follower's thread is background work (SCHED_BATCH): its wake-ups do not preempt the
// workers that serve clients.
TEST_F(pair_of_servers, the_follower_thread_is_background_work) {
    start(fast_config());
    // The policy of the thread named rp-follow-sec; -1 until it has named itself.
    const auto policy = [] {
        for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
            std::ifstream comm(t.path() / "comm");
            std::string name;
            std::getline(comm, name);
            if (name == "rp-follow-sec")
                return sched_getscheduler(std::stoi(t.path().filename().string()));
        }
        return -1;
    };
    // It names itself, then changes its policy, once it runs.
    EXPECT_TRUE(eventually([&] { return policy() == SCHED_BATCH; }, 10s)) << policy();
}

// The secondary's copy diverged (a string where the primary has a list): the error reply is
// counted and the key repaired.
TEST_F(pair_of_servers, error_reply_marks_dirty_and_repairs) {
    start(fast_config());
    secondary_server.cli({"SET", "wrong", "string"});
    write({"RPUSH", "wrong", "a"}, {"wrong"});
    write({"RPUSH", "wrong", "b"}, {"wrong"});
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_GE(s.failed, 1u);
    EXPECT_GE(s.repaired, 1u);
    EXPECT_EQ(secondary_server.cli({"LRANGE", "wrong", "0", "-1"}), "a\nb");
}

// A refused write is reported (command name, error, keys) for Sentry, besides turning dirty.
TEST_F(pair_of_servers, a_refused_write_is_reported_with_its_command) {
    struct seen {
        std::mutex mu;
        std::vector<std::string> lines;
    };
    auto got = std::make_shared<seen>();
    auto cfg = fast_config();
    cfg.on_write_error = [got](std::string_view command, std::string_view error, std::size_t keys) {
        std::lock_guard lock(got->mu);
        got->lines.push_back(std::string(command) + " " + std::to_string(keys) + " " +
                             std::string(error.substr(0, 9)));
    };
    start(cfg);
    secondary_server.cli({"SET", "typed", "string"});
    write({"RPUSH", "typed", "a"}, {"typed"});
    expect_equal();
    std::lock_guard lock(got->mu);
    ASSERT_FALSE(got->lines.empty());
    EXPECT_EQ(got->lines.front(), "RPUSH 1 WRONGTYPE");
}

// A value changed behind the proxy's back on the secondary: the next write's integer reply
// differs from the primary's, so the key is copied (before, the secondary stayed different).
TEST_F(pair_of_servers, a_write_answered_otherwise_than_on_the_primary_is_copied) {
    start(fast_config());
    write_checked({"SET", "counter", "10"});
    write_checked({"RPUSH", "list", "a"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    secondary_server.cli({"SET", "counter", "50"});
    write_checked({"INCR", "counter"});     // 11 on the primary, 51 here
    write_checked({"RPUSH", "list", "b"});  // 2 on both
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", "counter"}), "11");
    const auto s = rep->snapshot();
    EXPECT_EQ(s.reply_mismatches, 1u);
    EXPECT_EQ(s.repaired, 1u);
    EXPECT_NE(registry.prometheus_text().find(
                  "respite_proxy_follower_reply_mismatches_total{target=\"secondary\"} 1"),
              std::string::npos)
        << registry.prometheus_text();
}

// A transaction's replies are compared command by command: MULTI INCR EXEC, the INCR
// answered 51 here and 11 on the primary.
TEST_F(pair_of_servers, a_transaction_answered_otherwise_than_on_the_primary_is_copied) {
    start(fast_config());
    write_checked({"SET", "counter", "10"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    secondary_server.cli({"SET", "counter", "50"});
    std::string_view k[] = {"counter"};
    rep->begin_write(k, 1);
    client::request r;
    r.push("SET", "other", "x");
    r.push("INCR", "counter");
    auto res = run_tx(r);
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ((*res)[1].integer(), 11);
    replay_item item;
    item.keys = {"counter", "other"};
    item.commands = std::move(r);
    item.atomic = true;
    item.expect_replies = {std::nullopt, 11};
    std::string_view begun[] = {"counter"};
    rep->submit(std::move(item), begun);
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", "counter"}), "11");
    EXPECT_EQ(rep->snapshot().reply_mismatches, 1u);
}

// A differing reply while a blocking command waits on the key (a push that woke a BLMOVE is
// answered after the pop on the primary, before it on the target) or while key tracking is
// lost (full_resync_needed): the keys are still copied, but not counted as a divergence.
TEST_F(pair_of_servers, differences_with_a_known_cause_are_copied_but_not_counted) {
    start(fast_config());
    write_checked({"RPUSH", "queue", "a"});
    write_checked({"SET", "counter", "10"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    std::string_view q[] = {"queue"};
    rep->begin_uncounted(q, 9);  // a BLMOVE waits on "queue"
    secondary_server.cli({"RPUSH", "queue", "extra"});
    write_checked({"RPUSH", "queue", "b"});  // 2 on the primary, 3 here
    expect_equal();
    EXPECT_EQ(rep->snapshot().reply_mismatches, 0u);
    EXPECT_GE(rep->snapshot().repaired, 1u);
    const std::uint64_t gens[] = {rep->write_generation("queue")};
    rep->end_uncounted(q, gens, false);  // it ended: counted again
    secondary_server.cli({"RPUSH", "queue", "extra"});
    write_checked({"RPUSH", "queue", "c"});
    expect_equal();
    EXPECT_EQ(rep->snapshot().reply_mismatches, 1u);

    rep->require_full_resync("test");
    secondary_server.cli({"SET", "counter", "50"});
    write_checked({"INCR", "counter"});
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", "counter"}), "11");
    EXPECT_EQ(rep->snapshot().reply_mismatches, 1u);
}

// Off (the target needs a full copy anyway): the write is applied and nothing is copied.
TEST_F(pair_of_servers, replies_are_not_compared_while_checks_are_off) {
    start(fast_config());
    rep->check_replies(false);
    write_checked({"SET", "counter", "10"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    secondary_server.cli({"SET", "counter", "50"});
    write_checked({"INCR", "counter"});
    ASSERT_TRUE(eventually([&] { return caught_up() && rep->snapshot().applied >= 2; }));
    EXPECT_EQ(secondary_server.cli({"GET", "counter"}), "51");
    EXPECT_EQ(rep->snapshot().reply_mismatches, 0u);
}

// Writes merged into one command on the secondary share one reply, compared with what their
// own replies on the primary make: the last length (RPUSH), the sum (SADD, HSET, HDEL). Equal
// sides give no mismatch; a list longer on the secondary is found and copied.
TEST_F(pair_of_servers, merged_writes_are_compared_by_their_merged_reply) {
    start(fast_config());
    constexpr int n = 3000;
    for (int i = 0; i < n; ++i) {
        const auto k = std::to_string(i % 3);
        const auto v = std::to_string(i % 7);
        switch (i % 4) {
            case 0:
                write_async({"RPUSH", "l" + k, v}, {2, {}});
                break;
            case 1:
                write_async({"SADD", "s" + k, v}, {2, {}});
                break;
            case 2:
                write_async({"HSET", "h" + k, "f" + v, v}, {2, {}});
                break;
            default:
                write_async({"HDEL", "h" + k, "f" + std::to_string(i % 5)}, {2, {}});
        }
    }
    ASSERT_TRUE(eventually([&] { return async_replied == n; }));
    expect_equal();
    auto s = rep->snapshot();
    EXPECT_GT(s.merged, 0u) << "nothing was merged: the test did not test merged replies";
    EXPECT_EQ(s.reply_mismatches, 0u);
    EXPECT_EQ(s.repaired, 0u);

    secondary_server.cli({"RPUSH", "l0", "extra"});
    async_replied = 0;
    for (int i = 0; i < 200; ++i)
        write_async({"RPUSH", "l0", std::to_string(i)}, {2, {}});
    ASSERT_TRUE(eventually([&] { return async_replied == 200; }));
    expect_equal();
    s = rep->snapshot();
    EXPECT_GE(s.reply_mismatches, 1u);
    EXPECT_GE(s.repaired, 1u);
}

// A write the primary ran just before the key's expiry reaches the secondary just after it
// (the replay's lag): INCR made 6 with the TTL on the primary, a new 1 without TTL here, which
// outlived the primary's key forever. The reply differs, so the key is copied: gone on both.
TEST_F(pair_of_servers, a_write_replayed_after_the_keys_expiry_is_copied) {
    start(fast_config());
    const auto at = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() +
                    400;
    write_checked({"SET", "other", "x"});
    write_checked({"SET", "limit", "5", "PXAT", std::to_string(at)});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    // The secondary holds writes back past the expiry.
    ASSERT_EQ(secondary_server.cli({"CLIENT", "PAUSE", "900", "WRITE"}), "OK");
    write_checked({"INCR", "limit"});
    ASSERT_EQ(primary_server.cli({"GET", "limit"}), "6") << "the INCR came after the expiry";
    ASSERT_TRUE(eventually([&] { return primary_server.cli({"EXISTS", "limit"}) == "0"; }));
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"EXISTS", "limit"}), "0");
    EXPECT_EQ(rep->snapshot().reply_mismatches, 1u);
}

// Effects the proxy cannot derive (XADD *, XREADGROUP ...): the keys are copied instead.
TEST_F(pair_of_servers, copy_item_copies_from_primary) {
    start(fast_config());
    std::string_view k[] = {"stream"};
    for (int i = 0; i < 5; ++i) {
        rep->begin_write(k, 3);
        ASSERT_TRUE(run(*primary, client::cmd("XADD", "stream", "*", "f", i)).has_value());
        replay_item item;
        item.keys = {"stream"};
        item.copy = true;
        rep->submit(std::move(item), k);
    }
    // A key with a TTL keeps it.
    std::string_view t[] = {"ttl"};
    rep->begin_write(t, 3);
    ASSERT_TRUE(run(*primary, client::cmd("SET", "ttl", "v", "EX", 1000)).has_value());
    replay_item item;
    item.keys = {"ttl"};
    item.copy = true;
    rep->submit(std::move(item), t);
    expect_equal();
    EXPECT_GE(rep->snapshot().repaired, 2u);
    const auto ttl = std::stoi(secondary_server.cli({"TTL", "ttl"}));
    EXPECT_GT(ttl, 900);
    // The key disappears on the primary: the copy deletes it.
    rep->begin_write(t, 3);
    ASSERT_TRUE(run(*primary, client::cmd("DEL", "ttl")).has_value());
    replay_item gone;
    gone.keys = {"ttl"};
    gone.copy = true;
    rep->submit(std::move(gone), t);
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"EXISTS", "ttl"}), "0");
}

// Copies keep the source's expiry time (PEXPIRETIME -> RESTORE ... ABSTTL); a source without
// PEXPIRETIME (Redis 6, or a server that renamed it away) gets PTTL instead, and the copies
// still land with their expiry.
TEST_F(pair_of_servers, copies_fall_back_to_pttl_on_a_source_without_pexpiretime) {
    redis_server old({.config = {{"rename-command", "PEXPIRETIME \"\""}}});
    ASSERT_NE(old.cli({"PEXPIRETIME", "x"}).find("unknown command"), std::string::npos);
    primary = make_standalone_backend("primary", config_for(old));
    start(fast_config());
    for (const auto* key : {"a", "b", "c"}) {
        std::string_view k[] = {key};
        rep->begin_write(k, 3);
        ASSERT_TRUE(run(*primary, client::cmd("SET", key, "v", "EX", 1000)).has_value());
        replay_item item;
        item.keys = {key};
        item.copy = true;
        rep->submit(std::move(item), k);
    }
    ASSERT_TRUE(eventually([&] { return caught_up() && rep->snapshot().repaired >= 3; }))
        << "repaired=" << rep->snapshot().repaired;
    for (const auto* key : {"a", "b", "c"}) {
        EXPECT_EQ(secondary_server.cli({"GET", key}), "v");
        EXPECT_GT(std::stoi(secondary_server.cli({"TTL", key})), 900);
    }
    EXPECT_EQ(rep->snapshot().rejected_keys, 0u);
}

// The primary's connection broke after the write was sent: the key is copied.
TEST_F(pair_of_servers, outcome_unknown_marks_dirty) {
    start(fast_config());
    std::string_view k[] = {"unknown"};
    rep->begin_write(k, 1);
    ASSERT_TRUE(run(*primary, client::cmd("SET", "unknown", "maybe")).has_value());
    rep->abandon(k, true);
    expect_equal();
    EXPECT_EQ(secondary_server.cli({"GET", "unknown"}), "maybe");
    // A write that surely failed changes nothing.
    rep->begin_write(k, 1);
    rep->abandon(k, false);
    EXPECT_EQ(rep->snapshot().dirty_keys, 0u);
}

// Writes marked mergeable (SET as MSET, pushes to one key as one push) reach the secondary in
// fewer commands, with the effect of the sequence; an error reply to a merged command turns
// every merged write's key dirty, and the repair settles them.
TEST_F(pair_of_servers, merged_writes_apply_the_sequence) {
    start(fast_config());
    secondary_server.cli({"SET", "wrong", "a string where the primary has a list"});
    constexpr int n = 4000;
    for (int i = 0; i < n; ++i) {
        std::vector<std::string> args;
        merge_hint hint;
        switch (i % 4) {
            case 0:
            case 1:
                args = {"SET", "s:" + std::to_string(i % 97), std::to_string(i)};
                hint = {1, "MSET"};
                break;
            case 2:
                args = {"RPUSH", i % 3 == 0 ? "wrong" : "l:" + std::to_string(i % 5),
                        std::to_string(i), "x"};
                hint = {2, {}};
                break;
            default:
                args = {"HSET", "h", "f" + std::to_string(i % 13), std::to_string(i)};
                hint = {2, {}};
        }
        write_async(std::move(args), hint);
    }
    ASSERT_TRUE(eventually([&] { return async_replied == n; }));
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_EQ(s.dropped_to_dirty, 0u);
    EXPECT_GT(s.merged, 0u) << "nothing was merged: the test did not test merging";
    // The merged pushes to "wrong" failed on the secondary and were repaired.
    EXPECT_GE(s.failed, 1u);
    EXPECT_GE(s.repaired, 1u);
    // On the wire: MSETs, and fewer push commands than pushes.
    const auto calls = [&](const std::string& cmd) { return secondary_calls(cmd); };
    EXPECT_GT(calls("mset"), 0);
    EXPECT_LT(calls("set") + calls("mset"), n / 2);
    EXPECT_LT(calls("hset"), n / 4);
    // Every write went out once, alone or inside the command before it, or was not sent as
    // its key already awaited a copy ("wrong" after its first failure); the set-up's SET of
    // "wrong" is one more.
    EXPECT_EQ(
        static_cast<std::uint64_t>(calls("set") + calls("mset") + calls("rpush") + calls("hset")) +
            s.merged + s.superseded,
        static_cast<std::uint64_t>(n) + 1);
}

// The secondary's ACL lets the follower's user SET but not MSET: the first merged writes fail
// (their keys are copied), then the follower stops renaming merges instead of failing every one.
TEST_F(pair_of_servers, a_refused_merged_command_stops_those_merges) {
    ASSERT_EQ(
        secondary_server.cli({"ACL", "SETUSER", "follower", "on", ">pw", "~*", "+@all", "-mset"}),
        "OK");
    secondary_user = "follower";
    start(fast_config());
    int sent = 0;
    const auto pipeline = [&](int n) {
        for (int i = 0; i < n; ++i, ++sent)
            write_async({"SET", "m:" + std::to_string(sent), std::to_string(sent)}, {1, "MSET"});
    };
    pipeline(1000);
    ASSERT_TRUE(eventually([&] { return async_replied == sent; }));
    expect_equal();
    const auto first = rep->snapshot();
    ASSERT_GE(first.failed, 2u) << "no merged MSET was refused: the test did not test it";
    EXPECT_EQ(secondary_calls("mset"), 0);
    // From now on: plain SETs, none refused, nothing merged.
    pipeline(2000);
    ASSERT_TRUE(eventually([&] { return async_replied == sent; }));
    expect_equal();
    const auto second = rep->snapshot();
    EXPECT_EQ(second.failed, first.failed);
    EXPECT_EQ(second.merged, first.merged);
    EXPECT_GE(secondary_calls("set"), 2000);
}

// A merged MSET refused for one of its keys (outside the user's key patterns) is not a refusal of
// MSET itself: merging goes on.
TEST_F(pair_of_servers, a_key_refused_inside_a_merge_keeps_merging) {
    ASSERT_EQ(secondary_server.cli({"ACL", "SETUSER", "follower", "on", ">pw", "~in:*", "+@all"}),
              "OK");
    secondary_user = "follower";
    start(fast_config());
    int sent = 0;
    const auto pipeline = [&](int n, bool with_outsider) {
        for (int i = 0; i < n; ++i, ++sent) {
            const char* prefix = with_outsider && i % 50 == 7 ? "out:" : "in:";
            write_async({"SET", prefix + std::to_string(sent), "v"}, {1, "MSET"});
        }
    };
    pipeline(1000, true);
    ASSERT_TRUE(eventually([&] { return async_replied == sent; }));
    ASSERT_TRUE(eventually([&] { return rep->snapshot().queued_items == 0; }));
    const auto first = rep->snapshot();
    ASSERT_GE(first.failed, 2u) << "no merge met the key pattern: the test did not test it";
    pipeline(2000, false);
    ASSERT_TRUE(eventually([&] { return async_replied == sent; }));
    ASSERT_TRUE(eventually([&] { return rep->snapshot().queued_items == 0; }));
    EXPECT_GT(rep->snapshot().merged, first.merged) << "merging stopped after a key's NOPERM";
}

// A key marked dirty while writes of it wait in the queue: they are not sent (the key's copy
// brings their effect), and the copy is taken only once they left the queue.
TEST_F(pair_of_servers, writes_to_keys_awaiting_a_copy_are_not_sent) {
    auto cfg = fast_config();
    cfg.lanes = 1;
    cfg.max_batch = 1;  // 8 calls of one item in flight: the rest waits in the queue
    start(cfg);
    // The secondary holds client writes for a while: the first calls wait there, the rest here.
    ASSERT_EQ(secondary_server.cli({"CLIENT", "PAUSE", "700", "WRITE"}), "OK");
    constexpr int n = 60;
    for (int i = 0; i < n; ++i)
        write({"RPUSH", "held", std::to_string(i)}, {"held"});
    write({"SET", "other", "1"}, {"other"});
    std::string_view k[] = {"held"};
    rep->mark_dirty(k);
    expect_equal();
    const auto s = rep->snapshot();
    EXPECT_GT(s.superseded, 0u);
    EXPECT_EQ(s.superseded + s.applied - s.repaired, static_cast<std::uint64_t>(n) + 1);
    EXPECT_EQ(s.failed, 0u);
    EXPECT_GE(s.repaired, 1u);
    ASSERT_GT(secondary_calls("rpush"), 0);
    EXPECT_LT(secondary_calls("rpush"), n);
    EXPECT_EQ(secondary_server.cli({"GET", "other"}), "1");  // not dirty: sent
}

// Two origins keep writes to one key in flight without a gap (each begins its next write
// before the other's ends), as many clients writing a hot key do: the key is dirty (they race)
// and its stripe is never idle, so no copy could be read. After fence_after the follower
// fences the stripe: the writers hold their next write while fenced() (as the proxy's
// sessions do), the ones in flight end, the copy is read, and the writes go on.
TEST_F(pair_of_servers, a_key_never_idle_is_copied_under_a_fence) {
    auto cfg = fast_config();
    cfg.fence_after = 100ms;
    cfg.fence_max = 5s;
    start(cfg);
    std::atomic<bool> stop{false};
    std::atomic<long> held{0};
    std::thread writer([&] {
        const std::string key = "hot";
        std::string_view k[] = {key};
        client::request incr;
        incr.push("INCR", key);
        const std::string bytes(incr.payload());
        rep->begin_write(k, 1);
        write_origin in_flight = 1;
        while (!stop.load()) {
            if (rep->fenced(k)) {
                // Hold the next write; the one in flight ends.
                if (in_flight != 0) {
                    ASSERT_TRUE(run(*primary, incr).has_value());
                    rep->submit_command(bytes, k);
                    in_flight = 0;
                }
                ++held;
                std::this_thread::sleep_for(1ms);
                continue;
            }
            const write_origin next = in_flight == 1 ? 2 : 1;
            rep->begin_write(k, next);  // the other origin's write is in flight: a race
            if (in_flight != 0) {
                ASSERT_TRUE(run(*primary, incr).has_value());
                rep->submit_command(bytes, k);
            }
            in_flight = next;
        }
        if (in_flight != 0) {
            ASSERT_TRUE(run(*primary, incr).has_value());
            rep->submit_command(bytes, k);
        }
    });
    EXPECT_TRUE(eventually([&] { return rep->snapshot().fenced_copies >= 3; }, 20s))
        << "fenced_copies=" << rep->snapshot().fenced_copies
        << " dirty=" << rep->snapshot().dirty_keys;
    stop = true;
    writer.join();
    EXPECT_GT(held.load(), 0);
    EXPECT_EQ(rep->snapshot().fence_timeouts, 0u);
    expect_equal();
    EXPECT_FALSE(rep->fence_up());
}

// A write that stays in flight (a slow primary, a long script) keeps the fenced copy from
// being read: the fence is lifted after fence_max, counted, and the key is copied once the
// write ended.
TEST_F(pair_of_servers, a_fence_whose_writes_never_end_is_lifted_in_time) {
    auto cfg = fast_config();
    cfg.fence_after = 50ms;
    cfg.fence_max = 200ms;
    start(cfg);
    write({"SET", "stuck", "1"}, {"stuck"});
    std::string_view k[] = {"stuck"};
    rep->begin_write(k, 1);
    rep->begin_write(k, 2);  // a race: dirty
    ASSERT_TRUE(eventually([&] { return rep->snapshot().fence_timeouts >= 1; }, 20s));
    EXPECT_EQ(rep->snapshot().fenced_copies, 0u);
    EXPECT_TRUE(eventually([&] { return !rep->fenced(k); }, 2s));
    EXPECT_GE(rep->snapshot().dirty_keys, 1u);
    rep->abandon(k, false);
    rep->abandon(k, false);
    expect_equal();
}

// The mark PROXY SYNC ends on: the keys dirty at the mark, each until its copy is applied; keys
// dirty after the mark do not count.
TEST_F(pair_of_servers, the_dirty_mark_counts_the_keys_dirty_then_until_each_is_copied) {
    start(fast_config());
    write({"SET", "a", "1"}, {"a"});
    write({"SET", "b", "1"}, {"b"});
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    ASSERT_TRUE(rep->pause_repairs(true));
    std::string_view a[] = {"a"};
    std::string_view b[] = {"b"};
    rep->mark_dirty(a);
    rep->set_dirty_mark();
    EXPECT_EQ(rep->dirty_at_mark(), 1u);
    rep->mark_dirty(b);
    EXPECT_EQ(rep->dirty_at_mark(), 1u);
    EXPECT_EQ(rep->snapshot().dirty_keys, 2u);
    rep->pause_repairs(false);
    EXPECT_TRUE(eventually([&] { return rep->dirty_at_mark() == 0; }));
    expect_equal();
}

TEST_F(pair_of_servers, when_applied_runs_after_earlier_items) {
    start(fast_config());
    for (int i = 0; i < 200; ++i)
        write({"SET", "w", std::to_string(i)}, {"w"});
    std::promise<void> p;
    rep->when_applied("w", [&p] { p.set_value(); });
    ASSERT_EQ(p.get_future().wait_for(20s), std::future_status::ready);
    EXPECT_EQ(secondary_server.cli({"GET", "w"}), "199");
    // Nothing queued: at once (on the replayer's thread).
    std::promise<void> q;
    rep->when_applied("w", [&q] { q.set_value(); });
    EXPECT_EQ(q.get_future().wait_for(20s), std::future_status::ready);
}

TEST_F(pair_of_servers, drain_applies_what_is_queued_then_refuses) {
    start(fast_config());
    for (int i = 0; i < 500; ++i)
        write({"RPUSH", "d" + std::to_string(i % 9), std::to_string(i)},
              {"d" + std::to_string(i % 9)});
    EXPECT_TRUE(rep->drain(20s));
    EXPECT_EQ(rep->snapshot().queued_items, 0u);
    EXPECT_EQ(primary_server.cli({"DEBUG", "DIGEST"}), secondary_server.cli({"DEBUG", "DIGEST"}));
    const auto before = rep->snapshot().dropped_to_dirty;
    write({"SET", "late", "1"}, {"late"});
    const auto s = rep->snapshot();
    EXPECT_EQ(s.dropped_to_dirty, before + 1);
    EXPECT_EQ(s.dirty_keys, 1u);
}

// A drain copies the dirty keys too, while the secondary is up: no write comes any more, and a
// stop without a state file would leave them different (it only logged them).
TEST_F(pair_of_servers, drain_copies_the_dirty_keys) {
    auto cfg = fast_config();
    cfg.repair_rate = 200;  // 300 keys: about 1.5 s of copies
    start(cfg);
    std::vector<std::string> keys;
    std::vector<std::string> mset{"MSET"};
    for (int i = 0; i < 300; ++i) {
        keys.push_back("dd" + std::to_string(i));
        mset.insert(mset.end(), {keys.back(), "v"});
    }
    ASSERT_EQ(primary_server.cli(mset), "OK");
    std::vector<std::string_view> views(keys.begin(), keys.end());
    rep->mark_dirty(views);
    ASSERT_GT(rep->snapshot().dirty_keys, 200u);
    EXPECT_TRUE(rep->drain(20s));
    EXPECT_EQ(rep->snapshot().dirty_keys, 0u);
    EXPECT_EQ(primary_server.cli({"DEBUG", "DIGEST"}), secondary_server.cli({"DEBUG", "DIGEST"}));
    // Once drained, a late write's key stays dirty (nothing copies it any more).
    write({"SET", "late", "1"}, {"late"});
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(rep->snapshot().dirty_keys, 1u);
}

// With the secondary down the copies cannot go on: the drain does not wait for them.
TEST_F(pair_of_servers, drain_does_not_wait_for_copies_to_a_down_secondary) {
    auto cfg = fast_config();
    cfg.lanes = 1;
    start(cfg);
    write({"SET", "a", "1"}, {"a"});
    expect_equal();
    secondary_server.stop();
    write({"SET", "b", "2"}, {"b"});  // fails on the lane: the key turns dirty
    ASSERT_TRUE(eventually([&] { return !rep->snapshot().secondary_up; }));
    ASSERT_EQ(rep->snapshot().dirty_keys, 1u);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(rep->drain(20s));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(rep->snapshot().dirty_keys, 1u);
}

// A repair the secondary refuses (OOM here) is not forgotten: the key stays rejected (counted,
// listed among the unapplied keys, awaiting repair), is tried again slowly, and a copy applied
// once the secondary has room removes it.
TEST_F(pair_of_servers, refused_repair_is_kept_and_retried) {
    auto cfg = fast_config();
    cfg.rejected_retry_interval = 300ms;
    start(cfg);
    leave_no_room(secondary_server);
    const auto big = incompressible(2 << 20);
    write({"SET", "big", big}, {"big"});
    ASSERT_TRUE(eventually([&] { return rep->snapshot().rejected_keys == 1; }))
        << "failed=" << rep->snapshot().failed;
    ASSERT_TRUE(eventually([&] { return rep->snapshot().repairs_rejected >= 2; }))
        << "the retry did not come";
    auto s = rep->snapshot();
    EXPECT_GE(s.failed, 2u);  // the SET, then the copy
    EXPECT_FALSE(s.full_resync_needed);
    EXPECT_TRUE(rep->awaiting_repair("big"));
    EXPECT_FALSE(rep->awaiting_repair("other"));
    EXPECT_EQ(secondary_server.cli({"EXISTS", "big"}), "0");
    const auto u = rep->unapplied_keys(100);
    EXPECT_TRUE(u.complete);
    EXPECT_NE(std::ranges::find(u.keys, "big"), u.keys.end());
    // Published by the replayer's tick.
    EXPECT_TRUE(eventually([&] {
        return registry.prometheus_text().find(
                   "respite_proxy_follower_rejected_keys{target=\"secondary\"} 1\n") !=
               std::string::npos;
    })) << registry.prometheus_text();
    EXPECT_NE(registry.prometheus_text().find("respite_proxy_follower_repairs_rejected_total"),
              std::string::npos);
    // Room again: the next retry copies it.
    secondary_server.cli({"CONFIG", "SET", "maxmemory", "0"});
    ASSERT_TRUE(eventually([&] { return rep->snapshot().rejected_keys == 0; }));
    expect_equal();
    EXPECT_FALSE(rep->awaiting_repair("big"));
    EXPECT_TRUE(rep->unapplied_keys(100).keys.empty());
}

// More refused keys than max_rejected_keys cannot all be tracked: a full resync is needed.
TEST_F(pair_of_servers, rejected_set_overflow_needs_full_resync) {
    auto cfg = fast_config();
    cfg.max_rejected_keys = 1;
    start(cfg);
    leave_no_room(secondary_server);
    const auto big = incompressible(2 << 20);
    write({"SET", "big1", big}, {"big1"});
    write({"SET", "big2", big}, {"big2"});
    ASSERT_TRUE(eventually([&] { return rep->snapshot().full_resync_needed; }))
        << "rejected=" << rep->snapshot().rejected_keys;
    EXPECT_EQ(rep->snapshot().rejected_keys, 1u);
    secondary_server.cli({"CONFIG", "SET", "maxmemory", "0"});
}

// Items pending when the replayer stops are counted as abandoned, never silently lost.
TEST_F(pair_of_servers, shutdown_counts_abandoned_items) {
    secondary_server.stop();
    auto cfg = fast_config();
    cfg.item_timeout = 30s;
    secondary_timeout = 30s;
    park_while_disconnected = true;  // the writes wait for a server that never comes
    start(cfg);
    for (int i = 0; i < 20; ++i)
        write({"SET", "a" + std::to_string(i), "v"}, {"a" + std::to_string(i)});
    EXPECT_TRUE(eventually([&] { return rep->snapshot().queued_items > 0; }));
    rep.reset();
    const auto text = registry.prometheus_text();
    EXPECT_EQ(text.find("respite_proxy_follower_abandoned_total 0"), std::string::npos) << text;
    EXPECT_NE(text.find("respite_proxy_follower_abandoned_total"), std::string::npos);
    secondary_server.start();
}
