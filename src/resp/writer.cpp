// RESP encoders for commands and replies, with Redis's RESP3 -> RESP2 down-conversion.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include <respite/resp/writer.hpp>

namespace respite::resp {
namespace {

constexpr std::string_view crlf = "\r\n";

template <typename Int>
void append_decimal(std::string& out, Int n) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, r.ptr);
}

// A type byte, a decimal and CRLF: every length and integer line.
template <typename Int>
void append_header(std::string& out, char type_byte, Int n) {
    out += type_byte;
    append_decimal(out, n);
    out += crlf;
}

// Simple strings and errors cannot carry CR or LF; a space keeps the frame intact.
void append_line(std::string& out, char type_byte, std::string_view s) {
    out += type_byte;
    const std::size_t start = out.size();
    out += s;
    for (std::size_t i = start; i < out.size(); ++i) {
        if (out[i] == '\r' || out[i] == '\n') {
            out[i] = ' ';
        }
    }
    out += crlf;
}

void append_blob(std::string& out, char type_byte, std::string_view s) {
    append_header(out, type_byte, s.size());
    out += s;
    out += crlf;
}

void append_elements(std::string& out, const std::vector<value>& elements, std::size_t n,
                     protocol p) {
    for (std::size_t i = 0; i < n; ++i) {
        append_value(out, elements[i], p);
    }
}

std::size_t decimal_digits(std::size_t n) noexcept {
    std::size_t d = 1;
    while (n >= 10) {
        n /= 10;
        ++d;
    }
    return d;
}

char* write_decimal(char* p, std::size_t n, std::size_t digits) noexcept {
    char* end = p + digits;
    char* q = end;
    do {
        *--q = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    return end;
}

}  // namespace

// Every request goes through here: sized exactly once, then written with plain stores.
void append_command(std::string& out, std::span<const std::string_view> args) {
    const std::size_t count_digits = decimal_digits(args.size());
    std::size_t total = 1 + count_digits + 2;
    for (const auto a : args) {
        total += 1 + decimal_digits(a.size()) + 2 + a.size() + 2;
    }
    const std::size_t old = out.size();
    if (out.capacity() < old + total)
        out.reserve(std::max(old + total, 2 * out.capacity()));
    out.resize(old + total);
    char* p = out.data() + old;
    *p++ = '*';
    p = write_decimal(p, args.size(), count_digits);
    *p++ = '\r';
    *p++ = '\n';
    for (const auto a : args) {
        *p++ = '$';
        p = write_decimal(p, a.size(), decimal_digits(a.size()));
        *p++ = '\r';
        *p++ = '\n';
        if (!a.empty())
            std::memcpy(p, a.data(), a.size());
        p += a.size();
        *p++ = '\r';
        *p++ = '\n';
    }
}

void append_command(std::string& out, std::initializer_list<std::string_view> args) {
    append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

void append_simple_string(std::string& out, std::string_view s) {
    append_line(out, '+', s);
}

void append_error(std::string& out, std::string_view message) {
    append_line(out, '-', message);
}

void append_integer(std::string& out, std::int64_t n) {
    append_header(out, ':', n);
}

void append_bulk(std::string& out, std::string_view s) {
    append_blob(out, '$', s);
}

void append_null(std::string& out, protocol p) {
    out += p == protocol::resp3 ? std::string_view("_\r\n") : std::string_view("$-1\r\n");
}

void append_array_header(std::string& out, std::size_t n) {
    append_header(out, '*', n);
}

void append_map_header(std::string& out, std::size_t pairs, protocol p) {
    if (p == protocol::resp3) {
        append_header(out, '%', pairs);
    } else {
        append_header(out, '*', pairs * 2);
    }
}

void append_double(std::string& out, double d, protocol p) {
    const std::string text = format_double(d);
    if (p == protocol::resp3) {
        out += ',';
        out += text;
        out += crlf;
    } else {
        append_blob(out, '$', text);
    }
}

void append_boolean(std::string& out, bool b, protocol p) {
    if (p == protocol::resp3) {
        out += b ? std::string_view("#t\r\n") : std::string_view("#f\r\n");
    } else {
        out += b ? std::string_view(":1\r\n") : std::string_view(":0\r\n");
    }
}

std::string format_double(double d) {
    if (std::isnan(d)) {
        return "nan";
    }
    if (std::isinf(d)) {
        return d < 0 ? "-inf" : "inf";
    }
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, d);
    return std::string(buf, r.ptr);
}

void append_value(std::string& out, const value& v, protocol p) {
    const bool resp3 = p == protocol::resp3;
    if (resp3 && v.attributes() != nullptr) {
        const auto& attrs = *v.attributes();
        append_header(out, '|', attrs.size() / 2);
        append_elements(out, attrs, attrs.size() / 2 * 2, p);
    }
    switch (v.type()) {
        case type::simple_string:
            append_line(out, '+', v.str());
            return;
        case type::simple_error:
            append_line(out, '-', v.str());
            return;
        case type::integer:
            append_header(out, ':', v.integer());
            return;
        case type::bulk_string:
            append_blob(out, '$', v.str());
            return;
        case type::null:
            // RESP3 keeps the form the value arrived in, so a proxy forwards what it received.
            if (v.null_form() == null_kind::array) {
                out += "*-1\r\n";
            } else if (resp3 && v.null_form() == null_kind::resp3) {
                out += "_\r\n";
            } else {
                out += "$-1\r\n";
            }
            return;
        case type::double_:
            if (!v.str().empty()) {  // as the server wrote it (parsed)
                if (resp3) {
                    append_line(out, ',', v.str());
                } else {
                    append_blob(out, '$', v.str());
                }
                return;
            }
            append_double(out, v.double_value(), p);
            return;
        case type::boolean:
            append_boolean(out, v.boolean(), p);
            return;
        case type::blob_error:
            if (resp3) {
                append_blob(out, '!', v.str());
            } else {
                append_line(out, '-', v.str());
            }
            return;
        case type::verbatim_string:
            if (resp3) {
                const std::string_view format =
                    v.format().size() == 3 ? v.format() : std::string_view("txt");
                append_header(out, '=', v.str().size() + 4);
                out += format;
                out += ':';
                out += v.str();
                out += crlf;
            } else {
                append_blob(out, '$', v.str());
            }
            return;
        case type::big_number:
            if (resp3) {
                append_line(out, '(', v.str());
            } else {
                append_blob(out, '$', v.str());
            }
            return;
        case type::array:
            append_header(out, '*', v.elements().size());
            append_elements(out, v.elements(), v.elements().size(), p);
            return;
        case type::set:
            append_header(out, resp3 ? '~' : '*', v.elements().size());
            append_elements(out, v.elements(), v.elements().size(), p);
            return;
        case type::push:
            append_header(out, resp3 ? '>' : '*', v.elements().size());
            append_elements(out, v.elements(), v.elements().size(), p);
            return;
        case type::map: {
            const std::size_t pairs = v.elements().size() / 2;
            append_map_header(out, pairs, p);
            append_elements(out, v.elements(), pairs * 2, p);
            return;
        }
    }
}

}  // namespace respite::resp
