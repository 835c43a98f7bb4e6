// Pipelines (explicit and automatic), transactions, WATCH sessions, blocking commands and
// timeouts against a real server.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <respite/client/sync_client.hpp>

#include "common.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;
using resp::value;

namespace {

class pipeline : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { server_ = new redis_server(); }
    static void TearDownTestSuite() {
        delete server_;
        server_ = nullptr;
    }
    void SetUp() override { server_->cli({"FLUSHALL"}); }
    static redis_server* server_;
};
redis_server* pipeline::server_ = nullptr;

}  // namespace

TEST_F(pipeline, one_request_of_100k_commands) {
    client::sync_client c(config_for(*server_));
    client::request r;
    constexpr int n = 100000;
    for (int i = 0; i < n; ++i)
        r.push("SET", "key:" + std::to_string(i), i);
    auto rs = c.exec(std::move(r));
    ASSERT_TRUE(rs) << rs.error().message();
    ASSERT_EQ(rs->size(), static_cast<std::size_t>(n));
    for (const auto& v : *rs)
        ASSERT_EQ(v.str(), "OK");
    EXPECT_EQ(server_->cli({"DBSIZE"}), std::to_string(n));
    EXPECT_EQ(server_->cli({"GET", "key:99999"}), "99999");
}

TEST_F(pipeline, automatic_pipelining_of_100k_concurrent_commands_keeps_order) {
    asio::io_context ioc;
    client::client cl(ioc, config_for(*server_));
    constexpr int n = 100000;
    int done = 0, ok = 0;
    // Every INCR on one key: replies must come back 1..n in submission order.
    for (int i = 0; i < n; ++i) {
        cl.async_command(cmd("INCR", "counter"), [&, i](client::result<value> r) {
            ++done;
            if (r && r->integer() == i + 1)
                ++ok;
        });
    }
    EXPECT_TRUE(run_until(ioc, [&] { return done == n; }));
    EXPECT_EQ(done, n);
    EXPECT_EQ(ok, n);
    EXPECT_EQ(server_->cli({"GET", "counter"}), std::to_string(n));
}

TEST_F(pipeline, coroutines_share_a_connection) {
    asio::io_context ioc;
    client::client cl(ioc, config_for(*server_));
    constexpr int workers = 50, per_worker = 2000;
    int finished = 0;
    std::atomic<int> failures{0};
    for (int w = 0; w < workers; ++w) {
        asio::co_spawn(
            ioc,
            [&, w]() -> asio::awaitable<void> {
                for (int i = 0; i < per_worker; ++i) {
                    auto key = "w" + std::to_string(w);
                    auto r = co_await cl.async_command(cmd("RPUSH", key, i), asio::use_awaitable);
                    if (!r || r->integer() != i + 1)
                        ++failures;
                }
                ++finished;
            },
            asio::detached);
    }
    EXPECT_TRUE(run_until(ioc, [&] { return finished == workers; }));
    EXPECT_EQ(finished, workers);
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(server_->cli({"LLEN", "w7"}), std::to_string(per_worker));
}

TEST_F(pipeline, transaction_commits_atomically_and_reports_errors) {
    client::sync_client c(config_for(*server_));
    client::request tx;
    tx.push("SET", "a", 1).push("INCR", "a").push("GET", "a");
    auto r = c.transaction(tx);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->size(), 3u);
    EXPECT_EQ((*r)[1].integer(), 2);
    EXPECT_EQ((*r)[2].str(), "2");

    // A command Redis rejects at queue time aborts the whole transaction (EXECABORT).
    client::request bad;
    bad.push("SET", "b", 1).push("NOSUCHCMD").push("SET", "c", 1);
    auto rb = c.transaction(bad);
    ASSERT_TRUE(rb);
    ASSERT_EQ(rb->size(), 1u);
    EXPECT_TRUE((*rb)[0].is_error());
    EXPECT_EQ(server_->cli({"EXISTS", "b"}), "0");

    // A runtime error inside EXEC is a per-command error value; the rest applied.
    c.command("SET", "str", "x");
    client::request rt;
    rt.push("INCR", "str").push("SET", "d", 1);
    auto rr = c.transaction(rt);
    ASSERT_TRUE(rr);
    EXPECT_TRUE((*rr)[0].is_error());
    EXPECT_EQ((*rr)[1].str(), "OK");

    // WATCH inside a multiplexed transaction is refused: it needs a session.
    client::request w;
    w.push("WATCH", "a");
    EXPECT_EQ(c.transaction(w).error(), client::error::invalid_argument);
}

TEST_F(pipeline, watch_session_aborts_when_the_key_changes) {
    asio::io_context ioc;
    client::client cl(ioc, config_for(*server_));
    std::optional<client::result<std::vector<value>>> first, second;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            auto s = co_await cl.async_session(asio::use_awaitable);
            if (!s)
                co_return;
            co_await s->async_command(cmd("WATCH", "w"), asio::use_awaitable);
            // Someone else changes the key between WATCH and EXEC.
            co_await cl.async_command(cmd("SET", "w", "other"), asio::use_awaitable);
            client::request tx;
            tx.push("MULTI").push("SET", "w", "mine").push("EXEC");
            first = co_await s->async_exec(std::move(tx), asio::use_awaitable);
            // Unchanged key: the same flow commits.
            co_await s->async_command(cmd("WATCH", "w"), asio::use_awaitable);
            client::request tx2;
            tx2.push("MULTI").push("SET", "w", "mine").push("EXEC");
            second = co_await s->async_exec(std::move(tx2), asio::use_awaitable);
        },
        asio::detached);
    EXPECT_TRUE(run_until(
        ioc, [&] { return second.has_value(); }, 20s));
    ASSERT_TRUE(first && *first);
    EXPECT_TRUE((**first)[2].is_null());  // EXEC null: aborted
    ASSERT_TRUE(second && *second);
    EXPECT_EQ((**second)[2].type(), resp::type::array);
    EXPECT_EQ(server_->cli({"GET", "w"}), "mine");
}

TEST_F(pipeline, blocking_commands_get_their_block_time_plus_margin) {
    auto cfg = config_for(*server_);
    cfg.connection.command_timeout = 300ms;
    cfg.connection.blocking_margin = 500ms;
    client::client cl(cfg);
    // BLPOP 1 outlives the 300 ms command timeout: it must end with null, not a timeout.
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(cl.async_command(cmd("BLPOP", "empty-list", 1), asio::use_future));
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->is_null());
    EXPECT_GE(took, 900ms);

    // BLPOP 0 waits without a deadline while other traffic keeps flowing.
    auto pending = cl.async_command(cmd("BLPOP", "later", 0), asio::use_future);
    for (int i = 0; i < 5; ++i) {
        auto p = get(cl.async_command(cmd("PING"), asio::use_future));
        ASSERT_TRUE(p);
    }
    EXPECT_EQ(pending.wait_for(500ms), std::future_status::timeout);
    server_->cli({"RPUSH", "later", "v"});
    auto got = get(pending);
    ASSERT_TRUE(got) << got.error().message();
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[1].str(), "v");
}

TEST_F(pipeline, slow_command_times_out_and_the_connection_recovers) {
    auto cfg = config_for(*server_);
    cfg.connection.command_timeout = 200ms;
    client::client cl(cfg);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(cl.async_command(cmd("DEBUG", "SLEEP", "0.6"), asio::use_future));
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::timeout);
    EXPECT_LT(took, 550ms);
    // The server is still asleep for a while: commands may time out until it wakes, but every
    // reply that does arrive is the command's own, never the late +OK of DEBUG SLEEP.
    int answered = 0;
    for (int i = 0; i < 200 && answered < 3; ++i) {
        auto e = get(cl.async_command(cmd("ECHO", i), asio::use_future));
        if (!e) {
            EXPECT_EQ(e.error(), client::error::timeout);
            continue;
        }
        EXPECT_EQ(e->str(), std::to_string(i));
        ++answered;
    }
    EXPECT_EQ(answered, 3);
}

TEST_F(pipeline, invalid_requests_fail_cleanly) {
    client::sync_client c(config_for(*server_));
    client::request empty;
    EXPECT_EQ(c.exec(empty).error(), client::error::invalid_argument);
    EXPECT_EQ(c.command("SUBSCRIBE", "x").error(), client::error::invalid_argument);
    client::request two;
    two.push("PING").push("PING");
    EXPECT_EQ(c.run(two).error(), client::error::invalid_argument);
}

TEST_F(pipeline, close_fails_a_pending_blocking_command) {
    client::client cl(config_for(*server_));
    auto pending = cl.async_command(cmd("BLPOP", "never-filled", 0), asio::use_future);
    EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
    cl.close();
    auto r = get(pending);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::closed);
}

TEST_F(pipeline, a_session_may_outlive_its_client) {
    std::optional<client::session> kept;
    {
        client::client cl(config_for(*server_));
        auto s = get(cl.async_session(asio::use_future));
        ASSERT_TRUE(s);
        kept.emplace(std::move(*s));
    }
    kept.reset();  // must not touch the destroyed client's io_context
    SUCCEED();
}

TEST_F(pipeline, dedicated_connections_are_bounded) {
    auto cfg = config_for(*server_);
    cfg.max_dedicated = 2;
    cfg.connection.command_timeout = 3s;
    cfg.connection.client_name = "bounded";
    client::client cl(cfg);
    // Four blocking commands, two connections: two wait for a connection, none fails.
    std::vector<std::future<client::result<resp::value>>> pending;
    for (int i = 0; i < 4; ++i) {
        pending.push_back(
            cl.async_command(cmd("BLPOP", "bounded:" + std::to_string(i), 0.3), asio::use_future));
    }
    for (auto& f : pending) {
        auto r = get(f);
        ASSERT_TRUE(r) << r.error().message();
        EXPECT_TRUE(r->is_null());
    }
    // One multiplexed connection and at most two dedicated ones.
    auto clients = server_->cli({"CLIENT", "LIST"});
    std::size_t named = 0;
    for (std::size_t pos = 0; (pos = clients.find("name=bounded", pos)) != std::string::npos;
         ++pos) {
        ++named;
    }
    EXPECT_LE(named, 3u);

    // The only dedicated connection held by BLPOP 0: the next one gives up after the timeout.
    cfg.max_dedicated = 1;
    cfg.connection.command_timeout = 300ms;
    client::client one(cfg);
    auto holder = one.async_command(cmd("BLPOP", "bounded:never", 0), asio::use_future);
    auto t0 = std::chrono::steady_clock::now();
    auto starved = get(one.async_command(cmd("BLPOP", "bounded:other", 5), asio::use_future));
    ASSERT_FALSE(starved);
    EXPECT_EQ(starved.error(), client::error::timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    one.close();
    EXPECT_EQ(get(holder).error(), client::error::closed);
}
