// Protocol errors raised by the resp parsers, as a std::error_code category.
#pragma once

#include <string>
#include <system_error>

namespace respite::resp {

enum class error {
    ok = 0,
    invalid_type_byte = 1,    // first byte of a frame is not a known RESP type
    invalid_length,           // length field is not a decimal number >= -1 (or a '?' where allowed)
    invalid_integer,          // ':' payload is not a signed 64-bit decimal
    invalid_double,           // ',' payload is not a double
    invalid_boolean,          // '#' payload is not 't' or 'f'
    invalid_big_number,       // '(' payload is not [+-]digits
    invalid_verbatim,         // '=' payload lacks the "fmt:" prefix
    missing_crlf,             // a payload is not followed by CRLF, or a line holds a bare CR/LF
    bulk_too_large,           // a blob length exceeds limits::max_bulk_length
    aggregate_too_large,      // an element count exceeds limits::max_aggregate_elements
    nesting_too_deep,         // aggregates nest deeper than limits::max_depth
    line_too_long,            // a simple line exceeds limits::max_line_length
    unexpected_stream_chunk,  // ';' or '.' outside a streamed string / aggregate
    invalid_map_size,         // a streamed map ended after a key without its value
    invalid_request,          // server side: a request is not an array of bulk strings
    attribute_without_value,  // an attribute is not followed by a value inside its aggregate
};

const std::error_category& resp_category() noexcept;
std::error_code make_error_code(error e) noexcept;

}  // namespace respite::resp

template <>
struct std::is_error_code_enum<respite::resp::error> : std::true_type {};
