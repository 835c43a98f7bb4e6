// request_parser: RESP multibulk and inline requests, split anywhere, with Redis's quoting rules.
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/request_parser.hpp>

#include "resp_test_support.hpp"

namespace respite::resp::test {
namespace {

struct request_outcome {
    std::vector<std::vector<std::string>> requests;
    std::vector<std::size_t> lengths;
    std::vector<bool> inline_flags;
    std::error_code error;
    std::string reason;  // copied: the parser's text lives only as long as the parser
};

// Passes the buffer from the start of the current request each time, as the proxy does.
request_outcome parse_requests(const std::vector<std::string_view>& chunks, limits l = {}) {
    request_parser p(l);
    request_outcome out;
    std::string buffer;
    std::vector<std::string_view> args;
    for (const auto chunk : chunks) {
        buffer.append(chunk);
        for (;;) {
            const request_result r = p.parse(buffer, args);
            if (r.error) {
                out.error = r.error;
                out.reason = std::string(r.reason);
                return out;
            }
            if (!r.complete) {
                break;
            }
            out.requests.emplace_back(args.begin(), args.end());
            out.lengths.push_back(r.length);
            out.inline_flags.push_back(r.is_inline);
            buffer.erase(0, r.length);
        }
    }
    return out;
}

using args_t = std::vector<std::string>;

struct good_request {
    std::string bytes;
    args_t args;
    bool is_inline;
};

std::vector<good_request> good_requests() {
    return {
        {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", {"SET", "k", "v"}, false},
        {"*1\r\n$4\r\nPING\r\n", {"PING"}, false},
        {"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", {"GET", ""}, false},
        {"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", {"ECHO", "a\r\nb"}, false},
        {"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", {"PING"}, false},
        // Leading zeros, and lengths of 18 and 19 digits: the one-pass path for whole requests
        // and the state machine read them alike.
        {"*02\r\n$03\r\nGET\r\n$1\r\nk\r\n", {"GET", "k"}, false},
        {"*1\r\n$000000000000000004\r\nPING\r\n", {"PING"}, false},
        {"*1\r\n$0000000000000000004\r\nPING\r\n", {"PING"}, false},
        {"PING\r\n", {"PING"}, true},
        {"PING\n", {"PING"}, true},
        {"\r\n\n  \t\r\nPING\r\n", {"PING"}, true},
        {"set  k   v\r\n", {"set", "k", "v"}, true},
        {"set k \"a b\"\r\n", {"set", "k", "a b"}, true},
        {"echo \"\\x41\\n\\r\\t\\b\\a\\\\\\\"\\q\"\n", {"echo", "A\n\r\t\b\a\\\"q"}, true},
        {"echo \"\\xZZ\"\n", {"echo", "xZZ"}, true},
        {"echo 'it\\'s' '\\n'\n", {"echo", "it's", "\\n"}, true},
        {"echo \"\" ''\n", {"echo", "", ""}, true},
        {"echo a\"b\"\n", {"echo", "ab"}, true},
        {"echo a\0b\n"s, {"echo", "a"}, true},
        {"echo a\vb\n", {"echo", "a\vb"}, true},
    };
}

TEST(request_parser, valid_requests_at_every_split) {
    const auto requests = good_requests();
    for (const auto& r : requests) {
        for (const auto& chunks : all_splits(r.bytes)) {
            SCOPED_TRACE(r.bytes + " " + describe(chunks));
            const auto out = parse_requests(chunks);
            ASSERT_FALSE(out.error) << out.error.message() << " " << out.reason;
            ASSERT_EQ(out.requests.size(), 1U);
            EXPECT_EQ(out.requests[0], r.args);
            EXPECT_EQ(out.lengths[0], r.bytes.size());
            EXPECT_EQ(out.inline_flags[0], r.is_inline);
        }
    }
}

TEST(request_parser, pipelined_requests_in_one_buffer) {
    const auto requests = good_requests();
    std::string all;
    for (const auto& r : requests) {
        all += r.bytes;
    }
    for (std::size_t i = 0; i <= all.size(); ++i) {
        const auto out = parse_requests(split_at(all, i));
        ASSERT_FALSE(out.error) << out.error.message();
        ASSERT_EQ(out.requests.size(), requests.size());
        for (std::size_t k = 0; k < requests.size(); ++k) {
            EXPECT_EQ(out.requests[k], requests[k].args);
        }
    }
    const auto out = parse_requests(bytewise(all));
    ASSERT_EQ(out.requests.size(), requests.size());
}

// Blank lines and empty arrays before a request can be dropped from the caller's buffer while
// the request is still incomplete (a client sending only those must not grow it), at every
// split, and the request then parses as without them.
TEST(request_parser, skipped_bytes_are_dropped_before_an_incomplete_request) {
    const std::string junk = "\r\n*0\r\n\n*-1\r\n  \r\n";
    for (const auto& r : good_requests()) {
        const std::string all = junk + r.bytes;
        for (const auto& chunks : all_splits(all)) {
            SCOPED_TRACE(r.bytes + " " + describe(chunks));
            request_parser p;
            std::vector<std::string_view> args;
            std::string buffer;  // what the caller still holds
            std::size_t dropped = 0;
            bool done = false;
            for (const auto& chunk : chunks) {
                buffer += chunk;
                const auto res = p.parse(buffer, args);
                ASSERT_FALSE(res.error) << res.reason;
                if (res.complete) {
                    EXPECT_EQ(std::vector<std::string>(args.begin(), args.end()), r.args);
                    EXPECT_EQ(dropped + res.length, all.size());
                    done = true;
                    break;
                }
                const auto n = p.drop_skipped();
                ASSERT_LE(n, buffer.size());
                buffer.erase(0, n);
                dropped += n;
            }
            EXPECT_TRUE(done);
        }
    }
    // Only skipped bytes: all of them go.
    request_parser p;
    std::vector<std::string_view> args;
    EXPECT_FALSE(p.parse(junk, args).complete);
    EXPECT_EQ(p.drop_skipped(), junk.size());
    EXPECT_EQ(p.drop_skipped(), 0U);
    EXPECT_FALSE(p.parse("", args).complete);
    const auto res = p.parse("PING\r\n", args);
    ASSERT_TRUE(res.complete);
    EXPECT_EQ(res.length, 6U);
}

TEST(request_parser, resp_arguments_are_views_into_the_input) {
    request_parser p;
    const std::string input = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    std::vector<std::string_view> args;
    const auto r = p.parse(input, args);
    ASSERT_TRUE(r.complete);
    ASSERT_EQ(args.size(), 2U);
    EXPECT_EQ(args[0].data(), input.data() + 8);
    EXPECT_EQ(args[1].data(), input.data() + 17);
}

struct bad_request {
    std::string bytes;
    limits l;
    error e;
    std::string_view reason;
};

TEST(request_parser, errors_at_every_split) {
    limits small;
    small.max_bulk_length = 8;
    small.max_aggregate_elements = 2;
    small.max_line_length = 10;
    const std::vector<bad_request> cases = {
        {"echo \"abc\n", {}, error::invalid_request, "unbalanced quotes in request"},
        {"echo 'abc\n", {}, error::invalid_request, "unbalanced quotes in request"},
        {"echo \"a\"b\n", {}, error::invalid_request, "unbalanced quotes in request"},
        {"echo 'a'b\n", {}, error::invalid_request, "unbalanced quotes in request"},
        {"*1\r\n:1\r\n", {}, error::invalid_request, "expected '$', got ':'"},
        {"*2\r\n$3\r\nGET\r\n+key\r\n", {}, error::invalid_request, "expected '$', got '+'"},
        {"*abc\r\n", {}, error::invalid_length, "invalid multibulk length"},
        {"*1\r\n$-1\r\n", {}, error::invalid_length, "invalid bulk length"},
        {"*1\r\n$x\r\n", {}, error::invalid_length, "invalid bulk length"},
        {"*1\r\n$3\r\nabcd\r\n", {}, error::missing_crlf, "missing CRLF after bulk argument"},
        {"*1\r\n$9\r\n", small, error::bulk_too_large, "invalid bulk length"},
        {"*3\r\n", small, error::aggregate_too_large, "invalid multibulk length"},
        {"*2147483648\r\n", {}, error::aggregate_too_large, "invalid multibulk length"},
        {"aaaaaaaaaaa", small, error::line_too_long, "too big inline request"},
        {"*11111111111\r\n", small, error::line_too_long, "too big mbulk count string"},
        {"*1\r\n$11111111111\r\n", small, error::line_too_long, "too big bulk count string"},
        {"*1\n", {}, error::missing_crlf, "invalid multibulk length"},
    };
    for (const auto& c : cases) {
        for (const auto& chunks : all_splits(c.bytes)) {
            SCOPED_TRACE(c.bytes + " " + describe(chunks));
            const auto out = parse_requests(chunks, c.l);
            EXPECT_EQ(out.error, make_error_code(c.e)) << out.error.message();
            EXPECT_EQ(out.reason, c.reason);
        }
    }
}

TEST(request_parser, inline_line_at_the_limit_is_accepted) {
    limits l;
    l.max_line_length = 10;
    const auto out = parse_requests(whole("aaaaaaaaa\r\n"), l);  // 10 bytes before '\n'
    ASSERT_FALSE(out.error);
    ASSERT_EQ(out.requests.size(), 1U);
    EXPECT_EQ(out.requests[0], args_t{"aaaaaaaaa"});
}

TEST(request_parser, reset_after_an_error) {
    request_parser p;
    std::vector<std::string_view> args;
    EXPECT_TRUE(p.parse("*1\r\n:1\r\n", args).error);
    EXPECT_TRUE(p.parse("PING\r\n", args).error);
    p.reset();
    const auto r = p.parse("PING\r\n", args);
    ASSERT_TRUE(r.complete);
    EXPECT_EQ(args, std::vector<std::string_view>{"PING"});
}

TEST(request_parser, large_argument_counts_are_not_preallocated) {
    request_parser p;
    std::vector<std::string_view> args;
    const auto r = p.parse("*60000000\r\n$1\r\na\r\n", args);
    EXPECT_FALSE(r.complete);
    EXPECT_FALSE(r.error);
}

}  // namespace
}  // namespace respite::resp::test
