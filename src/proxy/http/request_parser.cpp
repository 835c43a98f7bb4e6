// HTTP/1.1 request parsing (RFC 9112 subset: Content-Length bodies, no chunked uploads).
#include "request_parser.hpp"

#include <algorithm>
#include <charconv>

namespace respite::proxy::http_detail {
namespace {

constexpr std::string_view head_terminator = "\r\n\r\n";

// RFC 9110 token characters (methods and header names).
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// Field values may hold visible characters, spaces, tabs and obs-text, never other controls.
bool is_field_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](char c) {
        return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    });
    return out;
}

// Whether a comma-separated header value (Connection, Expect) lists token, ignoring case.
bool lists_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        const auto comma = value.find(',');
        if (lower(trim(value.substr(0, comma))) == token) {
            return true;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        value.remove_prefix(comma + 1);
    }
    return false;
}

int hex_value(char c) {
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

bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) {
                return false;
            }
            const int hi = hex_value(in[i + 1]);
            const int lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                return false;
            }
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return true;
}

bool parse_query(std::string_view raw, std::map<std::string, std::string, std::less<>>& query) {
    std::string key;
    std::string value;
    while (!raw.empty()) {
        const auto amp = raw.find('&');
        const auto pair = raw.substr(0, amp);
        raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const auto eq = pair.find('=');
        if (!percent_decode(pair.substr(0, eq), true, key)) {
            return false;
        }
        if (!percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                            true, value)) {
            return false;
        }
        query.insert_or_assign(key, value);
    }
    return true;
}

void request_parser::reset() {
    scanned_ = 0;
    line_scanned_ = 0;
    request_line_checked_ = false;
    header_end_ = 0;
    body_length_ = 0;
    keep_alive_ = true;
    wants_continue_ = false;
    error_status_ = 0;
    request_ = http_request{};
}

request_parser::state request_parser::fail(int status) {
    error_status_ = status;
    keep_alive_ = false;
    return state::failed;
}

request_parser::state request_parser::consume(std::string_view buffer) {
    if (error_status_ != 0) {
        return state::failed;
    }
    // Bytes that cannot be part of a request line fail at once, so a TLS handshake or binary
    // junk sent to this port gets its 400 now rather than after the read timeout.
    for (; !request_line_checked_ && line_scanned_ < buffer.size(); ++line_scanned_) {
        const char c = buffer[line_scanned_];
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') {
            request_line_checked_ = true;
        } else if ((u < 0x20 && c != '\r') || u >= 0x7f) {
            return fail(400);
        }
    }
    if (header_end_ == 0) {
        // Resume three bytes back: the terminator may straddle the previous call's end.
        const std::size_t from = scanned_ >= 3 ? scanned_ - 3 : 0;
        const auto end = buffer.find(head_terminator, from);
        if (end == std::string_view::npos) {
            scanned_ = buffer.size();
            return buffer.size() > max_header_bytes_ ? fail(413) : state::need_more;
        }
        header_end_ = end + head_terminator.size();
        if (header_end_ > max_header_bytes_) {
            return fail(413);
        }
        if (const auto s = parse_head(buffer.substr(0, end)); s == state::failed) {
            return s;
        }
    }
    if (buffer.size() < header_end_ + body_length_) {
        return state::need_more;
    }
    wants_continue_ = false;
    request_.body.assign(buffer.substr(header_end_, body_length_));
    return state::complete;
}

bool request_parser::parse_request_line(std::string_view line) {
    const auto sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) {
        return false;
    }
    const auto sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
        return false;
    }
    const auto method = line.substr(0, sp1);
    const auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (!is_token(method) || target.empty() || target.front() != '/') {
        return false;
    }
    // Targets are visible ASCII; anything else is a client bug or an attack on a later parser.
    if (std::any_of(target.begin(), target.end(), [](char c) {
            const auto u = static_cast<unsigned char>(c);
            return u <= 0x20 || u >= 0x7f;
        })) {
        return false;
    }
    request_.method.assign(method);
    request_.target.assign(target);
    const auto q = target.find('?');
    if (!percent_decode(target.substr(0, q), false, request_.path)) {
        return false;
    }
    if (q != std::string_view::npos) {
        auto query = target.substr(q + 1);
        query = query.substr(0, query.find('#'));
        if (!parse_query(query, request_.query)) {
            return false;
        }
    }
    return true;
}

request_parser::state request_parser::parse_head(std::string_view head) {
    auto line_end = head.find("\r\n");
    const auto request_line = head.substr(0, line_end);
    // The version decides keep-alive and whether we speak the protocol at all.
    const auto sp = request_line.rfind(' ');
    const auto version =
        sp == std::string_view::npos ? std::string_view{} : request_line.substr(sp + 1);
    if (!parse_request_line(request_line)) {
        return fail(400);
    }
    if (version == "HTTP/1.0") {
        keep_alive_ = false;
    } else if (version != "HTTP/1.1") {
        const bool http = version.size() == 8 && version.starts_with("HTTP/") && version[6] == '.';
        return fail(http ? 505 : 400);
    }
    const bool http10 = version == "HTTP/1.0";

    bool has_length = false;
    while (line_end != std::string_view::npos) {
        head.remove_prefix(line_end + 2);
        line_end = head.find("\r\n");
        const auto line = head.substr(0, line_end);
        const auto colon = line.find(':');
        // No space before the colon (request smuggling) and no obs-fold continuation lines.
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
            return fail(400);
        }
        const auto value = trim(line.substr(colon + 1));
        if (!is_field_value(value)) {
            return fail(400);
        }
        auto name = lower(line.substr(0, colon));
        if (name == "content-length") {
            std::size_t n = 0;
            const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc{} || p != value.data() + value.size() || value.empty() ||
                (has_length && n != body_length_)) {
                return fail(400);
            }
            has_length = true;
            body_length_ = n;
        }
        auto [it, inserted] = request_.headers.try_emplace(std::move(name), value);
        if (!inserted) {
            it->second.append(", ").append(value);
        }
    }

    if (request_.headers.contains("transfer-encoding")) {
        // Chunked uploads are not supported: the client should send a Content-Length instead.
        return fail(411);
    }
    if (body_length_ > max_body_bytes_) {
        return fail(413);
    }
    const auto connection = request_.header("connection");
    if (lists_token(connection, "close")) {
        keep_alive_ = false;
    } else if (http10 && lists_token(connection, "keep-alive")) {
        keep_alive_ = true;
    }
    wants_continue_ =
        !http10 && body_length_ > 0 && lists_token(request_.header("expect"), "100-continue");
    return state::need_more;
}

}  // namespace respite::proxy::http_detail

namespace respite::proxy {

std::string_view http_request::header(std::string_view name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string_view{} : std::string_view(it->second);
}

std::string_view http_request::param(std::string_view name, std::string_view fallback) const {
    const auto it = query.find(name);
    return it == query.end() ? fallback : std::string_view(it->second);
}

}  // namespace respite::proxy
