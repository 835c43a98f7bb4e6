// slot_map: CLUSTER SHARDS / CLUSTER SLOTS replies from a real cluster, MOVED updates, bad input.
#include <functional>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include <respite/cluster/slot_map.hpp>
#include <respite/resp/parser.hpp>

#include "captured_replies.hpp"

namespace {

using respite::cluster::node_address;
using respite::cluster::slot_map;
using respite::cluster::slot_range;
using respite::resp::value;

constexpr std::string_view id_17001 = "e9c762b6e17bfc7fd350f6270f143823abcd47b5";
constexpr std::string_view id_17002 = "bbde975204be1bc9d74fcf7bf91a12ba66460a34";
constexpr std::string_view id_17003 = "55b2e2708c27070c0f33419065e9c28fe1fe4954";
constexpr std::string_view id_17004 = "d861bdd060fec439a081da7b6016fc9f2c61305c";
constexpr std::string_view id_17005 = "fe28eca0162a0bb3aab032b80e33a2e7fc5327f2";
constexpr std::string_view id_17006 = "5313d3d0cb7d2925e50ca6668f026579f623fc73";

const node_address a1{"127.0.0.1", 17001};
const node_address a2{"127.0.0.1", 17002};
const node_address a3{"127.0.0.1", 17003};

value parse(std::string_view bytes) {
    respite::resp::parser p;
    const auto r = p.feed(bytes);
    EXPECT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, bytes.size());
    return p.take();
}

slot_map shards_map(std::string_view bytes) {
    std::string error;
    auto m = slot_map::from_cluster_shards(parse(bytes), &error);
    EXPECT_TRUE(m.has_value()) << error;
    return m.value_or(slot_map{});
}

slot_map slots_map(std::string_view bytes) {
    std::string error;
    auto m = slot_map::from_cluster_slots(parse(bytes), &error);
    EXPECT_TRUE(m.has_value()) << error;
    return m.value_or(slot_map{});
}

// A small CLUSTER SLOTS reply: (start, end, master port) entries on 10.0.0.1.
value slots_reply(std::initializer_list<std::tuple<std::int64_t, std::int64_t, std::int64_t>> rs) {
    std::vector<value> entries;
    for (const auto& [first, last, port] : rs) {
        entries.push_back(
            value::array({value::integer(first), value::integer(last),
                          value::array({value::bulk_string("10.0.0.1"), value::integer(port)})}));
    }
    return value::array(std::move(entries));
}

// ---- CLUSTER SHARDS ----------------------------------------------------------------------

TEST(SlotMapShards, ReadsThreeShardsWithReplicas) {
    const slot_map m = shards_map(captured::shards_resp2);
    ASSERT_EQ(m.shards().size(), 3U);
    EXPECT_TRUE(m.covers_all_slots());

    const auto& s1 = m.shards()[0];
    EXPECT_EQ(s1.master.id, id_17001);
    EXPECT_EQ(s1.master.address, a1);
    EXPECT_TRUE(s1.master.is_master);
    EXPECT_TRUE(s1.master.healthy);
    ASSERT_EQ(s1.replicas.size(), 1U);
    EXPECT_EQ(s1.replicas[0].id, id_17006);
    EXPECT_EQ(s1.replicas[0].address, (node_address{"127.0.0.1", 17006}));
    EXPECT_FALSE(s1.replicas[0].is_master);
    EXPECT_EQ(s1.ranges, (std::vector<slot_range>{{0, 5460}}));

    EXPECT_EQ(m.shards()[1].master.id, id_17002);
    EXPECT_EQ(m.shards()[1].replicas.at(0).id, id_17004);
    EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{5461, 10922}}));
    EXPECT_EQ(m.shards()[2].master.id, id_17003);
    EXPECT_EQ(m.shards()[2].replicas.at(0).id, id_17005);
    EXPECT_EQ(m.shards()[2].ranges, (std::vector<slot_range>{{10923, 16383}}));

    EXPECT_EQ(m.master_of(0), a1);
    EXPECT_EQ(m.master_of(5460), a1);
    EXPECT_EQ(m.master_of(5461), a2);
    EXPECT_EQ(m.master_of(12182), a3);
    EXPECT_EQ(m.master_of(16383), a3);
    EXPECT_EQ(m.shard_of(16383), &m.shards()[2]);
    EXPECT_EQ(m.masters(), (std::vector<node_address>{a1, a2, a3}));
}

TEST(SlotMapShards, Resp2AndResp3GiveTheSameMap) {
    const slot_map m2 = shards_map(captured::shards_resp2);
    const slot_map m3 = shards_map(captured::shards_resp3);
    ASSERT_EQ(m3.shards().size(), 3U);
    // Replication offsets are not kept, so the two captures compare equal.
    EXPECT_EQ(m2.shards(), m3.shards());
    EXPECT_TRUE(m2.same_routing(m3));
}

TEST(SlotMapShards, SplitRangesHostnamesAndFailedReplica) {
    for (auto bytes : {captured::moved_shards_resp2, captured::moved_shards_resp3}) {
        const slot_map m = shards_map(bytes);
        ASSERT_EQ(m.shards().size(), 3U);
        EXPECT_TRUE(m.covers_all_slots());
        const auto& s1 = m.shards()[0];
        EXPECT_EQ(s1.ranges, (std::vector<slot_range>{{0, 99}, {101, 5460}}));
        // endpoint "?" falls back to the ip.
        EXPECT_EQ(s1.master.address, a1);
        ASSERT_EQ(s1.replicas.size(), 1U);
        EXPECT_EQ(s1.replicas[0].id, id_17006);
        EXPECT_FALSE(s1.replicas[0].healthy);  // health "fail"
        const node_address b{"shard-b.example", 17002};
        EXPECT_EQ(m.shards()[1].master.address, b);
        EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{100, 100}, {5461, 10922}}));
        EXPECT_EQ(m.master_of(99), a1);
        EXPECT_EQ(m.master_of(100), b);
        EXPECT_EQ(m.master_of(101), a1);
        EXPECT_EQ(m.shards()[1].replicas.at(0).address, (node_address{"127.0.0.1", 17004}));
    }
}

// ---- CLUSTER SLOTS -----------------------------------------------------------------------

TEST(SlotMapSlots, ReadsRangesMastersAndReplicas) {
    for (auto bytes : {captured::slots_resp2, captured::slots_resp3}) {
        const slot_map m = slots_map(bytes);
        ASSERT_EQ(m.shards().size(), 3U);
        EXPECT_TRUE(m.covers_all_slots());
        EXPECT_EQ(m.shards()[0].master.id, id_17001);
        EXPECT_EQ(m.shards()[0].replicas.at(0).id, id_17006);
        EXPECT_EQ(m.shards()[0].replicas.at(0).address, (node_address{"127.0.0.1", 17006}));
        EXPECT_EQ(m.masters(), (std::vector<node_address>{a1, a2, a3}));
        // Same routing as CLUSTER SHARDS of the same cluster.
        EXPECT_TRUE(m.same_routing(shards_map(captured::shards_resp2)));
    }
}

TEST(SlotMapSlots, GroupsRangesOfOneMasterIntoOneShard) {
    for (auto bytes : {captured::moved_slots_resp2, captured::moved_slots_resp3}) {
        const slot_map m = slots_map(bytes);
        ASSERT_EQ(m.shards().size(), 3U);
        EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{0, 99}, {101, 5460}}));
        // Host "?" is replaced by the ip from the node's metadata.
        EXPECT_EQ(m.shards()[0].master.address, a1);
        // The failed replica 17006 is not listed by CLUSTER SLOTS.
        EXPECT_TRUE(m.shards()[0].replicas.empty());
        EXPECT_EQ(m.master_of(100), (node_address{"shard-b.example", 17002}));
        EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{100, 100}, {5461, 10922}}));
        EXPECT_TRUE(m.same_routing(shards_map(captured::moved_shards_resp3)));
        EXPECT_FALSE(m.same_routing(shards_map(captured::shards_resp3)));
    }
}

TEST(SlotMapSlots, AcceptsOldNodeShapes) {
    // Redis 3: host and port only; a null host (unknown endpoint) without metadata stays empty.
    const value reply = value::array(
        {value::array({value::integer(0), value::integer(16383),
                       value::array({value::bulk_string("10.0.0.1"), value::integer(6379)}),
                       value::array({value::null(), value::integer(6380)})})});
    std::string error;
    const auto m = slot_map::from_cluster_slots(reply, &error);
    ASSERT_TRUE(m.has_value()) << error;
    EXPECT_TRUE(m->covers_all_slots());
    EXPECT_EQ(m->shards()[0].master.id, "");
    EXPECT_EQ(m->shards()[0].replicas.at(0).address, (node_address{"", 6380}));
}

// ---- assign (MOVED) ----------------------------------------------------------------------

TEST(SlotMapAssign, MovesASlotToAnExistingMaster) {
    slot_map m = shards_map(captured::shards_resp2);
    m.assign(100, a2);
    EXPECT_EQ(m.master_of(100), a2);
    EXPECT_EQ(m.shards().size(), 3U);
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{0, 99}, {101, 5460}}));
    EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{100, 100}, {5461, 10922}}));
    EXPECT_TRUE(m.covers_all_slots());
    // The same routing as the map the server gave after the same move (but with IP hosts).
    EXPECT_FALSE(m.same_routing(shards_map(captured::shards_resp2)));

    m.assign(100, a1);
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{0, 5460}}));
    EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{5461, 10922}}));
    EXPECT_TRUE(m.same_routing(shards_map(captured::shards_resp2)));
}

TEST(SlotMapAssign, EdgesOfARangeAndNeighbourMerging) {
    slot_map m = shards_map(captured::shards_resp2);
    m.assign(5460, a2);  // last slot of shard 1 joins the front of shard 2's range
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{0, 5459}}));
    EXPECT_EQ(m.shards()[1].ranges, (std::vector<slot_range>{{5460, 10922}}));
    m.assign(0, a3);
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{1, 5459}}));
    EXPECT_EQ(m.shards()[2].ranges, (std::vector<slot_range>{{0, 0}, {10923, 16383}}));
    m.assign(16383, a3);  // already there: nothing changes
    EXPECT_EQ(m.shards()[2].ranges, (std::vector<slot_range>{{0, 0}, {10923, 16383}}));
}

TEST(SlotMapAssign, UnknownMasterBecomesANewShard) {
    slot_map m = shards_map(captured::shards_resp3);
    const node_address fresh{"10.1.2.3", 7000};
    m.assign(12182, fresh);
    ASSERT_EQ(m.shards().size(), 4U);
    const auto* s = m.shard_of(12182);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->master.id, "");
    EXPECT_EQ(s->master.address, fresh);
    EXPECT_TRUE(s->master.is_master);
    EXPECT_TRUE(s->replicas.empty());
    EXPECT_EQ(s->ranges, (std::vector<slot_range>{{12182, 12182}}));
    EXPECT_EQ(m.shards()[2].ranges, (std::vector<slot_range>{{10923, 12181}, {12183, 16383}}));
    EXPECT_EQ(m.masters(), (std::vector<node_address>{a1, a2, a3, fresh}));
    // A second redirect to the same address reuses the shard.
    m.assign(12183, fresh);
    EXPECT_EQ(m.shards().size(), 4U);
    EXPECT_EQ(m.shard_of(12183)->ranges, (std::vector<slot_range>{{12182, 12183}}));
}

TEST(SlotMapAssign, EmptyMapAndOutOfRangeSlot) {
    slot_map m;
    EXPECT_FALSE(m.covers_all_slots());
    EXPECT_EQ(m.shard_of(0), nullptr);
    EXPECT_EQ(m.master_of(0), std::nullopt);
    EXPECT_EQ(m.shard_of(16384), nullptr);
    EXPECT_TRUE(m.same_routing(slot_map{}));
    m.assign(16384, a1);  // ignored
    EXPECT_TRUE(m.shards().empty());
    m.assign(7, a1);
    EXPECT_EQ(m.master_of(7), a1);
    EXPECT_EQ(m.master_of(8), std::nullopt);
    EXPECT_FALSE(m.same_routing(slot_map{}));
    for (unsigned s = 0; s < respite::cluster::slot_count; ++s)
        m.assign(static_cast<std::uint16_t>(s), a1);
    EXPECT_TRUE(m.covers_all_slots());
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{0, 16383}}));
}

TEST(SlotMapAssign, RedirectTargetsAreForgottenWithTheirLastSlot) {
    slot_map m = shards_map(captured::shards_resp2);
    for (int i = 0; i < 3000; ++i)
        m.assign(static_cast<std::uint16_t>(i % 3), {"10.0.0.1", static_cast<std::uint16_t>(i)});
    // Three redirect targets own slots 0, 1, 2; the 2997 earlier ones were dropped.
    EXPECT_EQ(m.shards().size(), 6U);
    EXPECT_EQ(m.master_of(0), (node_address{"10.0.0.1", 2997}));
    EXPECT_EQ(m.master_of(1), (node_address{"10.0.0.1", 2998}));
    EXPECT_EQ(m.master_of(2), (node_address{"10.0.0.1", 2999}));
    EXPECT_EQ(m.master_of(3), a1);
    EXPECT_EQ(m.shards()[0].ranges, (std::vector<slot_range>{{3, 5460}}));
    // Masters from the reply stay even when a redirect takes their last slot.
    for (unsigned s = 0; s < respite::cluster::slot_count; ++s)
        m.assign(static_cast<std::uint16_t>(s), a3);
    EXPECT_EQ(m.shards().size(), 3U);
    EXPECT_TRUE(m.shards()[0].ranges.empty());
    EXPECT_EQ(m.masters(), (std::vector<node_address>{a1, a2, a3}));
    for (unsigned s = 0; s < respite::cluster::slot_count; ++s)
        EXPECT_EQ(m.shard_of(static_cast<std::uint16_t>(s)), &m.shards()[2]);
}

TEST(SlotMapAssign, MovedFromMapIsEmptyAndReusable) {
    slot_map m = shards_map(captured::shards_resp2);
    const slot_map taken = std::move(m);
    EXPECT_TRUE(taken.covers_all_slots());
    // NOLINTBEGIN(bugprone-use-after-move): a moved-from map must stay safe to use
    EXPECT_EQ(m.shard_of(0), nullptr);
    EXPECT_FALSE(m.covers_all_slots());
    m.assign(5, a1);
    EXPECT_EQ(m.master_of(5), a1);
    EXPECT_EQ(m.master_of(6), std::nullopt);
    // NOLINTEND(bugprone-use-after-move)
}

// ---- node_address --------------------------------------------------------------------------

TEST(NodeAddress, ToStringAndOrdering) {
    EXPECT_EQ(a1.to_string(), "127.0.0.1:17001");
    EXPECT_EQ((node_address{"::1", 6379}).to_string(), "[::1]:6379");
    EXPECT_EQ((node_address{"redis.example", 6380}).to_string(), "redis.example:6380");
    EXPECT_LT(a1, a2);
    EXPECT_LT((node_address{"a", 9}), (node_address{"b", 1}));
}

// ---- malformed replies -------------------------------------------------------------------

void expect_rejected_shards(const value& reply, std::string_view what) {
    std::string error;
    EXPECT_EQ(slot_map::from_cluster_shards(reply, &error), std::nullopt) << what;
    EXPECT_FALSE(error.empty()) << what;
    EXPECT_EQ(slot_map::from_cluster_shards(reply), std::nullopt) << what;  // no error sink
}

void expect_rejected_slots(const value& reply, std::string_view what) {
    std::string error;
    EXPECT_EQ(slot_map::from_cluster_slots(reply, &error), std::nullopt) << what;
    EXPECT_FALSE(error.empty()) << what;
}

value shard_entry(std::vector<value> slots, std::vector<value> nodes) {
    return value::map({value::bulk_string("slots"), value::array(std::move(slots)),
                       value::bulk_string("nodes"), value::array(std::move(nodes))});
}

value node_entry(std::string id, std::int64_t port, std::string role) {
    return value::map({value::bulk_string("id"), value::bulk_string(std::move(id)),
                       value::bulk_string("port"), value::integer(port), value::bulk_string("ip"),
                       value::bulk_string("10.0.0.1"), value::bulk_string("endpoint"),
                       value::bulk_string("10.0.0.1"), value::bulk_string("role"),
                       value::bulk_string(std::move(role)), value::bulk_string("health"),
                       value::bulk_string("online")});
}

std::vector<value> ints(std::initializer_list<std::int64_t> xs) {
    std::vector<value> out;
    for (auto x : xs)
        out.push_back(value::integer(x));
    return out;
}

TEST(SlotMapMalformed, ClusterShards) {
    const auto master = [] { return node_entry("m", 7000, "master"); };
    expect_rejected_shards(value::simple_error("ERR This instance has cluster support disabled"),
                           "error reply");
    expect_rejected_shards(value::integer(3), "integer reply");
    expect_rejected_shards(value::array({value::integer(1)}), "shard not a map");
    expect_rejected_shards(value::array({shard_entry(ints({0, 16384}), {master()})}), "slot 16384");
    expect_rejected_shards(value::array({shard_entry(ints({-1, 5}), {master()})}), "slot -1");
    expect_rejected_shards(value::array({shard_entry(ints({10, 5}), {master()})}), "reversed");
    expect_rejected_shards(value::array({shard_entry(ints({0}), {master()})}), "odd slots");
    expect_rejected_shards(
        value::array({value::map({value::bulk_string("slots"), value::array(ints({0, 1}))})}),
        "no nodes");
    expect_rejected_shards(value::array({shard_entry(ints({0, 5}), {})}), "slots, no master");
    expect_rejected_shards(
        value::array({shard_entry(ints({0, 5}), {master(), node_entry("m2", 7001, "master")})}),
        "two masters");
    expect_rejected_shards(
        value::array({shard_entry(ints({0, 5}), {node_entry("m", 0, "master")})}), "port 0");
    expect_rejected_shards(
        value::array({shard_entry(ints({0, 5}), {node_entry("m", 70000, "master")})}),
        "port 70000");
    expect_rejected_shards(
        value::array({shard_entry(ints({0, 5}), {node_entry("m", 7000, "leader")})}), "role");
    expect_rejected_shards(
        value::array({shard_entry(ints({0, 5}), {master()}),
                      shard_entry(ints({5, 9}), {node_entry("n", 7001, "master")})}),
        "slot 5 owned twice");

    // Not malformed: an empty cluster, and a shard with neither slots nor master.
    auto empty = slot_map::from_cluster_shards(value::array({}));
    ASSERT_TRUE(empty.has_value());
    EXPECT_FALSE(empty->covers_all_slots());
    auto skipped = slot_map::from_cluster_shards(
        value::array({shard_entry({}, {node_entry("r", 7002, "replica")}),
                      shard_entry(ints({0, 16383}), {master()})}));
    ASSERT_TRUE(skipped.has_value());
    EXPECT_EQ(skipped->shards().size(), 1U);
    EXPECT_TRUE(skipped->covers_all_slots());
}

TEST(SlotMapMalformed, ClusterShardsTlsOnlyNodeUsesTlsPort) {
    value node = value::map({value::bulk_string("id"), value::bulk_string("t"),
                             value::bulk_string("tls-port"), value::integer(7443),
                             value::bulk_string("ip"), value::bulk_string("10.0.0.9"),
                             value::bulk_string("endpoint"), value::bulk_string(""),
                             value::bulk_string("role"), value::bulk_string("master"),
                             value::bulk_string("health"), value::bulk_string("loading")});
    auto m = slot_map::from_cluster_shards(value::array({shard_entry(ints({0, 16383}), {node})}));
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->master_of(9), (node_address{"10.0.0.9", 7443}));
    EXPECT_FALSE(m->shards()[0].master.healthy);
}

TEST(SlotMapMalformed, ClusterSlots) {
    expect_rejected_slots(value::simple_error("ERR This instance has cluster support disabled"),
                          "error reply");
    expect_rejected_slots(value::bulk_string("x"), "string reply");
    expect_rejected_slots(value::array({value::array(ints({0, 5}))}), "no master");
    expect_rejected_slots(slots_reply({{0, 16384, 7000}}), "slot 16384");
    expect_rejected_slots(slots_reply({{9, 3, 7000}}), "reversed");
    expect_rejected_slots(slots_reply({{0, 5, 0}}), "port 0");
    expect_rejected_slots(slots_reply({{0, 5, 65536}}), "port 65536");
    expect_rejected_slots(slots_reply({{0, 5, 7000}, {5, 9, 7001}}), "slot 5 owned twice");
    expect_rejected_slots(value::array({value::array({value::integer(0), value::integer(5),
                                                      value::array({value::bulk_string("h")})})}),
                          "node without port");
    expect_rejected_slots(
        value::array({value::array({value::integer(0), value::integer(5),
                                    value::array({value::integer(1), value::integer(7000)})})}),
        "integer host");

    // Two ranges of one master, listed apart, are one shard.
    auto m =
        slot_map::from_cluster_slots(slots_reply({{0, 9, 7000}, {10, 19, 7001}, {20, 29, 7000}}));
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->shards().size(), 2U);
    EXPECT_EQ(m->shards()[0].ranges, (std::vector<slot_range>{{0, 9}, {20, 29}}));
}

// Replaces each value of a real reply, one at a time, with values of other types: the readers
// either accept the result or reject it with a reason, and never crash (ASan/UBSan build).
TEST(SlotMapMalformed, EveryElementReplacedByEveryType) {
    const value replacements[] = {
        value::integer(-1), value::integer(99999), value::bulk_string("?"),     value::array({}),
        value::null(),      value::map({}),        value::simple_error("ERR x")};
    const std::function<std::size_t(value&, std::size_t&, const value*)> walk =
        [&](value& v, std::size_t& n, const value* with) -> std::size_t {
        if (n == 0) {
            v = *with;
            n = static_cast<std::size_t>(-1);
            return 1;
        }
        std::size_t count = 1;
        --n;
        for (auto& e : v.elements())
            count += walk(e, n, with);
        return count;
    };
    const std::pair<std::string_view, bool> inputs[] = {{captured::moved_shards_resp2, true},
                                                        {captured::moved_shards_resp3, true},
                                                        {captured::moved_slots_resp2, false},
                                                        {captured::moved_slots_resp3, false}};
    for (const auto& [bytes, shards] : inputs) {
        const value original = parse(bytes);
        std::size_t total = 0;
        {
            value copy = original;
            std::size_t never = static_cast<std::size_t>(-2);
            total = walk(copy, never, &replacements[0]);
        }
        ASSERT_GT(total, 50U);
        for (std::size_t i = 0; i < total; ++i) {
            for (const auto& r : replacements) {
                value mutated = original;
                std::size_t n = i;
                walk(mutated, n, &r);
                std::string error;
                auto m = shards ? slot_map::from_cluster_shards(mutated, &error)
                                : slot_map::from_cluster_slots(mutated, &error);
                if (!m.has_value()) {
                    EXPECT_FALSE(error.empty());
                }
            }
        }
    }
}

}  // namespace
