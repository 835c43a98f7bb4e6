// server_error: typed prefixes, MOVED/ASK slot and endpoint parsing.
#include <gtest/gtest.h>

#include <respite/client/error.hpp>

using namespace respite::client;
using respite::resp::value;

TEST(server_error, prefixes_map_to_kinds) {
    struct c {
        const char* msg;
        server_error_kind kind;
    };
    for (auto [msg, k] :
         {c{"ERR wrong", server_error_kind::err},
          c{"MOVED 3999 127.0.0.1:6381", server_error_kind::moved},
          c{"ASK 3999 127.0.0.1:6381", server_error_kind::ask},
          c{"TRYAGAIN Multiple keys", server_error_kind::tryagain},
          c{"CLUSTERDOWN The cluster is down", server_error_kind::clusterdown},
          c{"CROSSSLOT Keys", server_error_kind::crossslot},
          c{"LOADING Redis is loading", server_error_kind::loading},
          c{"BUSY Redis is busy", server_error_kind::busy},
          c{"READONLY You can't write", server_error_kind::readonly},
          c{"NOSCRIPT No matching script", server_error_kind::noscript},
          c{"NOAUTH Authentication required.", server_error_kind::noauth},
          c{"WRONGPASS invalid", server_error_kind::wrongpass},
          c{"NOPERM this user", server_error_kind::noperm},
          c{"NOPROTO unsupported", server_error_kind::noproto},
          c{"MISCONF Redis is configured", server_error_kind::misconf},
          c{"WRONGTYPE Operation", server_error_kind::wrongtype},
          c{"SOMETHING else", server_error_kind::other}, c{"", server_error_kind::other}}) {
        server_error e(msg);
        EXPECT_EQ(e.kind(), k) << msg;
    }
}

TEST(server_error, moved_and_ask_carry_slot_and_endpoint) {
    server_error m("MOVED 3999 127.0.0.1:6381");
    EXPECT_EQ(m.prefix(), "MOVED");
    EXPECT_EQ(m.slot(), 3999);
    EXPECT_EQ(m.endpoint(), "127.0.0.1:6381");
    server_error a("ASK 16383 [::1]:7000");
    EXPECT_EQ(a.slot(), 16383);
    EXPECT_EQ(a.endpoint(), "[::1]:7000");
    EXPECT_FALSE(server_error("MOVED 99999 x:1").slot());
    EXPECT_FALSE(server_error("MOVED abc x:1").slot());
    EXPECT_FALSE(server_error("MOVED").slot());
    EXPECT_FALSE(server_error("ERR 12 x").slot());
}

TEST(server_error, only_error_values_are_server_errors) {
    EXPECT_TRUE(server_error_of(value::simple_error("ERR x")));
    EXPECT_TRUE(server_error_of(value::blob_error("SYNTAX bad")));
    EXPECT_FALSE(server_error_of(value::simple_string("OK")));
    EXPECT_EQ(server_error_of(value::blob_error("SYNTAX bad"))->prefix(), "SYNTAX");
}

TEST(client_error, codes_have_messages_and_category) {
    std::error_code ec = error::timeout;
    EXPECT_EQ(ec.category().name(), std::string("respite.client"));
    EXPECT_FALSE(ec.message().empty());
    EXPECT_EQ(ec, error::timeout);
}
