// Backend restarts: run_id changes, the follower flagged until a PROXY SYNC completed.
#include "restart_watch.hpp"

#include <algorithm>
#include <future>

#include <asio/post.hpp>
#include <fmt/format.h>

#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/replayer.hpp>

#include "sync.hpp"

namespace respite::proxy::server {

namespace {

// The run_id field of an INFO server reply ("" when absent).
std::string run_id_of(std::string_view info) {
    constexpr std::string_view key = "run_id:";
    const auto at = info.find(key);
    if (at == std::string_view::npos)
        return {};
    const auto start = at + key.size();
    auto end = info.find_first_of("\r\n", start);
    if (end == std::string_view::npos)
        end = info.size();
    return std::string(info.substr(start, end - start));
}

}  // namespace

restart_watch::restart_watch(asio::io_context& control, shared_state& st)
    : control_(control), st_(st), timer_(std::make_unique<asio::steady_timer>(control)) {
    for (auto s : {side::primary, side::secondary})
        restarts_total_[static_cast<int>(s)] = &st_.metrics->get_counter(
            "respite_proxy_backend_restarts_total",
            "Backend restarts seen (a new run_id in INFO server)", {{"target", side_name(s)}});
}

void restart_watch::start() {
    if (st_.cfg.restart_check_interval.count() == 0)
        return;
    asio::post(control_, [self = shared_from_this()] { self->check(); });
}

void restart_watch::shutdown() {
    stopped_ = true;
    timer_.reset();
}

void restart_watch::schedule() {
    if (stopped_ || !timer_)
        return;
    timer_->expires_after(st_.cfg.restart_check_interval);
    timer_->async_wait([self = shared_from_this()](std::error_code ec) {
        if (!ec)
            self->check();
    });
}

void restart_watch::check() {
    if (stopped_ || st_.draining.load())
        return;
    for (auto s : {side::primary, side::secondary}) {
        auto b = st_.backends[static_cast<int>(s)];
        if (!b)
            continue;
        if (b->is_cluster()) {
            read_cluster(s, [self = shared_from_this(), s](cluster_view v) {
                asio::post(self->control_, [self, s, v = std::move(v)]() mutable {
                    if (!self->stopped_)
                        self->on_cluster_view(s, std::move(v), self->follows(s));
                });
            });
            continue;
        }
        client::request req;
        req.push("INFO", "server");
        b->exec(std::move(req), [self = shared_from_this(), s](client::result<replies_t> r) {
            if (!r || r->empty() || !r->front().is_string())
                return;  // down: the follower counts that; the next answer tells
            asio::post(self->control_, [self, s, id = run_id_of(r->front().str())]() mutable {
                self->on_run_id(s, std::move(id));
            });
        });
    }
    schedule();
}

void restart_watch::on_run_id(side s, std::string run_id) {
    if (!stopped_)
        observe(s, std::move(run_id), follows(s));
}

bool restart_watch::follows(side s) const {
    const auto plan = plan_of(st_.current.load(std::memory_order_acquire));
    return plan.follower && plan.serving != s;
}

void restart_watch::read_cluster(side s, std::function<void(cluster_view)> done) {
    auto b = st_.backends[static_cast<int>(s)];
    const auto map = b->topology();
    struct gather {
        std::mutex mu;
        cluster_view view;
        std::size_t left = 0;
    };
    auto g = std::make_shared<gather>();
    std::vector<cluster::node_address> nodes;
    for (const auto& sh : map.shards()) {
        if (sh.ranges.empty())
            continue;
        g->view.push_back({sh.master.address.to_string(), {}, sh.ranges});
        nodes.push_back(sh.master.address);
    }
    g->left = nodes.size();
    if (nodes.empty()) {
        done({});
        return;
    }
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        client::request req;
        req.push("INFO", "server");
        b->exec_on(nodes[i], std::move(req), [g, i, done](client::result<replies_t> r) {
            bool last = false;
            {
                std::lock_guard lock(g->mu);
                if (r && !r->empty() && r->front().is_string())
                    g->view[i].run_id = run_id_of(r->front().str());
                last = --g->left == 0;
            }
            if (last)
                done(std::move(g->view));
        });
    }
}

void restart_watch::on_cluster_view(side s, cluster_view view, bool follows) {
    // A look with a master that did not answer decides nothing (a failover under way, a node
    // down): the last complete look stays the reference.
    if (view.empty() || std::any_of(view.begin(), view.end(),
                                    [](const master_seen& m) { return m.run_id.empty(); }))
        return;
    std::vector<std::string_view> events;
    {
        std::lock_guard lock(mu_);
        auto& before = cluster_seen_[static_cast<int>(s)];
        const auto find = [](const cluster_view& v, std::string_view addr) {
            return std::find_if(v.begin(), v.end(),
                                [&](const master_seen& m) { return m.address == addr; });
        };
        if (!before.empty()) {
            for (const auto& m : view) {
                const auto old = find(before, m.address);
                if (old != before.end() && old->run_id != m.run_id)
                    events.push_back("a master restarted (new run_id)");
            }
            for (const auto& old : before) {
                if (find(view, old.address) != view.end() || old.ranges.empty())
                    continue;
                // A master of the last look is gone or demoted: who serves its first slot now?
                const auto slot = old.ranges.front().first;
                const auto now = std::find_if(view.begin(), view.end(), [&](const master_seen& m) {
                    return std::any_of(m.ranges.begin(), m.ranges.end(), [&](const auto& r) {
                        return r.first <= slot && slot <= r.second;
                    });
                });
                if (now != view.end() && find(before, now->address) == before.end())
                    events.push_back("a failover (a replica took over a master's slots)");
            }
        }
        std::string ids;
        for (const auto& m : view)
            ids += (ids.empty() ? "" : ",") + m.run_id;
        run_id_[static_cast<int>(s)] = std::move(ids);
        before = std::move(view);
    }
    for (const auto what : events)
        record_restart(s, follows, what);
}

void restart_watch::check_now(side s, std::chrono::milliseconds limit) {
    auto b = st_.backends[static_cast<int>(s)];
    if (stopped_ || !b || st_.cfg.restart_check_interval.count() == 0)
        return;
    if (b->is_cluster()) {
        auto p = std::make_shared<std::promise<cluster_view>>();
        auto f = p->get_future();
        read_cluster(s, [p](cluster_view v) { p->set_value(std::move(v)); });
        if (f.wait_for(limit) == std::future_status::ready)
            on_cluster_view(s, f.get(), true);
        return;
    }
    auto p = std::make_shared<std::promise<std::string>>();
    auto f = p->get_future();
    client::request req;
    req.push("INFO", "server");
    b->exec(std::move(req), [p](client::result<replies_t> r) {
        p->set_value(r && !r->empty() && r->front().is_string() ? run_id_of(r->front().str())
                                                                : std::string());
    });
    if (f.wait_for(limit) != std::future_status::ready)
        return;
    observe(s, f.get(), true);
}

void restart_watch::clear(side s, std::string_view reason) {
    {
        std::lock_guard lock(mu_);
        if (!needs_sync_[static_cast<int>(s)])
            return;
        needs_sync_[static_cast<int>(s)] = false;
    }
    obs::log().warn("proxy needs_sync_cleared target={} by=\"{}\"", side_name(s), reason);
    tell_followers();
    if (on_change_)
        on_change_();
}

void restart_watch::observe(side s, std::string run_id, bool follows) {
    if (run_id.empty())
        return;
    const auto i = static_cast<int>(s);
    {
        std::lock_guard lock(mu_);
        if (run_id_[i].empty() || run_id_[i] == run_id) {
            run_id_[i] = std::move(run_id);
            return;
        }
        run_id_[i] = std::move(run_id);
    }
    record_restart(s, follows, "a new run_id");
}

void restart_watch::record_restart(side s, bool follows, std::string_view what) {
    const auto i = static_cast<int>(s);
    {
        std::lock_guard lock(mu_);
        ++restarts_[i];
        if (follows)
            needs_sync_[i] = true;
    }
    restarts_total_[i]->inc();
    if (follows)
        tell_followers();
    if (follows && on_change_)
        on_change_();
    if (!follows) {
        obs::log().warn("proxy backend_restarted target={} what=\"{}\" following=false",
                        side_name(s), what);
        return;
    }
    if (st_.cfg.resync_on_restart && st_.sync) {
        st_.sync->stop();
        sync_options all;
        all.prune = true;  // writes lost with the restart include DELs
        const auto why = st_.sync->start(std::move(all));
        obs::log().error(
            "proxy backend_restarted target={} what=\"{}\" following=true note=\"writes it "
            "acknowledged before the restart may be lost\" action={}",
            side_name(s), what, why.empty() ? "resync_started" : "resync_failed: " + why);
        return;
    }
    obs::log().error(
        "proxy backend_restarted target={} what=\"{}\" following=true note=\"writes it "
        "acknowledged before the restart may be lost; run PROXY SYNC START PRUNE: the cut-over "
        "to it is refused until one completed\"",
        side_name(s), what);
}

std::uint64_t restart_watch::epoch(side s) const {
    std::lock_guard lock(mu_);
    return restarts_[static_cast<int>(s)] + flags_[static_cast<int>(s)];
}

void restart_watch::tell_followers() {
    std::lock_guard lock(mu_);  // an atomic store each: calls in order of the flags' changes
    for (int i = 0; i < 2; ++i)
        if (st_.replay_to[i])
            st_.replay_to[i]->check_replies(!needs_sync_[i]);
}

bool restart_watch::needs_sync(side s) const {
    std::lock_guard lock(mu_);
    return needs_sync_[static_cast<int>(s)];
}

void restart_watch::synced(side target, std::uint64_t epoch_at_start) {
    {
        std::lock_guard lock(mu_);
        const auto i = static_cast<int>(target);
        if (restarts_[i] + flags_[i] != epoch_at_start || !needs_sync_[i])
            return;
        needs_sync_[i] = false;
    }
    obs::log().info("proxy backend_resynced target={}", side_name(target));
    tell_followers();
    if (on_change_)
        on_change_();
}

void restart_watch::flag(side s, std::string_view reason, bool planned) {
    {
        std::lock_guard lock(mu_);
        needs_sync_[static_cast<int>(s)] = true;
        ++flags_[static_cast<int>(s)];  // a PROXY SYNC that began before does not clear it
    }
    tell_followers();
    obs::log().log(planned ? spdlog::level::warn : spdlog::level::err,
                   "proxy needs_sync target={} reason=\"{}\" note=\"run PROXY SYNC START PRUNE: "
                   "the cut-over to it is refused until one completed\"",
                   side_name(s), reason);
}

std::string restart_watch::info_lines() const {
    std::lock_guard lock(mu_);
    return fmt::format(
        "primary_run_id:{}\r\nsecondary_run_id:{}\r\nprimary_restarts:{}\r\n"
        "secondary_restarts:{}\r\nprimary_needs_sync:{}\r\nsecondary_needs_sync:{}\r\n",
        run_id_[0], run_id_[1], restarts_[0], restarts_[1], needs_sync_[0] ? 1 : 0,
        needs_sync_[1] ? 1 : 0);
}

}  // namespace respite::proxy::server
