// command_info: blocking detection and block durations, case-insensitive names.
#include <gtest/gtest.h>

#include <respite/client/command_info.hpp>

using namespace respite::client;
using namespace std::chrono_literals;

namespace {
block_time bt(std::initializer_list<std::string_view> a) {
    std::vector<std::string_view> v(a);
    return blocking_time(v);
}
command_kind kind(std::initializer_list<std::string_view> a) {
    std::vector<std::string_view> v(a);
    return classify(v);
}
}  // namespace

TEST(command_info, blocking_commands_and_their_block_time) {
    EXPECT_EQ(bt({"BLPOP", "a", "b", "1.5"}).duration, 1500ms);
    EXPECT_EQ(bt({"brpop", "a", "2"}).duration, 2000ms);
    EXPECT_TRUE(bt({"BLPOP", "a", "0"}).is_blocking);
    EXPECT_FALSE(bt({"BLPOP", "a", "0"}).duration.has_value());  // 0 = unbounded
    EXPECT_EQ(bt({"BLMPOP", "0.25", "1", "k", "LEFT"}).duration, 250ms);
    EXPECT_EQ(bt({"BZMPOP", "3", "1", "k", "MIN"}).duration, 3000ms);
    EXPECT_EQ(bt({"XREAD", "COUNT", "1", "BLOCK", "100", "STREAMS", "s", "$"}).duration, 100ms);
    EXPECT_FALSE(bt({"XREAD", "COUNT", "1", "STREAMS", "s", "$"}).is_blocking);
    // "BLOCK" after STREAMS is a key name, not the option.
    EXPECT_FALSE(bt({"XREAD", "STREAMS", "BLOCK", "0"}).is_blocking);
    // A group or consumer named like an option is a value (XREADGROUP GROUP g c ...).
    EXPECT_TRUE(
        bt({"XREADGROUP", "GROUP", "streams", "c", "BLOCK", "0", "STREAMS", "s", ">"}).is_blocking);
    EXPECT_EQ(
        bt({"XREADGROUP", "GROUP", "g", "block", "COUNT", "5", "BLOCK", "7", "STREAMS", "s", ">"})
            .duration,
        7ms);
    EXPECT_FALSE(bt({"XREADGROUP", "GROUP", "g", "BLOCK", "STREAMS", "s", ">"}).is_blocking);
    EXPECT_EQ(bt({"WAIT", "1", "250"}).duration, 250ms);
    EXPECT_EQ(bt({"BLMOVE", "a", "b", "LEFT", "RIGHT", "0.001"}).duration, 1ms);
    EXPECT_FALSE(bt({"GET", "k"}).is_blocking);
}

TEST(command_info, classification) {
    EXPECT_EQ(kind({"get", "k"}), command_kind::ordinary);
    EXPECT_EQ(kind({"SubScribe", "c"}), command_kind::subscribe);
    EXPECT_EQ(kind({"ssubscribe", "c"}), command_kind::subscribe);
    EXPECT_EQ(kind({"SUNSUBSCRIBE"}), command_kind::unsubscribe);
    EXPECT_EQ(kind({"punsubscribe"}), command_kind::unsubscribe);
    EXPECT_EQ(kind({"watch", "k"}), command_kind::connection_state);
    EXPECT_EQ(kind({"select", "1"}), command_kind::connection_state);
    EXPECT_EQ(kind({"BLPOP", "k", "1"}), command_kind::blocking);
}
