// Pub/Sub in RESP2 and RESP3: channels, patterns, shard channels, re-subscribe after the server
// kills the connection, the bounded queue, and pushes on idle connections (client tracking).
#include <asio/use_future.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;
using client::subscription_kind;

namespace {

class pubsub : public ::testing::TestWithParam<int> {
  protected:
    static void SetUpTestSuite() { server_ = new redis_server(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static redis_server* server_;
};
redis_server* pubsub::server_ = nullptr;

client::message receive(client::client& c) {
    auto m = get(c.async_receive(asio::use_future), 10s);
    if (!m)
        throw std::runtime_error("receive failed: " + m.error().message());
    return *m;
}

}  // namespace

TEST_P(pubsub, channels_patterns_and_shard_channels) {
    client::client c(config_for(*server_, GetParam()));
    auto s1 =
        get(c.async_subscribe(subscription_kind::channel, {"news", "Sport"}, asio::use_future));
    ASSERT_TRUE(s1) << s1.error().message();
    auto s2 = get(c.async_subscribe(subscription_kind::pattern, {"p.*"}, asio::use_future));
    ASSERT_TRUE(s2);
    auto s3 = get(c.async_subscribe(subscription_kind::shard_channel, {"shard"}, asio::use_future));
    ASSERT_TRUE(s3);

    EXPECT_EQ(server_->cli({"PUBLISH", "news", "hello"}), "1");
    auto m = receive(c);
    EXPECT_EQ(m.kind, client::message::kind::message);
    EXPECT_EQ(m.channel, "news");
    EXPECT_EQ(m.payload, "hello");

    server_->cli({"PUBLISH", "p.x", "pat"});
    m = receive(c);
    EXPECT_EQ(m.kind, client::message::kind::pmessage);
    EXPECT_EQ(m.pattern, "p.*");
    EXPECT_EQ(m.channel, "p.x");
    EXPECT_EQ(m.payload, "pat");

    server_->cli({"SPUBLISH", "shard", "s"});
    m = receive(c);
    EXPECT_EQ(m.kind, client::message::kind::smessage);
    EXPECT_EQ(m.payload, "s");

    // Unsubscribe: no more deliveries on that channel; others still flow.
    ASSERT_TRUE(get(c.async_unsubscribe(subscription_kind::channel, {"news"}, asio::use_future)));
    EXPECT_EQ(server_->cli({"PUBLISH", "news", "gone"}), "0");
    server_->cli({"PUBLISH", "Sport", "still"});
    m = receive(c);
    EXPECT_EQ(m.channel, "Sport");
    EXPECT_EQ(m.payload, "still");
    // Unsubscribe from everything of a kind.
    ASSERT_TRUE(get(c.async_unsubscribe(subscription_kind::pattern, {}, asio::use_future)));
    EXPECT_EQ(server_->cli({"PUBLISH", "p.y", "x"}), "0");
}

TEST_P(pubsub, resubscribes_after_the_server_kills_the_connection) {
    auto cfg = config_for(*server_, GetParam());
    cfg.connection.client_name = "resub-" + std::to_string(GetParam());
    client::client c(cfg);
    ASSERT_TRUE(get(c.async_subscribe(subscription_kind::channel, {"alive"}, asio::use_future)));
    ASSERT_TRUE(get(c.async_subscribe(subscription_kind::pattern, {"al*"}, asio::use_future)));
    server_->cli({"CLIENT", "KILL", "TYPE", "pubsub"});
    // The subscription comes back on its own: a publish eventually reaches us (twice: channel
    // and pattern).
    ASSERT_TRUE(eventually([&] { return server_->cli({"PUBLISH", "alive", "x"}) == "2"; }));
    bool got_channel = false, got_pattern = false;
    for (int i = 0; i < 2; ++i) {
        auto m = receive(c);
        got_channel |= m.kind == client::message::kind::message;
        got_pattern |= m.kind == client::message::kind::pmessage;
    }
    EXPECT_TRUE(got_channel);
    EXPECT_TRUE(got_pattern);
    EXPECT_GE(c.pubsub_connection()->connects(), 2u);
}

TEST_P(pubsub, bounded_queue_drops_oldest_and_counts) {
    auto cfg = config_for(*server_, GetParam());
    cfg.push_queue_capacity = 10;
    client::client c(cfg);
    ASSERT_TRUE(get(c.async_subscribe(subscription_kind::channel, {"flood"}, asio::use_future)));
    for (int i = 0; i < 25; ++i)
        server_->cli({"PUBLISH", "flood", std::to_string(i)});
    ASSERT_TRUE(eventually([&] { return c.push_stats().delivered == 25; }));
    auto st = c.push_stats();
    EXPECT_EQ(st.size, 10u);
    EXPECT_EQ(st.dropped, 15u);
    // The newest ten remain, in order.
    for (int i = 15; i < 25; ++i)
        EXPECT_EQ(receive(c).payload, std::to_string(i));
    // Replies are never stalled by a full queue.
    auto p = get(c.async_command(cmd("PING"), asio::use_future));
    EXPECT_TRUE(p);
}

TEST_P(pubsub, message_handler_receives_in_order) {
    client::client c(config_for(*server_, GetParam()));
    std::mutex mu;
    std::vector<std::string> got;
    c.set_message_handler([&](const client::message& m) {
        std::lock_guard l(mu);
        got.push_back(m.payload);
    });
    ASSERT_TRUE(get(c.async_subscribe(subscription_kind::channel, {"ordered"}, asio::use_future)));
    client::client pub(config_for(*server_, GetParam()));
    client::request r;
    for (int i = 0; i < 1000; ++i)
        r.push("PUBLISH", "ordered", i);
    ASSERT_TRUE(get(pub.async_exec(std::move(r), asio::use_future)));
    ASSERT_TRUE(eventually([&] {
        std::lock_guard l(mu);
        return got.size() == 1000;
    }));
    std::lock_guard l(mu);
    for (int i = 0; i < 1000; ++i)
        ASSERT_EQ(got[i], std::to_string(i));
}

INSTANTIATE_TEST_SUITE_P(resp, pubsub, ::testing::Values(2, 3),
                         [](const auto& i) { return "resp" + std::to_string(i.param); });

TEST(pushes, invalidation_push_arrives_on_an_idle_connection) {
    redis_server s;
    client::client c(config_for(s, 3));
    std::promise<resp::value> got;
    std::atomic<bool> once{false};
    c.set_push_handler([&](const resp::value& v) {
        if (v.size() > 0 && v[0].str() == "invalidate" && !once.exchange(true))
            got.set_value(v);
    });
    // Tracking is connection state, so it runs on a session's dedicated connection.
    client::request r;
    r.push("CLIENT", "TRACKING", "on");
    auto sess = get(c.async_session(asio::use_future));
    ASSERT_TRUE(sess);
    ASSERT_TRUE(get(sess->async_exec(std::move(r), asio::use_future)));
    ASSERT_TRUE(get(sess->async_command(cmd("GET", "tracked"), asio::use_future)));
    // The session's connection is idle now; another client changes the key.
    s.cli({"SET", "tracked", "new"});
    auto fut = got.get_future();
    ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
    auto v = fut.get();
    ASSERT_EQ(v.size(), 2u);
    ASSERT_EQ(v[1].size(), 1u);
    EXPECT_EQ(v[1][0].str(), "tracked");
}
