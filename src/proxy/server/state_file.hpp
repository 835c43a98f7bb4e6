// The proxy's state file (--state-file): what a restarted proxy must not forget.
//
// A proxy that restarts with its command line's --mode after a cut-over done at run time would
// send writes to the old side again; one that crashed while following may have lost writes in
// flight to the follower. The file keeps the current mode, whether the last run ended cleanly,
// which side still needs a PROXY SYNC, and how many dirty keys the last clean stop left for
// each side in the dirty-key list (dirty_list.hpp). Written atomically (temporary file, fsync,
// rename).
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include <respite/proxy/proxy.hpp>

namespace respite::proxy::server {

struct persisted_state {
    mode current = mode::primary_only;
    bool clean_shutdown = false;       // the last run stopped gracefully
    std::array<bool, 2> needs_sync{};  // [primary, secondary]: copy again before serving it
    // [primary, secondary]: keys in <state-file>.dirty the side lacks (written at a clean stop).
    std::array<std::uint64_t, 2> dirty_saved{};
};

// The file's text, and its parse (an error names the line).
std::string format_state(const persisted_state& s);
std::expected<persisted_state, std::string> parse_state(std::string_view text);

// nullopt when the file does not exist; an error when it cannot be read or parsed.
std::expected<std::optional<persisted_state>, std::string> read_state(const std::string& path);
// Replaces path with data: a temporary file next to it, fsync, rename.
std::expected<void, std::string> write_file_atomically(const std::string& path,
                                                       std::string_view data);
std::expected<void, std::string> write_state(const std::string& path, const persisted_state& s);

}  // namespace respite::proxy::server
