// merge.hpp: RESP arrays split after their head and joined into one command.
#include "merge.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <respite/resp/request_parser.hpp>

using namespace respite::proxy::replay;

namespace {

std::string cmd(std::initializer_list<std::string_view> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (auto a : args)
        out += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
    return out;
}

// The arguments of one command (and that it is exactly one).
std::vector<std::string> args_of(std::string_view c) {
    respite::resp::request_parser p;
    std::vector<std::string_view> views;
    auto r = p.parse(c, views);
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.length, c.size()) << "more than one command";
    return {views.begin(), views.end()};
}

}  // namespace

TEST(shape_of, splits_after_the_head) {
    const auto c = cmd({"LPUSH", "key", "a", "bb"});
    auto s = shape_of(c, 2);
    ASSERT_TRUE(s);
    EXPECT_EQ(s->args, 4u);
    EXPECT_EQ(c.substr(s->head_begin, s->tail - s->head_begin), "$5\r\nLPUSH\r\n$3\r\nkey\r\n");
    EXPECT_EQ(c.substr(s->tail), "$1\r\na\r\n$2\r\nbb\r\n");
}

TEST(shape_of, refuses_what_it_cannot_split_exactly) {
    EXPECT_FALSE(shape_of("", 1));
    EXPECT_FALSE(shape_of("PING\r\n", 1));                    // inline
    EXPECT_FALSE(shape_of(cmd({"SET", "k"}), 2));             // nothing after the head
    EXPECT_FALSE(shape_of(cmd({"SET", "k", "v"}) + "x", 1));  // trailing bytes
    EXPECT_FALSE(shape_of(cmd({"SET", "k", "v"}) + cmd({"SET", "a", "b"}), 1));  // two commands
    EXPECT_FALSE(shape_of("*2\r\n$3\r\nSET\r\n", 1));                            // short array
    EXPECT_FALSE(shape_of("*2\r\n$3\r\nSET\r\n$9\r\nk\r\n", 1));                 // short bulk
    EXPECT_FALSE(shape_of("*2\r\n$3\r\nSET\r\n:1\r\n", 1));                      // not a bulk
    EXPECT_FALSE(shape_of("*2\r\n$3\r\nSETxx$1\r\nk\r\n", 1));                   // missing CRLF
    EXPECT_FALSE(shape_of("*x\r\n", 0));
    EXPECT_FALSE(shape_of("*99999999999999999999999\r\n", 0));  // overflow
    EXPECT_FALSE(shape_of("*2\r\n$-1\r\n$1\r\nk\r\n", 0));      // nil bulk
}

TEST(merge_run, renamed_head_joins_different_keys) {
    merge_run r;
    const auto a = cmd({"set", "a", "1"});
    const auto b = cmd({"SET", "b", "22"});
    const auto c = cmd({"SET", "a", "3"});
    ASSERT_TRUE(r.add(a, 1, "MSET", 0));
    ASSERT_TRUE(r.add(b, 1, "MSET", 0));
    ASSERT_TRUE(r.add(c, 1, "MSET", 0));
    EXPECT_EQ(r.size(), 3u);
    EXPECT_EQ(args_of(r.take()), (std::vector<std::string>{"MSET", "a", "1", "b", "22", "a", "3"}));
    EXPECT_TRUE(r.empty());
}

TEST(merge_run, same_head_joins_only_equal_heads) {
    merge_run r;
    ASSERT_TRUE(r.add(cmd({"LPUSH", "k", "x"}), 2, {}, 0));
    ASSERT_TRUE(r.add(cmd({"LPUSH", "k", "y", "z"}), 2, {}, 0));
    EXPECT_FALSE(r.add(cmd({"LPUSH", "other", "y"}), 2, {}, 0));   // another key
    EXPECT_FALSE(r.add(cmd({"RPUSH", "k", "y"}), 2, {}, 0));       // another command
    EXPECT_FALSE(r.add(cmd({"lpush", "k", "y"}), 2, {}, 0));       // other bytes: not merged
    EXPECT_FALSE(r.add(cmd({"LPUSH", "k", "y"}), 1, {}, 0));       // another head
    EXPECT_FALSE(r.add(cmd({"LPUSH", "k", "y"}), 2, "LPUSH", 0));  // renamed
    EXPECT_FALSE(r.add(cmd({"LPUSH", "k", "y"}), 2, {}, 7));       // another group
    EXPECT_EQ(args_of(r.take()), (std::vector<std::string>{"LPUSH", "k", "x", "y", "z"}));
}

TEST(merge_run, lone_command_goes_as_it_came) {
    merge_run r;
    const auto a = cmd({"hset", "h", "f", "v"});
    ASSERT_TRUE(r.add(a, 2, {}, 0));
    EXPECT_EQ(r.take(), a);
    EXPECT_EQ(r.take(), "");
}

TEST(merge_run, refuses_unmergeable_and_oversized) {
    merge_run r;
    EXPECT_FALSE(r.add(cmd({"INCR", "k"}), 0, {}, 0));  // head 0: never
    EXPECT_FALSE(r.add("garbage", 1, "MSET", 0));
    EXPECT_TRUE(r.empty());
    const std::string big(merge_run::max_bytes / 2, 'v');
    ASSERT_TRUE(r.add(cmd({"SET", "a", big}), 1, "MSET", 0));
    EXPECT_FALSE(r.add(cmd({"SET", "b", big}), 1, "MSET", 0));
    EXPECT_EQ(r.size(), 1u);
    // A command over the bound is never taken in (sent as it is by the caller).
    (void)r.take();
    EXPECT_FALSE(r.add(cmd({"SET", "huge", std::string(merge_run::max_bytes, 'h')}), 1, "MSET", 0));
    EXPECT_TRUE(r.empty());
    // A new run starts after take(), whatever came before.
    (void)r.take();
    ASSERT_TRUE(r.add(cmd({"DEL", "x"}), 1, "DEL", 0));
    ASSERT_TRUE(r.add(cmd({"DEL", "y", "z"}), 1, "DEL", 0));
    EXPECT_EQ(args_of(r.take()), (std::vector<std::string>{"DEL", "x", "y", "z"}));
}

TEST(merge_run, binary_arguments_survive) {
    merge_run r;
    const std::string v1("a\r\n$3\r\n\0b", 9);
    const std::string v2 = "*2\r\n";
    ASSERT_TRUE(r.add(cmd({"SADD", "s", v1}), 2, {}, 0));
    ASSERT_TRUE(r.add(cmd({"SADD", "s", v2}), 2, {}, 0));
    EXPECT_EQ(args_of(r.take()), (std::vector<std::string>{"SADD", "s", v1, v2}));
}
