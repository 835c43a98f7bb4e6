// Shared test data (valid and invalid RESP messages) and drivers that feed them in chunks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <respite/resp/frame_scanner.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/value.hpp>

namespace respite::resp {

// Lets GoogleTest print values in failure messages.
// NOLINTNEXTLINE(readability-identifier-naming): the name GoogleTest looks up
inline void PrintTo(const value& v, std::ostream* os) {
    *os << v.to_display();
}

}  // namespace respite::resp

namespace respite::resp::test {

using namespace std::string_literals;

struct message {
    std::string name;
    std::string bytes;
    value expected;
};

struct bad_message {
    std::string name;
    std::string bytes;
    resp::limits limits;
    error expected;
};

inline std::vector<value> vals(std::initializer_list<value> list) {
    return {list};
}

inline value with_attrs(value v, std::vector<value> attrs) {
    v.set_attributes(std::move(attrs));
    return v;
}

inline value bulk(std::string s) {
    return value::bulk_string(std::move(s));
}
inline value simple(std::string s) {
    return value::simple_string(std::move(s));
}
inline value num(std::int64_t n) {
    return value::integer(n);
}

inline limits small_limits() {
    limits l;
    l.max_bulk_length = 16;
    l.max_aggregate_elements = 4;
    l.max_depth = 3;
    l.max_line_length = 24;
    return l;
}

// Every valid message, each a single top-level value, with the value the parser must build.
inline std::vector<message> valid_messages() {
    std::vector<message> m;
    const auto add = [&m](std::string name, std::string bytes, value v) {
        m.push_back({std::move(name), std::move(bytes), std::move(v)});
    };
    // The RESP3 specification's own examples.
    add("spec simple string", "+OK\r\n", simple("OK"));
    add("spec simple error", "-ERR this is the error description\r\n",
        value::simple_error("ERR this is the error description"));
    add("spec number", ":1234\r\n", num(1234));
    add("spec blob string", "$11\r\nhello world\r\n", bulk("hello world"));
    add("spec empty blob", "$0\r\n\r\n", bulk(""));
    add("spec null bulk", "$-1\r\n", value::null(null_kind::bulk));
    add("spec array", "*3\r\n:1\r\n:2\r\n:3\r\n", value::array(vals({num(1), num(2), num(3)})));
    add("spec null array", "*-1\r\n", value::null(null_kind::array));
    add("spec empty array", "*0\r\n", value::array({}));
    add("spec null", "_\r\n", value::null());
    add("spec double", ",1.23\r\n", value::double_(1.23));
    add("spec double no fraction", ",10\r\n", value::double_(10));
    add("spec double inf", ",inf\r\n", value::double_(std::numeric_limits<double>::infinity()));
    add("spec double -inf", ",-inf\r\n", value::double_(-std::numeric_limits<double>::infinity()));
    add("spec double nan", ",nan\r\n", value::double_(std::numeric_limits<double>::quiet_NaN()));
    add("spec boolean true", "#t\r\n", value::boolean(true));
    add("spec boolean false", "#f\r\n", value::boolean(false));
    add("spec blob error", "!21\r\nSYNTAX invalid syntax\r\n",
        value::blob_error("SYNTAX invalid syntax"));
    add("spec verbatim", "=15\r\ntxt:Some string\r\n",
        value::verbatim_string("txt", "Some string"));
    add("spec big number", "(3492890328409238509324850943850943825024385\r\n",
        value::big_number("3492890328409238509324850943850943825024385"));
    add("spec map", "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
        value::map(vals({simple("first"), num(1), simple("second"), num(2)})));
    add("spec set", "~5\r\n+orange\r\n+apple\r\n#t\r\n:100\r\n:999\r\n",
        value::set(
            vals({simple("orange"), simple("apple"), value::boolean(true), num(100), num(999)})));
    add("spec attribute",
        "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
        "*2\r\n:2039123\r\n:9543892\r\n",
        with_attrs(value::array(vals({num(2039123), num(9543892)})),
                   vals({simple("key-popularity"),
                         value::map(vals({bulk("a"), value::double_(0.1923), bulk("b"),
                                          value::double_(0.0012)}))})));
    add("spec nested attribute", "*3\r\n:1\r\n:2\r\n|1\r\n+ttl\r\n:3600\r\n:3\r\n",
        value::array(vals({num(1), num(2), with_attrs(num(3), vals({simple("ttl"), num(3600)}))})));
    add("spec push", ">3\r\n+message\r\n+somechannel\r\n+this is the message\r\n",
        value::push(
            vals({simple("message"), simple("somechannel"), simple("this is the message")})));
    add("spec streamed string", "$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
        bulk("Hello word"));  // sic: the specification's example
    add("spec streamed map", "%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n",
        value::map(vals({simple("a"), num(1), simple("b"), num(2)})));
    // Checklist items.
    add("int64 min", ":-9223372036854775808\r\n", num(INT64_MIN));
    add("int64 max", ":9223372036854775807\r\n", num(INT64_MAX));
    add("integer zero", ":0\r\n", num(0));
    add("negative integer", ":-42\r\n", num(-42));
    add("double exponent", ",1.5e10\r\n", value::double_(1.5e10));
    add("double upper exponent", ",1E-5\r\n", value::double_(1e-5));
    add("double -nan", ",-nan\r\n", value::double_(std::numeric_limits<double>::quiet_NaN()));
    add("double NAN", ",NAN\r\n", value::double_(std::numeric_limits<double>::quiet_NaN()));
    add("double nan(...)", ",nan(123)\r\n",
        value::double_(std::numeric_limits<double>::quiet_NaN()));
    add("double negative", ",-3.25\r\n", value::double_(-3.25));
    add("big number negative", "(-12345678901234567890\r\n",
        value::big_number("-12345678901234567890"));
    add("null elements in array", "*3\r\n$5\r\nhello\r\n$-1\r\n$5\r\nworld\r\n",
        value::array(vals({bulk("hello"), value::null(null_kind::bulk), bulk("world")})));
    add("binary bulk with CRLF", "$6\r\na\r\nb\r\n\r\n", bulk("a\r\nb\r\n"));
    add("binary bulk with NUL and CR", "$4\r\n\0\xff\r\r\r\n"s, bulk("\0\xff\r\r"s));
    add("empty simple string", "+\r\n", simple(""));
    add("nested arrays", "*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n*0\r\n",
        value::array(
            vals({value::array(vals({num(1), num(2)})), value::array(vals({value::array({})}))})));
    add("invalidate with null", ">2\r\n$10\r\ninvalidate\r\n_\r\n",
        value::push(vals({bulk("invalidate"), value::null()})));
    add("invalidate with null array", ">2\r\n$10\r\ninvalidate\r\n*-1\r\n",
        value::push(vals({bulk("invalidate"), value::null(null_kind::array)})));
    add("invalidate with keys", ">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        value::push(vals({bulk("invalidate"), value::array(vals({bulk("a"), bulk("b")}))})));
    add("top-level attribute on scalar", "|1\r\n+a\r\n:1\r\n+OK\r\n",
        with_attrs(simple("OK"), vals({simple("a"), num(1)})));
    add("consecutive attributes merge", "|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n:5\r\n",
        with_attrs(num(5), vals({simple("a"), num(1), simple("b"), num(2)})));
    add("attribute on nested aggregate", "*1\r\n|1\r\n+k\r\n+v\r\n*1\r\n:1\r\n",
        value::array(
            vals({with_attrs(value::array(vals({num(1)})), vals({simple("k"), simple("v")}))})));
    add("attribute inside attribute", "|1\r\n+k\r\n|1\r\n+x\r\n:9\r\n:8\r\n:7\r\n",
        with_attrs(num(7), vals({simple("k"), with_attrs(num(8), vals({simple("x"), num(9)}))})));
    add("attribute in streamed aggregate", "*?\r\n|1\r\n+k\r\n+v\r\n:1\r\n.\r\n",
        value::array(vals({with_attrs(num(1), vals({simple("k"), simple("v")}))})));
    add("streamed attribute", "|?\r\n+k\r\n+v\r\n.\r\n:1\r\n",
        with_attrs(num(1), vals({simple("k"), simple("v")})));
    add("empty attribute", "|0\r\n:1\r\n", with_attrs(num(1), {}));
    add("attribute on null", "|1\r\n+k\r\n+v\r\n_\r\n",
        with_attrs(value::null(), vals({simple("k"), simple("v")})));
    add("attribute on streamed string", "|1\r\n+k\r\n+v\r\n$?\r\n;2\r\nab\r\n;0\r\n",
        with_attrs(bulk("ab"), vals({simple("k"), simple("v")})));
    add("empty map", "%0\r\n", value::map({}));
    add("empty set", "~0\r\n", value::set({}));
    add("empty push", ">0\r\n", value::push({}));
    add("empty streamed string", "$?\r\n;0\r\n", bulk(""));
    add("empty verbatim body", "=4\r\nmkd:\r\n", value::verbatim_string("mkd", ""));
    add("streamed string in array", "*2\r\n$?\r\n;2\r\nab\r\n;0\r\n:1\r\n",
        value::array(vals({bulk("ab"), num(1)})));
    add("nested streamed aggregates", "*?\r\n:1\r\n*?\r\n.\r\n~?\r\n:2\r\n.\r\n.\r\n",
        value::array(vals({num(1), value::array({}), value::set(vals({num(2)}))})));
    add("streamed push", ">?\r\n+message\r\n+ch\r\n+hi\r\n.\r\n",
        value::push(vals({simple("message"), simple("ch"), simple("hi")})));
    add("streamed set", "~?\r\n:1\r\n.\r\n", value::set(vals({num(1)})));
    add("hello reply",
        "%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n",
        value::map(vals({bulk("server"), bulk("redis"), bulk("proto"), num(3), bulk("modules"),
                         value::array({})})));
    add("long bulk", "$300\r\n" + std::string(300, 'x') + "\r\n", bulk(std::string(300, 'x')));
    add("map with aggregate keys", "%1\r\n*1\r\n:1\r\n~1\r\n#f\r\n",
        value::map(
            vals({value::array(vals({num(1)})), value::set(vals({value::boolean(false)}))})));
    add("moved error", "-MOVED 3999 127.0.0.1:6381\r\n",
        value::simple_error("MOVED 3999 127.0.0.1:6381"));
    return m;
}

// Messages the parser must reject, with the limits in force and the error expected.
inline std::vector<bad_message> invalid_messages() {
    std::vector<bad_message> m;
    const limits d{};
    const auto add = [&m](std::string name, std::string bytes, limits l, error e) {
        m.push_back({std::move(name), std::move(bytes), l, e});
    };
    add("unknown type byte", "x\r\n", d, error::invalid_type_byte);
    add("space type byte", " +OK\r\n", d, error::invalid_type_byte);
    add("length below -1", "$-2\r\n", d, error::invalid_length);
    add("length not a number", "$abc\r\n", d, error::invalid_length);
    add("empty length", "$\r\n", d, error::invalid_length);
    add("length with plus", "$+1\r\na\r\n", d, error::invalid_length);
    add("array length below -1", "*-2\r\n", d, error::invalid_length);
    add("blob error null", "!-1\r\n", d, error::invalid_length);
    add("map null", "%-1\r\n", d, error::invalid_length);
    add("streamed verbatim", "=?\r\n", d, error::invalid_length);
    add("streamed chunk length ?", "$?\r\n;?\r\n", d, error::invalid_length);
    add("length overflow", "$99999999999999999999\r\n", d, error::invalid_length);
    add("integer overflow", ":9223372036854775808\r\n", d, error::invalid_integer);
    add("integer underflow", ":-9223372036854775809\r\n", d, error::invalid_integer);
    add("empty integer", ":\r\n", d, error::invalid_integer);
    add("lone minus", ":-\r\n", d, error::invalid_integer);
    add("integer trailing junk", ":12a\r\n", d, error::invalid_integer);
    add("integer leading space", ": 1\r\n", d, error::invalid_integer);
    add("double leading dot", ",.5\r\n", d, error::invalid_double);
    add("double negative leading dot", ",-.5\r\n", d, error::invalid_double);
    add("empty double", ",\r\n", d, error::invalid_double);
    add("double trailing junk", ",1.5x\r\n", d, error::invalid_double);
    add("double word", ",abc\r\n", d, error::invalid_double);
    add("double hex", ",0x10\r\n", d, error::invalid_double);
    add("double plus", ",+1\r\n", d, error::invalid_double);
    add("empty boolean", "#\r\n", d, error::invalid_boolean);
    add("boolean x", "#x\r\n", d, error::invalid_boolean);
    add("boolean tt", "#tt\r\n", d, error::invalid_boolean);
    add("boolean uppercase", "#T\r\n", d, error::invalid_boolean);
    add("empty big number", "(\r\n", d, error::invalid_big_number);
    add("big number junk", "(12a\r\n", d, error::invalid_big_number);
    add("big number sign only", "(-\r\n", d, error::invalid_big_number);
    add("big number decimals", "(1.5\r\n", d, error::invalid_big_number);
    add("verbatim too short", "=3\r\ntxt\r\n", d, error::invalid_verbatim);
    add("verbatim no colon", "=5\r\ntxt-x\r\n", d, error::invalid_verbatim);
    add("bulk longer than declared", "$3\r\nabcd\r\n", d, error::missing_crlf);
    add("bulk CR without LF", "$3\r\nabc\rx", d, error::missing_crlf);
    add("bare LF line", "+OK\n", d, error::missing_crlf);
    add("bare CR in line", "+O\rK\r\n", d, error::missing_crlf);
    add("null with payload", "_x\r\n", d, error::missing_crlf);
    add("end with payload", "*?\r\n.x\r\n", d, error::missing_crlf);
    limits bulk_1k = d;
    bulk_1k.max_bulk_length = 1024;
    add("declared bulk over limit", "$536870911\r\n", bulk_1k, error::bulk_too_large);
    add("declared bulk over default limit", "$536870913\r\n", d, error::bulk_too_large);
    add("blob error over limit", "!2000\r\n", bulk_1k, error::bulk_too_large);
    add("streamed chunk over limit", "$?\r\n;1025\r\n", bulk_1k, error::bulk_too_large);
    add(
        "streamed string total over limit", "$?\r\n;3\r\nabc\r\n;2\r\nde\r\n",
        [] {
            limits l;
            l.max_bulk_length = 4;
            return l;
        }(),
        error::bulk_too_large);
    add("array count over default limit", "*2147483647\r\n", d, error::aggregate_too_large);
    add("map count would overflow when doubled", "%9223372036854775807\r\n", d,
        error::aggregate_too_large);
    add("attribute count would overflow int64", "|4611686018427387904\r\n", d,
        error::aggregate_too_large);
    add("map pairs over limit once doubled", "%33554433\r\n", d, error::aggregate_too_large);
    add("array over small limit", "*5\r\n", small_limits(), error::aggregate_too_large);
    add("map over small limit", "%3\r\n", small_limits(), error::aggregate_too_large);
    add("streamed aggregate over small limit", "*?\r\n:1\r\n:2\r\n:3\r\n:4\r\n:5\r\n",
        small_limits(), error::aggregate_too_large);
    add("nesting over small limit", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", small_limits(),
        error::nesting_too_deep);
    add("empty aggregate over depth", "*1\r\n*1\r\n*1\r\n%0\r\n", small_limits(),
        error::nesting_too_deep);
    add("attribute counts toward depth", "*1\r\n*1\r\n*1\r\n|1\r\n", small_limits(),
        error::nesting_too_deep);
    {
        std::string deep;
        for (int i = 0; i < 129; ++i) {
            deep += "*1\r\n";
        }
        add("nesting over default limit", deep + ":1\r\n", d, error::nesting_too_deep);
    }
    add("simple line over limit", "+" + std::string(25, 'a') + "\r\n", small_limits(),
        error::line_too_long);
    add("length line over limit", "$" + std::string(25, '1') + "\r\n", small_limits(),
        error::line_too_long);
    add("line over limit then CR", "+" + std::string(25, 'a') + "\r", small_limits(),
        error::line_too_long);
    add("chunk outside stream", ";4\r\nabcd\r\n", d, error::unexpected_stream_chunk);
    add("end outside stream", ".\r\n", d, error::unexpected_stream_chunk);
    add("end in counted array", "*1\r\n.\r\n", d, error::unexpected_stream_chunk);
    add("end after top-level attribute", "|1\r\n+a\r\n:1\r\n.\r\n", d,
        error::unexpected_stream_chunk);
    add("value inside streamed string", "$?\r\n:1\r\n", d, error::invalid_type_byte);
    add("streamed map ends after key", "%?\r\n+a\r\n.\r\n", d, error::invalid_map_size);
    add("streamed attribute ends after key", "|?\r\n+a\r\n.\r\n", d, error::invalid_map_size);
    add("attribute then end", "*?\r\n|1\r\n+a\r\n:1\r\n.\r\n", d, error::attribute_without_value);
    add("empty attribute then end", "*?\r\n|0\r\n.\r\n", d, error::attribute_without_value);
    return m;
}

struct parse_outcome {
    std::vector<value> values;
    std::vector<std::size_t> lengths;  // bytes each value took
    std::error_code error;
    bool idle = true;
    bool kept_bytes = false;  // the parser returned without a value yet did not consume all input
};

// Feeds the chunks in order, dropping consumed bytes as a client would.
inline parse_outcome parse_chunks(const std::vector<std::string_view>& chunks, limits l = {}) {
    parser p(l);
    parse_outcome out;
    std::string buffer;
    std::size_t frame_bytes = 0;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        for (;;) {
            const parse_result r = p.feed(buffer);
            frame_bytes += r.consumed;
            buffer.erase(0, r.consumed);
            if (r.error) {
                out.error = r.error;
                return out;
            }
            if (!r.complete) {
                out.kept_bytes = out.kept_bytes || !buffer.empty();
                break;
            }
            out.values.push_back(p.take());
            out.lengths.push_back(frame_bytes);
            frame_bytes = 0;
        }
    }
    out.idle = p.idle();
    return out;
}

struct scan_outcome {
    std::vector<frame> frames;
    std::error_code error;
};

// Feeds the chunks to a frame_scanner, keeping the current frame contiguous as it requires.
inline scan_outcome scan_chunks(const std::vector<std::string_view>& chunks, limits l = {}) {
    frame_scanner s(l);
    scan_outcome out;
    std::string buffer;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        for (;;) {
            const scan_result r = s.scan(buffer);
            if (r.error) {
                out.error = r.error;
                return out;
            }
            if (!r.complete) {
                break;
            }
            out.frames.push_back(r.frame);
            buffer.erase(0, r.frame.length);
        }
    }
    return out;
}

inline std::vector<std::string_view> whole(std::string_view s) {
    return {s};
}

inline std::vector<std::string_view> split_at(std::string_view s, std::size_t k) {
    return {s.substr(0, k), s.substr(k)};
}

inline std::vector<std::string_view> bytewise(std::string_view s) {
    std::vector<std::string_view> chunks;
    for (std::size_t i = 0; i < s.size(); ++i) {
        chunks.push_back(s.substr(i, 1));
    }
    return chunks;
}

// Every way of cutting s: whole, at each position, at each pair of positions, byte by byte.
inline std::vector<std::vector<std::string_view>> all_splits(std::string_view s) {
    std::vector<std::vector<std::string_view>> out{whole(s), bytewise(s)};
    for (std::size_t i = 0; i <= s.size(); ++i) {
        out.push_back(split_at(s, i));
    }
    if (s.size() <= 64) {
        for (std::size_t i = 1; i < s.size(); ++i) {
            for (std::size_t j = i + 1; j < s.size(); ++j) {
                out.push_back({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
            }
        }
    }
    return out;
}

inline std::string describe(const std::vector<std::string_view>& chunks) {
    std::string d = "chunks:";
    for (const auto c : chunks) {
        d += " " + std::to_string(c.size());
    }
    return d;
}

}  // namespace respite::resp::test
