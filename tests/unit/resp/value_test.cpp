// value: factories, copies, equality, lookups and rendering; the error category.
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/error.hpp>
#include <respite/resp/value.hpp>

#include "resp_test_support.hpp"

namespace respite::resp::test {
namespace {

TEST(value, factories_set_type_and_payload) {
    EXPECT_TRUE(value().is_null());
    EXPECT_EQ(value::simple_string("OK").type(), type::simple_string);
    EXPECT_TRUE(value::simple_error("ERR").is_error());
    EXPECT_TRUE(value::blob_error("ERR").is_error());
    EXPECT_EQ(value::integer(-3).integer(), -3);
    EXPECT_EQ(value::double_(2.5).double_value(), 2.5);
    EXPECT_TRUE(value::boolean(true).boolean());
    EXPECT_FALSE(value::boolean(false).boolean());
    const value v = value::verbatim_string("mkd", "# title");
    EXPECT_EQ(v.format(), "mkd");
    EXPECT_EQ(v.str(), "# title");
    EXPECT_TRUE(v.is_string());
    EXPECT_EQ(value::null(null_kind::array).null_form(), null_kind::array);
    const value m = value::map(vals({bulk("a"), num(1), bulk("b"), num(2)}));
    EXPECT_EQ(m.size(), 2U);
    EXPECT_TRUE(m.is_aggregate());
    EXPECT_EQ(value::array(vals({num(1)})).size(), 1U);
    EXPECT_EQ(value::array(vals({num(1)}))[0], num(1));
}

TEST(value, copies_are_deep_including_attributes) {
    value original = with_attrs(value::array(vals({bulk("x")})), vals({simple("ttl"), num(1)}));
    value copy = original;
    EXPECT_EQ(copy, original);
    ASSERT_NE(copy.attributes(), nullptr);
    EXPECT_NE(copy.attributes(), original.attributes());
    original.elements()[0].str() = "changed";
    EXPECT_NE(copy, original);
    value assigned;
    assigned = copy;
    EXPECT_EQ(assigned, copy);
    const value& alias = assigned;
    assigned = alias;  // self-assignment keeps the value
    EXPECT_EQ(assigned, copy);
}

TEST(value, equality_is_structural) {
    EXPECT_NE(value::null(null_kind::bulk), value::null(null_kind::array));
    EXPECT_NE(value::null(), value::null(null_kind::bulk));
    EXPECT_NE(bulk("a"), simple("a"));
    EXPECT_NE(num(1), value::boolean(true));
    EXPECT_NE(num(1), with_attrs(num(1), {}));
    EXPECT_NE(with_attrs(num(1), vals({simple("a"), num(1)})),
              with_attrs(num(1), vals({simple("a"), num(2)})));
    EXPECT_EQ(value::double_(std::numeric_limits<double>::quiet_NaN()),
              value::double_(std::numeric_limits<double>::quiet_NaN()));
    EXPECT_NE(value::verbatim_string("txt", "a"), value::verbatim_string("mkd", "a"));
    EXPECT_NE(value::array(vals({num(1)})), value::set(vals({num(1)})));
}

TEST(value, find_looks_up_string_keys_of_maps) {
    const value m = value::map(
        vals({bulk("server"), bulk("redis"), simple("proto"), num(3), num(7), bulk("number key")}));
    ASSERT_NE(m.find("server"), nullptr);
    EXPECT_EQ(m.find("server")->str(), "redis");
    EXPECT_EQ(m.find("proto")->integer(), 3);
    EXPECT_EQ(m.find("7"), nullptr);
    EXPECT_EQ(m.find("missing"), nullptr);
    EXPECT_EQ(value::array(vals({bulk("server"), bulk("redis")})).find("server"), nullptr);
}

TEST(value, to_int64) {
    std::int64_t n = 0;
    EXPECT_TRUE(num(-5).to_int64(n));
    EXPECT_EQ(n, -5);
    EXPECT_TRUE(bulk("-9223372036854775808").to_int64(n));
    EXPECT_EQ(n, std::numeric_limits<std::int64_t>::min());
    EXPECT_TRUE(simple("42").to_int64(n));
    EXPECT_EQ(n, 42);
    EXPECT_FALSE(bulk("9223372036854775808").to_int64(n));
    EXPECT_FALSE(bulk("4x").to_int64(n));
    EXPECT_FALSE(bulk("").to_int64(n));
    EXPECT_FALSE(value::double_(1).to_int64(n));
    EXPECT_FALSE(value::null().to_int64(n));
}

TEST(value, to_display_looks_like_redis_cli) {
    EXPECT_EQ(simple("OK").to_display(), "OK");
    EXPECT_EQ(bulk("a\"b\n\x01").to_display(), "\"a\\\"b\\n\\x01\"");
    EXPECT_EQ(num(3).to_display(), "(integer) 3");
    EXPECT_EQ(value::null().to_display(), "(nil)");
    EXPECT_EQ(value::simple_error("ERR x").to_display(), "(error) ERR x");
    EXPECT_EQ(value::double_(1.5).to_display(), "(double) 1.5");
    EXPECT_EQ(value::boolean(true).to_display(), "(true)");
    EXPECT_EQ(value::big_number("123").to_display(), "(big number) 123");
    EXPECT_EQ(value::array({}).to_display(), "(empty array)");
    EXPECT_EQ(value::array(vals({bulk("a"), value::array(vals({num(1), num(2)}))})).to_display(),
              "1) \"a\"\n2) 1) (integer) 1\n   2) (integer) 2");
    EXPECT_EQ(value::map(vals({bulk("k"), bulk("v")})).to_display(), "1# \"k\" => \"v\"");
    EXPECT_EQ(value::set(vals({num(1)})).to_display(), "1~ (integer) 1");
    std::vector<value> ten;
    ten.reserve(10);
    for (int i = 0; i < 10; ++i) {
        ten.push_back(num(i));
    }
    const std::string display = value::array(std::move(ten)).to_display();
    EXPECT_EQ(display.substr(0, 15), " 1) (integer) 0");
    EXPECT_NE(display.find("\n10) (integer) 9"), std::string::npos);
}

TEST(value, type_names) {
    EXPECT_EQ(type_name(type::simple_string), "simple_string");
    EXPECT_EQ(type_name(type::double_), "double");
    EXPECT_EQ(type_name(type::push), "push");
}

TEST(error_category, names_and_messages) {
    const std::error_code ec = error::bulk_too_large;
    EXPECT_STREQ(ec.category().name(), "respite.resp");
    EXPECT_EQ(ec, make_error_code(error::bulk_too_large));
    EXPECT_NE(ec.message().find("limit"), std::string::npos);
    for (int e = 1; e <= static_cast<int>(error::attribute_without_value); ++e) {
        const std::string text = make_error_code(static_cast<error>(e)).message();
        EXPECT_FALSE(text.empty());
        EXPECT_EQ(text.find("unknown"), std::string::npos) << e;
    }
    EXPECT_FALSE(std::error_code(make_error_code(error::ok)));
}

}  // namespace
}  // namespace respite::resp::test
