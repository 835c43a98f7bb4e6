// At most one log line per period, counting what it suppressed (a flood of the same event:
// refused writes, failed accepts).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace respite::obs {

// Thread-safe.
class log_limiter {
  public:
    explicit log_limiter(std::chrono::milliseconds period) : period_(period) {}

    // True when a line may be logged now; `suppressed` gets the count skipped since the last.
    bool allow(std::uint64_t& suppressed) noexcept {
        const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
        auto last = last_.load(std::memory_order_relaxed);
        const auto period =
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(period_).count();
        if ((last != 0 && now - last < period) ||
            !last_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
            skipped_.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
        suppressed = skipped_.exchange(0, std::memory_order_relaxed);
        return true;
    }

  private:
    std::chrono::milliseconds period_;
    std::atomic<std::chrono::steady_clock::rep> last_{0};
    std::atomic<std::uint64_t> skipped_{0};
};

}  // namespace respite::obs
