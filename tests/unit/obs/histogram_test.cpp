// Histogram buckets, totals and quantile estimates.
#include <cmath>
#include <cstdint>
#include <limits>

#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>

namespace respite::obs {
namespace {

TEST(histogram, bounds_span_one_microsecond_to_sixty_seconds) {
    const auto& b = histogram::bounds_us();
    ASSERT_EQ(b.size(), 39U);
    EXPECT_EQ(b.front(), 1U);
    EXPECT_EQ(b.back(), 60'000'000U);
    for (std::size_t i = 1; i < b.size(); ++i) {
        EXPECT_LT(b[i - 1], b[i]) << "at " << i;
    }
    // Microsecond resolution where it matters for a local Redis round trip.
    EXPECT_EQ(b[0], 1U);
    EXPECT_EQ(b[1], 2U);
    EXPECT_EQ(b[2], 3U);
    EXPECT_EQ(b[3], 5U);
    EXPECT_EQ(b[4], 7U);
    EXPECT_EQ(b[5], 10U);
}

TEST(histogram, value_on_a_bound_lands_in_that_bucket_and_one_more_in_the_next) {
    const auto& b = histogram::bounds_us();
    for (std::size_t i = 0; i < b.size(); ++i) {
        histogram h;
        h.observe_us(b[i]);
        h.observe_us(b[i] + 1);
        EXPECT_EQ(h.bucket_count(i), 1U) << "bound " << b[i];
        EXPECT_EQ(h.bucket_count(i + 1), 1U) << "bound " << b[i];
        EXPECT_EQ(h.count(), 2U);
    }
}

TEST(histogram, zero_goes_to_the_first_bucket_and_huge_values_to_inf) {
    histogram h;
    h.observe_us(0);
    h.observe_us(std::numeric_limits<std::uint64_t>::max() / 2);
    const std::size_t inf = histogram::bounds_us().size();
    EXPECT_EQ(h.bucket_count(0), 1U);
    EXPECT_EQ(h.bucket_count(inf), 1U);
    EXPECT_EQ(h.bucket_count(inf + 1), 0U);  // out of range reads as empty
}

TEST(histogram, count_and_sum) {
    histogram h;
    EXPECT_EQ(h.count(), 0U);
    EXPECT_EQ(h.sum_us(), 0U);
    h.observe_us(5);
    h.observe_us(1'500);
    h.observe_us(2'000'000);
    EXPECT_EQ(h.count(), 3U);
    EXPECT_EQ(h.sum_us(), 2'001'505U);
}

TEST(histogram, quantile_of_empty_is_zero) {
    histogram h;
    EXPECT_EQ(h.quantile_us(0.5), 0U);
    EXPECT_EQ(h.quantile_us(0.99), 0U);
}

TEST(histogram, quantiles_report_the_upper_bound_of_the_bucket_holding_the_rank) {
    histogram h;
    for (std::uint64_t v = 1; v <= 100; ++v) {
        h.observe_us(v);
    }
    // Cumulative counts by bound: 1:1 2:2 3:3 5:5 7:7 10:10 20:20 30:30 50:50 70:70 100:100.
    EXPECT_EQ(h.quantile_us(0.0), 1U);
    EXPECT_EQ(h.quantile_us(0.01), 1U);
    EXPECT_EQ(h.quantile_us(0.02), 2U);
    EXPECT_EQ(h.quantile_us(0.04), 5U);
    EXPECT_EQ(h.quantile_us(0.3), 30U);
    EXPECT_EQ(h.quantile_us(0.31), 50U);
    EXPECT_EQ(h.quantile_us(0.5), 50U);
    EXPECT_EQ(h.quantile_us(0.9), 100U);
    EXPECT_EQ(h.quantile_us(0.99), 100U);
    EXPECT_EQ(h.quantile_us(1.0), 100U);
}

TEST(histogram, quantile_clamps_its_argument) {
    histogram h;
    h.observe_us(3);
    h.observe_us(700);
    EXPECT_EQ(h.quantile_us(-1.0), 3U);
    EXPECT_EQ(h.quantile_us(std::nan("")), 3U);
    EXPECT_EQ(h.quantile_us(2.0), 700U);
}

TEST(histogram, quantile_in_the_overflow_bucket_reports_the_highest_finite_bound) {
    histogram h;
    h.observe_us(10);
    h.observe_us(120'000'000);
    EXPECT_EQ(h.quantile_us(0.5), 10U);
    EXPECT_EQ(h.quantile_us(0.99), 60'000'000U);
}

// A batch adds exactly what direct observations would, and only when flushed.
TEST(histogram_batch, flush_adds_what_direct_observations_would) {
    histogram direct;
    histogram batched;
    histogram_batch batch(batched);
    // More distinct buckets than the batch holds at once (it flushes early then).
    std::uint64_t v = 0;
    for (int i = 0; i < 500; ++i) {
        v = (v * 7 + 13) % 250'000;
        direct.observe_us(v);
        batch.observe_us(v);
    }
    direct.observe_us(120'000'000);
    batch.observe_us(120'000'000);
    EXPECT_FALSE(batch.empty());
    batch.flush();
    EXPECT_TRUE(batch.empty());
    EXPECT_EQ(batched.count(), direct.count());
    EXPECT_EQ(batched.sum_us(), direct.sum_us());
    for (std::size_t i = 0; i <= histogram::bounds_us().size(); ++i)
        EXPECT_EQ(batched.bucket_count(i), direct.bucket_count(i)) << "bucket " << i;
}

TEST(histogram_batch, holds_observations_until_flushed_and_flushes_when_destroyed) {
    histogram h;
    {
        histogram_batch batch(h);
        batch.observe_us(3);
        batch.observe_us(3);
        batch.observe_us(40);
        EXPECT_EQ(h.count(), 0U);
        batch.flush();
        EXPECT_EQ(h.count(), 3U);
        EXPECT_EQ(h.sum_us(), 46U);
        EXPECT_EQ(h.bucket_count(histogram::bucket_of(3)), 2U);
        batch.flush();  // nothing new: no change
        EXPECT_EQ(h.count(), 3U);
        batch.observe_us(7);
    }
    EXPECT_EQ(h.count(), 4U);
    EXPECT_EQ(h.bucket_count(histogram::bucket_of(7)), 1U);
}

}  // namespace
}  // namespace respite::obs
