// The replay engine: the inbox, the lanes, dirty keys and their repair, on one io_context thread.
#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <respite/client/error.hpp>
#include <respite/cluster/slot.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/replayer.hpp>

#include "dirty_set.hpp"
#include "lane_scheduler.hpp"
#include "pacing.hpp"
#include "stripe_table.hpp"

namespace respite::proxy {

using replay::dirty_set;
using replay::entry_id;
using replay::lane_scheduler;
using replay::log_limiter;
using replay::steady;
using replay::stripe_table;
using replay::token_bucket;

namespace {

constexpr auto tick_period = 100ms;
// Calls (pipelines or transactions) a lane keeps in flight on its connection.
constexpr std::size_t max_calls_in_flight = 8;
constexpr std::size_t max_repair_batch = 256;
constexpr std::uint64_t repair_progress_every = 10000;
constexpr auto repair_progress_period = 5s;
constexpr auto log_period = 5s;
constexpr std::size_t item_overhead = 128;  // bookkeeping per queued item, roughly
constexpr std::size_t key_overhead = 32;

std::size_t bytes_of(const replay_item& it) {
    std::size_t n = item_overhead + it.commands.payload().size();
    for (const auto& k : it.keys)
        n += k.size() + key_overhead;
    return n;
}

// A failure of the connection or of the server as a whole, as opposed to this item's reply.
bool is_transport(std::error_code ec) {
    if (ec.category() != client::client_category())
        return true;
    switch (static_cast<client::error>(ec.value())) {
        case client::error::server_error:
        case client::error::transaction_aborted:
        case client::error::invalid_argument:
        case client::error::unexpected_reply:
            return false;
        default:
            return true;
    }
}

// Items the secondary's ordered connection cannot carry: they would take a dedicated
// connection (blocking or connection-state commands) or are no writes at all.
bool replayable(const client::request& r) {
    return !r.has_pubsub() && !r.has_empty_command() && !r.has_connection_state() && !r.blocking();
}

// How completions from other threads reach the engine's io_context, only while it lives.
struct mailbox {
    std::mutex mu;
    asio::io_context* ioc = nullptr;

    template <class F>
    void post(F&& f) {
        std::lock_guard lock(mu);
        if (ioc != nullptr)
            asio::post(*ioc, std::forward<F>(f));
    }
};

enum class item_kind : std::uint8_t { write, repair };
enum class outcome : std::uint8_t { applied, error_reply, lost };

struct pending {
    replay_item item;
    std::size_t bytes = 0;
    steady::time_point enqueued{};
    item_kind kind = item_kind::write;
};

struct lane_waiter {
    std::size_t lane = 0;
    std::move_only_function<void()> fn;
};

struct metric_refs {
    obs::gauge& queue_items;
    obs::gauge& queue_bytes;
    obs::gauge& lag_seconds;
    obs::counter& applied;
    obs::counter& failed;
    obs::gauge& dirty_keys;
    obs::counter& repaired;
    obs::counter& repair_retries;
    obs::counter& dropped_to_dirty;
    obs::counter& abandoned;
    obs::gauge& up;
    obs::gauge& full_resync;

    metric_refs(obs::registry& r, const obs::labels& l)
        : queue_items(r.get_gauge("respite_proxy_follower_queue_items",
                                  "Secondary writes queued, not yet applied or failed", l)),
          queue_bytes(r.get_gauge("respite_proxy_follower_queue_bytes",
                                  "Bytes of queued secondary writes (lag in bytes)", l)),
          lag_seconds(r.get_gauge("respite_proxy_follower_lag_seconds",
                                  "Age of the oldest unapplied secondary write", l)),
          applied(r.get_counter("respite_proxy_follower_applied_total",
                                "Secondary writes and repairs the secondary accepted", l)),
          failed(r.get_counter("respite_proxy_follower_failed_total",
                               "Secondary writes answered with an error reply", l)),
          dirty_keys(r.get_gauge("respite_proxy_follower_dirty_keys",
                                 "Keys that may differ on the secondary, awaiting repair", l)),
          repaired(r.get_counter("respite_proxy_follower_repaired_total",
                                 "Keys copied from the primary to the secondary", l)),
          repair_retries(r.get_counter("respite_proxy_follower_repair_retries_total",
                                       "Repairs redone because a write began during the copy", l)),
          dropped_to_dirty(r.get_counter("respite_proxy_follower_dropped_to_dirty_total",
                                         "Secondary writes not replayed; their keys turned dirty",
                                         l)),
          abandoned(r.get_counter("respite_proxy_follower_abandoned_total",
                                  "Secondary writes pending when the replayer stopped", l)),
          up(r.get_gauge("respite_proxy_follower_up", "1 when every secondary lane answers", l)),
          full_resync(r.get_gauge("respite_proxy_follower_full_resync_needed",
                                  "1 when dirty-key tracking was lost: resync the secondary", l)) {}
};

}  // namespace

struct replayer::engine {
    // --- Shared with callers (atomics or guarded). ---
    replayer_config cfg;
    std::shared_ptr<backend> primary;
    metric_refs metrics;
    stripe_table stripes;
    std::unique_ptr<std::atomic<bool>[]> lane_up;

    std::atomic<bool> draining{false};
    std::atomic<bool> stopping{false};
    std::atomic<bool> full_resync{false};
    std::atomic<std::uint64_t> queued_items{0};
    std::atomic<std::uint64_t> queued_bytes{0};
    std::atomic<std::uint64_t> applied{0};
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> repaired{0};
    std::atomic<std::uint64_t> repair_retries{0};
    std::atomic<std::uint64_t> dropped{0};
    std::atomic<std::uint64_t> abandoned{0};
    std::atomic<std::int64_t> lag_us{0};

    std::mutex inbox_mu;
    std::vector<std::variant<pending, lane_waiter>> inbox;
    std::atomic<bool> wake_posted{false};

    mutable std::mutex dirty_mu;
    dirty_set dirty;
    std::uint64_t repairing = 0;  // keys taken from `dirty`, copy not yet applied (dirty_mu)
    std::atomic<bool> repair_posted{false};

    log_limiter drop_log{log_period};
    log_limiter error_log{log_period};
    log_limiter repair_log{log_period};

    // --- The replayer's thread only. The io_context outlives the lanes built on it. ---
    asio::io_context ioc;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    std::shared_ptr<mailbox> box = std::make_shared<mailbox>();
    lane_scheduler sched;
    std::unordered_map<entry_id, pending> items;

    struct call {
        std::uint64_t seq;
        steady::time_point sent;
    };
    struct lane_state {
        std::shared_ptr<backend> be;
        std::uint64_t epoch = 0;   // bumped when the lane fails: later completions are stale
        std::deque<call> calls;    // in flight in the current epoch, oldest first
        asio::steady_timer probe;  // while down
        std::deque<std::pair<entry_id, std::move_only_function<void()>>> waiters;
        explicit lane_state(asio::io_context& ioc) : probe(ioc) {}
    };
    std::vector<std::unique_ptr<lane_state>> lanes;

    asio::steady_timer tick_timer{ioc};
    asio::steady_timer repair_timer{ioc};
    asio::steady_timer drain_timer{ioc};
    token_bucket bucket;
    bool repair_reading = false;  // a DUMP/PTTL batch is out on the primary
    // Its keys (still wrong on the secondary). Written on the replayer thread under dirty_mu.
    std::unordered_set<std::string> reading_keys;
    bool repair_timer_armed = false;
    std::uint64_t call_seq = 0;
    std::uint64_t progress_logged_at = 0;
    steady::time_point progress_logged_time = steady::now();
    bool repair_announced = false;
    std::move_only_function<void(bool)> drain_done;

    std::thread thread;

    engine(replayer_config c, std::shared_ptr<backend> p, const secondary_factory& make,
           obs::registry* reg)
        : cfg(std::move(c)),
          primary(std::move(p)),
          metrics(reg != nullptr ? *reg : obs::registry::global(),
                  obs::labels{{"target", cfg.metrics_target}}),
          lane_up(std::make_unique<std::atomic<bool>[]>(std::max<std::size_t>(cfg.lanes, 1))),
          dirty(cfg.max_dirty_keys),
          work(asio::make_work_guard(ioc)),
          sched(std::max<std::size_t>(cfg.lanes, 1)),
          bucket(cfg.repair_rate, steady::now()) {
        cfg.lanes = std::max<std::size_t>(cfg.lanes, 1);
        cfg.max_batch = std::max<std::size_t>(cfg.max_batch, 1);
        box->ioc = &ioc;
        for (std::size_t l = 0; l < cfg.lanes; ++l) {
            auto ln = std::make_unique<lane_state>(ioc);
            ln->be = make(ioc, l);
            lanes.push_back(std::move(ln));
            lane_up[l].store(true);
        }
        metrics.up.set(1);
        metrics.full_resync.set(0);
        arm_tick();
        thread = std::thread([this] { ioc.run(); });
    }

    ~engine() { shutdown(); }

    [[nodiscard]] std::size_t lane_of(std::string_view key) const noexcept {
        return cluster::hash_slot(key) % cfg.lanes;
    }

    // ------------------------------------------------------------------ any thread

    void set_full_resync(std::string_view reason) {
        if (!full_resync.exchange(true)) {
            metrics.full_resync.set(1);
            obs::log().error("replay_full_resync_needed reason=\"{}\"", reason);
        }
    }

    void add_dirty(std::string_view key, bool urgent = false) {
        dirty_set::add_result r;
        {
            std::lock_guard lock(dirty_mu);
            r = dirty.add(key, urgent);
        }
        if (r == dirty_set::add_result::over_capacity)
            set_full_resync("dirty key set full");
    }

    template <class Keys>
    void add_dirty_keys(const Keys& keys, bool global, bool urgent = false) {
        for (const auto& k : keys)
            add_dirty(k, urgent);
        if (global)
            set_full_resync("keyspace-wide write not replayed");
        kick_repair();
    }

    void kick_repair() {
        if (!repair_posted.exchange(true))
            asio::post(ioc, [this] {
                repair_posted = false;
                repair_round();
            });
    }

    void wake() {
        if (!wake_posted.exchange(true))
            asio::post(ioc, [this] { process_inbox(); });
    }

    void begin(std::span<const std::string_view> keys, write_origin origin, bool global) {
        const bool global_busy = stripes.busy_for(stripe_table::global_stripe, origin);
        for (auto k : keys) {
            // Another origin's write to the stripe is in flight: the primary may apply the two
            // in either order, so the replayed order is a guess; the copy settles it.
            if (stripes.begin(stripe_table::stripe_of(k), origin) || global_busy)
                add_dirty(k);
        }
        if (global) {
            bool conflict = stripes.begin(stripe_table::global_stripe, origin);
            for (std::size_t s = 0; !conflict && s < stripe_table::stripes; ++s)
                conflict = stripes.busy_for(s, origin);
            if (conflict)
                set_full_resync("keyspace-wide write concurrent with writes of other clients");
        }
    }

    void end(std::span<const std::string_view> keys, bool global) {
        for (auto k : keys)
            stripes.end(stripe_table::stripe_of(k));
        if (global)
            stripes.end(stripe_table::global_stripe);
    }

    void drop_to_dirty(const replay_item& item, std::string_view reason) {
        dropped.fetch_add(1);
        metrics.dropped_to_dirty.inc();
        add_dirty_keys(item.keys, item.global);
        std::uint64_t suppressed = 0;
        if (drop_log.allow(suppressed))
            obs::log().warn("replay_dropped_to_dirty reason=\"{}\" keys={} suppressed={}", reason,
                            item.keys.size(), suppressed);
    }

    [[nodiscard]] bool lanes_up_for(const replay_item& item) const {
        if (item.global) {
            for (std::size_t l = 0; l < cfg.lanes; ++l)
                if (!lane_up[l].load())
                    return false;
            return true;
        }
        if (item.keys.empty())
            return lane_up[0].load();
        for (const auto& k : item.keys)
            if (!lane_up[lane_of(k)].load())
                return false;
        return true;
    }

    void submit(replay_item item, std::span<const std::string_view> begun) {
        const bool global = item.global;
        if (!item.commands.empty() && !replayable(item.commands)) {
            failed.fetch_add(1);
            metrics.failed.inc();
            std::uint64_t suppressed = 0;
            if (error_log.allow(suppressed))
                obs::log().warn(
                    "replay_item_rejected reason=\"blocking, pub/sub or connection-state "
                    "command\" suppressed={}",
                    suppressed);
            add_dirty_keys(item.keys, global);
        } else if (item.copy) {
            add_dirty_keys(item.keys, global, true);
            if (!item.commands.empty())
                enqueue_or_drop(std::move(item));
        } else if (!item.commands.empty()) {
            enqueue_or_drop(std::move(item));
        }
        end(begun, global);
    }

    void enqueue_or_drop(replay_item item) {
        if (draining.load()) {
            drop_to_dirty(item, "draining");
            return;
        }
        if (!lanes_up_for(item)) {
            drop_to_dirty(item, "secondary down");
            return;
        }
        const std::size_t bytes = bytes_of(item);
        if (queued_bytes.fetch_add(bytes) + bytes > cfg.max_queued_bytes) {
            queued_bytes.fetch_sub(bytes);
            drop_to_dirty(item, "queue budget exceeded");
            return;
        }
        // Before the writer's end(): a repair must never see the stripe idle with this queued.
        for (const auto& k : item.keys)
            stripes.enqueue(stripe_table::stripe_of(k));
        if (item.global)
            stripes.enqueue(stripe_table::global_stripe);
        queued_items.fetch_add(1);
        {
            std::lock_guard lock(inbox_mu);
            inbox.emplace_back(pending{std::move(item), bytes, steady::now(), item_kind::write});
        }
        wake();
    }

    void abandon(std::span<const std::string_view> keys, bool unknown, bool global) {
        if (unknown) {
            for (auto k : keys)
                add_dirty(k);
            if (global)
                set_full_resync("keyspace-wide write with unknown outcome");
            kick_repair();
        }
        end(keys, global);
    }

    void when_applied(std::string_view key, std::move_only_function<void()> fn) {
        {
            std::lock_guard lock(inbox_mu);
            inbox.emplace_back(lane_waiter{lane_of(key), std::move(fn)});
        }
        wake();
    }

    stats snapshot() const {
        stats s;
        s.queued_items = queued_items.load();
        s.queued_bytes = queued_bytes.load();
        s.applied = applied.load();
        s.failed = failed.load();
        s.repaired = repaired.load();
        s.repair_retries = repair_retries.load();
        s.dropped_to_dirty = dropped.load();
        s.abandoned = abandoned.load();
        {
            std::lock_guard lock(dirty_mu);
            s.dirty_keys = dirty.size() + repairing;
        }
        s.lag_seconds = static_cast<double>(lag_us.load()) / 1e6;
        s.secondary_up = true;
        for (std::size_t l = 0; l < cfg.lanes; ++l)
            s.secondary_up = s.secondary_up && lane_up[l].load();
        s.full_resync_needed = full_resync.load();
        return s;
    }

    // ------------------------------------------------------------------ replayer thread

    void process_inbox() {
        wake_posted = false;
        if (stopping)
            return;  // abandon_all() accounts for what is left
        std::vector<std::variant<pending, lane_waiter>> batch;
        {
            std::lock_guard lock(inbox_mu);
            batch.swap(inbox);
        }
        for (auto& msg : batch) {
            if (auto* p = std::get_if<pending>(&msg)) {
                enqueue(std::move(*p));
            } else {
                auto& w = std::get<lane_waiter>(msg);
                const entry_id upto = sched.last_id();
                if (sched.done_through(w.lane, upto))
                    w.fn();
                else
                    lanes[w.lane]->waiters.emplace_back(upto, std::move(w.fn));
            }
        }
        pump_all();
        check_drain();
    }

    std::vector<std::size_t> lanes_for(const replay_item& item) const {
        std::vector<std::size_t> out;  // empty: every lane
        if (item.global)
            return out;
        if (item.keys.empty()) {
            out.push_back(0);
            return out;
        }
        out.reserve(item.keys.size());
        for (const auto& k : item.keys)
            out.push_back(lane_of(k));
        return out;
    }

    void enqueue(pending p) {
        // A lane may have failed since submit() looked.
        if (!lanes_up_for(p.item)) {
            release(p);
            drop_to_dirty(p.item, "secondary down");
            return;
        }
        const auto l = lanes_for(p.item);
        const entry_id id = sched.push(l);
        items.emplace(id, std::move(p));
    }

    // Undoes the queue accounting of an item leaving the queue.
    void release(const pending& p) {
        for (const auto& k : p.item.keys)
            stripes.dequeue(stripe_table::stripe_of(k));
        if (p.item.global)
            stripes.dequeue(stripe_table::global_stripe);
        queued_bytes.fetch_sub(p.bytes);
        queued_items.fetch_sub(1);
    }

    void pump_all() {
        for (std::size_t l = 0; l < cfg.lanes; ++l)
            pump(l);
    }

    void pump(std::size_t l) {
        if (!lane_up[l].load() || stopping)
            return;
        auto& ln = *lanes[l];
        while (ln.calls.size() < max_calls_in_flight) {
            auto ids = sched.take_ready(l, cfg.max_batch);
            if (ids.empty())
                break;
            send(l, std::move(ids));
        }
    }

    // Consecutive plain items share one pipeline; a transaction is a call of its own. All go to
    // the lane's one connection in this order.
    void send(std::size_t l, std::vector<entry_id> ids) {
        client::request batch;
        std::vector<entry_id> group;
        auto flush = [&] {
            if (!group.empty())
                issue(l, false, std::exchange(batch, {}), std::exchange(group, {}));
        };
        for (auto id : ids) {
            auto& p = items.at(id);
            if (p.item.atomic) {
                flush();
                issue(l, true, p.item.commands, {id});
            } else {
                batch.append(p.item.commands);
                group.push_back(id);
            }
        }
        flush();
    }

    void issue(std::size_t l, bool atomic, client::request req, std::vector<entry_id> ids) {
        auto& ln = *lanes[l];
        const auto seq = ++call_seq;
        ln.calls.push_back({seq, steady::now()});
        auto cb = [this, b = box, l, epoch = ln.epoch, seq, atomic,
                   ids = std::move(ids)](client::result<replies> r) mutable {
            b->post(
                [this, l, epoch, seq, atomic, ids = std::move(ids), r = std::move(r)]() mutable {
                    on_call_done(l, epoch, seq, atomic, ids, std::move(r));
                });
        };
        if (atomic)
            ln.be->transaction(std::move(req), std::move(cb));
        else
            ln.be->exec(std::move(req), std::move(cb));
    }

    void on_call_done(std::size_t l, std::uint64_t epoch, std::uint64_t seq, bool atomic,
                      const std::vector<entry_id>& ids, client::result<replies> r) {
        if (stopping)
            return;
        auto& ln = *lanes[l];
        std::erase_if(ln.calls, [seq](const call& c) { return c.seq == seq; });
        const bool stale = epoch != ln.epoch;
        if (!r && is_transport(r.error())) {
            if (!stale)
                fail_lane(l, r.error().message());
            for (auto id : ids)
                finish(id, outcome::lost, r.error().message());
        } else if (stale) {
            // The lane failed meanwhile: its order is no longer known, the copy settles it.
            for (auto id : ids)
                finish(id, outcome::lost, "lane failed");
        } else if (!r) {
            for (auto id : ids)
                finish(id, outcome::error_reply, r.error().message());
        } else {
            const auto& reps = *r;
            std::size_t pos = 0;
            for (auto id : ids) {
                const auto it = items.find(id);
                const std::size_t n = it == items.end() ? 0
                                      : atomic          ? reps.size()
                                                        : it->second.item.commands.size();
                if (pos + n > reps.size()) {
                    finish(id, outcome::lost, "short reply");
                    continue;
                }
                const resp::value* err = nullptr;
                for (std::size_t i = pos; i < pos + n && err == nullptr; ++i)
                    if (reps[i].is_error())
                        err = &reps[i];
                pos += n;
                if (err != nullptr)
                    finish(id, outcome::error_reply, err->str());
                else
                    finish(id, outcome::applied, {});
            }
        }
        after_completions();
    }

    void finish(entry_id id, outcome o, std::string_view why) {
        sched.complete(id);
        auto node = items.extract(id);
        if (node.empty())
            return;
        pending& p = node.mapped();
        release(p);
        const bool repair = p.kind == item_kind::repair;
        switch (o) {
            case outcome::applied:
                applied.fetch_add(1);
                metrics.applied.inc();
                if (repair) {
                    repaired.fetch_add(1);
                    metrics.repaired.inc();
                    end_repair();
                } else if (read_a_dirty_key(p.item)) {
                    // What it wrote may derive from a wrong value (RENAME, LMOVE, SINTERSTORE, a
                    // transaction ...): its other keys need the copy too.
                    add_dirty_keys(p.item.keys, false);
                }
                break;
            case outcome::error_reply: {
                failed.fetch_add(1);
                metrics.failed.inc();
                std::uint64_t suppressed = 0;
                if (repair) {
                    // Not retried: a copy the secondary refuses (e.g. a DUMP format it does not
                    // know) would be refused forever.
                    end_repair();
                    obs::log().error("replay_repair_rejected error=\"{}\"", why);
                } else {
                    if (error_log.allow(suppressed))
                        obs::log().warn(
                            "replay_error_reply error=\"{}\" keys={} suppressed={} (keys "
                            "marked dirty)",
                            why, p.item.keys.size(), suppressed);
                    add_dirty_keys(p.item.keys, p.item.global);
                }
                break;
            }
            case outcome::lost:
                if (repair) {
                    redirty_repairing(p.item.keys.front());
                } else {
                    dropped.fetch_add(1);
                    metrics.dropped_to_dirty.inc();
                    add_dirty_keys(p.item.keys, p.item.global);
                }
                break;
        }
    }

    // A multi-key write just applied on the secondary while one of its keys was dirty there (a
    // race of origins marks the contended key when the second write begins, so before either
    // completes; an error reply, a lost write or a pending repair too). The other keys' values
    // may have been computed from it on the secondary. Checked when the item completes: every
    // mark that concerns the state it ran on has been made by then, and the dirty key cannot
    // have been repaired meanwhile (its stripe was in flight or queued throughout).
    [[nodiscard]] bool read_a_dirty_key(const replay_item& item) {
        if (item.keys.size() < 2)
            return false;  // a single key is already dirty, or nothing spreads
        for (const auto& k : item.keys)
            if (reading_keys.contains(k))
                return true;
        std::lock_guard lock(dirty_mu);
        return std::ranges::any_of(item.keys,
                                   [this](const std::string& k) { return dirty.contains(k); });
    }

    void after_completions() {
        for (std::size_t l = 0; l < cfg.lanes; ++l) {
            auto& w = lanes[l]->waiters;
            while (!w.empty() && sched.done_through(l, w.front().first)) {
                auto fn = std::move(w.front().second);
                w.pop_front();
                fn();
            }
        }
        pump_all();
        update_lag();
        check_drain();
    }

    void update_lag() {
        const entry_id oldest = sched.oldest();
        std::int64_t us = 0;
        if (oldest != 0) {
            if (auto it = items.find(oldest); it != items.end())
                us = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() -
                                                                           it->second.enqueued)
                         .count();
        }
        lag_us = us;
    }

    void fail_lane(std::size_t l, const std::string& why) {
        auto& ln = *lanes[l];
        ++ln.epoch;
        ln.calls.clear();
        lane_up[l].store(false);
        metrics.up.set(0);
        obs::log().warn("replay_lane_down lane={} error=\"{}\" (queued writes turn dirty)", l, why);
        for (auto id : sched.cancel_waiting(l))
            finish(id, outcome::lost, why);
        start_probe(l);
    }

    void start_probe(std::size_t l) {
        auto& ln = *lanes[l];
        ln.probe.expires_after(cfg.probe_interval);
        ln.probe.async_wait([this, l](std::error_code ec) {
            if (ec || stopping)
                return;
            lanes[l]->be->exec(client::cmd("PING"), [this, b = box, l](client::result<replies> r) {
                const bool ok = r && !r->empty() && !r->front().is_error();
                b->post([this, l, ok] { on_probe(l, ok); });
            });
        });
    }

    void on_probe(std::size_t l, bool ok) {
        if (stopping)
            return;
        if (!ok) {
            start_probe(l);
            return;
        }
        lane_up[l].store(true);
        bool all = true;
        for (std::size_t i = 0; i < cfg.lanes; ++i)
            all = all && lane_up[i].load();
        if (all)
            metrics.up.set(1);
        obs::log().info("replay_lane_up lane={}", l);
        pump(l);
        kick_repair();
    }

    // ---------------------------------------------------------------- repair

    struct candidate {
        std::string key;
        std::uint32_t generation;
        std::uint32_t global_generation;
    };

    void end_repair() {
        {
            std::lock_guard lock(dirty_mu);
            --repairing;
        }
        log_progress(false);
    }

    void redirty_repairing(const std::string& key) {
        dirty_set::add_result r;
        {
            std::lock_guard lock(dirty_mu);
            --repairing;
            r = dirty.add(key);
        }
        if (r == dirty_set::add_result::over_capacity)
            set_full_resync("dirty key set full");
    }

    void log_progress(bool force) {
        const auto done = repaired.load();
        std::uint64_t remaining = 0;
        {
            std::lock_guard lock(dirty_mu);
            remaining = dirty.size() + repairing;
        }
        const auto now = steady::now();
        if (remaining == 0 && repair_announced) {
            repair_announced = false;
            obs::log().info("replay_repair_done repaired={}", done);
            progress_logged_at = done;
            progress_logged_time = now;
            return;
        }
        if (remaining == 0)
            return;
        if (force || done - progress_logged_at >= repair_progress_every ||
            now - progress_logged_time >= repair_progress_period) {
            repair_announced = true;
            progress_logged_at = done;
            progress_logged_time = now;
            obs::log().info("replay_repair_progress repaired={} remaining={}", done, remaining);
        }
    }

    void repair_round() {
        if (stopping || draining || repair_reading || !primary)
            return;
        const auto now = steady::now();
        const std::size_t tokens = bucket.take(now, max_repair_batch);
        if (tokens == 0) {
            if (!repair_timer_armed) {
                repair_timer_armed = true;
                repair_timer.expires_after(bucket.wait_for_one(now));
                repair_timer.async_wait([this](std::error_code ec) {
                    repair_timer_armed = false;
                    if (!ec)
                        repair_round();
                });
            }
            return;
        }
        std::vector<candidate> picked;
        {
            std::lock_guard lock(dirty_mu);
            std::vector<std::string> deferred;
            const std::size_t scan_limit = tokens * 4;
            for (std::size_t scanned = 0; picked.size() < tokens && scanned < scan_limit;
                 ++scanned) {
                auto key = dirty.pop();
                if (!key)
                    break;
                const auto s = stripe_table::stripe_of(*key);
                // Order matters: in-flight first, then queued (a writer enqueues before it ends).
                const auto st = stripes.load(s);
                const auto gst = stripes.load(stripe_table::global_stripe);
                if (!lane_up[lane_of(*key)].load() || st.in_flight != 0 || gst.in_flight != 0 ||
                    stripes.queued(s) != 0 || stripes.queued(stripe_table::global_stripe) != 0) {
                    deferred.push_back(std::move(*key));
                    continue;
                }
                picked.push_back({std::move(*key), st.generation, gst.generation});
            }
            for (auto& k : deferred)
                dirty.add(k);
            repairing += picked.size();
        }
        bucket.give_back(tokens - picked.size());
        if (picked.empty())
            return;  // busy stripes or lanes down: the next tick retries
        if (!repair_announced)
            log_progress(true);
        client::request req;
        for (const auto& c : picked) {
            req.push("DUMP", c.key);
            req.push("PTTL", c.key);
        }
        repair_reading = true;
        {
            std::lock_guard lock(dirty_mu);  // awaiting_repair() reads it from other threads
            for (const auto& c : picked)
                reading_keys.insert(c.key);
        }
        primary->exec(std::move(req), [this, b = box, picked = std::move(picked)](
                                          client::result<replies> r) mutable {
            b->post([this, picked = std::move(picked), r = std::move(r)]() mutable {
                on_repair_read(std::move(picked), std::move(r));
            });
        });
    }

    void on_repair_read(std::vector<candidate> picked, client::result<replies> r) {
        repair_reading = false;
        {
            std::lock_guard lock(dirty_mu);
            reading_keys.clear();
        }
        if (stopping)
            return;
        const bool ok = r && r->size() == picked.size() * 2;
        if (!ok || draining) {
            for (const auto& c : picked)
                redirty_repairing(c.key);
            std::uint64_t suppressed = 0;
            if (!ok && repair_log.allow(suppressed))
                obs::log().warn("replay_repair_read_failed error=\"{}\" suppressed={}",
                                r ? std::string("short reply") : r.error().message(), suppressed);
            return;  // the next tick retries
        }
        for (std::size_t i = 0; i < picked.size(); ++i) {
            auto& c = picked[i];
            const auto& dump = (*r)[2 * i];
            const auto& pttl = (*r)[2 * i + 1];
            const auto s = stripe_table::stripe_of(c.key);
            const auto l = lane_of(c.key);
            if (stripes.load(s).generation != c.generation ||
                stripes.load(stripe_table::global_stripe).generation != c.global_generation) {
                // A write began since the read: the copy may predate it.
                repair_retries.fetch_add(1);
                metrics.repair_retries.inc();
                redirty_repairing(c.key);
                continue;
            }
            std::int64_t ttl = 0;
            if (!lane_up[l].load() || dump.is_error() || pttl.is_error() || !pttl.to_int64(ttl)) {
                std::uint64_t suppressed = 0;
                if ((dump.is_error() || pttl.is_error()) && repair_log.allow(suppressed))
                    obs::log().warn("replay_repair_read_error error=\"{}\" suppressed={}",
                                    dump.is_error() ? dump.str() : pttl.str(), suppressed);
                redirty_repairing(c.key);
                continue;
            }
            replay_item item;
            if (dump.is_null() || ttl == -2)
                item.commands.push("DEL", c.key);
            else
                item.commands.push("RESTORE", c.key, std::max<std::int64_t>(ttl, 0), dump.str(),
                                   "REPLACE");
            item.keys.push_back(std::move(c.key));
            pending p{std::move(item), 0, steady::now(), item_kind::repair};
            p.bytes = bytes_of(p.item);
            stripes.enqueue(s);
            queued_bytes.fetch_add(p.bytes);
            queued_items.fetch_add(1);
            // Same thread as the inbox: no submit can slip between the check and this push.
            const std::size_t lane_list[] = {l};
            items.emplace(sched.push(lane_list), std::move(p));
        }
        pump_all();
        kick_repair();
    }

    // ---------------------------------------------------------------- tick, drain, shutdown

    void arm_tick() {
        tick_timer.expires_after(tick_period);
        tick_timer.async_wait([this](std::error_code ec) {
            if (ec || stopping)
                return;
            tick();
            arm_tick();
        });
    }

    void tick() {
        const auto now = steady::now();
        for (std::size_t l = 0; l < cfg.lanes; ++l) {
            auto& ln = *lanes[l];
            if (lane_up[l].load() && !ln.calls.empty() &&
                now - ln.calls.front().sent > cfg.item_timeout)
                fail_lane(l, "timeout");
        }
        after_completions();
        publish();
        log_progress(false);
        bool have_dirty = false;
        {
            std::lock_guard lock(dirty_mu);
            have_dirty = !dirty.empty();
        }
        if (have_dirty)
            repair_round();
    }

    void publish() {
        const auto s = snapshot();
        metrics.queue_items.set(static_cast<double>(s.queued_items));
        metrics.queue_bytes.set(static_cast<double>(s.queued_bytes));
        metrics.lag_seconds.set(s.lag_seconds);
        metrics.dirty_keys.set(static_cast<double>(s.dirty_keys));
        metrics.up.set(s.secondary_up ? 1 : 0);
    }

    void start_drain(std::chrono::milliseconds budget, std::move_only_function<void(bool)> done) {
        if (drain_done)
            std::exchange(drain_done, nullptr)(false);
        drain_done = std::move(done);
        drain_timer.expires_after(budget);
        drain_timer.async_wait([this](std::error_code ec) {
            if (!ec && drain_done)
                finish_drain();
        });
        process_inbox();
    }

    [[nodiscard]] bool queue_empty() {
        std::lock_guard lock(inbox_mu);
        return items.empty() && inbox.empty();
    }

    void check_drain() {
        if (drain_done && queue_empty())
            finish_drain();
    }

    void finish_drain() {
        drain_timer.cancel();
        const bool empty = queue_empty();
        publish();
        if (!empty)
            obs::log().warn("replay_drain_incomplete queued_items={}", queued_items.load());
        std::exchange(drain_done, nullptr)(empty);
    }

    // On the replayer's thread: everything pending is counted abandoned, waiters are released.
    void abandon_all() {
        std::vector<std::variant<pending, lane_waiter>> rest;
        {
            std::lock_guard lock(inbox_mu);
            rest.swap(inbox);
        }
        std::uint64_t n = 0;
        std::size_t keys = 0;
        std::vector<std::move_only_function<void()>> fns;
        for (auto& msg : rest) {
            if (auto* p = std::get_if<pending>(&msg)) {
                ++n;
                keys += p->item.keys.size();
                release(*p);
            } else {
                fns.push_back(std::move(std::get<lane_waiter>(msg).fn));
            }
        }
        for (auto& [id, p] : items) {
            ++n;
            keys += p.item.keys.size();
            release(p);
        }
        items.clear();
        sched = lane_scheduler(cfg.lanes);
        for (auto& ln : lanes) {
            for (auto& w : ln->waiters)
                fns.push_back(std::move(w.second));
            ln->waiters.clear();
            ln->probe.cancel();
        }
        tick_timer.cancel();
        repair_timer.cancel();
        abandoned.fetch_add(n);
        metrics.abandoned.inc(n);
        const auto s = snapshot();
        if (n > 0)
            obs::log().error(
                "replay_stopped abandoned_items={} abandoned_keys={} dirty_keys={} (the "
                "secondary needs these keys copied)",
                n, keys, s.dirty_keys);
        else if (s.dirty_keys > 0)
            obs::log().warn("replay_stopped dirty_keys={} (not repaired)", s.dirty_keys);
        if (drain_done)
            std::exchange(drain_done, nullptr)(false);
        for (auto& fn : fns)
            fn();
        for (auto& ln : lanes)
            ln->be->close();
        publish();
    }

    void shutdown() {
        if (!thread.joinable())
            return;
        draining = true;
        std::promise<void> done;
        auto f = done.get_future();
        asio::post(ioc, [this, &done] {
            stopping = true;
            abandon_all();
            done.set_value();
        });
        f.wait();
        work.reset();
        ioc.stop();
        thread.join();
        std::lock_guard lock(box->mu);
        box->ioc = nullptr;
    }
};

replayer::replayer(replayer_config cfg, std::shared_ptr<backend> primary,
                   secondary_factory make_secondary, obs::registry* metrics)
    : engine_(
          std::make_unique<engine>(std::move(cfg), std::move(primary), make_secondary, metrics)) {}

replayer::~replayer() = default;

void replayer::begin_write(std::span<const std::string_view> keys, write_origin origin,
                           bool global) noexcept {
    try {
        engine_->begin(keys, origin, global);
    } catch (...) {
        engine_->full_resync.store(true);
    }
}

void replayer::submit(replay_item item, std::span<const std::string_view> begun_keys) {
    engine_->submit(std::move(item), begun_keys);
}

void replayer::abandon(std::span<const std::string_view> begun_keys, bool outcome_unknown,
                       bool global) {
    engine_->abandon(begun_keys, outcome_unknown, global);
}

void replayer::mark_dirty(std::span<const std::string_view> keys) {
    for (auto k : keys)
        engine_->add_dirty(k, true);
    engine_->kick_repair();
}

void replayer::when_applied(std::string_view key, std::move_only_function<void()> fn) {
    engine_->when_applied(key, std::move(fn));
}

void replayer::drain(std::chrono::milliseconds budget, std::move_only_function<void(bool)> done) {
    engine_->draining = true;
    asio::post(engine_->ioc, [e = engine_.get(), budget, d = std::move(done)]() mutable {
        e->start_drain(budget, std::move(d));
    });
}

bool replayer::drain(std::chrono::milliseconds budget) {
    std::promise<bool> p;
    auto f = p.get_future();
    drain(budget, [&p](bool ok) { p.set_value(ok); });
    return f.get();
}

replayer::stats replayer::snapshot() const {
    return engine_->snapshot();
}

std::size_t replayer::lane_of(std::string_view key) const noexcept {
    return engine_->lane_of(key);
}

bool replayer::awaiting_repair(std::string_view key) const {
    std::lock_guard lock(engine_->dirty_mu);
    return engine_->dirty.contains(key) || engine_->reading_keys.contains(std::string(key));
}

bool replayer::writes_in_flight(std::string_view key) const noexcept {
    return engine_->stripes.load(stripe_table::stripe_of(key)).in_flight > 0 ||
           engine_->stripes.load(stripe_table::global_stripe).in_flight > 0;
}

}  // namespace respite::proxy
