#include <algorithm>
#include <array>
#include <cstring>
#include <pthread.h>
#include <sched.h>

#include <respite/obs/thread_name.hpp>

namespace respite::obs {

void name_this_thread(std::string_view name) noexcept {
    std::array<char, 16> buf{};
    const auto n = std::min(name.size(), buf.size() - 1);
    std::memcpy(buf.data(), name.data(), n);
    pthread_setname_np(pthread_self(), buf.data());
}

bool make_this_thread_background() noexcept {
#ifdef SCHED_BATCH
    sched_param p{};
    p.sched_priority = 0;
    return pthread_setschedparam(pthread_self(), SCHED_BATCH, &p) == 0;
#else
    return false;
#endif
}

}  // namespace respite::obs
