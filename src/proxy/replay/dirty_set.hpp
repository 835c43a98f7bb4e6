// The keys whose secondary copy may differ from the primary, in repair order, bounded.
//
// Not thread-safe (the replayer guards it with a mutex). Urgent keys (copy items, divergence
// found by a shadow read) go to the front.
//
// Each key carries the sequence number of when it turned dirty (after its last copy). A key
// taken out for a copy that did not happen goes back with its old number, so "every key
// dirty at mark() has been copied since" is a count kept as keys come and go
// (remaining_at_mark()): PROXY SYNC ends on it while hot keys keep turning dirty again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace respite::proxy::replay {

class dirty_set {
  public:
    struct entry {
        std::string key;
        std::uint64_t seq = 0;
    };

    explicit dirty_set(std::size_t capacity) : capacity_(capacity) {}
    dirty_set(const dirty_set&) = delete;
    dirty_set& operator=(const dirty_set&) = delete;

    enum class add_result { added, present, over_capacity };
    // seq 0: dirty from now; otherwise the number a popped entry had (kept; an older one wins
    // over the number of a key already back in the set).
    add_result add(std::string_view key, bool urgent = false, std::uint64_t seq = 0);
    // The next key to repair (urgent first, then oldest), removed from the set.
    std::optional<entry> pop();

    // Every key now in the set is at or below the mark; later ones are above it.
    std::uint64_t mark() noexcept {
        mark_ = next_seq_;
        at_mark_ = order_.size();
        return mark_;
    }
    [[nodiscard]] std::uint64_t current_mark() const noexcept { return mark_; }
    // Keys in the set dirty since the last mark() or before.
    [[nodiscard]] std::size_t remaining_at_mark() const noexcept { return at_mark_; }
    [[nodiscard]] bool at_or_below_mark(std::uint64_t seq) const noexcept {
        return mark_ != 0 && seq <= mark_;
    }

    // Calls fn(std::string_view) for every key, in repair order.
    template <class F>
    void for_each(F&& fn) const {
        for (const auto& e : order_)
            fn(std::string_view(e.key));
    }

    [[nodiscard]] bool contains(std::string_view key) const { return members_.contains(key); }
    [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }
    [[nodiscard]] bool empty() const noexcept { return order_.empty(); }

  private:
    std::size_t capacity_;
    std::uint64_t next_seq_ = 0;
    std::uint64_t mark_ = 0;  // 0: none
    std::size_t at_mark_ = 0;
    // References to deque elements survive push/pop at either end, so the map can point at them.
    std::deque<entry> order_;
    std::unordered_map<std::string_view, entry*> members_;
};

}  // namespace respite::proxy::replay
