#include <memory>
#include <string>

#include <gtest/gtest.h>

#include <respite/proxy/ring.hpp>

namespace respite::proxy {
namespace {

TEST(Ring, KeepsOrderAcrossWrapAndGrowth) {
    ring<std::string> r;
    std::size_t pushed = 0;
    std::size_t popped = 0;
    // Interleave pushes and pops so the head wraps around before and after each doubling.
    for (int round = 0; round < 200; ++round) {
        for (int i = 0; i < 3 + round % 7; ++i)
            r.push_back("value-" + std::to_string(pushed++));
        for (int i = 0; i < 2 + round % 5 && !r.empty(); ++i) {
            ASSERT_EQ(r.front(), "value-" + std::to_string(popped));
            r.pop_front();
            ++popped;
        }
        ASSERT_EQ(r.size(), pushed - popped);
        for (std::size_t k = 0; k < r.size(); ++k)
            ASSERT_EQ(r[k], "value-" + std::to_string(popped + k));
        if (!r.empty()) {
            ASSERT_EQ(r.back(), "value-" + std::to_string(pushed - 1));
        }
    }
    EXPECT_GE(r.capacity(), r.size());
}

TEST(Ring, StopsAllocatingOnceItHoldsTheDeepestQueue) {
    ring<int> r;
    for (int i = 0; i < 100; ++i)
        r.push_back(i);
    const auto cap = r.capacity();
    for (int n = 0; n < 10000; ++n) {
        r.pop_front();
        r.push_back(n);
    }
    EXPECT_EQ(r.capacity(), cap);
    EXPECT_EQ(r.size(), 100u);
}

TEST(Ring, GivesBackALargeRoomWhenItEmpties) {
    ring<int> r;
    for (int i = 0; i < 5000; ++i)
        r.push_back(i);
    EXPECT_GT(r.capacity(), ring<int>::k_keep);
    for (int i = 0; i < 4999; ++i)
        r.pop_front();
    EXPECT_GT(r.capacity(), ring<int>::k_keep);  // not while it still holds one
    EXPECT_EQ(r.front(), 4999);
    r.pop_front();
    EXPECT_EQ(r.capacity(), 0u);
    r.push_back(7);  // and grows again from small
    EXPECT_EQ(r.front(), 7);
    EXPECT_LE(r.capacity(), 16u);
    // A small one keeps its room.
    for (int i = 0; i < 100; ++i)
        r.push_back(i);
    while (!r.empty())
        r.pop_front();
    EXPECT_EQ(r.capacity(), 128u);
}

TEST(Ring, DestroysWhatItHoldsAndMovesOut) {
    auto counted = std::make_shared<int>(0);
    {
        ring<std::shared_ptr<int>> r;
        for (int i = 0; i < 40; ++i)
            r.push_back(counted);
        r.pop_front();
        EXPECT_EQ(counted.use_count(), 40);
        ring<std::shared_ptr<int>> moved = std::move(r);
        EXPECT_TRUE(r.empty());
        EXPECT_EQ(moved.size(), 39u);
        r.push_back(counted);  // a moved-from ring is usable again
        EXPECT_EQ(counted.use_count(), 41);
        moved.clear();
        EXPECT_EQ(counted.use_count(), 2);
    }
    EXPECT_EQ(counted.use_count(), 1);
}

}  // namespace
}  // namespace respite::proxy
