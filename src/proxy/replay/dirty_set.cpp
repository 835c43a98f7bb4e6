// The bounded, ordered, de-duplicated set of dirty keys.
#include "dirty_set.hpp"

#include <utility>

namespace respite::proxy::replay {

dirty_set::add_result dirty_set::add(std::string_view key, bool urgent) {
    if (members_.contains(key))
        return add_result::present;
    if (order_.size() >= capacity_)
        return add_result::over_capacity;
    auto& stored = urgent ? order_.emplace_front(key) : order_.emplace_back(key);
    members_.insert(std::string_view(stored));
    return add_result::added;
}

std::optional<std::string> dirty_set::pop() {
    if (order_.empty())
        return std::nullopt;
    members_.erase(std::string_view(order_.front()));
    std::string key = std::move(order_.front());
    order_.pop_front();
    return key;
}

}  // namespace respite::proxy::replay
