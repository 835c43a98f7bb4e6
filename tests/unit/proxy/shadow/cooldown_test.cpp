// cooldown: the per-fingerprint period, and its bounded table.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include <respite/proxy/divergence.hpp>

namespace respite::proxy {
namespace {

using namespace std::chrono_literals;
using tp = std::chrono::steady_clock::time_point;

constexpr tp t0 = tp{} + 1h;

TEST(shadow_cooldown, first_report_passes_then_cools_down) {
    cooldown c(60s);
    EXPECT_TRUE(c.allow("a", t0));
    EXPECT_FALSE(c.allow("a", t0 + 1s));
    EXPECT_FALSE(c.allow("a", t0 + 59s));
    EXPECT_TRUE(c.allow("a", t0 + 60s));
    EXPECT_FALSE(c.allow("a", t0 + 61s));  // the period restarts at the last pass
}

TEST(shadow_cooldown, fingerprints_are_independent) {
    cooldown c(60s);
    EXPECT_TRUE(c.allow("a", t0));
    EXPECT_TRUE(c.allow("b", t0));
    EXPECT_EQ(c.size(), 2U);
}

TEST(shadow_cooldown, at_capacity_expired_entries_are_evicted) {
    cooldown c(10s, 3);
    EXPECT_TRUE(c.allow("a", t0));
    EXPECT_TRUE(c.allow("b", t0 + 5s));
    EXPECT_TRUE(c.allow("c", t0 + 6s));
    // "a" expired at t0 + 10s: it goes, "b" and "c" stay.
    EXPECT_TRUE(c.allow("d", t0 + 12s));
    EXPECT_EQ(c.evicted(), 1U);
    EXPECT_EQ(c.size(), 3U);
    EXPECT_FALSE(c.allow("b", t0 + 13s));  // still cooling, was not evicted
}

TEST(shadow_cooldown, full_of_live_entries_refuses_and_counts) {
    cooldown c(10s, 2);
    EXPECT_TRUE(c.allow("a", t0));
    EXPECT_TRUE(c.allow("b", t0));
    EXPECT_FALSE(c.allow("c", t0 + 1s));
    EXPECT_FALSE(c.allow("d", t0 + 2s));
    EXPECT_EQ(c.refused(), 2U);
    EXPECT_EQ(c.size(), 2U);
    EXPECT_TRUE(c.allow("c", t0 + 10s));  // both expired: evicted, room again
}

TEST(shadow_cooldown, fingerprint_shape) {
    EXPECT_EQ(fingerprint(divergence_kind::data_mismatch, "GET"), "divergence_data_mismatch_get");
}

}  // namespace
}  // namespace respite::proxy
