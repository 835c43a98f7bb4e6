// request_queue: FIFO matching, push routing, subscribe confirmations, deadlines, failures.
#include "request_queue.hpp"

#include <gtest/gtest.h>

#include <respite/client/error.hpp>

namespace rc = respite::client;
namespace rd = respite::client::detail;
using respite::resp::value;

namespace {

struct outcome {
    std::error_code ec;
    std::vector<value> replies;
    int calls = 0;
};

rd::completion record(outcome& o) {
    return [&o](std::error_code ec, std::vector<value>& r) {
        ++o.calls;
        o.ec = ec;
        o.replies.assign(r.begin(), r.end());
    };
}

value push_msg(const char* kind, const char* ch, const char* payload) {
    return value::push(
        {value::bulk_string(kind), value::bulk_string(ch), value::bulk_string(payload)});
}

}  // namespace

TEST(request_queue, replies_match_requests_in_order) {
    rd::request_queue q;
    outcome a, b;
    q.push("A", {}, record(a));
    q.push("BB", {2}, record(b));
    std::string out;
    q.take_staged(out);
    EXPECT_EQ(out, "ABB");
    EXPECT_EQ(q.written(), 2u);
    q.on_value(value::simple_string("a"));
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(a.replies.at(0).str(), "a");
    q.on_value(value::integer(1));
    EXPECT_EQ(b.calls, 0);
    q.on_value(value::integer(2));
    ASSERT_EQ(b.calls, 1);
    ASSERT_EQ(b.replies.size(), 2u);
    EXPECT_EQ(b.replies[1].integer(), 2);
    EXPECT_EQ(q.size(), 0u);
}

TEST(request_queue, pushes_between_replies_never_take_a_reply_slot) {
    rd::request_queue q;
    std::vector<value> pushes;
    q.set_push_sink([&](value&& v) { pushes.push_back(std::move(v)); });
    outcome a;
    q.push("A", {2}, record(a));
    std::string out;
    q.take_staged(out);
    EXPECT_EQ(q.on_value(push_msg("message", "c", "1")), rd::request_queue::value_route::push);
    q.on_value(value::bulk_string("r1"));
    q.on_value(push_msg("message", "c", "2"));
    q.on_value(value::bulk_string("r2"));
    ASSERT_EQ(a.calls, 1);
    EXPECT_EQ(a.replies[0].str(), "r1");
    EXPECT_EQ(a.replies[1].str(), "r2");
    EXPECT_EQ(pushes.size(), 2u);
}

TEST(request_queue, push_on_idle_queue_goes_to_sink) {
    rd::request_queue q;
    int pushes = 0;
    q.set_push_sink([&](value&&) { ++pushes; });
    EXPECT_EQ(q.on_value(push_msg("invalidate", "k", "")), rd::request_queue::value_route::push);
    EXPECT_EQ(pushes, 1);
}

TEST(request_queue, unsolicited_error_and_unexpected_reply_are_reported) {
    rd::request_queue q;
    EXPECT_EQ(q.on_value(value::simple_error("MISCONF no disk")),
              rd::request_queue::value_route::unsolicited_error);
    EXPECT_EQ(q.on_value(value::simple_string("OK")), rd::request_queue::value_route::unexpected);
}

TEST(request_queue, unsent_requests_do_not_take_replies) {
    rd::request_queue q;
    outcome a;
    q.push("A", {}, record(a));
    // Not yet written: a reply arriving now answers nothing.
    EXPECT_EQ(q.on_value(value::simple_string("x")), rd::request_queue::value_route::unexpected);
    EXPECT_EQ(a.calls, 0);
}

TEST(request_queue, resp2_pubsub_arrays_are_pushes_only_in_pubsub_mode) {
    rd::request_queue q;
    int pushes = 0;
    q.set_push_sink([&](value&&) { ++pushes; });
    outcome a;
    q.push("LRANGE", {}, record(a));
    std::string out;
    q.take_staged(out);
    value arr = value::array(
        {value::bulk_string("message"), value::bulk_string("c"), value::bulk_string("p")});
    q.on_value(value(arr));
    EXPECT_EQ(pushes, 0);
    EXPECT_EQ(a.calls, 1);
    q.set_resp2_pubsub(true);
    q.on_value(value(arr));
    EXPECT_EQ(pushes, 1);
    // "pong" (PING in RESP2 subscribe mode) is a reply, MESSAGE matched case-insensitively.
    outcome b;
    q.push("PING", {}, record(b));
    q.take_staged(out);
    q.on_value(value::array(
        {value::bulk_string("MESSAGE"), value::bulk_string("c"), value::bulk_string("p")}));
    EXPECT_EQ(pushes, 2);
    q.on_value(value::array({value::bulk_string("pong"), value::bulk_string("")}));
    EXPECT_EQ(b.calls, 1);
}

TEST(request_queue, subscribe_completes_after_one_confirmation_per_name) {
    rd::request_queue q;
    int pushes = 0;
    q.set_push_sink([&](value&&) { ++pushes; });
    outcome sub, denied, after;
    rd::request_options two{2, rd::clock::time_point::max(), rd::reply_mode::confirmations,
                            "subscribe"};
    rd::request_options one{1, rd::clock::time_point::max(), rd::reply_mode::confirmations,
                            "ssubscribe"};
    q.push("SUBSCRIBE a b", two, record(sub));
    q.push("SSUBSCRIBE x", one, record(denied));
    q.push("GET k", {}, record(after));
    std::string out;
    q.take_staged(out);
    // A message for another subscription is a push, not a confirmation.
    q.on_value(push_msg("message", "old", "m"));
    EXPECT_EQ(pushes, 1);
    q.on_value(
        value::push({value::bulk_string("subscribe"), value::bulk_string("a"), value::integer(1)}));
    EXPECT_EQ(sub.calls, 0);
    q.on_value(
        value::push({value::bulk_string("SUBSCRIBE"), value::bulk_string("b"), value::integer(2)}));
    ASSERT_EQ(sub.calls, 1);
    EXPECT_EQ(sub.replies[0].str(), "OK");
    // The error reply replaces every confirmation of that command.
    q.on_value(value::simple_error("NOPERM no"));
    ASSERT_EQ(denied.calls, 1);
    EXPECT_EQ(denied.replies[0].str(), "NOPERM no");
    q.on_value(value::bulk_string("v"));
    ASSERT_EQ(after.calls, 1);
    EXPECT_EQ(after.replies[0].str(), "v");
}

TEST(request_queue, expired_staged_requests_are_never_sent) {
    rd::request_queue q;
    auto now = rd::clock::now();
    outcome a, b, c;
    q.push("AAA", {1, now + std::chrono::seconds(10)}, record(a));
    q.push("BB", {1, now - std::chrono::seconds(1)}, record(b));
    q.push("C", {1, now + std::chrono::seconds(10)}, record(c));
    EXPECT_EQ(q.expire(now, rc::make_error_code(rc::error::timeout)), 1u);
    EXPECT_EQ(b.calls, 1);
    EXPECT_EQ(b.ec, rc::error::timeout);
    std::string out;
    q.take_staged(out);
    EXPECT_EQ(out, "AAAC");
    q.on_value(value::integer(1));
    q.on_value(value::integer(3));
    EXPECT_EQ(a.replies.at(0).integer(), 1);
    EXPECT_EQ(c.replies.at(0).integer(), 3);
}

TEST(request_queue, expired_written_request_keeps_its_slot_and_drops_the_late_reply) {
    rd::request_queue q;
    auto now = rd::clock::now();
    outcome a, b;
    q.push("A", {1, now}, record(a));
    q.push("B", {1, now + std::chrono::seconds(10)}, record(b));
    std::string out;
    q.take_staged(out);
    q.expire(now, rc::make_error_code(rc::error::timeout));
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(a.ec, rc::error::timeout);
    q.on_value(value::simple_string("late A"));
    EXPECT_EQ(a.calls, 1);  // not called twice
    q.on_value(value::simple_string("B"));
    ASSERT_EQ(b.calls, 1);
    EXPECT_EQ(b.replies[0].str(), "B");
}

TEST(request_queue, connection_loss_fails_written_and_keeps_staged) {
    rd::request_queue q;
    outcome a, b;
    q.push("A", {}, record(a));
    std::string out;
    q.take_staged(out);
    q.push("B", {}, record(b));
    q.fail_written(rc::make_error_code(rc::error::connection_lost));
    EXPECT_EQ(a.ec, rc::error::connection_lost);
    EXPECT_EQ(b.calls, 0);
    q.take_staged(out);
    EXPECT_EQ(out, "B");
    q.on_value(value::simple_string("b"));
    EXPECT_EQ(b.calls, 1);
}

TEST(request_queue, completion_may_enqueue_more_requests) {
    rd::request_queue q;
    outcome inner;
    int outer_calls = 0;
    q.push("A", {}, [&](std::error_code, std::vector<value>&) {
        ++outer_calls;
        q.push("B", {}, record(inner));
    });
    std::string out;
    q.take_staged(out);
    q.on_value(value::simple_string("a"));
    EXPECT_EQ(outer_calls, 1);
    q.take_staged(out);
    EXPECT_EQ(out, "B");
    q.on_value(value::simple_string("b"));
    EXPECT_EQ(inner.calls, 1);
}

TEST(request_queue, next_deadline_is_the_earliest_pending) {
    rd::request_queue q;
    auto now = rd::clock::now();
    outcome a, b;
    EXPECT_EQ(q.next_deadline(), rd::clock::time_point::max());
    q.push("A", {1, now + std::chrono::seconds(5)}, record(a));
    q.push("B", {1, now + std::chrono::seconds(1)}, record(b));
    EXPECT_EQ(q.next_deadline(), now + std::chrono::seconds(1));
}
