// Keyspace jobs of the control thread: PROXY SYNC and PROXY VERIFY.
//
// Both SCAN the serving side in pages, paced, with progress for STATUS / INFO / HTTP / logs.
//
// A Redis Cluster side is scanned master by master (keyspace_scan), one SCAN call at a time and
// paced the same way; a pass that a topology change may have made miss keys (resharding,
// failover) is scanned again, counted in `rescans`.
//
// SYNC copies the keys that existed before the follower was on, safely under live traffic: every
// key found is handed to the follower's replayer as a dirty key, so the copy is the replayer's
// repair (DUMP/PEXPIRETIME on the serving side -> RESTORE ... REPLACE ABSTTL on the follower, or
// DEL when the key is gone), which waits for writes to the key in flight or queued and copies
// again when a write begins during the copy. A copy can therefore never overwrite a newer replayed
// write. The scan waits while the replayer's dirty set is above a high-water mark.
//
// VERIFY compares every key: its value (GET, HGETALL, LRANGE, SMEMBERS, ZRANGE WITHSCORES,
// XRANGE by type) and its TTL are read on the serving side and compared with the other side by
// the shadow reader (normalised, re-checked after the follower applied the key's writes, and
// reported as divergences only when stable). A collection with more elements than
// verify_chunk_elements (a string longer than verify_chunk_bytes) is never read whole:
// chunked_compare reads it in windows of that many, one after the other. A stream whose value and
// TTL agree then has its consumer groups compared (group_compare: XINFO GROUPS, XPENDING per
// group), still as the one key in flight. A second pass SCANs the other side for keys the serving
// side does not have (extra_data). Keys are verified a bounded number at a time (a chunked key
// counts as one).
//
// start/stop/progress are safe from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "keyspace_scan.hpp"
#include "worker.hpp"

namespace respite::obs {
class counter;
class gauge;
}  // namespace respite::obs

namespace respite::proxy::server {

enum class shadow_outcome : std::uint8_t;

struct sync_options {
    std::string match;                // SCAN MATCH pattern (empty: every key)
    std::size_t count = 1000;         // SCAN COUNT hint
    std::size_t high_water = 20'000;  // SYNC: dirty keys at most before the scan waits
    std::size_t max_in_flight = 64;   // VERIFY: keys being compared at once
    // SYNC: also scan the follower and delete the keys the serving side does not have (only a
    // pruning run without MATCH makes the follower a copy, and clears a needs-sync flag).
    bool prune = false;
};

// A SCAN COUNT given by an operator (PROXY SYNC/VERIFY, /sync, /verify): 1 to 1 000 000.
std::optional<std::size_t> parse_scan_count(std::string_view text);

struct sync_progress {
    // idle, scanning, repairing (SYNC), checking (VERIFY), done, stopped, failed
    std::string state = "idle";
    std::string from, to;       // "primary" / "secondary"
    std::string match;          // the pattern, empty for all
    std::uint64_t scanned = 0;  // keys found by SCAN on the serving side
    // DBSIZE of the serving side at the start (summed over a cluster's masters); 0: unknown
    // (a MATCH run, or DBSIZE failed). With `scanned`, the progress and an estimate of the
    // time left (keys_left(), eta_seconds()).
    std::uint64_t keys_total = 0;
    std::uint64_t batches = 0;  // SCAN calls
    // Scans of one node that reached its end (each master of a cluster once a pass, a
    // standalone Redis once), passes of the other side and passes begun again included.
    std::uint64_t nodes_scanned = 0;
    // Passes begun again because the cluster's topology changed during them (keys handed over
    // before count again).
    std::uint64_t rescans = 0;
    std::uint64_t dirty = 0;  // SYNC: the replayer's dirty keys now (sync and live repairs)
    std::uint64_t repaired_since_start = 0;
    // VERIFY: compares (a key's value and its TTL are one each) by outcome, and pass 2.
    std::uint64_t compared = 0, matched = 0, diverged = 0, errors = 0, unstable = 0;
    std::uint64_t chunked = 0;          // VERIFY: keys whose value was compared in chunks
    std::uint64_t groups_compared = 0;  // VERIFY: consumer groups of streams compared
    std::uint64_t extra_scanned = 0, extra_keys = 0;
    // SYNC: the whole keyspace was copied and pruned with no refused copy and no new resync
    // cause (only such a run clears a "needs sync" flag and full_resync_needed).
    bool complete = false;
    double elapsed_seconds = 0;
    std::string error;  // why it failed / stopped

    // Percent of keys_total scanned (100 at most); nullopt when keys_total is unknown.
    [[nodiscard]] std::optional<double> percent() const;
    // Seconds the scan of the serving side still needs at its pace so far; nullopt when not
    // scanning it, before a first key, or without keys_total.
    [[nodiscard]] std::optional<double> eta_seconds() const;
};

class bulk_sync : public std::enable_shared_from_this<bulk_sync> {
  public:
    enum class kind : std::uint8_t { sync, verify };
    bulk_sync(asio::io_context& control, shared_state& st, kind k = kind::sync);

    // Starts a run; an empty string on success, else the reason (as an error message).
    std::string start(sync_options opt);
    // Stops a running job (SYNC: keys already handed over are still repaired).
    void stop();
    [[nodiscard]] sync_progress progress() const;
    [[nodiscard]] bool running() const;
    // Lines for INFO proxy ("sync_state:..." / "verify_state:...").
    [[nodiscard]] std::string info_lines() const;
    // After the control thread stopped and before its io_context goes: drops the timer.
    void shutdown();

  private:
    // One run's parameters, fixed at start; its cursor and pass are touched only by its steps,
    // which run one after the other on the control thread.
    struct run {
        sync_options opt;
        side source = side::primary;
        std::uint64_t generation = 0;
        std::uint64_t target_epoch = 0;  // the target's restart count at start
        // SYNC: copies the follower refused before the run (a replayed write that fails is not
        // counted: its keys turn dirty and are copied, which the cut-over waits for).
        std::uint64_t refused_at_start = 0;
        std::uint64_t resync_events_at_start = 0;  // SYNC: full-resync causes at start
        std::uint64_t follow_gaps_at_start = 0;    // SYNC: shared_state::follow_gaps at start
        keyspace_scan scan;       // the pass under way (of the serving side, or the other)
        bool extra_pass = false;  // scanning the other side for keys only it has
        std::chrono::steady_clock::time_point unsettled_logged{};
        bool dirty_marked = false;  // SYNC: the follower's dirty keys were marked (settled())
    };
    using run_ptr = std::shared_ptr<run>;

    void scan_step(const run_ptr& r);
    // Reads the serving side's DBSIZE (summed over a cluster's masters by backend::exec) into
    // keys_total.
    void count_keys(const run_ptr& r);
    // SYNC: the followers' extra copies of multi-key writes (replayer::set_copying) end.
    void copying_ended();
    // The side the pass under way scans.
    [[nodiscard]] side scanned_side(const run& r) const {
        return r.extra_pass ? other_side(r.source) : r.source;
    }
    // Reads the scanned side's topology (a fresh slot map and each master's migrations), then
    // `then(view)` on the control thread. A standalone side: an empty view.
    void take_view(const run_ptr& r, std::move_only_function<void(topology_view)> then);
    // A pass starts once the topology is settled (waits for a slot migration to end).
    void begin_pass(const run_ptr& r);
    // A node's scan ended (step node_done or pass_done): the topology is checked first.
    void after_node(const run_ptr& r, keyspace_scan::step s);
    void next_pass_or_wait(const run_ptr& r);
    // The pass may have missed keys: log, count, begin it again.
    void rescan(const run_ptr& r, const std::string& why);
    // SCAN failed: on a cluster, a topology change is scanned again; otherwise the run fails.
    void scan_failed(const run_ptr& r, std::string why);
    void wait_step(const run_ptr& r);
    // The run can go on: not stopped or replaced, same serving side (SYNC: with a follower).
    bool still_valid(const run_ptr& r);
    void finish(const run_ptr& r, std::string state, std::string error);
    void log_progress(bool force);
    void wait_then(const run_ptr& r, void (bulk_sync::*step)(const run_ptr&),
                   std::chrono::milliseconds delay = std::chrono::milliseconds(20));
    [[nodiscard]] bool paced(const run& r) const;
    [[nodiscard]] bool settled(run& r) const;
    void handle_page(const run_ptr& r, std::vector<std::string> keys);
    // One `command key` per key on the serving side, pipelined, the keys counted in flight;
    // then(keys, replies), or then(keys, nullptr) when the call failed. `then` lets them go.
    using per_key_fn = std::move_only_function<void(std::vector<std::string>&, const replies_t*)>;
    void per_key(const run_ptr& r, std::string_view command, std::vector<std::string> keys,
                 per_key_fn then);
    void verify_keys(const run_ptr& r, std::vector<std::string> keys);
    // A key found by VERIFY: its TYPE on the serving side, and whether it is compared in chunks.
    struct verified_key {
        std::string key;
        std::string type;
        bool chunked = false;
    };
    void compare_values(const run_ptr& r, std::vector<verified_key> keys);
    // The chunk of a key of this type: elements of a collection, bytes of a string.
    [[nodiscard]] std::size_t chunk_of(std::string_view type) const noexcept {
        return type == "string" ? st_.cfg.verify_chunk_bytes : st_.cfg.verify_chunk_elements;
    }
    // A stream whose value and TTL agreed: its consumer groups, then the key leaves the flight.
    void compare_stream_groups(const run_ptr& r, const std::string& key);
    [[nodiscard]] bool cancelled(const run& r) const;
    void check_extra_keys(const run_ptr& r, std::vector<std::string> keys);
    void prune_keys(const run_ptr& r, std::vector<std::string> keys);
    void count_outcome(const run_ptr& r, shadow_outcome o);
    void add(const run_ptr& r, std::uint64_t sync_progress::*field, std::uint64_t n = 1);
    [[nodiscard]] const char* prefix() const noexcept {
        return kind_ == kind::sync ? "sync" : "verify";
    }

    asio::io_context& control_;
    shared_state& st_;
    const kind kind_;
    std::unique_ptr<asio::steady_timer> timer_;  // control thread only
    std::atomic<std::size_t> in_flight_{0};      // VERIFY: keys being compared

    mutable std::mutex mu_;
    sync_progress p_;
    std::uint64_t generation_ = 0;  // a new start or a stop ends the steps of the old run
    side source_ = side::primary;   // of the last run (for progress)
    std::uint64_t repaired_at_start_ = 0;
    std::chrono::steady_clock::time_point started_{};
    std::chrono::steady_clock::time_point last_log_{};

    obs::counter* scanned_total_ = nullptr;
    obs::counter* runs_total_ = nullptr;
    obs::counter* rescans_total_ = nullptr;
    obs::gauge* running_gauge_ = nullptr;
    obs::counter* chunked_total_ = nullptr;  // VERIFY only
    obs::counter* groups_total_ = nullptr;   // VERIFY only
};

}  // namespace respite::proxy::server
