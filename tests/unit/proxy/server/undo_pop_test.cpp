// undo_pop: the commands that put back what a blocking pop took for a client that left.
#include <gtest/gtest.h>

#include "follow.hpp"

namespace respite::proxy::server {
namespace {

using resp::value;
using commands_t = std::vector<std::vector<std::string>>;

value bulks(std::initializer_list<std::string> items) {
    std::vector<value> v;
    for (const auto& s : items)
        v.push_back(value::bulk_string(s));
    return value::array(std::move(v));
}

TEST(proxy_undo_pop, blpop_and_brpop_push_back_at_their_end) {
    EXPECT_EQ(undo_pop({"BLPOP", "q", "0"}, bulks({"q", "x"})), (commands_t{{"LPUSH", "q", "x"}}));
    EXPECT_EQ(undo_pop({"brpop", "a", "q", "0"}, bulks({"q", "x"})),
              (commands_t{{"RPUSH", "q", "x"}}));
    EXPECT_TRUE(undo_pop({"BLPOP", "q", "0"}, value::null(resp::null_kind::array)).empty());
}

// The end is the argument after the keys: a key may be named "left" or "right".
TEST(proxy_undo_pop, blmpop_pushes_back_at_the_end_it_popped_from) {
    const auto popped = value::array({value::bulk_string("q"), bulks({"a", "b"})});
    EXPECT_EQ(undo_pop({"BLMPOP", "0", "2", "left", "q", "RIGHT"}, popped),
              (commands_t{{"RPUSH", "q", "b", "a"}}));
    EXPECT_EQ(undo_pop({"BLMPOP", "0", "2", "right", "q", "left", "COUNT", "2"}, popped),
              (commands_t{{"LPUSH", "q", "b", "a"}}));
    EXPECT_EQ(undo_pop({"blmpop", "0", "1", "q", "LEFT"}, popped),
              (commands_t{{"LPUSH", "q", "b", "a"}}));
}

TEST(proxy_undo_pop, moves_and_sorted_set_pops_are_reversed) {
    EXPECT_EQ(undo_pop({"BLMOVE", "s", "d", "LEFT", "RIGHT", "0"}, value::bulk_string("x")),
              (commands_t{{"LMOVE", "d", "s", "RIGHT", "LEFT"}}));
    EXPECT_EQ(undo_pop({"BRPOPLPUSH", "s", "d", "0"}, value::bulk_string("x")),
              (commands_t{{"LMOVE", "d", "s", "LEFT", "RIGHT"}}));
    EXPECT_EQ(undo_pop({"BZPOPMIN", "z", "0"}, bulks({"z", "m", "1.5"})),
              (commands_t{{"ZADD", "z", "1.5", "m"}}));
}

}  // namespace
}  // namespace respite::proxy::server
