// Small text helpers the server's command handling shares (private to src/proxy/server).
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace respite::proxy::server {

inline std::string lower_copy(std::string_view s) {
    std::string r(s);
    for (auto& ch : r)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return r;
}

// A whole decimal integer, or nullopt.
inline std::optional<std::int64_t> to_int(std::string_view s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || p != s.data() + s.size())
        return std::nullopt;
    return v;
}

}  // namespace respite::proxy::server
