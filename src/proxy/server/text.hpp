// Small text helpers the server's command handling shares (private to src/proxy/server).
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <respite/client/command_info.hpp>
#include <respite/commands/command_table.hpp>

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

// Redis's first checks of a request (processCommand, before AUTH and everything else): an unknown
// command, an unknown subcommand of a container, a wrong argument count; with Redis 7.0's text.
// nullopt when the request passes them.
inline std::optional<std::string> redis_refusal(const commands::command_table& t,
                                                std::span<const std::string_view> args) {
    const auto* spec = t.lookup(args);
    if (spec != nullptr)
        return spec->arity_ok(args.size()) ? std::nullopt : std::optional(wrong_args(spec->name));
    const auto* container = t.find(args[0]);
    if (container != nullptr && args.size() >= 2) {
        std::string upper(args[0]);
        for (auto& ch : upper)
            ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        return "ERR unknown subcommand '" + std::string(args[1].substr(0, 128)) + "'. Try " +
               upper + " HELP.";
    }
    std::string some;  // Redis quotes arguments until 128 characters are shown
    for (std::size_t i = 1; i < args.size() && some.size() < 128; ++i)
        some += "'" + std::string(args[i].substr(0, 128 - some.size())) + "' ";
    return "ERR unknown command '" + std::string(args[0].substr(0, 128)) +
           "', with args beginning with: " + some;
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
