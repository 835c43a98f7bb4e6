// translate_transaction(): MULTI/EXEC folds each queued command's effect, skipping failed ones.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <respite/proxy/effects.hpp>

namespace {

using respite::proxy::effect_context;
using respite::proxy::translate_transaction;
using respite::resp::null_kind;
using respite::resp::value;
using queue_t = std::vector<std::vector<std::string>>;
using keys_t = std::vector<std::string>;

effect_context at_now() {
    effect_context ctx;
    ctx.now_ms = 1'700'000'000'000;
    return ctx;
}

value ok() {
    return value::simple_string("OK");
}

TEST(transaction, concatenates_each_effect) {
    const queue_t queued{{"SET", "a", "1", "EX", "10"}, {"LPOP", "l"}, {"INCR", "a"}};
    const auto exec = value::array({ok(), value::bulk_string("x"), value::integer(2)});
    const auto out = translate_transaction(queued, exec, at_now());
    EXPECT_EQ(out.commands, (queue_t{{"SET", "a", "1", "PXAT", "1700000010000"},
                                     {"LREM", "l", "1", "x"},
                                     {"INCR", "a"}}));
    EXPECT_EQ(out.keys, (keys_t{"a", "l"}));
    EXPECT_FALSE(out.copy);
    EXPECT_FALSE(out.global);
}

// Each effect command's expected reply, where it has one (INCR, EXPIRE -> PEXPIREAT), for the
// follower's reply check; none at all: empty.
TEST(transaction, expected_replies_follow_the_effect_commands) {
    const queue_t queued{{"INCR", "rl"}, {"LPOP", "l"}, {"EXPIRE", "rl", "60"}, {"GET", "rl"}};
    const auto exec = value::array(
        {value::integer(7), value::bulk_string("x"), value::integer(1), value::bulk_string("7")});
    const auto out = translate_transaction(queued, exec, at_now());
    ASSERT_EQ(out.commands.size(), 3u);
    ASSERT_EQ(out.expect_replies.size(), 3u);
    EXPECT_EQ(out.expect_replies[0], 7);
    EXPECT_FALSE(out.expect_replies[1]);  // LREM: not LPOP's reply
    EXPECT_EQ(out.expect_replies[2], 1);  // PEXPIREAT
    const queue_t sets{{"SET", "a", "1"}, {"LPOP", "l"}};
    const auto none =
        translate_transaction(sets, value::array({ok(), value::bulk_string("x")}), at_now());
    EXPECT_EQ(none.commands.size(), 2u);
    EXPECT_TRUE(none.expect_replies.empty());
}

TEST(transaction, an_error_element_contributes_nothing) {
    const queue_t queued{{"SET", "a", "1"}, {"LPUSH", "a", "x"}, {"SET", "b", "2", "NX"}};
    const auto exec = value::array({ok(), value::simple_error("WRONGTYPE Operation against a key"),
                                    value::null(null_kind::bulk)});
    const auto out = translate_transaction(queued, exec, at_now());
    EXPECT_EQ(out.commands, (queue_t{{"SET", "a", "1"}}));
    EXPECT_EQ(out.keys, (keys_t{"a", "b"}));
}

TEST(transaction, watch_abort_applies_nothing_resp2_and_resp3) {
    const queue_t queued{{"SET", "a", "1"}, {"DEL", "b"}};
    for (const auto& nil : {value::null(null_kind::array), value::null(null_kind::resp3)}) {
        const auto out = translate_transaction(queued, nil, at_now());
        EXPECT_TRUE(out.none());
        EXPECT_FALSE(out.global);
        EXPECT_EQ(out.keys, (keys_t{"a", "b"}));
    }
}

TEST(transaction, execabort_applies_nothing) {
    const queue_t queued{{"SET", "a", "1"}, {"FLUSHALL"}};
    const auto exec = value::simple_error("EXECABORT Transaction discarded because of errors.");
    const auto out = translate_transaction(queued, exec, at_now());
    EXPECT_TRUE(out.none());
    EXPECT_FALSE(out.global);
    EXPECT_EQ(out.keys, (keys_t{"a"}));
}

TEST(transaction, a_copied_element_copies_after_the_rest) {
    const queue_t queued{{"XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"}, {"SET", "a", "1"}};
    const auto entries = value::array({value::array(
        {value::bulk_string("s"),
         value::array({value::array({value::bulk_string("1-0"), value::array({})})})})});
    const auto out = translate_transaction(queued, value::array({entries, ok()}), at_now());
    EXPECT_EQ(out.commands, (queue_t{{"SET", "a", "1"}}));
    EXPECT_TRUE(out.copy);
    EXPECT_EQ(out.keys, (keys_t{"s", "a"}));
}

TEST(transaction, a_global_element_makes_it_global) {
    const queue_t queued{{"FLUSHDB"}, {"SET", "a", "1"}};
    const auto out = translate_transaction(queued, value::array({ok(), ok()}), at_now());
    EXPECT_EQ(out.commands, (queue_t{{"FLUSHDB"}, {"SET", "a", "1"}}));
    EXPECT_TRUE(out.global);
}

TEST(transaction, a_failed_global_element_does_not) {
    const queue_t queued{{"FLUSHDB"}, {"SET", "a", "1"}};
    const auto exec = value::array({value::simple_error("ERR no"), ok()});
    const auto out = translate_transaction(queued, exec, at_now());
    EXPECT_EQ(out.commands, (queue_t{{"SET", "a", "1"}}));
    EXPECT_FALSE(out.global);
}

TEST(transaction, a_reply_that_does_not_match_the_queue_copies) {
    const queue_t queued{{"SET", "a", "1"}, {"SPOP", "s"}};
    const auto out = translate_transaction(queued, value::array({ok()}), at_now());
    EXPECT_TRUE(out.commands.empty());
    EXPECT_TRUE(out.copy);
    EXPECT_EQ(out.keys, (keys_t{"a", "s"}));
}

TEST(transaction, empty_transaction) {
    const auto out = translate_transaction({}, value::array({}), at_now());
    EXPECT_TRUE(out.none());
    EXPECT_TRUE(out.keys.empty());
}

TEST(transaction, only_reads_applies_nothing) {
    const queue_t queued{{"GET", "a"}, {"LRANGE", "l", "0", "-1"}};
    const auto exec = value::array({value::bulk_string("1"), value::array({})});
    const auto out = translate_transaction(queued, exec, at_now());
    EXPECT_TRUE(out.none());
    EXPECT_EQ(out.keys, (keys_t{"a", "l"}));
}

}  // namespace
