// proxy_server: start-up (backends, command table, listeners, workers), mode switches, shutdown.
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <sys/resource.h>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <fmt/format.h>

#include <respite/obs/log.hpp>
#include <respite/obs/thread_name.hpp>
#include <respite/proxy/proxy.hpp>
#include <respite/proxy/replayer.hpp>

#include "admin_http.hpp"
#include "dirty_list.hpp"
#include "follow.hpp"
#include "restart_watch.hpp"
#include "state_file.hpp"
#include "sync.hpp"
#include "worker.hpp"

namespace respite::proxy {

using server::plan_of;
using server::shared_state;
using server::side;

std::string_view mode_name(mode m) noexcept {
    switch (m) {
        case mode::primary_only:
            return "primary-only";
        case mode::dual_write:
            return "dual-write";
        case mode::dual_write_shadow:
            return "dual-write-shadow";
        case mode::secondary_primary:
            return "secondary-primary";
        case mode::secondary_only:
            return "secondary-only";
    }
    return "primary-only";
}

std::optional<mode> parse_mode(std::string_view name) noexcept {
    for (auto m : {mode::primary_only, mode::dual_write, mode::dual_write_shadow,
                   mode::secondary_primary, mode::secondary_only})
        if (mode_name(m) == name)
            return m;
    return std::nullopt;
}

namespace {

// Descriptors the proxy needs besides its clients' own: listeners, the HTTP endpoint, the
// workers' shared upstream connections, the followers' lanes, the backends' client
// connections, logs. A client holding a pinned connection (MULTI, WATCH, blocking, pub/sub on a
// cluster node) takes a second one.
std::size_t reserved_descriptors(const proxy_config& cfg) {
    const std::size_t threads =
        cfg.threads != 0 ? cfg.threads : std::max(1U, std::thread::hardware_concurrency());
    return 64 + threads * (8 + 4 * cfg.upstream_connections) + 4 * cfg.replay_lanes;
}

// As Redis does at start: raise the open files limit toward what --max-clients needs, and when
// the system gives less, lower max_clients to fit (logged), so that the listener does not run
// out of descriptors first. An error when not even one client fits.
std::expected<void, std::string> fit_max_clients(proxy_config& cfg) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return {};
    const std::size_t reserve = reserved_descriptors(cfg);
    const auto want = static_cast<rlim_t>(cfg.max_clients + reserve);
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max == RLIM_INFINITY ? want : std::min(want, rl.rlim_max);
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return {};
    const auto limit = static_cast<std::size_t>(rl.rlim_cur);
    if (limit <= reserve)
        return std::unexpected(fmt::format(
            "the open files limit (ulimit -n) is {}: the proxy needs more than {} (raise it)",
            limit, reserve));
    obs::log().warn(
        "proxy max_clients_reduced configured={} max_clients={} open_files_limit={} reserved={} "
        "(raise ulimit -n to serve more clients)",
        cfg.max_clients, limit - reserve, limit, reserve);
    cfg.max_clients = limit - reserve;
    return {};
}

}  // namespace

class proxy_server::impl {
  public:
    explicit impl(proxy_config cfg) { st_.cfg = std::move(cfg); }
    ~impl() { stop(); }

    std::expected<void, std::string> start();
    void stop();
    // by: who asked, for the log (`client addr=… user=…`, `http`, `api`).
    std::expected<void, std::string> set_mode(mode m, bool force, std::string_view by = "api");
    std::string info() const;

    shared_state st_;
    std::vector<std::unique_ptr<server::worker>> workers_;
    std::uint16_t port_ = 0;
    // The control thread runs mode switches, shadow re-checks, SYNC/VERIFY and reports.
    asio::io_context control_;
    std::thread control_thread_;
    // The admin HTTP endpoint has a thread of its own: a switch that waits on the control thread
    // does not hold /healthz or /metrics (admin_ lives inside admin_ioc_'s lifetime).
    asio::io_context admin_ioc_;
    std::thread admin_thread_;
    std::unique_ptr<server::admin_http> admin_;
    std::mutex switch_mu_;
    bool started_ = false;
    bool stopped_ = false;
    bool start_failed_ = false;  // stop() after a failed start: no state file is written
    // A start that fails once threads run (the control thread, maybe the workers) stops them
    // again: a joinable std::thread left behind would terminate the process.
    std::unexpected<std::string> fail_start(std::string why) {
        started_ = true;
        start_failed_ = true;
        stop();
        return std::unexpected(std::move(why));
    }

  private:
    void load_server_facts();
    void init_metrics();
    // Writes the state file (mode, clean-stop marker, pending syncs, keys saved in the dirty
    // list); false when it failed.
    bool persist(bool clean_shutdown, std::optional<mode> m = std::nullopt,
                 std::array<std::uint64_t, 2> dirty_saved = {});
    // Start: hands the dirty keys the last clean stop saved to the follower of mode m, or flags
    // their side needs_sync when they cannot be used.
    void restore_dirty_list(const std::optional<server::persisted_state>& restored, mode m);
    // DBSIZE of a side (summed over a cluster's masters); nullopt when it did not answer.
    std::optional<std::uint64_t> keys_on(side s);
    void reject_dirty_list(side s, const std::string& why);
    // A switch that turns the follower off flags the side it followed (needs a PROXY SYNC).
    void flag_unfollowed(const server::mode_plan& before, const server::mode_plan& after, mode to);
    // Stop: what the follower of `serving` has not applied, saved for the next run; false when
    // it could not be (the caller flags the side).
    bool save_dirty_list(replayer& f, side target, std::array<std::uint64_t, 2>& saved);
    std::mutex state_mu_;
    std::atomic<std::uint64_t> dirty_restored_{0};
    std::atomic<std::uint64_t> dirty_saved_{0};
    std::atomic<bool> dirty_rejected_{false};
    bool remove_dirty_list_ = false;  // once the state file no longer vouches for it
};

namespace {

// 127.0.0.0/8, ::1 and localhost: only this host's clients reach it.
bool is_loopback_host(std::string_view host) {
    return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

// Waits for one backend call (start-up, and the PING of a mode switch on the control thread).
client::result<server::replies_t> call(backend& b, client::request req,
                                       std::chrono::milliseconds timeout) {
    auto p = std::make_shared<std::promise<client::result<server::replies_t>>>();
    auto f = p->get_future();
    b.exec(std::move(req),
           [p](client::result<server::replies_t> r) { p->set_value(std::move(r)); });
    if (f.wait_for(timeout) != std::future_status::ready)
        return std::unexpected(make_error_code(client::error::timeout));
    return f.get();
}

}  // namespace

void proxy_server::impl::init_metrics() {
    auto& m = *st_.metrics;
    st_.mode_switches = &m.get_counter("respite_proxy_mode_switches_total", "Mode switches");
    st_.rejected_clients = &m.get_counter("respite_proxy_rejected_clients_total",
                                          "Connections refused (max clients, draining)");
    st_.accept_errors =
        &m.get_counter("respite_proxy_accept_errors_total",
                       "Failed accepts (out of file descriptors: the listener waits 100 ms)");
    st_.protocol_errors = &m.get_counter("respite_proxy_protocol_errors_total",
                                         "Clients disconnected for malformed or oversized input");
    st_.upstream_errors = &m.get_counter("respite_proxy_upstream_errors_total",
                                         "Commands failed by a lost or unreachable backend");
    st_.cancelled_blocking = &m.get_counter("respite_proxy_blocking_cancelled_total",
                                            "Blocking commands cancelled by a client disconnect");
    st_.pushed_back = &m.get_counter("respite_proxy_popped_pushed_back_total",
                                     "Values popped for a client that had left, put back");
    st_.output_limit_disconnects =
        &m.get_counter("respite_proxy_output_limit_disconnects_total",
                       "Pub/Sub or MONITOR clients disconnected for unsent output");
    st_.fence_held_writes =
        &m.get_counter("respite_proxy_fence_held_writes_total",
                       "Client writes that waited for the follower's copy of a key they write "
                       "(a key written without a pause, see --repair-fence-after)");
    st_.pinned_state_lost =
        &m.get_counter("respite_proxy_pinned_state_lost_total",
                       "Clients closed because their pinned connection (MULTI, WATCH, SELECT n) "
                       "to the backend was lost");
    st_.connected_clients = &m.get_gauge("respite_proxy_connected_clients", "Connected clients");
    st_.tls_handshake_failures = &m.get_counter("respite_proxy_tls_handshake_failures_total",
                                                "Client TLS handshakes that failed or timed out");
}

std::optional<std::uint64_t> proxy_server::impl::keys_on(side s) {
    // A cluster backend runs DBSIZE on every master and sums the replies (backend::exec).
    client::request req;
    req.push("DBSIZE");
    auto r = call(*st_.backends[static_cast<int>(s)], std::move(req), std::chrono::seconds(2));
    std::int64_t n = 0;
    if (!r || r->size() != 1 || !(*r)[0].to_int64(n) || n < 0)
        return std::nullopt;
    return static_cast<std::uint64_t>(n);
}

void proxy_server::impl::load_server_facts() {
    auto& primary = *st_.backends[0];
    client::request req;
    req.push("COMMAND");
    req.push("INFO", "server");
    auto r = call(primary, std::move(req), std::chrono::seconds(5));
    if (!r || r->size() != 2) {
        obs::log().warn("proxy command_table source=builtin reason=\"primary did not answer\"");
        st_.table = commands::command_table::builtin();
        return;
    }
    std::string why;
    auto t = commands::command_table::from_command_reply((*r)[0], &why);
    if (t.empty()) {
        obs::log().warn("proxy command_table source=builtin reason=\"{}\"", why);
        st_.table = commands::command_table::builtin();
    } else {
        obs::log().info("proxy command_table source=primary commands={}", t.size());
        st_.table = std::move(t);
    }
    const auto& info = (*r)[1].str();
    if (auto pos = info.find("redis_version:"); pos != std::string::npos) {
        auto end = info.find_first_of("\r\n", pos);
        st_.server_version = info.substr(pos + 14, end - pos - 14);
    }
}

std::expected<void, std::string> proxy_server::impl::start() {
    if (started_)
        return {};
    auto& cfg = st_.cfg;
    if (!cfg.log_level.empty() && !obs::set_log_level(cfg.log_level))
        return std::unexpected("unknown log level '" + cfg.log_level + "'");
    if (!cfg.log_format.empty() && !obs::set_log_format(cfg.log_format))
        return std::unexpected("unknown log format '" + cfg.log_format + "' (text or json)");
    std::optional<server::persisted_state> restored;
    if (!cfg.state_file.empty()) {
        auto r = server::read_state(cfg.state_file);
        if (!r)
            return std::unexpected("--state-file " + r.error());
        restored = *r;
    }
    mode m = cfg.initial_mode;
    if (restored && restored->current != m) {
        obs::log().warn("proxy mode_restored mode={} configured={} state_file={}",
                        mode_name(restored->current), mode_name(m), cfg.state_file);
        m = restored->current;
    }
    if (m != mode::primary_only && !cfg.secondary)
        return std::unexpected(std::string("mode ") + std::string(mode_name(m)) +
                               " needs a secondary (--secondary)");
    if (auto fit = fit_max_clients(cfg); !fit)
        return std::unexpected(fit.error());
    st_.current.store(m);
    st_.shadow_percent.store(cfg.shadow_percent);
    st_.metrics = &obs::registry::global();
    init_metrics();

    if (!cfg.tls_cert_file.empty()) {
        auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
        ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1);
        std::error_code ec;
        ctx->use_certificate_chain_file(cfg.tls_cert_file, ec);
        if (ec)
            return std::unexpected("cannot load --tls-cert " + cfg.tls_cert_file + ": " +
                                   ec.message());
        ctx->use_private_key_file(cfg.tls_key_file, asio::ssl::context::pem, ec);
        if (ec)
            return std::unexpected("cannot load --tls-key " + cfg.tls_key_file + ": " +
                                   ec.message());
        if (!cfg.tls_client_ca_file.empty()) {
            ctx->load_verify_file(cfg.tls_client_ca_file, ec);
            if (ec)
                return std::unexpected("cannot load --tls-client-ca " + cfg.tls_client_ca_file +
                                       ": " + ec.message());
            ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
        }
        st_.tls = std::move(ctx);
    }
    for (int s = 0; s < 2; ++s) {
        if (s == 1 && !cfg.secondary)
            break;
        std::string why;
        st_.upstream_tls[s] =
            server::make_upstream_tls(st_.backend_cfg(static_cast<side>(s)).connection.tls, why);
        if (!why.empty())
            return std::unexpected(std::string(s == 0 ? "primary" : "secondary") + ": " + why);
    }
    for (int s = 0; s < 2; ++s) {
        if (s == 1 && !cfg.secondary)
            break;
        const std::string name = server::side_name(static_cast<side>(s));
        auto bc = st_.backend_cfg(static_cast<side>(s));
        st_.backends[s] = make_backend(name, bc);
        if (bc.cluster) {  // see shared_state::resp2_backends
            bc.connection.protocol = 2;
            st_.resp2_backends[s] = make_backend(name + "-resp2", bc);
        }
    }
    load_server_facts();
    st_.classes = std::make_unique<server::classifier>(st_.table);
    st_.control = &control_;
    if (auto r = server::start_follow(st_); !r)
        return std::unexpected(r.error());
    server::follow_serving(st_, server::plan_of(st_.current.load()).serving);

    const std::size_t n =
        cfg.threads != 0 ? cfg.threads : std::max(1U, std::thread::hardware_concurrency());
    // One acceptor per worker on the same port (SO_REUSEPORT): the kernel spreads connections.
    std::error_code ec;
    auto addr = asio::ip::make_address(cfg.listen_host, ec);
    if (ec)
        return std::unexpected("invalid listen address '" + cfg.listen_host + "'");
    std::uint16_t port = cfg.listen_port;
    // SO_REUSEPORT would also let a second proxy (a double start, an old one still draining)
    // listen beside this one, and the kernel would split the clients between the two and
    // their backends. A plain bind first fails while anyone listens there, as Redis does.
    if (port != 0) {
        asio::io_context probe_ioc;
        asio::ip::tcp::acceptor probe(probe_ioc);
        const asio::ip::tcp::endpoint ep(addr, port);
        probe.open(ep.protocol(), ec);
        if (!ec)
            probe.set_option(asio::socket_base::reuse_address(true), ec);  // TIME_WAIT is fine
        if (!ec)
            probe.bind(ep, ec);
        if (ec)
            return std::unexpected("cannot listen on " + cfg.listen_host + ":" +
                                   std::to_string(port) + ": " + ec.message() +
                                   (ec == asio::error::address_in_use
                                        ? " (another process listens there: a proxy still running?)"
                                        : ""));
    }
    for (std::size_t i = 0; i < n; ++i) {
        auto w = std::make_unique<server::worker>(st_, i);
        asio::ip::tcp::acceptor acc(w->ioc());
        asio::ip::tcp::endpoint ep(addr, port);
        acc.open(ep.protocol(), ec);
        if (!ec)
            acc.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec) {
            using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
            acc.set_option(reuse_port(true), ec);
        }
        if (!ec)
            acc.bind(ep, ec);
        if (!ec)
            acc.listen(asio::socket_base::max_listen_connections, ec);
        if (ec)
            return std::unexpected("cannot listen on " + cfg.listen_host + ":" +
                                   std::to_string(port) + ": " + ec.message());
        port = acc.local_endpoint().port();
        w->start_accepting(std::move(acc));
        if (!cfg.unix_socket.empty() && i == 0) {
            ::unlink(cfg.unix_socket.c_str());
            asio::local::stream_protocol::acceptor uacc(w->ioc());
            asio::local::stream_protocol::endpoint uep(cfg.unix_socket);
            uacc.open(uep.protocol(), ec);
            if (!ec)
                uacc.bind(uep, ec);
            if (!ec)
                uacc.listen(asio::socket_base::max_listen_connections, ec);
            if (ec)
                return std::unexpected("cannot listen on " + cfg.unix_socket + ": " + ec.message());
            w->start_accepting_unix(std::move(uacc));
        }
        workers_.push_back(std::move(w));
    }
    port_ = port;
    st_.cfg.listen_port = port;  // the bound one (CONFIG GET port, INFO tcp_port) with port 0
    for (auto& w : workers_)
        st_.workers.push_back(w.get());  // before the worker threads run (CLIENT LIST/KILL)

    st_.info_text = [this] { return info(); };
    st_.control = &control_;
    st_.sync = std::make_shared<server::bulk_sync>(control_, st_);
    st_.verify =
        std::make_shared<server::bulk_sync>(control_, st_, server::bulk_sync::kind::verify);
    st_.restarts = std::make_shared<server::restart_watch>(control_, st_);
    if (!cfg.state_file.empty())
        st_.restarts->set_on_change([this] { persist(false); });
    if (restored) {
        for (auto s : {side::primary, side::secondary})
            if (restored->needs_sync[static_cast<int>(s)])
                st_.restarts->flag(s, "still pending from the last run (state file)");
        const auto plan = plan_of(m);
        if (!restored->clean_shutdown && plan.follower)
            st_.restarts->flag(server::other_side(plan.serving),
                               "the last run did not stop cleanly while following: writes in "
                               "flight then may be missing");
    }
    if (const auto plan = plan_of(m); plan.follower && !restored) {
        // The follower starts with the proxy: keys already on the serving side are not on the
        // other one until a PROXY SYNC copies them (as for a switch into a following mode).
        const auto keys = keys_on(plan.serving);
        if (!keys || *keys > 0)
            st_.restarts->flag(
                server::other_side(plan.serving),
                keys ? fmt::format("the follower starts with the proxy ({}) and the {} already "
                                   "holds {} keys: they are not on the {}",
                                   mode_name(m), server::side_name(plan.serving), *keys,
                                   server::side_name(server::other_side(plan.serving)))
                     : fmt::format("the follower starts with the proxy ({}) and the {} did not "
                                   "say how many keys it holds",
                                   mode_name(m), server::side_name(plan.serving)));
    }
    if (!cfg.state_file.empty())
        restore_dirty_list(restored, m);
    st_.restarts->start();
    st_.switch_mode_async = [this](mode to, bool force, std::string by,
                                   std::function<void(std::string)> done) {
        asio::post(control_, [this, to, force, by = std::move(by), done = std::move(done)] {
            auto r = set_mode(to, force, by);
            done(r ? std::string("+OK\r\n") : "-ERR " + r.error() + "\r\n");
        });
    };
    control_thread_ = std::thread([this] {
        obs::name_this_thread("rp-control");
        auto guard = asio::make_work_guard(control_);
        control_.run();
    });
    if (!cfg.admin_host.empty()) {
        admin_ = std::make_unique<server::admin_http>(st_, admin_ioc_);
        auto r = admin_->start(cfg.admin_host, cfg.admin_port,
                               [this](mode to, bool force) { return set_mode(to, force, "http"); });
        if (!r)
            return fail_start(r.error());
        admin_thread_ = std::thread([this] {
            obs::name_this_thread("rp-admin");
            auto guard = asio::make_work_guard(admin_ioc_);
            admin_ioc_.run();
        });
    }
    // The state file is written before any client is served: a run that cannot record its
    // state must not take writes the next run would not know about.
    started_ = true;
    if (!cfg.state_file.empty() && !persist(false))
        return fail_start("cannot write --state-file " + cfg.state_file);
    if (remove_dirty_list_) {
        // The keys are in the follower's repair now (or their side is flagged), and the state
        // file says so: the list has served.
        const auto path = server::dirty_list_path(cfg.state_file);
        if (dirty_rejected_.load())
            std::rename(path.c_str(), (path + ".rejected").c_str());
        else
            std::remove(path.c_str());
    }
    for (auto& w : workers_)
        w->run_thread();
    obs::log().info("proxy started port={} workers={} mode={} admin_port={}", port_, n,
                    mode_name(m), admin_ ? admin_->port() : 0);
    // Reachable from other hosts, and every client may switch the mode or start a PRUNE.
    if (cfg.admin_users.empty() && !is_loopback_host(cfg.listen_host))
        obs::log().warn(
            "proxy admin_open listen={} note=\"no --admin-user: every client may run PROXY MODE "
            "SET, SYNC and VERIFY; name the operators' users with --admin-user\"",
            cfg.listen_host);
    return {};
}

// Leaving a following mode (dual-write -> primary-only, secondary-primary -> secondary-only):
// the side that followed misses every write from now on, so it needs a PROXY SYNC before it
// serves, as after a restart. Before, the cut-over to it went through without FORCE and served
// stale values.
void proxy_server::impl::flag_unfollowed(const server::mode_plan& before,
                                         const server::mode_plan& after, mode to) {
    if (!st_.restarts || before.follower == after.follower)
        return;
    if (before.follower)
        st_.restarts->flag(server::other_side(before.serving),
                           fmt::format("the mode {} does not replay writes to it", mode_name(to)),
                           true);
    else
        st_.restarts->flag(server::other_side(after.serving),
                           fmt::format("the follower starts now ({}): keys written before are "
                                       "not on it",
                                       mode_name(to)),
                           true);
}

std::expected<void, std::string> proxy_server::impl::set_mode(mode to, bool force,
                                                              std::string_view by) {
    std::lock_guard lock(switch_mu_);
    const mode from = st_.current.load();
    if (from == to)
        return {};
    // The drain has begun: the follower stops, so a switch would wait for nothing until its
    // timeout and hold the shutdown as long (each queued switch once more).
    if (st_.draining.load())
        return std::unexpected("switch refused: the proxy is shutting down");
    if (to != mode::primary_only && !st_.has_secondary())
        return std::unexpected("no secondary is configured");
    const auto before = plan_of(from);
    const auto after = plan_of(to);
    std::optional<std::chrono::steady_clock::time_point> held_since;
    // A side the new mode starts using must answer (a wrong password or address): a switch
    // into dual-write went through and only follow_secondary_up:0 showed that nothing was
    // replayed. (A side already in use that stopped answering is the follower's lag check's.)
    const auto uses = [](const server::mode_plan& p, side s) {
        return s == p.serving || p.follower || p.shadow;
    };
    for (const auto s : {side::primary, side::secondary}) {
        if (!uses(after, s) || uses(before, s))
            continue;
        client::request ping;
        ping.push("PING");
        auto r = call(*st_.backends[static_cast<int>(s)], std::move(ping), std::chrono::seconds(2));
        const std::string why = !r                                     ? r.error().message()
                                : r->size() == 1 && (*r)[0].is_error() ? (*r)[0].str()
                                                                       : std::string();
        if (why.empty())
            continue;
        obs::log().warn("proxy mode_switch_{} from={} to={} reason=\"the {} does not answer: {}\"",
                        force ? "forced" : "refused", mode_name(from), mode_name(to),
                        server::side_name(s), why);
        if (!force)
            return std::unexpected(
                fmt::format("switch refused: the {} does not answer PING ({}); fix its address or "
                            "credentials (or add FORCE)",
                            server::side_name(s), why));
    }
    if (before.serving != after.serving && st_.restarts) {
        // A restart of the side about to serve that the periodic check has not seen yet counts
        // too: ask it now.
        if (before.follower)
            st_.restarts->check_now(after.serving, std::chrono::seconds(1));
        if (st_.restarts->needs_sync(after.serving)) {
            const char* target = server::side_name(after.serving);
            if (!force) {
                obs::log().warn(
                    "proxy mode_switch_refused from={} to={} reason=\"{} needs a "
                    "sync\"",
                    mode_name(from), mode_name(to), target);
                return std::unexpected(
                    std::string("switch refused: the ") + target +
                    " may lack writes (it restarted while following, writes were not replayed "
                    "to it for a while, it was followed only from when keys already existed, "
                    "or the proxy did not stop cleanly); run PROXY SYNC "
                    "START PRUNE and wait for sync_state:done (or add FORCE)");
            }
            st_.restarts->clear(after.serving, "a forced mode switch");
        }
    }
    if (before.serving != after.serving) {
        // Keys whose copy the side about to serve refused are missing there; waiting does not
        // help (they are retried slowly), so the switch is refused at once.
        if (const auto rejected = server::follower_rejected(st_, before.serving);
            !rejected.empty()) {
            if (!force) {
                obs::log().warn("proxy mode_switch_refused from={} to={} reason=\"{}\"",
                                mode_name(from), mode_name(to), rejected);
                return std::unexpected("switch refused: " + rejected + " (or add FORCE)");
            }
            obs::log().warn("proxy mode_switch_forced from={} to={} reason=\"{}\"", mode_name(from),
                            mode_name(to), rejected);
        }
    }
    if (before.serving != after.serving) {
        // Moving the serving side: hold new writes, let those in flight finish and the side
        // that is about to serve catch up, then flip.
        st_.writes_paused.store(true);
        held_since = std::chrono::steady_clock::now();
        // Blocked clients first: their commands count in flight until answered (a BLPOP q 0
        // never would). The other clients with state there (MULTI, WATCH, subscribers ...)
        // are closed once the wait succeeded: a switch refused for the follower's lag left
        // them all closed for nothing.
        std::size_t closed = 0;
        for (auto& w : workers_)
            closed += w->close_stateful(before.serving, true);
        const auto deadline = std::chrono::steady_clock::now() + st_.cfg.switch_timeout;
        std::string why;
        const auto wait_for_follower = [&] {
            while (true) {
                const bool idle = st_.writes_in_flight.load() == 0;
                const auto lag = server::follower_backlog(st_, before.serving);
                if (idle && lag.empty())
                    break;
                if (st_.draining.load()) {
                    force = false;  // not even forced: the shutdown comes first
                    why = "the proxy is shutting down";
                    break;
                }
                // A copy refused while waiting: waiting longer does not help.
                if (auto rejected = server::follower_rejected(st_, before.serving);
                    !rejected.empty()) {
                    why = std::move(rejected);
                    break;
                }
                if (std::chrono::steady_clock::now() >= deadline) {
                    why = idle ? lag : "writes still in flight";
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            }
        };
        wait_for_follower();
        if (why.empty() || force) {
            // Their EXEC may still have gone out meanwhile: after the close, wait once more
            // (the deadline stays; forced: as long as it lasts).
            for (auto& w : workers_)
                closed += w->close_stateful(before.serving);
            why.clear();
            wait_for_follower();
        }
        if (closed > 0)
            obs::log().info("proxy mode_switch_closed_stateful_clients count={}", closed);
        if (!why.empty() && !force) {
            st_.writes_paused.store(false);
            obs::log().warn("proxy mode_switch_refused from={} to={} reason=\"{}\"",
                            mode_name(from), mode_name(to), why);
            return std::unexpected("switch refused: " + why +
                                   " (retry, or add FORCE to switch anyway)");
        }
        flag_unfollowed(before, after, to);
        // Written ahead: a proxy that restarts must not come back on the old side.
        if (!persist(false, to)) {
            st_.writes_paused.store(false);
            return std::unexpected("switch refused: cannot write the state file " +
                                   st_.cfg.state_file);
        }
        if (before.follower)
            st_.follow_gaps.fetch_add(1);  // the serving side moves: another follower now
        st_.current.store(to);
        server::follow_serving(st_, after.serving);
        st_.writes_paused.store(false);
    } else {
        if (!before.follower && after.follower)
            obs::log().warn(
                "proxy follower_started mode={} note=\"keys written before now are "
                "not on the follower; copy them with PROXY SYNC START PRUNE (see docs/proxy.md)\"",
                mode_name(to));
        flag_unfollowed(before, after, to);
        if (!persist(false, to))
            return std::unexpected("switch refused: cannot write the state file " +
                                   st_.cfg.state_file);
        if (before.follower && !after.follower)
            st_.follow_gaps.fetch_add(1);
        st_.current.store(to);
    }
    st_.mode_switches->inc();
    // held_ms: how long new writes waited for the switch (0: the serving side stayed).
    const auto held = held_since ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - *held_since)
                                       .count()
                                 : 0;
    obs::log().info("proxy mode_switch from={} to={}{} held_ms={} by=\"{}\"", mode_name(from),
                    mode_name(to), force ? " forced=true" : "", held, by);
    return {};
}

void proxy_server::impl::reject_dirty_list(side s, const std::string& why) {
    dirty_rejected_.store(true);
    obs::log().error(
        "proxy dirty_list_rejected side={} reason=\"{}\" (a PROXY SYNC START PRUNE "
        "is needed before the cut-over)",
        server::side_name(s), why);
    st_.restarts->flag(s, "the dirty keys saved at the last stop cannot be restored: " + why);
}

void proxy_server::impl::restore_dirty_list(const std::optional<server::persisted_state>& restored,
                                            mode m) {
    const auto path = server::dirty_list_path(st_.cfg.state_file);
    std::error_code ec;
    const bool present = std::filesystem::exists(path, ec);
    const auto plan = plan_of(m);
    bool vouched = false;
    for (auto s : {side::primary, side::secondary}) {
        const auto saved = restored ? restored->dirty_saved[static_cast<int>(s)] : 0;
        if (saved == 0)
            continue;
        vouched = true;
        remove_dirty_list_ = true;
        if (!restored->clean_shutdown) {
            reject_dirty_list(s, "the last run did not stop cleanly");
            continue;
        }
        replayer* f = st_.follower_of(plan.serving);
        if (!plan.follower || server::other_side(plan.serving) != s || f == nullptr) {
            reject_dirty_list(s, fmt::format("mode {} does not follow the {}", mode_name(m),
                                             server::side_name(s)));
            continue;
        }
        auto keys = server::read_dirty_list(path, server::side_name(s));
        if (!keys) {
            reject_dirty_list(s, keys.error());
            continue;
        }
        if (!*keys) {
            reject_dirty_list(s, path + " is missing");
            continue;
        }
        if ((*keys)->size() != saved) {
            reject_dirty_list(s, fmt::format("{} holds {} keys, the state file says {}", path,
                                             (*keys)->size(), saved));
            continue;
        }
        std::vector<std::string_view> views((*keys)->begin(), (*keys)->end());
        f->mark_dirty(views, false);
        dirty_restored_.store(views.size());
        obs::log().info("proxy dirty_keys_restored side={} count={} file={}", server::side_name(s),
                        views.size(), path);
    }
    if (present && !vouched) {
        // Left by a run whose stop was not clean or saved nothing: its keys may be outdated.
        obs::log().warn(
            "proxy dirty_list_ignored file={} reason=\"the state file does not record "
            "it (the last stop was not clean, or saved no keys)\"",
            path);
        remove_dirty_list_ = true;
    }
}

bool proxy_server::impl::save_dirty_list(replayer& f, side target,
                                         std::array<std::uint64_t, 2>& saved) {
    auto u = f.unapplied_keys(st_.cfg.replay_max_dirty_keys);
    if (!u.complete)
        return false;
    if (u.keys.empty())
        return true;
    const auto path = server::dirty_list_path(st_.cfg.state_file);
    if (auto r = server::write_dirty_list(path, server::side_name(target), u.keys); !r) {
        obs::log().error("proxy dirty_list_write_failed error=\"{}\"", r.error());
        return false;
    }
    saved[static_cast<int>(target)] = u.keys.size();
    dirty_saved_.store(u.keys.size());
    f.keys_saved();
    obs::log().info("proxy dirty_keys_saved side={} count={} file={}", server::side_name(target),
                    u.keys.size(), path);
    return true;
}

bool proxy_server::impl::persist(bool clean_shutdown, std::optional<mode> m,
                                 std::array<std::uint64_t, 2> dirty_saved) {
    if (st_.cfg.state_file.empty())
        return true;
    std::lock_guard lock(state_mu_);
    server::persisted_state s;
    s.current = m.value_or(st_.current.load());
    s.clean_shutdown = clean_shutdown;
    s.dirty_saved = dirty_saved;
    for (auto side_ : {side::primary, side::secondary})
        s.needs_sync[static_cast<int>(side_)] = st_.restarts && st_.restarts->needs_sync(side_);
    auto r = server::write_state(st_.cfg.state_file, s);
    if (!r) {
        obs::log().error("proxy state_file_write_failed error=\"{}\"", r.error());
        return false;
    }
    return true;
}

std::string proxy_server::impl::info() const {
    std::string s = "# Proxy\r\n";
    auto line = [&](std::string_view k, const std::string& v) {
        s.append(k);
        s += ':';
        s += v;
        s += "\r\n";
    };
    line("proxy_version", "respite-proxy 0.1.0");
    line("mode", std::string(mode_name(st_.current.load())));
    line("uptime_in_seconds", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                 std::chrono::steady_clock::now() - st_.started)
                                                 .count()));
    line("workers", std::to_string(workers_.size()));
    line("connected_clients", std::to_string(st_.clients.load()));
    line("writes_in_flight", std::to_string(st_.writes_in_flight.load()));
    line("writes_held", st_.writes_paused.load() ? "1" : "0");  // a switch holds new writes
    line("shadow_percent", std::to_string(st_.shadow_percent.load()));
    line("primary_cluster", st_.cfg.primary.cluster ? "1" : "0");
    line("secondary_configured", st_.has_secondary() ? "1" : "0");
    s += server::follow_info(st_);
    if (st_.restarts)
        s += st_.restarts->info_lines();
    if (st_.sync)
        s += st_.sync->info_lines();
    if (st_.verify)
        s += st_.verify->info_lines();
    if (!st_.cfg.state_file.empty()) {
        line("state_dirty_keys_restored", std::to_string(dirty_restored_.load()));
        line("state_dirty_list_rejected", dirty_rejected_.load() ? "1" : "0");
        line("state_dirty_keys_saved", std::to_string(dirty_saved_.load()));
    }
    return s;
}

void proxy_server::impl::stop() {
    if (!started_ || stopped_)
        return;
    stopped_ = true;
    if (st_.cfg.shutdown_delay > std::chrono::milliseconds{} && !start_failed_) {
        // Not ready, still serving: the load balancer moves new clients elsewhere first.
        st_.shutting_down.store(true);
        obs::log().info("proxy shutdown_delay seconds={:.3f} (readyz 503, still serving)",
                        std::chrono::duration<double>(st_.cfg.shutdown_delay).count());
        std::this_thread::sleep_for(st_.cfg.shutdown_delay);
    }
    st_.draining.store(true);
    for (auto& w : workers_)
        w->stop_accepting();
    for (auto& w : workers_)
        w->close_clients();
    const auto deadline = std::chrono::steady_clock::now() + st_.cfg.shutdown_timeout;
    while (st_.clients.load() > 0 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (auto& w : workers_)
        w->join();
    server::stop_follow(st_, deadline);
    if (admin_thread_.joinable()) {
        // On its thread, the listener and every connection close at once; then the thread ends.
        asio::post(admin_ioc_, [this] {
            admin_->stop();
            admin_ioc_.stop();
        });
        admin_thread_.join();
    } else if (admin_) {
        admin_->stop();
    }
    control_.stop();
    if (control_thread_.joinable())
        control_thread_.join();
    if (st_.sync)
        st_.sync->shutdown();
    if (st_.verify)
        st_.verify->shutdown();
    if (st_.restarts)
        st_.restarts->shutdown();
    admin_.reset();
    if (!st_.cfg.state_file.empty() && !start_failed_) {
        // Writes the follower did not apply (queued at the deadline, dirty, abandoned) are
        // missing on its side. Their keys go to the dirty list for the next run's repair; when
        // they cannot (too many, a keyspace-wide write, a full resync, the list not written),
        // the next run must copy everything again before serving from that side.
        std::array<std::uint64_t, 2> saved{};
        const auto plan = plan_of(st_.current.load());
        // Writes still counted in flight once the workers stopped: a write unanswered at the
        // deadline fails when its connection closes (its keys turn dirty and are listed); one
        // that never failed would be in no list, so the follower is flagged instead.
        const auto unanswered = st_.writes_in_flight.load();
        if (plan.follower && st_.restarts) {
            const auto target = server::other_side(plan.serving);
            if (auto* f = st_.follower_of(plan.serving)) {
                const auto x = f->snapshot();
                if ((x.queued_items > 0 || x.dirty_keys > 0 || x.rejected_keys > 0 ||
                     x.abandoned > 0 || x.full_resync_needed || unanswered > 0) &&
                    (x.abandoned > 0 || unanswered > 0 || !save_dirty_list(*f, target, saved)))
                    st_.restarts->flag(
                        target, fmt::format("stopped with {} queued, {} dirty, {} rejected keys, "
                                            "{} abandoned writes, {} writes unanswered by the "
                                            "serving side",
                                            x.queued_items, x.dirty_keys, x.rejected_keys,
                                            x.abandoned, unanswered));
            }
        }
        // A follower paused by a forced cut-over still holds keys its target lacks; they are not
        // saved (its copies would run only once its source serves again): that side differs
        // from the serving one on them, and must be synced before it serves.
        for (auto t : {side::primary, side::secondary}) {
            auto* f = st_.replay_to[static_cast<int>(t)].get();
            if (f == nullptr || !st_.restarts)
                continue;
            const auto x = f->snapshot();
            if (x.repairs_paused && (x.dirty_keys > 0 || x.rejected_keys > 0))
                st_.restarts->flag(
                    server::other_side(t),
                    fmt::format("stopped with {} dirty and {} rejected keys of the "
                                "{} left unrepaired by a forced cut-over",
                                x.dirty_keys, x.rejected_keys, server::side_name(t)));
        }
        if (saved == std::array<std::uint64_t, 2>{})
            std::remove(server::dirty_list_path(st_.cfg.state_file).c_str());
        persist(true, std::nullopt, saved);
    }
    for (auto& b : st_.backends)
        if (b)
            b->close();
    for (auto& b : st_.resp2_backends)
        if (b)
            b->close();
    obs::log().info("proxy stopped");
}

proxy_server::proxy_server(proxy_config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}
proxy_server::~proxy_server() = default;
std::expected<void, std::string> proxy_server::start() {
    return impl_->start();
}
void proxy_server::stop() {
    impl_->stop();
}
std::expected<void, std::string> proxy_server::set_mode(mode m, bool force) {
    return impl_->set_mode(m, force);
}
mode proxy_server::current_mode() const noexcept {
    return impl_->st_.current.load();
}
std::uint16_t proxy_server::port() const noexcept {
    return impl_->port_;
}
std::uint16_t proxy_server::admin_port() const noexcept {
    return impl_->admin_ ? impl_->admin_->port() : 0;
}
std::string proxy_server::info() const {
    return impl_->info();
}

}  // namespace respite::proxy
