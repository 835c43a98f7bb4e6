// Backend restarts: each backend's run_id (INFO server) is read periodically on the control
// thread. A new run_id means the server restarted. The follower repairs the keys whose writes
// failed while it was down, but writes it had acknowledged before the restart are gone too when
// its persistence lagged (RDB snapshots, AOF everysec) — the proxy cannot tell which. So a
// follower that restarted is flagged: the cut-over to it is refused (without FORCE) until a
// PROXY SYNC that started after the restart completed, or, with --resync-on-restart, a PROXY
// SYNC starts at once.
//
// A Redis Cluster side is watched master by master (INFO server on each master of the slot
// map). It restarted when a master kept its address but not its run_id, or when a failover
// happened: a master of the last check is no longer one and its slots are now served by a node
// that was not a master then (a promoted replica may lack writes the old master acknowledged).
// Slots that move between masters (resharding, MIGRATE) lose nothing and are not a restart.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "worker.hpp"

namespace respite::obs {
class counter;
}

namespace respite::proxy::server {

class restart_watch : public std::enable_shared_from_this<restart_watch> {
  public:
    restart_watch(asio::io_context& control, shared_state& st);

    // First check now, then every cfg.restart_check_interval (nothing when it is 0).
    void start();
    // After the control thread stopped and before its io_context goes.
    void shutdown();

    // Reads side s's run_id now (waits up to `limit`; not from a backend's thread) and records a
    // restart the periodic check has not seen yet, counted as one while following.
    void check_now(side s, std::chrono::milliseconds limit);
    // Drops side s's flag (an operator forced past it).
    void clear(side s, std::string_view reason);
    // Restarts seen so far on side s (the epoch a PROXY SYNC records when it starts).
    [[nodiscard]] std::uint64_t epoch(side s) const;
    // Side s restarted while it followed and no PROXY SYNC completed since.
    [[nodiscard]] bool needs_sync(side s) const;
    // A PROXY SYNC into `target` that started at `epoch_at_start` completed.
    void synced(side target, std::uint64_t epoch_at_start);
    // Side s must be copied again before it serves (a proxy that did not stop cleanly while
    // following, read from the state file; writes it did not follow).
    // `planned`: a step of the runbook (a mode switch), logged as a warning, not an error.
    void flag(side s, std::string_view reason, bool planned = false);
    // Called (outside the lock) whenever a needs-sync flag changes.
    void set_on_change(std::function<void()> f) { on_change_ = std::move(f); }
    // Lines for INFO proxy.
    [[nodiscard]] std::string info_lines() const;

  private:
    // One look at a cluster side: each master's address, run_id ("" when INFO failed) and
    // slot ranges.
    struct master_seen {
        std::string address;
        std::string run_id;
        std::vector<cluster::slot_range> ranges;
    };
    using cluster_view = std::vector<master_seen>;
    // Reads the view of side s; done(view) runs on a backend's thread (an empty view when the
    // side has no slot map yet).
    void read_cluster(side s, std::function<void(cluster_view)> done);
    void on_cluster_view(side s, cluster_view view, bool follows);
    // Counts a restart of side s (`what` for the log) and flags it when it follows.
    void record_restart(side s, bool follows, std::string_view what);
    void check();
    void schedule();
    void on_run_id(side s, std::string run_id);
    // Side s follows the serving side now (its restarts flag it).
    [[nodiscard]] bool follows(side s) const;
    void observe(side s, std::string run_id, bool follows);
    // The followers compare their writes' replies only into a side that needs no sync
    // (replayer::check_replies). Called after a flag changes (takes the lock).
    void tell_followers();

    asio::io_context& control_;
    shared_state& st_;
    std::unique_ptr<asio::steady_timer> timer_;
    bool stopped_ = false;

    mutable std::mutex mu_;
    std::array<std::string, 2> run_id_{};
    std::array<cluster_view, 2> cluster_seen_{};  // mu_; empty until a first complete look
    std::array<std::uint64_t, 2> restarts_{};
    std::array<std::uint64_t, 2> flags_{};  // flag() calls: part of epoch()
    std::array<bool, 2> needs_sync_{};
    std::array<obs::counter*, 2> restarts_total_{};
    std::function<void()> on_change_;  // set before start()
};

}  // namespace respite::proxy::server
