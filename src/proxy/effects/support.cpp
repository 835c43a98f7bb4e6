// Readers of arguments and replies shared by the effect rules.
#include <charconv>

#include "rules.hpp"

namespace respite::proxy::effects_detail {

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    }
    return true;
}

bool parse_int(std::string_view s, std::int64_t& out) noexcept {
    if (s.empty())
        return false;
    const auto* end = s.data() + s.size();
    auto [p, ec] = std::from_chars(s.data(), end, out);
    return ec == std::errc{} && p == end;
}

bool reply_int(const resp::value& v, std::int64_t& out) noexcept {
    if (v.type() == resp::type::boolean) {
        out = v.boolean() ? 1 : 0;
        return true;
    }
    return v.to_int64(out);
}

const std::string* reply_text(const resp::value& v) noexcept {
    return v.is_string() ? &v.str() : nullptr;
}

bool absolute_ms(std::int64_t base, std::int64_t amount, std::int64_t unit,
                 std::int64_t& out) noexcept {
    std::int64_t scaled = 0;
    return !__builtin_mul_overflow(amount, unit, &scaled) &&
           !__builtin_add_overflow(base, scaled, &out);
}

command make(std::initializer_list<std::string_view> parts) {
    command c;
    c.reserve(parts.size());
    for (auto p : parts)
        c.emplace_back(p);
    return c;
}

command verbatim(args_t args) {
    return command(args.begin(), args.end());
}

void cannot_derive(secondary_write& out) {
    out.commands.clear();
    out.copy = true;
}

}  // namespace respite::proxy::effects_detail
