// Every RESP2/RESP3 value type from a real server (DEBUG PROTOCOL), binary-safe strings, int64
// limits, unix sockets, database selection, RESP2 fallback when HELLO is unavailable.
#include <cmath>

#include <asio/use_future.hpp>

#include <respite/client/sync_client.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using client::cmd;
using resp::type;
using resp::value;

namespace {

class types : public ::testing::TestWithParam<int> {
  protected:
    static void SetUpTestSuite() { server_ = new redis_server(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static redis_server* server_;
};
redis_server* types::server_ = nullptr;

value run(client::sync_client& c, client::request r) {
    auto v = c.run(std::move(r));
    if (!v)
        throw std::runtime_error("command failed: " + v.error().message());
    return std::move(*v);
}

}  // namespace

TEST_P(types, every_debug_protocol_type_round_trips) {
    const int proto = GetParam();
    client::sync_client c(config_for(*server_, proto));
    const bool r3 = proto == 3;

    auto s = run(c, cmd("DEBUG", "PROTOCOL", "string"));
    EXPECT_EQ(s.type(), type::bulk_string);
    EXPECT_EQ(s.str(), "Hello World");

    auto i = run(c, cmd("DEBUG", "PROTOCOL", "integer"));
    EXPECT_EQ(i.type(), type::integer);
    EXPECT_EQ(i.integer(), 12345);

    auto d = run(c, cmd("DEBUG", "PROTOCOL", "double"));
    if (r3) {
        EXPECT_EQ(d.type(), type::double_);
        EXPECT_DOUBLE_EQ(d.double_value(), 3.141);
    } else {
        EXPECT_EQ(d.type(), type::bulk_string);
        EXPECT_EQ(d.str(), "3.141");
    }

    auto b = run(c, cmd("DEBUG", "PROTOCOL", "bignum"));
    EXPECT_EQ(b.type(), r3 ? type::big_number : type::bulk_string);
    EXPECT_EQ(b.str(), "1234567999999999999999999999999999999");

    auto n = run(c, cmd("DEBUG", "PROTOCOL", "null"));
    EXPECT_TRUE(n.is_null());

    auto a = run(c, cmd("DEBUG", "PROTOCOL", "array"));
    ASSERT_EQ(a.type(), type::array);
    ASSERT_EQ(a.size(), 3u);
    EXPECT_EQ(a[2].integer(), 2);

    auto set = run(c, cmd("DEBUG", "PROTOCOL", "set"));
    EXPECT_EQ(set.type(), r3 ? type::set : type::array);
    EXPECT_EQ(set.size(), 3u);

    auto m = run(c, cmd("DEBUG", "PROTOCOL", "map"));
    if (r3) {
        ASSERT_EQ(m.type(), type::map);
        ASSERT_EQ(m.size(), 3u);
        EXPECT_EQ(m.elements()[3].type(), type::boolean);
        EXPECT_TRUE(m.elements()[3].boolean());
    } else {
        ASSERT_EQ(m.type(), type::array);
        EXPECT_EQ(m.size(), 6u);
    }

    auto at = run(c, cmd("DEBUG", "PROTOCOL", "attrib"));
    EXPECT_EQ(at.type(), type::bulk_string);
    EXPECT_EQ(at.str(), "Some real reply following the attribute");
    if (r3) {
        ASSERT_NE(at.attributes(), nullptr);
        ASSERT_EQ(at.attributes()->size(), 2u);
        EXPECT_EQ((*at.attributes())[0].str(), "key-popularity");
    } else {
        EXPECT_EQ(at.attributes(), nullptr);
    }

    auto v = run(c, cmd("DEBUG", "PROTOCOL", "verbatim"));
    if (r3) {
        EXPECT_EQ(v.type(), type::verbatim_string);
        EXPECT_EQ(v.format(), "txt");
    } else {
        EXPECT_EQ(v.type(), type::bulk_string);
    }
    EXPECT_EQ(v.str(), "This is a verbatim\nstring");

    auto t = run(c, cmd("DEBUG", "PROTOCOL", "true"));
    auto f = run(c, cmd("DEBUG", "PROTOCOL", "false"));
    if (r3) {
        EXPECT_EQ(t.type(), type::boolean);
        EXPECT_TRUE(t.boolean());
        EXPECT_FALSE(f.boolean());
    } else {
        EXPECT_EQ(t.integer(), 1);
        EXPECT_EQ(f.integer(), 0);
    }

    auto err = run(c, cmd("NOSUCHCOMMAND"));
    EXPECT_TRUE(err.is_error());
    ASSERT_TRUE(client::server_error_of(err));
    EXPECT_EQ(client::server_error_of(err)->kind(), client::server_error_kind::err);
}

TEST(resp3, push_before_a_reply_is_not_taken_as_the_reply) {
    redis_server server;
    client::client_config cfg = config_for(server, 3);
    client::client cl(cfg);
    std::promise<value> pushed;
    std::atomic<int> pushes{0};
    cl.set_push_handler([&](const value& v) {
        if (pushes++ == 0)
            pushed.set_value(v);
    });
    auto r = get(cl.async_command(cmd("DEBUG", "PROTOCOL", "push"), asio::use_future));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->str(), "Some real reply following the push reply");
    auto p = get(pushed.get_future());
    EXPECT_EQ(p.type(), type::push);
    EXPECT_EQ(p[0].str(), "server-cpu-usage");
    // The connection stays in sync: the next reply is the next command's.
    auto pong = get(cl.async_command(cmd("ECHO", "after"), asio::use_future));
    ASSERT_TRUE(pong);
    EXPECT_EQ(pong->str(), "after");
}

TEST_P(types, binary_safe_strings_and_int64_limits) {
    client::sync_client c(config_for(*server_, GetParam()));
    std::string bin;
    for (int i = 0; i < 256; ++i)
        bin.push_back(static_cast<char>(i));
    bin += "\r\n$-1\r\n*3\r\n";
    ASSERT_TRUE(c.command("SET", "bin", bin));
    auto got = run(c, cmd("GET", "bin"));
    EXPECT_EQ(got.str(), bin);

    std::string big(1 << 20, 'x');
    ASSERT_TRUE(c.command("SET", "big", big));
    EXPECT_EQ(run(c, cmd("GET", "big")).str(), big);

    ASSERT_TRUE(c.command("SET", "n", "9223372036854775806"));
    EXPECT_EQ(run(c, cmd("INCR", "n")).integer(), INT64_MAX);
    auto over = run(c, cmd("INCR", "n"));
    EXPECT_TRUE(over.is_error());
    ASSERT_TRUE(c.command("SET", "m", "-9223372036854775807"));
    EXPECT_EQ(run(c, cmd("DECR", "m")).integer(), INT64_MIN);

    EXPECT_TRUE(run(c, cmd("GET", "no-such-key")).is_null());
    ASSERT_TRUE(c.command("SET", "empty", ""));
    auto e = run(c, cmd("GET", "empty"));
    EXPECT_FALSE(e.is_null());
    EXPECT_EQ(e.str(), "");
    EXPECT_EQ(run(c, cmd("LRANGE", "no-such-list", 0, -1)).size(), 0u);
}

TEST_P(types, scores_maps_and_sets_by_protocol) {
    client::sync_client c(config_for(*server_, GetParam()));
    const bool r3 = GetParam() == 3;
    c.command("DEL", "z", "h", "s");
    ASSERT_TRUE(c.command("ZADD", "z", "inf", "a", "-inf", "b", "1.5", "c"));
    auto sa = run(c, cmd("ZSCORE", "z", "a"));
    auto sb = run(c, cmd("ZSCORE", "z", "b"));
    auto sc = run(c, cmd("ZSCORE", "z", "c"));
    if (r3) {
        EXPECT_EQ(sa.type(), type::double_);
        EXPECT_TRUE(std::isinf(sa.double_value()) && sa.double_value() > 0);
        EXPECT_TRUE(std::isinf(sb.double_value()) && sb.double_value() < 0);
        EXPECT_DOUBLE_EQ(sc.double_value(), 1.5);
    } else {
        EXPECT_EQ(sa.str(), "inf");
        EXPECT_EQ(sb.str(), "-inf");
        EXPECT_EQ(sc.str(), "1.5");
    }
    ASSERT_TRUE(c.command("HSET", "h", "f1", "v1", "f2", "v2"));
    auto h = run(c, cmd("HGETALL", "h"));
    if (r3) {
        ASSERT_EQ(h.type(), type::map);
        ASSERT_NE(h.find("f2"), nullptr);
        EXPECT_EQ(h.find("f2")->str(), "v2");
    } else {
        EXPECT_EQ(h.type(), type::array);
        EXPECT_EQ(h.size(), 4u);
    }
    ASSERT_TRUE(c.command("SADD", "s", "x", "y"));
    EXPECT_EQ(run(c, cmd("SMEMBERS", "s")).type(), r3 ? type::set : type::array);
}

INSTANTIATE_TEST_SUITE_P(resp, types, ::testing::Values(2, 3),
                         [](const auto& i) { return "resp" + std::to_string(i.param); });

TEST(connection_options, unix_socket_and_database_selection) {
    redis_server s;
    auto cfg = config_for(s);
    cfg.connection.unix_path = s.unix_path();
    cfg.connection.database = 3;
    cfg.connection.client_name = "respite-test";
    client::sync_client c(cfg);
    ASSERT_TRUE(c.command("SET", "where", "db3"));
    EXPECT_EQ(s.cli({"-n", "3", "GET", "where"}), "db3");
    EXPECT_EQ(s.cli({"GET", "where"}), "");
    auto name = c.command("CLIENT", "GETNAME");
    ASSERT_TRUE(name);
    EXPECT_EQ(name->str(), "respite-test");
}

TEST(connection_options, falls_back_to_resp2_when_hello_is_unknown) {
    redis_server_options o;
    o.config.emplace_back("rename-command", "HELLO \"\"");
    o.requirepass = "s3cret";
    redis_server s(o);
    auto cfg = config_for(s, 3);
    cfg.connection.password = "s3cret";
    cfg.connection.client_name = "fallback";
    client::client cl(cfg);
    auto r = get(cl.async_command(cmd("CLIENT", "GETNAME"), asio::use_future));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->str(), "fallback");
    EXPECT_EQ(cl.connections()[0]->protocol(), 2);
    // RESP2 semantics: HGETALL is a flat array.
    get(cl.async_command(cmd("HSET", "h", "a", "1"), asio::use_future));
    auto h = get(cl.async_command(cmd("HGETALL", "h"), asio::use_future));
    ASSERT_TRUE(h);
    EXPECT_EQ(h->type(), type::array);
}
