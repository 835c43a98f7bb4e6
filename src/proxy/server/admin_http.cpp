// The HTTP admin endpoint (see admin_http.hpp).
#include "admin_http.hpp"

#include <charconv>
#include <future>

#include <asio/ip/address.hpp>

#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/divergence.hpp>

#include "sync.hpp"
#include "text.hpp"

namespace respite::proxy::server {

namespace {
http_response text(int status, std::string body) {
    http_response r;
    r.status = status;
    r.body = std::move(body);
    if (!r.body.empty() && r.body.back() != '\n')
        r.body += '\n';
    return r;
}

// host[:port] or [v6]:port -> host (lower case).
std::string host_of(std::string_view authority) {
    if (!authority.empty() && authority.front() == '[') {
        const auto end = authority.find(']');
        return std::string(authority.substr(0, end == std::string_view::npos ? end : end + 1));
    }
    if (authority.find(':') != authority.rfind(':'))  // a bare v6 address
        return lower_copy(authority);
    return lower_copy(authority.substr(0, authority.rfind(':')));
}

bool is_address(std::string_view host) {
    if (!host.empty() && host.front() == '[')
        return true;
    std::error_code ec;
    (void)asio::ip::make_address(std::string(host), ec);
    return !ec;
}

}  // namespace

std::optional<http_response> admin_http::admit(const http_request& req) const {
    // What a web page in an operator's browser could do with this endpoint: a form POSTed from
    // another site (Origin names that site) switched modes; a page whose name was re-pointed
    // to 127.0.0.1 (DNS rebinding: Host names the attacker's site) could read keys' values in
    // /divergences. Probes and scrapers (no Origin) may use any name for the health and
    // metrics endpoints; everything else wants the endpoint's address, localhost or the
    // configured --admin host in Host.
    const auto host = host_of(req.header("host"));
    const bool known_host =
        host.empty() || is_address(host) || host == "localhost" || host == host_of(listen_host_);
    if (const auto origin = req.header("origin"); !origin.empty()) {
        const auto scheme = origin.find("://");
        // The whole authority (host and port): a page on another port of the same host is
        // another origin.
        const auto from =
            lower_copy(scheme == std::string_view::npos ? origin : origin.substr(scheme + 3));
        if (from != lower_copy(req.header("host")) || !known_host)
            return text(403, "cross-origin request refused (Origin " + std::string(origin) + ")");
    }
    const bool open_path =
        req.path == "/metrics" || req.path == "/healthz" || req.path == "/readyz";
    if (!known_host && !(open_path && (req.method == "GET" || req.method == "HEAD")))
        return text(403, "Host " + std::string(req.header("host")) +
                             " refused: use the admin endpoint's address, localhost or the "
                             "--admin host name");
    return std::nullopt;
}

admin_http::admin_http(shared_state& st, asio::io_context& ioc) : st_(st), ioc_(ioc) {}
admin_http::~admin_http() {
    stop();
}

std::expected<void, std::string> admin_http::start(const std::string& host, std::uint16_t port,
                                                   switch_fn switch_mode) {
    switch_ = std::move(switch_mode);
    listen_host_ = host;
    http_server_options opts;
    opts.admit = [this](const http_request& req) { return admit(req); };
    http_ = std::make_unique<http_server>(ioc_, opts);
    http_->route("GET", "/metrics", [this](const http_request&) {
        http_response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = st_.metrics->prometheus_text();
        return r;
    });
    http_->route("GET", "/healthz", [](const http_request&) { return text(200, "ok"); });
    // /readyz waits up to 2 s for the serving side's PING and a switch up to --switch-timeout:
    // both run off the server's thread, so /healthz and /metrics answer meanwhile.
    http_->route(
        "GET", "/readyz",
        [this](const http_request&) {
            if (st_.draining.load())
                return text(503, "draining");
            if (st_.shutting_down.load())
                return text(503, "shutting down");
            // Ready when the serving side answers PING.
            const auto serving = plan_of(st_.current.load()).serving;
            auto b = st_.backends[static_cast<int>(serving)];
            if (!b)
                return text(503, "no serving backend");
            auto p = std::make_shared<std::promise<bool>>();
            auto f = p->get_future();
            client::request req;
            req.push("PING");
            b->exec(std::move(req), [p](client::result<replies_t> r) {
                p->set_value(r.has_value() && !r->empty() && !r->front().is_error());
            });
            if (f.wait_for(std::chrono::seconds(2)) != std::future_status::ready || !f.get())
                return text(503, "serving backend unreachable");
            return text(200, "ready");
        },
        route_match::exact, /*blocking=*/true);
    http_->route("GET", "/mode", [this](const http_request&) {
        return text(200, std::string(mode_name(st_.current.load())));
    });
    http_->route(
        "POST", "/mode",
        [this](const http_request& req) {
            auto name = req.param("set");
            if (name.empty())
                name = req.body;
            while (!name.empty() && (name.back() == '\n' || name.back() == '\r'))
                name.remove_suffix(1);
            auto m = parse_mode(name);
            if (!m)
                return text(400, "unknown mode '" + std::string(name) +
                                     "' (primary-only, dual-write, dual-write-shadow, "
                                     "secondary-primary, secondary-only)");
            const bool force = req.param("force") == "1" || req.param("force") == "true";
            auto r = switch_(*m, force);
            if (!r)
                return text(409, r.error());
            return text(200, std::string(mode_name(*m)));
        },
        route_match::exact, /*blocking=*/true);
    // PROXY SYNC and VERIFY over HTTP: POST /sync?match=<pattern>&count=<n>, GET /sync,
    // POST /sync/stop; the same under /verify.
    for (const std::string path : {"/sync", "/verify"}) {
        auto job = [this, path]() -> bulk_sync* {
            return path == "/sync" ? st_.sync.get() : st_.verify.get();
        };
        http_->route("POST", path, [job](const http_request& req) {
            auto* j = job();
            if (j == nullptr)
                return text(503, "not available");
            sync_options opt;
            opt.match = std::string(req.param("match"));
            opt.prune = req.param("prune") == "1" || req.param("prune") == "true";
            if (const auto c = req.param("count"); !c.empty()) {
                const auto n = parse_scan_count(c);
                if (!n)
                    return text(400, "count must be an integer from 1 to 1000000");
                opt.count = *n;
            }
            auto why = j->start(std::move(opt));
            if (!why.empty())
                return text(409, why.substr(why.starts_with("ERR ") ? 4 : 0));
            return text(202, j->info_lines());
        });
        http_->route("GET", path, [job](const http_request&) {
            auto* j = job();
            return j != nullptr ? text(200, j->info_lines()) : text(503, "not available");
        });
        http_->route("POST", path + "/stop", [job](const http_request&) {
            auto* j = job();
            if (j == nullptr)
                return text(503, "not available");
            j->stop();
            return text(200, j->info_lines());
        });
    }
    http_->route("GET", "/status", [this](const http_request&) {
        return text(200, st_.info_text ? st_.info_text() : std::string());
    });
    http_->route("GET", "/divergences", [this](const http_request&) {
        std::string body;
        if (st_.divergences) {
            for (const auto& d : st_.divergences->recent()) {
                body += std::string(name(d.kind)) + " command=" + d.command + " key=" + d.key +
                        " serving=" + d.serving + " primary=" + d.primary +
                        " secondary=" + d.secondary + "\n";
            }
        }
        return text(200, body);
    });
    if (auto ec = http_->listen(host, port))
        return std::unexpected("cannot listen on admin address " + host + ":" +
                               std::to_string(port) + ": " + ec.message());
    return {};
}

void admin_http::stop() {
    if (http_)
        http_->stop();
}

std::uint16_t admin_http::port() const noexcept {
    return http_ ? http_->port() : 0;
}

}  // namespace respite::proxy::server
