#include <algorithm>
#include <array>
#include <cstring>
#include <pthread.h>

#include <respite/obs/thread_name.hpp>

namespace respite::obs {

void name_this_thread(std::string_view name) noexcept {
    std::array<char, 16> buf{};
    const auto n = std::min(name.size(), buf.size() - 1);
    std::memcpy(buf.data(), name.data(), n);
    pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace respite::obs
