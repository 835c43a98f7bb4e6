// Sharded Pub/Sub keeps delivering after its slot moves to another master; classic Pub/Sub
// reaches subscribers through any node.
#include <asio/use_future.hpp>

#include <respite/cluster/slot.hpp>

#include "cluster_common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;

namespace {

class cluster_pubsub : public shared_cluster_suite<cluster_pubsub> {};

// Reads messages until one carries `payload` (earlier ones may be retries of "after" published
// while the subscription was still moving).
bool receives(cluster::cluster_client& c, const std::string& payload) {
    for (int i = 0; i < 50; ++i) {
        auto next = get(c.async_receive(asio::use_future));
        if (!next)
            return false;
        if (next->payload == payload)
            return true;
    }
    return false;
}

}  // namespace

TEST_F(cluster_pubsub, shard_channel_follows_its_slot) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    const std::string channel = "orders";
    auto slot = cluster::hash_slot(channel);
    ASSERT_TRUE(get(
        c.async_subscribe(client::subscription_kind::shard_channel, {channel}, asio::use_future)));
    auto publish = [&](const std::string& payload) {
        return cluster_->cli(cluster_->master_of_slot(slot), {"SPUBLISH", channel, payload});
    };
    EXPECT_EQ(publish("before"), "1");
    auto m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->kind, client::message::kind::smessage);
    EXPECT_EQ(m->payload, "before");

    // Move the slot away; the subscription must follow it to the new master.
    auto to = cluster_->another_master(cluster_->master_of_slot(slot));
    cluster_->migrate_slot(slot, to);
    ASSERT_TRUE(eventually([&] { return publish("after") == "1"; }, 20s));
    EXPECT_TRUE(receives(c, "after"));
}

TEST_F(cluster_pubsub, classic_channels_and_patterns) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    ASSERT_TRUE(
        get(c.async_subscribe(client::subscription_kind::channel, {"news"}, asio::use_future)));
    ASSERT_TRUE(
        get(c.async_subscribe(client::subscription_kind::pattern, {"alerts.*"}, asio::use_future)));
    // PUBLISH on any node reaches the subscriber (cluster-wide broadcast; the count it returns
    // is only that node's own subscribers).
    auto last = cluster_->size() - 1;
    cluster_->cli(last, {"PUBLISH", "news", "n1"});
    auto m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "n1");
    cluster_->cli(0, {"PUBLISH", "alerts.disk", "a1"});
    m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->kind, client::message::kind::pmessage);
    EXPECT_EQ(m->pattern, "alerts.*");
    ASSERT_TRUE(
        get(c.async_unsubscribe(client::subscription_kind::channel, {"news"}, asio::use_future)));
    for (std::size_t n = 0; n < cluster_->size(); ++n) {
        EXPECT_EQ(cluster_->cli(n, {"PUBLISH", "news", "gone"}), "0");
    }
}

TEST_F(cluster_pubsub, shard_channel_follows_a_failover) {
    cluster::cluster_client c(cluster_config_for(*cluster_));
    const std::string channel = "failover-news";
    auto slot = cluster::hash_slot(channel);
    ASSERT_TRUE(get(
        c.async_subscribe(client::subscription_kind::shard_channel, {channel}, asio::use_future)));
    auto publish = [&](const std::string& payload) {
        return cluster_->cli(cluster_->master_of_slot(slot), {"SPUBLISH", channel, payload});
    };
    EXPECT_EQ(publish("before"), "1");
    auto m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "before");
    // Promote the replica of the slot's master: the old master becomes a replica and drops the
    // subscription; the client must re-subscribe at the new master.
    auto old_master = cluster_->master_of_slot(slot);
    auto old_port = cluster_->node(old_master).port();
    std::size_t replica = cluster_->size();
    for (auto r : cluster_->replicas()) {
        auto info = cluster_->cli(r, {"INFO", "replication"});
        if (info.find("master_port:" + std::to_string(old_port)) != std::string::npos)
            replica = r;
    }
    ASSERT_LT(replica, cluster_->size());
    cluster_->failover(replica);
    ASSERT_EQ(cluster_->master_of_slot(slot), replica);
    ASSERT_TRUE(eventually([&] { return publish("after") == "1"; }, 20s));
    EXPECT_TRUE(receives(c, "after"));
}
