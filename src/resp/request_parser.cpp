// request_parser: RESP multibulk requests and Redis-style inline commands, resumable by offset.
#include <algorithm>
#include <cstring>

#include <respite/resp/request_parser.hpp>

#include "grammar.hpp"

namespace respite::resp {
namespace {

// isspace() in the C locale, which Redis's sdssplitargs uses.
constexpr bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

constexpr int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

}  // namespace

request_parser::request_parser(resp::limits l) : limits_(l) {}

void request_parser::reset() noexcept {
    offset_ = 0;
    request_start_ = 0;
    phase_ = phase::start;
    line_start_ = 0;
    line_cr_ = false;
    expected_args_ = -1;
    payload_left_ = 0;
    spans_.clear();
    inline_args_ = 0;
    error_.clear();
    reason_ = {};
}

request_result request_parser::fail(error e, std::string_view reason) {
    error_ = make_error_code(e);
    reason_ = reason;
    return {false, 0, false, error_, reason_};
}

// Splits like Redis's sdssplitargs(): blanks separate arguments; "double quotes" take \n \r \t
// \b \a \\ \" and \xHH escapes; 'single quotes' take \'; a closing quote must be followed by a
// blank or the end. The line is a C string there, so a NUL byte ends it.
bool request_parser::split_inline(std::string_view line) {
    line = line.substr(0, std::min(line.find('\0'), line.size()));
    const auto at = [line](std::size_t k) noexcept { return k < line.size() ? line[k] : '\0'; };
    inline_args_ = 0;
    std::size_t i = 0;
    for (;;) {
        while (is_space(at(i))) {
            ++i;
        }
        if (at(i) == '\0') {
            return true;
        }
        if (inline_args_ == inline_storage_.size()) {
            inline_storage_.emplace_back();
        }
        std::string& current = inline_storage_[inline_args_];
        current.clear();
        bool in_double = false;
        bool in_single = false;
        bool done = false;
        while (!done) {
            const char c = at(i);
            if (in_double) {
                if (c == '\\' && at(i + 1) == 'x' && hex_digit(at(i + 2)) >= 0 &&
                    hex_digit(at(i + 3)) >= 0) {
                    current += static_cast<char>(hex_digit(at(i + 2)) * 16 + hex_digit(at(i + 3)));
                    i += 3;
                } else if (c == '\\' && at(i + 1) != '\0') {
                    ++i;
                    switch (at(i)) {
                        case 'n':
                            current += '\n';
                            break;
                        case 'r':
                            current += '\r';
                            break;
                        case 't':
                            current += '\t';
                            break;
                        case 'b':
                            current += '\b';
                            break;
                        case 'a':
                            current += '\a';
                            break;
                        default:
                            current += at(i);
                            break;
                    }
                } else if (c == '"') {
                    if (at(i + 1) != '\0' && !is_space(at(i + 1))) {
                        return false;
                    }
                    done = true;
                } else if (c == '\0') {
                    return false;
                } else {
                    current += c;
                }
            } else if (in_single) {
                if (c == '\\' && at(i + 1) == '\'') {
                    ++i;
                    current += '\'';
                } else if (c == '\'') {
                    if (at(i + 1) != '\0' && !is_space(at(i + 1))) {
                        return false;
                    }
                    done = true;
                } else if (c == '\0') {
                    return false;
                } else {
                    current += c;
                }
            } else {
                switch (c) {
                    case ' ':
                    case '\n':
                    case '\r':
                    case '\t':
                    case '\0':
                        done = true;
                        break;
                    case '"':
                        in_double = true;
                        break;
                    case '\'':
                        in_single = true;
                        break;
                    default:
                        current += c;
                        break;
                }
            }
            if (at(i) != '\0') {
                ++i;
            }
        }
        ++inline_args_;
    }
}

namespace {

// Digits of a RESP length line ("123\r\n") at p, within the first `avail` bytes; false for
// anything else (a sign, no digits, more than 18 digits, no CRLF yet), which the full parser
// then judges.
// 64-bit arithmetic: 18 digits do not fit a 32-bit size_t.
bool plain_length(const char* p, std::size_t avail, std::size_t max_line, std::uint64_t& value,
                  std::size_t& used) {
    std::size_t i = 0;
    std::uint64_t v = 0;
    while (i < avail && i < 18 && i < max_line && p[i] >= '0' && p[i] <= '9') {
        v = v * 10 + static_cast<std::uint64_t>(p[i] - '0');
        ++i;
    }
    if (i == 0 || i + 2 > avail || p[i] != '\r' || p[i + 1] != '\n')
        return false;
    value = v;
    used = i + 2;
    return true;
}

}  // namespace

bool request_parser::parse_whole(std::string_view input, std::vector<std::string_view>& args,
                                 std::size_t& length) {
    // A whole request already in the buffer, in the plain form clients send: "*N\r\n" then N
    // times "$len\r\n<bytes>\r\n", within the limits. Anything else (partial, inline, *0,
    // over a limit, malformed) is left to the state machine, from the request's first byte, so
    // results and errors are the same either way (the fuzz target checks whole against split).
    const char* const d = input.data();
    const std::size_t size = input.size();
    if (size < 4 || d[0] != '*')
        return false;
    std::uint64_t n = 0;
    std::size_t used = 0;
    if (!plain_length(d + 1, size - 1, limits_.max_line_length, n, used) || n == 0 ||
        n > std::uint64_t{limits_.max_aggregate_elements})
        return false;
    std::size_t pos = 1 + used;
    for (std::uint64_t i = 0; i < n; ++i) {
        if (pos >= size || d[pos] != '$')
            return false;
        std::uint64_t len64 = 0;
        if (!plain_length(d + pos + 1, size - pos - 1, limits_.max_line_length, len64, used) ||
            len64 > std::uint64_t{limits_.max_bulk_length})
            return false;
        const auto len = static_cast<std::size_t>(len64);  // within max_bulk_length
        pos += 1 + used;
        if (size - pos < len + 2 || d[pos + len] != '\r' || d[pos + len + 1] != '\n')
            return false;
        args.emplace_back(d + pos, len);
        pos += len + 2;
    }
    length = pos;
    return true;
}

request_result request_parser::parse(std::string_view input, std::vector<std::string_view>& args) {
    args.clear();
    if (error_) {
        return {false, 0, false, error_, reason_};
    }
    if (offset_ == 0 && phase_ == phase::start) {
        std::size_t length = 0;
        if (parse_whole(input, args, length))
            return {true, length, false, {}, {}};
        args.clear();
    }
    const char* const data = input.data();
    const std::size_t size = input.size();
    std::size_t pos = offset_;
    while (pos < size) {
        switch (phase_) {
            case phase::start:
                request_start_ = pos;
                line_start_ = pos;
                line_cr_ = false;
                if (data[pos] == '*') {
                    line_start_ = ++pos;
                    phase_ = phase::count_line;
                } else {
                    phase_ = phase::inline_line;
                }
                break;
            case phase::inline_line: {
                // The line (without its '\n') holds at most max_line_length bytes.
                const std::size_t seen = pos - line_start_;
                const std::size_t allowed = limits_.max_line_length - seen + 1;
                const std::size_t window = std::min(size - pos, allowed);
                const auto* nl = static_cast<const char*>(std::memchr(data + pos, '\n', window));
                if (nl == nullptr) {
                    if (window == allowed) {
                        return fail(error::line_too_long, "too big inline request");
                    }
                    pos = size;
                    break;
                }
                std::size_t line_end = static_cast<std::size_t>(nl - data);
                pos = line_end + 1;
                if (line_end > line_start_ && data[line_end - 1] == '\r') {
                    --line_end;
                }
                if (!split_inline(std::string_view(data + line_start_, line_end - line_start_))) {
                    return fail(error::invalid_request, "unbalanced quotes in request");
                }
                phase_ = phase::start;
                if (inline_args_ == 0) {
                    request_start_ = pos;
                    break;  // a blank line, skipped as Redis does
                }
                for (std::size_t i = 0; i < inline_args_; ++i) {
                    args.emplace_back(inline_storage_[i]);
                }
                offset_ = 0;
                request_start_ = 0;
                return {true, pos, true, {}, {}};
            }
            case phase::count_line:
            case phase::arg_line: {
                const bool count = phase_ == phase::count_line;
                std::size_t content_end = 0;
                if (line_cr_) {
                    if (data[pos] != '\n') {
                        return fail(error::missing_crlf,
                                    count ? "invalid multibulk length" : "invalid bulk length");
                    }
                    content_end = pos - 1;
                    ++pos;
                } else {
                    const auto s = detail::scan_line(data + pos, size - pos, pos - line_start_,
                                                     limits_.max_line_length);
                    if (s.status == detail::line_status::failed) {
                        if (s.err == error::line_too_long) {
                            return fail(s.err, count ? "too big mbulk count string"
                                                     : "too big bulk count string");
                        }
                        return fail(s.err,
                                    count ? "invalid multibulk length" : "invalid bulk length");
                    }
                    if (s.status == detail::line_status::need_more) {
                        line_cr_ = s.ends_with_cr;
                        pos = size;
                        break;
                    }
                    content_end = pos + s.content;
                    pos = content_end + 2;
                }
                line_cr_ = false;
                std::int64_t n = 0;
                const std::string_view content(data + line_start_, content_end - line_start_);
                const bool number = detail::parse_int64(content, n);
                if (count) {
                    if (!number) {
                        return fail(error::invalid_length, "invalid multibulk length");
                    }
                    if (n <= 0) {
                        phase_ = phase::start;  // *0 and *-1 are skipped, as Redis does
                        request_start_ = pos;
                        break;
                    }
                    if (static_cast<std::uint64_t>(n) > limits_.max_aggregate_elements) {
                        return fail(error::aggregate_too_large, "invalid multibulk length");
                    }
                    expected_args_ = n;
                    spans_.clear();
                    // Each argument takes at least four bytes ("$0\r\n" + "\r\n").
                    spans_.reserve(std::min(static_cast<std::size_t>(n), (size - pos) / 4));
                    phase_ = phase::arg_type;
                    break;
                }
                if (!number || n < 0) {
                    return fail(error::invalid_length, "invalid bulk length");
                }
                if (static_cast<std::uint64_t>(n) > limits_.max_bulk_length) {
                    return fail(error::bulk_too_large, "invalid bulk length");
                }
                const auto len = static_cast<std::size_t>(n);
                spans_.emplace_back(pos, len);
                if (size - pos >= len) {
                    pos += len;
                    phase_ = phase::arg_cr;
                } else {
                    payload_left_ = len;
                    phase_ = phase::arg_payload;
                }
                break;
            }
            case phase::arg_type:
                if (data[pos] != '$') {
                    // Redis names the byte it found: "expected '$', got ':'".
                    reason_storage_ = "expected '$', got '";
                    reason_storage_ += data[pos];
                    reason_storage_ += '\'';
                    return fail(error::invalid_request, reason_storage_);
                }
                line_start_ = ++pos;
                line_cr_ = false;
                phase_ = phase::arg_line;
                break;
            case phase::arg_payload: {
                const std::size_t take = std::min(payload_left_, size - pos);
                pos += take;
                payload_left_ -= take;
                if (payload_left_ == 0) {
                    phase_ = phase::arg_cr;
                }
                break;
            }
            case phase::arg_cr:
                if (data[pos] != '\r') {
                    return fail(error::missing_crlf, "missing CRLF after bulk argument");
                }
                ++pos;
                phase_ = phase::arg_lf;
                break;
            case phase::arg_lf:
                if (data[pos] != '\n') {
                    return fail(error::missing_crlf, "missing CRLF after bulk argument");
                }
                ++pos;
                if (spans_.size() < static_cast<std::size_t>(expected_args_)) {
                    phase_ = phase::arg_type;
                    break;
                }
                for (const auto& [start, length] : spans_) {
                    args.emplace_back(data + start, length);
                }
                offset_ = 0;
                request_start_ = 0;
                phase_ = phase::start;
                expected_args_ = -1;
                return {true, pos, false, {}, {}};
        }
    }
    offset_ = pos;
    return {false, 0, false, {}, {}};
}

std::size_t request_parser::drop_skipped() noexcept {
    const std::size_t n = request_start_;
    if (n == 0 || error_) {
        return 0;
    }
    offset_ -= n;
    line_start_ = line_start_ >= n ? line_start_ - n : 0;
    for (auto& span : spans_) {
        span.first -= n;
    }
    request_start_ = 0;
    return n;
}

}  // namespace respite::resp
