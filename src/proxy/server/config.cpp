// Command-line flags and the config file (same names) for respite-proxy.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <respite/proxy/proxy.hpp>

namespace respite::proxy {

namespace {

// "host:port", "[v6]:port" or ":port".
bool split_address(const std::string& s, std::string& host, std::uint16_t& port) {
    auto colon = s.rfind(':');
    if (colon == std::string::npos)
        return false;
    host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    if (host.empty())
        host = "0.0.0.0";
    unsigned v = 0;
    const auto p = s.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size() || v > 65535)
        return false;
    port = static_cast<std::uint16_t>(v);
    return true;
}

// A number in [lo, hi] (above lo when lo_open; no upper bound when hi is infinite). CLI11's own
// checks print their bounds ("Value eight not in range 1 to 256", a 300-digit maximum for
// PositiveNumber) and let nan through; this says what the option expects.
CLI::Validator number_check(double lo, double hi, bool lo_open = false) {
    const auto expected = lo_open          ? fmt::format("above {}", lo)
                          : std::isinf(hi) ? fmt::format("from {} up", lo)
                                           : fmt::format("from {} to {}", lo, hi);
    return CLI::Validator(
        [lo, hi, lo_open, expected](std::string& s) -> std::string {
            double v = 0;
            const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
            if (ec == std::errc() && p == s.data() + s.size() && (lo_open ? v > lo : v >= lo) &&
                v <= hi)
                return {};
            return "expected a number " + expected + ", got '" + s + "'";
        },
        lo_open          ? "POSITIVE"
        : std::isinf(hi) ? "NONNEGATIVE"
                         : fmt::format("{}-{}", lo, hi));
}

}  // namespace

std::expected<proxy_config, config_error> parse_config(int argc, const char* const* argv) {
    constexpr double unbounded = std::numeric_limits<double>::infinity();
    const auto positive = number_check(0, unbounded, true);
    const auto non_negative = number_check(0, unbounded);
    proxy_config cfg;
    CLI::App app{
        "respite-proxy: live migration between two Redis deployments without downtime. "
        "Every option can also be set in the --config file (same names)."};
    app.set_config("--config", "", "INI/TOML file with the same option names");
    // A misspelt name in the file is an error, as on the command line (CLI11 ignores it by
    // default, which would start the proxy with a setting silently missing).
    app.allow_config_extras(CLI::config_extras_mode::error);
    app.set_version_flag("--version", "respite-proxy 0.1.0");

    std::string listen = "127.0.0.1:6479", primary = "127.0.0.1:6379", secondary,
                admin = "127.0.0.1:9191";
    std::string mode_text = "dual-write";
    std::vector<std::string> users;
    std::string password;
    double idle_timeout = 0, shutdown_timeout = 10, switch_timeout = 10, shadow_timeout = 2;
    double shutdown_delay = 0;
    double ttl_tolerance = 2, pubsub_window = 2, restart_check = 1, rejected_retry = 30;
    double fence_after = 1, fence_max = 0.1;
    double backend_timeout = 5;
    bool primary_cluster = false, secondary_cluster = false;

    app.add_option("--listen", listen, "Client address host:port")->capture_default_str();
    app.add_option("--unix-socket", cfg.unix_socket, "Also listen on this unix socket");
    app.add_option("--threads", cfg.threads, "Worker threads (0: one per core)")
        ->capture_default_str()
        ->check(number_check(0, 256));
    app.add_option("--primary", primary,
                   "Primary backend host:port (a cluster: seeds, comma-separated)")
        ->capture_default_str();
    app.add_flag("--primary-cluster", primary_cluster, "The primary is a Redis Cluster (seed)");
    app.add_option("--primary-user", cfg.primary.connection.username, "Primary ACL user");
    app.add_option("--primary-password", cfg.primary.connection.password, "Primary password");
    app.add_option("--primary-db", cfg.primary.connection.database, "Primary database")
        ->capture_default_str()
        ->check(number_check(0, 1'000'000));
    app.add_flag("--primary-tls", cfg.primary.connection.tls.enabled, "TLS to the primary");
    app.add_option("--primary-tls-ca", cfg.primary.connection.tls.ca_file,
                   "CA file for the primary's certificate (default: system CAs)");
    app.add_option("--primary-tls-cert", cfg.primary.connection.tls.cert_file,
                   "Client certificate (PEM) the proxy presents to the primary (mutual TLS)");
    app.add_option("--primary-tls-key", cfg.primary.connection.tls.key_file,
                   "Key (PEM) of --primary-tls-cert");
    app.add_option("--primary-tls-server-name", cfg.primary.connection.tls.server_name,
                   "Name to verify on the primary's certificate (default: its host)");
    app.add_option(
        "--secondary", secondary,
        "Secondary backend host:port (migration target; a cluster: seeds, comma-separated)");
    app.add_flag("--secondary-cluster", secondary_cluster, "The secondary is a Redis Cluster");
    backend_config sec;
    app.add_option("--secondary-user", sec.connection.username, "Secondary ACL user");
    app.add_option("--secondary-password", sec.connection.password, "Secondary password");
    app.add_option("--secondary-db", sec.connection.database, "Secondary database")
        ->capture_default_str()
        ->check(number_check(0, 1'000'000));
    app.add_flag("--secondary-tls", sec.connection.tls.enabled, "TLS to the secondary");
    app.add_option("--secondary-tls-ca", sec.connection.tls.ca_file,
                   "CA file for the secondary's certificate (default: system CAs)");
    app.add_option("--secondary-tls-cert", sec.connection.tls.cert_file,
                   "Client certificate (PEM) the proxy presents to the secondary (mutual TLS)");
    app.add_option("--secondary-tls-key", sec.connection.tls.key_file,
                   "Key (PEM) of --secondary-tls-cert");
    app.add_option("--secondary-tls-server-name", sec.connection.tls.server_name,
                   "Name to verify on the secondary's certificate (default: its host)");
    app.add_option("--mode", mode_text,
                   "primary-only | dual-write | dual-write-shadow | secondary-primary | "
                   "secondary-only")
        ->capture_default_str();
    app.add_option("--password", password, "Password clients must AUTH with (user default)");
    app.add_option("--user", users, "Client user name:password (repeatable)");
    app.add_option("--admin-user", cfg.admin_users,
                   "User allowed to change the proxy with PROXY commands and CLIENT KILL "
                   "(repeatable; default: every user), and the only users who may send "
                   "commands on the whole backend server (SHUTDOWN, CLIENT PAUSE, DEBUG SLEEP "
                   "...; default: nobody)");
    app.add_option("--tls-cert", cfg.tls_cert_file, "Client-facing TLS certificate (PEM)");
    app.add_option("--tls-key", cfg.tls_key_file, "Client-facing TLS key (PEM)");
    app.add_option("--tls-client-ca", cfg.tls_client_ca_file,
                   "Require client certificates signed by this CA (PEM; mutual TLS)");
    app.add_option("--max-clients", cfg.max_clients, "Connections accepted at most")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--max-query-buffer", cfg.max_query_buffer, "Unparsed input per client, bytes")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--max-bulk", cfg.max_bulk, "Largest argument, bytes")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--idle-timeout", idle_timeout, "Close idle clients after seconds (0: never)")
        ->capture_default_str()
        ->check(non_negative);
    app.add_option("--tcp-keepalive", cfg.tcp_keepalive_seconds,
                   "TCP keepalive idle seconds on client connections (0: off)")
        ->capture_default_str()
        ->check(number_check(0, 86400));
    app.add_option("--backend-timeout", backend_timeout,
                   "Seconds a backend may take to answer a command before its connection is "
                   "closed and the commands on it fail (0: wait forever; blocking commands: "
                   "their own timeout plus this)")
        ->capture_default_str()
        ->check(number_check(0.0, 86400.0));
    app.add_option("--backend-keepalive", cfg.backend_keepalive_seconds,
                   "TCP keepalive idle seconds on connections to the backends (0: off)")
        ->capture_default_str()
        ->check(number_check(0, 86400));
    app.add_option("--pubsub-output-limit", cfg.pubsub_output_limit,
                   "Unsent bytes before a Pub/Sub or MONITOR client is disconnected")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--upstream-connections", cfg.upstream_connections,
                   "Shared pipelined connections per worker and backend")
        ->capture_default_str()
        ->check(number_check(1, 64));
    app.add_option("--shadow-percent", cfg.shadow_percent, "Reads shadowed, 0-100 (by key hash)")
        ->capture_default_str()
        ->check(number_check(0.0, 100.0));
    app.add_option("--shadow-timeout", shadow_timeout, "Seconds a shadow read may take")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--ttl-tolerance", ttl_tolerance, "Seconds TTLs may differ in a shadow read")
        ->capture_default_str()
        ->check(non_negative);
    app.add_option("--pubsub-compare-window", pubsub_window,
                   "Seconds a Pub/Sub message may wait for its shadow twin")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--replay-lanes", cfg.replay_lanes, "Ordered lanes to the follower")
        ->capture_default_str()
        ->check(number_check(1, 256));
    app.add_option("--replay-max-queued-bytes", cfg.replay_max_queued_bytes,
                   "Follower queue budget; beyond it keys are marked dirty and repaired")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--replay-max-dirty-keys", cfg.replay_max_dirty_keys,
                   "Dirty keys remembered; beyond it a full resync is reported")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--repair-rate", cfg.repair_rate,
                   "Keys per second copied at most by repairs and PROXY SYNC (0: unlimited)")
        ->capture_default_str()
        ->check(non_negative);
    app.add_option("--replay-rejected-retry", rejected_retry,
                   "Seconds between retries of a key whose copy the follower refused")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--repair-fence-after", fence_after,
                   "Seconds a dirty key may stay busy (written without a pause) before its copy "
                   "holds new writes to it for a moment (0: never)")
        ->capture_default_str()
        ->check(non_negative);
    app.add_option("--repair-fence-max", fence_max,
                   "Seconds at most that writes wait for such a copy")
        ->capture_default_str()
        ->check(positive);
    app.add_flag("--copy-scripts", cfg.copy_scripts,
                 "Copy the keys scripts touch instead of replaying scripts");
    app.add_option("--verify-chunk-elements", cfg.verify_chunk_elements,
                   "PROXY VERIFY compares collections bigger than this in chunks of this size")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--verify-chunk-bytes", cfg.verify_chunk_bytes,
                   "PROXY VERIFY compares strings longer than this in windows of this many bytes")
        ->capture_default_str()
        ->check(number_check(1, 512 << 20));
    app.add_option("--sentry-dsn", cfg.sentry_dsn, "Send divergences to this Sentry DSN");
    app.add_option("--sentry-environment", cfg.sentry_environment, "Sentry environment tag");
    app.add_option("--sentry-sample", cfg.sentry_sample_rate,
                   "Fraction of Sentry events sent, 0-1 (after the 60 s per-kind cooldown)")
        ->capture_default_str()
        ->check(number_check(0.0, 1.0));
    app.add_option("--admin", admin, "HTTP admin host:port ('' disables)")->capture_default_str();
    app.add_option("--shutdown-delay", shutdown_delay,
                   "Seconds /readyz answers 503 while the proxy still serves, before the drain "
                   "(lets a load balancer move new clients away first)")
        ->capture_default_str()
        ->check(number_check(0.0, 3600.0));
    app.add_option("--shutdown-timeout", shutdown_timeout,
                   "Seconds to drain clients and the follower on shutdown")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--switch-timeout", switch_timeout,
                   "Seconds a serving-side switch waits for the follower to catch up")
        ->capture_default_str()
        ->check(positive);
    app.add_option("--restart-check-interval", restart_check,
                   "Seconds between run_id checks of each backend (0: off); a follower that "
                   "restarted may have lost writes; also how often a follower reads its "
                   "target's proto-max-bulk-len (0: every 10 s)")
        ->capture_default_str()
        ->check(non_negative);
    app.add_flag("--resync-on-restart", cfg.resync_on_restart,
                 "Run PROXY SYNC at once when the follower restarted (else the cut-over to it "
                 "waits for one)");
    app.add_option("--state-file", cfg.state_file,
                   "Keep the mode, a clean-stop marker and pending syncs here across restarts "
                   "(its mode wins over --mode)");
    app.add_option("--log-format", cfg.log_format,
                   "Log lines as text (key=value) or json (one object per line); default: "
                   "RESPITE_LOG_FORMAT, else text")
        ->check(CLI::IsMember({"text", "json"}));
    app.add_option("--log-level", cfg.log_level, "trace, debug, info, warn, error, off")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        return std::unexpected(config_error{app.help(), true});
    } catch (const CLI::CallForAllHelp&) {
        return std::unexpected(config_error{app.help(), true});
    } catch (const CLI::CallForVersion&) {
        return std::unexpected(config_error{"respite-proxy 0.1.0", true});
    } catch (const CLI::ParseError& e) {
        std::string msg = e.what();
        // CLI11's words for a flag given twice.
        if (const auto at = msg.find("At Most 1 required but received"); at != std::string::npos)
            msg = msg.substr(0, at) + "given more than once (each option takes one value)";
        // CLI11's words for a name in the --config file that is no option.
        constexpr std::string_view unparsed = "INI was not able to parse ";
        if (msg.starts_with(unparsed)) {
            const auto name = msg.substr(unparsed.size());
            if (name.ends_with(".++"))  // CLI11's mark of a [section] header
                msg = "--config: a section [" + name.substr(0, name.size() - 3) +
                      "] (sections are not read: put every option at the top level)";
            else
                msg = "--config: unknown option '" + name + "'" +
                      (name.find('.') != std::string::npos
                           ? " (sections are not read: put every option at the top level)"
                           : " (the file takes the flags' names without the dashes)");
        }
        return std::unexpected(config_error{std::move(msg), false});
    }

    if (!split_address(listen, cfg.listen_host, cfg.listen_port))
        return std::unexpected(config_error{"--listen: expected host:port, got '" + listen + "'"});
    // host:port, or for a Redis Cluster a comma-separated list of seeds.
    auto backend_address = [](const std::string& text, const char* flag, bool cluster,
                              backend_config& b) -> std::optional<config_error> {
        std::vector<std::string> parts;
        std::size_t start = 0;
        while (true) {
            const auto comma = text.find(',', start);
            parts.push_back(text.substr(start, comma - start));
            if (comma == std::string::npos)
                break;
            start = comma + 1;
        }
        if (parts.size() > 1 && !cluster)
            return config_error{std::string(flag) + ": several addresses are seeds of a Redis " +
                                "Cluster; add " + flag + "-cluster"};
        for (std::size_t i = 0; i < parts.size(); ++i) {
            std::string host;
            std::uint16_t port = 0;
            if (!split_address(parts[i], host, port) || port == 0)
                return config_error{std::string(flag) + ": expected host:port" +
                                    (cluster ? "[,host:port...]" : "") + ", got '" + text + "'"};
            if (i == 0) {
                b.connection.host = host;
                b.connection.port = port;
            } else {
                b.more_seeds.push_back({host, port});
            }
        }
        return std::nullopt;
    };
    if (auto e = backend_address(primary, "--primary", primary_cluster, cfg.primary))
        return std::unexpected(*e);
    cfg.primary.cluster = primary_cluster;
    if (!secondary.empty()) {
        if (auto e = backend_address(secondary, "--secondary", secondary_cluster, sec))
            return std::unexpected(*e);
        sec.cluster = secondary_cluster;
        cfg.secondary = sec;
        if (cfg.secondary->connection.host == cfg.primary.connection.host &&
            cfg.secondary->connection.port == cfg.primary.connection.port)
            return std::unexpected(config_error{"--primary and --secondary are the same address"});
    } else {
        // Options of a secondary that is not there: a typo in --secondary's name, or a config
        // file missing it; either way they would be silently unused.
        for (const auto* o : app.get_options())
            if (o->get_name().starts_with("--secondary-") && o->count() > 0)
                return std::unexpected(
                    config_error{o->get_name() + " is given without --secondary"});
    }
    auto m = parse_mode(mode_text);
    if (!m)
        return std::unexpected(config_error{
            "--mode: unknown mode '" + mode_text +
            "' (primary-only, dual-write, dual-write-shadow, secondary-primary, secondary-only)"});
    cfg.initial_mode = *m;
    if (*m != mode::primary_only && !cfg.secondary)
        return std::unexpected(config_error{"--mode " + mode_text + " needs --secondary"});
    if (!password.empty())
        cfg.users.push_back({"default", password});
    for (const auto& u : users) {
        auto colon = u.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == u.size())
            return std::unexpected(config_error{"--user: expected name:password, got '" + u + "'"});
        cfg.users.push_back({u.substr(0, colon), u.substr(colon + 1)});
    }
    for (const auto& a : cfg.admin_users)
        if (std::ranges::none_of(cfg.users, [&](const downstream_user& u) { return u.name == a; }))
            return std::unexpected(config_error{"--admin-user " + a +
                                                ": no such user (add it with --user " + a +
                                                ":<password>, or --password for 'default')"});
    if (cfg.tls_cert_file.empty() != cfg.tls_key_file.empty())
        return std::unexpected(config_error{"--tls-cert and --tls-key go together"});
    if (!cfg.tls_client_ca_file.empty() && cfg.tls_cert_file.empty())
        return std::unexpected(config_error{"--tls-client-ca needs --tls-cert and --tls-key"});
    for (const auto* b : {&cfg.primary, cfg.secondary ? &*cfg.secondary : nullptr}) {
        if (b == nullptr)
            continue;
        const auto& t = b->connection.tls;
        const char* name = b == &cfg.primary ? "primary" : "secondary";
        if (t.cert_file.empty() != t.key_file.empty())
            return std::unexpected(config_error{std::string("--") + name + "-tls-cert and --" +
                                                name + "-tls-key go together"});
        for (const auto& [set, option] :
             {std::pair{!t.cert_file.empty(), "cert"}, std::pair{!t.ca_file.empty(), "ca"},
              std::pair{!t.server_name.empty(), "server-name"}})
            if (set && !t.enabled)
                return std::unexpected(config_error{std::string("--") + name + "-tls-" + option +
                                                    " needs --" + name + "-tls"});
    }
    if (admin.empty()) {
        cfg.admin_host.clear();
    } else if (!split_address(admin, cfg.admin_host, cfg.admin_port)) {
        return std::unexpected(config_error{"--admin: expected host:port, got '" + admin + "'"});
    }
    // CLI's number checks let "nan" and "inf" through, and a huge value overflowed the
    // conversion (undefined: --idle-timeout 1e17 closed every client at once).
    const std::pair<const char*, double> durations[] = {
        {"idle-timeout", idle_timeout},           {"backend-timeout", backend_timeout},
        {"shadow-timeout", shadow_timeout},       {"ttl-tolerance", ttl_tolerance},
        {"pubsub-compare-window", pubsub_window}, {"replay-rejected-retry", rejected_retry},
        {"shutdown-delay", shutdown_delay},       {"shutdown-timeout", shutdown_timeout},
        {"switch-timeout", switch_timeout},       {"restart-check-interval", restart_check},
        {"repair-fence-after", fence_after},      {"repair-fence-max", fence_max}};
    for (const auto& [flag, value] : durations)
        if (!std::isfinite(value) || value < 0 || value > 1e9)
            return std::unexpected(config_error{std::string("--") + flag +
                                                ": expected seconds from 0 to 1000000000, got " +
                                                std::to_string(value)});
    if (!(cfg.sentry_sample_rate >= 0 && cfg.sentry_sample_rate <= 1))  // nan passed CLI's range
        return std::unexpected(config_error{"--sentry-sample: expected a number from 0 to 1"});
    if (!(cfg.shadow_percent >= 0 && cfg.shadow_percent <= 100))
        return std::unexpected(config_error{"--shadow-percent: expected a number from 0 to 100"});
    auto secs = [](double s) {
        return std::chrono::milliseconds(static_cast<std::int64_t>(s * 1000));
    };
    cfg.idle_timeout = secs(idle_timeout);
    cfg.primary.connection.command_timeout = secs(backend_timeout);
    if (cfg.secondary)
        cfg.secondary->connection.command_timeout = secs(backend_timeout);
    cfg.shutdown_timeout = secs(shutdown_timeout);
    cfg.shutdown_delay = secs(shutdown_delay);
    cfg.switch_timeout = secs(switch_timeout);
    cfg.shadow_timeout = secs(shadow_timeout);
    cfg.ttl_tolerance = secs(ttl_tolerance);
    cfg.pubsub_compare_window = secs(pubsub_window);
    cfg.replay_rejected_retry = secs(rejected_retry);
    cfg.repair_fence_after = secs(fence_after);
    cfg.repair_fence_max = std::max(secs(fence_max), std::chrono::milliseconds(1));
    cfg.restart_check_interval = secs(restart_check);
    return cfg;
}

}  // namespace respite::proxy
