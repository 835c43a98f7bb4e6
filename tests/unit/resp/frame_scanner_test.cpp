// frame_scanner: the same boundaries and errors as the parser, for every message and split.
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/frame_scanner.hpp>

#include "resp_test_support.hpp"

namespace respite::resp::test {
namespace {

// The type byte of the value itself, after any top-level attributes.
char value_type_byte(const message& m) {
    switch (m.expected.type()) {
        case type::simple_string:
            return '+';
        case type::simple_error:
            return '-';
        case type::integer:
            return ':';
        case type::bulk_string:
            return '$';
        case type::null:
            return m.expected.null_form() == null_kind::bulk    ? '$'
                   : m.expected.null_form() == null_kind::array ? '*'
                                                                : '_';
        case type::array:
            return '*';
        case type::double_:
            return ',';
        case type::boolean:
            return '#';
        case type::blob_error:
            return '!';
        case type::verbatim_string:
            return '=';
        case type::big_number:
            return '(';
        case type::map:
            return '%';
        case type::set:
            return '~';
        case type::push:
            return '>';
    }
    return 0;
}

TEST(frame_scanner, agrees_with_the_parser_on_every_valid_message_and_split) {
    for (const auto& m : valid_messages()) {
        for (const auto& chunks : all_splits(m.bytes)) {
            SCOPED_TRACE(m.name + " " + describe(chunks));
            const scan_outcome out = scan_chunks(chunks);
            ASSERT_FALSE(out.error) << out.error.message();
            ASSERT_EQ(out.frames.size(), 1U);
            EXPECT_EQ(out.frames[0].length, m.bytes.size());
            EXPECT_EQ(out.frames[0].type_byte, value_type_byte(m));
            EXPECT_EQ(out.frames[0].has_attribute, m.bytes[0] == '|');
        }
    }
}

TEST(frame_scanner, reports_the_parser_error_for_every_invalid_message_and_split) {
    for (const auto& m : invalid_messages()) {
        for (const auto& chunks : all_splits(m.bytes)) {
            SCOPED_TRACE(m.name + " " + describe(chunks));
            const scan_outcome out = scan_chunks(chunks, m.limits);
            EXPECT_EQ(out.error, make_error_code(m.expected)) << "got: " << out.error.message();
        }
    }
}

TEST(frame_scanner, boundaries_match_the_parser_in_one_buffer_at_every_split) {
    std::string all;
    for (const auto& m : valid_messages()) {
        all += m.bytes;
    }
    const parse_outcome parsed = parse_chunks(whole(all));
    ASSERT_FALSE(parsed.error);
    std::vector<std::vector<std::string_view>> splits{whole(all), bytewise(all)};
    for (std::size_t i = 0; i <= all.size(); ++i) {
        splits.push_back(split_at(all, i));
    }
    for (const auto& chunks : splits) {
        SCOPED_TRACE(describe(chunks));
        const scan_outcome out = scan_chunks(chunks);
        ASSERT_FALSE(out.error) << out.error.message();
        ASSERT_EQ(out.frames.size(), parsed.lengths.size());
        for (std::size_t i = 0; i < out.frames.size(); ++i) {
            EXPECT_EQ(out.frames[i].length, parsed.lengths[i]) << "frame " << i;
        }
    }
}

TEST(frame_scanner, resumes_with_the_same_frame_start) {
    frame_scanner s;
    const std::string input = "*2\r\n$5\r\nhello\r\n:42\r\n+next\r\n";
    EXPECT_FALSE(s.scan(std::string_view(input).substr(0, 3)).complete);
    EXPECT_FALSE(s.scan(std::string_view(input).substr(0, 10)).complete);
    const auto r = s.scan(input);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.frame.length, 20U);
    EXPECT_EQ(r.frame.type_byte, '*');
    EXPECT_FALSE(r.frame.has_attribute);
    const auto next = s.scan(std::string_view(input).substr(20));
    ASSERT_TRUE(next.complete);
    EXPECT_EQ(next.frame.length, 7U);
    EXPECT_EQ(next.frame.type_byte, '+');
}

TEST(frame_scanner, attribute_before_a_push) {
    frame_scanner s;
    const auto r = s.scan("|1\r\n+k\r\n+v\r\n>2\r\n+message\r\n+x\r\n");
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(r.frame.type_byte, '>');
    EXPECT_TRUE(r.frame.has_attribute);
}

TEST(frame_scanner, errors_are_sticky_until_reset) {
    frame_scanner s;
    EXPECT_EQ(s.scan("?").error, make_error_code(error::invalid_type_byte));
    EXPECT_EQ(s.scan("+OK\r\n").error, make_error_code(error::invalid_type_byte));
    s.reset();
    const auto r = s.scan("+OK\r\n");
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.frame.length, 5U);
}

TEST(frame_scanner, huge_declared_lengths_need_no_memory) {
    frame_scanner s;
    // A 500 MB bulk (under the default 512 MB limit) is skipped as bytes arrive.
    EXPECT_FALSE(s.scan("$500000000\r\nabc").complete);
    s.reset();
    EXPECT_FALSE(s.scan("*60000000\r\n:1\r\n").complete);
    s.reset();
    EXPECT_EQ(s.scan("*2147483647\r\n").error, make_error_code(error::aggregate_too_large));
}

}  // namespace
}  // namespace respite::resp::test
