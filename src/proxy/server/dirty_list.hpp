// The dirty-key list a proxy leaves next to its state file at a clean stop (<state-file>.dirty).
//
// Keys the follower had not repaired when the proxy stopped would otherwise force a full PROXY
// SYNC before the cut-over; the next run hands them to its follower's repair instead. Keys are
// arbitrary bytes, so each is length-prefixed; a header names the side that lacks them, and a
// trailer holds the count and a checksum, so a truncated or altered file is an error, never a
// shorter list. Written atomically (temporary file, fsync, rename).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace respite::proxy::server {

// Where the list of the state file at `state_file` lives.
std::string dirty_list_path(const std::string& state_file);

// `follower`: the side the keys must be copied to ("primary" or "secondary").
std::string format_dirty_list(std::string_view follower, std::span<const std::string> keys);
// The keys, or an error when the file is damaged or belongs to another side.
std::expected<std::vector<std::string>, std::string> parse_dirty_list(std::string_view data,
                                                                      std::string_view follower);

// nullopt when the file does not exist; an error when it cannot be read or parsed.
std::expected<std::optional<std::vector<std::string>>, std::string> read_dirty_list(
    const std::string& path, std::string_view follower);
std::expected<void, std::string> write_dirty_list(const std::string& path,
                                                  std::string_view follower,
                                                  std::span<const std::string> keys);

}  // namespace respite::proxy::server
