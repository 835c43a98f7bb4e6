// Modes: who serves, who follows; runtime switches through PROXY MODE and HTTP.
#include <csignal>
#include <thread>

#include <asio/read_until.hpp>

#include "proxy_fixture.hpp"

namespace respite::test {
namespace {

using proxy::mode;

class proxy_modes : public proxy_fixture {};

TEST_F(proxy_modes, primary_only_touches_only_the_primary) {
    start(mode::primary_only);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", "k"}), "$1\r\nv\r\n");
    EXPECT_EQ(primary_.cli({"GET", "k"}), "v");
    EXPECT_EQ(secondary_.cli({"EXISTS", "k"}), "0");
}

TEST_F(proxy_modes, dual_write_replays_writes_and_reads_from_the_primary) {
    start(mode::dual_write);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_EQ(c.call({"RPUSH", "l", "a", "b", "c"}), ":3\r\n");
    EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "k"}) == "v"; }));
    EXPECT_TRUE(converged());
    // Reads come from the primary: a key only the secondary has is not visible.
    secondary_.cli({"SET", "only-secondary", "1"});
    EXPECT_EQ(c.call({"GET", "only-secondary"}), "$-1\r\n");
}

TEST_F(proxy_modes, secondary_primary_serves_from_the_secondary_and_replays_to_the_primary) {
    start(mode::secondary_primary);
    raw_conn c(proxy_->port());
    secondary_.cli({"SET", "s", "from-secondary"});
    EXPECT_EQ(c.call({"GET", "s"}), "$14\r\nfrom-secondary\r\n");
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_EQ(secondary_.cli({"GET", "k"}), "v");
    EXPECT_TRUE(eventually([&] { return primary_.cli({"GET", "k"}) == "v"; }));
}

TEST_F(proxy_modes, secondary_only_touches_only_the_secondary) {
    start(mode::secondary_only);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_EQ(secondary_.cli({"GET", "k"}), "v");
    // Nothing reaches the primary: give a replay every chance to show up, then check.
    EXPECT_EQ(c.call({"SET", "k2", "v2"}), "+OK\r\n");
    EXPECT_EQ(c.call({"GET", "k2"}), "$2\r\nv2\r\n");
    EXPECT_EQ(primary_.cli({"DBSIZE"}), "0");
}

TEST_F(proxy_modes, proxy_mode_command_switches_at_runtime_and_counts) {
    start(mode::primary_only);
    raw_conn c(proxy_->port());
    EXPECT_EQ(c.call({"PROXY", "MODE", "GET"}), "$12\r\nprimary-only\r\n");
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "dual-write"}), "+OK\r\n");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write);
    EXPECT_EQ(c.call({"SET", "k", "1"}), "+OK\r\n");
    EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "k"}) == "1"; }));
    // The follower started after primary-only: the cut-over waits for a copy of what was before.
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "secondary-primary"}).substr(0, 20),
              "-ERR switch refused:");
    EXPECT_EQ(c.call({"PROXY", "SYNC", "START", "PRUNE"}), "+OK\r\n");
    EXPECT_TRUE(eventually([&] {
        return c.call({"PROXY", "SYNC", "STATUS"}).find("sync_state:done") != std::string::npos;
    }));
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "secondary-primary"}), "+OK\r\n");
    EXPECT_EQ(c.call({"INCR", "k"}), ":2\r\n");
    EXPECT_EQ(secondary_.cli({"GET", "k"}), "2");
    EXPECT_TRUE(eventually([&] { return primary_.cli({"GET", "k"}) == "2"; }));
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "nonsense"}).substr(0, 18), "-ERR unknown mode ");
    EXPECT_EQ(c.call({"PROXY", "MODE", "GET"}), "$17\r\nsecondary-primary\r\n");
    const auto metrics = http(proxy_->admin_port(), "GET", "/metrics");
    EXPECT_NE(metrics.find("respite_proxy_mode_switches_total"), std::string::npos);
}

// A switch into a mode that starts using a side checks that it answers: with a wrong password
// for the secondary, dual-write went through and replayed nothing (only follow_secondary_up:0
// showed it). The refusal names the cause; FORCE still switches.
TEST_F(proxy_modes, a_switch_to_a_side_that_does_not_answer_is_refused) {
    ASSERT_EQ(secondary_.cli({"CONFIG", "SET", "requirepass", "right"}), "OK");
    start(mode::primary_only,
          [](proxy::proxy_config& c) { c.secondary->connection.password = "wrong"; });
    raw_conn c(proxy_->port());
    const auto refused = c.call({"PROXY", "MODE", "SET", "dual-write"});
    EXPECT_EQ(refused.substr(0, 52), "-ERR switch refused: the secondary does not answer P")
        << refused;
    EXPECT_NE(refused.find("authentication failed"), std::string::npos) << refused;
    EXPECT_EQ(proxy_->current_mode(), mode::primary_only);
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "dual-write", "FORCE"}), "+OK\r\n");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write);
}

TEST_F(proxy_modes, http_admin_reports_health_and_switches_mode) {
    start(mode::dual_write);
    const auto port = proxy_->admin_port();
    ASSERT_NE(port, 0);
    EXPECT_EQ(http(port, "GET", "/healthz"), "200 ok\n");
    EXPECT_EQ(http(port, "GET", "/readyz"), "200 ready\n");
    EXPECT_EQ(http(port, "GET", "/mode"), "200 dual-write\n");
    EXPECT_EQ(http(port, "POST", "/mode?set=dual-write-shadow"), "200 dual-write-shadow\n");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write_shadow);
    EXPECT_EQ(http(port, "POST", "/mode?set=bogus").substr(0, 4), "400 ");
    const auto status = http(port, "GET", "/status");
    EXPECT_NE(status.find("mode:dual-write-shadow"), std::string::npos) << status;
    {
        raw_conn c(proxy_->port());
        EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");
        EXPECT_EQ(c.call({"GET", "k"}), "$1\r\nv\r\n");
    }
    const auto metrics = http(port, "GET", "/metrics");
    EXPECT_NE(metrics.find("respite_proxy_connected_clients"), std::string::npos);
    // Real latencies per route: the write and the read above were measured.
    auto count_of = [&](std::string_view route) {
        const auto key =
            "respite_proxy_command_duration_seconds_count{route=\"" + std::string(route) + "\"} ";
        const auto pos = metrics.find(key);
        return pos == std::string::npos ? 0L : std::stol(metrics.substr(pos + key.size()));
    };
    EXPECT_GE(count_of("write"), 1) << metrics;
    EXPECT_GE(count_of("read"), 1);
    EXPECT_EQ(http(port, "GET", "/nope").substr(0, 4), "404 ");
}

// What a web page in an operator's browser could make of the endpoint: a form POSTed from
// another site switched the mode; a page whose name was re-pointed at the proxy (DNS rebinding)
// read /status and /divergences. Probes and scrapers by any name keep working.
TEST_F(proxy_modes, the_admin_endpoint_refuses_requests_a_web_page_could_forge) {
    start(mode::dual_write);
    const auto port = proxy_->admin_port();
    const auto csrf =
        http(port, "POST", "/mode?set=primary-only&force=1", "Origin: http://evil.example\r\n");
    EXPECT_EQ(csrf.substr(0, 4), "403 ") << csrf;
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write);
    const auto other_port = "Host: 127.0.0.1:" + std::to_string(port) +
                            "\r\nOrigin: http://127.0.0.1:8080\r\n";  // another local site
    EXPECT_EQ(http(port, "POST", "/mode?set=primary-only", other_port).substr(0, 4), "403 ");
    const auto rebound = "Host: attacker.example:" + std::to_string(port) + "\r\n";
    EXPECT_EQ(http(port, "GET", "/status", rebound).substr(0, 4), "403 ");
    EXPECT_EQ(http(port, "GET", "/divergences", rebound).substr(0, 4), "403 ");
    EXPECT_EQ(http(port, "POST", "/mode?set=primary-only", rebound).substr(0, 4), "403 ");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write);
    // A scraper or a probe may use a DNS name; the same origin and plain clients pass.
    EXPECT_EQ(http(port, "GET", "/healthz", "Host: proxy.svc.cluster.local:9191\r\n"), "200 ok\n");
    EXPECT_EQ(http(port, "GET", "/metrics", rebound).substr(0, 4), "200 ");
    EXPECT_EQ(http(port, "GET", "/status", "Host: localhost\r\n").substr(0, 4), "200 ");
    const auto same = "Host: 127.0.0.1:" + std::to_string(port) +
                      "\r\nOrigin: http://127.0.0.1:" + std::to_string(port) + "\r\n";
    EXPECT_EQ(http(port, "POST", "/mode?set=dual-write-shadow", same).substr(0, 4), "200 ");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write_shadow);
}

TEST_F(proxy_modes, the_admin_endpoint_answers_while_a_switch_waits) {
    // A switch waits (up to --switch-timeout) for the follower; it ran on the thread that also
    // served the HTTP endpoint, so /healthz stalled with it (a liveness probe would kill the
    // proxy in the middle of a cut-over).
    start(mode::dual_write,
          [](proxy::proxy_config& c) { c.switch_timeout = std::chrono::seconds(3); });
    raw_conn c(proxy_->port());
    const auto stopped = stop_the_follower_target(c);
    EXPECT_EQ(c.call({"SET", "k", "2"}), "+OK\r\n");  // the follower cannot apply it now
    const auto port = proxy_->admin_port();
    std::string over_http;
    std::thread switcher([&] { over_http = http(port, "POST", "/mode?set=secondary-primary"); });
    // The same switch asked by a client (PROXY MODE SET runs on the control thread).
    raw_conn admin_client(proxy_->port());
    admin_client.command({"PROXY", "MODE", "SET", "secondary-primary"});
    auto slowest = std::chrono::steady_clock::duration::zero();
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < end) {
        const auto t0 = std::chrono::steady_clock::now();
        EXPECT_EQ(http(port, "GET", "/healthz"), "200 ok\n");
        EXPECT_NE(http(port, "GET", "/metrics").find("respite_proxy_"), std::string::npos);
        slowest = std::max(slowest, std::chrono::steady_clock::now() - t0);
    }
    switcher.join();
    EXPECT_LT(slowest, std::chrono::milliseconds(500));
    // Both switches gave up: the follower never caught up.
    EXPECT_EQ(over_http.substr(0, 4), "409 ") << over_http;
    EXPECT_EQ(admin_client.frame(std::chrono::seconds(10)).value_or("").substr(0, 4), "-ERR");
    EXPECT_EQ(proxy_->current_mode(), mode::dual_write);
}

// A switch refused because the follower could not catch up leaves the clients with state on
// the serving side alone (an open MULTI, a subscriber): they were closed before the wait, for
// nothing. A blocked client is still closed first (its command would hold the wait).
TEST_F(proxy_modes, a_switch_refused_for_the_followers_lag_keeps_the_clients_with_state) {
    start(mode::dual_write,
          [](proxy::proxy_config& c) { c.switch_timeout = std::chrono::milliseconds(800); });
    raw_conn c(proxy_->port());
    raw_conn txn(proxy_->port());
    ASSERT_EQ(txn.call({"MULTI"}), "+OK\r\n");
    ASSERT_EQ(txn.call({"SET", "t", "1"}), "+QUEUED\r\n");
    raw_conn sub(proxy_->port());
    ASSERT_EQ(sub.call({"SUBSCRIBE", "ch"}), "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    raw_conn blocked(proxy_->port());
    blocked.command({"BLPOP", "q", "0"});
    ASSERT_TRUE(eventually([&] {
        return primary_.cli({"CLIENT", "LIST"}).find("cmd=blpop") != std::string::npos;
    }));
    const auto stopped = stop_the_follower_target(c);
    EXPECT_EQ(c.call({"SET", "k", "2"}), "+OK\r\n");  // the follower cannot apply it now
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "secondary-primary"}).substr(0, 20),
              "-ERR switch refused:");
    EXPECT_TRUE(blocked.closed_by_peer());
    EXPECT_EQ(txn.call({"EXEC"}), "*1\r\n+OK\r\n");
    EXPECT_EQ(c.call({"PUBLISH", "ch", "m"}), ":1\r\n");
    EXPECT_EQ(sub.frame(), "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n");
}

// A write held by a switch is retried every millisecond until the switch ends: it is counted
// once, not once per retry.
TEST_F(proxy_modes, a_write_held_by_a_switch_is_counted_once) {
    start(mode::dual_write,
          [](proxy::proxy_config& c) { c.switch_timeout = std::chrono::milliseconds(800); });
    const auto sets = [&] { return commands_counted("set"); };
    raw_conn c(proxy_->port());
    const auto stopped = stop_the_follower_target(c);
    EXPECT_EQ(c.call({"SET", "k", "2"}), "+OK\r\n");  // the follower cannot apply it now
    const auto before = sets();
    std::string refused;
    std::thread switcher(
        [&] { refused = http(proxy_->admin_port(), "POST", "/mode?set=secondary-primary"); });
    ASSERT_TRUE(eventually([&] { return info_field("writes_held") == "1"; }));
    EXPECT_EQ(c.call({"SET", "held", "x"}), "+OK\r\n");  // held until the switch gives up
    switcher.join();
    EXPECT_EQ(refused.substr(0, 4), "409 ") << refused;
    EXPECT_EQ(info_field("writes_held"), "0");
    EXPECT_TRUE(eventually([&] { return sets() >= before + 1; }));
    EXPECT_EQ(sets(), before + 1) << "the held SET was counted per retry";
}

// A subscriber that (re)subscribes while a switch of the serving side waits for the follower:
// its SUBSCRIBE is held until the flip, so it subscribes on the new side. It went to the old
// side's hub, after the switch had closed the subscribers there, and stayed there.
TEST_F(proxy_modes, a_subscribe_during_a_switch_lands_on_the_new_serving_side) {
    start(mode::dual_write,
          [](proxy::proxy_config& c) { c.switch_timeout = std::chrono::seconds(10); });
    raw_conn c(proxy_->port());
    auto stopped = stop_the_follower_target(c);
    EXPECT_EQ(c.call({"SET", "k", "2"}), "+OK\r\n");  // the follower cannot apply it now
    std::string switched;
    std::thread switcher(
        [&] { switched = http(proxy_->admin_port(), "POST", "/mode?set=secondary-primary"); });
    ASSERT_TRUE(eventually([&] { return info_field("writes_held") == "1"; }));
    raw_conn sub(proxy_->port());
    sub.command({"SUBSCRIBE", "ch"});
    EXPECT_FALSE(sub.frame(std::chrono::milliseconds(300)).has_value()) << "not held";
    stopped.reset();  // the follower catches up: the switch flips
    switcher.join();
    EXPECT_EQ(switched.substr(0, 4), "200 ") << switched;
    EXPECT_EQ(sub.frame(std::chrono::seconds(5)).value_or(""),
              "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
    // Subscribed on the secondary's hub: a message published there directly (not through the
    // proxy's follower, which also copies PUBLISH to the primary) reaches it.
    secondary_.cli({"PUBLISH", "ch", "direct"});
    EXPECT_EQ(sub.frame(std::chrono::seconds(5)).value_or(""),
              "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$6\r\ndirect\r\n");
}

TEST_F(proxy_modes, readyz_fails_when_the_serving_backend_is_down) {
    start(mode::primary_only);
    primary_.stop();
    EXPECT_TRUE(eventually(
        [&] { return http(proxy_->admin_port(), "GET", "/readyz").substr(0, 3) == "503"; }));
    primary_.start();
    EXPECT_TRUE(eventually(
        [&] { return http(proxy_->admin_port(), "GET", "/readyz").substr(0, 3) == "200"; }));
}

TEST_F(proxy_modes, a_switch_of_the_serving_side_waits_for_the_follower) {
    start(mode::dual_write,
          [](proxy::proxy_config& c) { c.switch_timeout = std::chrono::seconds(20); });
    client::sync_client cl(client_config());
    // A burst of writes, then an immediate cut-over: every write must be on the secondary
    // when the secondary starts serving.
    client::request req;
    for (int i = 0; i < 5000; ++i)
        req.push("INCR", "counter");
    auto r = cl.exec(std::move(req));
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(proxy_->set_mode(mode::secondary_primary).has_value());
    auto v = cl.command("GET", "counter");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(v->str(), "5000");
}

TEST_F(proxy_modes, info_proxy_describes_the_proxy) {
    start(mode::dual_write_shadow);
    raw_conn c(proxy_->port());
    const auto info = c.call({"INFO", "proxy"});
    EXPECT_NE(info.find("# Proxy"), std::string::npos);
    EXPECT_NE(info.find("mode:dual-write-shadow"), std::string::npos);
    EXPECT_NE(info.find("follow_secondary_queued_items:"), std::string::npos);
    EXPECT_NE(info.find("shadow_compared:"), std::string::npos);
    // Plain INFO is the serving server's.
    EXPECT_NE(c.call({"INFO", "server"}).find("redis_version"), std::string::npos);
}

}  // namespace
}  // namespace respite::test
