// Helpers for tests of a server that runs out of memory: values that stay big once DUMPed, and
// a maxmemory just above what the server uses.
#pragma once

#include <cstddef>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "support/redis_server.hpp"

namespace respite::test {

// A value DUMP cannot compress (LZF finds no repeats), so copying it takes as much room as
// writing it.
inline std::string incompressible(std::size_t n) {
    std::mt19937 gen(7);
    std::uniform_int_distribution<int> pick('!', '~');
    std::string v(n, ' ');
    for (auto& c : v)
        c = static_cast<char>(pick(gen));
    return v;
}

// maxmemory just above what `s` uses (noeviction, the default): a write or a copy of a few MB is
// refused with OOM.
inline void leave_no_room(const redis_server& s) {
    const auto memory = s.cli({"INFO", "memory"});
    const auto at = memory.find("used_memory:");
    ASSERT_NE(at, std::string::npos) << memory;
    const auto used = std::stoull(memory.substr(at + 12));
    s.cli({"CONFIG", "SET", "maxmemory", std::to_string(used + (1 << 20))});
}

}  // namespace respite::test
