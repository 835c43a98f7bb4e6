// Sampling: deterministic per key, proportional, and exact for keyless reads.
#include <string>

#include <gtest/gtest.h>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy {
namespace {

TEST(shadow_sampling, bounds) {
    EXPECT_FALSE(sampled("k", 0));
    EXPECT_FALSE(sampled("k", -5));
    EXPECT_TRUE(sampled("k", 100));
    EXPECT_TRUE(sampled("k", 250));
    EXPECT_FALSE(sampled("k", std::numeric_limits<double>::quiet_NaN()));
}

TEST(shadow_sampling, same_key_same_answer) {
    for (int i = 0; i < 200; ++i) {
        const std::string key = "user:" + std::to_string(i);
        EXPECT_EQ(sampled(key, 10), sampled(key, 10));
    }
}

TEST(shadow_sampling, stable_across_builds_and_platforms) {
    // Pinned: every proxy replica, build and platform must shadow the same keys. The key's
    // position in [0, 100) is hash % 1'000'000 / 10'000: user:1 74.86, user:2 69.78,
    // user:3 14.40, "" 2.62, a 98.37.
    EXPECT_FALSE(sampled("user:1", 74.86));
    EXPECT_TRUE(sampled("user:1", 74.87));
    EXPECT_TRUE(sampled("user:2", 70));
    EXPECT_FALSE(sampled("user:2", 69.77));
    EXPECT_TRUE(sampled("user:3", 14.5));
    EXPECT_FALSE(sampled("user:3", 14.3));
    EXPECT_TRUE(sampled("", 2.7));
    EXPECT_FALSE(sampled("a", 98));
    int hits = 0;
    for (int i = 0; i < 100; ++i) {
        hits += sampled("user:" + std::to_string(i), 50) ? 1 : 0;
    }
    EXPECT_EQ(hits, 54);
}

TEST(shadow_sampling, proportion_is_roughly_the_percentage) {
    for (const double percent : {1.0, 10.0, 50.0, 90.0}) {
        int hits = 0;
        constexpr int n = 100'000;
        for (int i = 0; i < n; ++i) {
            hits += sampled("key:" + std::to_string(i), percent) ? 1 : 0;
        }
        const double got = 100.0 * hits / n;
        EXPECT_NEAR(got, percent, percent * 0.1 + 0.2) << percent;
    }
}

TEST(shadow_sampling, raising_the_percentage_keeps_earlier_keys) {
    for (int i = 0; i < 5000; ++i) {
        const std::string key = "k" + std::to_string(i);
        if (sampled(key, 5)) {
            EXPECT_TRUE(sampled(key, 20)) << key;
        }
    }
}

TEST(shadow_sampling, keyless_counter_is_exact_and_spread) {
    keyless_sampler s;
    int hits = 0;
    int longest_gap = 0;
    int gap = 0;
    for (int i = 0; i < 1000; ++i) {
        if (s.next(10)) {
            ++hits;
            longest_gap = std::max(longest_gap, gap);
            gap = 0;
        } else {
            ++gap;
        }
    }
    EXPECT_EQ(hits, 100);
    EXPECT_LE(longest_gap, 9);

    keyless_sampler all;
    keyless_sampler none;
    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(all.next(100));
        EXPECT_FALSE(none.next(0));
    }
}

}  // namespace
}  // namespace respite::proxy
