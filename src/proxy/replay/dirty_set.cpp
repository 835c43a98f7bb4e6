// The bounded, ordered, de-duplicated set of dirty keys.
#include "dirty_set.hpp"

#include <utility>

namespace respite::proxy::replay {

dirty_set::add_result dirty_set::add(std::string_view key, bool urgent, std::uint64_t seq) {
    if (auto it = members_.find(key); it != members_.end()) {
        entry& e = *it->second;
        if (seq != 0 && seq < e.seq) {
            if (at_or_below_mark(seq) && !at_or_below_mark(e.seq))
                ++at_mark_;
            e.seq = seq;
        }
        return add_result::present;
    }
    if (order_.size() >= capacity_)
        return add_result::over_capacity;
    if (seq == 0)
        seq = ++next_seq_;
    auto& stored = urgent ? order_.emplace_front(entry{std::string(key), seq})
                          : order_.emplace_back(entry{std::string(key), seq});
    members_.emplace(std::string_view(stored.key), &stored);
    if (at_or_below_mark(seq))
        ++at_mark_;
    return add_result::added;
}

std::optional<dirty_set::entry> dirty_set::pop() {
    if (order_.empty())
        return std::nullopt;
    members_.erase(std::string_view(order_.front().key));
    entry e = std::move(order_.front());
    order_.pop_front();
    if (at_or_below_mark(e.seq))
        --at_mark_;
    return e;
}

}  // namespace respite::proxy::replay
