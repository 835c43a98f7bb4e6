// Whole RESP frames as values and back, for the few places that must look into a reply (effects,
// every-master replies, CONFIG GET) instead of passing its bytes on (private to src/proxy/server).
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <respite/resp/parser.hpp>
#include <respite/resp/value.hpp>
#include <respite/resp/writer.hpp>

namespace respite::proxy::server {

// The value of one complete frame, or nullopt (incomplete, malformed).
inline std::optional<resp::value> decode_frame(std::string_view frame) {
    resp::parser p;
    const auto r = p.feed(frame);
    if (!r.complete || r.error)
        return std::nullopt;
    return p.take();
}

// An error reply (simple or blob), by its first byte.
inline bool is_error_frame(std::string_view frame) noexcept {
    return !frame.empty() && (frame[0] == '-' || frame[0] == '!');
}

// The value of an integer reply (`:n`, RESP2 and RESP3); nullopt for any other reply.
inline std::optional<std::int64_t> integer_frame(std::string_view frame) noexcept {
    if (frame.size() < 4 || frame[0] != ':')
        return std::nullopt;
    std::int64_t n = 0;
    const char* end = frame.data() + frame.size();
    const auto [p, ec] = std::from_chars(frame.data() + 1, end, n);
    if (ec != std::errc{} || end - p < 2 || p[0] != '\r')
        return std::nullopt;
    return n;
}

// A null reply in either protocol (`_`, `$-1`, `*-1`).
inline bool is_null_frame(std::string_view frame) noexcept {
    return frame.starts_with('_') || frame.starts_with("$-1") || frame.starts_with("*-1");
}

// Text as Redis answers INFO, CLIENT LIST/INFO: a bulk string (RESP2), a verbatim "txt" string
// (RESP3).
inline std::string text_frame(std::string_view text, int proto) {
    std::string out;
    if (proto == 3) {
        const auto len = std::to_string(text.size() + 4);
        out.reserve(len.size() + text.size() + 9);
        out += '=';
        out += len;
        out += "\r\ntxt:";
        out.append(text);
        out += "\r\n";
    } else {
        resp::append_bulk(out, text);
    }
    return out;
}

// `v` as a frame of protocol `proto` (2 or 3, a session's HELLO version).
inline std::string encode_value(const resp::value& v, int proto) {
    std::string out;
    resp::append_value(out, v, proto == 3 ? resp::protocol::resp3 : resp::protocol::resp2);
    return out;
}

}  // namespace respite::proxy::server
