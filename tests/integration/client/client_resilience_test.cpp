// The client under failure: server restarts under load, resets, garbage, truncation,
// blackholes and stalls (through the FaultProxy). Every command ends with a value or an error,
// nothing hangs, and the client reconnects on its own.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <respite/obs/metrics.hpp>

#include "common.hpp"
#include "support/fault_proxy.hpp"

using namespace respite;
using namespace respite::test;
using namespace std::chrono_literals;
using client::cmd;

namespace {

client::client_config via(const fault_proxy& p, int protocol = 3) {
    client::client_config cfg;
    cfg.connection.host = "127.0.0.1";
    cfg.connection.port = p.port();
    cfg.connection.protocol = protocol;
    cfg.connection.command_timeout = 2s;
    cfg.connection.reconnect.initial = 10ms;
    cfg.connection.reconnect.max = 100ms;
    return cfg;
}

// Retries a command until it succeeds (the client reconnects in the background).
bool works_again(client::client& c, std::chrono::milliseconds limit = 10s) {
    return eventually(
        [&] {
            auto r = get(c.async_command(cmd("ECHO", "alive"), asio::use_future));
            return r && r->str() == "alive";
        },
        limit);
}

// kill_abandoned, with a short command timeout and no health check.
client::client_config fencing_via(const fault_proxy& p) {
    auto cfg = via(p);
    cfg.connection.command_timeout = 300ms;
    cfg.connection.health_check_interval = 0ms;
    cfg.connection.kill_abandoned = true;
    return cfg;
}

// A SET held by the stalled proxy until the client gives up on it (the proxy stays stalled).
void abandon_a_write(fault_proxy& p, client::client& c) {
    p.stall(true);
    auto r = get(c.async_command(cmd("SET", "fenced", "late"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::timeout);
}

}  // namespace

TEST(resilience, server_restart_under_load_ends_every_command) {
    redis_server s;
    asio::io_context ioc;
    auto cfg = config_for(s);
    cfg.connection.command_timeout = 1s;
    cfg.connections = 2;
    client::client cl(ioc, cfg);
    std::atomic<bool> stop{false};
    std::atomic<long> issued{0}, ok{0}, failed{0};
    for (int w = 0; w < 20; ++w) {
        asio::co_spawn(
            ioc,
            [&, w]() -> asio::awaitable<void> {
                auto key = "load:" + std::to_string(w);
                while (!stop) {
                    ++issued;
                    auto r = co_await cl.async_command(cmd("INCR", key), asio::use_awaitable);
                    if (r && !r->is_error()) {
                        ++ok;
                    } else {
                        ++failed;
                        asio::steady_timer t(co_await asio::this_coro::executor, 5ms);
                        co_await t.async_wait(asio::use_awaitable);
                    }
                }
            },
            asio::detached);
    }
    std::thread io([&] { ioc.run(); });
    ASSERT_TRUE(eventually([&] { return ok > 1000; }));
    s.stop();
    ASSERT_TRUE(eventually([&] { return failed > 0; }));
    s.start();
    long ok_at_restart = ok;
    ASSERT_TRUE(eventually([&] { return ok > ok_at_restart + 1000; }));
    stop = true;
    // Every coroutine finishes: each await ended with a value or an error.
    ASSERT_TRUE(eventually([&] { return ok + failed == issued; }, 10s))
        << "issued=" << issued << " ok=" << ok << " failed=" << failed;
    cl.close();
    io.join();
}

TEST(resilience, garbage_reply_is_a_protocol_error_then_reconnect) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(via(p));
    ASSERT_TRUE(works_again(c));
    auto& reg = obs::registry::global();
    auto& perr = reg.get_counter("respite_client_protocol_errors_total",
                                 "Connections dropped because the server's bytes could not be "
                                 "parsed");
    auto before = perr.value();
    p.garble_next_reply();
    auto r = get(c.async_command(cmd("ECHO", "x"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::connection_lost);
    EXPECT_GT(perr.value(), before);
    EXPECT_TRUE(works_again(c));
}

TEST(resilience, injected_garbage_on_an_idle_connection_is_handled) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(via(p));
    ASSERT_TRUE(works_again(c));
    auto conn = c.connections()[0];
    auto connects = [&] { return conn->connects(); };
    auto before = connects();
    p.inject_to_clients(std::string("\x01\x02garbage\r\n", 11));
    // An unparseable frame drops the connection; a valid one nobody asked for is a desync.
    ASSERT_TRUE(eventually([&] { return connects() > before; }));
    EXPECT_TRUE(works_again(c));
    before = connects();
    p.inject_to_clients("+UNSOLICITED\r\n");
    ASSERT_TRUE(eventually([&] { return connects() > before; }));
    EXPECT_TRUE(works_again(c));
    // An unsolicited error (e.g. MISCONF) is logged and counted, the connection is kept.
    auto& unsolicited = obs::registry::global().get_counter(
        "respite_client_unsolicited_errors_total",
        "Error replies that answered no request (e.g. MISCONF)");
    auto seen = unsolicited.value();
    before = connects();
    p.inject_to_clients("-MISCONF disk full\r\n");
    ASSERT_TRUE(eventually([&] { return unsolicited.value() > seen; }));
    EXPECT_TRUE(works_again(c));
    EXPECT_EQ(connects(), before);
}

TEST(resilience, truncated_reply_and_reset_fail_written_commands_only) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(via(p));
    ASSERT_TRUE(works_again(c));
    p.truncate_next_reply(3);
    auto r = get(c.async_command(cmd("ECHO", "truncated-reply"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::connection_lost);
    EXPECT_TRUE(works_again(c));
    p.reset_all();
    EXPECT_TRUE(works_again(c));
}

TEST(resilience, blackhole_times_out_then_reconnects) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    auto cfg = via(p);
    cfg.connection.command_timeout = 300ms;
    cfg.connection.health_check_interval = 200ms;
    client::client c(cfg);
    ASSERT_TRUE(works_again(c));
    p.blackhole(true);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(c.async_command(cmd("PING"), asio::use_future));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), client::error::timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    p.blackhole(false);
    // The dead connection is dropped (unresponsive) and a new one serves.
    EXPECT_TRUE(works_again(c));
    EXPECT_GE(p.accepted_connections(), 2u);
}

// kill_abandoned: the connection given up on with a write out is ended on the server by the
// next connection's handshake, before anything else runs on it (CLIENT KILL ID).
TEST(resilience, an_abandoned_connection_is_killed_before_the_next_one_serves) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(fencing_via(p));
    ASSERT_TRUE(works_again(c));
    const auto kills = [&] {
        const auto stats = s.cli({"INFO", "commandstats"});
        const auto at = stats.find("cmdstat_client|kill:calls=");
        return at == std::string::npos ? 0 : std::stoi(stats.substr(at + 26));
    };
    EXPECT_EQ(kills(), 0);
    abandon_a_write(p, c);
    p.stall(false);
    EXPECT_TRUE(works_again(c));
    EXPECT_EQ(kills(), 1) << "the abandoned connection was not killed";
    // A connection that ends with nothing out is not fenced: the client reconnects by itself
    // (nothing is sent before that, or a request written into the reset connection would be
    // out, and rightly fenced), and the reconnect kills nothing.
    const auto accepted = p.accepted_connections();
    p.reset_all();
    ASSERT_TRUE(eventually([&] { return p.accepted_connections() > accepted; }, 10s));
    EXPECT_TRUE(works_again(c));
    EXPECT_EQ(kills(), 1);
}

// After a server restart the abandoned connection is gone with the old process, and its id may
// name another client of the new one: nothing is killed (the run_id differs).
TEST(resilience, an_abandoned_connection_of_a_restarted_server_is_not_killed) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(fencing_via(p));
    ASSERT_TRUE(works_again(c));
    abandon_a_write(p, c);
    s.kill();
    s.start();
    p.stall(false);
    EXPECT_TRUE(works_again(c));
    const auto stats = s.cli({"INFO", "commandstats"});
    EXPECT_EQ(stats.find("cmdstat_client|kill"), std::string::npos) << stats;
}

TEST(resilience, health_check_replaces_a_silent_idle_connection) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    auto cfg = via(p);
    cfg.connection.health_check_interval = 100ms;
    cfg.connection.connect_timeout = 300ms;
    client::client c(cfg);
    ASSERT_TRUE(works_again(c));
    auto conn = c.connections()[0];
    auto before = conn->connects();
    p.blackhole(true);
    // No command is issued: the health check's unanswered PING makes the client reconnect.
    ASSERT_TRUE(eventually([&] { return p.accepted_connections() >= 2; }, 5s));
    p.blackhole(false);
    ASSERT_TRUE(eventually([&] { return conn->connects() > before; }));
    EXPECT_TRUE(works_again(c));
}

TEST(resilience, commands_wait_for_reconnect_and_fail_when_queueing_is_off) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(via(p));
    ASSERT_TRUE(works_again(c));
    p.refuse(true);
    p.reset_all();
    // Wait until the client has seen the reset, so the command is queued, not written.
    auto conn = c.connections()[0];
    ASSERT_TRUE(eventually([&] { return conn->state() != client::connection_state::ready; }));
    auto pending = c.async_command(cmd("ECHO", "queued"), asio::use_future);
    EXPECT_EQ(pending.wait_for(200ms), std::future_status::timeout);
    p.refuse(false);
    auto r = get(pending);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->str(), "queued");

    auto cfg = via(p);
    cfg.connection.queue_while_disconnected = false;
    client::client strict(cfg);
    ASSERT_TRUE(works_again(strict));
    p.refuse(true);
    p.reset_all();
    ASSERT_TRUE(eventually([&] {
        auto e = get(strict.async_command(cmd("PING"), asio::use_future));
        return !e && e.error() == client::error::not_connected;
    }));
    p.refuse(false);
    EXPECT_TRUE(works_again(strict));
}

TEST(resilience, latency_is_tolerated_and_close_fails_pending) {
    redis_server s;
    fault_proxy p(s.host(), s.port());
    client::client c(via(p));
    ASSERT_TRUE(works_again(c));
    p.set_latency(50ms);
    auto r = get(c.async_command(cmd("ECHO", "slow"), asio::use_future));
    ASSERT_TRUE(r);
    p.stall(true);
    auto pending = c.async_command(cmd("ECHO", "never"), asio::use_future);
    c.close();
    auto closed = get(pending);
    ASSERT_FALSE(closed);
    EXPECT_EQ(closed.error(), client::error::closed);
    auto after = get(c.async_command(cmd("PING"), asio::use_future));
    EXPECT_EQ(after.error(), client::error::closed);
}

TEST(resilience, metrics_are_exported) {
    redis_server s;
    client::client c(config_for(s));
    ASSERT_TRUE(get(c.async_command(cmd("PING"), asio::use_future)));
    auto text = obs::registry::global().prometheus_text();
    EXPECT_NE(text.find("respite_client_commands_total"), std::string::npos);
    EXPECT_NE(text.find("respite_client_request_duration_seconds_bucket"), std::string::npos);
    EXPECT_NE(text.find("respite_client_connections"), std::string::npos);
}
