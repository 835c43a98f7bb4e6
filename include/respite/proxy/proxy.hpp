// respite-proxy: a Redis-protocol proxy that moves an application from one Redis to another live.
//
// Module boundary: the server depends on resp, obs, client, cluster, commands and the other proxy
// libraries (backend, effects, shadow, replay, http); nothing in respite depends on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <respite/proxy/backend.hpp>

namespace respite::proxy {

using namespace std::chrono_literals;

// Who serves the client and who follows (the five migration steps, in order).
enum class mode : std::uint8_t {
    primary_only,       // primary serves; the secondary gets nothing
    dual_write,         // primary serves; its writes are replayed on the secondary
    dual_write_shadow,  // ... and sampled reads are compared against the secondary
    secondary_primary,  // secondary serves; its writes are replayed on the primary (rollback);
                        // sampled reads are compared against the primary
    secondary_only,     // secondary serves; the primary gets nothing
};

std::string_view mode_name(mode m) noexcept;
std::optional<mode> parse_mode(std::string_view name) noexcept;

struct downstream_user {
    std::string name;  // "default" for the plain password
    std::string password;
};

struct proxy_config {
    std::string listen_host = "127.0.0.1";
    std::uint16_t listen_port = 6479;
    std::string unix_socket{};  // also listen here when set
    std::size_t threads = 0;    // 0: one per core

    backend_config primary{};
    std::optional<backend_config> secondary{};
    mode initial_mode = mode::dual_write;

    // Downstream (client-facing) security and limits.
    std::vector<downstream_user> users{};  // empty: no AUTH required
    // Users allowed to change the proxy (PROXY MODE SET, SHADOW PERCENT, SYNC/VERIFY START and
    // STOP); empty: every user. Other users keep the read-only PROXY subcommands.
    std::vector<std::string> admin_users{};
    std::string tls_cert_file{};  // client-facing TLS when both are set
    std::string tls_key_file{};
    // With TLS: clients must present a certificate signed by this CA (mutual TLS).
    std::string tls_client_ca_file{};
    std::size_t max_clients = 10000;
    std::size_t max_query_buffer = 1U << 30;  // bytes of unparsed input per client (Redis: 1 GiB)
    std::size_t max_bulk = 512U << 20;        // one argument (Redis proto-max-bulk-len)
    std::size_t max_args = 1U << 20;
    std::chrono::milliseconds idle_timeout{0};  // 0: never (Redis "timeout 0")
    // TCP keepalive idle seconds on client connections (Redis's tcp-keepalive; 0: off) and on the
    // proxy's own connections to the backends (a dead backend is found in ~idle*2 s).
    int tcp_keepalive_seconds = 300;
    int backend_keepalive_seconds = 15;
    // Pub/Sub and MONITOR clients whose unsent output exceeds this are disconnected.
    std::size_t pubsub_output_limit = 32U << 20;
    // Ordinary clients: input is no longer read while this much output waits.
    std::size_t output_pause_bytes = 8U << 20;
    std::size_t upstream_connections = 1;  // shared, pipelined, per worker and protocol

    // Shadow reads.
    double shadow_percent = 100.0;
    std::chrono::milliseconds shadow_timeout = 2s;
    std::size_t shadow_max_inflight = 1024;  // per proxy; beyond: not shadowed (counted)
    std::chrono::milliseconds ttl_tolerance = 2s;
    std::chrono::milliseconds pubsub_compare_window = 2s;

    // Secondary writes.
    std::size_t replay_lanes = 4;
    std::size_t replay_max_queued_bytes = 64U << 20;
    std::size_t replay_max_dirty_keys = 1'000'000;
    // Keys copied per second at most by repairs and PROXY SYNC (0: unlimited).
    std::size_t repair_rate = 5000;
    // A key whose copy the follower refused (OOM, unknown DUMP format ...) is tried again this
    // often; a switch to that side is refused while any remain (FORCE overrides).
    std::chrono::milliseconds replay_rejected_retry = std::chrono::seconds(30);
    // A dirty key busy this long (written without a pause) is copied while new writes to it
    // wait, at most repair_fence_max (0: never; such a key then waits for a quiet moment).
    std::chrono::milliseconds repair_fence_after = std::chrono::seconds(1);
    std::chrono::milliseconds repair_fence_max = std::chrono::milliseconds(100);
    bool copy_scripts = false;  // scripts: copy their KEYS instead of replaying them
    // PROXY VERIFY: a hash, list, set, sorted set or stream with more elements than this is
    // compared in chunks of this many elements instead of being read whole.
    std::size_t verify_chunk_elements = 1000;
    // PROXY VERIFY: a string longer than this many bytes is compared in GETRANGE windows of
    // this many bytes instead of being read whole.
    std::size_t verify_chunk_bytes = 64 << 10;

    // Reports.
    std::string sentry_dsn{};
    std::string sentry_environment{};
    double sentry_sample_rate = 1.0;  // fraction of events sent (after the per-kind cooldown)

    // HTTP: /metrics, /healthz, /readyz, /mode, /status. Empty host: disabled.
    std::string admin_host = "127.0.0.1";
    std::uint16_t admin_port = 9191;

    std::chrono::milliseconds shutdown_timeout = 10s;
    // Before that drain: /readyz answers 503 "shutting down" this long while the proxy still
    // accepts and serves, so a load balancer (a Kubernetes Service) stops sending new clients
    // before any is refused. 0: drain at once.
    std::chrono::milliseconds shutdown_delay{0};
    // Mode switches wait this long for in-flight writes and the follower's queue to drain.
    std::chrono::milliseconds switch_timeout = 10s;
    // Each backend's run_id is read this often (INFO server); a change is a restart, after which
    // the follower's data may lack writes made before it (0: no check).
    std::chrono::milliseconds restart_check_interval = 1s;
    // A follower that restarted is copied again at once (PROXY SYNC); otherwise the cut-over to
    // it is refused (without FORCE) until a PROXY SYNC completed.
    bool resync_on_restart = false;
    // The mode, a clean-stop marker and pending syncs survive a restart here (empty: off). The
    // file's mode wins over initial_mode at start.
    std::string state_file{};
    std::string log_level = "info";
    std::string log_format{};  // "text" or "json" (empty: RESPITE_LOG_FORMAT, else text)
};

// Parses the command line (and the --config file it names; same option names). On --help or
// --version the text is returned in the error with `exit_ok` set.
struct config_error {
    std::string message;
    bool exit_ok = false;
};
std::expected<proxy_config, config_error> parse_config(int argc, const char* const* argv);

class proxy_server {
  public:
    explicit proxy_server(proxy_config cfg);
    ~proxy_server();
    proxy_server(const proxy_server&) = delete;
    proxy_server& operator=(const proxy_server&) = delete;

    // Binds the listeners and the admin endpoint, connects the backends and starts the workers.
    std::expected<void, std::string> start();
    // Stops accepting, drains clients and the follower's queue within shutdown_timeout.
    void stop();

    // Switches the mode (what PROXY MODE SET and POST /mode do). Waits for writes in flight and
    // the follower queue (switch_timeout) when the serving side changes; error text otherwise.
    std::expected<void, std::string> set_mode(mode m, bool force = false);
    [[nodiscard]] mode current_mode() const noexcept;

    [[nodiscard]] std::uint16_t port() const noexcept;        // bound client port
    [[nodiscard]] std::uint16_t admin_port() const noexcept;  // bound admin port (0: off)
    // The INFO proxy section text.
    [[nodiscard]] std::string info() const;

    class impl;

  private:
    std::unique_ptr<impl> impl_;
};

}  // namespace respite::proxy
