// Repair pacing: the token bucket; rate-limited logging; repair batch sizes; a copy's TTL.
#include "pacing.hpp"

#include <chrono>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using respite::proxy::replay::log_limiter;
using respite::proxy::replay::repair_batch_sizer;
using respite::proxy::replay::restore_ttl;
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

TEST(token_bucket, a_new_rate_applies_from_now_on) {
    const auto t0 = steady::now();
    token_bucket b(1000, t0);  // burst 100
    EXPECT_EQ(b.take(t0, 500), 100u);
    b.set_rate(100, t0 + 10ms);  // 10 tokens earned at the old rate, burst 10 now
    EXPECT_EQ(b.take(t0 + 10ms, 500), 10u);
    EXPECT_EQ(b.take(t0 + 110ms, 500), 10u);  // 100 ms at 100/s
    b.set_rate(0, t0 + 110ms);
    EXPECT_EQ(b.take(t0 + 110ms, 12345), 12345u);
    EXPECT_EQ(b.wait_for_one(t0 + 110ms), steady::duration::zero());
    b.set_rate(10, t0 + 120ms);  // from unlimited: at most the new burst (1)
    EXPECT_LE(b.take(t0 + 120ms, 500), 1u);
    EXPECT_EQ(b.take(t0 + 220ms, 500), 1u);
}

TEST(log_limiter, one_line_per_period_with_suppressed_count) {
    log_limiter l(1h);
    std::uint64_t suppressed = 99;
    EXPECT_TRUE(l.allow(suppressed));
    EXPECT_EQ(suppressed, 0u);
    EXPECT_FALSE(l.allow(suppressed));
    EXPECT_FALSE(l.allow(suppressed));
}

// PTTL -1 (no expiry) restores without one; a key in its last millisecond (PTTL 0) must not
// become permanent (RESTORE 0 means no expiry).
TEST(restore_ttl, a_key_about_to_expire_keeps_an_expiry) {
    EXPECT_EQ(restore_ttl(-1), 0);
    EXPECT_EQ(restore_ttl(0), 1);
    EXPECT_EQ(restore_ttl(1), 1);
    EXPECT_EQ(restore_ttl(90'000), 90'000);
}

// Batches start at one key, grow to the cap for small values and shrink to what fits the budget
// for big ones (at least one key).
TEST(repair_batch_sizer, follows_the_payloads_seen) {
    repair_batch_sizer s(256, 1'000'000);
    EXPECT_EQ(s.next(), 1U);
    s.observe(1, 40);  // 40-byte values
    EXPECT_EQ(s.next(), 256U);
    s.observe(256, 256 * 100'000);  // 100 KB values
    EXPECT_EQ(s.next(), 10U);
    s.observe(10, 10 * 5'000'000);  // 5 MB values
    EXPECT_EQ(s.next(), 1U);
    s.observe(0, 0);  // nothing read: unchanged
    EXPECT_EQ(s.next(), 1U);
}

TEST(longest_bulk, reads_every_argument_of_every_command) {
    using respite::proxy::replay::longest_bulk;
    EXPECT_EQ(longest_bulk(""), 0u);
    EXPECT_EQ(longest_bulk("*1\r\n$4\r\nPING\r\n"), 4u);
    EXPECT_EQ(longest_bulk("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n"), 10u);
    // A transaction: the longest is in its second command.
    EXPECT_EQ(longest_bulk("*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$12\r\n"
                           "0123456789ab\r\n*1\r\n$4\r\nEXEC\r\n"),
              12u);
    // A bulk holding CRLF and '$' is skipped by its length, not scanned.
    EXPECT_EQ(longest_bulk("*2\r\n$4\r\n\r\n$9\r\n$2\r\nab\r\n"), 4u);
    EXPECT_EQ(longest_bulk("*2\r\n$4\r\n\r\n$9\r\n$2\r\nab\r\n"
                           "*1\r\n$2\r\nab\r\n"),
              4u);
}

TEST(longest_bulk, stops_at_what_it_cannot_read) {
    using respite::proxy::replay::longest_bulk;
    EXPECT_EQ(longest_bulk("SET k v\r\n"), 0u);  // inline
    EXPECT_EQ(longest_bulk("*1\r\n$4\r\nPING\r\nSET k v\r\n"), 4u);
    EXPECT_EQ(longest_bulk("*2\r\n$3\r\nGET\r\n"), 3u);                 // fewer arguments than said
    EXPECT_EQ(longest_bulk("*1\r\n$100\r\nshort\r\n"), 100u);           // a length past the end
    EXPECT_EQ(longest_bulk("*1\r\n$99999999999999999999999\r\n"), 0u);  // overflows: not read
    EXPECT_EQ(longest_bulk("*1\r\n$-1\r\n"), 0u);
    EXPECT_EQ(longest_bulk("*1\r\n$3\r\nGETxx"), 3u);  // no CRLF after the bulk
    EXPECT_EQ(longest_bulk("*1\r\n$\r\n"), 0u);
    EXPECT_EQ(longest_bulk("*x\r\n"), 0u);
    static_assert(longest_bulk("*1\r\n$2\r\nab\r\n") == 2);
}
