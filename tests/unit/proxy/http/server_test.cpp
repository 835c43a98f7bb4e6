// http_server over real loopback sockets: routing, errors, limits, timeouts and stop().
#include <cerrno>
#include <random>

#include "http_fixture.hpp"

using namespace respite::proxy;
using namespace respite::proxy::testing;

namespace {

class http_server_test : public server_fixture {};

std::optional<parsed_response> one_request(std::uint16_t port, std::string_view request) {
    raw_client c;
    if (!c.connect(port)) {
        return std::nullopt;
    }
    c.send(request);
    return c.read_response();
}

}  // namespace

TEST_F(http_server_test, get_returns_the_handlers_response) {
    start();
    auto r = one_request(port(), "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "hello\n");
    EXPECT_NE(r->head.find("Content-Type: text/plain"), std::string::npos);
    EXPECT_NE(r->head.find("Connection: keep-alive"), std::string::npos);
}

TEST_F(http_server_test, query_parameters_are_decoded) {
    start();
    auto r = one_request(port(), "GET /echo-query?b=2&a=x%2Fy+z&e= HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "a=x/y z;b=2;e=;");
}

TEST_F(http_server_test, post_body_and_headers_reach_the_handler) {
    start();
    const std::string body(100000, 'b');
    auto r = one_request(port(),
                         "POST /echo HTTP/1.1\r\nContent-Type: text/x-test\r\n"
                         "X-Custom: v1\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201);
    EXPECT_EQ(r->body, body);
    EXPECT_NE(r->head.find("X-Echo: yes"), std::string::npos);
    EXPECT_NE(r->head.find("Content-Type: application/octet-stream"), std::string::npos);
    EXPECT_EQ(last_content_type_, "text/x-test");
    EXPECT_EQ(last_custom_, "v1");
}

TEST_F(http_server_test, expect_continue_gets_an_interim_response) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    auto interim = c.read_response();
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->status, 100);
    c.send("abc");
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201);
    EXPECT_EQ(r->body, "abc");
}

TEST_F(http_server_test, prefix_routes_and_unknown_paths) {
    start();
    auto r = one_request(port(), "GET /admin/drain?x=1 HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "admin:/admin/drain");
    r = one_request(port(), "GET /nope HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    r = one_request(port(), "GET /hello/ HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
}

TEST_F(http_server_test, wrong_method_is_405_with_allow) {
    start();
    auto r = one_request(port(), "DELETE /hello HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_NE(r->head.find("Allow: GET"), std::string::npos);
    r = one_request(port(), "GET /echo HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
}

TEST_F(http_server_test, head_uses_the_get_handler_without_a_body) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("HEAD /hello HTTP/1.1\r\nConnection: close\r\n\r\n");
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_TRUE(c.received().starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_NE(c.received().find("Content-Length: 6\r\n"), std::string::npos);
    EXPECT_TRUE(c.received().ends_with("\r\n\r\n"));
}

TEST_F(http_server_test, a_throwing_handler_is_500_and_the_server_lives_on) {
    start();
    auto r = one_request(port(), "GET /throws HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    r = one_request(port(), "GET /hello HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST_F(http_server_test, malformed_request_is_400_and_closes) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("GET /hello HTTP/1.1\r\nBad Header\r\n\r\n");
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_TRUE(c.received().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    EXPECT_NE(c.received().find("Connection: close"), std::string::npos);
}

TEST_F(http_server_test, chunked_upload_is_refused) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_TRUE(c.received().starts_with("HTTP/1.1 411 "));
}

TEST_F(http_server_test, oversized_headers_are_413) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("GET /hello HTTP/1.1\r\nX-Big: " + std::string(17 * 1024, 'x'));
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_TRUE(c.received().starts_with("HTTP/1.1 413 "));
}

TEST_F(http_server_test, oversized_body_is_413_before_it_is_read) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\nsome of it");
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_TRUE(c.received().starts_with("HTTP/1.1 413 "));
}

TEST_F(http_server_test, keep_alive_serves_several_requests_on_one_connection) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("GET /hello HTTP/1.1\r\n\r\n");
    auto first = c.read_response();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 200);
    c.send("POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    auto second = c.read_response();
    ASSERT_TRUE(second);
    EXPECT_EQ(second->status, 201);
    EXPECT_EQ(second->body, "hi");
    // Two pipelined in one write, the last asking to close.
    c.send("GET /hello HTTP/1.1\r\n\r\nGET /echo-query?k=v HTTP/1.1\r\nConnection: close\r\n\r\n");
    auto third = c.read_response();
    auto fourth = c.read_response();
    ASSERT_TRUE(third && fourth);
    EXPECT_EQ(third->body, "hello\n");
    EXPECT_EQ(fourth->body, "k=v;");
    EXPECT_NE(fourth->head.find("Connection: close"), std::string::npos);
    EXPECT_TRUE(c.read_until_closed());
}

TEST_F(http_server_test, http10_closes_after_the_response) {
    start();
    raw_client c;
    ASSERT_TRUE(c.connect(port()));
    c.send("GET /hello HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(c.read_until_closed());
    EXPECT_NE(c.received().find("hello\n"), std::string::npos);
}

TEST_F(http_server_test, garbage_bytes_get_400_or_a_close_never_a_crash) {
    start();
    std::mt19937 rng(7);
    for (int round = 0; round < 40; ++round) {
        raw_client c;
        ASSERT_TRUE(c.connect(port()));
        std::string junk(1 + rng() % 3000, '\0');
        for (auto& ch : junk) {
            ch = static_cast<char>(rng());
        }
        junk += "\r\n\r\n";  // so the parser sees a complete (bogus) head
        c.send(junk);
        ASSERT_TRUE(c.read_until_closed()) << "round " << round;
        EXPECT_TRUE(c.received().empty() || c.received().starts_with("HTTP/1.1 4")) << c.received();
    }
    auto r = one_request(port(), "GET /hello HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
}

TEST_F(http_server_test, slow_client_is_cut_off_by_the_read_timeout) {
    start({.read_timeout = 200ms});
    raw_client partial;
    ASSERT_TRUE(partial.connect(port()));
    partial.send("GET /hello HTTP/1.1\r\nHost: sl");
    raw_client idle;
    ASSERT_TRUE(idle.connect(port()));
    const auto t0 = steady::now();
    ASSERT_TRUE(partial.read_until_closed(5s));
    EXPECT_GE(steady::now() - t0, 150ms);
    EXPECT_TRUE(partial.received().starts_with("HTTP/1.1 408 ")) << partial.received();
    // An idle keep-alive connection is closed silently.
    ASSERT_TRUE(idle.read_until_closed(5s));
    EXPECT_TRUE(idle.received().empty());
    EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
}

// At the limit, the connection idle the longest (nothing of a request read) makes room for the
// new one: idle connections filling every slot refused health checks for the read timeout.
// When every connection is in the middle of a request, the new one is closed at once.
TEST_F(http_server_test, at_the_limit_the_oldest_idle_connection_makes_room) {
    start({.max_connections = 2});
    raw_client a;
    raw_client b;
    ASSERT_TRUE(a.connect(port()));
    ASSERT_TRUE(wait_until([&] { return server_->connections() == 1; }));
    ASSERT_TRUE(b.connect(port()));
    ASSERT_TRUE(wait_until([&] { return server_->connections() == 2; }));
    auto probe = one_request(port(), "GET /hello HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(probe);
    EXPECT_EQ(probe->status, 200);
    ASSERT_TRUE(a.read_until_closed());  // the oldest idle one went
    EXPECT_TRUE(a.received().empty());
    b.send("GET /hello HTTP/1.1\r\n\r\n");  // the other still works
    auto r = b.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);

    // Both slots in the middle of a request: nothing to close, the new connection is refused.
    raw_client c;
    raw_client d;
    ASSERT_TRUE(wait_until([&] { return server_->connections() <= 1; }));
    ASSERT_TRUE(c.connect(port()));
    c.send("GET /hello HTTP/1.1\r\n");
    ASSERT_TRUE(wait_until([&] { return server_->connections() == 2; }));
    b.send("GET /hello HTTP/1.1\r\n");  // b is busy too now (its bytes are at the server)
    ASSERT_TRUE(d.connect(port()));     // the kernel accepts; the server closes it
    d.send("GET /hello HTTP/1.1\r\n\r\n");
    ASSERT_TRUE(d.read_until_closed());
    EXPECT_TRUE(d.received().empty());
    c.send("\r\n");
    auto rc = c.read_response();
    ASSERT_TRUE(rc);
    EXPECT_EQ(rc->status, 200);
}

TEST_F(http_server_test, stop_closes_the_acceptor_and_open_connections) {
    start();
    raw_client idle;
    raw_client partial;
    ASSERT_TRUE(idle.connect(port()));
    ASSERT_TRUE(partial.connect(port()));
    partial.send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    ASSERT_TRUE(wait_until([&] { return server_->connections() == 2; }));
    const auto p = port();
    server_->stop();
    EXPECT_TRUE(idle.read_until_closed());
    EXPECT_TRUE(partial.read_until_closed());
    EXPECT_TRUE(wait_until([&] { return server_->connections() == 0; }));
    EXPECT_TRUE(wait_until([&] {
        raw_client late;
        return !late.connect(p);
    }));
}

TEST(http_server_listen, bind_failure_reports_why) {
    asio::io_context ioc;
    http_server first(ioc);
    ASSERT_FALSE(first.listen("127.0.0.1", 0));
    http_server second(ioc);
    const auto ec = second.listen("127.0.0.1", first.port());
    ASSERT_TRUE(ec);
    EXPECT_EQ(ec, asio::error::address_in_use) << ec.message();
    EXPECT_EQ(ec.message(), "Address already in use");
    EXPECT_EQ(second.port(), 0);
    http_server third(ioc);
    // TEST-NET-1: not an address of this machine.
    const auto not_ours = third.listen("192.0.2.1", 0);
    EXPECT_EQ(not_ours.value(), EADDRNOTAVAIL) << not_ours.message();
}
