// The cluster client used from several threads at once while the topology changes (run under
// TSan by scripts/test.sh): commands, pipelines and topology() snapshots race with a slot move.
#include <asio/use_future.hpp>

#include <respite/cluster/slot.hpp>

#include "cluster_common.hpp"

using namespace respite;
using namespace respite::test;
using client::cmd;

TEST(cluster_threads, callers_on_many_threads_during_a_slot_move) {
    redis_cluster_options o;
    o.replicas_per_master = 0;
    redis_cluster rc(o);
    cluster::cluster_client c(cluster_config_for(rc));
    std::atomic<bool> stop{false};
    std::atomic<long> ok{0}, failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            long i = 0;
            while (!stop) {
                auto key = "{threads}:" + std::to_string(t) + ":" + std::to_string(i++ % 50);
                auto r = get(c.async_command(cmd("INCR", key), asio::use_future));
                (r && !r->is_error() ? ok : failed)++;
                if (i % 20 == 0) {
                    client::request p;
                    p.push("GET", key).push("SET", "spread:" + std::to_string(i), i);
                    auto rs = get(c.async_exec(std::move(p), asio::use_future));
                    (rs ? ok : failed)++;
                    auto topo = c.topology();  // cross-thread snapshot
                    if (topo.shards().empty())
                        failed++;
                }
            }
        });
    }
    ASSERT_TRUE(eventually([&] { return ok > 500; }));
    auto slot = cluster::hash_slot("threads");
    auto to = rc.another_master(rc.master_of_slot(slot));
    rc.migrate_slot(slot, to);
    auto at = ok.load();
    ASSERT_TRUE(eventually([&] { return ok > at + 500; }));
    stop = true;
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(failed.load(), 0);
}
