// pubsub_shadow: matching in both orders, duplicates, the window's edges, late copies,
// unsubscribe and close inside the window, and the bound on pending messages.
#include <chrono>

#include <gtest/gtest.h>

#include <respite/proxy/pubsub_shadow.hpp>

namespace respite::proxy {
namespace {

// Options with a few fields set (designated initialisers that skip fields warn on GCC 12).
template <class T, class F>
T options(F set) {
    T o;
    set(o);
    return o;
}

using namespace std::chrono_literals;
using tp = std::chrono::steady_clock::time_point;

constexpr tp t0 = tp{} + 1h;
const std::chrono::system_clock::time_point wall{std::chrono::seconds(1'700'000'000)};

pubsub_shadow make(std::chrono::steady_clock::duration window = 2s) {
    return pubsub_shadow(
        options<pubsub_shadow_options>([&](pubsub_shadow_options& o) { o.window = window; }));
}

TEST(pubsub_shadow, primary_then_secondary_matches) {
    auto s = make();
    s.record_primary("", "news", "hello", t0);
    s.record_secondary("", "news", "hello", t0 + 500ms);
    EXPECT_EQ(s.pending(), 0U);
    EXPECT_TRUE(s.sweep(t0 + 10s, wall).empty());
    EXPECT_EQ(s.counters().matched, 1U);
}

TEST(pubsub_shadow, secondary_then_primary_matches) {
    auto s = make();
    s.record_secondary("", "news", "hello", t0);
    s.record_primary("", "news", "hello", t0 + 1s);
    EXPECT_TRUE(s.sweep(t0 + 10s, wall).empty());
    EXPECT_EQ(s.counters().matched, 1U);
}

TEST(pubsub_shadow, order_between_messages_does_not_matter) {
    auto s = make();
    s.record_primary("", "c", "1", t0);
    s.record_primary("", "c", "2", t0 + 1ms);
    s.record_secondary("", "c", "2", t0 + 2ms);
    s.record_secondary("", "c", "1", t0 + 3ms);
    EXPECT_TRUE(s.sweep(t0 + 10s, wall).empty());
    EXPECT_EQ(s.counters().matched, 2U);
}

TEST(pubsub_shadow, duplicates_are_a_multiset) {
    auto s = make();
    s.record_primary("", "c", "x", t0);
    s.record_primary("", "c", "x", t0 + 1ms);
    s.record_secondary("", "c", "x", t0 + 2ms);
    const auto out = s.sweep(t0 + 3s, wall);
    ASSERT_EQ(out.size(), 1U);  // one copy is missing on the secondary
    EXPECT_EQ(out[0].kind, divergence_kind::data_mismatch);
    EXPECT_EQ(s.counters().matched, 1U);
}

TEST(pubsub_shadow, pattern_channel_and_payload_all_count) {
    auto s = make();
    s.record_primary("n*", "news", "x", t0);
    s.record_secondary("", "news", "x", t0 + 1ms);  // a plain delivery is another message
    const auto out = s.sweep(t0 + 3s, wall);
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0].command, "psubscribe");
    EXPECT_EQ(out[0].pattern, "n*");
    EXPECT_EQ(out[0].key, "news");
    EXPECT_EQ(out[0].primary, "x");
    EXPECT_EQ(out[1].kind, divergence_kind::extra_data);
    EXPECT_EQ(out[1].command, "subscribe");
    EXPECT_EQ(out[1].secondary, "x");
}

TEST(pubsub_shadow, missing_on_secondary_is_reported_after_the_window) {
    auto s = make();
    s.record_primary("", "c", "p", t0);
    EXPECT_TRUE(s.sweep(t0 + 2s, wall).empty());  // exactly the window: still waiting
    const auto out = s.sweep(t0 + 2s + 1ns, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].kind, divergence_kind::data_mismatch);
    EXPECT_EQ(out[0].at, wall - 2s - 1ns);
    EXPECT_TRUE(s.sweep(t0 + 5s, wall).empty());  // reported once
    EXPECT_EQ(s.counters().missing_on_secondary, 1U);
}

TEST(pubsub_shadow, extra_on_secondary_is_reported_after_the_window) {
    auto s = make();
    s.record_secondary("", "c", "s", t0);
    const auto out = s.sweep(t0 + 3s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].kind, divergence_kind::extra_data);
    EXPECT_EQ(s.counters().extra_on_secondary, 1U);
}

TEST(pubsub_shadow, copies_exactly_a_window_apart_match) {
    auto s = make();
    s.record_primary("", "c", "p", t0);
    s.record_secondary("", "c", "p", t0 + 2s);
    EXPECT_EQ(s.counters().matched, 1U);
    s.record_primary("", "c", "q", t0);
    s.record_secondary("", "c", "q", t0 + 2s + 1ns);
    EXPECT_EQ(s.counters().matched, 1U);
    EXPECT_EQ(s.counters().late, 1U);
}

TEST(pubsub_shadow, late_secondary_after_the_report_is_not_reported_again) {
    auto s = make();
    s.record_primary("", "c", "p", t0);
    ASSERT_EQ(s.sweep(t0 + 3s, wall).size(), 1U);
    s.record_secondary("", "c", "p", t0 + 4s);
    EXPECT_TRUE(s.sweep(t0 + 30s, wall).empty());
    EXPECT_EQ(s.counters().late, 1U);
    EXPECT_EQ(s.counters().extra_on_secondary, 0U);
}

TEST(pubsub_shadow, late_secondary_before_the_sweep_reports_the_primary_once) {
    auto s = make();
    s.record_primary("", "c", "p", t0);
    s.record_secondary("", "c", "p", t0 + 5s);  // too late, and no sweep ran yet
    const auto out = s.sweep(t0 + 6s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].kind, divergence_kind::data_mismatch);
    EXPECT_TRUE(s.sweep(t0 + 30s, wall).empty());
    EXPECT_EQ(s.counters().late, 1U);
}

TEST(pubsub_shadow, late_primary_after_an_extra_report_is_not_reported_again) {
    auto s = make();
    s.record_secondary("", "c", "p", t0);
    ASSERT_EQ(s.sweep(t0 + 3s, wall).size(), 1U);
    s.record_primary("", "c", "p", t0 + 4s);
    EXPECT_TRUE(s.sweep(t0 + 30s, wall).empty());
}

TEST(pubsub_shadow, reports_are_forgotten_after_the_late_grace) {
    pubsub_shadow s(options<pubsub_shadow_options>([&](pubsub_shadow_options& o) {
        o.window = 2s;
        o.late_grace = 10s;
    }));
    s.record_primary("", "c", "p", t0);
    ASSERT_EQ(s.sweep(t0 + 3s, wall).size(), 1U);
    s.sweep(t0 + 20s, wall);
    s.record_secondary("", "c", "p", t0 + 21s);
    const auto out = s.sweep(t0 + 30s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].kind, divergence_kind::extra_data);
}

TEST(pubsub_shadow, a_wider_window_absorbs_queue_lag) {
    auto s = make();
    s.set_window(10s);  // the caller passes the replay lag in
    EXPECT_EQ(s.window(), 10s);
    s.record_primary("", "c", "p", t0);
    EXPECT_TRUE(s.sweep(t0 + 6s, wall).empty());
    s.record_secondary("", "c", "p", t0 + 7s);
    EXPECT_EQ(s.counters().matched, 1U);
}

TEST(pubsub_shadow, unsubscribe_inside_the_window_reports_nothing) {
    auto s = make();
    s.record_primary("", "news", "a", t0);
    s.record_secondary("", "news", "b", t0 + 100ms);
    s.record_primary("", "other", "c", t0);
    EXPECT_TRUE(s.unsubscribe("news", t0 + 1s, wall).empty());
    EXPECT_EQ(s.counters().unverified, 2U);
    EXPECT_EQ(s.pending(), 1U);  // "other" is untouched
}

TEST(pubsub_shadow, unsubscribe_reports_only_messages_older_than_the_window) {
    auto s = make();
    s.record_primary("", "news", "old", t0);
    s.record_primary("", "news", "young", t0 + 2500ms);
    const auto out = s.unsubscribe("news", t0 + 3s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].primary, "old");
    EXPECT_EQ(s.counters().unverified, 1U);
}

TEST(pubsub_shadow, copies_arriving_just_after_unsubscribe_are_not_reported) {
    auto s = make();
    s.record_primary("", "news", "a", t0);
    s.unsubscribe("news", t0 + 100ms, wall);
    s.record_secondary("", "news", "a", t0 + 200ms);  // the secondary's unsubscribe lags
    EXPECT_TRUE(s.sweep(t0 + 10s, wall).empty());
    EXPECT_EQ(s.counters().unverified, 2U);
}

TEST(pubsub_shadow, subscribing_again_ends_the_quiet_period) {
    auto s = make();
    s.unsubscribe("news", t0, wall);
    s.subscribe("news");
    s.record_primary("", "news", "a", t0 + 100ms);
    EXPECT_EQ(s.sweep(t0 + 5s, wall).size(), 1U);
}

TEST(pubsub_shadow, punsubscribe_matches_pattern_deliveries) {
    auto s = make();
    s.record_primary("n*", "news", "a", t0);
    s.record_primary("", "news", "b", t0);
    EXPECT_TRUE(s.unsubscribe("n*", t0 + 1s, wall).empty());
    EXPECT_EQ(s.counters().unverified, 1U);
    EXPECT_EQ(s.pending(), 1U);
}

TEST(pubsub_shadow, close_inside_the_window_reports_nothing) {
    auto s = make();
    s.record_primary("", "c", "a", t0);
    s.record_secondary("", "d", "b", t0 + 1s);
    EXPECT_TRUE(s.close(t0 + 1500ms, wall).empty());
    EXPECT_EQ(s.counters().unverified, 2U);
    EXPECT_EQ(s.pending(), 0U);
}

TEST(pubsub_shadow, close_reports_expired_messages_then_ignores_records) {
    auto s = make();
    s.record_primary("", "c", "a", t0);
    s.record_primary("", "c", "b", t0 + 4s);
    const auto out = s.close(t0 + 5s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].primary, "a");
    s.record_secondary("", "c", "b", t0 + 5100ms);
    EXPECT_TRUE(s.sweep(t0 + 30s, wall).empty());
    EXPECT_EQ(s.counters().unverified, 2U);
}

TEST(pubsub_shadow, reopen_after_close_compares_again) {
    auto s = make();
    s.record_primary("", "c", "a", t0);
    EXPECT_TRUE(s.close(t0 + 1s, wall).empty());
    s.reopen(t0 + 2s);
    s.subscribe("c");
    // Within a window of the reopen: matched if its twin comes, never reported if not (its twin
    // may have come while closed), even when the twin comes after the window's end.
    s.record_secondary("", "c", "sent-while-closed", t0 + 2500ms);
    s.record_primary("", "c", "straddles", t0 + 3900ms);
    s.record_secondary("", "c", "straddles", t0 + 4100ms);
    EXPECT_TRUE(s.sweep(t0 + 4500ms, wall).empty());
    EXPECT_EQ(s.pending(), 1U);  // sent-while-closed, still inside its window
    s.record_primary("", "c", "b", t0 + 5s);
    s.record_secondary("", "c", "b", t0 + 5100ms);
    s.record_primary("", "c", "only-primary", t0 + 6s);
    const auto out = s.sweep(t0 + 20s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].primary, "only-primary");
    EXPECT_EQ(s.counters().matched, 2U);
}

TEST(pubsub_shadow, pending_messages_are_bounded) {
    pubsub_shadow s(
        options<pubsub_shadow_options>([&](pubsub_shadow_options& o) { o.max_pending = 3; }));
    for (int i = 0; i < 5; ++i) {
        s.record_primary("", "c", std::to_string(i), t0);
    }
    EXPECT_EQ(s.pending(), 3U);
    EXPECT_EQ(s.counters().overflow, 2U);
    // A copy that matches needs no room.
    s.record_secondary("", "c", "0", t0 + 1ms);
    EXPECT_EQ(s.counters().matched, 1U);
    EXPECT_EQ(s.sweep(t0 + 3s, wall).size(), 2U);
    EXPECT_EQ(s.pending(), 0U);
}

TEST(pubsub_shadow, sweep_returns_divergences_in_arrival_order) {
    auto s = make();
    s.record_secondary("", "b", "2", t0 + 2ms);
    s.record_primary("", "z", "1", t0 + 1ms);
    s.record_primary("", "a", "3", t0 + 3ms);
    const auto out = s.sweep(t0 + 5s, wall);
    ASSERT_EQ(out.size(), 3U);
    EXPECT_EQ(out[0].key, "z");
    EXPECT_EQ(out[1].key, "b");
    EXPECT_EQ(out[2].key, "a");
}

TEST(pubsub_shadow, payloads_are_displayed_safely) {
    auto s = make();
    s.record_primary("", "c", std::string(1000, '\x01'), t0);
    const auto out = s.sweep(t0 + 3s, wall);
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].primary.size(), divergence_display_limit);
    EXPECT_TRUE(out[0].primary.starts_with("\\x01"));
}

}  // namespace
}  // namespace respite::proxy
