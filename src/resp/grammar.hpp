// RESP grammar shared by parser, frame_scanner and request_parser: line ends and line payloads.
//
// Every check here is a pure function of bytes already seen, so a reader that is fed a message
// split at any byte reaches the same verdict, at the same byte, as one fed the whole message.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>

#include <respite/resp/error.hpp>

namespace respite::resp::detail {

// Type bytes that may start a value, plus the stream pieces ';' and '.'.
constexpr bool is_type_byte(char c) noexcept {
    switch (c) {
        case '+':
        case '-':
        case ':':
        case '$':
        case '*':
        case '_':
        case ',':
        case '#':
        case '!':
        case '=':
        case '(':
        case '%':
        case '~':
        case '|':
        case '>':
        case ';':
        case '.':
            return true;
        default:
            return false;
    }
}

constexpr bool is_aggregate_byte(char c) noexcept {
    return c == '*' || c == '%' || c == '~' || c == '|' || c == '>';
}

// Maps and attributes count two elements per declared pair.
constexpr bool is_pair_aggregate_byte(char c) noexcept {
    return c == '%' || c == '|';
}

enum class line_status : std::uint8_t { complete, need_more, failed };

struct line_scan {
    line_status status;
    std::size_t content;  // complete: content bytes in this chunk; need_more: bytes to keep
    bool ends_with_cr;    // need_more: the chunk's last byte is the CR (not counted in content)
    error err;
};

// Looks for the end of a line's content ("...\r\n") in p[0, avail). `so_far` content bytes were
// seen in earlier chunks. The content may hold neither CR nor LF and at most `max` bytes; the
// first byte that breaks a rule decides the error.
inline line_scan scan_line(const char* p, std::size_t avail, std::size_t so_far,
                           std::size_t max) noexcept {
    const std::size_t cap = max - so_far;  // content bytes still allowed
    const std::size_t window = avail < cap + 1 ? avail : cap + 1;
    std::size_t i = 0;
    while (i < window && p[i] != '\r' && p[i] != '\n') {
        ++i;
    }
    if (i == window) {
        if (avail > cap) {
            return {line_status::failed, 0, false, error::line_too_long};
        }
        return {line_status::need_more, avail, false, error::ok};
    }
    if (p[i] == '\n') {
        return {line_status::failed, 0, false, error::missing_crlf};
    }
    if (i + 1 == avail) {
        return {line_status::need_more, i, true, error::ok};
    }
    if (p[i + 1] != '\n') {
        return {line_status::failed, 0, false, error::missing_crlf};
    }
    return {line_status::complete, i, false, error::ok};
}

// Signed 64-bit decimal: optional '-', then digits. The full range, -2^63 included.
inline bool parse_int64(std::string_view s, std::int64_t& out) noexcept {
    std::size_t i = 0;
    const bool negative = !s.empty() && s[0] == '-';
    if (negative) {
        i = 1;
    }
    if (i == s.size()) {
        return false;
    }
    const std::uint64_t limit = negative ? (std::uint64_t{1} << 63) : (std::uint64_t{1} << 63) - 1;
    std::uint64_t v = 0;
    for (; i < s.size(); ++i) {
        const auto d = static_cast<unsigned>(static_cast<unsigned char>(s[i])) - '0';
        if (d > 9 || v > (limit - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    // Modular conversion (defined since C++20) turns 2^63 into -2^63.
    out = static_cast<std::int64_t>(negative ? ~v + 1 : v);
    return true;
}

enum class length_kind : std::uint8_t { count, null, streamed };

// A length field: a decimal >= -1 (-1 only where `allow_null`), or '?' where `allow_stream`.
inline error parse_length(std::string_view s, bool allow_null, bool allow_stream, length_kind& kind,
                          std::int64_t& n) noexcept {
    if (s.size() == 1 && s[0] == '?') {
        kind = length_kind::streamed;
        return allow_stream ? error::ok : error::invalid_length;
    }
    if (!parse_int64(s, n) || n < -1 || (n == -1 && !allow_null)) {
        return error::invalid_length;
    }
    kind = n == -1 ? length_kind::null : length_kind::count;
    return error::ok;
}

// RESP3 double: what std::from_chars accepts (so "10", "1.5e10", "inf", "-inf", "nan", and
// leniently "-nan", "NAN", "nan(...)"), except a leading '.'. Locale independent.
inline bool parse_double(std::string_view s, double& out) noexcept {
    const std::size_t digits = !s.empty() && s[0] == '-' ? 1 : 0;
    if (digits >= s.size() || s[digits] == '.') {
        return false;
    }
    const char* end = s.data() + s.size();
    const auto [ptr, ec] = std::from_chars(s.data(), end, out);
    return ec == std::errc() && ptr == end;
}

inline bool is_big_number(std::string_view s) noexcept {
    std::size_t i = !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (i == s.size()) {
        return false;
    }
    for (; i < s.size(); ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

inline bool is_boolean(std::string_view s) noexcept {
    return s.size() == 1 && (s[0] == 't' || s[0] == 'f');
}

// Validates the content of a scalar line (+ - : , # ( _ .), the same way in every reader.
inline error check_scalar_line(char type, std::string_view s) noexcept {
    switch (type) {
        case ':': {
            std::int64_t n = 0;
            return parse_int64(s, n) ? error::ok : error::invalid_integer;
        }
        case ',': {
            double d = 0;
            return parse_double(s, d) ? error::ok : error::invalid_double;
        }
        case '#':
            return is_boolean(s) ? error::ok : error::invalid_boolean;
        case '(':
            return is_big_number(s) ? error::ok : error::invalid_big_number;
        case '_':
        case '.':
            return s.empty() ? error::ok : error::missing_crlf;
        default:
            return error::ok;
    }
}

// A verbatim payload starts with a three-byte format and ':'.
inline bool is_verbatim_payload(std::string_view s) noexcept {
    return s.size() >= 4 && s[3] == ':';
}

}  // namespace respite::resp::detail
