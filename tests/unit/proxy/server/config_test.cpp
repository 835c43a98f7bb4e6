// respite-proxy's flags and config file: same names, clear errors.
#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include <respite/proxy/proxy.hpp>

namespace respite::proxy {
namespace {

std::expected<proxy_config, config_error> parse(std::vector<std::string> args) {
    args.insert(args.begin(), "respite-proxy");
    std::vector<const char*> argv;
    for (auto& a : args)
        argv.push_back(a.c_str());
    return parse_config(static_cast<int>(argv.size()), argv.data());
}

// parse() with `text` as the --config file (written, then removed), before `more` flags.
std::expected<proxy_config, config_error> parse_file(const std::string& text,
                                                     std::vector<std::string> more = {}) {
    const std::string path = ::testing::TempDir() + "respite-proxy-test.conf";
    std::ofstream(path) << text;
    more.insert(more.begin(), {"--config", path});
    auto c = parse(std::move(more));
    std::remove(path.c_str());
    return c;
}

TEST(proxy_config_parse, defaults_are_production_sane) {
    auto c = parse({"--secondary", "10.0.0.2:6379"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->initial_mode, mode::dual_write);
    EXPECT_EQ(c->listen_host, "127.0.0.1");
    EXPECT_EQ(c->listen_port, 6479);
    EXPECT_EQ(c->primary.connection.port, 6379);
    EXPECT_EQ(c->secondary->connection.host, "10.0.0.2");
    EXPECT_EQ(c->admin_port, 9191);
    EXPECT_TRUE(c->users.empty());
    EXPECT_EQ(c->repair_rate, 5000U);
    EXPECT_EQ(c->verify_chunk_elements, 1000U);
    EXPECT_EQ(c->verify_chunk_bytes, 65536U);
    EXPECT_EQ(c->restart_check_interval, std::chrono::seconds(1));
    EXPECT_FALSE(c->resync_on_restart);
}

TEST(proxy_config_parse, flags_map_onto_the_config) {
    auto c = parse({"--listen",
                    ":7000",
                    "--primary",
                    "[::1]:7001",
                    "--primary-cluster",
                    "--secondary",
                    "h:7002",
                    "--mode",
                    "dual-write-shadow",
                    "--password",
                    "pw",
                    "--user",
                    "alice:a:b",
                    "--shadow-percent",
                    "12.5",
                    "--idle-timeout",
                    "30",
                    "--admin",
                    "",
                    "--threads",
                    "3",
                    "--repair-rate",
                    "0",
                    "--verify-chunk-elements",
                    "250",
                    "--verify-chunk-bytes",
                    "4096",
                    "--restart-check-interval",
                    "0.25",
                    "--resync-on-restart"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->listen_host, "0.0.0.0");
    EXPECT_EQ(c->listen_port, 7000);
    EXPECT_EQ(c->primary.connection.host, "::1");
    EXPECT_TRUE(c->primary.cluster);
    EXPECT_EQ(c->initial_mode, mode::dual_write_shadow);
    ASSERT_EQ(c->users.size(), 2U);
    EXPECT_EQ(c->users[1].name, "alice");
    EXPECT_EQ(c->users[1].password, "a:b");
    EXPECT_DOUBLE_EQ(c->shadow_percent, 12.5);
    EXPECT_EQ(c->idle_timeout, std::chrono::seconds(30));
    EXPECT_TRUE(c->admin_host.empty());
    EXPECT_EQ(c->threads, 3U);
    EXPECT_EQ(c->repair_rate, 0U);
    EXPECT_EQ(c->verify_chunk_elements, 250U);
    EXPECT_EQ(c->verify_chunk_bytes, 4096U);
    EXPECT_EQ(c->restart_check_interval, std::chrono::milliseconds(250));
    EXPECT_TRUE(c->resync_on_restart);
}

TEST(proxy_config_parse, a_config_file_takes_the_same_names_and_flags_win) {
    auto c = parse_file(
        "primary = \"127.0.0.1:7100\"\nsecondary = \"127.0.0.1:7200\"\nmode = "
        "\"primary-only\"\nthreads = 5\nreplay-lanes = 16\n",
        {"--threads", "2"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->primary.connection.port, 7100);
    EXPECT_EQ(c->secondary->connection.port, 7200);
    EXPECT_EQ(c->initial_mode, mode::primary_only);
    EXPECT_EQ(c->replay_lanes, 16U);
    EXPECT_EQ(c->threads, 2U);
}

TEST(proxy_config_parse, a_misspelt_name_in_the_config_file_is_an_error) {
    // CLI11 ignores unknown names in a config file by default: the proxy would start without
    // the setting (here: no secondary at all) and say nothing.
    auto c = parse_file("secondry = \"127.0.0.1:7200\"\nmode = \"primary-only\"\n");
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().message,
              "--config: unknown option 'secondry' (the file takes the flags' names without the "
              "dashes)");
    // A [section]: its names are not the options'.
    auto s = parse_file("[proxy]\nmode = \"primary-only\"\n");
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().message,
              "--config: a section [proxy] (sections are not read: put every option at the top "
              "level)");
}

TEST(proxy_config_parse, a_cluster_takes_several_seeds) {
    auto c = parse({"--primary", "10.0.0.1:7000,10.0.0.2:7001,[::1]:7002", "--primary-cluster",
                    "--secondary", "h:1"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->primary.connection.host, "10.0.0.1");
    EXPECT_EQ(c->primary.connection.port, 7000);
    ASSERT_EQ(c->primary.more_seeds.size(), 2U);
    EXPECT_EQ(c->primary.more_seeds[0].host, "10.0.0.2");
    EXPECT_EQ(c->primary.more_seeds[1].port, 7002);
    auto standalone = parse({"--primary", "a:1,b:2", "--secondary", "h:1"});
    ASSERT_FALSE(standalone.has_value());
    EXPECT_NE(standalone.error().message.find("--primary-cluster"), std::string::npos)
        << standalone.error().message;
    auto bad = parse({"--primary", "a:1,", "--primary-cluster", "--secondary", "h:1"});
    ASSERT_FALSE(bad.has_value());
}

TEST(proxy_config_parse, fractional_seconds_are_kept) {
    // --idle-timeout 0.5 was truncated to 0, which means "never".
    auto c = parse({"--secondary", "h:1", "--idle-timeout", "0.5", "--shadow-timeout", "0.25"});
    ASSERT_TRUE(c.has_value()) << c.error().message;
    EXPECT_EQ(c->idle_timeout, std::chrono::milliseconds(500));
    EXPECT_EQ(c->shadow_timeout, std::chrono::milliseconds(250));
}

TEST(proxy_config_parse, mistakes_get_clear_errors) {
    auto expect_error = [](std::vector<std::string> args, std::string_view part) {
        auto c = parse(args);
        ASSERT_FALSE(c.has_value());
        EXPECT_FALSE(c.error().exit_ok);
        EXPECT_NE(c.error().message.find(part), std::string::npos) << c.error().message;
    };
    expect_error({"--mode", "tripe-write", "--secondary", "h:1"}, "unknown mode");
    expect_error({"--mode", "dual-write"}, "needs --secondary");
    expect_error({"--primary", "nohostport"}, "--primary");
    expect_error({"--primary", "h:99999"}, "--primary");
    expect_error({"--secondary", "127.0.0.1:6379"}, "same address");
    expect_error({"--secondary", "h:1", "--user", "nopassword"}, "--user");
    expect_error({"--secondary", "h:1", "--shadow-percent", "150"}, "shadow-percent");
    expect_error({"--secondary", "h:1", "--tls-cert", "c.pem"}, "--tls-key");
    expect_error({"--secondary", "h:1", "--log-level", "chatty"}, "log-level");
    expect_error({"--no-such-flag"}, "no-such-flag");
    expect_error({"--secondary", "h:1", "--restart-check-interval", "-1"},
                 "restart-check-interval");
    expect_error({"--secondary", "h:1", "--repair-rate", "fast"}, "repair-rate");
    expect_error({"--secondary", "h:1", "--verify-chunk-elements", "0"}, "verify-chunk-elements");
    expect_error({"--secondary", "h:1", "--verify-chunk-bytes", "0"}, "verify-chunk-bytes");
    // CLI's number checks let nan and inf through; a huge value overflowed the conversion.
    expect_error({"--secondary", "h:1", "--idle-timeout", "nan"}, "--idle-timeout: expected");
    expect_error({"--secondary", "h:1", "--idle-timeout", "1e17"}, "--idle-timeout: expected");
    expect_error({"--secondary", "h:1", "--switch-timeout", "inf"}, "--switch-timeout");
    expect_error({"--secondary", "h:1", "--shadow-percent", "nan"}, "--shadow-percent");
    expect_error({"--secondary", "h:1", "--sentry-sample", "nan"}, "--sentry-sample: expected");
    // What is expected, not CLI11's range with a 300-digit maximum.
    expect_error({"--secondary", "h:1", "--max-clients", "0"},
                 "--max-clients: expected a number above 0, got '0'");
    expect_error({"--secondary", "h:1", "--idle-timeout", "-1"},
                 "--idle-timeout: expected a number from 0 up, got '-1'");
    expect_error({"--secondary", "h:1", "--repair-fence-after", "nan"}, "--repair-fence-after");
    expect_error({"--secondary", "h:1", "--repair-fence-max", "0"}, "--repair-fence-max");
    expect_error({"--secondary", "h:1", "--verify-chunk-bytes", "1073741824"},
                 "verify-chunk-bytes");
    expect_error({"--secondary", "h:1", "--tls-client-ca", "ca.pem"}, "--tls-client-ca needs");
    expect_error({"--secondary", "h:1", "--primary-tls", "--primary-tls-cert", "c.pem"},
                 "--primary-tls-key");
    expect_error(
        {"--secondary", "h:1", "--secondary-tls-cert", "c.pem", "--secondary-tls-key", "k.pem"},
        "needs --secondary-tls");
    expect_error({"--secondary", "h:1", "--primary-tls-ca", "ca.pem"}, "needs --primary-tls");
    expect_error({"--secondary", "h:1", "--secondary-tls-server-name", "redis.internal"},
                 "needs --secondary-tls");
    expect_error({"--secondary", "h:1", "--threads", "100000"}, "threads");
    expect_error({"--secondary", "h:1", "--user", "app:pw", "--admin-user", "ops"},
                 "--admin-user ops: no such user");
    // What an option expects, not CLI11's "Value eight not in range 1 to 256" or "At Most 1
    // required but received 2"; --repair-rate -5 was taken.
    expect_error({"--secondary", "h:1", "--replay-lanes", "eight"},
                 "--replay-lanes: expected a number from 1 to 256, got 'eight'");
    expect_error({"--secondary", "h:1", "--mode", "dual-write", "--mode", "primary-only"},
                 "--mode: given more than once");
    expect_error({"--secondary", "h:1", "--repair-rate", "-5"},
                 "--repair-rate: expected a number from 0 up, got '-5'");
    // Options of a secondary that is not configured would go unused.
    expect_error({"--secondary-tls-ca", "ca.pem"},
                 "--secondary-tls-ca is given without --secondary");
    expect_error({"--secondary-password", "pw"}, "--secondary-password is given without");
    auto help = parse({"--help"});
    ASSERT_FALSE(help.has_value());
    EXPECT_TRUE(help.error().exit_ok);
    EXPECT_NE(help.error().message.find("--mode"), std::string::npos);
}

}  // namespace
}  // namespace respite::proxy
