// The keys whose secondary copy may differ from the primary, in repair order, bounded.
//
// Not thread-safe (the replayer guards it with a mutex). Urgent keys (copy items, divergence
// found by a shadow read) go to the front.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>

namespace respite::proxy::replay {

class dirty_set {
  public:
    explicit dirty_set(std::size_t capacity) : capacity_(capacity) {}
    dirty_set(const dirty_set&) = delete;
    dirty_set& operator=(const dirty_set&) = delete;

    enum class add_result { added, present, over_capacity };
    add_result add(std::string_view key, bool urgent = false);
    // The next key to repair (urgent first, then oldest), removed from the set.
    std::optional<std::string> pop();

    // Calls fn(std::string_view) for every key, in repair order.
    template <class F>
    void for_each(F&& fn) const {
        for (const auto& k : order_)
            fn(std::string_view(k));
    }

    [[nodiscard]] bool contains(std::string_view key) const { return members_.contains(key); }
    [[nodiscard]] std::size_t size() const noexcept { return order_.size(); }
    [[nodiscard]] bool empty() const noexcept { return order_.empty(); }

  private:
    std::size_t capacity_;
    // References to deque elements survive push/pop at either end, so the set can view them.
    std::deque<std::string> order_;
    std::unordered_set<std::string_view> members_;
};

}  // namespace respite::proxy::replay
