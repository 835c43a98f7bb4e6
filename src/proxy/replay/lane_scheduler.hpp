// Sans-I/O ordering of secondary writes over lanes: which queued entries may be sent now.
//
// Each lane is a FIFO with one ordered connection. An entry touches one lane (its key's) or
// several (multi-key writes, transactions, keyspace-wide writes); it runs on the connection of
// its first lane, its home. An entry may be sent when, on every lane it touches, each entry
// before it has completed or was sent on the same connection (so the connection keeps the
// order). Hence single-lane entries pipeline freely, and a multi-lane entry is a barrier: it
// waits for the other lanes to drain up to it, and those lanes wait for it to complete.
//
// Not thread-safe: the replayer's thread owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace respite::proxy::replay {

using entry_id = std::uint64_t;  // increasing from 1 in push order

class lane_scheduler {
  public:
    explicit lane_scheduler(std::size_t lanes);

    // Appends an entry on `lanes` (any order, duplicates allowed; empty: every lane).
    entry_id push(std::span<const std::size_t> lanes);

    // Marks as sent and returns, in order, up to `max` entries whose home is `lane` and that may
    // be sent now.
    std::vector<entry_id> take_ready(std::size_t lane, std::size_t max);

    // A sent entry was applied or failed.
    void complete(entry_id id);

    // Removes every entry not yet sent that touches `lane` (its connection failed); returns them
    // in push order. Entries behind them on other lanes may then proceed.
    std::vector<entry_id> cancel_waiting(std::size_t lane);

    // True when every entry pushed on `lane` with an id <= upto has completed or was cancelled.
    [[nodiscard]] bool done_through(std::size_t lane, entry_id upto) const noexcept;
    // The oldest entry not completed (0 when none).
    [[nodiscard]] entry_id oldest() const noexcept;
    [[nodiscard]] entry_id last_id() const noexcept { return next_id_ - 1; }
    [[nodiscard]] std::size_t lanes() const noexcept { return lanes_.size(); }
    // Entries neither completed nor cancelled.
    [[nodiscard]] std::size_t size() const noexcept { return active_; }
    [[nodiscard]] bool empty() const noexcept { return active_ == 0; }
    // The lanes an entry touches (sorted; the first is its home); the entry must exist.
    [[nodiscard]] std::vector<std::size_t> lanes_of(entry_id id) const;

  private:
    enum class state : std::uint8_t { waiting, sent, done };
    struct node {
        entry_id id = 0;
        std::size_t single = 0;          // the lane, when it touches one (no allocation)
        std::vector<std::size_t> multi;  // else every lane: sorted, unique
        state st = state::waiting;
        std::size_t refs = 0;  // lanes still holding it
        [[nodiscard]] std::span<const std::size_t> lanes() const noexcept {
            return multi.empty() ? std::span<const std::size_t>(&single, 1)
                                 : std::span<const std::size_t>(multi);
        }
        [[nodiscard]] std::size_t home() const noexcept { return lanes().front(); }
    };
    struct lane {
        std::deque<node*> q;
        // Length of the prefix that can never block an entry homed here again: completed
        // entries and entries sent on this lane's connection.
        std::size_t clear_prefix = 0;
    };

    [[nodiscard]] bool clear_before(const node& n, std::size_t lane) const noexcept;
    void retire_front(std::size_t lane);
    [[nodiscard]] node* find(entry_id id) noexcept;
    [[nodiscard]] const node* find(entry_id id) const noexcept;

    std::vector<lane> lanes_;
    // Entries by id: nodes_[id - base_]. Ids are consecutive, so nothing is hashed; a node no
    // lane holds any more (refs 0) leaves once every older one has left.
    std::deque<node> nodes_;
    entry_id base_ = 1;
    entry_id next_id_ = 1;
    std::size_t active_ = 0;
};

}  // namespace respite::proxy::replay
