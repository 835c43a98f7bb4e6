// parser: every valid and invalid test message, whole, split at every byte and in three pieces.
#include <cmath>
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/parser.hpp>

#include "resp_test_support.hpp"

namespace respite::resp::test {
namespace {

TEST(parser, valid_messages_whole_and_split_at_every_byte) {
    for (const auto& m : valid_messages()) {
        for (const auto& chunks : all_splits(m.bytes)) {
            SCOPED_TRACE(m.name + " " + describe(chunks));
            const parse_outcome out = parse_chunks(chunks);
            ASSERT_FALSE(out.error) << out.error.message();
            ASSERT_EQ(out.values.size(), 1U);
            EXPECT_EQ(out.values[0], m.expected) << "got:\n"
                                                 << out.values[0].to_display() << "\nwant:\n"
                                                 << m.expected.to_display();
            EXPECT_EQ(out.lengths[0], m.bytes.size());
            EXPECT_TRUE(out.idle);
            EXPECT_FALSE(out.kept_bytes) << "the parser must consume what it cannot use yet";
        }
    }
}

TEST(parser, invalid_messages_fail_the_same_way_at_every_split) {
    for (const auto& m : invalid_messages()) {
        for (const auto& chunks : all_splits(m.bytes)) {
            SCOPED_TRACE(m.name + " " + describe(chunks));
            const parse_outcome out = parse_chunks(chunks, m.limits);
            EXPECT_EQ(out.error, make_error_code(m.expected))
                << "got: " << out.error.message() << " with " << out.values.size() << " values";
        }
    }
}

TEST(parser, many_values_in_one_buffer_at_every_split) {
    std::string all;
    std::vector<const message*> order;
    const auto messages = valid_messages();
    for (const auto& m : messages) {
        all += m.bytes;
        order.push_back(&m);
    }
    std::vector<std::vector<std::string_view>> splits{whole(all), bytewise(all)};
    for (std::size_t i = 0; i <= all.size(); ++i) {
        splits.push_back(split_at(all, i));
    }
    for (const auto& chunks : splits) {
        SCOPED_TRACE(describe(chunks));
        const parse_outcome out = parse_chunks(chunks);
        ASSERT_FALSE(out.error) << out.error.message();
        ASSERT_EQ(out.values.size(), order.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            EXPECT_EQ(out.values[i], order[i]->expected) << order[i]->name;
            EXPECT_EQ(out.lengths[i], order[i]->bytes.size()) << order[i]->name;
        }
    }
}

TEST(parser, feed_stops_right_after_each_value) {
    parser p;
    const std::string input = "+OK\r\n:1\r\n$3\r\nbar\r\n";
    std::string_view rest = input;
    auto r = p.feed(rest);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, 5U);
    EXPECT_EQ(p.take(), value::simple_string("OK"));
    rest.remove_prefix(r.consumed);
    r = p.feed(rest);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, 4U);
    EXPECT_EQ(p.take(), value::integer(1));
    rest.remove_prefix(r.consumed);
    r = p.feed(rest);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, 9U);
    EXPECT_EQ(p.take(), value::bulk_string("bar"));
    EXPECT_TRUE(p.idle());
    r = p.feed({});
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.consumed, 0U);
}

TEST(parser, idle_only_between_frames) {
    parser p;
    EXPECT_TRUE(p.idle());
    EXPECT_FALSE(p.feed("*2\r\n:1").complete);
    EXPECT_FALSE(p.idle());
    EXPECT_TRUE(p.feed("\r\n:2\r\n").complete);
    EXPECT_TRUE(p.idle());
    // A top-level attribute alone is not a reply, and the parser is mid-frame after it.
    EXPECT_FALSE(p.feed("|1\r\n+a\r\n:1\r\n").complete);
    EXPECT_FALSE(p.idle());
}

TEST(parser, errors_are_sticky_until_reset) {
    parser p;
    auto r = p.feed("?\r\n");
    EXPECT_EQ(r.error, make_error_code(error::invalid_type_byte));
    r = p.feed("+OK\r\n");
    EXPECT_EQ(r.error, make_error_code(error::invalid_type_byte));
    p.reset();
    r = p.feed("+OK\r\n");
    EXPECT_FALSE(r.error);
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(p.take(), value::simple_string("OK"));
}

TEST(parser, reset_drops_a_partial_value) {
    parser p;
    EXPECT_FALSE(p.feed("*3\r\n:1\r\n$5\r\nhel").complete);
    p.reset();
    EXPECT_TRUE(p.idle());
    const auto r = p.feed(":7\r\n");
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(p.take(), value::integer(7));
}

TEST(parser, limits_are_inclusive) {
    const limits l = small_limits();  // bulk 16, 4 elements, depth 3, line 24
    const std::vector<std::pair<std::string, value>> at_limit = {
        {"+" + std::string(24, 'a') + "\r\n", value::simple_string(std::string(24, 'a'))},
        {"$16\r\n" + std::string(16, 'b') + "\r\n", value::bulk_string(std::string(16, 'b'))},
        {"*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", value::array(vals({num(1), num(2), num(3), num(4)}))},
        {"%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n", value::map(vals({num(1), num(2), num(3), num(4)}))},
        {"*1\r\n*1\r\n*1\r\n:1\r\n",
         value::array(vals({value::array(vals({value::array(vals({num(1)}))}))}))},
        {"$?\r\n;8\r\naaaaaaaa\r\n;8\r\nbbbbbbbb\r\n;0\r\n",
         value::bulk_string("aaaaaaaabbbbbbbb")},
    };
    for (const auto& [bytes, expected] : at_limit) {
        for (const auto& chunks : all_splits(bytes)) {
            SCOPED_TRACE(bytes + " " + describe(chunks));
            const auto out = parse_chunks(chunks, l);
            ASSERT_FALSE(out.error) << out.error.message();
            ASSERT_EQ(out.values.size(), 1U);
            EXPECT_EQ(out.values[0], expected);
        }
    }
}

TEST(parser, attributes_are_exposed_and_never_replies) {
    parser p;
    const std::string input =
        "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
        "*2\r\n:2039123\r\n:9543892\r\n";
    const auto r = p.feed(input);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.consumed, input.size());
    const value v = p.take();
    EXPECT_EQ(v.type(), type::array);
    EXPECT_EQ(v.size(), 2U);
    ASSERT_NE(v.attributes(), nullptr);
    ASSERT_EQ(v.attributes()->size(), 2U);
    EXPECT_EQ((*v.attributes())[0].str(), "key-popularity");
    EXPECT_DOUBLE_EQ((*v.attributes())[1].find("a")->double_value(), 0.1923);
}

TEST(parser, verbatim_exposes_format_and_body) {
    parser p;
    ASSERT_TRUE(p.feed("=15\r\ntxt:Some string\r\n").complete);
    const value v = p.take();
    EXPECT_EQ(v.type(), type::verbatim_string);
    EXPECT_EQ(v.format(), "txt");
    EXPECT_EQ(v.str(), "Some string");
    EXPECT_TRUE(v.is_string());
}

TEST(parser, null_forms_are_kept) {
    parser p;
    ASSERT_TRUE(p.feed("$-1\r\n").complete);
    EXPECT_EQ(p.take().null_form(), null_kind::bulk);
    ASSERT_TRUE(p.feed("*-1\r\n").complete);
    EXPECT_EQ(p.take().null_form(), null_kind::array);
    ASSERT_TRUE(p.feed("_\r\n").complete);
    const value v = p.take();
    EXPECT_TRUE(v.is_null());
    EXPECT_EQ(v.null_form(), null_kind::resp3);
}

TEST(parser, integer_extremes) {
    parser p;
    ASSERT_TRUE(p.feed(":-9223372036854775808\r\n").complete);
    EXPECT_EQ(p.take().integer(), std::numeric_limits<std::int64_t>::min());
    ASSERT_TRUE(p.feed(":9223372036854775807\r\n").complete);
    EXPECT_EQ(p.take().integer(), std::numeric_limits<std::int64_t>::max());
}

TEST(parser, doubles) {
    parser p;
    ASSERT_TRUE(p.feed(",-inf\r\n").complete);
    EXPECT_TRUE(std::isinf(p.take().double_value()));
    ASSERT_TRUE(p.feed(",nan\r\n").complete);
    EXPECT_TRUE(std::isnan(p.take().double_value()));
    ASSERT_TRUE(p.feed(",1.5e10\r\n").complete);
    EXPECT_EQ(p.take().double_value(), 1.5e10);
    ASSERT_TRUE(p.feed(",10\r\n").complete);
    EXPECT_EQ(p.take().double_value(), 10.0);
}

TEST(parser, moves) {
    parser a;
    EXPECT_FALSE(a.feed("*2\r\n:1\r\n").complete);
    parser b(std::move(a));
    EXPECT_TRUE(b.feed(":2\r\n").complete);
    EXPECT_EQ(b.take(), value::array(vals({num(1), num(2)})));
}

}  // namespace
}  // namespace respite::resp::test
