// Small text helpers the server's command handling shares (private to src/proxy/server).
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include <respite/client/command_info.hpp>

namespace respite::proxy::server {

// `arg` is one of `names`, in any case.
inline bool any_of(std::string_view arg, std::initializer_list<std::string_view> names) {
    for (auto n : names)
        if (client::iequals(arg, n))
            return true;
    return false;
}

inline std::string lower_copy(std::string_view s) {
    std::string r(s);
    for (auto& ch : r)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return r;
}

// Redis's arity error for the command (or "container|subcommand") `name`.
inline std::string wrong_args(std::string_view name) {
    return "ERR wrong number of arguments for '" + lower_copy(name) + "' command";
}

// A whole decimal integer as Redis reads one (string2ll), or nullopt: no sign but '-', no
// leading zeros ("03"), no "-0".
inline std::optional<std::int64_t> to_int(std::string_view s) {
    const auto digits = s.starts_with('-') ? s.substr(1) : s;
    if (digits.empty() || (digits[0] == '0' && (digits.size() > 1 || digits.size() != s.size())))
        return std::nullopt;
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size())
        return std::nullopt;
    return v;
}

}  // namespace respite::proxy::server
