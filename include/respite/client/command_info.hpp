// What the client needs to know about a command before sending it: does it block, for how long,
// does it change the connection's mode. (The full key-position table arrives with cluster support.)
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string_view>

namespace respite::client {

enum class command_kind : unsigned char {
    ordinary,
    blocking,     // BLPOP, XREAD BLOCK, WAIT, ...: the reply may take as long as the block time
    subscribe,    // SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE (replies are push confirmations)
    unsubscribe,  // UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE
    connection_state,  // SELECT, MULTI, EXEC, DISCARD, WATCH, UNWATCH, RESET, CLIENT, HELLO, AUTH,
                       // QUIT, MONITOR
};

// ASCII case-insensitive equality, as Redis matches command names.
bool iequals(std::string_view a, std::string_view b) noexcept;

command_kind classify(std::span<const std::string_view> args) noexcept;

// For a blocking command: how long the server may block. nullopt: unbounded (a block of 0) or
// not a blocking command (see classify). `is_blocking` tells the two apart.
struct block_time {
    bool is_blocking = false;
    std::optional<std::chrono::milliseconds> duration;
};
block_time blocking_time(std::span<const std::string_view> args) noexcept;

}  // namespace respite::client
