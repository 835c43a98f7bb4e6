// The per-fingerprint cooldown that keeps one recurring divergence from flooding a sink.
#include <respite/proxy/divergence.hpp>

namespace respite::proxy {

cooldown::cooldown(clock::duration period, std::size_t capacity)
    : period_(period), capacity_(capacity) {}

bool cooldown::allow(std::string_view fingerprint, clock::time_point now) {
    if (auto it = last_.find(fingerprint); it != last_.end()) {
        if (now - it->second < period_) {
            return false;
        }
        it->second = now;
        return true;
    }
    if (last_.size() >= capacity_) {
        // Only at capacity: a sweep per call would cost O(n) on every report.
        evicted_ +=
            std::erase_if(last_, [&](const auto& entry) { return now - entry.second >= period_; });
    }
    if (last_.size() >= capacity_) {
        ++refused_;
        return false;
    }
    last_.emplace(std::string(fingerprint), now);
    return true;
}

}  // namespace respite::proxy
