// writer: RESP3 round trips for every type and the RESP2 down-conversion, byte for byte.
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/writer.hpp>

#include "resp_test_support.hpp"

namespace respite::resp::test {
namespace {

std::string encode(const value& v, protocol p = protocol::resp3) {
    std::string out;
    append_value(out, v, p);
    return out;
}

value parse_one(std::string_view bytes) {
    const parse_outcome out = parse_chunks(whole(bytes));
    EXPECT_FALSE(out.error) << out.error.message() << " parsing " << bytes;
    EXPECT_EQ(out.values.size(), 1U) << bytes;
    EXPECT_EQ(out.lengths.empty() ? 0 : out.lengths[0], bytes.size());
    return out.values.empty() ? value() : out.values[0];
}

std::vector<value> every_type() {
    return {
        simple("OK"),
        value::simple_error("ERR bad"),
        num(0),
        num(INT64_MIN),
        num(INT64_MAX),
        bulk(""),
        bulk("a\r\nb\0c"s),
        value::null(),
        value::null(null_kind::bulk),
        value::null(null_kind::array),
        value::array({}),
        value::array(vals({num(1), bulk("x"), value::null()})),
        value::double_(1.5),
        value::double_(-0.1),
        value::double_(1e300),
        value::double_(5e-324),
        value::double_(std::numeric_limits<double>::infinity()),
        value::double_(-std::numeric_limits<double>::infinity()),
        value::double_(std::numeric_limits<double>::quiet_NaN()),
        value::boolean(true),
        value::boolean(false),
        value::blob_error("SYNTAX invalid\r\nsyntax"),
        value::verbatim_string("txt", "Some string"),
        value::verbatim_string("mkd", ""),
        value::big_number("-3492890328409238509324850943850943825024385"),
        value::map(vals({simple("first"), num(1), bulk("second"), value::array(vals({num(2)}))})),
        value::map({}),
        value::set(vals({simple("orange"), value::boolean(true)})),
        value::push(vals({bulk("message"), bulk("ch"), bulk("payload")})),
        with_attrs(value::array(vals({num(2039123), num(9543892)})),
                   vals({simple("key-popularity"),
                         value::map(vals({bulk("a"), value::double_(0.1923)}))})),
        value::array(vals({num(1), with_attrs(num(3), vals({simple("ttl"), num(3600)}))})),
        with_attrs(num(7), vals({simple("k"), with_attrs(num(8), vals({simple("x"), num(9)}))})),
        with_attrs(value::null(null_kind::bulk), {}),
    };
}

TEST(writer, resp3_round_trip_for_every_type) {
    for (const auto& v : every_type()) {
        SCOPED_TRACE(v.to_display());
        EXPECT_EQ(parse_one(encode(v)), v);
    }
}

TEST(writer, resp3_round_trip_of_every_parsed_message) {
    for (const auto& m : valid_messages()) {
        SCOPED_TRACE(m.name);
        const std::string bytes = encode(m.expected);
        EXPECT_EQ(parse_one(bytes), m.expected);
    }
}

TEST(writer, resp3_reproduces_canonical_messages_byte_for_byte) {
    for (const auto& m : valid_messages()) {
        const bool canonical = m.bytes.find('?') == std::string::npos &&
                               m.name.find("double") == std::string::npos &&
                               m.name.find("consecutive") == std::string::npos;
        if (canonical) {
            EXPECT_EQ(encode(m.expected), m.bytes) << m.name;
        }
    }
}

TEST(writer, resp2_down_conversion) {
    const std::vector<std::pair<value, std::string>> cases = {
        {simple("OK"), "+OK\r\n"},
        {value::simple_error("ERR x"), "-ERR x\r\n"},
        {num(-5), ":-5\r\n"},
        {bulk("bar"), "$3\r\nbar\r\n"},
        {value::null(), "$-1\r\n"},
        {value::null(null_kind::bulk), "$-1\r\n"},
        {value::null(null_kind::array), "*-1\r\n"},
        {value::double_(1.5), "$3\r\n1.5\r\n"},
        {value::double_(10), "$2\r\n10\r\n"},
        {value::double_(std::numeric_limits<double>::infinity()), "$3\r\ninf\r\n"},
        {value::double_(-std::numeric_limits<double>::infinity()), "$4\r\n-inf\r\n"},
        {value::double_(std::numeric_limits<double>::quiet_NaN()), "$3\r\nnan\r\n"},
        {value::boolean(true), ":1\r\n"},
        {value::boolean(false), ":0\r\n"},
        {value::blob_error("SYNTAX bad\r\nthing"), "-SYNTAX bad  thing\r\n"},
        {value::verbatim_string("txt", "hello"), "$5\r\nhello\r\n"},
        {value::big_number("12345678901234567890"), "$20\r\n12345678901234567890\r\n"},
        {value::map(vals({bulk("a"), num(1), simple("b"), value::double_(2.5)})),
         "*4\r\n$1\r\na\r\n:1\r\n+b\r\n$3\r\n2.5\r\n"},
        {value::set(vals({num(1), num(2)})), "*2\r\n:1\r\n:2\r\n"},
        {value::push(vals({bulk("message"), bulk("ch"), bulk("hi")})),
         "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"},
        {with_attrs(num(1), vals({simple("ttl"), num(3600)})), ":1\r\n"},
        {value::array(vals(
             {value::map(vals({bulk("k"), value::boolean(true)})), value::null(null_kind::array)})),
         "*2\r\n*2\r\n$1\r\nk\r\n:1\r\n*-1\r\n"},
    };
    for (const auto& [v, bytes] : cases) {
        EXPECT_EQ(encode(v, protocol::resp2), bytes) << v.to_display();
    }
}

TEST(writer, resp3_encodings) {
    EXPECT_EQ(encode(value::double_(1.5)), ",1.5\r\n");
    EXPECT_EQ(encode(value::boolean(true)), "#t\r\n");
    EXPECT_EQ(encode(value::null()), "_\r\n");
    EXPECT_EQ(encode(value::blob_error("ERR x")), "!5\r\nERR x\r\n");
    EXPECT_EQ(encode(value::verbatim_string("txt", "hi")), "=6\r\ntxt:hi\r\n");
    EXPECT_EQ(encode(value::big_number("-12")), "(-12\r\n");
    EXPECT_EQ(encode(with_attrs(num(1), vals({simple("a"), num(2)}))), "|1\r\n+a\r\n:2\r\n:1\r\n");
    EXPECT_EQ(encode(value::set(vals({num(1)}))), "~1\r\n:1\r\n");
    EXPECT_EQ(encode(value::push(vals({num(1)}))), ">1\r\n:1\r\n");
    EXPECT_EQ(encode(value::map(vals({num(1), num(2)}))), "%1\r\n:1\r\n:2\r\n");
}

TEST(writer, commands) {
    std::string out;
    append_command(out, {"SET", "key", "a\r\nb"});
    EXPECT_EQ(out, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$4\r\na\r\nb\r\n");
    out.clear();
    const std::vector<std::string_view> args{"PING"};
    append_command(out, args);
    EXPECT_EQ(out, "*1\r\n$4\r\nPING\r\n");
    out.clear();
    append_command(out, std::span<const std::string_view>{});
    EXPECT_EQ(out, "*0\r\n");
}

TEST(writer, building_blocks) {
    std::string out;
    append_simple_string(out, "OK");
    append_error(out, "ERR line\r\nbreak");
    append_integer(out, INT64_MIN);
    append_bulk(out, "");
    append_null(out, protocol::resp3);
    append_null(out, protocol::resp2);
    append_array_header(out, 2);
    append_map_header(out, 2, protocol::resp3);
    append_map_header(out, 2, protocol::resp2);
    append_double(out, 0.25, protocol::resp3);
    append_double(out, 0.25, protocol::resp2);
    append_boolean(out, false, protocol::resp3);
    append_boolean(out, true, protocol::resp2);
    EXPECT_EQ(out,
              "+OK\r\n-ERR line  break\r\n:-9223372036854775808\r\n$0\r\n\r\n_\r\n$-1\r\n*2\r\n"
              "%2\r\n*4\r\n,0.25\r\n$4\r\n0.25\r\n#f\r\n:1\r\n");
}

TEST(writer, format_double_is_shortest_round_trip) {
    EXPECT_EQ(format_double(1.5), "1.5");
    EXPECT_EQ(format_double(10), "10");
    EXPECT_EQ(format_double(0.1), "0.1");
    EXPECT_EQ(format_double(1e300), "1e+300");
    EXPECT_EQ(format_double(-0.0), "-0");
    EXPECT_EQ(format_double(std::numeric_limits<double>::infinity()), "inf");
    EXPECT_EQ(format_double(-std::numeric_limits<double>::infinity()), "-inf");
    EXPECT_EQ(format_double(std::numeric_limits<double>::quiet_NaN()), "nan");
    EXPECT_EQ(format_double(-std::numeric_limits<double>::quiet_NaN()), "nan");
    for (const double d :
         {0.1 + 0.2, 1.0 / 3, 123456789.123456789, 5e-324, 1.7976931348623157e308}) {
        const std::string text = format_double(d);
        double back = 0;
        std::from_chars(text.data(), text.data() + text.size(), back);
        EXPECT_EQ(back, d) << text;
    }
}

}  // namespace
}  // namespace respite::resp::test
