// The secondary write engine of respite-proxy: ordered per key, bounded, never silently lossy.
//
// Writes the primary accepted are replayed on the secondary in per-key FIFO lanes, off the
// client's critical path. What cannot be replayed (over budget, secondary down, error replies,
// outcome unknown, effects the proxy cannot derive) becomes a dirty key, which a rate-limited
// repair loop copies from the primary (DUMP/PTTL -> RESTORE ... REPLACE) once the secondary
// answers again. Nothing is dropped without being counted and logged.
//
// Module boundary: replay depends on proxy/backend (the upstreams), obs and the cluster key hash
// only; it knows nothing about client sessions, the RESP front or command semantics (the caller
// says which keys an item writes and what to run).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>

#include <respite/client/request.hpp>
#include <respite/proxy/backend.hpp>
#include <respite/proxy/merge_hint.hpp>

namespace respite::obs {
class registry;
}

namespace respite::proxy {

using namespace std::chrono_literals;

// One write to repeat on the secondary.
struct replay_item {
    std::vector<std::string> keys;  // keys written (lane choice); empty + !global: lane 0
    client::request commands;       // run on the secondary, in order (may be empty when copy)
    bool atomic = false;            // wrap in MULTI/EXEC on the secondary (transactions)
    bool copy = false;    // also copy `keys` from the primary (DUMP+PTTL -> RESTORE / DEL)
    bool global = false;  // keyspace-wide (FLUSHALL...): ordered against every lane
    // One command: the integer it must answer on a target that holds the primary's data
    // (secondary_write::expect_reply); another answer turns `keys` dirty (reply_mismatches).
    std::optional<std::int64_t> expect_reply;
    // An atomic item (a transaction): the same for each of `commands` (empty: none expected).
    std::vector<std::optional<std::int64_t>> expect_replies;
};

struct replayer_config {
    std::size_t lanes = 8;                    // each lane: its own backend (one connection), FIFO
    std::size_t max_queued_bytes = 64 << 20;  // bounded memory across lanes
    std::size_t max_dirty_keys = 1'000'000;   // beyond: "full resync needed" (keeps serving)
    std::size_t max_batch = 256;              // items per pipelined write per lane
    std::chrono::milliseconds probe_interval = 500ms;  // PING period while a lane is down
    std::size_t repair_rate = 5000;                    // keys/s repaired at most (0: unlimited)
    std::chrono::milliseconds item_timeout = 10s;      // a lane call older than this: lane down
    // Calls of failed lanes whose completion never came, kept (their keys' copies wait) before
    // the follower gives up on them and asks for a full resync.
    std::size_t max_stale_calls = 1024;
    // Keys whose repair the target refused (OOM, unknown DUMP format ...): remembered apart from
    // the dirty set, tried again every `rejected_retry_interval` (through the repair's rate
    // limit); beyond `max_rejected_keys`: "full resync needed".
    std::size_t max_rejected_keys = 100'000;
    std::chrono::milliseconds rejected_retry_interval = 30s;
    // How often the target's proto-max-bulk-len is read again (also at start and when a lane
    // comes back): a write or copy with a longer argument fails as refused, unsent.
    std::chrono::milliseconds limits_check_interval = 10s;
    // A dirty key whose stripe stays busy this long (written by clients without a pause, or
    // behind a long queue) is copied under a fence: writes that would begin on its stripe wait
    // (fenced()) until those in flight have ended and its DUMP is read, for `fence_max` at
    // most. Without it a key written continuously is never copied. 0: never fence.
    std::chrono::milliseconds fence_after = 1s;
    std::chrono::milliseconds fence_max = 100ms;
    // The target is a Redis Cluster: renamed merges (merge_hint) stay within one hash slot.
    bool cluster_target = false;
    // Called on the replayer's thread when the target answers a write or a repair copy with an
    // error (after its keys were recorded for a copy): the command's name (the first of a
    // transaction: "multi"), the error text and the number of keys. Must not block.
    std::function<void(std::string_view command, std::string_view error, std::size_t keys)>
        on_write_error;
    // Value of the metrics' "target" label ("secondary", or "primary" for the rollback follower).
    std::string metrics_target = "secondary";
};

// The ordered source of writes (e.g. a client connection's serial number): writes of one origin
// reach submit() in the order the primary applied them. Origins equal modulo 2^24 count as one.
using write_origin = std::uint64_t;

class replayer {
  public:
    // Builds the secondary backend of a lane on the replayer's io_context. Create it with
    // client_config.connections = 1 (one ordered connection per lane) and
    // connection.queue_while_disconnected = false: a write parked during an outage could land
    // after a restart that lost the secondary's data, instead of turning its keys dirty.
    using secondary_factory =
        std::function<std::shared_ptr<backend>(asio::io_context&, std::size_t lane)>;

    // primary: read for copies and repairs (shared with the proxy; never closed here).
    // metrics: nullptr -> obs::registry::global().
    replayer(replayer_config cfg, std::shared_ptr<backend> primary,
             secondary_factory make_secondary, obs::registry* metrics = nullptr);
    // Stops the thread. Pending items are not silently lost: they are counted as abandoned and
    // logged with their keys' count (the dirty set dies with the replayer).
    ~replayer();
    replayer(const replayer&) = delete;
    replayer& operator=(const replayer&) = delete;

    // --- Hot path: thread-safe, called by the proxy's workers. ---

    // Before a write is sent to the primary: marks the keys' stripes in flight (and the keyspace
    // when global). Atomics only; it allocates only when a write of another origin to the same
    // stripe is still in flight: their order on the primary is unknown, so the keys turn dirty.
    void begin_write(std::span<const std::string_view> keys, write_origin origin,
                     bool global = false) noexcept;
    // A blocking command (BLPOP, BLMOVE ...) starts: not counted in flight (it may wait for
    // hours, and its keys could not be copied meanwhile: a job queue with waiting workers was
    // never copied), but its keys' generations move, and a counted write of another origin in
    // flight makes them dirty as for begin_write. It writes only when a write to its keys
    // wakes it (which moves their generation) or at once; so at its end, when it popped, its
    // keys turn dirty if their write_generation() moved since just after this call (see
    // end_uncounted). Its item is submitted with no begun keys.
    void begin_uncounted(std::span<const std::string_view> keys, write_origin origin) noexcept;
    // The blocking command's reply arrived. popped: it wrote (a value came back). gens: each
    // key's write_generation() taken after begin_uncounted(). Call before submitting its item.
    void end_uncounted(std::span<const std::string_view> keys, std::span<const std::uint64_t> gens,
                       bool popped);
    // The blocking command failed without a reply: its keys turn dirty when it may have popped.
    // Ends it like end_uncounted (one of the two for each begin_uncounted).
    void abandon_uncounted(std::span<const std::string_view> keys, bool outcome_unknown);
    // The primary's reply arrived: enqueues the item (or, over budget / lane down / draining,
    // records its keys dirty), then ends the in-flight marks of begun_keys (and of the keyspace
    // when item.global). Allocates; never blocks on the secondary.
    void submit(replay_item item, std::span<const std::string_view> begun_keys);
    // submit() of one plain command given as RESP bytes, whose keys are the begun keys (a write
    // replayed as written): the bytes and keys are copied into the replayer's inbox, with no
    // allocation once its buffers have grown.
    // merge: how it may join the next writes of its lane (see merge_hint).
    // expect_reply: the primary's integer reply (see replay_item::expect_reply).
    void submit_command(std::string_view command, std::span<const std::string_view> keys,
                        bool global = false, merge_hint merge = {},
                        std::optional<std::int64_t> expect_reply = std::nullopt);
    // A dirty key of the stripe is being copied under a fence (see fence_after): a write to
    // `keys` must wait (the caller holds it and asks again) before begin_write(). One relaxed
    // load when no fence is up; fenced() is only worth calling when fence_up().
    [[nodiscard]] bool fence_up() const noexcept;
    [[nodiscard]] bool fenced(std::span<const std::string_view> keys) const noexcept;
    // The primary write failed: the in-flight marks end; outcome_unknown (connection lost after
    // the write was sent) -> the keys are dirty (global: full resync needed).
    void abandon(std::span<const std::string_view> begun_keys, bool outcome_unknown,
                 bool global = false);
    // A complete copy of the keyspace (every key of both sides repaired) that began when
    // snapshot().full_resync_events was `events_seen` has ended: clears full_resync_needed,
    // unless a new cause came since. True when it was cleared.
    bool clear_full_resync(std::uint64_t events_seen);
    // Sets full_resync_needed (metric + error log with `reason`): the follower's side changed in
    // a way no key repair restores.
    void require_full_resync(std::string_view reason);
    // Records keys to copy from the primary. urgent: ahead of the keys already waiting (a key
    // known to differ); otherwise behind them (bulk work such as PROXY SYNC, which must not
    // starve the repairs of failed writes).
    void mark_dirty(std::span<const std::string_view> keys, bool urgent = true);
    // A full copy (PROXY SYNC) starts or ends. While one runs, a multi-key write may have read
    // a key the copy has not reached yet (COPY src dst, SMOVE, *STORE, RENAME, a transaction:
    // answered without error on the follower), so the keys of each such write are copied once
    // more after it is applied. MSET, DEL and UNLINK read nothing and are left alone.
    void set_copying(bool on) noexcept;
    // Marks the keys dirty now (recorded or being copied); dirty_at_mark() counts those of them
    // not copied since. A key copied and dirty again after the mark does not count: PROXY SYNC
    // ends when its keys were copied once, while hot keys keep turning dirty.
    void set_dirty_mark();
    [[nodiscard]] std::size_t dirty_at_mark() const;
    // While paused, no key is copied from the primary: dirty and rejected keys are kept (and
    // still recorded), copies read or queued but not yet sent go back to the dirty set. For a
    // primary that no longer serves (a forced cut-over left keys unrepaired): its values may be
    // older than the target's, which now serves. Copies read before a pause are never applied,
    // even after unpausing. Pausing waits up to `wait` for copies already sent to be answered
    // (false: some were still unanswered); not from the replayer's thread. Unpausing resumes.
    bool pause_repairs(bool paused, std::chrono::milliseconds wait = std::chrono::seconds(5));

    // Keys copied per second at most from now on (0: unlimited); replayer_config::repair_rate
    // at start. Thread-safe.
    void set_repair_rate(std::size_t per_second);

    // Whether a write's reply is compared with the primary's (replay_item::expect_reply); on
    // by default. Off while the target is known to lack data (a restart, before its first
    // PROXY SYNC): every write to a missing key would count and queue a copy.
    void check_replies(bool on) noexcept;

    // Calls fn on the replayer's thread once every item enqueued for key's lane before this call
    // has been applied or has failed (at once if none); also at shutdown. Must not block.
    void when_applied(std::string_view key, std::move_only_function<void()> fn);

    // Graceful shutdown: later submits become dirty keys; what is queued is applied, and the
    // dirty keys are copied while every lane is up (no full resync pending, repairs not paused),
    // until the deadline; then done(true when nothing is queued or in flight; dirty keys left do
    // not count), on the replayer's thread. Nothing is copied after it.
    void drain(std::chrono::milliseconds budget, std::move_only_function<void(bool)> done);
    // The same, waiting (not from the replayer's thread).
    bool drain(std::chrono::milliseconds budget);

    struct stats {
        std::uint64_t queued_items = 0;  // enqueued, not yet applied or failed
        std::uint64_t queued_bytes = 0;
        std::uint64_t applied = 0;  // items (and repairs) the secondary accepted
        std::uint64_t merged = 0;   // items sent inside the command of the item before them
        // Items not sent: every key they write was dirty (its copy brings their effect).
        std::uint64_t superseded = 0;
        std::uint64_t failed = 0;  // items the secondary answered with an error reply
        // Writes the target answered with another integer than the primary did (their keys
        // are copied): the sides differed on those keys (not counted while a key awaits a copy).
        std::uint64_t reply_mismatches = 0;
        std::uint64_t dirty_keys = 0;          // recorded, or being repaired
        std::uint64_t repaired = 0;            // keys copied from the primary
        std::uint64_t repair_retries = 0;      // a write began during the copy: copied again later
        std::uint64_t rejected_keys = 0;       // repair refused by the target: still missing there
        std::uint64_t repairs_rejected = 0;    // repairs the target refused (every attempt)
        std::uint64_t dropped_to_dirty = 0;    // items not replayed (budget, lane down, transport)
        std::uint64_t abandoned = 0;           // items pending at shutdown
        std::uint64_t lane_failures = 0;       // lanes gone down (connection lost, timeout)
        std::uint64_t fenced_copies = 0;       // copies read while writes to their stripe waited
        std::uint64_t fence_timeouts = 0;      // fences lifted after fence_max without a copy
        std::uint64_t target_bulk_limit = 0;   // the target's proto-max-bulk-len (0: unknown)
        double lag_seconds = 0;                // age of the oldest unapplied item
        bool secondary_up = true;              // every lane answers
        bool full_resync_needed = false;       // dirty set overflowed or a global write was lost
        bool repairs_paused = false;           // pause_repairs(true)
        std::size_t repair_rate = 0;           // keys/s copied at most now (0: unlimited)
        std::uint64_t full_resync_events = 0;  // causes so far (also while already needed)
    };
    [[nodiscard]] stats snapshot() const;

    // What the secondary still lacks, key by key: the dirty keys, those being repaired, those
    // whose repair was refused and the keys of every item queued or in flight (a proxy carries them
    // over a restart). Incomplete when a keyspace-wide item is pending, a full resync is needed or
    // there are more than `limit` keys (then `keys` is empty). Runs on the replayer's thread and
    // waits for it: call it after drain(), never from that thread.
    struct unapplied {
        std::vector<std::string> keys;  // de-duplicated, in no particular order
        bool complete = true;
    };
    [[nodiscard]] unapplied unapplied_keys(std::size_t limit) const;
    // The caller saved unapplied_keys() for the next run: the stop logs them as saved instead of
    // as lost.
    void keys_saved() noexcept;

    // The lane of a key (Redis Cluster hash slot, with hash tags, modulo lanes).
    [[nodiscard]] std::size_t lane_of(std::string_view key) const noexcept;
    // A write to key's stripe (or a keyspace-wide one) was sent to the primary and its reply
    // was not submitted yet: the primary may already show an effect the queue does not hold.
    [[nodiscard]] bool writes_in_flight(std::string_view key) const noexcept;
    // The key is known to differ on the secondary and waits for (or is in) its repair, or its
    // repair was refused and waits to be tried again.
    [[nodiscard]] bool awaiting_repair(std::string_view key) const;
    // Moves whenever a write to key's stripe (or a keyspace-wide write) begins: equal values
    // taken at two moments mean no write to the key began in between (a change may also come
    // from another key of the stripe).
    [[nodiscard]] std::uint64_t write_generation(std::string_view key) const noexcept;

    struct engine;

  private:
    std::unique_ptr<engine> engine_;
};

}  // namespace respite::proxy
