// resp::value: factories, deep copies, equality, lookups and the redis-cli style rendering.
#include <charconv>
#include <cmath>
#include <utility>

#include <respite/resp/value.hpp>
#include <respite/resp/writer.hpp>

#include "grammar.hpp"

namespace respite::resp {

std::string_view type_name(type t) noexcept {
    switch (t) {
        case type::simple_string:
            return "simple_string";
        case type::simple_error:
            return "simple_error";
        case type::integer:
            return "integer";
        case type::bulk_string:
            return "bulk_string";
        case type::null:
            return "null";
        case type::array:
            return "array";
        case type::double_:
            return "double";
        case type::boolean:
            return "boolean";
        case type::blob_error:
            return "blob_error";
        case type::verbatim_string:
            return "verbatim_string";
        case type::big_number:
            return "big_number";
        case type::map:
            return "map";
        case type::set:
            return "set";
        case type::push:
            return "push";
    }
    return "unknown";
}

value value::simple_string(std::string s) {
    value v;
    v.type_ = type::simple_string;
    v.str_ = std::move(s);
    return v;
}

value value::simple_error(std::string s) {
    value v;
    v.type_ = type::simple_error;
    v.str_ = std::move(s);
    return v;
}

value value::bulk_string(std::string s) {
    value v;
    v.type_ = type::bulk_string;
    v.str_ = std::move(s);
    return v;
}

value value::integer(std::int64_t n) noexcept {
    value v;
    v.type_ = type::integer;
    v.int_ = n;
    return v;
}

value value::null(null_kind k) noexcept {
    value v;
    v.null_ = k;
    return v;
}

value value::double_(double d) noexcept {
    value v;
    v.type_ = type::double_;
    v.double_value_ = d;
    return v;
}

value value::boolean(bool b) noexcept {
    value v;
    v.type_ = type::boolean;
    v.int_ = b ? 1 : 0;
    return v;
}

value value::blob_error(std::string s) {
    value v;
    v.type_ = type::blob_error;
    v.str_ = std::move(s);
    return v;
}

value value::verbatim_string(std::string_view format, std::string body) {
    value v;
    v.type_ = type::verbatim_string;
    v.format_len_ = static_cast<std::uint8_t>(format.size() < 3 ? format.size() : 3);
    for (std::size_t i = 0; i < v.format_len_; ++i) {
        v.format_[i] = format[i];
    }
    v.str_ = std::move(body);
    return v;
}

value value::big_number(std::string digits) {
    value v;
    v.type_ = type::big_number;
    v.str_ = std::move(digits);
    return v;
}

value value::array(std::vector<value> elements) {
    value v;
    v.type_ = type::array;
    v.elements_ = std::move(elements);
    return v;
}

value value::set(std::vector<value> elements) {
    value v;
    v.type_ = type::set;
    v.elements_ = std::move(elements);
    return v;
}

value value::push(std::vector<value> elements) {
    value v;
    v.type_ = type::push;
    v.elements_ = std::move(elements);
    return v;
}

value value::map(std::vector<value> flat_pairs) {
    value v;
    v.type_ = type::map;
    v.elements_ = std::move(flat_pairs);
    return v;
}

void value::set_attributes(std::vector<value> flat_pairs) {
    attrs_ = std::make_unique<std::vector<value>>(std::move(flat_pairs));
}

value::value(const value& other)
    : type_(other.type_),
      null_(other.null_),
      format_len_(other.format_len_),
      format_{other.format_[0], other.format_[1], other.format_[2]},
      int_(other.int_),
      double_value_(other.double_value_),
      str_(other.str_),
      elements_(other.elements_),
      attrs_(other.attrs_ ? std::make_unique<std::vector<value>>(*other.attrs_) : nullptr) {}

value& value::operator=(const value& other) {
    if (this != &other) {
        value copy(other);
        *this = std::move(copy);
    }
    return *this;
}

bool operator==(const value& a, const value& b) noexcept {
    if (a.type_ != b.type_) {
        return false;
    }
    switch (a.type_) {
        case type::null:
            if (a.null_ != b.null_) {
                return false;
            }
            break;
        case type::integer:
        case type::boolean:
            if (a.int_ != b.int_) {
                return false;
            }
            break;
        case type::double_:
            // NaN equals NaN here: this is structural equality of replies, not arithmetic.
            if (!(a.double_value_ == b.double_value_ ||
                  (std::isnan(a.double_value_) && std::isnan(b.double_value_)))) {
                return false;
            }
            break;
        case type::verbatim_string:
            if (a.format() != b.format() || a.str_ != b.str_) {
                return false;
            }
            break;
        case type::simple_string:
        case type::simple_error:
        case type::bulk_string:
        case type::blob_error:
        case type::big_number:
            if (a.str_ != b.str_) {
                return false;
            }
            break;
        case type::array:
        case type::map:
        case type::set:
        case type::push:
            if (a.elements_ != b.elements_) {
                return false;
            }
            break;
    }
    if ((a.attrs_ == nullptr) != (b.attrs_ == nullptr)) {
        return false;
    }
    return a.attrs_ == nullptr || *a.attrs_ == *b.attrs_;
}

const value* value::find(std::string_view key) const noexcept {
    if (type_ != type::map) {
        return nullptr;
    }
    for (std::size_t i = 0; i + 1 < elements_.size(); i += 2) {
        const value& k = elements_[i];
        if (k.is_string() && k.str_ == key) {
            return &elements_[i + 1];
        }
    }
    return nullptr;
}

bool value::to_int64(std::int64_t& out) const noexcept {
    switch (type_) {
        case type::integer:
            out = int_;
            return true;
        case type::simple_string:
        case type::bulk_string:
        case type::verbatim_string:
        case type::big_number:
            return detail::parse_int64(str_, out);
        default:
            return false;
    }
}

namespace {

// Quoted and escaped like redis-cli (sdscatrepr).
void append_repr(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\a':
                out += "\\a";
                break;
            case '\b':
                out += "\\b";
                break;
            default: {
                const auto u = static_cast<unsigned char>(c);
                if (u >= 0x20 && u < 0x7f) {
                    out += c;
                } else {
                    out += "\\x";
                    out += hex[u >> 4];
                    out += hex[u & 0xf];
                }
            }
        }
    }
    out += '"';
}

void append_number(std::string& out, std::size_t n) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, r.ptr);
}

// Renders v on the current line; nested lines start with `indent` spaces.
void render(std::string& out, const value& v, std::size_t indent) {
    if (const auto* attrs = v.attributes()) {
        out += "(attributes) ";
        render(out, value::map(*attrs), indent + 13);
        out += '\n';
        out.append(indent, ' ');
    }
    switch (v.type()) {
        case type::simple_string:
            out += v.str();
            return;
        case type::simple_error:
        case type::blob_error:
            out += "(error) ";
            out += v.str();
            return;
        case type::integer:
            out += "(integer) ";
            out += std::to_string(v.integer());
            return;
        case type::bulk_string:
            append_repr(out, v.str());
            return;
        case type::verbatim_string:
            out += v.str();
            return;
        case type::null:
            out += "(nil)";
            return;
        case type::double_:
            out += "(double) ";
            out += format_double(v.double_value());
            return;
        case type::boolean:
            out += v.boolean() ? "(true)" : "(false)";
            return;
        case type::big_number:
            out += "(big number) ";
            out += v.str();
            return;
        case type::array:
        case type::set:
        case type::push:
        case type::map:
            break;
    }
    const bool is_map = v.type() == type::map;
    const std::size_t n = v.size();
    if (n == 0) {
        out += v.type() == type::map   ? "(empty hash)"
               : v.type() == type::set ? "(empty set)"
                                       : "(empty array)";
        return;
    }
    const char mark = is_map ? '#' : v.type() == type::set ? '~' : ')';
    std::size_t width = 1;
    for (std::size_t m = n; m >= 10; m /= 10) {
        ++width;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (i > 0) {
            out += '\n';
            out.append(indent, ' ');
        }
        std::string index;
        append_number(index, i + 1);
        out.append(width - index.size(), ' ');
        out += index;
        out += mark;
        out += ' ';
        const std::size_t nested = indent + width + 2;
        if (is_map) {
            const std::size_t key_start = out.size();
            render(out, v.elements()[2 * i], nested);
            out += " => ";
            render(out, v.elements()[2 * i + 1], nested + (out.size() - key_start));
        } else {
            render(out, v.elements()[i], nested);
        }
    }
}

}  // namespace

std::string value::to_display() const {
    std::string out;
    render(out, *this, 0);
    return out;
}

}  // namespace respite::resp
