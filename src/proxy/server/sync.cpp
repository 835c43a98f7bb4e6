// PROXY SYNC and PROXY VERIFY: paced SCANs of the serving side on the control thread.
#include "sync.hpp"

#include <algorithm>
#include <charconv>

#include <asio/post.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/divergence.hpp>
#include <respite/proxy/replayer.hpp>

#include "chunked_compare.hpp"
#include "group_compare.hpp"
#include "restart_watch.hpp"
#include "shadow_reader.hpp"

namespace respite::proxy::server {

namespace {

// A pass waits this long for a cluster's topology to settle before it looks again.
constexpr auto k_settle_wait = std::chrono::milliseconds(200);
constexpr auto k_log_every = std::chrono::seconds(5);

bool active(const std::string& state) {
    return state == "scanning" || state == "repairing" || state == "checking";
}

// The read that shows a key's whole value, by TYPE (empty: none, the key is gone).
std::vector<std::string> value_read(std::string_view type, const std::string& key) {
    if (type == "string")
        return {"GET", key};
    if (type == "hash")
        return {"HGETALL", key};
    if (type == "list")
        return {"LRANGE", key, "0", "-1"};
    if (type == "set")
        return {"SMEMBERS", key};
    if (type == "zset")
        return {"ZRANGE", key, "0", "-1", "WITHSCORES"};
    if (type == "stream")
        return {"XRANGE", key, "-", "+"};
    return {};
}

}  // namespace

std::optional<std::size_t> parse_scan_count(std::string_view text) {
    std::size_t n = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || ptr != text.data() + text.size() || n == 0 || n > 1'000'000)
        return std::nullopt;
    return n;
}

bulk_sync::bulk_sync(asio::io_context& control, shared_state& st, kind k)
    : control_(control), st_(st), kind_(k), timer_(std::make_unique<asio::steady_timer>(control)) {
    auto& m = *st_.metrics;
    if (kind_ == kind::sync) {
        scanned_total_ =
            &m.get_counter("respite_proxy_sync_keys_scanned_total",
                           "Keys PROXY SYNC found on the serving side and queued for copy");
        runs_total_ = &m.get_counter("respite_proxy_sync_runs_total", "PROXY SYNC runs started");
        rescans_total_ = &m.get_counter(
            "respite_proxy_sync_rescans_total",
            "PROXY SYNC scan passes begun again after a Redis Cluster topology change");
        running_gauge_ = &m.get_gauge("respite_proxy_sync_running", "1 while PROXY SYNC runs");
    } else {
        scanned_total_ = &m.get_counter("respite_proxy_verify_keys_scanned_total",
                                        "Keys PROXY VERIFY found on the serving side");
        runs_total_ =
            &m.get_counter("respite_proxy_verify_runs_total", "PROXY VERIFY runs started");
        running_gauge_ = &m.get_gauge("respite_proxy_verify_running", "1 while PROXY VERIFY runs");
        rescans_total_ = &m.get_counter(
            "respite_proxy_verify_rescans_total",
            "PROXY VERIFY scan passes begun again after a Redis Cluster topology change");
        chunked_total_ = &m.get_counter("respite_proxy_verify_chunked_keys_total",
                                        "Keys PROXY VERIFY compared in chunks (more elements than "
                                        "--verify-chunk-elements)");
        groups_total_ =
            &m.get_counter("respite_proxy_verify_groups_compared_total",
                           "Consumer groups of streams PROXY VERIFY compared (XINFO GROUPS, "
                           "XPENDING)");
    }
}

std::string bulk_sync::start(sync_options opt) {
    const auto plan = plan_of(st_.current.load(std::memory_order_acquire));
    replayer* follower = st_.follower_of(plan.serving);
    if (kind_ == kind::sync && (!plan.follower || follower == nullptr))
        return "ERR PROXY SYNC needs a follower: switch to dual-write, dual-write-shadow or "
               "secondary-primary first";
    if (kind_ == kind::verify && (!st_.has_secondary() || !st_.shadows))
        return "ERR PROXY VERIFY needs a secondary";
    if (kind_ == kind::verify && opt.prune)
        return "ERR PRUNE is for PROXY SYNC; PROXY VERIFY only reports the keys the serving side "
               "lacks (as extra_data)";
    if (opt.count == 0 || opt.high_water == 0 || opt.max_in_flight == 0)
        return "ERR COUNT must be positive";
    // A SCAN page goes into the dirty set at once: beside the keys already there (at most half
    // the set, see paced()), it must fit.
    if (const auto most = std::max<std::size_t>(st_.cfg.replay_max_dirty_keys / 4, 1);
        kind_ == kind::sync && opt.count > most) {
        obs::log().info(
            "proxy sync_count_lowered asked={} used={} (a quarter of "
            "--replay-max-dirty-keys)",
            opt.count, most);
        opt.count = most;
    }
    const side target = other_side(plan.serving);
    auto r = std::make_shared<run>();
    r->opt = std::move(opt);
    r->source = plan.serving;
    r->target_epoch = st_.restarts ? st_.restarts->epoch(target) : 0;
    r->follow_gaps_at_start = st_.follow_gaps.load();
    if (follower != nullptr) {
        const auto x = follower->snapshot();
        r->refused_at_start = x.repairs_rejected;
        r->resync_events_at_start = x.full_resync_events;
    }
    {
        std::lock_guard lock(mu_);
        if (active(p_.state))
            return fmt::format("ERR a PROXY {} is already running (PROXY {} STOP ends it)",
                               kind_ == kind::sync ? "SYNC" : "VERIFY",
                               kind_ == kind::sync ? "SYNC" : "VERIFY");
        r->generation = ++generation_;
        source_ = plan.serving;
        repaired_at_start_ = follower != nullptr ? follower->snapshot().repaired : 0;
        started_ = last_log_ = std::chrono::steady_clock::now();
        p_ = sync_progress{};
        p_.state = "scanning";
        p_.from = side_name(plan.serving);
        p_.to = side_name(target);
        p_.match = r->opt.match;
    }
    if (kind_ == kind::sync)
        follower->set_copying(true);
    runs_total_->inc();
    running_gauge_->set(1);
    obs::log().info("proxy {}_started from={} to={} match=\"{}\" count={}", prefix(),
                    side_name(plan.serving), side_name(target), r->opt.match, r->opt.count);
    asio::post(control_, [self = shared_from_this(), r] {
        self->count_keys(r);
        self->scan_step(r);
    });
    return {};
}

void bulk_sync::count_keys(const run_ptr& r) {
    if (!r->opt.match.empty())
        return;  // only the keys that match are scanned: no total to compare with
    // A cluster backend runs DBSIZE on every master and sums the replies (backend::exec).
    client::request req;
    req.push("DBSIZE");
    st_.backends[static_cast<int>(r->source)]->exec(
        std::move(req), [self = shared_from_this(), r](client::result<replies_t> res) {
            std::int64_t n = 0;
            if (!res || res->size() != 1 || !(*res)[0].to_int64(n) || n < 0)
                return;
            std::lock_guard lock(self->mu_);
            if (r->generation == self->generation_)
                self->p_.keys_total = static_cast<std::uint64_t>(n);
        });
}

std::optional<double> sync_progress::percent() const {
    if (keys_total == 0)
        return std::nullopt;
    return std::min(100.0, 100.0 * static_cast<double>(scanned) / static_cast<double>(keys_total));
}

std::optional<double> sync_progress::eta_seconds() const {
    if (state != "scanning" || keys_total == 0 || scanned == 0 || extra_scanned != 0 ||
        elapsed_seconds <= 0)
        return std::nullopt;
    const double left = keys_total > scanned ? static_cast<double>(keys_total - scanned) : 0.0;
    return left * elapsed_seconds / static_cast<double>(scanned);
}

void bulk_sync::stop() {
    std::lock_guard lock(mu_);
    if (!active(p_.state))
        return;
    ++generation_;
    p_.state = "stopped";
    p_.error = fmt::format("stopped by PROXY {} STOP", kind_ == kind::sync ? "SYNC" : "VERIFY");
    copying_ended();
    running_gauge_->set(0);
    obs::log().warn("proxy {}_stopped scanned={}", prefix(), p_.scanned);
}

void bulk_sync::copying_ended() {
    if (kind_ != kind::sync)
        return;
    for (auto s : {side::primary, side::secondary})
        if (auto* f = st_.follower_of(s))
            f->set_copying(false);
}

void bulk_sync::shutdown() {
    {
        std::lock_guard lock(mu_);
        ++generation_;
        if (active(p_.state)) {
            p_.state = "stopped";
            p_.error = "the proxy stopped";
        }
    }
    timer_.reset();
}

bool bulk_sync::running() const {
    std::lock_guard lock(mu_);
    return active(p_.state);
}

sync_progress bulk_sync::progress() const {
    sync_progress out;
    side source = side::primary;
    std::uint64_t repaired_at_start = 0;
    bool running = false;
    {
        std::lock_guard lock(mu_);
        out = p_;
        source = source_;
        repaired_at_start = repaired_at_start_;
        running = active(out.state);
        if (running)
            out.elapsed_seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    }
    if (auto* f = st_.follower_of(source); f && kind_ == kind::sync) {
        const auto s = f->snapshot();
        out.dirty = s.dirty_keys;
        if (running)
            out.repaired_since_start = s.repaired - repaired_at_start;
    }
    return out;
}

std::string bulk_sync::info_lines() const {
    const auto p = progress();
    const std::string_view k = prefix();
    std::string out = fmt::format(
        "{0}_state:{1}\r\n{0}_from:{2}\r\n{0}_to:{3}\r\n{0}_keys_scanned:{4}\r\n"
        "{0}_scan_calls:{5}\r\n{0}_nodes_scanned:{6}\r\n{0}_rescans:{7}\r\n",
        k, p.state, p.from, p.to, p.scanned, p.batches, p.nodes_scanned, p.rescans);
    // Empty when unknown (a MATCH run, DBSIZE failed, or not scanning the serving side).
    const auto pct = p.percent();
    const auto eta = p.eta_seconds();
    out += fmt::format("{0}_keys_total:{1}\r\n{0}_percent:{2}\r\n{0}_eta_seconds:{3}\r\n", k,
                       p.keys_total, pct ? fmt::format("{:.1f}", *pct) : std::string(),
                       eta ? fmt::format("{:.0f}", *eta) : std::string());
    if (kind_ == kind::sync)
        out += fmt::format(
            "sync_dirty_keys:{}\r\nsync_repaired:{}\r\nsync_follower_keys_scanned:{}\r\n"
            "sync_pruned:{}\r\nsync_complete:{}\r\n",
            p.dirty, p.repaired_since_start, p.extra_scanned, p.extra_keys, p.complete ? 1 : 0);
    else
        out += fmt::format(
            "verify_compared:{}\r\nverify_matched:{}\r\nverify_diverged:{}\r\nverify_errors:{}\r\n"
            "verify_unstable:{}\r\nverify_chunked_keys:{}\r\nverify_groups_compared:{}\r\n"
            "verify_extra_scanned:{}\r\nverify_extra_keys:{}\r\n",
            p.compared, p.matched, p.diverged, p.errors, p.unstable, p.chunked, p.groups_compared,
            p.extra_scanned, p.extra_keys);
    out += fmt::format("{0}_elapsed_seconds:{1:.1f}\r\n{0}_error:{2}\r\n", k, p.elapsed_seconds,
                       p.error);
    return out;
}

bool bulk_sync::still_valid(const run_ptr& r) {
    {
        std::lock_guard lock(mu_);
        if (r->generation != generation_)
            return false;  // stopped or replaced: this run's steps end quietly
    }
    const auto now = st_.current.load(std::memory_order_acquire);
    const auto plan = plan_of(now);
    const bool follows = plan.follower && st_.follower_of(r->source) != nullptr;
    if (plan.serving != r->source || (kind_ == kind::sync && !follows)) {
        finish(r, "stopped", fmt::format("the mode changed to {} during the run", mode_name(now)));
        return false;
    }
    // Switched to a mode without the follower and back between two steps: the writes of that
    // moment were not replayed, and keys copied before it may have changed since.
    if (kind_ == kind::sync && st_.follow_gaps.load() != r->follow_gaps_at_start) {
        finish(r, "stopped", "the follower was switched off and on during the run");
        return false;
    }
    if (st_.draining.load()) {
        finish(r, "stopped", "the proxy is shutting down");
        return false;
    }
    return true;
}

void bulk_sync::finish(const run_ptr& r, std::string state, std::string error) {
    bool done = false;
    bool complete = false;
    {
        std::lock_guard lock(mu_);
        if (r->generation != generation_)
            return;
        ++generation_;
        p_.state = std::move(state);
        p_.error = std::move(error);
        p_.elapsed_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
        done = p_.state == "done";
        copying_ended();
        if (auto* f = st_.follower_of(r->source); f && kind_ == kind::sync) {
            const auto x = f->snapshot();
            p_.repaired_since_start = x.repaired - repaired_at_start_;
            // A restart of the target during the run may have lost keys copied before it.
            const bool target_kept =
                !st_.restarts || st_.restarts->epoch(other_side(r->source)) == r->target_epoch;
            p_.complete = done && r->opt.match.empty() && r->opt.prune &&
                          x.repairs_rejected == r->refused_at_start && x.rejected_keys == 0 &&
                          x.full_resync_events == r->resync_events_at_start && target_kept &&
                          st_.follow_gaps.load() == r->follow_gaps_at_start;
            complete = p_.complete;
            if (done && !p_.complete)
                obs::log().warn(
                    "proxy sync_incomplete match=\"{}\" prune={} refused_copies={} "
                    "rejected_keys={} new_resync_causes={} note=\"needs-sync flags and "
                    "full_resync_needed stay set; a complete run has no MATCH and PRUNE, and "
                    "every copy applied\"",
                    r->opt.match, r->opt.prune, x.repairs_rejected - r->refused_at_start,
                    x.rejected_keys, x.full_resync_events - r->resync_events_at_start);
        }
        running_gauge_->set(0);
        if (done && kind_ == kind::verify)
            obs::log().info(
                "proxy verify_done scanned={} compared={} matched={} diverged={} errors={} "
                "unstable={} extra_keys={} seconds={:.1f}",
                p_.scanned, p_.compared, p_.matched, p_.diverged, p_.errors, p_.unstable,
                p_.extra_keys, p_.elapsed_seconds);
        else if (done)
            obs::log().info("proxy sync_done scanned={} seconds={:.1f}", p_.scanned,
                            p_.elapsed_seconds);
        else
            obs::log().error("proxy {}_{} scanned={} reason=\"{}\"", prefix(), p_.state, p_.scanned,
                             p_.error);
    }
    if (done && complete && kind_ == kind::sync) {
        if (auto* f = st_.follower_of(r->source))
            f->clear_full_resync(r->resync_events_at_start);
        if (st_.restarts)
            st_.restarts->synced(other_side(r->source), r->target_epoch);
    }
}

void bulk_sync::wait_then(const run_ptr& r, void (bulk_sync::*step)(const run_ptr&),
                          std::chrono::milliseconds delay) {
    if (!timer_)
        return;
    timer_->expires_after(delay);
    timer_->async_wait([self = shared_from_this(), r, step](std::error_code ec) {
        if (!ec)
            ((*self).*step)(r);
    });
}

bool bulk_sync::paced(const run& r) const {
    if (kind_ == kind::verify)
        return in_flight_.load() >= r.opt.max_in_flight;
    // At most half the dirty set's room: the set must never overflow (a full resync) because
    // of the copy itself.
    const auto limit =
        std::max<std::size_t>(std::min(r.opt.high_water, st_.cfg.replay_max_dirty_keys / 2), 1);
    return st_.follower_of(r.source)->snapshot().dirty_keys >= limit;
}

bool bulk_sync::settled(run& r) const {
    if (in_flight_.load() != 0)
        return false;
    if (kind_ == kind::verify)
        return true;
    // Every key was handed over: the copy waits for the keys dirty now, each copied once.
    // Keys that turn dirty again later are the follower's usual work (a key written by
    // several clients at once turns dirty at every race; the cut-over's hold copies those):
    // waiting for an empty dirty set would never end under such writes.
    auto* f = st_.follower_of(r.source);
    if (!r.dirty_marked) {
        f->set_dirty_mark();
        r.dirty_marked = true;
    }
    return f->dirty_at_mark() == 0;
}

void bulk_sync::add(const run_ptr& r, std::uint64_t sync_progress::*field, std::uint64_t n) {
    std::lock_guard lock(mu_);
    if (r->generation == generation_)
        p_.*field += n;
}

void bulk_sync::scan_step(const run_ptr& r) {
    if (!still_valid(r))
        return;
    if (!r->scan.begun()) {
        begin_pass(r);
        return;
    }
    // Pacing: what was handed over goes first (SYNC: repairs; VERIFY: compares).
    if (paced(*r)) {
        log_progress(false);
        wait_then(r, &bulk_sync::scan_step);
        return;
    }
    client::request req;
    if (r->opt.match.empty())
        req.push("SCAN", r->scan.cursor(), "COUNT", r->opt.count);
    else
        req.push("SCAN", r->scan.cursor(), "MATCH", r->opt.match, "COUNT", r->opt.count);
    auto b = st_.backends[static_cast<int>(scanned_side(*r))];
    b->exec_on(
        r->scan.node(), std::move(req),
        [self = shared_from_this(), r](client::result<replies_t> res) {
            asio::post(self->control_, [self, r, res = std::move(res)]() mutable {
                if (!self->still_valid(r))
                    return;
                if (!res || res->empty() || res->front().is_error() || res->front().size() != 2 ||
                    !res->front()[0].is_string() || !res->front()[1].is_aggregate()) {
                    self->scan_failed(r, !res ? "a backend did not answer SCAN"
                                              : (!res->empty() && res->front().is_error()
                                                     ? "SCAN failed: " + res->front().str()
                                                     : std::string("unexpected SCAN reply")));
                    return;
                }
                auto& reply = res->front();
                std::vector<std::string> keys;
                keys.reserve(reply[1].size());
                for (auto& k : reply[1].elements())
                    if (k.is_string())
                        keys.push_back(std::move(k.str()));
                const auto next = r->scan.advance(std::move(reply[0].str()));
                {
                    std::lock_guard lock(self->mu_);
                    if (r->generation == self->generation_) {
                        (r->extra_pass ? self->p_.extra_scanned : self->p_.scanned) += keys.size();
                        ++self->p_.batches;
                        if (next != keyspace_scan::step::page)
                            ++self->p_.nodes_scanned;
                    }
                }
                if (!r->extra_pass)
                    self->scanned_total_->inc(keys.size());
                self->handle_page(r, std::move(keys));
                self->log_progress(false);
                if (next != keyspace_scan::step::page) {
                    self->after_node(r, next);
                    return;
                }
                if (r->scan.cluster()) {
                    // The client's cached map (patched by MOVED, refreshed
                    // periodically): a change seen here need not wait for the node's end.
                    topology_view cached;
                    cached.cluster = true;
                    cached.map =
                        self->st_.backends[static_cast<int>(self->scanned_side(*r))]->topology();
                    if (auto why = r->scan.broken_by(cached)) {
                        self->rescan(r, *why);
                        return;
                    }
                }
                self->scan_step(r);
            });
        });
}

void bulk_sync::take_view(const run_ptr& r, std::move_only_function<void(topology_view)> then) {
    auto b = st_.backends[static_cast<int>(scanned_side(*r))];
    if (!b->is_cluster()) {
        asio::post(control_, [then = std::move(then)]() mutable { then(topology_view{}); });
        return;
    }
    // A fresh slot map, then CLUSTER NODES on each of its masters for the slots in migration.
    struct gather {
        std::mutex mu;
        topology_view view;
        std::size_t pending = 0;
        std::move_only_function<void(topology_view)> then;
    };
    auto g = std::make_shared<gather>();
    g->then = std::move(then);
    b->refresh_topology([self = shared_from_this(), b, g] {
        auto finish = [self, g] {
            asio::post(self->control_, [g] { g->then(std::move(g->view)); });
        };
        g->view.cluster = true;
        g->view.map = b->topology();
        if (!g->view.map.covers_all_slots())
            g->view.unsettled.emplace_back("not every slot is served");
        const auto masters = g->view.map.masters();
        if (masters.empty()) {
            g->view.unsettled.emplace_back("no master known");
            finish();
            return;
        }
        g->pending = masters.size();
        // Masters are named by their place in the slot map (addresses stay out of replies and
        // logs), slots in migration as CLUSTER NODES shows them ("[42->-<node id>]").
        for (std::size_t i = 0; i < masters.size(); ++i) {
            client::request req;
            req.push("CLUSTER", "NODES");
            b->exec_on(masters[i], std::move(req), [g, i, finish](client::result<replies_t> res) {
                std::lock_guard lock(g->mu);
                if (!res || res->empty() || !res->front().is_string()) {
                    g->view.unsettled.push_back(
                        fmt::format("master {} did not answer CLUSTER NODES", i + 1));
                } else {
                    for (auto& slot : migrations_in(res->front().str()))
                        g->view.unsettled.push_back(
                            fmt::format("master {} migrating {}", i + 1, slot));
                }
                if (--g->pending == 0)
                    finish();
            });
        }
    });
}

void bulk_sync::begin_pass(const run_ptr& r) {
    take_view(r, [self = shared_from_this(), r](topology_view view) {
        if (!self->still_valid(r))
            return;
        if (!view.unsettled.empty()) {
            const auto now = std::chrono::steady_clock::now();
            if (now - r->unsettled_logged >= k_log_every) {
                r->unsettled_logged = now;
                obs::log().warn("proxy {}_scan_waiting side={} reason=\"{}\"", self->prefix(),
                                side_name(self->scanned_side(*r)), fmt::join(view.unsettled, ", "));
            }
            self->wait_then(r, &bulk_sync::begin_pass, k_settle_wait);
            return;
        }
        r->scan.begin(std::move(view));
        self->scan_step(r);
    });
}

void bulk_sync::after_node(const run_ptr& r, keyspace_scan::step s) {
    if (!r->scan.cluster()) {
        next_pass_or_wait(r);
        return;
    }
    take_view(r, [self = shared_from_this(), r, s](topology_view view) {
        if (!self->still_valid(r))
            return;
        if (auto why = r->scan.broken_by(view)) {
            self->rescan(r, *why);
            return;
        }
        if (s == keyspace_scan::step::pass_done)
            self->next_pass_or_wait(r);
        else
            self->scan_step(r);
    });
}

void bulk_sync::next_pass_or_wait(const run_ptr& r) {
    if ((kind_ == kind::verify || r->opt.prune) && !r->extra_pass) {
        // Pass 2: keys only the other side has.
        r->extra_pass = true;
        r->scan.restart();
        scan_step(r);
        return;
    }
    {
        std::lock_guard lock(mu_);
        if (r->generation == generation_)
            p_.state = kind_ == kind::sync ? "repairing" : "checking";
    }
    wait_step(r);
}

void bulk_sync::rescan(const run_ptr& r, const std::string& why) {
    std::uint64_t n = 0;
    {
        std::lock_guard lock(mu_);
        if (r->generation == generation_)
            n = ++p_.rescans;
    }
    rescans_total_->inc();
    obs::log().warn("proxy {}_rescan side={} pass={} rescans={} reason=\"{}\"", prefix(),
                    side_name(scanned_side(*r)), r->extra_pass ? "extra" : "keys", n, why);
    r->scan.restart();
    scan_step(r);
}

void bulk_sync::scan_failed(const run_ptr& r, std::string why) {
    if (!r->scan.cluster()) {
        finish(r, "failed", std::move(why));
        return;
    }
    // A master that went away (failover, resharding) fails its SCAN: scanned again when the
    // topology shows the change, a failure otherwise.
    take_view(r, [self = shared_from_this(), r, why = std::move(why)](topology_view view) {
        if (!self->still_valid(r))
            return;
        if (auto changed = r->scan.broken_by(view))
            self->rescan(r, why + "; " + *changed);
        else
            self->finish(r, "failed", why);
    });
}

void bulk_sync::handle_page(const run_ptr& r, std::vector<std::string> keys) {
    if (keys.empty())
        return;
    if (kind_ == kind::sync && r->extra_pass) {
        prune_keys(r, std::move(keys));
    } else if (kind_ == kind::sync) {
        const std::vector<std::string_view> views(keys.begin(), keys.end());
        if (auto* f = st_.follower_of(r->source))
            f->mark_dirty(views, false);  // behind live repairs
    } else if (r->extra_pass) {
        check_extra_keys(r, std::move(keys));
    } else {
        verify_keys(r, std::move(keys));
    }
}

void bulk_sync::count_outcome(const run_ptr& r, shadow_outcome o) {
    switch (o) {
        case shadow_outcome::match:
        case shadow_outcome::match_after_recheck:
            add(r, &sync_progress::matched);
            break;
        case shadow_outcome::divergence:
            add(r, &sync_progress::diverged);
            break;
        case shadow_outcome::error:
            add(r, &sync_progress::errors);
            break;
        case shadow_outcome::unstable:
            add(r, &sync_progress::unstable);
            break;
    }
}

void bulk_sync::per_key(const run_ptr& r, std::string_view command, std::vector<std::string> keys,
                        per_key_fn then) {
    in_flight_ += keys.size();
    client::request req;
    for (const auto& k : keys)
        req.push(command, k);
    auto b = st_.backends[static_cast<int>(r->source)];
    b->exec(std::move(req), [keys = std::move(keys),
                             then = std::move(then)](client::result<replies_t> res) mutable {
        then(keys, res && res->size() == keys.size() ? &*res : nullptr);
    });
}

void bulk_sync::verify_keys(const run_ptr& r, std::vector<std::string> keys) {
    // TYPE of every key on the serving side, then the size of each collection (a big one is
    // compared in chunks), then the values and PTTLs.
    per_key(r, "TYPE", std::move(keys),
            [self = shared_from_this(), r](std::vector<std::string>& keys, const replies_t* t) {
                if (t == nullptr) {
                    self->add(r, &sync_progress::errors, keys.size());
                    self->in_flight_ -= keys.size();
                    return;
                }
                std::vector<verified_key> found;
                client::request sizes;
                for (std::size_t i = 0; i < keys.size(); ++i) {
                    std::string type = (*t)[i].str();
                    if (value_read(type, keys[i]).empty()) {
                        --self->in_flight_;  // gone since SCAN saw it
                        continue;
                    }
                    if (const auto size = size_command(type); !size.empty())
                        sizes.push(size, keys[i]);
                    found.push_back({std::move(keys[i]), std::move(type)});
                }
                if (found.empty())
                    return;
                if (sizes.empty()) {
                    self->compare_values(r, std::move(found));
                    return;
                }
                const std::size_t n_sizes = sizes.size();
                auto sb = self->st_.backends[static_cast<int>(r->source)];
                sb->exec(std::move(sizes), [self, r, n_sizes, found = std::move(found)](
                                               client::result<replies_t> res) mutable {
                    if (!res || res->size() != n_sizes) {
                        self->add(r, &sync_progress::errors, found.size());
                        self->in_flight_ -= found.size();
                        return;
                    }
                    std::size_t j = 0;
                    for (auto& k : found) {
                        if (size_command(k.type).empty())
                            continue;
                        std::int64_t n = 0;
                        k.chunked = (*res)[j++].to_int64(n) && n > 0 &&
                                    static_cast<std::uint64_t>(n) > self->chunk_of(k.type);
                    }
                    self->compare_values(r, std::move(found));
                });
            });
}

void bulk_sync::compare_values(const run_ptr& r, std::vector<verified_key> keys) {
    // A small key's whole value and every key's PTTL are read here and handed to the shadow
    // reader with the serving side's answer; a big key's value goes to the chunked compare.
    client::request reads;
    std::vector<std::vector<std::string>> args;
    for (const auto& k : keys) {
        if (!k.chunked) {
            auto read = value_read(k.type, k.key);
            reads.push_args(read);
            args.push_back(std::move(read));
        }
        reads.push("PTTL", k.key);
        args.push_back({"PTTL", k.key});
    }
    auto sb = st_.backends[static_cast<int>(r->source)];
    sb->exec(std::move(reads), [self = shared_from_this(), r, keys = std::move(keys),
                                args = std::move(args)](client::result<replies_t> served) mutable {
        if (!served || served->size() != args.size()) {
            self->add(r, &sync_progress::errors, keys.size());
            self->in_flight_ -= keys.size();
            return;
        }
        std::size_t j = 0;
        for (auto& k : keys) {
            // The key's two compares end it: the second one to finish lets it go, or, for a
            // stream whose value and TTL agree, starts the compare of its consumer groups.
            auto left = std::make_shared<std::atomic<int>>(2);
            auto all_agreed = std::make_shared<std::atomic<bool>>(true);
            auto done = [self, r, left, all_agreed, stream = k.type == "stream",
                         key = k.key](shadow_outcome o) {
                self->count_outcome(r, o);
                if (!agreed(o))
                    all_agreed->store(false);
                if (left->fetch_sub(1) != 1)
                    return;
                if (stream && all_agreed->load())
                    self->compare_stream_groups(r, key);
                else
                    --self->in_flight_;
            };
            const std::size_t n = k.chunked ? 1 : 2;
            self->add(r, &sync_progress::compared, 2);
            if (k.chunked) {
                self->add(r, &sync_progress::chunked);
                self->chunked_total_->inc();
                compare_chunked(
                    self->st_, r->source, k.key, std::move(k.type),
                    std::max<std::size_t>(1, self->chunk_of(k.type)),
                    [self, r] { return self->cancelled(*r); }, done);
            }
            for (std::size_t e = j + n; j < e; ++j)
                self->st_.shadows->compare(r->source, std::move(args[j]), std::move((*served)[j]),
                                           done);
        }
    });
}

void bulk_sync::compare_stream_groups(const run_ptr& r, const std::string& key) {
    // Still the key's turn in flight: its group reads run one after the other, then let it go.
    compare_groups(
        st_, r->source, key, [self = shared_from_this(), r] { return self->cancelled(*r); },
        [self = shared_from_this(), r](shadow_outcome o) {
            self->add(r, &sync_progress::compared);
            self->count_outcome(r, o);
        },
        [self = shared_from_this(), r](std::size_t groups) {
            if (groups > 0) {
                self->add(r, &sync_progress::groups_compared, groups);
                self->groups_total_->inc(groups);
            }
            --self->in_flight_;
        });
}

bool bulk_sync::cancelled(const run& r) const {
    std::lock_guard lock(mu_);
    return r.generation != generation_;
}

void bulk_sync::check_extra_keys(const run_ptr& r, std::vector<std::string> keys) {
    // A key the other side has and the serving side does not: extra_data, once the follower
    // applied what it held for the key (a DEL on its way is not a divergence).
    per_key(r, "EXISTS", std::move(keys),
            [self = shared_from_this(), r](std::vector<std::string>& keys, const replies_t* e) {
                if (e == nullptr) {
                    self->add(r, &sync_progress::errors, keys.size());
                    self->in_flight_ -= keys.size();
                    return;
                }
                for (std::size_t i = 0; i < keys.size(); ++i) {
                    if ((*e)[i].type() == resp::type::integer && (*e)[i].integer() != 0) {
                        --self->in_flight_;  // on both sides: pass 1 compared it
                        continue;
                    }
                    // Writes that begin after this are not waited for below: one that does
                    // (APPEND then DEL, while the follower still holds the DEL) makes the key
                    // unstable rather than extra.
                    auto* follower = self->st_.follower_of(r->source);
                    const auto generation =
                        follower == nullptr ? 0 : follower->write_generation(keys[i]);
                    auto recheck = [self, r, key = keys[i], generation] {
                        client::request again;
                        again.push("EXISTS", key);
                        auto sb = self->st_.backends[static_cast<int>(r->source)];
                        auto ob = self->st_.backends[static_cast<int>(other_side(r->source))];
                        sb->exec(std::move(again), [self, r, ob, key,
                                                    generation](client::result<replies_t> s) {
                            client::request on_other;
                            on_other.push("TYPE", key);
                            const bool gone_here = s && !s->empty() &&
                                                   s->front().type() == resp::type::integer &&
                                                   s->front().integer() == 0;
                            if (!gone_here) {
                                --self->in_flight_;
                                return;
                            }
                            ob->exec(std::move(on_other), [self, r, key, generation](
                                                              client::result<replies_t> o) {
                                auto* f = self->st_.follower_of(r->source);
                                if (f != nullptr && f->write_generation(key) != generation) {
                                    self->add(r, &sync_progress::unstable);
                                } else if (o && !o->empty() && o->front().is_string() &&
                                           o->front().str() != "none") {
                                    self->add(r, &sync_progress::extra_keys);
                                    if (self->st_.divergences) {
                                        divergence d;
                                        d.kind = divergence_kind::extra_data;
                                        d.command = "exists";
                                        d.key = display(key);
                                        // Only the side written to has it.
                                        set_values(d, r->source, "(none)", "a " + o->front().str());
                                        d.at = std::chrono::system_clock::now();
                                        self->st_.divergences->report(d);
                                    }
                                }
                                --self->in_flight_;
                            });
                        });
                    };
                    // Once no write to the key is in flight on the serving side and the follower
                    // applied what it held: a DEL executed there whose reply had not reached the
                    // proxy yet would be queued only after a plain when_applied() fired. A key
                    // written all along is unstable, not extra.
                    when_settled(
                        self->st_.control, self->st_.follower_of(r->source), keys[i],
                        [self, r, recheck = std::move(recheck)](bool settled) mutable {
                            if (settled) {
                                recheck();
                                return;
                            }
                            self->add(r, &sync_progress::unstable);
                            --self->in_flight_;
                        },
                        std::chrono::steady_clock::now() + std::chrono::seconds(2));
                }
            });
}

void bulk_sync::prune_keys(const run_ptr& r, std::vector<std::string> keys) {
    // Keys of the follower the serving side does not have: repaired like any dirty key, which
    // deletes them there (the repair copies the serving side's state, and it has none). A key
    // created meanwhile is copied instead, and a write in flight to it is waited for.
    per_key(r, "EXISTS", std::move(keys),
            [self = shared_from_this(), r](std::vector<std::string>& keys, const replies_t* e) {
                if (e == nullptr) {
                    // Unknown: hand them all over, the repair decides from the serving side's
                    // state.
                    const std::vector<std::string_view> all(keys.begin(), keys.end());
                    if (auto* f = self->st_.follower_of(r->source))
                        f->mark_dirty(all, false);
                    self->in_flight_ -= keys.size();
                    return;
                }
                std::vector<std::string_view> missing;
                for (std::size_t i = 0; i < keys.size(); ++i)
                    if ((*e)[i].type() == resp::type::integer && (*e)[i].integer() == 0)
                        missing.emplace_back(keys[i]);
                if (!missing.empty()) {
                    if (auto* f = self->st_.follower_of(r->source))
                        f->mark_dirty(missing, false);
                    self->add(r, &sync_progress::extra_keys, missing.size());
                }
                self->in_flight_ -= keys.size();
            });
}

void bulk_sync::wait_step(const run_ptr& r) {
    // Every key was handed over; done when the last repair (SYNC) or compare (VERIFY) ended.
    if (!still_valid(r))
        return;
    if (settled(*r)) {
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
    const auto pct = p.percent();
    const auto eta = p.eta_seconds();
    const std::string where = fmt::format(
        "{}{}", pct ? fmt::format(" total={} percent={:.1f}", p.keys_total, *pct) : std::string(),
        eta ? fmt::format(" eta_seconds={:.0f}", *eta) : std::string());
    if (kind_ == kind::sync)
        obs::log().info(
            "proxy sync_progress state={} scanned={}{} repaired={} dirty={} seconds={:.1f}",
            p.state, p.scanned, where, p.repaired_since_start, p.dirty, p.elapsed_seconds);
    else
        obs::log().info(
            "proxy verify_progress state={} scanned={}{} compared={} matched={} diverged={} "
            "extra_keys={} seconds={:.1f}",
            p.state, p.scanned, where, p.compared, p.matched, p.diverged, p.extra_keys,
            p.elapsed_seconds);
}

}  // namespace respite::proxy::server
