// Stripes: in-flight counts, generations, origin conflicts; lanes by hash tag.
#include "stripe_table.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <respite/cluster/slot.hpp>

using respite::proxy::replay::stripe_table;

TEST(stripe_table, begin_and_end_track_in_flight_and_bump_generation) {
    stripe_table t;
    const auto s = stripe_table::stripe_of("key");
    EXPECT_EQ(t.load(s), (stripe_table::state{0, 0}));
    EXPECT_FALSE(t.begin(s, 1));
    EXPECT_EQ(t.load(s), (stripe_table::state{1, 1}));
    t.end(s);
    EXPECT_EQ(t.load(s), (stripe_table::state{0, 1}));
}

TEST(stripe_table, same_origin_pipelines_without_conflict) {
    stripe_table t;
    const auto s = stripe_table::stripe_of("k");
    EXPECT_FALSE(t.begin(s, 7));
    EXPECT_FALSE(t.begin(s, 7));
    EXPECT_FALSE(t.busy_for(s, 7));
    EXPECT_TRUE(t.busy_for(s, 8));
    // Another origin while 7 is in flight: the primary's order between them is unknown.
    EXPECT_TRUE(t.begin(s, 8));
    t.end(s);
    t.end(s);
    t.end(s);
    // Idle again: the next origin owns it.
    EXPECT_FALSE(t.begin(s, 8));
    EXPECT_EQ(t.load(s).in_flight, 1u);
    EXPECT_EQ(t.load(s).generation, 4u);
}

TEST(stripe_table, concurrent_begin_end_balance) {
    stripe_table t;
    const auto s = stripe_table::stripe_of("hot");
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&t, s] {
            for (int n = 0; n < 10000; ++n) {
                t.begin(s, 1);
                t.end(s);
            }
        });
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(t.load(s).in_flight, 0u);
    EXPECT_EQ(t.load(s).generation, 40000u);
}

TEST(key_lanes, hash_tags_share_a_slot) {
    using respite::cluster::hash_slot;
    EXPECT_EQ(hash_slot("{user1}.a"), hash_slot("{user1}.b"));
    EXPECT_EQ(hash_slot("{user1}.a") % 8, hash_slot("user1") % 8);
}
