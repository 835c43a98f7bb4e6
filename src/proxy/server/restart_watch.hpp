// Backend restarts: each backend's run_id (INFO server) is read periodically on the control
// thread. A new run_id means the server restarted. The follower repairs the keys whose writes
// failed while it was down, but writes it had acknowledged before the restart are gone too when
// its persistence lagged (RDB snapshots, AOF everysec) — the proxy cannot tell which. So a
// follower that restarted is flagged: the cut-over to it is refused (without FORCE) until a
// PROXY SYNC that started after the restart completed, or, with --resync-on-restart, a PROXY
// SYNC starts at once.
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
    // following, read from the state file).
    void flag(side s, std::string_view reason);
    // Called (outside the lock) whenever a needs-sync flag changes.
    void set_on_change(std::function<void()> f) { on_change_ = std::move(f); }
    // Lines for INFO proxy.
    [[nodiscard]] std::string info_lines() const;

  private:
    void check();
    void schedule();
    void on_run_id(side s, std::string run_id);
    void observe(side s, std::string run_id, bool follows);

    asio::io_context& control_;
    shared_state& st_;
    std::unique_ptr<asio::steady_timer> timer_;
    bool stopped_ = false;

    mutable std::mutex mu_;
    std::array<std::string, 2> run_id_{};
    std::array<std::uint64_t, 2> restarts_{};
    std::array<bool, 2> needs_sync_{};
    std::array<obs::counter*, 2> restarts_total_{};
    std::function<void()> on_change_;  // set before start()
};

}  // namespace respite::proxy::server
