// every_master: which keyless commands run on every master of a cluster, how their replies
// combine, and the composite SCAN cursor over the masters.
#include <algorithm>

#include <gtest/gtest.h>

#include <respite/proxy/every_master.hpp>

namespace respite::proxy {
namespace {

using resp::value;

every_master of(std::vector<std::string_view> args) {
    return every_master_of(args);
}

std::vector<cluster::node_address> nodes(std::vector<std::uint16_t> ports) {
    std::vector<cluster::node_address> out;
    for (auto p : ports)
        out.push_back({"127.0.0.1", p});
    return scan_order(std::move(out));
}

TEST(every_master, keyspace_commands_are_recognised_in_any_case) {
    EXPECT_EQ(of({"flushall"}), every_master::first_reply);
    EXPECT_EQ(of({"FLUSHDB", "ASYNC"}), every_master::first_reply);
    EXPECT_EQ(of({"script", "Load", "return 1"}), every_master::first_reply);
    EXPECT_EQ(of({"FUNCTION", "RESTORE", "x"}), every_master::first_reply);
    EXPECT_EQ(of({"SCRIPT", "EXISTS", "a"}), every_master::all_of);
    EXPECT_EQ(of({"DBSIZE"}), every_master::sum);
    EXPECT_EQ(of({"KEYS", "*"}), every_master::concat);
    EXPECT_EQ(of({"RANDOMKEY"}), every_master::any_non_nil);
    EXPECT_EQ(of({"SCAN", "0"}), every_master::scan);
    EXPECT_EQ(of({"PUBLISH", "c", "m"}), every_master::no);
    EXPECT_EQ(of({"SCRIPT", "KILL"}), every_master::no);
    EXPECT_EQ(of({"FUNCTION", "LIST"}), every_master::no);
    EXPECT_EQ(of({"GET", "k"}), every_master::no);
}

TEST(every_master, replies_combine_and_the_first_error_wins) {
    const std::vector<value> sizes{value::integer(3), value::integer(4)};
    EXPECT_EQ(combine_replies(every_master::sum, sizes).integer(), 7);
    const std::vector<value> keys{value::array({value::bulk_string("a")}),
                                  value::array({value::bulk_string("b"), value::bulk_string("c")})};
    EXPECT_EQ(combine_replies(every_master::concat, keys).size(), 3U);
    const std::vector<value> exists{value::array({value::integer(1), value::integer(1)}),
                                    value::array({value::integer(0), value::integer(1)})};
    const auto both = combine_replies(every_master::all_of, exists);
    EXPECT_EQ(both.elements()[0].integer(), 0);
    EXPECT_EQ(both.elements()[1].integer(), 1);
    const std::vector<value> random{value::null(), value::bulk_string("k"), value::null()};
    for (std::size_t pick = 0; pick < 3; ++pick)
        EXPECT_EQ(combine_replies(every_master::any_non_nil, random, pick).str(), "k");
    const std::vector<value> mixed{value::simple_string("OK"), value::simple_error("ERR no"),
                                   value::simple_error("ERR later")};
    EXPECT_EQ(combine_replies(every_master::first_reply, mixed).str(), "ERR no");
}

TEST(every_master, a_scan_cursor_walks_each_master_once) {
    const auto m = nodes({7002, 7000, 7001});
    ASSERT_EQ(m.front().port, 7000);
    auto step = resume_scan(*scan_cursor::parse("0"), m);
    ASSERT_TRUE(step);
    EXPECT_EQ(step->index, 0U);
    EXPECT_EQ(step->node_cursor, 0U);
    // Master 0 answers cursor 12345: the client's cursor continues there.
    auto next = next_scan_cursor(m, 0, 12345);
    ASSERT_TRUE(next);
    EXPECT_LT(*next, std::uint64_t{1} << 63);
    step = resume_scan(*scan_cursor::parse(std::to_string(*next)), m);
    EXPECT_EQ(step->index, 0U);
    EXPECT_EQ(step->node_cursor, 12345U);
    // Master 0 is done: master 1 from its start; the last one done ends the scan.
    next = next_scan_cursor(m, 0, 0);
    step = resume_scan(*scan_cursor::parse(std::to_string(*next)), m);
    EXPECT_EQ(step->index, 1U);
    EXPECT_EQ(step->node_cursor, 0U);
    EXPECT_EQ(next_scan_cursor(m, 2, 0), 0U);
    // The largest node cursor fits; a larger one is refused, as is a cursor that is no number.
    EXPECT_TRUE(next_scan_cursor(m, 2, scan_cursor::k_max_node_cursor));
    EXPECT_FALSE(next_scan_cursor(m, 2, scan_cursor::k_max_node_cursor + 1));
    EXPECT_FALSE(scan_cursor::parse("x1"));
    EXPECT_FALSE(scan_cursor::parse(""));
}

TEST(every_master, a_cursor_finds_its_master_after_the_masters_changed) {
    const auto before = nodes({7000, 7001, 7002});
    const auto at_second = *next_scan_cursor(before, 1, 99);
    // A master before it left: found again by its address check, with its own cursor.
    const auto fewer = nodes({7001, 7002});
    auto step = resume_scan(*scan_cursor::parse(std::to_string(at_second)), fewer);
    ASSERT_TRUE(step);
    EXPECT_EQ(fewer[step->index].port, 7001);
    EXPECT_EQ(step->node_cursor, 99U);
    // It was replaced (a failover: another address): the master now in its place, from 0
    // (unless another master happens to share its 7-bit check: then that one).
    const auto replaced = nodes({7000, 7005, 7002});
    const auto gone = scan_cursor::address_check(cluster::node_address{"127.0.0.1", 7001});
    const bool shared = std::ranges::any_of(
        replaced, [&](const auto& n) { return scan_cursor::address_check(n) == gone; });
    step = resume_scan(*scan_cursor::parse(std::to_string(at_second)), replaced);
    ASSERT_TRUE(step);
    if (!shared) {
        EXPECT_EQ(step->index, 1U);
        EXPECT_EQ(step->node_cursor, 0U);
    }
    // Past every master: nothing left.
    const auto one = nodes({7009});
    const auto at_third = *next_scan_cursor(before, 2, 5);
    if (scan_cursor::address_check(one[0]) != scan_cursor::address_check(before[2])) {
        EXPECT_FALSE(resume_scan(*scan_cursor::parse(std::to_string(at_third)), one));
    }
}

}  // namespace
}  // namespace respite::proxy
