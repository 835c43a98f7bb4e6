// PROXY SYNC: the copy of pre-existing keys through the follower's repair loop, against two real
// redis-servers, alone and under live writes through the proxy.
#include <atomic>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include "proxy_fixture.hpp"

namespace respite::test {
namespace {

using proxy::mode;
using namespace std::chrono_literals;

class proxy_sync : public proxy_fixture {
  protected:
    // Client threads writing through the proxy (RESP3 and RESP2 alternately) until stop():
    // each sends pipelines that `fill` builds from its random source and counts their commands.
    class live_writers {
      public:
        using fill_fn = std::function<void(std::mt19937&, client::request&)>;
        live_writers(const proxy_sync& f, int threads, unsigned seed, int per_pipeline,
                     fill_fn fill) {
            for (int t = 0; t < threads; ++t)
                threads_.emplace_back([this, &f, t, seed, per_pipeline, fill] {
                    client::sync_client c(f.client_config(t % 2 ? 2 : 3));
                    std::mt19937 rng(seed + static_cast<unsigned>(t));
                    while (!stop_.load()) {
                        client::request r;
                        for (int i = 0; i < per_pipeline; ++i)
                            fill(rng, r);
                        const auto n = static_cast<long>(r.size());
                        if (c.exec(std::move(r)).has_value())
                            writes_ += n;
                    }
                });
        }
        ~live_writers() { stop(); }
        live_writers(const live_writers&) = delete;
        live_writers& operator=(const live_writers&) = delete;
        void stop() {
            stop_ = true;
            threads_.clear();
        }
        [[nodiscard]] long writes() const { return writes_.load(); }

      private:
        std::atomic<bool> stop_{false};
        std::atomic<long> writes_{0};
        std::vector<std::jthread> threads_;
    };

    // A counter of the proxy's /metrics (0 when absent). The registry is process-wide, so tests
    // compare the value before and after (they also pass under --gtest_repeat).
    [[nodiscard]] double metric(std::string_view name) const {
        const auto text = http(proxy_->admin_port(), "GET", "/metrics");
        const std::string head = "\n" + std::string(name) + " ";
        const auto at = text.find(head);
        return at == std::string::npos ? 0.0 : std::stod(text.substr(at + head.size()));
    }

    // n string keys "<prefix><i>" written straight to the primary (before the proxy follows).
    void preload(std::string_view prefix, int n) {
        client::client_config c;
        c.connection.host = primary_.host();
        c.connection.port = primary_.port();
        client::sync_client cl(c);
        for (int base = 0; base < n; base += 1000) {
            client::request r;
            for (int i = base; i < std::min(n, base + 1000); ++i)
                r.push("SET", std::string(prefix) + std::to_string(i), "v" + std::to_string(i));
            ASSERT_TRUE(cl.exec(std::move(r)).has_value());
        }
    }

    std::string sync_call(std::initializer_list<std::string_view> args) {
        raw_conn c(proxy_->port());
        return c.call(args);
    }

    std::string status() { return sync_call({"PROXY", "SYNC", "STATUS"}); }

    long field(std::string_view name) {
        const auto s = status();
        const auto at = s.find(std::string(name) + ":");
        return at == std::string::npos ? -1 : std::stol(s.substr(at + name.size() + 1));
    }

    bool wait_state(std::string_view state, std::chrono::milliseconds limit = 60s) {
        const std::string want = "sync_state:" + std::string(state) + "\r\n";
        return eventually([&] { return status().find(want) != std::string::npos; }, limit);
    }

    // Big keys of every collection type, "big:<type>", n elements each, written the same to
    // both backends (behind the proxy's back). The stream's IDs are 1-1 ... n-1.
    void big_keys(int n) {
        for (const redis_server* server : {&primary_, &secondary_}) {
            client::client_config c;
            c.connection.host = server->host();
            c.connection.port = server->port();
            client::sync_client cl(c);
            for (int base = 0; base < n; base += 500) {
                client::request r;
                for (int i = base; i < std::min(n, base + 500); ++i) {
                    const auto s = std::to_string(i);
                    r.push("RPUSH", "big:list", "e" + s);
                    r.push("HSET", "big:hash", "f" + s, "v" + s);
                    r.push("SADD", "big:set", "m" + s);
                    r.push("ZADD", "big:zset", i, "m" + s);
                    r.push("XADD", "big:stream", std::to_string(i + 1) + "-1", "f", "v" + s);
                }
                ASSERT_TRUE(cl.exec(std::move(r)).has_value());
            }
        }
    }

    // Runs PROXY VERIFY to its end and returns its STATUS.
    std::string verify_run(std::chrono::milliseconds limit = 60s) {
        EXPECT_EQ(sync_call({"PROXY", "VERIFY", "START"}), "+OK\r\n");
        EXPECT_TRUE(eventually(
            [&] {
                return sync_call({"PROXY", "VERIFY", "STATUS"}).find("verify_state:done") !=
                       std::string::npos;
            },
            limit))
            << sync_call({"PROXY", "VERIFY", "STATUS"});
        return sync_call({"PROXY", "VERIFY", "STATUS"});
    }

    // Streams with consumer groups, written through the proxy (dual-write) so that the groups
    // reach the secondary by the follower's effects. s:0 and s:1 hold 10 entries (chunked with
    // verify_chunk_elements 5), s:2 and s:3 hold 3; each has groups g1 (read by alice and bob,
    // one entry acknowledged) and g2 (created at $, never read). s:empty is an empty stream made
    // by XGROUP CREATE ... MKSTREAM with one group. 9 groups in all.
    void streams_with_groups() {
        client::sync_client c(client_config(2));
        for (int i = 0; i < 4; ++i) {
            const auto key = "s:" + std::to_string(i);
            client::request r;
            for (int e = 1; e <= (i < 2 ? 10 : 3); ++e)
                r.push("XADD", key, std::to_string(e) + "-1", "f", "v" + std::to_string(e));
            r.push("XGROUP", "CREATE", key, "g1", "0");
            r.push("XGROUP", "CREATE", key, "g2", "$");
            r.push("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "2", "STREAMS", key, ">");
            r.push("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "1", "STREAMS", key, ">");
            r.push("XACK", key, "g1", "1-1");
            auto res = c.exec(std::move(r));
            ASSERT_TRUE(res.has_value());
            for (const auto& v : *res)
                ASSERT_FALSE(v.is_error()) << v.to_display();
        }
        auto res = c.exec([] {
            client::request r;
            r.push("XGROUP", "CREATE", "s:empty", "g", "0", "MKSTREAM");
            return r;
        }());
        ASSERT_TRUE(res.has_value() && !res->front().is_error());
        // The follower's effects brought the groups over (DEBUG DIGEST does not show groups).
        ASSERT_TRUE(eventually([&] {
            for (const std::string key : {"s:0", "s:1", "s:2", "s:3", "s:empty"}) {
                if (key != "s:empty" &&
                    secondary_.cli({"XINFO", "GROUPS", key}).find("g2") == std::string::npos)
                    return false;
                const std::vector<std::string> pending{"XPENDING", key,
                                                       key == "s:empty" ? "g" : "g1"};
                if (primary_.cli(pending) != secondary_.cli(pending))
                    return false;
            }
            return true;
        }));
    }

    // Calls of `command` on a backend since its last CONFIG RESETSTAT (0 when never called).
    static long calls(const redis_server& server, std::string_view command) {
        const auto stats = server.cli({"INFO", "commandstats"});
        const auto key = "cmdstat_" + std::string(command) + ":calls=";
        const auto at = stats.find(key);
        return at == std::string::npos ? 0 : std::stol(stats.substr(at + key.size()));
    }
};

TEST_F(proxy_sync, copies_keys_of_every_type_with_their_ttl) {
    preload("s:", 3000);
    primary_.cli({"HSET", "h", "a", "1", "b", "2"});
    primary_.cli({"RPUSH", "l", "x", "y", "z"});
    primary_.cli({"SADD", "set", "m1", "m2"});
    primary_.cli({"ZADD", "z", "1.5", "a", "2", "b"});
    primary_.cli({"XADD", "st", "1-1", "f", "v"});
    primary_.cli({"XGROUP", "CREATE", "st", "g", "0"});
    primary_.cli({"SET", "ttl", "v", "EX", "1000"});
    // A stale copy on the secondary is replaced.
    secondary_.cli({"SET", "s:7", "stale"});
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT", "100"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    // SCAN returns every key at least once (a rehash may return some twice).
    EXPECT_GE(field("sync_keys_scanned"), 3006) << status();
    EXPECT_GE(field("sync_repaired"), 3006) << status();
    // The serving side's DBSIZE at the start, and the share of it scanned.
    EXPECT_EQ(field("sync_keys_total"), 3006) << status();
    EXPECT_NE(status().find("sync_percent:100.0\r\nsync_eta_seconds:\r\n"), std::string::npos)
        << status();
    EXPECT_TRUE(converged());
    const auto ttl = std::stol(secondary_.cli({"TTL", "ttl"}));
    EXPECT_GT(ttl, 900);
    EXPECT_EQ(secondary_.cli({"XINFO", "GROUPS", "st"}).find("g") != std::string::npos, true);
    // INFO proxy and the HTTP endpoint report the same run.
    EXPECT_NE(proxy_->info().find("sync_state:done"), std::string::npos);
    EXPECT_NE(http(proxy_->admin_port(), "GET", "/sync").find("sync_state:done"),
              std::string::npos);
}

// A copy lands later than it was read (here the secondary holds writes for 1.5 s): it keeps
// the key's expiry time, where a relative PTTL restored then expired 1.5 s later there.
TEST_F(proxy_sync, a_copy_keeps_the_expiry_time_through_the_lanes_lag) {
    primary_.cli({"SET", "ttl", "v", "PX", "60000"});
    start(mode::dual_write);
    secondary_.cli({"CLIENT", "PAUSE", "1500", "WRITE"});
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    const auto at_primary = std::stoll(primary_.cli({"PEXPIRETIME", "ttl"}));
    const auto at_secondary = std::stoll(secondary_.cli({"PEXPIRETIME", "ttl"}));
    EXPECT_GT(at_primary, 0);
    EXPECT_EQ(at_secondary, at_primary);
}

// A dirty set smaller than the copy's pace (20 000 keys) and its default SCAN page: the copy
// waits at half the set and takes smaller pages. It overflowed the set, which flagged a full
// resync that no later run could clear.
TEST_F(proxy_sync, a_small_dirty_set_paces_the_copy_instead_of_overflowing) {
    preload("s:", 8000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.replay_max_dirty_keys = 1000; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_EQ(field("sync_complete"), 1) << status();
    EXPECT_NE(proxy_->info().find("follow_secondary_full_resync_needed:0"), std::string::npos)
        << proxy_->info();
    EXPECT_TRUE(converged());
}

// The follower switched off and on again between two steps of a copy (one pipeline of two mode
// switches): writes in between were not replayed, so the run stops instead of reporting a
// complete copy. It was not seen (the mode was sampled between steps).
TEST_F(proxy_sync, a_quick_switch_away_from_the_follower_stops_the_copy) {
    preload("s:", 8000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 2000; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(eventually([&] { return field("sync_repaired") > 0; })) << status();
    raw_conn admin(proxy_->port());
    admin.send(resp_command({"PROXY", "MODE", "SET", "primary-only"}) +
               resp_command({"SET", "s:1", "while-not-followed"}) +
               resp_command({"PROXY", "MODE", "SET", "dual-write"}));
    EXPECT_EQ(admin.frame(), "+OK\r\n");
    EXPECT_EQ(admin.frame(), "+OK\r\n");
    EXPECT_EQ(admin.frame(), "+OK\r\n");
    ASSERT_TRUE(wait_state("stopped")) << status();
    EXPECT_EQ(field("sync_complete"), 0) << status();
    // Either step saw it: between the two switches, or after both.
    const auto st = status();
    EXPECT_TRUE(st.find("switched off and on") != std::string::npos ||
                st.find("mode changed to primary-only") != std::string::npos)
        << st;
}

// Multi-key writes during the copy whose source the copy has not reached yet: on the follower
// COPY finds no source and answers 0 (no error), so the destination was missing for good when
// the scan had passed its name already. Their keys are copied once more while a copy runs.
TEST_F(proxy_sync, writes_reading_keys_not_copied_yet_are_copied_too) {
    preload("k:", 10000);
    start(mode::dual_write);
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    raw_conn c(proxy_->port());
    std::string pipeline;
    for (int i = 0; i < 200; ++i)
        pipeline += resp_command({"COPY", "k:" + std::to_string(i * 50), "d:" + std::to_string(i)});
    c.send(pipeline);
    for (int i = 0; i < 200; ++i)
        ASSERT_TRUE(c.frame().has_value());
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_EQ(field("sync_complete"), 1) << status();
    EXPECT_TRUE(converged());
}

TEST_F(proxy_sync, converges_while_clients_write_the_same_keys) {
    preload("k:", 20000);
    // Slow enough that the copy and the writes overlap for a while.
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 20000; });
    live_writers writers(*this, 3, 0, 16, [](std::mt19937& rng, client::request& r) {
        const auto k = "k:" + std::to_string(rng() % 20000);
        switch (rng() % 4) {
            case 0:
                r.push("SET", k, std::to_string(rng()));
                break;
            case 1:
                r.push("APPEND", k, "+");
                break;
            case 2:
                r.push("DEL", k);
                break;
            default:
                r.push("PEXPIRE", k, 600000);
                break;
        }
    });
    ASSERT_TRUE(eventually([&] { return writers.writes() > 500; }, 20s));
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done", 120s)) << status();
    writers.stop();
    EXPECT_GT(writers.writes(), 1000);
    EXPECT_TRUE(converged());
}

// Counters incremented by every client at once: their stripes are never idle and every
// increment races another client's, so they turn dirty again as soon as they are copied. The
// copy ends anyway: each key dirty when the scan ended is copied once (under a short fence
// on its writes), and what turned dirty after that is the follower's usual work.
TEST_F(proxy_sync, ends_while_every_client_keeps_writing_the_same_hot_keys) {
    preload("k:", 2000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });
    live_writers writers(*this, 4, 0, 16, [](std::mt19937& rng, client::request& r) {
        r.push("INCR", "hot:" + std::to_string(rng() % 2));
    });
    ASSERT_TRUE(eventually([&] { return writers.writes() > 2000; }, 20s));
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done", 30s)) << status() << proxy_->info();
    writers.stop();
    EXPECT_TRUE(converged());
}

// A job queue: workers always wait in BRPOP on it while a producer pushes. Their pops kept the
// key in flight for good, so it was never copied and PROXY SYNC never ended. A waiting pop no
// longer holds the key; one that pops while the key moved turns it dirty, and it is copied.
TEST_F(proxy_sync, ends_while_workers_wait_on_a_job_queue) {
    primary_.cli({"RPUSH", "jobs", "old1", "old2"});
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });
    std::atomic<bool> stop{false};
    std::atomic<long> taken{0};
    std::vector<std::jthread> workers;
    for (int w = 0; w < 3; ++w)
        workers.emplace_back([&] {
            raw_conn c(proxy_->port());
            while (!stop.load()) {
                const auto r = c.call({"BRPOP", "jobs", "1"});
                if (r.starts_with("*2"))
                    ++taken;
            }
        });
    live_writers producer(*this, 1, 3, 1, [](std::mt19937& rng, client::request& r) {
        r.push("LPUSH", "jobs", std::to_string(rng()));
        std::this_thread::sleep_for(2ms);
    });
    ASSERT_TRUE(eventually([&] { return taken.load() > 50; }, 20s));
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    EXPECT_TRUE(wait_state("done", 30s)) << status() << proxy_->info();
    producer.stop();
    ASSERT_TRUE(eventually([&] { return primary_.cli({"LLEN", "jobs"}) == "0"; }, 20s));
    EXPECT_TRUE(converged());
    stop = true;
    workers.clear();
    EXPECT_TRUE(converged());
}

// Writes to a dirty key stay in flight past --repair-fence-after (the primary holds them: DEBUG
// SLEEP): the follower fences the key; a client's next write to it waits in the proxy
// until the writes in flight ended and the copy was read, then runs.
TEST_F(proxy_sync, a_key_busy_too_long_is_copied_while_its_next_write_waits) {
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.repair_rate = 0;
        c.repair_fence_after = 100ms;
        c.repair_fence_max = 5s;
    });
    const std::string fenced = "respite_proxy_follower_fenced_copies_total{target=\"secondary\"}";
    const auto before = metric(fenced);
    const auto held_before = metric("respite_proxy_fence_held_writes_total");
    raw_conn sleeper(primary_.port());
    sleeper.command({"DEBUG", "SLEEP", "0.8"});  // the primary answers nothing meanwhile
    std::this_thread::sleep_for(50ms);
    raw_conn b(proxy_->port());
    raw_conn c(proxy_->port());
    b.command({"SET", "k", "1"});
    // A transaction goes on a connection of its own: two writes in flight on k from two
    // connections, their order unknown, so k is dirty.
    c.command({"MULTI"});
    c.command({"SET", "k", "2"});
    c.command({"EXEC"});
    std::this_thread::sleep_for(300ms);
    raw_conn d(proxy_->port());
    EXPECT_EQ(d.call({"SET", "k", "3"}), "+OK\r\n");
    EXPECT_EQ(b.frame(), "+OK\r\n");
    EXPECT_EQ(c.frame(), "+OK\r\n");
    EXPECT_EQ(c.frame(), "+QUEUED\r\n");
    EXPECT_EQ(c.frame(), "*1\r\n+OK\r\n");
    EXPECT_EQ(sleeper.frame(), "+OK\r\n");
    EXPECT_GT(metric(fenced), before);
    EXPECT_EQ(metric("respite_proxy_fence_held_writes_total") - held_before, 1);  // d's
    EXPECT_TRUE(converged());
    EXPECT_EQ(secondary_.cli({"GET", "k"}), "3");
}

TEST_F(proxy_sync, match_copies_only_the_matching_keys) {
    preload("a:", 200);
    preload("b:", 200);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "MATCH", "a:*"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_EQ(secondary_.cli({"DBSIZE"}), "200");
    EXPECT_EQ(secondary_.cli({"GET", "a:17"}), "v17");
    EXPECT_EQ(secondary_.cli({"EXISTS", "b:17"}), "0");
    // Only matching keys are scanned: no total to measure the progress against.
    EXPECT_NE(status().find("sync_keys_total:0\r\nsync_percent:\r\n"), std::string::npos)
        << status();
}

// The copy's pace is changed while it runs (PROXY REPAIR RATE): at 50 keys/s the 3000 keys
// would take a minute; unlimited, they are copied at once.
TEST_F(proxy_sync, the_repair_rate_changes_while_a_copy_runs) {
    preload("s:", 3000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 50; });
    EXPECT_NE(proxy_->info().find("follow_secondary_repair_rate:50\r\n"), std::string::npos);
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    EXPECT_TRUE(eventually([&] { return field("sync_repaired") > 0; })) << status();
    EXPECT_EQ(sync_call({"PROXY", "REPAIR", "RATE", "fast"}).substr(0, 30),
              "-ERR the rate must be a number");
    EXPECT_EQ(sync_call({"PROXY", "REPAIR", "RATE", "0"}), "+OK\r\n");
    EXPECT_NE(proxy_->info().find("follow_secondary_repair_rate:0\r\n"), std::string::npos);
    ASSERT_TRUE(wait_state("done", 20s)) << status();
    EXPECT_EQ(field("sync_complete"), 1) << status();
    EXPECT_TRUE(converged());
}

// A long copy tells how far it is and how long it still needs (at its pace so far).
TEST_F(proxy_sync, a_running_copy_reports_its_progress_and_time_left) {
    preload("s:", 4000);
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.repair_rate = 1000;  // about 4 s
        c.replay_max_dirty_keys = 400;
    });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT", "50"}), "+OK\r\n");
    std::string seen;
    EXPECT_TRUE(eventually([&] {
        seen = status();
        const auto at = seen.find("sync_eta_seconds:");
        return seen.find("sync_state:scanning") != std::string::npos && at != std::string::npos &&
               std::isdigit(static_cast<unsigned char>(seen[at + 17])) != 0 &&
               seen.find("sync_keys_total:4000\r\n") != std::string::npos &&
               seen.find("sync_percent:0.0\r\n") == std::string::npos;
    })) << seen;
    const auto eta = std::stol(seen.substr(seen.find("sync_eta_seconds:") + 17));
    EXPECT_LT(eta, 60) << seen;
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "STOP"}), "+OK\r\n");
}

TEST_F(proxy_sync, refuses_without_a_follower_and_checks_its_syntax) {
    start(mode::primary_only);
    EXPECT_NE(sync_call({"PROXY", "SYNC", "START"}).find("-ERR PROXY SYNC needs a follower"),
              std::string::npos);
    EXPECT_NE(http(proxy_->admin_port(), "POST", "/sync").find("409 PROXY SYNC needs a follower"),
              std::string::npos);
    ASSERT_TRUE(proxy_->set_mode(mode::dual_write, false).has_value());
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT", "0"}).substr(0, 4), "-ERR");
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT"}).substr(0, 4), "-ERR");
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "LIMIT", "3"}).substr(0, 4), "-ERR");
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "BOGUS"}).substr(0, 4), "-ERR");
    EXPECT_NE(http(proxy_->admin_port(), "POST", "/sync?count=x").find("400 "), std::string::npos);
    EXPECT_NE(status().find("sync_state:idle"), std::string::npos);
}

TEST_F(proxy_sync, stop_and_mode_changes_end_a_running_sync) {
    preload("k:", 5000);
    // 500 keys/s: the run lasts ~10 s, long enough to be stopped.
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 500; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT", "50"}), "+OK\r\n");
    EXPECT_NE(sync_call({"PROXY", "SYNC", "START"}).find("already running"), std::string::npos);
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "STOP"}), "+OK\r\n");
    EXPECT_TRUE(wait_state("stopped", 5s)) << status();

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "COUNT", "50"}), "+OK\r\n");
    ASSERT_TRUE(proxy_->set_mode(mode::primary_only, true).has_value());
    ASSERT_TRUE(wait_state("stopped", 10s)) << status();
    EXPECT_NE(status().find("the mode changed to primary-only"), std::string::npos) << status();
}

TEST_F(proxy_sync, verify_finds_nothing_on_equal_backends_and_each_difference_with_its_kind) {
    preload("s:", 500);
    primary_.cli({"HSET", "h", "a", "1", "b", "2"});
    primary_.cli({"RPUSH", "l", "x", "y"});
    primary_.cli({"ZADD", "z", "1.5", "a"});
    primary_.cli({"SADD", "set", "m"});
    primary_.cli({"XADD", "st", "1-1", "f", "v"});
    primary_.cli({"SET", "ttl", "v", "EX", "1000"});
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();

    const auto verify = [&] {
        EXPECT_EQ(sync_call({"PROXY", "VERIFY", "START", "COUNT", "100"}), "+OK\r\n");
        EXPECT_TRUE(eventually([&] {
            return sync_call({"PROXY", "VERIFY", "STATUS"}).find("verify_state:done") !=
                   std::string::npos;
        })) << sync_call({"PROXY", "VERIFY", "STATUS"});
        return sync_call({"PROXY", "VERIFY", "STATUS"});
    };
    auto v = verify();
    EXPECT_NE(v.find("verify_keys_scanned:506\r\n"), std::string::npos) << v;
    // Value + TTL of each key, and XINFO STREAM and XINFO GROUPS of the stream.
    EXPECT_NE(v.find("verify_compared:1014\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_matched:1014\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_extra_keys:0\r\n"), std::string::npos) << v;

    // Differences made behind the proxy's back, one of each kind.
    secondary_.cli({"SET", "s:5", "changed"});  // data_mismatch (GET)
    secondary_.cli({"HSET", "h", "a", "9"});    // data_mismatch (HGETALL)
    secondary_.cli({"DEL", "l"});               // migration_gap (LRANGE)
    secondary_.cli({"EXPIRE", "ttl", "10"});    // data_mismatch (PTTL)
    secondary_.cli({"SET", "only-here", "1"});  // extra_data
    v = verify();
    // Five compares differ: the missing list shows in its LRANGE and in its PTTL (-1 / -2).
    EXPECT_NE(v.find("verify_diverged:5\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_extra_keys:1\r\n"), std::string::npos) << v;
    const auto d = http(proxy_->admin_port(), "GET", "/divergences");
    EXPECT_NE(d.find("data_mismatch command=get key=s:5"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=hgetall key=h"), std::string::npos) << d;
    EXPECT_NE(d.find("migration_gap command=lrange key=l"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=pttl key=ttl"), std::string::npos) << d;
    EXPECT_NE(d.find("extra_data command=exists key=only-here"), std::string::npos) << d;
    EXPECT_NE(sync_call({"PROXY", "VERIFY", "START", "COUNT", "0"}).find("-ERR"),
              std::string::npos);
    EXPECT_NE(sync_call({"PROXY", "VERIFY", "NOPE"}).find("-ERR"), std::string::npos);
    // PRUNE is SYNC's: VERIFY took it and ignored it.
    EXPECT_EQ(sync_call({"PROXY", "VERIFY", "START", "PRUNE"}).substr(0, 37),
              "-ERR PRUNE is for PROXY SYNC; PROXY V");
}

TEST_F(proxy_sync, verify_under_live_writes_reports_no_divergence) {
    preload("k:", 5000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 0; });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    live_writers writers(*this, 2, 7, 16, [](std::mt19937& rng, client::request& r) {
        const auto k = "k:" + std::to_string(rng() % 5000);
        if (rng() % 3 == 0)
            r.push("DEL", k);
        else
            r.push("SET", k, std::to_string(rng()));
    });
    ASSERT_TRUE(eventually([&] { return writers.writes() > 500; }, 20s));
    EXPECT_EQ(sync_call({"PROXY", "VERIFY", "START"}), "+OK\r\n");
    EXPECT_TRUE(eventually(
        [&] {
            return sync_call({"PROXY", "VERIFY", "STATUS"}).find("verify_state:done") !=
                   std::string::npos;
        },
        60s));
    writers.stop();
    const auto v = sync_call({"PROXY", "VERIFY", "STATUS"});
    EXPECT_NE(v.find("verify_diverged:0\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_extra_keys:0\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
}

TEST_F(proxy_sync, verify_compares_big_keys_in_chunks_without_reading_them_whole) {
    big_keys(5000);
    primary_.cli({"SET", "small", "v"});
    secondary_.cli({"SET", "small", "v"});
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 100; });
    for (const redis_server* s : {&primary_, &secondary_})
        s->cli({"CONFIG", "RESETSTAT"});
    const double chunked_before = metric("respite_proxy_verify_chunked_keys_total");
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_keys_scanned:6\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_chunked_keys:5\r\n"), std::string::npos) << v;
    // Value + TTL of each key, and XINFO STREAM and XINFO GROUPS of the stream.
    EXPECT_NE(v.find("verify_compared:14\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_matched:14\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_diverged:0\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    EXPECT_EQ(recent_divergences().find("key=big:"), std::string::npos) << recent_divergences();
    EXPECT_NE(proxy_->info().find("verify_chunked_keys:5\r\n"), std::string::npos);
    EXPECT_EQ(metric("respite_proxy_verify_chunked_keys_total") - chunked_before, 5);
    // Never read whole, on either side: windows of 100 (5000 / 100 and one past the end).
    for (const redis_server* s : {&primary_, &secondary_}) {
        for (auto whole : {"hgetall", "smembers"})
            EXPECT_EQ(calls(*s, whole), 0) << whole;
        EXPECT_GE(calls(*s, "lrange"), 50);
        EXPECT_GE(calls(*s, "zrange"), 50);
        EXPECT_GE(calls(*s, "xrange"), 50);
    }
    EXPECT_GE(calls(primary_, "hscan"), 10);
    EXPECT_GE(calls(primary_, "sscan"), 10);
    EXPECT_GE(calls(secondary_, "hmget"), 10);
    EXPECT_GE(calls(secondary_, "smismember"), 10);
}

// Long strings are compared in GETRANGE windows, never read whole (64 keys of 1 MB took the
// proxy to 225 MB): a byte changed deep inside one and a shorter copy are each found.
TEST_F(proxy_sync, verify_compares_long_strings_in_windows_without_reading_them_whole) {
    const std::string big(300'000, 'x');
    for (const redis_server* server : {&primary_, &secondary_}) {
        client::client_config c;  // not redis-cli: an argument this long is over the exec limit
        c.connection.host = server->host();
        c.connection.port = server->port();
        client::sync_client cl(c);
        client::request r;
        for (auto key : {"str:same", "str:changed", "str:short"})
            r.push("SET", key, big);
        r.push("SET", "small", "v");
        if (server == &secondary_) {
            r.push("SETRANGE", "str:changed", "250000", "y");
            r.push("SET", "str:short", big.substr(0, 299'999));
        }
        ASSERT_TRUE(cl.exec(std::move(r)).has_value());
    }
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_bytes = 64 << 10; });
    for (const redis_server* s : {&primary_, &secondary_})
        s->cli({"CONFIG", "RESETSTAT"});
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_keys_scanned:4\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_chunked_keys:3\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_diverged:2\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    const auto d = recent_divergences();
    EXPECT_NE(d.find("data_mismatch command=getrange key=str:changed"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=strlen key=str:short"), std::string::npos) << d;
    EXPECT_EQ(d.find("key=str:same"), std::string::npos) << d;
    // Only the small key is read whole; str:same in 5 windows on each side.
    for (const redis_server* s : {&primary_, &secondary_}) {
        EXPECT_EQ(calls(*s, "get"), 1);
        EXPECT_GE(calls(*s, "getrange"), 5);
    }
}

TEST_F(proxy_sync, verify_reports_an_element_changed_deep_inside_each_big_key) {
    big_keys(5000);
    std::vector<std::string> gone{"RPUSH", "big:gone"};
    for (int i = 0; i < 150; ++i)
        gone.push_back(std::to_string(i));
    primary_.cli(gone);  // on the serving side only
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 100; });
    // One element of each, on the secondary only.
    secondary_.cli({"LSET", "big:list", "4000", "changed"});
    secondary_.cli({"HSET", "big:hash", "f4321", "changed"});
    secondary_.cli({"ZADD", "big:zset", "4500.5", "m4500"});  // same rank, another score
    secondary_.cli({"SREM", "big:set", "m3333"});             // swapped: same SCARD
    secondary_.cli({"SADD", "big:set", "intruder"});
    secondary_.cli({"XDEL", "big:stream", "3001-1"});  // one entry missing, one more at the end
    secondary_.cli({"XADD", "big:stream", "9999-1", "f", "v"});
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_chunked_keys:6\r\n"), std::string::npos) << v;
    // The six values, and big:gone's PTTL (-1 / -2).
    EXPECT_NE(v.find("verify_diverged:7\r\n"), std::string::npos) << v;
    const auto d = recent_divergences();
    EXPECT_NE(d.find("data_mismatch command=lrange key=big:list"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=hmget key=big:hash"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=zrange key=big:zset"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=smismember key=big:set"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=xrange key=big:stream"), std::string::npos) << d;
    EXPECT_NE(d.find("migration_gap command=llen key=big:gone"), std::string::npos) << d;
}

TEST_F(proxy_sync, verify_reports_a_big_key_that_only_differs_in_length) {
    big_keys(5000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 100; });
    // Every element of the serving side is there: only the sizes tell.
    secondary_.cli({"RPUSH", "big:list", "extra"});
    secondary_.cli({"HSET", "big:hash", "extra", "1"});
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_chunked_keys:5\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_diverged:2\r\n"), std::string::npos) << v;
    const auto d = recent_divergences();
    EXPECT_NE(d.find("data_mismatch command=llen key=big:list"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=hlen key=big:hash"), std::string::npos) << d;
}

TEST_F(proxy_sync, verify_of_big_keys_under_live_writes_reports_only_the_real_difference) {
    big_keys(3000);
    // A big key nobody writes, with one real difference: the run must still find it.
    for (const redis_server* s : {&primary_, &secondary_})
        for (int base = 0; base < 3000; base += 500) {
            std::vector<std::string> args{"RPUSH", "big:static"};
            for (int i = base; i < base + 500; ++i)
                args.push_back("s" + std::to_string(i));
            s->cli(args);
        }
    secondary_.cli({"LSET", "big:static", "2500", "changed"});
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 100; });
    live_writers writers(*this, 2, 11, 8, [](std::mt19937& rng, client::request& r) {
        const auto n = std::to_string(rng() % 3000);
        switch (rng() % 7) {
            case 0:
                r.push("LPUSH", "big:list", "new" + n);  // shifts every window
                break;
            case 1:
                r.push("LSET", "big:list", n, "set" + n);
                break;
            case 2:
                r.push("HSET", "big:hash", "f" + n, std::to_string(rng()));
                break;
            case 3:
                r.push("ZADD", "big:zset", rng() % 100000, "m" + n);
                break;
            case 4:
                r.push("SREM", "big:set", "m" + n);
                r.push("SADD", "big:set", "n" + n);
                break;
            case 5:
                r.push("XADD", "big:stream", "*", "f", n);
                break;
            default:
                r.push("RPOP", "big:list");
                break;
        }
    });
    ASSERT_TRUE(eventually([&] { return writers.writes() > 200; }, 20s));
    std::string v;
    for (int run = 0; run < 3; ++run) {
        v = verify_run(120s);
        EXPECT_NE(v.find("verify_chunked_keys:6\r\n"), std::string::npos) << v;
        EXPECT_NE(v.find("verify_diverged:1\r\n"), std::string::npos) << v;
        EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    }
    const long during = writers.writes();
    writers.stop();
    EXPECT_GT(during, 500);
    // The only divergence reported is the real one.
    const auto d = recent_divergences();
    EXPECT_NE(d.find("data_mismatch command=lrange key=big:static"), std::string::npos) << d;
    for (auto key :
         {"key=big:list", "key=big:hash", "key=big:zset", "key=big:set", "key=big:stream"})
        EXPECT_EQ(d.find(key), std::string::npos) << key << "\n" << d;
}

TEST_F(proxy_sync, verify_compares_the_consumer_groups_of_streams_written_through_the_proxy) {
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 5; });
    streams_with_groups();
    const double groups_before = metric("respite_proxy_verify_groups_compared_total");
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_keys_scanned:5\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_chunked_keys:2\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_groups_compared:9\r\n"), std::string::npos) << v;
    // Value + TTL of 5 keys, XINFO STREAM and XINFO GROUPS of 5 streams, XPENDING of 9 groups.
    EXPECT_NE(v.find("verify_compared:29\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_matched:29\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_diverged:0\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    EXPECT_EQ(recent_divergences().find("key=s:"), std::string::npos) << recent_divergences();
    EXPECT_NE(proxy_->info().find("verify_groups_compared:9\r\n"), std::string::npos);
    EXPECT_EQ(metric("respite_proxy_verify_groups_compared_total") - groups_before, 9);
    // Both sides were asked, once per group.
    for (const redis_server* s : {&primary_, &secondary_})
        EXPECT_GE(calls(*s, "xpending"), 9);
    // The same run sees one consumer more on the secondary: the compare is not blind.
    secondary_.cli({"XGROUP", "CREATECONSUMER", "s:2", "g2", "carol"});
    const auto again = verify_run();
    EXPECT_NE(again.find("verify_diverged:1\r\n"), std::string::npos) << again;
    EXPECT_NE(recent_divergences().find("data_mismatch command=xinfo key=s:2"), std::string::npos)
        << recent_divergences();
}

TEST_F(proxy_sync, verify_reports_a_consumer_group_lost_acknowledged_or_moved_on_the_secondary) {
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 5; });
    streams_with_groups();
    // On the secondary only, behind the proxy's back.
    secondary_.cli({"XGROUP", "DESTROY", "s:0", "g2"});                // chunked: migration_gap
    secondary_.cli({"XACK", "s:1", "g1", "2-1"});                      // pending 1 instead of 2
    secondary_.cli({"XGROUP", "SETID", "s:2", "g1", "0"});             // last-delivered-id
    secondary_.cli({"XCLAIM", "s:3", "g1", "bob", "0", "2-1"});        // alice's entry to bob
    secondary_.cli({"XGROUP", "CREATE", "s:empty", "intruder", "0"});  // only on the secondary
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_diverged:5\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    const auto d = recent_divergences();
    EXPECT_NE(d.find("migration_gap command=xinfo key=s:0"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=xinfo key=s:1"), std::string::npos) << d;
    EXPECT_NE(d.find("data_mismatch command=xinfo key=s:2"), std::string::npos) << d;
    // Same counts in XINFO GROUPS: only the XPENDING summary's per-consumer counts differ.
    EXPECT_NE(d.find("data_mismatch command=xpending key=s:3"), std::string::npos) << d;
    EXPECT_NE(d.find("extra_data command=xinfo key=s:empty"), std::string::npos) << d;
    // The entries themselves agree.
    EXPECT_EQ(d.find("command=xrange"), std::string::npos) << d;
}

TEST_F(proxy_sync, verify_reports_a_stream_whose_ids_or_counters_differ_on_the_secondary) {
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 5; });
    streams_with_groups();
    const auto clean = verify_run();
    EXPECT_NE(clean.find("verify_diverged:0\r\n"), std::string::npos) << clean;
    // Same entries, groups and pending lists; only the stream's own state moved.
    secondary_.cli({"XSETID", "s:0", "99-0"});                       // chunked: last-generated-id
    secondary_.cli({"XSETID", "s:2", "3-1", "ENTRIESADDED", "50"});  // entries-added
    secondary_.cli({"XSETID", "s:empty", "8-0", "MAXDELETEDID", "7-7"});
    const auto v = verify_run();
    EXPECT_NE(v.find("verify_diverged:3\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    const auto d = recent_divergences();
    for (auto key : {"key=s:0", "key=s:2", "key=s:empty"})
        EXPECT_NE(d.find(std::string("data_mismatch command=xinfo ") + key), std::string::npos)
            << key << "\n"
            << d;
    EXPECT_EQ(d.find("command=xrange"), std::string::npos) << d;
    EXPECT_EQ(d.find("key=s:1"), std::string::npos) << d;
    EXPECT_EQ(d.find("key=s:3"), std::string::npos) << d;
}

TEST_F(proxy_sync, verify_under_live_consumer_group_traffic_reports_only_the_real_difference) {
    start(mode::dual_write, [](proxy::proxy_config& c) { c.verify_chunk_elements = 5; });
    streams_with_groups();
    // A stream nobody touches, with one real difference.
    {
        client::sync_client c(client_config(2));
        client::request r;
        r.push("XADD", "quiet", "1-1", "f", "v");
        r.push("XGROUP", "CREATE", "quiet", "g", "0");
        r.push("XGROUP", "CREATE", "quiet", "lost", "0");
        ASSERT_TRUE(c.exec(std::move(r)).has_value());
        ASSERT_TRUE(eventually([&] {
            return secondary_.cli({"XINFO", "GROUPS", "quiet"}).find("lost") != std::string::npos;
        }));
    }
    secondary_.cli({"XGROUP", "DESTROY", "quiet", "lost"});
    std::atomic<bool> stop{false};
    std::atomic<long> acks{0};
    std::vector<std::jthread> consumers;
    for (int t = 0; t < 2; ++t) {
        consumers.emplace_back([&, t] {
            client::sync_client c(client_config(2));
            std::mt19937 rng(static_cast<unsigned>(t) + 5);
            const std::string name = "c" + std::to_string(t);
            while (!stop.load()) {
                const auto key = "s:" + std::to_string(rng() % 4);
                client::request r;
                r.push("XADD", key, "*", "f", std::to_string(rng()));
                r.push("XREADGROUP", "GROUP", "g1", name, "COUNT", "2", "STREAMS", key, ">");
                auto res = c.exec(std::move(r));
                // RESP2: [[key, [[id, [field, value]], ...]]]
                if (!res || res->size() != 2 || !(*res)[1].is_aggregate() || (*res)[1].size() == 0)
                    continue;
                const auto& entries = (*res)[1][0][1];
                if (entries.size() == 0 || rng() % 3 == 0)
                    continue;  // some stay pending
                client::request ack;
                ack.push("XACK", key, "g1", entries[0][0].str());
                if (c.exec(std::move(ack)).has_value())
                    ++acks;
            }
        });
    }
    ASSERT_TRUE(eventually([&] { return acks.load() > 50; }, 20s));
    std::string v;
    for (int run = 0; run < 3; ++run) {
        v = verify_run(120s);
        EXPECT_NE(v.find("verify_diverged:1\r\n"), std::string::npos) << v;
        EXPECT_NE(v.find("verify_errors:0\r\n"), std::string::npos) << v;
    }
    const long during = acks.load();
    stop = true;
    consumers.clear();
    EXPECT_GT(during, 100);
    const auto d = recent_divergences();
    EXPECT_NE(d.find("migration_gap command=xinfo key=quiet"), std::string::npos) << d;
    EXPECT_EQ(d.find("key=s:"), std::string::npos) << d;
    // Once the traffic stopped, every group is compared (none skipped as unstable).
    v = verify_run();
    EXPECT_NE(v.find("verify_groups_compared:11\r\n"), std::string::npos) << v;
    EXPECT_NE(v.find("verify_unstable:0\r\n"), std::string::npos) << v;
}

// The secondary restarts and comes back without the writes made after its AOF stopped: the proxy
// sees the new run_id, flags the secondary and (with resync_on_restart) copies everything again.
class proxy_restart : public proxy_sync {
  protected:
    void write_keys(std::string_view prefix, int n) {
        client::sync_client c(client_config(2));
        client::request r;
        for (int i = 0; i < n; ++i)
            r.push("SET", std::string(prefix) + std::to_string(i), std::to_string(i));
        ASSERT_TRUE(c.exec(std::move(r)).has_value());
    }
    // Writes a: (persisted by the secondary), then b: (not persisted), then restarts it.
    void lose_recent_writes_on_the_secondary() {
        write_keys("a:", 300);
        ASSERT_TRUE(converged());
        ASSERT_EQ(secondary_.cli({"CONFIG", "SET", "appendonly", "no"}), "OK");
        write_keys("b:", 300);
        ASSERT_TRUE(converged());
        secondary_.kill();
        secondary_.start();  // its config still says appendonly yes: it loads only the a: keys
        ASSERT_TRUE(eventually(
            [&] { return proxy_->info().find("secondary_restarts:1\r\n") != std::string::npos; },
            20s))
            << proxy_->info();
    }
};

TEST_F(proxy_restart, a_follower_that_lost_writes_is_copied_again_at_once) {
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.restart_check_interval = 100ms;
        c.resync_on_restart = true;
        c.repair_rate = 0;
    });
    lose_recent_writes_on_the_secondary();
    EXPECT_TRUE(converged());
    EXPECT_TRUE(eventually(
        [&] { return proxy_->info().find("secondary_needs_sync:0\r\n") != std::string::npos; },
        20s))
        << proxy_->info();
}

// The runbook's rollback to primary-only and back: the writes of that period never reached the
// secondary, so the cut-over waits for a complete PROXY SYNC, as after a restart. It went
// through and the secondary served a=1, b=nil after the client wrote a=2, b=1.
TEST_F(proxy_sync, a_period_without_the_follower_needs_a_sync_before_the_cut_over) {
    start(mode::dual_write_shadow);
    raw_conn c(proxy_->port());
    ASSERT_EQ(c.call({"SET", "a", "1"}), "+OK\r\n");
    ASSERT_TRUE(proxy_->set_mode(mode::primary_only, false).has_value());
    ASSERT_EQ(c.call({"SET", "a", "2"}), "+OK\r\n");
    ASSERT_EQ(c.call({"SET", "b", "1"}), "+OK\r\n");
    ASSERT_TRUE(proxy_->set_mode(mode::dual_write_shadow, false).has_value());
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("may lack writes"), std::string::npos) << r.error();

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
    ASSERT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
    EXPECT_EQ(c.call({"GET", "a"}), "$1\r\n2\r\n");
    EXPECT_EQ(c.call({"GET", "b"}), "$1\r\n1\r\n");
}

TEST_F(proxy_restart, the_cut_over_waits_for_a_sync_after_a_restart) {
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.restart_check_interval = 100ms;
        c.repair_rate = 0;
    });
    lose_recent_writes_on_the_secondary();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("restarted"), std::string::npos) << r.error();
    EXPECT_EQ(secondary_.cli({"EXISTS", "b:1"}), "0");  // lost, and nothing copied it back

    // A partial sync (MATCH) does not clear the flag: b: keys would still be missing.
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "MATCH", "a:*"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_NE(status().find("sync_complete:0\r\n"), std::string::npos) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    EXPECT_FALSE(proxy_->set_mode(mode::secondary_primary, false).has_value());

    // Nor does one without PRUNE: a DEL lost with the restart leaves a key only it has.
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_NE(status().find("sync_complete:0\r\n"), std::string::npos) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_NE(status().find("sync_complete:1\r\n"), std::string::npos) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

// A proxy started straight in a following mode (the default dual-write) over a primary that
// already holds keys: the secondary lacks them until a sync, so the cut-over waits for one. It
// went through and served an empty secondary; only a switch at run time set the flag.
TEST_F(proxy_restart, a_follower_started_over_existing_keys_needs_a_sync_before_the_cut_over) {
    preload("k:", 50);
    start(mode::dual_write);
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("followed only from when keys already existed"), std::string::npos)
        << r.error();
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

// Over an empty primary nothing can be missing: no sync is asked for.
TEST_F(proxy_restart, a_follower_started_over_an_empty_primary_needs_no_sync) {
    start(mode::dual_write_shadow);
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "a", "1"}), "+OK\r\n");
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
    EXPECT_EQ(c.call({"GET", "a"}), "$1\r\n1\r\n");
}

// Writes replayed during the run that fail on the secondary (a RENAME of a key not copied yet:
// "no such key") do not keep the run from being complete: their keys turn dirty and are copied,
// which the cut-over waits for. Any such failure left sync_complete:0 and the cut-over refused,
// so under live traffic the needs-sync flag practically never cleared.
TEST_F(proxy_restart, writes_failing_on_the_follower_during_a_sync_leave_it_complete) {
    preload("k:", 3000);
    start(mode::dual_write, [](proxy::proxy_config& c) { c.repair_rate = 1000; });
    ASSERT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    raw_conn c(proxy_->port());
    for (int i = 0; i < 200; ++i)
        ASSERT_EQ(c.call({"RENAME", "k:" + std::to_string(i), "r:" + std::to_string(i)}),
                  "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_GT(std::stoull(info_field("follow_secondary_failed")), 0u)
        << "no replayed write failed: the test tests nothing";
    EXPECT_NE(status().find("sync_complete:1\r\n"), std::string::npos) << status();
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

TEST_F(proxy_restart, a_pruning_sync_repairs_a_lost_flush_and_clears_the_full_resync) {
    preload("k:", 200);
    secondary_.cli({"SET", "only-here", "1"});  // stale data the primary never had
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.restart_check_interval = std::chrono::hours(1);
        c.repair_rate = 0;
    });
    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    // A keyspace-wide write the follower never gets: FLUSHDB while the secondary is down.
    secondary_.stop();
    EXPECT_EQ(sync_call({"FLUSHDB"}), "+OK\r\n");
    ASSERT_TRUE(eventually([&] {
        return proxy_->info().find("follow_secondary_full_resync_needed:1\r\n") !=
               std::string::npos;
    })) << proxy_->info();
    secondary_.start();  // with its AOF: the old keys are back
    write_keys("n:", 50);
    EXPECT_NE(secondary_.cli({"EXISTS", "k:1"}), "0");
    // Refused: the restart (seen by the switch itself) and the lost FLUSHDB.
    EXPECT_FALSE(proxy_->set_mode(mode::secondary_primary, false).has_value());

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    const auto s = status();
    EXPECT_NE(s.find("sync_complete:1\r\n"), std::string::npos) << s;
    EXPECT_GE(field("sync_pruned"), 201) << s;  // the flushed k: keys and only-here
    EXPECT_EQ(secondary_.cli({"EXISTS", "only-here"}), "0");
    EXPECT_NE(proxy_->info().find("follow_secondary_full_resync_needed:0\r\n"), std::string::npos)
        << proxy_->info();
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

TEST_F(proxy_restart, a_restart_not_seen_yet_is_checked_at_the_cut_over_and_force_clears_it) {
    // The periodic check is too slow to see it: the switch asks the secondary itself.
    start(mode::dual_write, [](proxy::proxy_config& c) {
        c.restart_check_interval = std::chrono::hours(1);
        c.repair_rate = 0;
    });
    write_keys("a:", 100);
    // The check at start has read the secondary's run_id.
    ASSERT_TRUE(eventually(
        [&] { return proxy_->info().find("secondary_run_id:\r\n") == std::string::npos; }));
    ASSERT_TRUE(converged());
    secondary_.kill();
    secondary_.start();
    // The follower's connections notice the restart on their next write; the switch waits for
    // the follower, so give it what it needs to be caught up.
    write_keys("b:", 10);
    ASSERT_TRUE(converged());
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value()) << proxy_->info();
    EXPECT_NE(r.error().find("restarted"), std::string::npos) << r.error();
    EXPECT_NE(proxy_->info().find("secondary_restarts:1\r\n"), std::string::npos);
    // FORCE goes past it, and the operator's word clears the flag.
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, true).has_value());
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:0\r\n"), std::string::npos);
}

// --state-file: the mode and pending syncs survive a restart of the proxy.
class proxy_state : public proxy_sync {
  protected:
    void SetUp() override {
        path_ = ::testing::TempDir() + "respite-proxy-state-" + std::to_string(::getpid());
        std::remove(path_.c_str());
    }
    void TearDown() override {
        proxy_sync::TearDown();
        for (const auto& f : {path_, dirty_path(), dirty_path() + ".rejected"})
            std::remove(f.c_str());
    }
    std::string dirty_path() const { return path_ + ".dirty"; }
    bool info_has(std::string_view line) const {
        return proxy_->info().find(std::string(line) + "\r\n") != std::string::npos;
    }
    void start_with_state(mode m) {
        start(m, [&](proxy::proxy_config& c) {
            c.state_file = path_;
            c.repair_rate = 0;
        });
    }
    std::string file_text() const {
        std::ifstream in(path_);
        std::stringstream ss;
        ss << in.rdbuf();
        return ss.str();
    }
    std::string path_;
};

TEST_F(proxy_state, a_restarted_proxy_keeps_the_mode_switched_at_run_time) {
    start_with_state(mode::dual_write);
    EXPECT_NE(file_text().find("mode=dual-write\nclean_shutdown=0\n"), std::string::npos);
    ASSERT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
    EXPECT_NE(file_text().find("mode=secondary-primary\n"), std::string::npos);
    proxy_->stop();
    EXPECT_NE(file_text().find("clean_shutdown=1\n"), std::string::npos) << file_text();
    proxy_.reset();
    // Started again with the command line's dual-write: the cut-over is not undone.
    start_with_state(mode::dual_write);
    EXPECT_EQ(sync_call({"PROXY", "MODE", "GET"}), "$17\r\nsecondary-primary\r\n");
    EXPECT_NE(proxy_->info().find("primary_needs_sync:0\r\n"), std::string::npos);
    client::sync_client c(client_config());
    ASSERT_TRUE(c.command("SET", "after-restart", "1").has_value());
    EXPECT_EQ(secondary_.cli({"GET", "after-restart"}), "1");  // the secondary serves
}

TEST_F(proxy_state, an_unclean_stop_while_following_needs_a_sync_before_the_cut_over) {
    std::ofstream(path_) << "mode=dual-write\nclean_shutdown=0\n";
    preload("k:", 100);  // on the primary only, like writes a crashed proxy never followed
    start_with_state(mode::primary_only);
    EXPECT_EQ(sync_call({"PROXY", "MODE", "GET"}), "$10\r\ndual-write\r\n");
    EXPECT_NE(proxy_->info().find("secondary_needs_sync:1\r\n"), std::string::npos);
    EXPECT_NE(file_text().find("secondary_needs_sync=1"), std::string::npos) << file_text();
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("PROXY SYNC"), std::string::npos) << r.error();

    EXPECT_EQ(sync_call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    ASSERT_TRUE(wait_state("done")) << status();
    EXPECT_TRUE(eventually([&] {
        return file_text().find("secondary_needs_sync=0") != std::string::npos;
    })) << file_text();
    EXPECT_TRUE(converged());
    EXPECT_TRUE(proxy_->set_mode(mode::secondary_primary, false).has_value());
}

// A planned restart of the proxy while the secondary misses a few keys: their names go to the
// dirty list at the stop and to the next run's repair, instead of a full PROXY SYNC.
TEST_F(proxy_state, a_clean_restart_carries_the_dirty_keys_over) {
    start_with_state(mode::dual_write);
    secondary_.stop();
    const std::vector<std::string> keys = {"d:1", "d:2", "d:3", "bin\r\nkey", "d:5"};
    {
        client::sync_client c(client_config());
        for (const auto& k : keys)
            ASSERT_TRUE(c.command("SET", k, "v-" + k).has_value());
    }
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_dirty_keys:5"); }))
        << proxy_->info();
    proxy_->stop();
    EXPECT_TRUE(info_has("state_dirty_keys_saved:5")) << proxy_->info();
    EXPECT_NE(file_text().find("secondary_needs_sync=0\n"), std::string::npos) << file_text();
    EXPECT_NE(file_text().find("secondary_dirty_keys_saved=5\n"), std::string::npos) << file_text();
    EXPECT_TRUE(std::filesystem::exists(dirty_path()));
    proxy_.reset();

    secondary_.start();
    start_with_state(mode::dual_write);
    EXPECT_TRUE(info_has("state_dirty_keys_restored:5")) << proxy_->info();
    EXPECT_TRUE(info_has("state_dirty_list_rejected:0")) << proxy_->info();
    EXPECT_TRUE(converged());
    for (const auto& k : keys) {
        if (k.find('\r') == std::string::npos) {  // the digests above compare that one
            EXPECT_EQ(secondary_.cli({"GET", k}), "v-" + k) << k;
        }
    }
    EXPECT_FALSE(std::filesystem::exists(dirty_path()));
    EXPECT_NE(file_text().find("secondary_dirty_keys_saved=0\n"), std::string::npos) << file_text();
    EXPECT_TRUE(info_has("secondary_needs_sync:0")) << proxy_->info();
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    EXPECT_TRUE(r.has_value()) << r.error();
}

// A key the secondary refused to take (OOM) is missing there: a clean stop saves it in the dirty
// list like a dirty key, the next run tries it again, and the cut-over waits for its copy.
TEST_F(proxy_state, a_clean_restart_carries_a_refused_key_over) {
    const auto start_here = [&] {
        start(mode::dual_write, [&](proxy::proxy_config& c) {
            c.state_file = path_;
            c.repair_rate = 0;
            c.replay_rejected_retry = std::chrono::milliseconds(500);
        });
    };
    start_here();
    leave_secondary_no_room();
    {
        client::sync_client c(client_config());
        ASSERT_TRUE(c.command("SET", "big", incompressible(2 << 20)).has_value());
    }
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_rejected_keys:1"); }))
        << proxy_->info();
    proxy_->stop();
    EXPECT_TRUE(info_has("state_dirty_keys_saved:1")) << proxy_->info();
    EXPECT_NE(file_text().find("secondary_dirty_keys_saved=1\n"), std::string::npos) << file_text();
    proxy_.reset();

    start_here();
    EXPECT_TRUE(info_has("state_dirty_keys_restored:1")) << proxy_->info();
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_rejected_keys:1"); }))
        << proxy_->info();
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("refused the copy of 1 keys"), std::string::npos) << r.error();
    secondary_.cli({"CONFIG", "SET", "maxmemory", "0"});
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_rejected_keys:0"); }))
        << proxy_->info();
    EXPECT_TRUE(converged());
    r = proxy_->set_mode(mode::secondary_primary, false);
    EXPECT_TRUE(r.has_value()) << r.error();
}

// The same with writes still queued for a secondary that is up but does not apply them (paused):
// the stop cannot drain them in time, so their keys go to the list, and the next run repairs them.
TEST_F(proxy_state, a_clean_restart_carries_the_keys_of_queued_writes_over) {
    start(mode::dual_write, [&](proxy::proxy_config& c) {
        c.state_file = path_;
        c.repair_rate = 0;
        c.shutdown_timeout = 300ms;
    });
    secondary_.cli({"CLIENT", "PAUSE", "10000", "WRITE"});
    const auto paused_at = std::chrono::steady_clock::now();
    {
        client::sync_client c(client_config());
        client::request r;
        for (int i = 0; i < 20; ++i)
            r.push("SET", "q:" + std::to_string(i), "v" + std::to_string(i));
        ASSERT_TRUE(c.exec(std::move(r)).has_value());
    }
    ASSERT_TRUE(eventually([&] { return info_has("follow_secondary_queued_items:20"); }))
        << proxy_->info();
    EXPECT_TRUE(info_has("follow_secondary_dirty_keys:0")) << proxy_->info();
    proxy_->stop();
    ASSERT_LT(std::chrono::steady_clock::now() - paused_at, 9500ms) << "the pause ended too soon";
    EXPECT_TRUE(info_has("state_dirty_keys_saved:20")) << proxy_->info();
    EXPECT_NE(file_text().find("secondary_needs_sync=0\n"), std::string::npos) << file_text();
    proxy_.reset();

    secondary_.cli({"CLIENT", "UNPAUSE"});
    start_with_state(mode::dual_write);
    EXPECT_TRUE(info_has("state_dirty_keys_restored:20")) << proxy_->info();
    EXPECT_TRUE(converged());
    EXPECT_EQ(secondary_.cli({"GET", "q:7"}), "v7");
    EXPECT_TRUE(info_has("secondary_needs_sync:0")) << proxy_->info();
}

// A write the primary had not answered when the stop's deadline passed may still have run
// there: its key is saved in the dirty list (the proxy's failure of the write marks it dirty at
// the stop), unless the reply came in time and the follower applied it. Either way the next run
// converges. A write still counted in flight after the workers stopped would flag the follower.
TEST_F(proxy_state, a_write_unanswered_at_the_stop_is_not_lost) {
    const auto start_here = [&] {
        start(mode::dual_write, [&](proxy::proxy_config& c) {
            c.state_file = path_;
            c.shutdown_timeout = 300ms;
        });
    };
    start_here();
    primary_.cli({"CLIENT", "PAUSE", "2000", "WRITE"});
    raw_conn c(proxy_->port());
    c.command({"SET", "late", "v"});
    ASSERT_TRUE(eventually([&] { return info_has("writes_in_flight:1"); })) << proxy_->info();
    proxy_->stop();
    EXPECT_TRUE(info_has("state_dirty_keys_saved:1") || info_has("follow_secondary_applied:1"))
        << proxy_->info();
    EXPECT_NE(file_text().find("secondary_needs_sync=0"), std::string::npos) << file_text();
    proxy_.reset();
    primary_.cli({"CLIENT", "UNPAUSE"});
    start_here();
    EXPECT_TRUE(converged());
}

// A damaged list cannot be trusted to name every missing key: the secondary needs a full sync,
// and the proxy says so and serves.
TEST_F(proxy_state, a_damaged_dirty_list_flags_the_follower_and_the_proxy_serves) {
    std::ofstream(path_) << "mode=dual-write\nclean_shutdown=1\nsecondary_dirty_keys_saved=2\n";
    std::ofstream(dirty_path()) << "respite-proxy dirty keys v1\nside=secondary\ncount=2\n3:abc\n";
    start_with_state(mode::dual_write);
    EXPECT_TRUE(info_has("state_dirty_list_rejected:1")) << proxy_->info();
    EXPECT_TRUE(info_has("state_dirty_keys_restored:0")) << proxy_->info();
    EXPECT_TRUE(info_has("secondary_needs_sync:1")) << proxy_->info();
    EXPECT_NE(file_text().find("secondary_needs_sync=1"), std::string::npos) << file_text();
    EXPECT_FALSE(std::filesystem::exists(dirty_path()));
    EXPECT_TRUE(std::filesystem::exists(dirty_path() + ".rejected"));  // kept for a look
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("PROXY SYNC"), std::string::npos) << r.error();
    client::sync_client c(client_config());
    ASSERT_TRUE(c.command("SET", "served", "1").has_value());
    EXPECT_EQ(primary_.cli({"GET", "served"}), "1");
}

// A list the state file does not vouch for (here: the last stop was a crash) is never applied.
TEST_F(proxy_state, a_stale_dirty_list_after_an_unclean_stop_is_ignored) {
    std::ofstream(path_) << "mode=dual-write\nclean_shutdown=0\n";
    std::ofstream(dirty_path()) << "respite-proxy dirty keys v1\nside=secondary\ncount=0\n";
    start_with_state(mode::dual_write);
    EXPECT_TRUE(info_has("state_dirty_keys_restored:0")) << proxy_->info();
    EXPECT_TRUE(info_has("secondary_needs_sync:1")) << proxy_->info();  // the crash, as before
    EXPECT_FALSE(std::filesystem::exists(dirty_path()));
}

TEST_F(proxy_state, a_switch_that_cannot_be_written_down_is_refused) {
    const auto dir = ::testing::TempDir() + "respite-state-dir-" + std::to_string(::getpid());
    std::filesystem::create_directories(dir);
    path_ = dir + "/proxy.state";
    start_with_state(mode::dual_write);
    std::filesystem::remove_all(dir);  // the next write fails
    auto r = proxy_->set_mode(mode::secondary_primary, false);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("cannot write the state file"), std::string::npos) << r.error();
    EXPECT_EQ(sync_call({"PROXY", "MODE", "GET"}), "$10\r\ndual-write\r\n");
    // Writes go on where they went.
    client::sync_client c(client_config());
    ASSERT_TRUE(c.command("SET", "still", "primary").has_value());
    EXPECT_EQ(primary_.cli({"GET", "still"}), "primary");
    std::filesystem::create_directories(dir);
}

TEST_F(proxy_state, a_damaged_state_file_is_a_clear_start_error) {
    std::ofstream(path_) << "mode=dual-write\nclean_shutdown=maybe\n";
    auto cfg = config(mode::dual_write);
    cfg.state_file = path_;
    proxy::proxy_server p(cfg);
    auto r = p.start();
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("--state-file " + path_ + ": line 2: clean_shutdown must be 0 or 1"),
              std::string::npos)
        << r.error();
}

// A start that fails after its threads began (here: the admin port is taken) is an error
// return, not std::terminate on a joinable thread; the state file is left as it was.
// A second proxy on the port of a running one (a double start, an old one still draining) is
// refused: with SO_REUSEPORT the kernel split the clients between the two and their backends.
TEST_F(proxy_state, a_listen_port_taken_by_a_running_proxy_is_a_clear_start_error) {
    start(mode::primary_only);
    auto cfg = config(mode::primary_only);
    cfg.listen_port = proxy_->port();
    proxy::proxy_server second(cfg);
    auto r = second.start();
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("cannot listen on 127.0.0.1:" + std::to_string(proxy_->port())),
              std::string::npos)
        << r.error();
    EXPECT_NE(r.error().find("in use"), std::string::npos) << r.error();
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"PING"}), "+PONG\r\n");
    // Once it stopped, the port is free again at once (TIME_WAIT does not count).
    proxy_->stop();
    proxy_.reset();
    proxy::proxy_server third(cfg);
    auto r3 = third.start();
    EXPECT_TRUE(r3.has_value()) << r3.error();
    third.stop();
}

TEST_F(proxy_state, a_taken_admin_port_is_a_clear_start_error) {
    asio::io_context ioc;
    asio::ip::tcp::acceptor taken(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = taken.local_endpoint().port();
    std::ofstream(path_) << "mode=dual-write\nclean_shutdown=0\n";
    auto cfg = config(mode::dual_write);
    cfg.state_file = path_;
    cfg.admin_host = "127.0.0.1";
    cfg.admin_port = port;
    {
        proxy::proxy_server p(cfg);
        auto r = p.start();
        ASSERT_FALSE(r.has_value());
        EXPECT_NE(r.error().find("cannot listen on admin address"), std::string::npos) << r.error();
    }
    std::ifstream in(path_);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("clean_shutdown=0"), std::string::npos) << text;
}

}  // namespace
}  // namespace respite::test
