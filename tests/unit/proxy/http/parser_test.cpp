// The sans-I/O request parser and URL splitter, fed byte scripts split at every position.
#include <gtest/gtest.h>

#include "request_parser.hpp"
#include "url.hpp"

using namespace respite::proxy;
using http_detail::request_parser;
using state = request_parser::state;

namespace {

constexpr std::size_t header_limit = 16 * 1024;
constexpr std::size_t body_limit = 1024 * 1024;

// Feeds the script in two parts split at `split`, as two reads would deliver it.
state feed_split(request_parser& p, std::string_view script, std::size_t split) {
    auto s = p.consume(script.substr(0, split));
    if (s != state::need_more) {
        return s;
    }
    return p.consume(script);
}

state parse(request_parser& p, std::string_view script) {
    return p.consume(script);
}

int error_of(std::string_view script, std::size_t max_body = body_limit) {
    request_parser p(header_limit, max_body);
    return parse(p, script) == state::failed ? p.error_status() : 0;
}

}  // namespace

TEST(http_parser, request_split_at_every_position_parses_the_same) {
    const std::string script =
        "POST /v1/items%20x?a=1&b=hello%20world&c=x+y&flag HTTP/1.1\r\n"
        "Host: localhost\r\nX-Thing:  two words \r\nx-thing: again\r\nContent-Length: 5\r\n\r\n"
        "hello";
    for (std::size_t split = 0; split <= script.size(); ++split) {
        request_parser p(header_limit, body_limit);
        ASSERT_EQ(feed_split(p, script, split), state::complete) << "split at " << split;
        const auto& r = p.request();
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.path, "/v1/items x");
        EXPECT_EQ(r.param("a"), "1");
        EXPECT_EQ(r.param("b"), "hello world");
        EXPECT_EQ(r.param("c"), "x y");
        EXPECT_TRUE(r.query.contains("flag"));
        EXPECT_EQ(r.param("missing", "dflt"), "dflt");
        EXPECT_EQ(r.header("host"), "localhost");
        EXPECT_EQ(r.header("x-thing"), "two words, again");
        EXPECT_EQ(r.body, "hello");
        EXPECT_EQ(p.consumed(), script.size());
        EXPECT_TRUE(p.keep_alive());
    }
}

TEST(http_parser, incomplete_input_needs_more) {
    request_parser p(header_limit, body_limit);
    EXPECT_EQ(parse(p, "GET / HTTP/1.1\r\nHost: x\r\n"), state::need_more);
    request_parser q(header_limit, body_limit);
    EXPECT_EQ(parse(q, "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"), state::need_more);
}

TEST(http_parser, pipelined_requests_leave_the_next_one_in_the_buffer) {
    const std::string two = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
    request_parser p(header_limit, body_limit);
    ASSERT_EQ(parse(p, two), state::complete);
    EXPECT_EQ(p.request().path, "/a");
    const auto rest = std::string_view(two).substr(p.consumed());
    p.reset();
    ASSERT_EQ(parse(p, rest), state::complete);
    EXPECT_EQ(p.request().path, "/b");
    EXPECT_FALSE(p.keep_alive());
}

TEST(http_parser, keep_alive_follows_the_version_and_connection_header) {
    const auto keep = [](std::string_view s) {
        request_parser p(header_limit, body_limit);
        EXPECT_EQ(parse(p, s), state::complete) << s;
        return p.keep_alive();
    };
    EXPECT_TRUE(keep("GET / HTTP/1.1\r\n\r\n"));
    EXPECT_FALSE(keep("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
    EXPECT_FALSE(keep("GET / HTTP/1.0\r\n\r\n"));
    EXPECT_TRUE(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

TEST(http_parser, expect_continue_is_reported_until_the_body_arrives) {
    request_parser p(header_limit, body_limit);
    const std::string head = "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    ASSERT_EQ(parse(p, head), state::need_more);
    EXPECT_TRUE(p.wants_continue());
    ASSERT_EQ(parse(p, head + "ok"), state::complete);
    EXPECT_FALSE(p.wants_continue());
}

TEST(http_parser, malformed_requests_are_400) {
    for (std::string_view bad : {
             "GARBAGE\r\n\r\n",
             "GET\r\n\r\n",
             "GET  / HTTP/1.1\r\n\r\n",
             "GET / HTTP/1.1 extra\r\n\r\n",
             "GET noslash HTTP/1.1\r\n\r\n",
             "G(T / HTTP/1.1\r\n\r\n",
             "GET / FTP/1.1\r\n\r\n",
             "GET /%zz HTTP/1.1\r\n\r\n",
             "GET /?a=%4 HTTP/1.1\r\n\r\n",
             "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
             "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
             "GET / HTTP/1.1\r\nHost : x\r\n\r\n",
             "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
             "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
             "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
             "\r\n\r\n",
         }) {
        EXPECT_EQ(error_of(bad), 400) << bad;
    }
}

TEST(http_parser, binary_bytes_in_the_request_line_fail_before_the_head_is_complete) {
    request_parser p(header_limit, body_limit);
    EXPECT_EQ(p.consume("GET /"), state::need_more);
    EXPECT_EQ(p.consume("GET /\x16\x03\x01"), state::failed);
    EXPECT_EQ(p.error_status(), 400);
}

TEST(http_parser, other_refusals_have_their_own_status) {
    EXPECT_EQ(error_of("GET / HTTP/2.0\r\n\r\n"), 505);
    EXPECT_EQ(error_of("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
    EXPECT_EQ(error_of("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", 10), 413);
    EXPECT_EQ(error_of("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", 10), 0);
    // Headers too big, with or without their terminator yet.
    const std::string big(header_limit + 1, 'a');
    EXPECT_EQ(error_of(big), 413);
    EXPECT_EQ(error_of("GET / HTTP/1.1\r\nX: " + big + "\r\n\r\n"), 413);
}

TEST(http_parser, arbitrary_bytes_never_complete_a_request) {
    std::string junk;
    std::uint32_t rng = 12345;
    for (int round = 0; round < 2000; ++round) {
        junk.clear();
        const auto len = 1 + round % 300;
        for (int i = 0; i < len; ++i) {
            rng = rng * 1103515245u + 12345u;
            junk.push_back(static_cast<char>(rng >> 16));
        }
        request_parser p(header_limit, body_limit);
        junk += "\r\n\r\n";
        EXPECT_EQ(parse(p, junk), state::failed);
    }
}

TEST(http_url, splits_host_port_and_target) {
    auto u = http_detail::parse_url("http://127.0.0.1:8080/api/1/store/?sentry_key=abc");
    ASSERT_TRUE(u);
    EXPECT_FALSE(u->tls);
    EXPECT_EQ(u->host, "127.0.0.1");
    EXPECT_EQ(u->port, "8080");
    EXPECT_EQ(u->target, "/api/1/store/?sentry_key=abc");
    EXPECT_EQ(u->host_header, "127.0.0.1:8080");

    u = http_detail::parse_url("https://sentry.example.com");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->port, "443");
    EXPECT_EQ(u->target, "/");

    u = http_detail::parse_url("http://[::1]:9000?x=1#frag");
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->target, "/?x=1");
}

TEST(http_url, refuses_what_it_cannot_send) {
    for (std::string_view bad :
         {"", "ftp://x/", "http://", "http://:80/", "http://h:0/", "http://h:70000/",
          "http://h:8x/", "http://user@h/", "http://[::1/", "http://h/a b"}) {
        EXPECT_FALSE(http_detail::parse_url(bad)) << bad;
    }
}
