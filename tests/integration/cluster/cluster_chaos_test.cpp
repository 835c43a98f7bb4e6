// Failover under load: a manual CLUSTER FAILOVER and a killed master. Acknowledged writes
// survive, failures are clear errors, and no command outlives its deadline.
#include <map>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <respite/cluster/slot.hpp>

#include "cluster_common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

namespace {

class cluster_chaos : public shared_cluster_suite<cluster_chaos> {};

}  // namespace

TEST_F(cluster_chaos, manual_failover_under_load) {
    ledger_load l(*cluster_, "manual:", 200);
    l.start(8);
    ASSERT_TRUE(eventually([&] { return l.ops > 2000; }));
    auto replicas = cluster_->replicas();
    ASSERT_FALSE(replicas.empty());
    cluster_->failover(replicas.front());
    auto at = l.ops.load();
    ASSERT_TRUE(eventually([&] { return l.ops > at + 2000; }));
    l.finish();
    l.verify(*cluster_);
    // A manual failover is coordinated: nothing should fail at all.
    EXPECT_EQ(l.failures.load(), 0);
    EXPECT_LT(l.longest, 4s + 1s);
}

TEST_F(cluster_chaos, killed_master_is_replaced_by_its_replica) {
    ledger_load l(*cluster_, "killed:", 200);
    l.start(8);
    ASSERT_TRUE(eventually([&] { return l.ops > 2000; }));
    auto victim = cluster_->masters().front();
    cluster_->kill_node(victim);
    cluster_->wait_for_failover_of(victim);
    auto at = l.ops.load();
    ASSERT_TRUE(eventually([&] { return l.ops > at + 2000; }, 20s));
    l.finish();
    l.verify(*cluster_);
    // Commands during the outage may fail, but only with clear errors and within the deadline.
    EXPECT_LT(l.longest, 4s + 1s);
    cluster_->restart_node(victim);
}
