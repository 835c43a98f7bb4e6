// The facade from many threads at once (run under TSan by scripts/test.sh): commands, pipelines,
// subscriptions and close racing with callers.
#include <asio/use_future.hpp>

#include <respite/client/sync_client.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

TEST(threads, many_threads_share_one_client) {
    redis_server s;
    auto cfg = config_for(s);
    cfg.connections = 2;
    client::sync_client c(cfg);
    constexpr int threads = 8, per_thread = 500;
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = c.command("RPUSH", "list:" + std::to_string(t), i);
                if (r && r->integer() == i + 1)
                    ++ok;
                if (i % 50 == 0) {
                    client::request p;
                    p.push("INCR", "shared").push("GET", "shared");
                    auto rs = c.exec(std::move(p));
                    if (!rs || rs->size() != 2)
                        --ok;
                }
            }
        });
    }
    for (auto& t : ts)
        t.join();
    EXPECT_EQ(ok.load(), threads * per_thread);
    EXPECT_EQ(s.cli({"GET", "shared"}), std::to_string(threads * (per_thread / 50)));
}

TEST(threads, messages_and_commands_from_other_threads) {
    redis_server s;
    client::client c(config_for(s));
    std::atomic<int> received{0};
    c.set_message_handler([&](const client::message&) { ++received; });
    ASSERT_TRUE(
        get(c.async_subscribe(client::subscription_kind::channel, {"t"}, asio::use_future)));
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            for (int i = 0; i < 200; ++i) {
                auto r = get(c.async_command(cmd("PUBLISH", "t", i), asio::use_future));
                if (!r)
                    ADD_FAILURE() << r.error().message();
            }
        });
    }
    for (auto& t : ts)
        t.join();
    EXPECT_TRUE(eventually([&] { return received == 800; }));
    EXPECT_EQ(c.push_stats().delivered, 800u);
}

TEST(threads, close_while_other_threads_issue_commands) {
    redis_server s;
    auto c = std::make_unique<client::client>(config_for(s));
    std::atomic<bool> stop{false};
    std::atomic<int> completed{0}, closed_errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            while (!stop) {
                auto r = get(c->async_command(cmd("PING"), asio::use_future));
                ++completed;
                if (!r && r.error() == client::error::closed)
                    ++closed_errors;
            }
        });
    }
    ASSERT_TRUE(eventually([&] { return completed > 200; }));
    c->close();
    ASSERT_TRUE(eventually([&] { return closed_errors >= 4; }));
    stop = true;
    for (auto& t : ts)
        t.join();
}
