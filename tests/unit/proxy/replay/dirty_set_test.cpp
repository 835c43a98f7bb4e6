// The dirty key set: de-duplicated, FIFO with urgent keys first, bounded.
#include "dirty_set.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

using respite::proxy::replay::dirty_set;

TEST(dirty_set, fifo_without_duplicates) {
    dirty_set d(10);
    EXPECT_EQ(d.add("a"), dirty_set::add_result::added);
    EXPECT_EQ(d.add("b"), dirty_set::add_result::added);
    EXPECT_EQ(d.add("a"), dirty_set::add_result::present);
    EXPECT_EQ(d.size(), 2u);
    EXPECT_TRUE(d.contains("b"));
    EXPECT_EQ(d.pop(), "a");
    EXPECT_FALSE(d.contains("a"));
    EXPECT_EQ(d.add("a"), dirty_set::add_result::added);
    EXPECT_EQ(d.pop(), "b");
    EXPECT_EQ(d.pop(), "a");
    EXPECT_EQ(d.pop(), std::nullopt);
    EXPECT_TRUE(d.empty());
}

TEST(dirty_set, urgent_keys_come_first) {
    dirty_set d(10);
    d.add("old");
    d.add("urgent", true);
    EXPECT_EQ(d.pop(), "urgent");
    EXPECT_EQ(d.pop(), "old");
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
        ASSERT_EQ(d.pop(), std::string(40, 'k') + std::to_string(i) + std::string(1, '\0'));
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
