// request: encoding of mixed argument types, flags for blocking/pubsub/state commands.
#include <gtest/gtest.h>

#include <respite/client/request.hpp>

using namespace respite::client;
using namespace std::chrono_literals;

TEST(request, encodes_strings_numbers_and_binary) {
    std::string bin("a\r\nb\0c", 6);
    auto r = cmd("SET", bin, 42);
    EXPECT_EQ(r.payload(), std::string("*3\r\n$3\r\nSET\r\n$6\r\na\r\nb\0c\r\n$2\r\n42\r\n", 33));
    EXPECT_EQ(r.size(), 1u);
    request p;
    p.push("INCRBY", "k", -9223372036854775807LL - 1).push("PING");
    EXPECT_EQ(p.size(), 2u);
    EXPECT_NE(p.payload().find("$20\r\n-9223372036854775808\r\n"), std::string::npos);
}

TEST(request, flags) {
    EXPECT_TRUE(cmd("BLPOP", "k", 2).blocking());
    EXPECT_EQ(cmd("BLPOP", "k", 2).block_duration(), 2000ms);
    EXPECT_FALSE(cmd("BLPOP", "k", 0).block_duration().has_value());
    EXPECT_TRUE(cmd("subscribe", "c").has_pubsub());
    EXPECT_TRUE(cmd("WATCH", "k").has_connection_state());
    EXPECT_FALSE(cmd("GET", "k").blocking());
    request empty;
    empty.push();
    EXPECT_TRUE(empty.has_empty_command());
    request a = cmd("GET", "a");
    a.append(cmd("BLPOP", "x", 1));
    EXPECT_EQ(a.size(), 2u);
    EXPECT_TRUE(a.blocking());
}
