// Authentication and ACLs: passwords, users, wrong credentials, forbidden commands/channels.
#include <asio/use_future.hpp>

#include <respite/client/sync_client.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

namespace {

class auth : public ::testing::TestWithParam<int> {
  protected:
    static void SetUpTestSuite() {
        redis_server_options o;
        o.requirepass = "topsecret";
        o.acl_users = {"alice on >wonderland ~app:* &news +@all -flushall",
                       "reader on >r ~* +get +ping +hello",
                       "listener on >l &* +subscribe +unsubscribe +hello +get -ping"};
        server_ = new redis_server(o);
    }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    static redis_server* server_;
};
redis_server* auth::server_ = nullptr;

}  // namespace

TEST_P(auth, password_and_users) {
    auto cfg = config_for(*server_, GetParam());
    cfg.connection.password = "topsecret";
    client::sync_client c(cfg);
    auto r = c.command("SET", "k", "v");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->str(), "OK");

    auto ca = config_for(*server_, GetParam());
    ca.connection.username = "alice";
    ca.connection.password = "wonderland";
    client::sync_client alice(ca);
    auto who = alice.command("ACL", "WHOAMI");
    ASSERT_TRUE(who) << who.error().message();
    EXPECT_EQ(who->str(), "alice");
    // Outside alice's key pattern: a NOPERM error value, the connection stays usable.
    auto denied = alice.command("SET", "other:1", "x");
    ASSERT_TRUE(denied);
    ASSERT_TRUE(client::server_error_of(*denied));
    EXPECT_EQ(client::server_error_of(*denied)->kind(), client::server_error_kind::noperm);
    EXPECT_TRUE(alice.command("SET", "app:1", "x"));
    auto flush = alice.command("FLUSHALL");
    ASSERT_TRUE(flush);
    EXPECT_EQ(client::server_error_of(*flush)->kind(), client::server_error_kind::noperm);
}

TEST_P(auth, wrong_password_fails_fast_with_auth_failed) {
    auto cfg = config_for(*server_, GetParam());
    cfg.connection.password = "wrong";
    client::client c(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(c.async_command(cmd("PING"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::auth_failed);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
    EXPECT_EQ(c.connections()[0]->last_error(), client::error::auth_failed);
}

TEST_P(auth, no_password_gets_noauth) {
    client::sync_client c(config_for(*server_, GetParam()));
    auto r = c.command("GET", "k");
    if (GetParam() == 3) {
        // HELLO 3 without AUTH is refused with NOAUTH: an authentication failure.
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), client::error::auth_failed);
    } else {
        ASSERT_TRUE(r);
        EXPECT_EQ(client::server_error_of(*r)->kind(), client::server_error_kind::noauth);
    }
}

TEST_P(auth, forbidden_channel_subscription_is_an_error_and_others_still_work) {
    auto ca = config_for(*server_, GetParam());
    ca.connection.username = "alice";
    ca.connection.password = "wonderland";
    client::client alice(ca);
    auto bad = get(
        alice.async_subscribe(client::subscription_kind::channel, {"secret"}, asio::use_future));
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), client::error::server_error);
    auto good =
        get(alice.async_subscribe(client::subscription_kind::channel, {"news"}, asio::use_future));
    ASSERT_TRUE(good) << good.error().message();
    server_->cli({"PUBLISH", "news", "ok"});
    auto m = get(alice.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "ok");
}

TEST_P(auth, subscriptions_need_no_other_command_than_subscribe) {
    // A user allowed to SUBSCRIBE but not to PING: confirmations alone complete the call, and
    // the connection stays in step.
    auto cfg = config_for(*server_, GetParam());
    cfg.connection.username = "listener";
    cfg.connection.password = "l";
    cfg.connection.health_check_interval = std::chrono::milliseconds(0);
    client::client c(cfg);
    ASSERT_TRUE(
        get(c.async_subscribe(client::subscription_kind::channel, {"a", "b"}, asio::use_future)));
    server_->cli({"PUBLISH", "b", "hi"});
    auto m = get(c.async_receive(asio::use_future));
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "hi");
    ASSERT_TRUE(get(c.async_unsubscribe(client::subscription_kind::channel, {}, asio::use_future)));
    EXPECT_EQ(server_->cli({"PUBLISH", "b", "gone"}), "0");
}

INSTANTIATE_TEST_SUITE_P(resp, auth, ::testing::Values(2, 3),
                         [](const auto& i) { return "resp" + std::to_string(i.param); });
