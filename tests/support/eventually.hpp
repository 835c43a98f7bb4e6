// Test helper: wait on a condition with a deadline instead of a fixed sleep.
#pragma once

#include <chrono>
#include <thread>

namespace respite::test {

// Polls `cond` until it holds or the deadline passes; the last poll decides.
template <class F>
bool eventually(F&& cond, std::chrono::milliseconds limit = std::chrono::seconds(10),
                std::chrono::milliseconds poll = std::chrono::milliseconds(5)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond())
            return true;
        std::this_thread::sleep_for(poll);
    }
    return cond();
}

}  // namespace respite::test
