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
    const auto current = st_.current.load(std::memory_order_acquire);
    const auto plan = plan_of(current);
    replayer* follower = plan.follower ? st_.follower_of(plan.serving) : nullptr;
    if (follower == nullptr)
        return "ERR PROXY SYNC needs a follower: switch to dual-write, dual-write-shadow or "
               "secondary-primary first";
    if (st_.backend_cfg(plan.serving).cluster)
        return "ERR PROXY SYNC from a Redis Cluster is not supported yet (copy the keys per node, "
               "docs/proxy.md runbook step 3)";
    if (opt.count == 0 || opt.high_water == 0)
        return "ERR COUNT must be positive";
    const std::string match = opt.match;
    const std::size_t count = opt.count;
    std::uint64_t generation = 0;
    const char* to = side_name(plan.serving == side::primary ? side::secondary : side::primary);
    {
        std::lock_guard lock(mu_);
        if (p_.state == "scanning" || p_.state == "repairing")
            return "ERR a PROXY SYNC is already running (PROXY SYNC STOP ends it)";
        generation = ++generation_;
        opt_ = std::move(opt);
        source_ = plan.serving;
        started_mode_ = current;
        target_epoch_ = st_.restarts
                            ? st_.restarts->epoch(plan.serving == side::primary ? side::secondary
                                                                                : side::primary)
                            : 0;
        cursor_ = "0";
        repaired_at_start_ = follower->snapshot().repaired;
        started_ = last_log_ = std::chrono::steady_clock::now();
        p_ = sync_progress{};
        p_.state = "scanning";
        p_.from = side_name(plan.serving);
        p_.to = to;
        p_.match = opt_.match;
    }
    runs_total_->inc();
    running_gauge_->set(1);
    obs::log().info("proxy sync_started from={} to={} match=\"{}\" count={}",
                    side_name(plan.serving), to, match, count);
    asio::post(control_, [self = shared_from_this(), generation] { self->scan_step(generation); });
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
    {
        std::lock_guard lock(mu_);
        out = p_;
        if (out.state == "scanning" || out.state == "repairing")
            out.elapsed_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    }
    if (auto* f = st_.follower_of(source_)) {
        const auto s = f->snapshot();
        out.dirty = s.dirty_keys;
        if (out.state == "scanning" || out.state == "repairing") {
            std::lock_guard lock(mu_);
            out.repaired_since_start = s.repaired - repaired_at_start_;
        }
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

bool bulk_sync::still_valid(std::uint64_t generation) {
    {
        std::lock_guard lock(mu_);
        if (generation != generation_)
            return false;  // stopped or restarted: this run's steps end quietly
    }
    const auto now = st_.current.load(std::memory_order_acquire);
    const auto plan = plan_of(now);
    if (!plan.follower || plan.serving != source_ || st_.follower_of(source_) == nullptr) {
        finish(generation, "stopped",
               fmt::format("the mode changed to {} during the sync", mode_name(now)));
        return false;
    }
    if (st_.draining.load()) {
        finish(generation, "stopped", "the proxy is shutting down");
        return false;
    }
    return true;
}

void bulk_sync::finish(std::uint64_t generation, std::string state, std::string error) {
    std::lock_guard lock(mu_);
    if (generation != generation_)
        return;
    ++generation_;
    p_.state = std::move(state);
    p_.error = std::move(error);
    p_.elapsed_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    if (auto* f = st_.follower_of(source_))
        p_.repaired_since_start = f->snapshot().repaired - repaired_at_start_;
    running_gauge_->set(0);
    if (p_.state == "done" && st_.restarts)
        st_.restarts->synced(source_ == side::primary ? side::secondary : side::primary,
                             target_epoch_);
    if (p_.state == "done")
        obs::log().info("proxy sync_done scanned={} seconds={:.1f}", p_.scanned,
                        p_.elapsed_seconds);
    else
        obs::log().error("proxy sync_{} scanned={} reason=\"{}\"", p_.state, p_.scanned, p_.error);
}

void bulk_sync::scan_step(std::uint64_t generation) {
    if (!still_valid(generation))
        return;
    auto* follower = st_.follower_of(source_);
    // Pacing: the repairs of what was handed over go first.
    if (follower->snapshot().dirty_keys >= opt_.high_water) {
        log_progress(false);
        if (!timer_)
            return;
        timer_->expires_after(k_wait);
        timer_->async_wait([self = shared_from_this(), generation](std::error_code ec) {
            if (!ec)
                self->scan_step(generation);
        });
        return;
    }
    client::request req;
    if (opt_.match.empty())
        req.push("SCAN", cursor_, "COUNT", opt_.count);
    else
        req.push("SCAN", cursor_, "MATCH", opt_.match, "COUNT", opt_.count);
    auto b = st_.backends[static_cast<int>(source_)];
    b->exec(std::move(req), [self = shared_from_this(), generation](client::result<replies_t> r) {
        asio::post(self->control_, [self, generation, r = std::move(r)]() mutable {
            if (!self->still_valid(generation))
                return;
            if (!r || r->empty() || r->front().is_error() || r->front().size() != 2 ||
                !r->front()[0].is_string() || !r->front()[1].is_aggregate()) {
                const std::string why = !r ? "the serving side did not answer SCAN"
                                           : (!r->empty() && r->front().is_error()
                                                  ? "SCAN failed: " + r->front().str()
                                                  : std::string("unexpected SCAN reply"));
                self->finish(generation, "failed", why);
                return;
            }
            const auto& reply = r->front();
            std::vector<std::string_view> keys;
            keys.reserve(reply[1].size());
            for (const auto& k : reply[1].elements())
                if (k.is_string())
                    keys.emplace_back(k.str());
            if (auto* f = self->st_.follower_of(self->source_); f && !keys.empty())
                f->mark_dirty(keys);
            self->scanned_total_->inc(keys.size());
            bool scan_done = false;
            {
                std::lock_guard lock(self->mu_);
                self->p_.scanned += keys.size();
                ++self->p_.batches;
                self->cursor_ = reply[0].str();
                scan_done = self->cursor_ == "0";
                if (scan_done)
                    self->p_.state = "repairing";
            }
            self->log_progress(false);
            if (scan_done)
                self->wait_step(generation);
            else
                self->scan_step(generation);
        });
    });
}

void bulk_sync::wait_step(std::uint64_t generation) {
    // Every key was handed over; done when the replayer has repaired them all.
    if (!still_valid(generation))
        return;
    if (st_.follower_of(source_)->snapshot().dirty_keys == 0) {
        log_progress(true);
        finish(generation, "done", {});
        return;
    }
    log_progress(false);
    if (!timer_)
        return;
    timer_->expires_after(k_wait);
    timer_->async_wait([self = shared_from_this(), generation](std::error_code ec) {
        if (!ec)
            self->wait_step(generation);
    });
}

void bulk_sync::log_progress(bool force) {
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_log_ < k_log_every)
        return;
    last_log_ = now;
    const auto p = progress();
    obs::log().info("proxy sync_progress state={} scanned={} repaired={} dirty={} seconds={:.1f}",
                    p.state, p.scanned, p.repaired_since_start, p.dirty, p.elapsed_seconds);
}

}  // namespace respite::proxy::server
