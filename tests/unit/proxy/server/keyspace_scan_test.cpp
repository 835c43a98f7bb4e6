// keyspace_scan: the per-master SCAN cursor and the topology checks that break a pass.
#include "keyspace_scan.hpp"

#include <gtest/gtest.h>

#include <respite/resp/value.hpp>

namespace respite::proxy::server {
namespace {

using step = keyspace_scan::step;

// CLUSTER SLOTS for masters at ports 7000.. owning the given first slots (each up to the next).
cluster::slot_map map_of(std::vector<std::pair<std::uint16_t, std::uint16_t>> owners) {
    std::vector<resp::value> entries;
    for (std::size_t i = 0; i < owners.size(); ++i) {
        const auto first = owners[i].first;
        const auto last = i + 1 < owners.size() ? owners[i + 1].first - 1 : 16383;
        entries.push_back(resp::value::array({
            resp::value::integer(first),
            resp::value::integer(last),
            resp::value::array(
                {resp::value::bulk_string("127.0.0.1"), resp::value::integer(owners[i].second)}),
        }));
    }
    auto m = cluster::slot_map::from_cluster_slots(resp::value::array(std::move(entries)));
    EXPECT_TRUE(m.has_value());
    return m.value_or(cluster::slot_map{});
}

topology_view view_of(cluster::slot_map m) {
    topology_view v;
    v.cluster = true;
    v.map = std::move(m);
    return v;
}

TEST(keyspace_scan, a_standalone_side_is_one_node_and_never_broken) {
    keyspace_scan s;
    EXPECT_FALSE(s.begun());
    s.begin(topology_view{});
    EXPECT_TRUE(s.begun());
    EXPECT_FALSE(s.cluster());
    ASSERT_EQ(s.node_count(), 1U);
    EXPECT_EQ(s.node().port, 0);
    EXPECT_EQ(s.cursor(), "0");
    EXPECT_EQ(s.advance("17"), step::page);
    EXPECT_EQ(s.cursor(), "17");
    EXPECT_EQ(s.advance("0"), step::pass_done);
    EXPECT_FALSE(s.broken_by(view_of(map_of({{0, 7000}}))).has_value());
}

TEST(keyspace_scan, a_cluster_is_scanned_master_by_master_from_cursor_zero) {
    keyspace_scan s;
    s.begin(view_of(map_of({{0, 7000}, {5000, 7001}, {10000, 7002}})));
    ASSERT_EQ(s.node_count(), 3U);
    EXPECT_EQ(s.node().port, 7000);
    EXPECT_EQ(s.advance("5"), step::page);
    EXPECT_EQ(s.advance("0"), step::node_done);
    EXPECT_EQ(s.node().port, 7001);
    EXPECT_EQ(s.cursor(), "0");
    EXPECT_EQ(s.advance("0"), step::node_done);
    EXPECT_EQ(s.node().port, 7002);
    EXPECT_EQ(s.advance("9"), step::page);
    EXPECT_EQ(s.advance("0"), step::pass_done);
    s.restart();
    EXPECT_FALSE(s.begun());
    EXPECT_EQ(s.cursor(), "0");
}

TEST(keyspace_scan, a_moved_slot_a_failover_or_a_migration_breaks_the_pass) {
    keyspace_scan s;
    s.begin(view_of(map_of({{0, 7000}, {5000, 7001}})));
    EXPECT_FALSE(s.broken_by(view_of(map_of({{0, 7000}, {5000, 7001}}))).has_value());
    // One slot moved.
    EXPECT_TRUE(s.broken_by(view_of(map_of({{0, 7000}, {4999, 7001}}))).has_value());
    // A replica took over.
    EXPECT_TRUE(s.broken_by(view_of(map_of({{0, 7000}, {5000, 7005}}))).has_value());
    auto migrating = view_of(map_of({{0, 7000}, {5000, 7001}}));
    migrating.unsettled.emplace_back("127.0.0.1:7000 [42->-abc]");
    const auto why = s.broken_by(migrating);
    ASSERT_TRUE(why.has_value());
    EXPECT_NE(why->find("[42->-abc]"), std::string::npos) << *why;
}

TEST(keyspace_scan, migrations_are_read_from_the_myself_line_of_cluster_nodes) {
    const std::string nodes =
        "aaa 127.0.0.1:7001@17001 master - 0 1 2 connected 5000-9999 [77-<-ccc]\r\n"
        "bbb 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-4999 [42->-aaa] "
        "[43->-aaa]\n"
        "ccc 127.0.0.1:7002@17002 master - 0 1 3 connected 10000-16383\n";
    EXPECT_EQ(migrations_in(nodes), (std::vector<std::string>{"[42->-aaa]", "[43->-aaa]"}));
    EXPECT_TRUE(migrations_in("bbb 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-16383\n")
                    .empty());
    EXPECT_TRUE(migrations_in("").empty());
}

}  // namespace
}  // namespace respite::proxy::server
