// merge_hint: the effects module's word to the replayer that consecutive writes may be sent to
// the secondary as one command. Shared by both so that neither depends on the other.
#pragma once

#include <cstdint>
#include <string_view>

namespace respite::proxy {

// How a write replayed as one command may merge with the next writes of its lane into one
// command (fewer, larger writes to the secondary: its per-command cost dominates). The caller
// vouches that the merged command has the effect of the sequence in order. An error reply to
// the merged command counts as one to each of them (their keys turn dirty and are copied).
struct merge_hint {
    // Leading arguments that form the merged command's head (0: never merged). Without a rename,
    // only commands with equal heads merge: LPUSH k x + LPUSH k y -> LPUSH k x y (head 2).
    std::uint8_t head = 0;
    // Static text: the merged command's name, replacing the head of each command, whose other
    // arguments are joined in order: SET a 1 + SET b 2 -> MSET a 1 b 2 (head 1, "MSET"). Keys
    // of such commands differ: on a cluster target they merge only within one hash slot.
    std::string_view rename;
};

}  // namespace respite::proxy
