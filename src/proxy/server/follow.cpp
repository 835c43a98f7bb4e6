// Glue to the follower (effects + replayer) and the shadow reader (see follow.hpp).
#include "follow.hpp"

#include <algorithm>
#include <array>
#include <optional>

#include <fmt/format.h>

#include <respite/cluster/slot.hpp>
#include <respite/obs/log.hpp>
#include <respite/proxy/divergence.hpp>
#include <respite/proxy/effects.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/proxy/string_pool.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/request_parser.hpp>
#include <respite/resp/writer.hpp>

#include "frames.hpp"
#include "shadow_reader.hpp"
#include "text.hpp"

namespace respite::proxy::server {

namespace {

// Views of a write's keys: on the stack for the usual few (no allocation on the hot path).
class key_views {
  public:
    explicit key_views(const std::vector<std::string>& keys) {
        if (keys.size() <= small_.size()) {
            std::ranges::copy(keys, small_.begin());
            views_ = std::span<const std::string_view>(small_.data(), keys.size());
        } else {
            big_.assign(keys.begin(), keys.end());
            views_ = big_;
        }
    }
    key_views(const key_views&) = delete;
    key_views& operator=(const key_views&) = delete;
    operator std::span<const std::string_view>()
        const noexcept {  // NOLINT(google-explicit-constructor)
        return views_;
    }

  private:
    std::array<std::string_view, 4> small_;
    std::vector<std::string_view> big_;
    std::span<const std::string_view> views_;
};

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

replay_item item_of(secondary_write&& w) {
    replay_item item;
    for (const auto& c : w.commands)
        item.commands.push_args(c);
    item.keys = std::move(w.keys);
    item.copy = w.copy;
    item.global = w.global;
    item.expect_reply = w.expect_reply;
    item.expect_replies = std::move(w.expect_replies);
    return item;
}

// The follower of `serving` when the current mode follows that side, else nullptr.
replayer* active_follower(shared_state& st, side serving) {
    const auto plan = plan_of(st.current.load(std::memory_order_acquire));
    return plan.follower && plan.serving == serving ? st.follower_of(serving) : nullptr;
}

// The name under which writes of the script cache and the function library (SCRIPT LOAD,
// FUNCTION LOAD ...) are ordered among themselves. Not a keyspace-wide write: they touch no key,
// and a write of another client running at the same time does not make them ambiguous (before,
// every SCRIPT LOAD during traffic set full_resync_needed). Should the name turn dirty, its
// repair copies the primary's state of a key of that name (none: a DEL of nothing).
constexpr std::string_view k_library_key = "{respite-proxy}:script-and-function-library";

bool is_library_write(std::string_view name) noexcept {
    return name == "script|load" || name == "script|flush" || name == "function|load" ||
           name == "function|delete" || name == "function|flush" || name == "function|restore";
}

// Key strings of finished writes, reused by the next ones of this worker thread: most keys
// are longer than a std::string holds inline, so each write would allocate and free them.
thread_local string_pool spare_keys{1024, 256};

// Appends the keys a write touches (for PUBLISH/SPUBLISH the channel, which orders its
// messages; for library writes k_library_key); false when it names none (it is then ordered
// against every lane).
bool append_keys(const shared_state& st, const command_class& c,
                 std::span<const std::string_view> args, std::vector<std::string>& keys) {
    thread_local std::vector<std::size_t> positions;
    positions.clear();
    if (c.spec != nullptr)
        st.table.key_positions(*c.spec, args, positions);
    if (positions.empty() && c.spec != nullptr && args.size() > 1 &&
        (c.spec->name == "publish" || c.spec->name == "spublish"))
        positions.push_back(1);
    if (positions.empty() && c.spec != nullptr && is_library_write(c.spec->name)) {
        keys.emplace_back(k_library_key);
        return true;
    }
    for (auto i : positions)
        keys.push_back(spare_keys.take(args[i]));
    return !positions.empty();
}

std::shared_ptr<replayer> make_replayer(shared_state& st, side target) {
    const side source = other_side(target);
    replayer_config rc;
    rc.lanes = st.cfg.replay_lanes;
    rc.max_queued_bytes = st.cfg.replay_max_queued_bytes;
    rc.max_dirty_keys = st.cfg.replay_max_dirty_keys;
    rc.repair_rate = st.cfg.repair_rate;
    rc.rejected_retry_interval = st.cfg.replay_rejected_retry;
    rc.fence_after = st.cfg.repair_fence_after;
    rc.fence_max = st.cfg.repair_fence_max;
    if (st.cfg.restart_check_interval.count() > 0)
        rc.limits_check_interval = st.cfg.restart_check_interval;
    rc.metrics_target = side_name(target);
    const backend_config bc = st.backend_cfg(target);
    rc.cluster_target = bc.cluster;
    // Refused writes and copies go to Sentry too (per command, after the cooldown), as the
    // original proxy's "secondary_write_<cmd>" events; st.divergences is set before traffic.
    rc.on_write_error = [&st, target](std::string_view command, std::string_view error,
                                      std::size_t keys) {
        if (auto d = st.divergences)
            d->report(write_failure{std::string(command), std::string(side_name(target)),
                                    std::string(error), keys, std::chrono::system_clock::now()});
    };
    auto factory = [bc, target](asio::io_context& ioc, std::size_t lane) {
        client::client_config cc;
        cc.connection = bc.connection;
        cc.connection.queue_while_disconnected = false;
        // A write the lane gave up on (a timeout) is repaired by a copy: it must not run after
        // the copy on a connection the server still holds.
        cc.connection.kill_abandoned = true;
        cc.connections = 1;
        (void)lane;
        if (bc.cluster) {
            cluster::cluster_config k;
            k.seeds.push_back({bc.connection.host, bc.connection.port});
            k.seeds.insert(k.seeds.end(), bc.more_seeds.begin(), bc.more_seeds.end());
            k.connection = cc.connection;
            // In order: a retried TRYAGAIN let the lane's later writes of the key land first
            // (a silent divergence). Refused, the write turns its keys dirty and is copied.
            k.retry_tryagain = false;
            return make_cluster_backend(ioc, side_name(target), std::move(k));
        }
        return make_standalone_backend(ioc, side_name(target), std::move(cc));
    };
    return std::make_shared<replayer>(rc, st.backends[static_cast<int>(source)], factory,
                                      st.metrics);
}

}  // namespace

void recycle_keys(std::vector<std::string>& keys) {
    for (auto& k : keys)
        spare_keys.give(k);
    keys.clear();
}

std::expected<void, std::string> start_follow(shared_state& st) {
    if (!st.has_secondary())
        return {};
    st.replay_to[1] = make_replayer(st, side::secondary);
    st.replay_to[0] = make_replayer(st, side::primary);
    auto sink = make_divergence_sink(st);
    if (!sink && !st.cfg.sentry_dsn.empty())
        return std::unexpected("invalid --sentry-dsn");
    st.divergences = std::make_shared<divergence_reporter>(reporter_options{}, sink, *st.metrics);
    st.shadows = std::make_shared<shadow_reader>(st);
    return {};
}

void follow_serving(shared_state& st, side serving) {
    for (int t = 0; t < 2; ++t) {
        replayer* r = st.replay_to[t].get();
        if (r == nullptr)
            continue;
        const side target = t == 0 ? side::primary : side::secondary;
        const bool pause = other_side(target) != serving;  // it copies from the other side
        const auto x = r->snapshot();
        if (x.repairs_paused == pause)
            continue;
        if (!r->pause_repairs(pause))
            obs::log().warn(
                "proxy follower_pause_incomplete target={} (copies sent before the switch were "
                "still unanswered after 5 s: they may still land on the {})",
                side_name(target), side_name(target));
        if (x.dirty_keys == 0 && x.rejected_keys == 0)
            continue;
        if (pause)
            obs::log().error(
                "proxy follower_repairs_paused target={} dirty_keys={} rejected_keys={} (the {} "
                "lacks or may differ on these keys; their copies from the {}, which no longer "
                "serves, wait until it serves again)",
                side_name(target), x.dirty_keys, x.rejected_keys, side_name(target),
                side_name(other_side(target)));
        else
            obs::log().info(
                "proxy follower_repairs_resumed target={} dirty_keys={} rejected_keys={}",
                side_name(target), x.dirty_keys, x.rejected_keys);
    }
}

void stop_follow(shared_state& st, std::chrono::steady_clock::time_point deadline) {
    for (auto& r : st.replay_to) {
        if (!r)
            continue;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        const bool drained = r->drain(std::max(left, std::chrono::milliseconds(100)));
        const auto s = r->snapshot();
        if (!drained)
            obs::log().warn("proxy follower_not_drained queued={} dirty={}", s.queued_items,
                            s.dirty_keys);
    }
    if (st.shadows)
        st.shadows->stop();
    // The replayers live on until shared_state goes: shadow callbacks and the control thread
    // may still hold them until the backends are closed and the control thread joined.
}

bool following(shared_state& st, side serving) {
    return active_follower(st, serving) != nullptr;
}

bool follow_fenced(shared_state& st, side serving, const command_class& c,
                   std::span<const std::string_view> args) {
    replayer* r = active_follower(st, serving);
    if (r == nullptr || !r->fence_up()) [[likely]]
        return false;
    thread_local std::vector<std::string> keys;
    keys.clear();
    append_keys(st, c, args, keys);
    const auto views = key_views(keys);
    return r->fenced(views);
}

bool follow_begin(shared_state& st, side serving, const command_class& c,
                  std::span<const std::string_view> args, std::vector<std::string>& keys,
                  std::uint64_t origin, bool* verbatim, merge_hint* merge) {
    replayer* r = active_follower(st, serving);
    if (r == nullptr)
        return false;
    append_keys(st, c, args, keys);
    const auto views = key_views(keys);
    r->begin_write(views, origin, keys.empty());
    if (verbatim != nullptr) {
        *verbatim = reply_independent(c.spec, args);
        if (merge != nullptr)
            *merge = *verbatim ? merge_hint_of(c.spec, args) : merge_hint{};
    }
    return true;
}

namespace {
// The effect of a write read from its reply, queued. counted: `keys` (counted in flight) end
// with it; otherwise (a blocking command) nothing ends, and its keys are marked dirty here
// when its outcome is unknown.
void submit_effect(shared_state& st, replayer& r, std::string_view request, std::string_view frame,
                   std::span<const std::string_view> keys, bool global, bool counted) {
    const auto begun = counted ? keys : std::span<const std::string_view>{};
    thread_local resp::request_parser parser;
    thread_local std::vector<std::string_view> args;
    parser.reset();
    auto pr = parser.parse(request, args);
    auto reply = pr.complete && !args.empty() ? decode_frame(frame) : std::nullopt;
    if (!reply) {
        if (counted)
            r.abandon(begun, true, global);
        else
            r.mark_dirty(keys, false);
        return;
    }
    effect_context ctx{now_ms(), &st.table, st.cfg.copy_scripts, &st.scripts};
    auto w = translate(args, *reply, ctx);
    if (w.none()) {
        if (counted)
            r.abandon(begun, false, global);
        return;
    }
    auto item = item_of(std::move(w));
    item.global = global;  // end exactly what was begun
    r.submit(std::move(item), begun);
}
}  // namespace

void follow_reply(shared_state& st, side serving, std::string_view request,
                  const std::vector<std::string>& keys, bool global, bool verbatim,
                  std::string_view frame, int protocol, merge_hint merge) {
    (void)protocol;
    if (request.empty())
        return;
    replayer* r = st.follower_of(serving);
    if (r == nullptr)
        return;
    const auto begun = key_views(keys);
    if (verbatim) {
        // Fast path: the request bytes are the effect; nothing to parse or decode.
        if (is_error_frame(frame)) {
            r->abandon(begun, false, global);
            return;
        }
        r->submit_command(request, begun, global, merge, integer_frame(frame));
        return;
    }
    submit_effect(st, *r, request, frame, begun, global, true);
}

bool follow_begin_blocking(shared_state& st, side serving, const command_class& c,
                           std::span<const std::string_view> args, std::vector<std::string>& keys,
                           std::uint64_t origin, std::vector<std::uint64_t>& gens) {
    replayer* r = active_follower(st, serving);
    if (r == nullptr)
        return false;
    append_keys(st, c, args, keys);
    const auto views = key_views(keys);
    std::span<const std::string_view> v = views;
    r->begin_uncounted(v, origin);
    gens.clear();
    for (auto k : v)
        gens.push_back(r->write_generation(k));
    return true;
}

void follow_blocking_reply(shared_state& st, side serving, std::string_view request,
                           const std::vector<std::string>& keys,
                           const std::vector<std::uint64_t>& gens, std::string_view frame) {
    replayer* r = st.follower_of(serving);
    if (r == nullptr || request.empty())
        return;
    const auto views = key_views(keys);
    // A null reply (timed out) or an error wrote nothing.
    r->end_uncounted(views, gens,
                     !frame.empty() && !is_error_frame(frame) && !is_null_frame(frame));
    submit_effect(st, *r, request, frame, views, false, false);
}

void follow_blocking_abandon(shared_state& st, side serving, const std::vector<std::string>& keys,
                             bool outcome_unknown) {
    replayer* r = st.follower_of(serving);
    if (r == nullptr)
        return;
    const auto views = key_views(keys);
    r->abandon_uncounted(views, outcome_unknown);
}

bool follow_begin_transaction(shared_state& st, side serving,
                              const std::vector<std::vector<std::string>>& queued,
                              std::vector<std::string>& keys, bool& global, std::uint64_t origin) {
    replayer* r = active_follower(st, serving);
    if (r == nullptr)
        return false;
    global = false;
    for (const auto& q : queued) {
        std::vector<std::string_view> views(q.begin(), q.end());
        const auto c = (*st.classes)(views);
        if ((c.kind == route::write || c.kind == route::blocking) &&
            !append_keys(st, c, views, keys))
            global = true;
    }
    const auto begun = key_views(keys);
    r->begin_write(begun, origin, global);
    return true;
}

void follow_transaction(shared_state& st, side serving,
                        const std::vector<std::vector<std::string>>& queued,
                        const std::vector<std::string>& keys, bool global, std::string_view frame,
                        int protocol) {
    (void)protocol;
    replayer* r = st.follower_of(serving);
    if (r == nullptr || queued.empty())
        return;
    const auto begun = key_views(keys);
    auto reply = decode_frame(frame);
    if (!reply) {
        r->abandon(begun, true, global);
        return;
    }
    // Only a transaction that ran has an effect (an aborted WATCH is nil, EXECABORT an error).
    if (reply->type() != resp::type::array) {
        r->abandon(begun, false, global);
        return;
    }
    effect_context ctx{now_ms(), &st.table, st.cfg.copy_scripts, &st.scripts};
    auto w = translate_transaction(queued, *reply, ctx);
    if (w.none()) {
        r->abandon(begun, false, global);
        return;
    }
    auto item = item_of(std::move(w));
    item.atomic = true;
    item.global = global;  // end exactly what was begun
    r->submit(std::move(item), begun);
}

void follow_abandon(shared_state& st, side serving, const std::vector<std::string>& keys,
                    bool global, bool outcome_unknown) {
    replayer* r = st.follower_of(serving);
    if (r == nullptr)
        return;
    const auto begun = key_views(keys);
    r->abandon(begun, outcome_unknown, global);
    // A library write whose outcome is unknown (run by some masters of a cluster only): no key
    // copy restores a script cache or a function library.
    if (outcome_unknown && keys.size() == 1 && keys.front() == k_library_key)
        r->require_full_resync("a script or function library write with unknown outcome");
}

bool shadow_wanted(shared_state& st, const command_class& c,
                   std::span<const std::string_view> args) {
    return st.shadows && st.shadows->wanted(c, args);
}

void shadow_read(shared_state& st, side serving, std::vector<std::string> args,
                 std::string_view frame, int protocol) {
    (void)protocol;
    if (!st.shadows)
        return;
    auto reply = decode_frame(frame);
    if (!reply)
        return;
    st.shadows->compare(serving, std::move(args), std::move(*reply));
}

std::string follower_backlog(shared_state& st, side serving) {
    replayer* r = st.follower_of(serving);
    if (r == nullptr)
        return {};
    const auto s = r->snapshot();
    if (s.full_resync_needed)
        return "the follower needs a full resync (PROXY SYNC START PRUNE)";
    if (s.rejected_keys > 0)
        return follower_rejected(st, serving);
    if (s.queued_items > 0 || s.dirty_keys > 0)
        return "the follower is behind: " + std::to_string(s.queued_items) + " writes queued, " +
               std::to_string(s.dirty_keys) + " dirty keys";
    return {};
}

std::string follower_rejected(shared_state& st, side serving) {
    replayer* r = st.follower_of(serving);
    if (r == nullptr)
        return {};
    const auto n = r->snapshot().rejected_keys;
    if (n == 0)
        return {};
    const std::string target = side_name(other_side(serving));
    return fmt::format(
        "the {0} refused the copy of {1} keys (they are missing there; see "
        "replay_repair_rejected in the log and follow_{0}_rejected_keys; remove the cause, e.g. "
        "raise maxmemory, and wait for it to reach 0)",
        target, n);
}

std::string follow_info(const shared_state& st) {
    std::string s;
    auto line = [&](std::string_view k, const std::string& v) {
        s.append(k);
        s += ':';
        s += v;
        s += "\r\n";
    };
    const char* names[2] = {"primary", "secondary"};
    for (int t = 0; t < 2; ++t) {
        if (!st.replay_to[t])
            continue;
        const auto x = st.replay_to[t]->snapshot();
        const std::string p = std::string("follow_") + names[t] + "_";
        line(p + "queued_items", std::to_string(x.queued_items));
        line(p + "queued_bytes", std::to_string(x.queued_bytes));
        line(p + "lag_seconds", std::to_string(x.lag_seconds));
        line(p + "applied", std::to_string(x.applied));
        line(p + "merged", std::to_string(x.merged));
        line(p + "superseded", std::to_string(x.superseded));
        line(p + "failed", std::to_string(x.failed));
        line(p + "reply_mismatches", std::to_string(x.reply_mismatches));
        line(p + "dirty_keys", std::to_string(x.dirty_keys));
        line(p + "rejected_keys", std::to_string(x.rejected_keys));
        line(p + "repairs_rejected", std::to_string(x.repairs_rejected));
        line(p + "repaired", std::to_string(x.repaired));
        line(p + "dropped_to_dirty", std::to_string(x.dropped_to_dirty));
        line(p + "up", x.secondary_up ? "1" : "0");
        line(p + "lane_failures", std::to_string(x.lane_failures));
        line(p + "target_bulk_limit", std::to_string(x.target_bulk_limit));
        line(p + "fenced_copies", std::to_string(x.fenced_copies));
        line(p + "fence_timeouts", std::to_string(x.fence_timeouts));
        line(p + "full_resync_needed", x.full_resync_needed ? "1" : "0");
        line(p + "repairs_paused", x.repairs_paused ? "1" : "0");
        line(p + "repair_rate", std::to_string(x.repair_rate));
    }
    if (st.divergences) {
        const auto c = st.divergences->counts();
        line("divergence_migration_gap", std::to_string(c[0]));
        line("divergence_data_mismatch", std::to_string(c[1]));
        line("divergence_extra_data", std::to_string(c[2]));
        line("divergence_secondary_error", std::to_string(c[3]));
    }
    if (st.shadows)
        s += st.shadows->info();
    const auto& ps = st.pubsub_shadow;
    line("pubsub_shadow_matched", std::to_string(ps.matched.load()));
    line("pubsub_shadow_unverified", std::to_string(ps.unverified.load()));
    line("pubsub_shadow_late", std::to_string(ps.late.load()));
    line("pubsub_shadow_overflow", std::to_string(ps.overflow.load()));
    line("pubsub_shadow_refused_names", std::to_string(ps.refused_names.load()));
    return s;
}

}  // namespace respite::proxy::server

#include <respite/resp/writer.hpp>

#include "upstream.hpp"

namespace respite::proxy::server {

namespace {

// A write the proxy makes on its own (putting a popped value back): replayed like any other.
// The end of a put-back write: counted, logged, followed.
void finish_system_write(shared_state& st, side serving, const std::vector<std::string>& args,
                         const std::vector<std::string>& keys, bool follow,
                         std::string_view frame) {
    if (!frame.empty() && frame[0] == '-')
        obs::log().error("proxy push_back_failed command={} key={} reply={}", obs::quoted{args[0]},
                         obs::quoted{args.size() > 1 ? std::string_view(args[1]) : ""},
                         obs::quoted{frame.substr(0, 100)});
    else
        st.pushed_back->inc();
    if (follow) {
        std::string request;
        resp::append_command(request, key_views(args));
        follow_reply(st, serving, request, keys, keys.empty(), false, frame, 2);
    }
    st.writes_in_flight.fetch_sub(1);
}

class system_write final : public reply_sink {
  public:
    system_write(shared_state& st, side serving, std::vector<std::string> args,
                 std::vector<std::string> keys, bool follow)
        : st_(st),
          serving_(serving),
          args_(std::move(args)),
          keys_(std::move(keys)),
          follow_(follow) {}
    void on_reply(std::uint64_t, std::string_view frame) override {
        if ((frame.starts_with("-MOVED ") || frame.starts_with("-ASK ")) &&
            st_.backend_cfg(serving_).cluster) {
            // The slot moved since the map was read: the cluster client follows the redirect.
            client::request req;
            req.push_args(key_views(args_));
            st_.backends[static_cast<int>(serving_)]->exec(
                std::move(req),
                [st = &st_, serving = serving_, args = std::move(args_), keys = std::move(keys_),
                 follow = follow_](client::result<replies_t> r) {
                    std::string out;
                    if (r && !r->empty())
                        resp::append_value(out, r->front(), resp::protocol::resp2);
                    else
                        out = "-ERR proxy: serving backend unavailable\r\n";
                    finish_system_write(*st, serving, args, keys, follow, out);
                });
            return;
        }
        finish_system_write(st_, serving_, args_, keys_, follow_, frame);
    }
    void on_failure(std::uint64_t, bool written) override {
        obs::log().error("proxy push_back_failed command={} key={} reason=\"backend lost\"",
                         obs::quoted{args_[0]},
                         obs::quoted{args_.size() > 1 ? std::string_view(args_[1]) : ""});
        if (follow_)
            follow_abandon(st_, serving_, keys_, keys_.empty(), written);
        st_.writes_in_flight.fetch_sub(1);
    }

  private:
    shared_state& st_;
    side serving_;
    std::vector<std::string> args_;
    std::vector<std::string> keys_;
    bool follow_;
};

}  // namespace

// The commands that undo a blocking pop whose reply nobody received.
std::vector<std::vector<std::string>> undo_pop(const std::vector<std::string>& args,
                                               const resp::value& v) {
    std::vector<std::vector<std::string>> out;
    if (args.empty() || v.is_null() || v.is_error())
        return out;
    const auto name = lower_copy(args[0]);
    auto str = [](const resp::value& x) {
        if (x.type() == resp::type::double_)
            return resp::format_double(x.double_value());
        if (x.type() == resp::type::integer)
            return std::to_string(x.integer());
        return x.str();
    };
    if ((name == "blpop" || name == "brpop") && v.size() == 2) {
        out.push_back({name == "blpop" ? "LPUSH" : "RPUSH", str(v[0]), str(v[1])});
    } else if (name == "blmove" && args.size() >= 5 && v.is_string()) {
        out.push_back({"LMOVE", args[2], args[1], args[4], args[3]});
    } else if (name == "brpoplpush" && args.size() >= 3 && v.is_string()) {
        out.push_back({"LMOVE", args[2], args[1], "LEFT", "RIGHT"});
    } else if ((name == "bzpopmin" || name == "bzpopmax") && v.size() == 3) {
        out.push_back({"ZADD", str(v[0]), str(v[2]), str(v[1])});
    } else if (name == "blmpop" && v.size() == 2 && v[1].is_aggregate()) {
        // BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT n]: the end after the keys
        // (a key may be named "left").
        const auto numkeys = args.size() > 2 ? to_int(args[2]) : std::nullopt;
        const bool left = numkeys && *numkeys > 0 &&
                          static_cast<std::uint64_t>(*numkeys) + 3 < args.size() &&
                          client::iequals(args[static_cast<std::size_t>(*numkeys) + 3], "left");
        std::vector<std::string> cmd{left ? "LPUSH" : "RPUSH", str(v[0])};
        const auto& elems = v[1].elements();
        for (auto it = elems.rbegin(); it != elems.rend(); ++it)
            cmd.push_back(str(*it));
        out.push_back(std::move(cmd));
    } else if (name == "bzmpop" && v.size() == 2 && v[1].is_aggregate()) {
        std::vector<std::string> cmd{"ZADD", str(v[0])};
        const auto& elems = v[1].elements();
        for (std::size_t i = 0; i < elems.size(); ++i) {
            if (elems[i].is_aggregate() && elems[i].size() == 2) {
                cmd.push_back(str(elems[i][1]));
                cmd.push_back(str(elems[i][0]));
            } else if (i + 1 < elems.size()) {  // flat member, score pairs
                cmd.push_back(str(elems[i + 1]));
                cmd.push_back(str(elems[i]));
                ++i;
            }
        }
        if (cmd.size() > 2)
            out.push_back(std::move(cmd));
    }
    return out;
}

void push_back_popped(worker& w, side serving, const std::vector<std::string>& args,
                      std::string_view frame, int protocol) {
    (void)protocol;
    auto v = decode_frame(frame);
    if (!v)
        return;
    auto& st = w.shared();
    const bool cluster = st.backend_cfg(serving).cluster;
    for (auto& cmd : undo_pop(args, *v)) {
        // On a cluster, the master of the key's slot (an undo names keys of one slot only).
        std::shared_ptr<upstream> u;
        if (!cluster) {
            u = w.shared_upstream(serving, 2);
        } else if (auto node = w.master_of(serving, cluster::hash_slot(cmd[1]))) {
            u = w.node_upstream(serving, *node);
        }
        if (!u) {
            obs::log().error(
                "proxy push_back_failed command={} key={} reason=\"backend "
                "unavailable\"",
                obs::quoted{cmd[0]}, obs::quoted{cmd[1]});
            continue;
        }
        std::vector<std::string_view> views(cmd.begin(), cmd.end());
        const auto c = classify(views, st.table);
        std::vector<std::string> keys;
        const bool follow =
            follow_begin(st, serving, c, views, keys, reinterpret_cast<std::uintptr_t>(u.get()));
        st.writes_in_flight.fetch_add(1);
        std::string encoded;
        resp::append_command(encoded, views);
        u->send(encoded, std::make_shared<system_write>(st, serving, cmd, std::move(keys), follow),
                0);
        obs::log().info("proxy popped_value_restored command={} key={}", obs::quoted{cmd[0]},
                        obs::quoted{cmd[1]});
    }
}

}  // namespace respite::proxy::server
