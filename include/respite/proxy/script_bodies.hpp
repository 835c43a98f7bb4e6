// The bodies of the Lua scripts the proxy saw (SCRIPT LOAD, EVAL), by SHA1, so that an EVALSHA
// is replayed on the follower as EVAL of its body: the follower then runs it even if it never
// loaded the script (it restarted, was flushed, or the SCRIPT LOAD went on another lane). A
// script the proxy never saw (loaded before the migration began) stays EVALSHA.
//
// Owned by the caller of effects::translate (effect_context::scripts); thread-safe; bounded in
// bytes (the oldest bodies go first).
#pragma once

#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace respite::proxy {

class script_bodies {
  public:
    explicit script_bodies(std::size_t max_bytes = std::size_t{64} << 20) : max_bytes_(max_bytes) {}

    // Remembers `body` under its SHA1 (as Redis names it).
    void remember(std::string_view body);
    // The body of script `sha` (hex, any case), if remembered.
    [[nodiscard]] std::optional<std::string> find(std::string_view sha) const;
    // SCRIPT FLUSH.
    void clear();
    [[nodiscard]] std::size_t size() const;

    // Lowercase hex SHA1 of `body`, Redis's name for a script.
    [[nodiscard]] static std::string sha1_hex(std::string_view body);

  private:
    mutable std::mutex mu_;
    std::unordered_map<std::string, std::string> by_sha_;
    std::deque<std::string> order_;  // shas, oldest first
    std::size_t bytes_ = 0;
    std::size_t max_bytes_;
};

}  // namespace respite::proxy
