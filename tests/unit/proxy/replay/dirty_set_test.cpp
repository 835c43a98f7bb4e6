// The dirty key set: de-duplicated, FIFO with urgent keys first, bounded, with a mark.
#include "dirty_set.hpp"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

using respite::proxy::replay::dirty_set;

namespace {
std::optional<std::string> next(dirty_set& d) {
    auto e = d.pop();
    return e ? std::optional<std::string>(e->key) : std::nullopt;
}
}  // namespace

TEST(dirty_set, fifo_without_duplicates) {
    dirty_set d(10);
    EXPECT_EQ(d.add("a"), dirty_set::add_result::added);
    EXPECT_EQ(d.add("b"), dirty_set::add_result::added);
    EXPECT_EQ(d.add("a"), dirty_set::add_result::present);
    EXPECT_EQ(d.size(), 2u);
    EXPECT_TRUE(d.contains("b"));
    EXPECT_EQ(next(d), "a");
    EXPECT_FALSE(d.contains("a"));
    EXPECT_EQ(d.add("a"), dirty_set::add_result::added);
    EXPECT_EQ(next(d), "b");
    EXPECT_EQ(next(d), "a");
    EXPECT_EQ(next(d), std::nullopt);
    EXPECT_TRUE(d.empty());
}

TEST(dirty_set, urgent_keys_come_first) {
    dirty_set d(10);
    d.add("old");
    d.add("urgent", true);
    EXPECT_EQ(next(d), "urgent");
    EXPECT_EQ(next(d), "old");
}

TEST(dirty_set, bounded) {
    dirty_set d(2);
    d.add("a");
    d.add("b");
    EXPECT_EQ(d.add("c"), dirty_set::add_result::over_capacity);
    EXPECT_EQ(d.add("a"), dirty_set::add_result::present);
    EXPECT_EQ(d.size(), 2u);
}

TEST(dirty_set, long_binary_keys_survive_growth) {
    dirty_set d(100000);
    for (int i = 0; i < 50000; ++i)
        d.add(std::string(40, 'k') + std::to_string(i) + std::string(1, '\0'));
    for (int i = 0; i < 50000; ++i)
        ASSERT_EQ(next(d), std::string(40, 'k') + std::to_string(i) + std::string(1, '\0'));
}

TEST(dirty_set, for_each_lists_every_key_in_repair_order_without_taking_them) {
    dirty_set d(10);
    d.add("b");
    d.add(std::string("n\0l", 3));
    d.add("first", true);
    std::vector<std::string> seen;
    d.for_each([&](std::string_view k) { seen.emplace_back(k); });
    EXPECT_EQ(seen, (std::vector<std::string>{"first", "b", std::string("n\0l", 3)}));
    EXPECT_EQ(d.size(), 3u);
}

TEST(dirty_set, counts_the_keys_dirty_at_the_mark_until_each_leaves_once) {
    dirty_set d(10);
    d.add("a");
    d.add("b");
    EXPECT_EQ(d.remaining_at_mark(), 0u);  // no mark yet
    d.mark();
    EXPECT_EQ(d.remaining_at_mark(), 2u);
    d.add("c");  // after the mark
    EXPECT_EQ(d.remaining_at_mark(), 2u);
    auto a = d.pop();
    ASSERT_TRUE(a);
    EXPECT_EQ(a->key, "a");
    EXPECT_EQ(d.remaining_at_mark(), 1u);
    // Its copy did not happen: back with its number, still owed.
    d.add(a->key, false, a->seq);
    EXPECT_EQ(d.remaining_at_mark(), 2u);
    // Copied (popped and not put back), then dirty again: a new number, above the mark.
    EXPECT_EQ(next(d), "b");
    EXPECT_EQ(d.remaining_at_mark(), 1u);
    d.add("b");
    EXPECT_EQ(d.remaining_at_mark(), 1u);
    EXPECT_EQ(next(d), "c");
    EXPECT_EQ(next(d), "a");
    EXPECT_EQ(d.remaining_at_mark(), 0u);
    EXPECT_EQ(d.size(), 1u);  // b, dirty after the mark
}

TEST(dirty_set, a_key_back_in_the_set_keeps_the_older_number) {
    dirty_set d(10);
    d.add("k");
    const auto m = d.mark();
    auto k = d.pop();
    ASSERT_TRUE(k);
    EXPECT_TRUE(d.at_or_below_mark(k->seq));
    d.add("k");  // a write turned it dirty again while its copy was being read
    EXPECT_EQ(d.remaining_at_mark(), 0u);
    EXPECT_EQ(d.add("k", false, k->seq), dirty_set::add_result::present);
    EXPECT_EQ(d.remaining_at_mark(), 1u);  // the old number wins: still owed
    EXPECT_EQ(d.current_mark(), m);
    // A new mark takes in everything present.
    d.add("z");
    d.mark();
    EXPECT_EQ(d.remaining_at_mark(), 2u);
}
