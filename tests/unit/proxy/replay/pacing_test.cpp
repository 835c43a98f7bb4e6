// Repair pacing: the token bucket; rate-limited logging.
#include "pacing.hpp"

#include <chrono>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using respite::proxy::replay::log_limiter;
using respite::proxy::replay::steady;
using respite::proxy::replay::token_bucket;

TEST(token_bucket, bursts_then_refills_at_rate) {
    const auto t0 = steady::now();
    token_bucket b(1000, t0);  // burst 100
    EXPECT_EQ(b.take(t0, 500), 100u);
    EXPECT_EQ(b.take(t0, 1), 0u);
    EXPECT_GT(b.wait_for_one(t0), steady::duration::zero());
    EXPECT_EQ(b.take(t0 + 10ms, 500), 10u);
    b.give_back(5);
    EXPECT_EQ(b.take(t0 + 10ms, 500), 5u);
}

TEST(token_bucket, zero_rate_is_unlimited) {
    const auto t0 = steady::now();
    token_bucket b(0, t0);
    EXPECT_EQ(b.take(t0, 12345), 12345u);
    EXPECT_EQ(b.wait_for_one(t0), steady::duration::zero());
}

TEST(log_limiter, one_line_per_period_with_suppressed_count) {
    log_limiter l(1h);
    std::uint64_t suppressed = 99;
    EXPECT_TRUE(l.allow(suppressed));
    EXPECT_EQ(suppressed, 0u);
    EXPECT_FALSE(l.allow(suppressed));
    EXPECT_FALSE(l.allow(suppressed));
}
