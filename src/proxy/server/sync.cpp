// PROXY SYNC: SCAN the serving side, hand every key to the follower's repair loop, paced.
#include "sync.hpp"

#include <asio/post.hpp>
#include <fmt/format.h>

#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/replayer.hpp>

#include "restart_watch.hpp"

namespace respite::proxy::server {

namespace {

constexpr auto k_wait = std::chrono::milliseconds(20);
constexpr auto k_log_every = std::chrono::seconds(5);

const char* side_name(side s) {
    return s == side::primary ? "primary" : "secondary";
}

}  // namespace

bulk_sync::bulk_sync(asio::io_context& control, shared_state& st)
    : control_(control), st_(st), timer_(std::make_unique<asio::steady_timer>(control)) {
    auto& m = *st_.metrics;
    scanned_total_ =
        &m.get_counter("respite_proxy_sync_keys_scanned_total",
                       "Keys PROXY SYNC found on the serving side and queued for copy");
    runs_total_ = &m.get_counter("respite_proxy_sync_runs_total", "PROXY SYNC runs started");
    running_gauge_ = &m.get_gauge("respite_proxy_sync_running", "1 while PROXY SYNC runs");
}

std::string bulk_sync::start(sync_options opt) {
    const auto plan = plan_of(st_.current.load(std::memory_order_acquire));
    replayer* follower = plan.follower ? st_.follower_of(plan.serving) : nullptr;
    if (follower == nullptr)
        return "ERR PROXY SYNC needs a follower: switch to dual-write, dual-write-shadow or "
               "secondary-primary first";
    if (st_.backend_cfg(plan.serving).cluster)
        return "ERR PROXY SYNC from a Redis Cluster is not supported yet (copy the keys per node, "
               "docs/proxy.md runbook step 3)";
    if (opt.count == 0 || opt.high_water == 0)
        return "ERR COUNT must be positive";
    const side target = plan.serving == side::primary ? side::secondary : side::primary;
    auto r = std::make_shared<run>();
    r->opt = std::move(opt);
    r->source = plan.serving;
    r->target_epoch = st_.restarts ? st_.restarts->epoch(target) : 0;
    {
        std::lock_guard lock(mu_);
        if (p_.state == "scanning" || p_.state == "repairing")
            return "ERR a PROXY SYNC is already running (PROXY SYNC STOP ends it)";
        r->generation = ++generation_;
        source_ = plan.serving;
        repaired_at_start_ = follower->snapshot().repaired;
        started_ = last_log_ = std::chrono::steady_clock::now();
        p_ = sync_progress{};
        p_.state = "scanning";
        p_.from = side_name(plan.serving);
        p_.to = side_name(target);
        p_.match = r->opt.match;
    }
    runs_total_->inc();
    running_gauge_->set(1);
    obs::log().info("proxy sync_started from={} to={} match=\"{}\" count={}",
                    side_name(plan.serving), side_name(target), r->opt.match, r->opt.count);
    asio::post(control_, [self = shared_from_this(), r] { self->scan_step(r); });
    return {};
}

void bulk_sync::stop() {
    std::lock_guard lock(mu_);
    if (p_.state != "scanning" && p_.state != "repairing")
        return;
    ++generation_;
    p_.state = "stopped";
    p_.error = "stopped by PROXY SYNC STOP";
    running_gauge_->set(0);
    obs::log().warn("proxy sync_stopped scanned={}", p_.scanned);
}

void bulk_sync::shutdown() {
    {
        std::lock_guard lock(mu_);
        ++generation_;
        if (p_.state == "scanning" || p_.state == "repairing") {
            p_.state = "stopped";
            p_.error = "the proxy stopped";
        }
    }
    timer_.reset();
}

bool bulk_sync::running() const {
    std::lock_guard lock(mu_);
    return p_.state == "scanning" || p_.state == "repairing";
}

sync_progress bulk_sync::progress() const {
    sync_progress out;
    side source = side::primary;
    std::uint64_t repaired_at_start = 0;
    bool active = false;
    {
        std::lock_guard lock(mu_);
        out = p_;
        source = source_;
        repaired_at_start = repaired_at_start_;
        active = out.state == "scanning" || out.state == "repairing";
        if (active)
            out.elapsed_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    }
    if (auto* f = st_.follower_of(source)) {
        const auto s = f->snapshot();
        out.dirty = s.dirty_keys;
        if (active)
            out.repaired_since_start = s.repaired - repaired_at_start;
    }
    return out;
}

std::string bulk_sync::info_lines() const {
    const auto p = progress();
    return fmt::format(
        "sync_state:{}\r\nsync_from:{}\r\nsync_to:{}\r\nsync_keys_scanned:{}\r\n"
        "sync_scan_calls:{}\r\nsync_dirty_keys:{}\r\nsync_repaired:{}\r\nsync_elapsed_seconds:{:."
        "1f}"
        "\r\nsync_error:{}\r\n",
        p.state, p.from, p.to, p.scanned, p.batches, p.dirty, p.repaired_since_start,
        p.elapsed_seconds, p.error);
}

bool bulk_sync::still_valid(const run_ptr& r) {
    {
        std::lock_guard lock(mu_);
        if (r->generation != generation_)
            return false;  // stopped or replaced: this run's steps end quietly
    }
    const auto now = st_.current.load(std::memory_order_acquire);
    const auto plan = plan_of(now);
    if (!plan.follower || plan.serving != r->source || st_.follower_of(r->source) == nullptr) {
        finish(r, "stopped", fmt::format("the mode changed to {} during the sync", mode_name(now)));
        return false;
    }
    if (st_.draining.load()) {
        finish(r, "stopped", "the proxy is shutting down");
        return false;
    }
    return true;
}

void bulk_sync::finish(const run_ptr& r, std::string state, std::string error) {
    const side target = r->source == side::primary ? side::secondary : side::primary;
    bool done = false;
    {
        std::lock_guard lock(mu_);
        if (r->generation != generation_)
            return;
        ++generation_;
        p_.state = std::move(state);
        p_.error = std::move(error);
        p_.elapsed_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        if (auto* f = st_.follower_of(r->source))
            p_.repaired_since_start = f->snapshot().repaired - repaired_at_start_;
        running_gauge_->set(0);
        done = p_.state == "done";
        if (done)
            obs::log().info("proxy sync_done scanned={} seconds={:.1f}", p_.scanned,
                            p_.elapsed_seconds);
        else
            obs::log().error("proxy sync_{} scanned={} reason=\"{}\"", p_.state, p_.scanned,
                             p_.error);
    }
    if (done && st_.restarts)
        st_.restarts->synced(target, r->target_epoch);
}

void bulk_sync::wait_then(const run_ptr& r, void (bulk_sync::*step)(const run_ptr&)) {
    if (!timer_)
        return;
    timer_->expires_after(k_wait);
    timer_->async_wait([self = shared_from_this(), r, step](std::error_code ec) {
        if (!ec)
            ((*self).*step)(r);
    });
}

void bulk_sync::scan_step(const run_ptr& r) {
    if (!still_valid(r))
        return;
    // Pacing: the repairs of what was handed over go first.
    if (st_.follower_of(r->source)->snapshot().dirty_keys >= r->opt.high_water) {
        log_progress(false);
        wait_then(r, &bulk_sync::scan_step);
        return;
    }
    client::request req;
    if (r->opt.match.empty())
        req.push("SCAN", r->cursor, "COUNT", r->opt.count);
    else
        req.push("SCAN", r->cursor, "MATCH", r->opt.match, "COUNT", r->opt.count);
    auto b = st_.backends[static_cast<int>(r->source)];
    b->exec(std::move(req), [self = shared_from_this(), r](client::result<replies_t> res) {
        asio::post(self->control_, [self, r, res = std::move(res)]() mutable {
            if (!self->still_valid(r))
                return;
            if (!res || res->empty() || res->front().is_error() || res->front().size() != 2 ||
                !res->front()[0].is_string() || !res->front()[1].is_aggregate()) {
                const std::string why = !res ? "the serving side did not answer SCAN"
                                             : (!res->empty() && res->front().is_error()
                                                    ? "SCAN failed: " + res->front().str()
                                                    : std::string("unexpected SCAN reply"));
                self->finish(r, "failed", why);
                return;
            }
            const auto& reply = res->front();
            std::vector<std::string_view> keys;
            keys.reserve(reply[1].size());
            for (const auto& k : reply[1].elements())
                if (k.is_string())
                    keys.emplace_back(k.str());
            if (auto* f = self->st_.follower_of(r->source); f && !keys.empty())
                f->mark_dirty(keys);
            self->scanned_total_->inc(keys.size());
            r->cursor = reply[0].str();
            const bool scan_done = r->cursor == "0";
            {
                std::lock_guard lock(self->mu_);
                if (r->generation == self->generation_) {
                    self->p_.scanned += keys.size();
                    ++self->p_.batches;
                    if (scan_done)
                        self->p_.state = "repairing";
                }
            }
            self->log_progress(false);
            if (scan_done)
                self->wait_step(r);
            else
                self->scan_step(r);
        });
    });
}

void bulk_sync::wait_step(const run_ptr& r) {
    // Every key was handed over; done when the replayer has repaired them all.
    if (!still_valid(r))
        return;
    if (st_.follower_of(r->source)->snapshot().dirty_keys == 0) {
        log_progress(true);
        finish(r, "done", {});
        return;
    }
    log_progress(false);
    wait_then(r, &bulk_sync::wait_step);
}

void bulk_sync::log_progress(bool force) {
    const auto now = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(mu_);
        if (!force && now - last_log_ < k_log_every)
            return;
        last_log_ = now;
    }
    const auto p = progress();
    obs::log().info("proxy sync_progress state={} scanned={} repaired={} dirty={} seconds={:.1f}",
                    p.state, p.scanned, p.repaired_since_start, p.dirty, p.elapsed_seconds);
}

}  // namespace respite::proxy::server
