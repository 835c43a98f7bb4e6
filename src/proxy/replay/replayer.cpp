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

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <respite/client/command_info.hpp>
#include <respite/client/error.hpp>
#include <respite/cluster/slot.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/obs/thread_name.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/proxy/ring.hpp>
#include <respite/proxy/string_pool.hpp>

#include "dirty_set.hpp"
#include "lane_scheduler.hpp"
#include "merge.hpp"
#include "pacing.hpp"
#include "packed_keys.hpp"
#include "stripe_table.hpp"

namespace respite::proxy {

using replay::dirty_set;
using replay::entry_id;
using replay::lane_scheduler;
using replay::log_limiter;
using replay::longest_bulk;
using replay::packed_keys;
using replay::repair_batch_sizer;
using replay::restore_ttl;
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
// Bookkeeping per queued item, roughly. An applied item's slot in the window stays counted
// until every older item has left too (finish()): a lane that hangs holds the window's front, and
// the slots of the other lanes' applied items must not grow past the budget behind it.
// A slot: a `pending` (at most 128 bytes, asserted below) and the scheduler's node (about 56).
constexpr std::size_t item_overhead = 192;
constexpr std::size_t key_overhead = 32;

// A key as logged: its first bytes only (keys may be large; values are never logged).
std::string_view loggable(std::string_view key) {
    return key.substr(0, 128);
}

// An inbox buffer this large is given back once drained (a burst should not pin its memory).
constexpr std::size_t max_idle_inbox_bytes = 1 << 20;

// What an item counts against the queue budget.
template <class Keys>
std::size_t bytes_of(std::size_t command_bytes, const Keys& keys) {
    std::size_t n = item_overhead + command_bytes;
    for (const auto& k : keys)
        n += std::string_view(k).size() + key_overhead;
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
// superseded: not sent, as every key it writes awaits a copy from the primary (which brings its
// effect): a write racing another origin's, or behind a failed one.
enum class outcome : std::uint8_t { applied, error_reply, lost, superseded };

// An item on the replayer's thread: its commands (RESP) and its packed keys in one string.
struct pending {
    std::string data;
    std::size_t command_bytes = 0;
    std::size_t commands = 0;  // how many commands
    std::size_t key_count = 0;
    std::size_t bytes = 0;  // counted against the budget
    steady::time_point enqueued{};
    item_kind kind = item_kind::write;
    bool atomic = false;
    bool global = false;
    bool done = false;     // left the queue; its slot waits for the older ones to leave too
    bool on_wire = false;  // a repair copy handed to its lane's connection
    std::uint32_t pause_epoch = 0;  // a repair copy: pause_epoch when its DUMP was taken
    bool expects = false;           // `expect` holds the reply the command must get
    std::int64_t expect = 0;
    merge_hint merge;

    [[nodiscard]] std::string_view command_text() const noexcept {
        return {data.data(), command_bytes};
    }
    [[nodiscard]] packed_keys keys() const noexcept {
        return {std::string_view(data).substr(command_bytes), key_count};
    }
};
// A done slot's bytes stay counted as item_overhead (release(), retire()).
static_assert(sizeof(pending) <= 128);

// The first command of `text` (RESP) is PUBLISH or SPUBLISH.
bool publishes(std::string_view text) noexcept {
    const auto name = replay::first_name(text);
    return client::iequals(name, "publish") || client::iequals(name, "spublish");
}

struct lane_waiter {
    std::size_t lane = 0;
    std::move_only_function<void()> fn;
};

// What callers hand to the replayer's thread, in call order: items (their bytes in one buffer)
// and when_applied() waiters. The engine swaps a whole inbox under its mutex and keeps both
// buffers' capacity, so a handoff allocates nothing in the steady state and no per-item memory
// is allocated on one thread and freed on the other.
struct inbox {
    struct entry {
        std::size_t offset = 0;  // into bytes: the commands, then the packed keys
        std::size_t command_bytes = 0;
        std::size_t key_bytes = 0;
        std::size_t commands = 0;
        std::size_t key_count = 0;
        std::size_t bytes = 0;  // counted against the budget
        bool atomic = false;
        bool global = false;
        bool waiter = false;  // the next of `waiters`, not an item
        merge_hint merge;
        std::optional<std::int64_t> expect;
        // A transaction's expected replies (replay_item::expect_replies), after the keys in
        // `bytes`: a flag byte and 8 value bytes each.
        std::size_t expects = 0;
    };
    std::string bytes;
    std::vector<entry> entries;
    std::vector<lane_waiter> waiters;
    // When the first entry arrived: the enqueue time of every item (the lag errs on the old side
    // by at most one handoff).
    steady::time_point first{};

    [[nodiscard]] bool empty() const noexcept { return entries.empty(); }
    [[nodiscard]] packed_keys keys_of(const entry& e) const noexcept {
        return {std::string_view(bytes).substr(e.offset + e.command_bytes, e.key_bytes),
                e.key_count};
    }
    void clear() noexcept {
        bytes.clear();
        entries.clear();
        waiters.clear();
    }
};

struct metric_refs {
    obs::gauge& queue_items;
    obs::gauge& queue_bytes;
    obs::gauge& lag_seconds;
    obs::counter& applied;
    obs::counter& merged;
    obs::counter& superseded;
    obs::counter& failed;
    obs::counter& reply_mismatches;
    obs::gauge& dirty_keys;
    obs::counter& repaired;
    obs::counter& repair_retries;
    obs::counter& dropped_to_dirty;
    obs::counter& abandoned;
    obs::gauge& up;
    obs::gauge& full_resync;
    obs::gauge& rejected_keys;
    obs::counter& repairs_rejected;
    obs::counter& lane_failures;
    obs::counter& fenced_copies;
    obs::counter& fence_timeouts;

    metric_refs(obs::registry& r, const obs::labels& l)
        : queue_items(
              r.get_gauge("respite_proxy_follower_queue_items",
                          "Follower writes queued for the target, not yet applied or failed", l)),
          queue_bytes(r.get_gauge("respite_proxy_follower_queue_bytes",
                                  "Bytes of queued follower writes (lag in bytes)", l)),
          lag_seconds(r.get_gauge("respite_proxy_follower_lag_seconds",
                                  "Age of the oldest unapplied follower write", l)),
          applied(r.get_counter("respite_proxy_follower_applied_total",
                                "Follower writes and repairs the target accepted", l)),
          merged(r.get_counter("respite_proxy_follower_merged_total",
                               "Follower writes sent inside the command of the write before "
                               "them (SET+SET as MSET, LPUSH+LPUSH of a key as one LPUSH)",
                               l)),
          superseded(r.get_counter("respite_proxy_follower_superseded_total",
                                   "Follower writes not sent because every key they write "
                                   "awaits a copy from the serving side anyway",
                                   l)),
          failed(r.get_counter("respite_proxy_follower_failed_total",
                               "Follower writes the target answered with an error reply", l)),
          reply_mismatches(r.get_counter(
              "respite_proxy_follower_reply_mismatches_total",
              "Writes the follower's target answered with another integer than the serving side "
              "(DEL, INCR, LPUSH, EXPIRE ...): the sides differed on their keys, which are copied",
              l)),
          dirty_keys(r.get_gauge("respite_proxy_follower_dirty_keys",
                                 "Keys that may differ on the target, awaiting repair", l)),
          repaired(r.get_counter("respite_proxy_follower_repaired_total",
                                 "Keys copied from the serving side to the target", l)),
          repair_retries(r.get_counter("respite_proxy_follower_repair_retries_total",
                                       "Repairs redone because a write began during the copy", l)),
          dropped_to_dirty(r.get_counter("respite_proxy_follower_dropped_to_dirty_total",
                                         "Follower writes not replayed; their keys turned dirty",
                                         l)),
          abandoned(r.get_counter("respite_proxy_follower_abandoned_total",
                                  "Follower writes pending when the replayer stopped", l)),
          up(r.get_gauge("respite_proxy_follower_up",
                         "1 when every follower lane to the target answers", l)),
          full_resync(r.get_gauge("respite_proxy_follower_full_resync_needed",
                                  "1 when dirty-key tracking was lost: resync the target", l)),
          rejected_keys(r.get_gauge("respite_proxy_follower_rejected_keys",
                                    "Keys whose repair the target refused: missing there, "
                                    "retried slowly; a cut-over is refused while any remain",
                                    l)),
          repairs_rejected(r.get_counter("respite_proxy_follower_repairs_rejected_total",
                                         "Repairs the target answered with an error reply", l)),
          lane_failures(r.get_counter("respite_proxy_follower_lane_failures_total",
                                      "Follower lanes gone down (connection lost, timeout); "
                                      "their writes turned dirty",
                                      l)),
          fenced_copies(r.get_counter("respite_proxy_follower_fenced_copies_total",
                                      "Copies of keys written without a pause, read while new "
                                      "writes to them waited (at most --repair-fence-max)",
                                      l)),
          fence_timeouts(r.get_counter("respite_proxy_follower_fence_timeouts_total",
                                       "Write fences lifted because the writes in flight on the "
                                       "key did not end in time; copied later",
                                       l)) {}
};

}  // namespace

struct replayer::engine {
    // --- Shared with callers (atomics or guarded). ---
    replayer_config cfg;
    std::shared_ptr<backend> primary;
    metric_refs metrics;
    stripe_table stripes;
    std::unique_ptr<std::atomic<bool>[]> lane_up;
    std::atomic<bool> all_up{true};  // every lane_up: the hot path skips the per-key lane hash

    std::atomic<bool> draining{false};
    // No copies while the side they are read from does not serve (pause_repairs()). Every pause
    // moves the epoch: a copy read before it is dropped even if repairs resumed meanwhile (the
    // other side may have served newer values in between).
    std::atomic<bool> repairs_paused{false};
    std::atomic<std::uint32_t> pause_epoch{0};
    std::atomic<std::uint64_t> repairs_on_wire{0};  // copies sent, not yet answered
    // Calls still out on a lane that failed (by seq): what they carry may still land, until
    // their completion comes (the connection answered or failed; on a cluster target, after
    // every retry). Their items were counted lost, but their keys' stripes stay held in
    // queued_at, so no copy of those keys is read before then (it could land first, and the
    // late write would overwrite it unnoticed), and their copies stay in repairs_on_wire.
    struct stale_call {
        std::uint32_t copies = 0;
        std::vector<std::uint32_t> stripes;  // global_stripe for a keyspace-wide item
    };
    std::unordered_map<std::uint64_t, stale_call> stale_calls;
    std::atomic<bool> stopping{false};
    std::atomic<bool> full_resync{false};
    std::atomic<bool> keys_saved{false};  // the caller saved unapplied_keys() for the next run
    std::atomic<std::uint64_t> full_resync_events{0};  // every cause, also when already set
    // Cache lines apart: what callers write per write, what the replayer's thread writes per
    // item, and the handoff, so that no thread stalls on a line the other just wrote. The
    // replayer's thread gives back what left the queue once per batch (settle()).
    alignas(64) std::atomic<std::uint64_t> queued_items{0};
    std::atomic<std::uint64_t> queued_bytes{0};
    alignas(64) std::atomic<std::uint64_t> applied{0};
    std::atomic<std::uint64_t> merged{0};
    std::atomic<std::uint64_t> superseded{0};
    std::atomic<bool> copying_all{false};  // set_copying()
    std::atomic<std::uint64_t> failed{0};
    std::atomic<std::uint64_t> reply_mismatches{0};
    std::atomic<bool> reply_checks{true};
    // Transactions' expected replies by item (replayer thread), until the item finishes.
    std::unordered_map<entry_id, std::vector<std::optional<std::int64_t>>> tx_expects;
    // Blocking commands (BLPOP, BLMOVE ...) between begin_uncounted and their end, per stripe:
    // a push that wakes one is answered on the primary after the pop, which reaches the target
    // later, by another connection; such a key turns dirty at the pop's end (end_uncounted), and
    // a write's differing reply before that is no sign of anything else (not counted).
    std::unique_ptr<std::atomic<std::uint32_t>[]> blocked_on =
        std::make_unique<std::atomic<std::uint32_t>[]>(stripe_table::stripes);
    std::atomic<std::size_t> repair_rate{0};  // the bucket's rate (set on the replayer thread)
    std::atomic<std::uint64_t> repaired{0};
    std::atomic<std::uint64_t> repair_retries{0};
    std::atomic<std::uint64_t> repairs_rejected{0};
    std::atomic<std::uint64_t> dropped{0};
    std::atomic<std::uint64_t> abandoned{0};
    std::atomic<std::uint64_t> lane_failures{0};
    std::atomic<std::uint64_t> fenced_copies{0};
    std::atomic<std::uint64_t> fence_timeouts{0};
    // The stripe whose new writes wait while one of its keys is copied (no_fence: none). Read
    // by every write while following: its own cache line, written twice per fence.
    static constexpr std::uint64_t no_fence = ~std::uint64_t{0};
    alignas(64) std::atomic<std::uint64_t> fence_stripe{no_fence};
    // The target's proto-max-bulk-len (0: unknown, no check), read by read_bulk_limit().
    std::atomic<std::uint64_t> bulk_limit{0};
    std::atomic<std::int64_t> lag_us{0};

    alignas(64) std::mutex inbox_mu;
    inbox in;                  // inbox_mu
    bool wake_posted = false;  // inbox_mu: process_inbox() is posted or running

    alignas(64) mutable std::mutex dirty_mu;
    dirty_set dirty;
    std::uint64_t repairing = 0;  // keys taken from `dirty`, copy not yet applied (dirty_mu)
    // Their dirty_set numbers (dirty_mu): a copy that does not happen puts the key back with
    // it, and dirty_at_mark() counts them.
    std::unordered_map<std::string, std::uint64_t> repair_seq;
    std::atomic<bool> repair_posted{false};
    // Keys whose repair the target refused, with when to try again (dirty_mu). Not dirty: the
    // repair loop would retry them at full rate; a successful repair is what removes one.
    std::unordered_map<std::string, steady::time_point> rejected;

    log_limiter drop_log{log_period};
    log_limiter reject_log{log_period};
    log_limiter error_log{log_period};
    log_limiter mismatch_log{log_period};
    log_limiter repair_log{log_period};

    // --- The replayer's thread only. The io_context outlives the lanes built on it. ---
    // Left the queue (or applied) since the last settle().
    std::uint64_t unsettled_items = 0;
    std::uint64_t unsettled_bytes = 0;
    std::uint64_t unsettled_applied = 0;
    alignas(64) asio::io_context ioc;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    std::shared_ptr<mailbox> box = std::make_shared<mailbox>();
    lane_scheduler sched;
    inbox spare;  // the inbox being processed, then empty with its capacity kept
    // Every item pushed on `sched` and not yet out of it, by id: window[id - window_base].
    // Scheduler ids are consecutive, so a slot is found without hashing; completed slots leave
    // from the front.
    ring<pending> window;
    // Byte buffers of items that left the queue, reused by the next ones (no allocation per
    // item in the steady state).
    string_pool spare_data{1024, 4096};
    entry_id window_base = 1;
    std::size_t live_items = 0;         // slots not done
    std::vector<std::size_t> lane_buf;  // lanes_for()'s output
    // Items in `window` per stripe (the keyspace-wide one last): a repair waits for them.
    std::vector<std::uint32_t> queued_at = std::vector<std::uint32_t>(stripe_table::stripes + 1);

    // An item of a call and how many of the call's replies are its own (0: merged into the
    // command of the item before it, whose verdict it shares).
    struct sent_item {
        entry_id id;
        std::uint32_t replies;
    };
    struct call {
        std::uint64_t seq;
        steady::time_point sent;
        std::vector<sent_item> ids;
    };
    replay::merge_run run;            // send()'s, kept for its buffers' capacity
    bool renamed_merges_off = false;  // the target refused a renamed merge (check_merge_refused)
    struct lane_state {
        std::shared_ptr<backend> be;
        // In flight, oldest first. Emptied when the lane fails: a later completion of a call
        // that is not here is stale (its items were counted lost then).
        std::deque<call> calls;
        asio::steady_timer probe;  // while down
        // Keys of calls that ended in a transport error (a timeout, a lost connection): the
        // client gave up on them, but their writes may still run until the lane's next
        // connection has ended the old one on the server (kill_abandoned). Held until the probe
        // is answered on it.
        stale_call held_until_up;
        std::deque<std::pair<entry_id, std::move_only_function<void()>>> waiters;
        explicit lane_state(asio::io_context& ioc) : probe(ioc) {}
    };
    std::vector<std::unique_ptr<lane_state>> lanes;

    asio::steady_timer tick_timer{ioc};
    asio::steady_timer repair_timer{ioc};
    asio::steady_timer drain_timer{ioc};
    token_bucket bucket;
    // Keys per DUMP batch: about a quarter of the queue's budget in payloads (they were 256
    // whatever their size: 200 keys of 1 MB took the proxy from 13 to 684 MB).
    repair_batch_sizer batch_sizer;
    bool repair_reading = false;  // a DUMP/PTTL batch is out on the primary
    // Copies read the key's expiry as an absolute time (PEXPIRETIME, Redis >= 7.0) and restore
    // it with ABSTTL: a relative PTTL restored later would expire later by the lane's lag. A
    // source without PEXPIRETIME turns it off (PTTL from then on).
    bool absolute_ttl = true;
    // Its keys (still wrong on the secondary), from when they are taken out of `dirty` until
    // they are dirty again or their copy is queued. Written on the replayer thread under dirty_mu.
    std::unordered_set<std::string> reading_keys;
    bool repair_timer_armed = false;
    std::uint64_t call_seq = 0;
    std::uint64_t progress_logged_at = 0;
    steady::time_point progress_logged_time = steady::now();
    bool repair_announced = false;
    steady::time_point rejected_scan_at{};  // the next look for rejected keys due a retry
    steady::time_point bulk_limit_at{};     // the next read
    bool bulk_limit_reading = false;
    std::move_only_function<void(bool)> drain_done;
    // A drain also copies the dirty keys while the target is up (no writes come any more: the
    // copies race with nothing); without a state file they would stay different after the stop.
    bool drain_copying = false;
    std::uint64_t drain_dirty_at_start = 0;

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
          bucket(cfg.repair_rate, steady::now()),
          batch_sizer(max_repair_batch, cfg.max_queued_bytes / 4) {
        cfg.lanes = std::max<std::size_t>(cfg.lanes, 1);
        cfg.max_batch = std::max<std::size_t>(cfg.max_batch, 1);
        box->ioc = &ioc;
        repair_rate.store(cfg.repair_rate);
        for (std::size_t l = 0; l < cfg.lanes; ++l) {
            auto ln = std::make_unique<lane_state>(ioc);
            ln->be = make(ioc, l);
            lanes.push_back(std::move(ln));
            lane_up[l].store(true);
        }
        metrics.up.set(1);
        metrics.full_resync.set(0);
        arm_tick();
        thread = std::thread([this] {
            std::string name = "rp-follow-";  // "rp-follow-sec": 15 bytes at most
            name.append(cfg.metrics_target, 0, 3);
            obs::name_this_thread(name);
            // Off the clients' path: its wake-ups (replies from the target, the workers' posts)
            // must not preempt a worker. Measured: dual-write LPUSH at P=16 had 5x the worker's
            // involuntary context switches without it (bench/README.md, session 10).
            if (!obs::make_this_thread_background())
                obs::log().info(
                    "replay_thread_not_background target={} (SCHED_BATCH refused; the "
                    "follower competes with the workers on wake-up)",
                    cfg.metrics_target);
            ioc.run();
        });
    }

    ~engine() { shutdown(); }

    [[nodiscard]] std::size_t lane_of(std::string_view key) const noexcept {
        return cluster::hash_slot(key) % cfg.lanes;
    }

    // ------------------------------------------------------------------ any thread

    void set_full_resync(std::string_view reason) {
        full_resync_events.fetch_add(1);
        if (!full_resync.exchange(true)) {
            metrics.full_resync.set(1);
            obs::log().error("replay_full_resync_needed target={} reason=\"{}\"",
                             cfg.metrics_target, reason);
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

    // A blocking command starts: no count (its keys stay copyable while it waits), a moved
    // generation, and a race with a counted write of another origin makes its keys dirty.
    void begin_uncounted(std::span<const std::string_view> keys, write_origin origin) {
        const bool global_busy = stripes.busy_for(stripe_table::global_stripe, origin);
        for (auto k : keys) {
            const auto s = stripe_table::stripe_of(k);
            if (stripes.busy_for(s, origin) || global_busy)
                add_dirty(k);
            stripes.bump(s);
            blocked_on[s].fetch_add(1, std::memory_order_relaxed);
        }
    }

    // The blocking command's end (after its keys were marked dirty, if they must be).
    void unblocked(std::span<const std::string_view> keys) noexcept {
        for (auto k : keys) {
            auto& n = blocked_on[stripe_table::stripe_of(k)];
            std::uint32_t cur = n.load(std::memory_order_relaxed);
            while (cur > 0 && !n.compare_exchange_weak(cur, cur - 1, std::memory_order_relaxed)) {
            }
        }
    }

    [[nodiscard]] bool blocked(packed_keys keys) const noexcept {
        return std::ranges::any_of(keys, [this](std::string_view k) {
            return blocked_on[stripe_table::stripe_of(k)].load(std::memory_order_relaxed) > 0;
        });
    }

    void end(std::span<const std::string_view> keys, bool global) {
        for (auto k : keys)
            stripes.end(stripe_table::stripe_of(k));
        if (global)
            stripes.end(stripe_table::global_stripe);
    }

    template <class Keys>
    void drop_to_dirty(const Keys& keys, bool global, std::string_view reason) {
        dropped.fetch_add(1);
        metrics.dropped_to_dirty.inc();
        add_dirty_keys(keys, global);
        std::uint64_t suppressed = 0;
        if (drop_log.allow(suppressed))
            obs::log().warn("replay_dropped_to_dirty target={} reason=\"{}\" keys={} suppressed={}",
                            cfg.metrics_target, reason, keys.size(), suppressed);
    }

    template <class Keys>
    [[nodiscard]] bool lanes_up_for(const Keys& keys, bool global) const {
        if (all_up.load())
            return true;
        if (global) {
            for (std::size_t l = 0; l < cfg.lanes; ++l)
                if (!lane_up[l].load())
                    return false;
            return true;
        }
        if (keys.empty())
            return lane_up[0].load();
        for (const auto& k : keys)
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
                    "replay_item_rejected target={} reason=\"blocking, pub/sub or connection-state "
                    "command\" suppressed={}",
                    cfg.metrics_target, suppressed);
            add_dirty_keys(item.keys, global);
        } else if (item.copy) {
            add_dirty_keys(item.keys, global, true);
            if (!item.commands.empty())
                enqueue_or_drop(item.commands.payload(), item.commands.size(), item.keys,
                                item.atomic, global);
        } else if (!item.commands.empty()) {
            enqueue_or_drop(
                item.commands.payload(), item.commands.size(), item.keys, item.atomic, global, {},
                item.commands.size() == 1 && !item.atomic ? item.expect_reply : std::nullopt,
                item.atomic ? std::span<const std::optional<std::int64_t>>(item.expect_replies)
                            : std::span<const std::optional<std::int64_t>>{});
        }
        end(begun, global);
    }

    void submit_command(std::string_view command, std::span<const std::string_view> keys,
                        bool global, merge_hint merge, std::optional<std::int64_t> expect) {
        enqueue_or_drop(command, 1, keys, false, global, merge, expect);
        end(keys, global);
    }

    // Copies the item into the inbox (or turns its keys dirty); allocation-free once the inbox
    // buffers have grown.
    template <class Keys>
    void enqueue_or_drop(std::string_view commands, std::size_t count, const Keys& keys,
                         bool atomic, bool global, merge_hint merge = {},
                         std::optional<std::int64_t> expect = std::nullopt,
                         std::span<const std::optional<std::int64_t>> expects = {}) {
        if (draining.load()) {
            drop_to_dirty(keys, global, "draining");
            return;
        }
        if (!lanes_up_for(keys, global)) {
            drop_to_dirty(keys, global, "secondary down");
            return;
        }
        const std::size_t bytes = bytes_of(commands.size(), keys);
        if (queued_bytes.fetch_add(bytes) + bytes > cfg.max_queued_bytes) {
            queued_bytes.fetch_sub(bytes);
            drop_to_dirty(keys, global, "queue budget exceeded");
            return;
        }
        // In the inbox before the writer's end(): a repair that sees the stripe idle takes the
        // inbox before it looks at what is queued (repair_round()).
        queued_items.fetch_add(1);
        bool post = false;
        {
            std::lock_guard lock(inbox_mu);
            if (in.empty())
                in.first = steady::now();
            inbox::entry e;
            e.offset = in.bytes.size();
            e.command_bytes = commands.size();
            e.commands = count;
            e.key_count = keys.size();
            e.bytes = bytes;
            e.atomic = atomic;
            e.global = global;
            e.merge = merge;
            e.expect = expect;
            in.bytes.append(commands);
            for (const auto& k : keys)
                replay::append_packed_key(in.bytes, k);
            e.key_bytes = in.bytes.size() - e.offset - e.command_bytes;
            e.expects = expects.size();
            for (const auto& x : expects) {
                in.bytes.push_back(x ? '\1' : '\0');
                const std::int64_t v = x.value_or(0);
                in.bytes.append(reinterpret_cast<const char*>(&v), sizeof v);
            }
            in.entries.push_back(e);
            post = !std::exchange(wake_posted, true);
        }
        if (post)
            asio::post(ioc, [this] { process_inbox(); });
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
        bool post = false;
        {
            std::lock_guard lock(inbox_mu);
            if (in.empty())
                in.first = steady::now();
            inbox::entry e;
            e.waiter = true;
            in.entries.push_back(e);
            in.waiters.push_back(lane_waiter{lane_of(key), std::move(fn)});
            post = !std::exchange(wake_posted, true);
        }
        if (post)
            asio::post(ioc, [this] { process_inbox(); });
    }

    stats snapshot() const {
        stats s;
        s.queued_items = queued_items.load();
        s.queued_bytes = queued_bytes.load();
        s.applied = applied.load();
        s.merged = merged.load();
        s.superseded = superseded.load();
        s.failed = failed.load();
        s.reply_mismatches = reply_mismatches.load();
        s.repair_rate = repair_rate.load();
        s.repaired = repaired.load();
        s.repair_retries = repair_retries.load();
        s.repairs_rejected = repairs_rejected.load();
        s.dropped_to_dirty = dropped.load();
        s.abandoned = abandoned.load();
        s.lane_failures = lane_failures.load();
        s.fenced_copies = fenced_copies.load();
        s.fence_timeouts = fence_timeouts.load();
        s.target_bulk_limit = bulk_limit.load(std::memory_order_relaxed);
        {
            std::lock_guard lock(dirty_mu);
            s.dirty_keys = dirty.size() + repairing;
            s.rejected_keys = rejected.size();
        }
        s.lag_seconds = static_cast<double>(lag_us.load()) / 1e6;
        s.secondary_up = true;
        for (std::size_t l = 0; l < cfg.lanes; ++l)
            s.secondary_up = s.secondary_up && lane_up[l].load();
        s.full_resync_needed = full_resync.load();
        s.repairs_paused = repairs_paused.load();
        s.full_resync_events = full_resync_events.load();
        return s;
    }

    // The replayer's thread: the window and the inbox are read where they are written, the
    // dirty set and reading_keys under dirty_mu.
    unapplied collect_unapplied(std::size_t limit) {
        unapplied u;
        if (full_resync.load()) {
            u.complete = false;
            return u;
        }
        std::unordered_set<std::string> keys;
        const auto add = [&](std::string_view k) {
            if (keys.size() > limit)
                return;
            keys.emplace(k);
        };
        {
            std::lock_guard lock(dirty_mu);
            dirty.for_each(add);
            for (const auto& k : reading_keys)
                add(k);
            for (const auto& r : rejected)
                add(r.first);
        }
        for (std::size_t i = 0; i < window.size(); ++i) {
            const pending& p = window[i];
            if (p.done)
                continue;
            if (p.global)
                u.complete = false;
            for (auto k : p.keys())
                add(k);
        }
        {
            std::lock_guard lock(inbox_mu);
            for (const auto& e : in.entries) {
                if (e.waiter)
                    continue;
                if (e.global)
                    u.complete = false;
                for (auto k : in.keys_of(e))
                    add(k);
            }
        }
        if (!u.complete || keys.size() > limit) {
            u.complete = false;
            return u;
        }
        u.keys.reserve(keys.size());
        for (auto it = keys.begin(); it != keys.end();)
            u.keys.push_back(std::move(keys.extract(it++).value()));
        return u;
    }

    // ------------------------------------------------------------------ replayer thread

    // Posted by a caller that found this thread idle (see rearm()).
    void process_inbox() {
        if (stopping) {
            std::lock_guard lock(inbox_mu);
            wake_posted = false;
            return;  // abandon_all() accounts for what is left
        }
        take_inbox();
        pump_all();
        check_drain();
        rearm();
    }

    // Decides who takes the inbox next. Callers post only when wake_posted is false, and a post
    // costs them a system call and this thread a wake-up, so it stays true while this thread
    // will come back anyway: it reposts itself when more arrived, and while calls are in flight
    // their replies come here (after_completions() takes the inbox; the tick is the backstop).
    void rearm() {
        bool in_flight = false;
        for (const auto& ln : lanes)
            in_flight = in_flight || !ln->calls.empty();
        {
            std::lock_guard lock(inbox_mu);
            if (in.empty()) {
                if (!in_flight)
                    wake_posted = false;
                return;
            }
            wake_posted = true;
        }
        // More arrived meanwhile: take it after the completions already queued here.
        asio::post(ioc, [this] { process_inbox(); });
    }

    // Moves what callers handed over into the scheduler (or the waiters' lists).
    void take_inbox() {
        {
            std::lock_guard lock(inbox_mu);
            std::swap(in, spare);
        }
        std::size_t next_waiter = 0;
        const auto& entries = spare.entries;
        const auto prefetch = [&](std::size_t i) {
            if (i < entries.size() && !entries[i].waiter)
                prefetch_stripes(spare.keys_of(entries[i]));
        };
        for (std::size_t i = 0; i < k_prefetch_ahead; ++i)
            prefetch(i);
        for (std::size_t i = 0; i < entries.size(); ++i) {
            const auto& e = entries[i];
            prefetch(i + k_prefetch_ahead);
            if (!e.waiter) {
                enqueue(spare, e);
                continue;
            }
            auto& w = spare.waiters[next_waiter++];
            const entry_id upto = sched.last_id();
            if (sched.done_through(w.lane, upto)) {
                settle();
                w.fn();
            } else {
                lanes[w.lane]->waiters.emplace_back(upto, std::move(w.fn));
            }
        }
        spare.clear();
        if (spare.bytes.capacity() > max_idle_inbox_bytes)
            spare = inbox{};
    }

    // The lanes an item touches into lane_buf (empty: every lane).
    template <class Keys>
    void lanes_for(const Keys& keys, bool global) {
        lane_buf.clear();
        if (global)
            return;
        if (keys.empty()) {
            lane_buf.push_back(0);
            return;
        }
        for (const auto& k : keys)
            lane_buf.push_back(lane_of(k));
    }

    void enqueue(const inbox& box, const inbox::entry& e) {
        const auto keys = box.keys_of(e);
        // A lane may have failed since submit() looked.
        if (!lanes_up_for(keys, e.global)) {
            uncount(e.bytes);
            drop_to_dirty(keys, e.global, "secondary down");
            return;
        }
        pending p;
        p.data = spare_data.take(
            std::string_view(box.bytes).substr(e.offset, e.command_bytes + e.key_bytes));
        p.command_bytes = e.command_bytes;
        p.commands = e.commands;
        p.key_count = e.key_count;
        p.bytes = e.bytes;
        p.enqueued = box.first;
        p.atomic = e.atomic;
        p.global = e.global;
        p.merge = e.merge;
        p.expects = e.expect.has_value();
        p.expect = e.expect.value_or(0);
        const entry_id id = push_pending(std::move(p));
        if (e.expects != 0) {
            std::vector<std::optional<std::int64_t>> want(e.expects);
            const char* at = box.bytes.data() + e.offset + e.command_bytes + e.key_bytes;
            for (auto& w : want) {
                std::int64_t v = 0;
                std::memcpy(&v, at + 1, sizeof v);
                if (*at != 0)
                    w = v;
                at += 1 + sizeof v;
            }
            tx_expects.emplace(id, std::move(want));
        }
    }

    // queued_at is touched at random (a stripe per key) and is mostly out of the cache by the
    // time an item comes or goes: the loops over many items ask for their stripes ahead.
    static constexpr std::size_t k_prefetch_ahead = 8;
    static constexpr std::size_t k_prefetch_call = 64;  // the first items of a call's reply
    template <class Keys>
    void prefetch_stripes(const Keys& keys) const noexcept {
        for (auto k : keys)
            __builtin_prefetch(&queued_at[stripe_table::stripe_of(k)], 1);
    }

    // Schedules an item already counted in the queue.
    entry_id push_pending(pending p) {
        for (auto k : p.keys())
            ++queued_at[stripe_table::stripe_of(k)];
        if (p.global)
            ++queued_at[stripe_table::global_stripe];
        lanes_for(p.keys(), p.global);
        const entry_id id = sched.push(lane_buf);  // == window_base + window.size()
        window.push_back(std::move(p));
        ++live_items;
        return id;
    }

    // The queued item with this id, nullptr when it already left the queue.
    [[nodiscard]] pending* find(entry_id id) {
        if (id < window_base || id - window_base >= window.size())
            return nullptr;
        pending& p = window[id - window_base];
        return p.done ? nullptr : &p;
    }

    // Undoes the queue accounting of an item leaving the queue: the totals at the next settle(),
    // the stripes' counts at once.
    void uncount(std::size_t bytes) {
        unsettled_bytes += bytes;
        ++unsettled_items;
    }
    // The item leaves the queue; its slot's share (item_overhead) stays counted until the slot
    // leaves the window (retire()).
    void release(const pending& p) {
        for (auto k : p.keys())
            --queued_at[stripe_table::stripe_of(k)];
        if (p.global)
            --queued_at[stripe_table::global_stripe];
        uncount(p.bytes - item_overhead);
    }
    // Done slots leave from the window's front.
    void retire() {
        while (!window.empty() && window.front().done) {
            window.pop_front();
            ++window_base;
            unsettled_bytes += item_overhead;
        }
    }

    // Publishes the counts release() and finish() gathered; every handler that may release
    // calls it before it returns.
    void settle() {
        if (unsettled_items != 0) {
            queued_bytes.fetch_sub(std::exchange(unsettled_bytes, 0));
            queued_items.fetch_sub(std::exchange(unsettled_items, 0));
        }
        if (unsettled_applied != 0) {
            const auto n = std::exchange(unsettled_applied, 0);
            applied.fetch_add(n);
            metrics.applied.inc(n);
        }
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
    // the lane's one connection in this order. Consecutive items marked mergeable (merge_hint)
    // go as one command inside the pipeline: the first of them takes its reply, the others
    // share it.
    void send(std::size_t l, std::vector<entry_id> ids) {
        client::request batch;
        std::size_t bytes = 0;
        for (auto id : ids)
            bytes += find(id)->command_bytes;
        batch.reserve(bytes);
        std::vector<sent_item> group;
        bool any_dirty = false;
        {
            std::lock_guard lock(dirty_mu);
            any_dirty = !dirty.empty();
        }
        std::vector<entry_id> skipped;
        std::vector<entry_id> held_back;  // copies read before repairs were paused
        std::vector<entry_id> too_big;    // an argument over the target's proto-max-bulk-len
        const std::uint64_t limit = bulk_limit.load(std::memory_order_relaxed);
        const bool paused = repairs_paused.load();
        const std::uint32_t epoch = pause_epoch.load();
        auto end_run = [&] {
            const std::size_t n = run.size();
            if (n == 0)
                return;
            batch.append_encoded(run.take(), 1);
            if (n > 1) {
                merged.fetch_add(n - 1);
                metrics.merged.inc(n - 1);
            }
        };
        auto flush = [&] {
            end_run();
            if (!group.empty())
                issue(l, false, std::exchange(batch, {}), std::exchange(group, {}));
        };
        for (auto id : ids) {
            const pending& p = *find(id);  // taken from the scheduler: still queued
            if (any_dirty && is_superseded(p)) {
                skipped.push_back(id);
                continue;
            }
            if (limit != 0 && p.command_bytes > limit && longest_bulk(p.command_text()) > limit) {
                too_big.push_back(id);
                continue;
            }
            if (p.kind == item_kind::repair) {
                if (paused || p.pause_epoch != epoch) {
                    held_back.push_back(id);
                    continue;
                }
                find(id)->on_wire = true;
                repairs_on_wire.fetch_add(1);
            }
            if (p.atomic) {
                flush();
                client::request tx;
                tx.append_encoded(p.command_text(), p.commands);
                issue(l, true, std::move(tx), {{id, 0}});
                continue;
            }
            if (p.commands == 1 && p.merge.head != 0 &&
                !(renamed_merges_off && !p.merge.rename.empty())) {
                const std::uint32_t slot_group = merge_group(p);
                const bool joined = !run.empty() && run.add(p.command_text(), p.merge.head,
                                                            p.merge.rename, slot_group);
                if (joined) {
                    group.push_back({id, 0});
                    continue;
                }
                end_run();
                if (run.add(p.command_text(), p.merge.head, p.merge.rename, slot_group)) {
                    group.push_back({id, 1});
                    continue;
                }
            }
            end_run();
            batch.append_encoded(p.command_text(), p.commands);
            group.push_back({id, static_cast<std::uint32_t>(p.commands)});
        }
        flush();
        if (!skipped.empty() || !held_back.empty() || !too_big.empty()) {
            for (auto id : skipped)
                finish(id, outcome::superseded, {});
            for (auto id : held_back)
                finish(id, outcome::lost, {});  // the key waits in the dirty set
            for (auto id : too_big) {
                // Refused as the target would refuse it, but without losing the connection: a
                // write's keys turn dirty, and their copy (as long) is a rejected key.
                const auto why = fmt::format(
                    "proxy: an argument of {} bytes is over the target's proto-max-bulk-len "
                    "({}); not sent",
                    longest_bulk(find(id)->command_text()), limit);
                finish(id, outcome::error_reply, why);
            }
            settle();
            run_waiters();
        }
    }

    // An item merged into a renamed command (SET -> MSET) shares that command's error. When the
    // target refuses the command itself (its ACL lacks MSET: NOPERM; a server without it),
    // every merge would fail and turn its keys dirty: renamed merges stop for this replayer
    // and the writes go as they came.
    void check_merge_refused(entry_id id, std::string_view why) {
        if (renamed_merges_off)
            return;
        const pending* p = find(id);
        if (p == nullptr || p->merge.rename.empty())
            return;
        // The command itself, not a key outside the user's patterns ("... to access one of
        // the keys ..."), which a single SET would meet as well.
        const bool command_refused =
            (why.starts_with("NOPERM") && why.find("to run the") != std::string_view::npos) ||
            why.starts_with("ERR unknown command");
        if (!command_refused)
            return;
        renamed_merges_off = true;
        obs::log().warn(
            "replay_merge_refused target={} command={} error=\"{}\" (the target refuses the merged "
            "command: writes are sent one by one from now on; allow it to the follower's user "
            "to merge again after a restart)",
            cfg.metrics_target, p->merge.rename, why);
    }

    // Renamed merges join different keys: on a cluster target only within one hash slot
    // (slot + 1; an item whose keys span slots gets a group of its own, ~0).
    [[nodiscard]] std::uint32_t merge_group(const pending& p) const {
        if (!cfg.cluster_target || p.merge.rename.empty() || p.key_count == 0)
            return 0;
        std::optional<std::uint32_t> slot;
        for (auto k : p.keys()) {
            const std::uint32_t s = cluster::hash_slot(k);
            if (slot && *slot != s)
                return ~std::uint32_t{0};
            slot = s;
        }
        return *slot + 1;
    }

    void issue(std::size_t l, bool atomic, client::request req, std::vector<sent_item> ids) {
        auto& ln = *lanes[l];
        const auto seq = ++call_seq;
        ln.calls.push_back({seq, steady::now(), std::move(ids)});
        auto cb = [this, b = box, l, seq, atomic](client::result<replies> r) mutable {
            b->post([this, l, seq, atomic, r = std::move(r)]() mutable {
                on_call_done(l, seq, atomic, std::move(r));
            });
        };
        if (atomic)
            ln.be->transaction(std::move(req), std::move(cb));
        else
            ln.be->exec(std::move(req), std::move(cb));
    }

    void on_call_done(std::size_t l, std::uint64_t seq, bool atomic, client::result<replies> r) {
        if (stopping)
            return;
        auto& ln = *lanes[l];
        const auto it = std::ranges::find(ln.calls, seq, &call::seq);
        if (it == ln.calls.end()) {
            // The lane failed after it was sent: its items were counted lost then. Answered,
            // what it carried ran; given up on by the client, it may still run until the
            // lane's next connection fenced the old one.
            if (auto c = stale_calls.find(seq); c != stale_calls.end()) {
                stale_call held = std::move(c->second);
                stale_calls.erase(c);
                if (!r && is_transport(r.error())) {
                    move_hold(held, ln.held_until_up);  // given up on: see held_until_up
                    if (lane_up[l].load())
                        start_probe(l);  // back up meanwhile: a probe answered releases them
                } else {
                    release_hold(held);
                    kick_repair();
                }
            }
            return;
        }
        const std::vector<sent_item> ids = std::move(it->ids);
        ln.calls.erase(it);
        if (!r && is_transport(r.error())) {
            stale_call held = hold_items(ids);
            move_hold(held, ln.held_until_up);
            for (auto s : ids)
                finish(s.id, outcome::lost, r.error().message());
            fail_lane(l, r.error().message());
        } else if (!r) {
            for (auto s : ids)
                finish(s.id, outcome::error_reply, r.error().message());
        } else {
            for (std::size_t i = 0; i < ids.size() && i < k_prefetch_call; ++i)
                if (const pending* p = find(ids[i].id))
                    prefetch_stripes(p->keys());
            const auto& reps = *r;
            std::size_t pos = 0;
            // The verdict of the last reply taken: items merged into the command before them
            // (replies == 0) share it.
            outcome last = outcome::lost;
            std::string_view last_why = "short reply";
            for (std::size_t at = 0; at < ids.size(); ++at) {
                const sent_item s = ids[at];
                if (s.replies == 0 && !atomic) {
                    if (last == outcome::error_reply)
                        check_merge_refused(s.id, last_why);
                    finish(s.id, last, last_why);
                    continue;
                }
                const std::size_t n = atomic ? reps.size() : s.replies;
                if (pos + n > reps.size()) {
                    last = outcome::lost;
                    last_why = "short reply";
                    finish(s.id, last, last_why);
                    continue;
                }
                const resp::value* err = nullptr;
                for (std::size_t i = pos; i < pos + n && err == nullptr; ++i)
                    if (reps[i].is_error())
                        err = &reps[i];
                pos += n;
                // A command the primary answered with an integer (or a run of them merged into
                // this one): the same answer is expected here.
                if (err == nullptr && atomic)
                    check_transaction(s.id, reps);
                if (err == nullptr && n == 1 && !atomic) {
                    std::size_t end = at + 1;
                    while (end < ids.size() && ids[end].replies == 0)
                        ++end;
                    check_reply(std::span(ids).subspan(at, end - at), reps[pos - 1]);
                }
                last = err != nullptr ? outcome::error_reply : outcome::applied;
                last_why = err != nullptr ? err->str() : std::string_view{};
                finish(s.id, last, last_why);
            }
        }
        after_completions();
    }

    // The target answered a write with another integer than the primary did (a key expired
    // on one side and not yet on the other, a value changed behind the proxy's back ...): the
    // sides differ on its keys, which are copied. Counted unless the difference has a cause the
    // follower already handles: a key awaiting a copy, a blocking command on its keys (a pop
    // the target gets later), lost key tracking (full_resync_needed).
    // `run`: the item that took the reply and those merged into its command after it.
    void check_reply(std::span<const sent_item> run, const resp::value& reply) {
        const pending* first = find(run.front().id);
        if (first == nullptr || !first->expects || first->key_count == 0 || !reply_checks.load())
            return;
        const auto expect = merged_reply(run);
        if (!expect || (reply.type() == resp::type::integer && reply.integer() == *expect))
            return;
        // Merged items share the first one's key (their heads, name and key, are equal).
        differed(replay::first_name(first->command_text()), first->keys(), *expect, reply,
                 run.size() - 1);
    }

    // A transaction: each command's reply against the one expected (tx_expects).
    void check_transaction(entry_id id, const replies& reps) {
        const auto it = tx_expects.find(id);
        if (it == tx_expects.end() || !reply_checks.load())
            return;
        const pending* p = find(id);
        if (p == nullptr || p->key_count == 0)
            return;
        const auto& want = it->second;
        for (std::size_t i = 0; i < want.size() && i < reps.size(); ++i) {
            if (!want[i] ||
                (reps[i].type() == resp::type::integer && reps[i].integer() == *want[i]))
                continue;
            differed("MULTI", p->keys(), *want[i], reps[i], 0);
            return;
        }
    }

    // A write's reply differed from the serving side's: its keys are copied (unless they
    // already await one), and it is counted unless the cause is known (see check_reply).
    void differed(std::string_view command, packed_keys keys, std::int64_t expect,
                  const resp::value& reply, std::size_t merged) {
        if (awaits_copy(keys))
            return;
        add_dirty_keys(keys, false, true);
        if (blocked(keys) || full_resync.load())
            return;
        reply_mismatches.fetch_add(1);
        metrics.reply_mismatches.inc();
        std::uint64_t suppressed = 0;
        if (mismatch_log.allow(suppressed))
            obs::log().warn(
                "replay_reply_mismatch target={} command={} key={} keys={} serving_reply={} "
                "target_reply={} merged={} suppressed={} (the sides differed on its keys: copied "
                "from the serving side)",
                cfg.metrics_target, command, obs::quoted{loggable(keys.front())}, keys.size(),
                expect,
                reply.type() == resp::type::integer ? std::to_string(reply.integer())
                                                    : std::string("(not an integer)"),
                merged, suppressed);
    }

    // The reply the one command of a run of merged writes must get, from their own replies on
    // the primary: an LPUSH/RPUSH answers the list's last length, SADD/SREM/HSET/HDEL the sum
    // of what each added or removed. nullopt: not derivable (a renamed merge such as MSET, or
    // an item without an integer reply).
    [[nodiscard]] std::optional<std::int64_t> merged_reply(std::span<const sent_item> run) {
        const pending* first = find(run.front().id);
        if (run.size() == 1)
            return first->expect;
        if (!first->merge.rename.empty())
            return std::nullopt;
        const auto name = replay::first_name(first->command_text());
        const bool last = client::iequals(name, "lpush") || client::iequals(name, "rpush");
        const bool sum = client::iequals(name, "sadd") || client::iequals(name, "srem") ||
                         client::iequals(name, "hset") || client::iequals(name, "hdel");
        if (!last && !sum)
            return std::nullopt;
        std::int64_t total = 0;
        for (const auto& s : run) {
            const pending* p = find(s.id);
            if (p == nullptr || !p->expects)
                return std::nullopt;
            total = last ? p->expect : total + p->expect;
        }
        return total;
    }

    // A key of these is dirty, being read for its copy, or its fenced copy is still queued.
    [[nodiscard]] bool awaits_copy(packed_keys keys) {
        for (auto k : keys)
            if (reading_keys.contains(std::string(k)) ||
                (!copies_behind.empty() && copies_behind.contains(std::string(k))))
                return true;
        std::lock_guard lock(dirty_mu);
        return std::ranges::any_of(keys, [this](std::string_view k) { return dirty.contains(k); });
    }

    void finish(entry_id id, outcome o, std::string_view why) {
        sched.complete(id);
        if (!tx_expects.empty())
            tx_expects.erase(id);
        pending* found = find(id);
        if (found == nullptr)
            return;
        pending& p = *found;
        p.done = true;
        --live_items;
        if (p.on_wire)
            repairs_on_wire.fetch_sub(1);
        release(p);
        finish_item(p, o, why);
        spare_data.give(p.data);  // the slot may wait a while for older ones: its bytes go now
        retire();
    }

    void finish_item(const pending& p, outcome o, std::string_view why) {
        const bool repair = p.kind == item_kind::repair;
        if (repair && !copies_behind.empty())
            copies_behind.erase(std::string(p.keys().front()));
        switch (o) {
            case outcome::applied:
                ++unsettled_applied;
                if (repair) {
                    repaired.fetch_add(1);
                    metrics.repaired.inc();
                    end_repair(p.keys().front());
                } else if (read_a_dirty_key(p.keys()) || may_read_an_uncopied_key(p)) {
                    // What it wrote may derive from a wrong value (RENAME, LMOVE, SINTERSTORE, a
                    // transaction ...): its other keys need the copy too.
                    add_dirty_keys(p.keys(), false);
                }
                break;
            case outcome::error_reply: {
                failed.fetch_add(1);
                metrics.failed.inc();
                if (cfg.on_write_error)
                    cfg.on_write_error(
                        p.atomic ? std::string_view("multi") : replay::first_name(p.command_text()),
                        why, p.key_count);
                std::uint64_t suppressed = 0;
                if (repair) {
                    reject_repair(p.keys().front(), why);
                } else {
                    if (error_log.allow(suppressed))
                        obs::log().warn(
                            "replay_error_reply target={} error=\"{}\" keys={} suppressed={} (keys "
                            "marked dirty)",
                            cfg.metrics_target, why, p.key_count, suppressed);
                    add_dirty_keys(p.keys(), p.global);
                }
                break;
            }
            case outcome::lost:
                if (repair) {
                    redirty_repairing(p.keys().front());
                } else {
                    dropped.fetch_add(1);
                    metrics.dropped_to_dirty.inc();
                    add_dirty_keys(p.keys(), p.global);
                }
                break;
            case outcome::superseded:
                superseded.fetch_add(1);
                metrics.superseded.inc();
                break;
        }
    }

    // Every key the item writes is dirty: the copy of each, taken once nothing is queued or in
    // flight on its stripe (this item included), brings the primary's value with this write's
    // effect, so sending it is wasted work, and it may fail (XADD with an ID an earlier racing
    // write passed on the secondary). Keyspace-wide items and repairs are always sent.
    // A PUBLISH's key is its channel: a copy of a key of the same name brings no message back.
    [[nodiscard]] bool is_superseded(const pending& p) const {
        if (p.kind != item_kind::write || p.global || p.key_count == 0 ||
            publishes(p.command_text()))
            return false;
        std::lock_guard lock(dirty_mu);
        return std::ranges::all_of(p.keys(),
                                   [this](std::string_view k) { return dirty.contains(k); });
    }

    // A multi-key write just applied on the secondary while one of its keys was dirty there (a
    // race of origins marks the contended key when the second write begins, so before either
    // completes; an error reply, a lost write or a pending repair too). The other keys' values
    // may have been computed from it on the secondary. Checked when the item completes: every
    // mark that concerns the state it ran on has been made by then, and the dirty key cannot
    // have been repaired meanwhile (its stripe was in flight or queued throughout).
    // set_copying(): a multi-key write during a full copy may have read a key not copied yet.
    [[nodiscard]] bool may_read_an_uncopied_key(const pending& p) const {
        if (!copying_all.load() || p.key_count < 2)
            return false;
        if (p.atomic)
            return true;
        const auto name = replay::first_name(p.command_text());
        return !(client::iequals(name, "mset") || client::iequals(name, "del") ||
                 client::iequals(name, "unlink"));
    }

    [[nodiscard]] bool read_a_dirty_key(packed_keys keys) {
        if (keys.size() < 2)
            return false;  // a single key is already dirty, or nothing spreads
        return awaits_copy(keys);
    }

    void run_waiters() {
        for (std::size_t l = 0; l < cfg.lanes; ++l) {
            auto& w = lanes[l]->waiters;
            while (!w.empty() && sched.done_through(l, w.front().first)) {
                auto fn = std::move(w.front().second);
                w.pop_front();
                fn();
            }
        }
    }

    void after_completions() {
        settle();
        run_waiters();
        take_inbox();
        pump_all();
        update_lag();
        check_drain();
        rearm();
    }

    void update_lag() {
        const entry_id oldest = sched.oldest();
        std::int64_t us = 0;
        if (oldest != 0) {
            if (const pending* p = find(oldest))
                us = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() -
                                                                           p->enqueued)
                         .count();
        }
        lag_us = us;
    }

    // The lane's writes queued and in flight turn dirty now; in flight ones included, for
    // their connection may never answer (a black-holed secondary with --backend-timeout 0): they
    // would hold the window's front (and every other lane's items behind them) for good. What
    // they carry may still land, so their keys' stripes stay held until their call completes
    // (stale_calls): a copy of those keys is read only after that.
    void fail_lane(std::size_t l, const std::string& why) {
        auto& ln = *lanes[l];
        auto calls = std::exchange(ln.calls, {});
        lane_up[l].store(false);
        all_up.store(false);
        metrics.up.set(0);
        lane_failures.fetch_add(1);
        metrics.lane_failures.inc();
        obs::log().warn(
            "replay_lane_down target={} lane={} error=\"{}\" in_flight_calls={} (queued "
            "writes turn dirty)",
            cfg.metrics_target, l, why, calls.size());
        for (auto& c : calls) {
            // Held again before finish() releases them: the stripes and the copies on the
            // wire (pause_repairs waits for them) never read as free in between.
            stale_call held = hold_items(c.ids);
            if (held.copies != 0 || !held.stripes.empty())
                stale_calls.emplace(c.seq, std::move(held));
            for (auto s : c.ids)
                finish(s.id, outcome::lost, "lane failed");
        }
        if (stale_calls.size() > cfg.max_stale_calls)
            forget_stale_calls();
        for (auto id : sched.cancel_waiting(l))
            finish(id, outcome::lost, why);
        start_probe(l);
    }

    // Holds the stripes and copies on the wire of still-queued items about to be finished:
    // counted again before finish() releases them, so they never read as free in between.
    stale_call hold_items(const std::vector<sent_item>& ids) {
        stale_call held;
        for (auto s : ids) {
            const pending* p = find(s.id);
            if (p == nullptr)
                continue;
            if (p->on_wire)
                ++held.copies;
            for (auto k : p->keys())
                held.stripes.push_back(static_cast<std::uint32_t>(stripe_table::stripe_of(k)));
            if (p->global)
                held.stripes.push_back(stripe_table::global_stripe);
        }
        for (auto st : held.stripes)
            ++queued_at[st];
        repairs_on_wire.fetch_add(held.copies);
        return held;
    }
    void release_hold(stale_call& held) {
        repairs_on_wire.fetch_sub(held.copies);
        for (auto st : held.stripes)
            --queued_at[st];
        held = {};
    }
    static void move_hold(stale_call& from, stale_call& to) {
        to.copies += std::exchange(from.copies, 0);
        to.stripes.insert(to.stripes.end(), from.stripes.begin(), from.stripes.end());
        from.stripes.clear();
    }

    // Calls of failed lanes that never complete pile up only when a lane keeps failing on a
    // connection that never answers and never fails (a cluster target with one black-holed node
    // and --backend-timeout 0: another node answers the probe). Past cfg.max_stale_calls, the
    // holds go and the follower asks for a full resync instead: those writes may still land.
    void forget_stale_calls() {
        for (auto& [seq, held] : stale_calls)
            release_hold(held);
        set_full_resync(std::to_string(stale_calls.size()) +
                        " calls of failed lanes never completed; their writes may still land");
        stale_calls.clear();
        kick_repair();
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
        // Answered on the lane's current connection, which ended the abandoned one first: what
        // the lane gave up on can no longer run.
        release_hold(lanes[l]->held_until_up);
        lane_up[l].store(true);
        bool all = true;
        for (std::size_t i = 0; i < cfg.lanes; ++i)
            all = all && lane_up[i].load();
        if (all) {
            all_up.store(true);
            metrics.up.set(1);
        }
        obs::log().info("replay_lane_up target={} lane={}", cfg.metrics_target, l);
        read_bulk_limit(l);  // the target may have restarted with another configuration
        pump(l);
        kick_repair();
    }

    // The target's proto-max-bulk-len. A command with a longer argument makes the target close
    // the connection (-ERR Protocol error): the lane would go down and up again, and a copy of
    // such a key be sent again at each try. Those are failed before they are sent instead (see
    // send()). Read at start, when a lane comes back and every cfg.limits_check_interval; on a
    // Redis Cluster from every master, the smallest. Error replies only (CONFIG refused by the
    // target's ACL, a managed service) leave it unknown; lost connections keep the last value.
    struct limit_read {
        std::size_t left = 0;
        std::uint64_t smallest = 0;  // of the numbers read; 0: none
        bool refused = false;        // some node answered, without a number
    };
    void read_bulk_limit(std::size_t l) {
        if (bulk_limit_reading || stopping)
            return;
        auto& be = *lanes[l]->be;
        std::vector<cluster::node_address> nodes;
        if (be.is_cluster()) {
            nodes = be.topology().masters();
            if (nodes.empty())
                return;  // no slot map yet: the next tick
        }
        bulk_limit_reading = true;
        bulk_limit_at = steady::now() + cfg.limits_check_interval;
        auto state = std::make_shared<limit_read>();
        state->left = std::max<std::size_t>(nodes.size(), 1);
        auto on_reply = [this, b = box, state](client::result<replies> r) {
            std::optional<std::uint64_t> n;  // nullopt: no answer; 0: an answer without a number
            if (r && r->size() == 1) {
                n = 0;
                const auto& v = r->front();
                std::int64_t x = 0;
                if (v.is_aggregate() && v.elements().size() == 2 && v.elements()[1].to_int64(x) &&
                    x > 0)
                    n = static_cast<std::uint64_t>(x);
            }
            b->post([this, state, n] {
                if (n && *n == 0)
                    state->refused = true;
                else if (n)
                    state->smallest = state->smallest == 0 ? *n : std::min(state->smallest, *n);
                if (--state->left == 0)
                    end_bulk_limit_read(*state);
            });
        };
        const auto ask = [] { return client::cmd("CONFIG", "GET", "proto-max-bulk-len"); };
        if (nodes.empty())
            be.exec(ask(), std::move(on_reply));
        for (const auto& node : nodes)
            be.exec_on(node, ask(), on_reply);
    }
    void end_bulk_limit_read(const limit_read& r) {
        bulk_limit_reading = false;
        if (r.smallest == 0 && !r.refused)
            return;  // nobody answered: keep what was read before
        const std::uint64_t limit = r.smallest;
        if (limit != bulk_limit.load()) {
            obs::log().info("replay_target_bulk_limit target={} proto_max_bulk_len={}{}",
                            cfg.metrics_target, limit,
                            limit == 0 ? " (unknown: CONFIG GET refused; not checked)" : "");
            bulk_limit.store(limit);
        }
    }

    // ---------------------------------------------------------------- repair

    struct candidate {
        std::string key;
        std::uint32_t generation = 0;
        std::uint32_t global_generation = 0;
        std::uint32_t pause_epoch = 0;
        std::uint64_t seq = 0;  // its dirty_set number
        bool fenced = false;
    };

    // --- The write fence (fence_after): the replayer's thread. ---
    // The key copied under the fence, from when its stripe is fenced until its DUMP's reply
    // (fence_issued: the DUMP is out).
    std::optional<candidate> fence_cand;
    bool fence_issued = false;
    steady::time_point fence_deadline{};
    asio::steady_timer fence_timer{ioc};
    // When a dirty key was first found with its stripe busy (bounded: keys beyond it are not
    // fenced until room frees up).
    static constexpr std::size_t max_busy_tracked = 4096;
    std::unordered_map<std::string, steady::time_point> busy_since;
    // Fenced copies queued behind writes of their stripe: until the copy is applied, a
    // multi-key write applied before it read the key's old value (read_a_dirty_key).
    std::unordered_set<std::string> copies_behind;
    log_limiter fence_log{log_period};

    // Under dirty_mu: `c` leaves the dirty set for a copy.
    void take_for_repair_locked(const candidate& c) {
        ++repairing;
        reading_keys.insert(c.key);
        repair_seq[c.key] = c.seq;
    }
    // Under dirty_mu: a key's copy ended (applied, refused or not done): its dirty_set number.
    std::uint64_t leave_repair_locked(std::string_view key) {
        --repairing;
        if (repair_seq.empty())
            return 0;
        const auto it = repair_seq.find(std::string(key));
        if (it == repair_seq.end())
            return 0;
        const auto seq = it->second;
        repair_seq.erase(it);
        return seq;
    }

    // The copy of `key` was applied: it is no longer missing on the target.
    void end_repair(std::string_view key) {
        bool was_rejected = false;
        {
            std::lock_guard lock(dirty_mu);
            leave_repair_locked(key);
            was_rejected = !rejected.empty() && rejected.erase(std::string(key)) > 0;
        }
        if (was_rejected)
            obs::log().info("replay_rejected_key_repaired target={} key={}", cfg.metrics_target,
                            obs::quoted{loggable(key)});
        log_progress(false);
    }

    // The target answered the copy of `key` with an error (OOM under maxmemory, a DUMP format
    // it does not know, a payload over proto-max-bulk-len ...). Retrying at once would be refused
    // again: the key waits in `rejected`, tried again every rejected_retry_interval, and keeps a
    // cut-over to the target refused until a copy is applied.
    void reject_repair(std::string_view key, std::string_view why) {
        repairs_rejected.fetch_add(1);
        metrics.repairs_rejected.inc();
        const auto due = steady::now() + cfg.rejected_retry_interval;
        bool first = false;
        bool full = false;
        {
            std::lock_guard lock(dirty_mu);
            leave_repair_locked(key);
            std::string k(key);
            if (auto it = rejected.find(k); it != rejected.end())
                it->second = due;
            else if (rejected.size() >= cfg.max_rejected_keys)
                full = true;
            else
                first = rejected.emplace(std::move(k), due).second;
        }
        if (full)
            set_full_resync("rejected key set full");
        std::uint64_t suppressed = 0;
        if (first && reject_log.allow(suppressed))
            obs::log().error(
                "replay_repair_rejected target={} key={} error=\"{}\" retry_in_ms={} suppressed={} "
                "(the key is missing on the {}; a cut-over to it is refused until a retry "
                "succeeds)",
                cfg.metrics_target, obs::quoted{loggable(key)}, why,
                cfg.rejected_retry_interval.count(), suppressed, cfg.metrics_target);
        log_progress(false);
    }

    // Rejected keys due a retry go back into the dirty set (behind the others), so they are
    // copied under the repair's rate limit; they stay rejected until a copy is applied.
    void retry_rejected(steady::time_point now) {
        if (now < rejected_scan_at || repairs_paused.load())
            return;
        rejected_scan_at = now + std::min<steady::duration>(cfg.rejected_retry_interval, 1s);
        std::lock_guard lock(dirty_mu);
        for (auto& [key, due] : rejected) {
            if (due > now || reading_keys.contains(key))
                continue;
            // A full dirty set: the key stays rejected (tracked) and is tried at the next scan.
            if (dirty.add(key) == dirty_set::add_result::over_capacity)
                break;
            due = now + cfg.rejected_retry_interval;
        }
    }

    void redirty_repairing(std::string_view key) {
        dirty_set::add_result r;
        {
            std::lock_guard lock(dirty_mu);
            r = dirty.add(key, false, leave_repair_locked(key));
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
            obs::log().info("replay_repair_done target={} repaired={}", cfg.metrics_target, done);
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
            obs::log().info("replay_repair_progress target={} repaired={} remaining={}",
                            cfg.metrics_target, done, remaining);
        }
    }

    void repair_round() {
        if (stopping || (draining && !drain_copying) || repair_reading || !primary ||
            repairs_paused.load())
            return;
        // The queue is at its budget (a hung lane holds the window): copies wait for the next
        // tick instead of adding to it.
        if (queued_bytes.load() >= cfg.max_queued_bytes)
            return;
        const auto now = steady::now();
        const std::size_t tokens = bucket.take(now, batch_sizer.next());
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
        std::optional<candidate> fence_pick;
        {
            std::lock_guard lock(dirty_mu);
            std::vector<dirty_set::entry> deferred;
            // Stripes whose generation this batch moved (once each: a second move would make
            // the first key's copy look raced).
            std::vector<std::size_t> bumped;
            const std::size_t scan_limit = tokens * 4;
            for (std::size_t scanned = 0; picked.size() < tokens && scanned < scan_limit;
                 ++scanned) {
                auto e = dirty.pop();
                if (!e)
                    break;
                const auto s = stripe_table::stripe_of(e->key);
                auto st = stripes.load(s);
                const auto gst = stripes.load(stripe_table::global_stripe);
                const bool lane_down = !lane_up[lane_of(e->key)].load();
                // The fenced stripe waits for its fence: moving its generation here would make
                // the fenced copy look raced.
                const bool fenced_stripe =
                    fence_cand && stripe_table::stripe_of(fence_cand->key) == s;
                // The copy moves the stripe's generation: a blocking command that waited on the
                // key and pops before the DUMP runs sees it at its end (end_uncounted).
                bool idle = !lane_down && !fenced_stripe && st.in_flight == 0 && gst.in_flight == 0;
                if (idle && std::ranges::find(bumped, s) == bumped.end()) {
                    const auto after = stripes.bump_if_idle(s, st);
                    idle = after.has_value();
                    if (idle) {
                        st = *after;
                        bumped.push_back(s);
                    }
                }
                if (!idle) {
                    if (!lane_down && !fence_cand && !fence_pick && wants_fence(e->key, now))
                        fence_pick = candidate{.key = std::move(e->key),
                                               .pause_epoch = pause_epoch.load(),
                                               .seq = e->seq,
                                               .fenced = true};
                    else
                        deferred.push_back(std::move(*e));
                    continue;
                }
                if (!busy_since.empty())
                    busy_since.erase(e->key);
                picked.push_back(
                    {std::move(e->key), st.generation, gst.generation, pause_epoch.load(), e->seq});
            }
            for (auto& d : deferred)
                dirty.add(d.key, false, d.seq);
            // Out of `dirty` but not repaired: awaiting_repair() must still see them, at once.
            for (const auto& c : picked)
                take_for_repair_locked(c);
            if (fence_pick)
                take_for_repair_locked(*fence_pick);
        }
        // Order matters: in-flight first, then queued. A write seen ended above was put into the
        // inbox before it ended, so once the inbox is taken it counts in queued_at.
        if (!picked.empty()) {
            take_inbox();
            pump_all();
            settle();
            std::vector<std::string> busy;
            std::erase_if(picked, [&](candidate& c) {
                if (queued_at[stripe_table::stripe_of(c.key)] == 0 &&
                    queued_at[stripe_table::global_stripe] == 0)
                    return false;
                if (!fence_cand && !fence_pick && wants_fence(c.key, now)) {
                    c.fenced = true;  // stays taken for its repair
                    fence_pick = std::move(c);
                } else {
                    busy.push_back(std::move(c.key));
                }
                return true;
            });
            bool overflow = false;
            {
                std::lock_guard lock(dirty_mu);
                for (const auto& k : busy) {
                    const auto seq = leave_repair_locked(k);
                    overflow = dirty.add(k, false, seq) == dirty_set::add_result::over_capacity ||
                               overflow;
                    reading_keys.erase(k);
                }
            }
            if (overflow)
                set_full_resync("dirty key set full");
        }
        bucket.give_back(tokens - picked.size());
        if (fence_pick)
            start_fence(std::move(*fence_pick));
        if (picked.empty())
            return;  // busy stripes or lanes down: the next tick retries
        read_copies(std::move(picked));
    }

    // DUMP + PEXPIRETIME (PTTL) of the picked keys on the primary, in one pipeline.
    void read_copies(std::vector<candidate> picked) {
        if (!repair_announced)
            log_progress(true);
        client::request req;
        const bool absolute = absolute_ttl;
        for (const auto& c : picked) {
            req.push("DUMP", c.key);
            req.push(absolute ? "PEXPIRETIME" : "PTTL", c.key);
        }
        repair_reading = true;
        primary->exec(std::move(req), [this, b = box, picked = std::move(picked),
                                       absolute](client::result<replies> r) mutable {
            b->post([this, picked = std::move(picked), r = std::move(r), absolute]() mutable {
                on_repair_read(std::move(picked), std::move(r), absolute);
            });
        });
    }

    void on_repair_read(std::vector<candidate> picked, client::result<replies> r, bool absolute) {
        repair_reading = false;
        // The keys leave reading_keys on return, once each is dirty again or its copy is queued:
        // awaiting_repair() never sees them settled in between. A fenced read lifts its fence
        // then too: writes held by it begin after the copy is queued (or dropped).
        struct forget_reading {
            engine& e;
            const std::vector<candidate>& picked;
            ~forget_reading() {
                {
                    std::lock_guard lock(e.dirty_mu);
                    for (const auto& c : picked)
                        e.reading_keys.erase(c.key);
                }
                if (!picked.empty() && picked.front().fenced) {
                    e.end_fence();
                } else {
                    e.poll_fence();  // a fence waiting for this read to end
                }
            }
        } forget{*this, picked};
        if (stopping)
            return;
        const bool ok = r && r->size() == picked.size() * 2;
        if (ok && absolute && absolute_ttl) {
            for (std::size_t i = 0; i < picked.size(); ++i) {
                const auto& e = (*r)[2 * i + 1];
                if (e.is_error() && e.str().find("unknown command") != std::string::npos) {
                    absolute_ttl = false;
                    obs::log().info(
                        "replay_repair_relative_ttl target={} (the source has no PEXPIRETIME: "
                        "copies restore the PTTL read, and expire later by the lane's lag)",
                        cfg.metrics_target);
                    break;
                }
            }
        }
        if (ok && absolute && !absolute_ttl) {  // read again with PTTL
            for (const auto& c : picked)
                redirty_repairing(c.key);
            kick_repair();
            return;
        }
        // Paused meanwhile (even if resumed since): the side read from stopped serving, and the
        // values read may be older than what the other side served in between.
        const bool stale =
            repairs_paused.load() || std::ranges::any_of(picked, [&](const candidate& c) {
                return c.pause_epoch != pause_epoch.load();
            });
        if (!ok || (draining && !drain_copying) || stale) {
            for (const auto& c : picked)
                redirty_repairing(c.key);
            std::uint64_t suppressed = 0;
            if (!ok && repair_log.allow(suppressed))
                obs::log().warn("replay_repair_read_failed target={} error=\"{}\" suppressed={}",
                                cfg.metrics_target,
                                r ? std::string("short reply") : r.error().message(), suppressed);
            return;  // the next tick retries
        }
        {
            std::size_t payload = 0;
            for (std::size_t i = 0; i < picked.size(); ++i)
                if (const auto& dump = (*r)[i * 2]; dump.is_string())
                    payload += dump.str().size();
            batch_sizer.observe(picked.size(), payload);
        }
        // Writes of the fenced key that ended before its DUMP may still be in the inbox: they go
        // into the lane before the copy (the generation shows that none began since).
        if (picked.front().fenced)
            take_inbox();
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
                    obs::log().warn("replay_repair_read_error target={} error=\"{}\" suppressed={}",
                                    cfg.metrics_target, dump.is_error() ? dump.str() : pttl.str(),
                                    suppressed);
                redirty_repairing(c.key);
                continue;
            }
            client::request copy;
            if (dump.is_null() || ttl == -2)
                copy.push("DEL", c.key);
            else if (absolute && ttl > 0)  // a unix time in ms; past: the target drops the key
                copy.push("RESTORE", c.key, ttl, dump.str(), "REPLACE", "ABSTTL");
            else
                copy.push("RESTORE", c.key, restore_ttl(ttl), dump.str(), "REPLACE");
            pending p;
            p.data = copy.payload();
            p.command_bytes = p.data.size();
            p.commands = 1;
            replay::append_packed_key(p.data, c.key);
            p.key_count = 1;
            p.bytes = bytes_of(p.command_bytes, p.keys());
            p.enqueued = steady::now();
            p.kind = item_kind::repair;
            p.pause_epoch = c.pause_epoch;
            if (c.fenced) {
                fenced_copies.fetch_add(1);
                metrics.fenced_copies.inc();
                if (queued_at[s] != 0 || queued_at[stripe_table::global_stripe] != 0)
                    copies_behind.insert(c.key);
            }
            queued_bytes.fetch_add(p.bytes);
            queued_items.fetch_add(1);
            // Same thread as the inbox: no submit can slip between the check and this push.
            push_pending(std::move(p));
        }
        pump_all();
        kick_repair();
    }

    // ---------------------------------------------------------------- the write fence

    // A dirty key found busy (writes in flight on its stripe, or queued for the target) for
    // cfg.fence_after since it was first found so is copied under a fence. Only then: a key
    // written now and then is copied in a quiet moment, with no client waiting.
    bool wants_fence(const std::string& key, steady::time_point now) {
        if (cfg.fence_after.count() <= 0)
            return false;
        const auto it = busy_since.find(key);
        if (it == busy_since.end()) {
            if (busy_since.size() < max_busy_tracked)
                busy_since.emplace(key, now);
            return false;
        }
        if (now - it->second < cfg.fence_after)
            return false;
        busy_since.erase(it);
        return true;
    }

    // The fence: new writes to the key's stripe wait in their sessions (fenced()); once those
    // in flight have ended (their items are in the inbox by then) the key's DUMP is read with
    // the stripe's generation, as any copy, and the fence goes with the reply (on_repair_read).
    // The copy may be queued behind writes of the stripe not yet applied on the target: the
    // lane applies them first (every write of the key is in its lane), and copies_behind keeps
    // a multi-key write among them from counting as clean. A stale call of a failed lane could
    // land after the copy: no fenced copy is read while there is one.
    void start_fence(candidate c) {
        fence_cand = std::move(c);
        fence_issued = false;
        fence_deadline = steady::now() + cfg.fence_max;
        fence_stripe.store(stripe_table::stripe_of(fence_cand->key), std::memory_order_seq_cst);
        poll_fence();
    }

    [[nodiscard]] bool stale_holds() const {
        if (!stale_calls.empty())
            return true;
        return std::ranges::any_of(
            lanes, [](const auto& ln) { return !ln->held_until_up.stripes.empty(); });
    }

    void poll_fence() {
        if (!fence_cand || stopping)
            return;
        const auto now = steady::now();
        if (fence_issued) {  // waiting for the DUMP: past the deadline, the writes go on
            if (now >= fence_deadline)
                lift_fence();
            else
                arm_fence_timer(fence_deadline - now);
            return;
        }
        auto& c = *fence_cand;
        if (draining || repairs_paused.load() || c.pause_epoch != pause_epoch.load() ||
            !lane_up[lane_of(c.key)].load()) {
            give_up_fence(false);
            return;
        }
        if (now >= fence_deadline) {
            give_up_fence(true);
            return;
        }
        const auto s = stripe_table::stripe_of(c.key);
        auto st = stripes.load(s);
        const auto gst = stripes.load(stripe_table::global_stripe);
        std::optional<stripe_table::state> after;
        if (!repair_reading && st.in_flight == 0 && gst.in_flight == 0 &&
            queued_at[stripe_table::global_stripe] == 0 && !stale_holds() &&
            (after = stripes.bump_if_idle(s, st))) {
            st = *after;
            c.generation = st.generation;
            c.global_generation = gst.generation;
            fence_issued = true;
            arm_fence_timer(fence_deadline - now);
            read_copies({c});
            return;
        }
        arm_fence_timer(std::chrono::milliseconds(1));
    }

    void arm_fence_timer(steady::duration after) {
        fence_timer.expires_after(after);
        fence_timer.async_wait([this](std::error_code ec) {
            if (!ec)
                poll_fence();
        });
    }

    void lift_fence() noexcept {
        fence_stripe.store(no_fence, std::memory_order_seq_cst);
        fence_timer.cancel();
    }
    void end_fence() noexcept {
        lift_fence();
        fence_cand.reset();
        fence_issued = false;
    }

    // No copy under this fence: the key goes back (with its number) and is fenced again only
    // after another cfg.fence_after of being busy.
    void give_up_fence(bool timed_out) {
        auto c = std::move(*fence_cand);
        end_fence();
        {
            std::lock_guard lock(dirty_mu);
            reading_keys.erase(c.key);
        }
        redirty_repairing(c.key);
        if (busy_since.size() < max_busy_tracked)
            busy_since[c.key] = steady::now();
        if (timed_out) {
            fence_timeouts.fetch_add(1);
            metrics.fence_timeouts.inc();
            std::uint64_t suppressed = 0;
            if (fence_log.allow(suppressed))
                obs::log().warn(
                    "replay_fence_timeout target={} key={} fence_ms={} suppressed={} (writes in "
                    "flight on the key did not end in time: a slow primary, a long script; its "
                    "copy is tried again)",
                    cfg.metrics_target, obs::quoted{loggable(c.key)}, cfg.fence_max.count(),
                    suppressed);
        }
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
        retry_rejected(now);
        if (now >= bulk_limit_at)
            read_bulk_limit(0);
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
        settle();
        const auto s = snapshot();
        metrics.queue_items.set(static_cast<double>(s.queued_items));
        metrics.queue_bytes.set(static_cast<double>(s.queued_bytes));
        metrics.lag_seconds.set(s.lag_seconds);
        metrics.dirty_keys.set(static_cast<double>(s.dirty_keys));
        metrics.rejected_keys.set(static_cast<double>(s.rejected_keys));
        metrics.up.set(s.secondary_up ? 1 : 0);
    }

    void start_drain(std::chrono::milliseconds budget, std::move_only_function<void(bool)> done) {
        if (drain_done)
            std::exchange(drain_done, nullptr)(false);
        drain_done = std::move(done);
        drain_copying = true;
        drain_dirty_at_start = snapshot().dirty_keys;
        kick_repair();
        drain_timer.expires_after(budget);
        drain_timer.async_wait([this](std::error_code ec) {
            if (!ec && drain_done)
                finish_drain();
        });
        process_inbox();
    }

    [[nodiscard]] bool queue_empty() {
        std::lock_guard lock(inbox_mu);
        return live_items == 0 && in.empty();
    }

    // Dirty keys a drain still copies: none once the copies cannot go on (a lane down, a full
    // resync needed, repairs paused by a forced cut-over).
    [[nodiscard]] bool drain_copies_left() {
        if (!drain_copying || !primary || full_resync.load() || repairs_paused.load() ||
            !all_up.load())
            return false;
        std::lock_guard lock(dirty_mu);
        return dirty.size() + repairing > 0 || !reading_keys.empty();
    }

    void check_drain() {
        settle();
        if (drain_done && queue_empty() && !drain_copies_left())
            finish_drain();
    }

    void finish_drain() {
        drain_timer.cancel();
        drain_copying = false;
        const bool empty = queue_empty();
        publish();
        const auto s = snapshot();
        if (!empty)
            obs::log().warn("replay_drain_incomplete target={} queued_items={} dirty_keys={}",
                            cfg.metrics_target, queued_items.load(), s.dirty_keys);
        if (drain_dirty_at_start > 0 || s.dirty_keys > 0)
            obs::log().info("replay_drain_copies target={} dirty_at_start={} dirty_left={}",
                            cfg.metrics_target, drain_dirty_at_start, s.dirty_keys);
        std::exchange(drain_done, nullptr)(empty);
    }

    // On the replayer's thread: everything pending is counted abandoned, waiters are released.
    void abandon_all() {
        inbox rest;
        {
            std::lock_guard lock(inbox_mu);
            std::swap(rest, in);
        }
        std::uint64_t n = 0;
        std::size_t keys = 0;
        std::vector<std::move_only_function<void()>> fns;
        for (const auto& e : rest.entries) {
            if (e.waiter)
                continue;
            ++n;
            keys += e.key_count;
            uncount(e.bytes);
        }
        for (auto& w : rest.waiters)
            fns.push_back(std::move(w.fn));
        for (std::size_t i = 0; i < window.size(); ++i) {
            const pending& p = window[i];
            unsettled_bytes += item_overhead;  // the slot's share
            if (p.done)
                continue;
            ++n;
            keys += p.key_count;
            release(p);
        }
        window.clear();
        tx_expects.clear();
        window_base = 1;
        live_items = 0;
        std::ranges::fill(queued_at, 0);
        sched = lane_scheduler(cfg.lanes);
        for (auto& ln : lanes) {
            for (auto& w : ln->waiters)
                fns.push_back(std::move(w.second));
            ln->waiters.clear();
            ln->probe.cancel();
        }
        tick_timer.cancel();
        repair_timer.cancel();
        lift_fence();
        copies_behind.clear();
        settle();
        abandoned.fetch_add(n);
        metrics.abandoned.inc(n);
        const auto s = snapshot();
        const bool missing = s.dirty_keys > 0 || s.rejected_keys > 0;
        if ((n > 0 || missing) && keys_saved.load())
            obs::log().info(
                "replay_stopped target={} unapplied_items={} unapplied_keys={} dirty_keys={} "
                "rejected_keys={} (saved to the dirty list: the next run repairs them)",
                cfg.metrics_target, n, keys, s.dirty_keys, s.rejected_keys);
        else if (n > 0)
            obs::log().error(
                "replay_stopped target={} abandoned_items={} abandoned_keys={} dirty_keys={} "
                "rejected_keys={} (the secondary needs these keys copied)",
                cfg.metrics_target, n, keys, s.dirty_keys, s.rejected_keys);
        else if (missing)
            obs::log().warn(
                "replay_stopped target={} dirty_keys={} rejected_keys={} (not repaired in this "
                "run; with --state-file a clean stop saves them for the next run's repair)",
                cfg.metrics_target, s.dirty_keys, s.rejected_keys);
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
        engine_->set_full_resync("out of memory in begin_write");
    }
}

void replayer::begin_uncounted(std::span<const std::string_view> keys,
                               write_origin origin) noexcept {
    try {
        engine_->begin_uncounted(keys, origin);
    } catch (...) {
        engine_->set_full_resync("out of memory in begin_uncounted");
    }
}

void replayer::end_uncounted(std::span<const std::string_view> keys,
                             std::span<const std::uint64_t> gens, bool popped) {
    // Moved since its start: a write woke it (their order reaches the two servers by two
    // connections, so the replayed order is a guess), or a copy was read meanwhile (it may
    // hold the pop already). The copy after it settles either.
    bool moved = false;
    for (std::size_t i = 0; i < keys.size() && i < gens.size(); ++i)
        moved = moved || write_generation(keys[i]) != gens[i];
    if (popped && moved)
        mark_dirty(keys, false);
    // Its end moves the generation too: a shadow read or a copy under way sees the change.
    for (auto k : keys)
        engine_->stripes.bump(stripe_table::stripe_of(k));
    engine_->unblocked(keys);
}

bool replayer::fence_up() const noexcept {
    return engine_->fence_stripe.load(std::memory_order_relaxed) != engine::no_fence;
}

bool replayer::fenced(std::span<const std::string_view> keys) const noexcept {
    const auto s = engine_->fence_stripe.load(std::memory_order_acquire);
    if (s == engine::no_fence)
        return false;
    return std::ranges::any_of(
        keys, [s](std::string_view k) { return replay::stripe_table::stripe_of(k) == s; });
}

void replayer::set_dirty_mark() {
    std::lock_guard lock(engine_->dirty_mu);
    engine_->dirty.mark();
}

std::size_t replayer::dirty_at_mark() const {
    std::lock_guard lock(engine_->dirty_mu);
    auto n = engine_->dirty.remaining_at_mark();
    for (const auto& [key, seq] : engine_->repair_seq)
        if (engine_->dirty.at_or_below_mark(seq))
            ++n;
    return n;
}

bool replayer::clear_full_resync(std::uint64_t events_seen) {
    auto& e = *engine_;
    if (e.full_resync_events.load() != events_seen || !e.full_resync.exchange(false))
        return false;
    e.metrics.full_resync.set(0);
    obs::log().info("replay_full_resync_cleared target={} reason=\"a complete copy ended\"",
                    e.cfg.metrics_target);
    return true;
}

void replayer::set_copying(bool on) noexcept {
    engine_->copying_all.store(on);
}

void replayer::keys_saved() noexcept {
    engine_->keys_saved.store(true);
}

void replayer::submit(replay_item item, std::span<const std::string_view> begun_keys) {
    engine_->submit(std::move(item), begun_keys);
}

void replayer::submit_command(std::string_view command, std::span<const std::string_view> keys,
                              bool global, merge_hint merge,
                              std::optional<std::int64_t> expect_reply) {
    engine_->submit_command(command, keys, global, merge, expect_reply);
}

void replayer::set_repair_rate(std::size_t per_second) {
    engine_->repair_rate.store(per_second);
    asio::post(engine_->ioc, [e = engine_.get(), per_second] {
        e->bucket.set_rate(per_second, replay::steady::now());
        e->kick_repair();
    });
}

void replayer::abandon_uncounted(std::span<const std::string_view> keys, bool outcome_unknown) {
    if (outcome_unknown)
        mark_dirty(keys, false);
    engine_->unblocked(keys);
}

void replayer::check_replies(bool on) noexcept {
    engine_->reply_checks.store(on);
}

void replayer::abandon(std::span<const std::string_view> begun_keys, bool outcome_unknown,
                       bool global) {
    engine_->abandon(begun_keys, outcome_unknown, global);
}

void replayer::require_full_resync(std::string_view reason) {
    engine_->set_full_resync(reason);
}

void replayer::mark_dirty(std::span<const std::string_view> keys, bool urgent) {
    for (auto k : keys)
        engine_->add_dirty(k, urgent);
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

replayer::unapplied replayer::unapplied_keys(std::size_t limit) const {
    std::promise<unapplied> p;
    auto f = p.get_future();
    asio::post(engine_->ioc,
               [e = engine_.get(), limit, &p] { p.set_value(e->collect_unapplied(limit)); });
    return f.get();
}

std::size_t replayer::lane_of(std::string_view key) const noexcept {
    return engine_->lane_of(key);
}

bool replayer::pause_repairs(bool paused, std::chrono::milliseconds wait) {
    auto& e = *engine_;
    if (!paused) {
        if (e.repairs_paused.exchange(false))
            asio::post(e.ioc, [en = engine_.get()] { en->kick_repair(); });
        return true;
    }
    if (!e.repairs_paused.exchange(true))
        e.pause_epoch.fetch_add(1);
    // Copies already handed to a lane may still land: wait for their answers.
    const auto end = steady::now() + wait;
    while (e.repairs_on_wire.load() != 0) {
        if (steady::now() >= end)
            return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

bool replayer::awaiting_repair(std::string_view key) const {
    std::lock_guard lock(engine_->dirty_mu);
    if (engine_->dirty.contains(key))
        return true;
    const std::string k(key);
    return engine_->reading_keys.contains(k) || engine_->rejected.contains(k);
}

std::uint64_t replayer::write_generation(std::string_view key) const noexcept {
    const auto& s = engine_->stripes;
    return (std::uint64_t{s.load(stripe_table::stripe_of(key)).generation} << 32) |
           s.load(stripe_table::global_stripe).generation;
}

bool replayer::writes_in_flight(std::string_view key) const noexcept {
    return engine_->stripes.load(stripe_table::stripe_of(key)).in_flight > 0 ||
           engine_->stripes.load(stripe_table::global_stripe).in_flight > 0;
}

}  // namespace respite::proxy
