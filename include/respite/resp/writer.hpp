// Encodes commands and replies: every RESP2 and RESP3 type, plus the RESP3 -> RESP2
// down-conversion Redis itself performs for RESP2 clients.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <respite/resp/value.hpp>

namespace respite::resp {

enum class protocol : std::uint8_t { resp2 = 2, resp3 = 3 };

// `*N\r\n$len\r\narg\r\n...` — the form every request takes.
void append_command(std::string& out, std::span<const std::string_view> args);
void append_command(std::string& out, std::initializer_list<std::string_view> args);

// Encodes a reply. For resp2 a RESP3 value is converted as Redis does for RESP2 clients:
// maps -> flat arrays, sets and pushes -> arrays, doubles and big numbers -> bulk strings,
// booleans -> :1/:0, verbatim -> bulk string of the body, blob errors -> simple errors,
// nulls -> $-1 (or *-1 for a null that came from *-1), attributes dropped. For resp3 a null keeps
// the form it arrived in (`_`, `$-1` or `*-1`, see null_kind), so a proxy forwards what it got.
// Simple strings and errors holding CR or LF get spaces instead, as append_error does.
void append_value(std::string& out, const value& v, protocol p = protocol::resp3);

// Building blocks for servers that stream a reply without a value tree.
void append_simple_string(std::string& out, std::string_view s);  // CR/LF replaced
void append_error(std::string& out, std::string_view message);    // "-" + message (CR/LF replaced)
void append_integer(std::string& out, std::int64_t n);
void append_bulk(std::string& out, std::string_view s);
void append_null(std::string& out, protocol p);  // `_` or `$-1`
void append_array_header(std::string& out, std::size_t n);
void append_map_header(std::string& out, std::size_t pairs, protocol p);  // `%n` or `*2n`
void append_double(std::string& out, double d, protocol p);
void append_boolean(std::string& out, bool b, protocol p);

// Formats a double the way RESP3 expects: shortest round-trip, "inf", "-inf", "nan".
std::string format_double(double d);

}  // namespace respite::resp
