// http_post against the test server, a closed port, a silent listener and bad URLs.
#include <future>

#include "http_fixture.hpp"

using namespace respite::proxy;
using namespace respite::proxy::testing;

namespace {

struct post_outcome {
    std::error_code ec;
    int status = 0;
    bool called_inline = false;  // on the thread that called http_post
};

class http_post_test : public server_fixture {
  protected:
    // Posts and waits (with a deadline) for the callback.
    post_outcome post(const std::string& url, std::string body, http_post_options opts = {}) {
        auto done = std::make_shared<std::promise<post_outcome>>();
        auto future = done->get_future();
        http_post(ioc_, url, std::move(body), std::move(opts),
                  [done, caller = std::this_thread::get_id()](std::error_code ec, int status) {
                      done->set_value({ec, status, std::this_thread::get_id() == caller});
                  });
        if (future.wait_for(10s) != std::future_status::ready) {
            ADD_FAILURE() << "http_post never completed";
            return {std::make_error_code(std::errc::timed_out), 0, false};
        }
        return future.get();
    }

    std::string url(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(port()) + std::string(path);
    }
};

}  // namespace

TEST_F(http_post_test, posts_the_body_and_headers_and_reports_the_status) {
    start();
    http_post_options opts;
    opts.headers.emplace_back("X-Custom", "sentry-auth");
    const auto r = post(url("/echo"), R"({"event":1})", opts);
    EXPECT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(last_content_type_, "application/json");
    EXPECT_EQ(last_custom_, "sentry-auth");
}

TEST_F(http_post_test, error_statuses_are_statuses_not_errors) {
    start();
    auto r = post(url("/nowhere"), "x");
    EXPECT_FALSE(r.ec);
    EXPECT_EQ(r.status, 404);
    r = post(url("/hello"), "x");
    EXPECT_EQ(r.status, 405);
}

TEST_F(http_post_test, refused_connection_is_an_error) {
    start();
    std::uint16_t closed_port = 0;
    {
        // A port that was just free: nothing listens there.
        asio::io_context tmp;
        asio::ip::tcp::acceptor a(tmp, {asio::ip::make_address("127.0.0.1"), 0});
        closed_port = a.local_endpoint().port();
    }
    const auto r = post("http://127.0.0.1:" + std::to_string(closed_port) + "/", "x");
    EXPECT_EQ(r.ec, asio::error::connection_refused) << r.ec.message();
    EXPECT_EQ(r.status, 0);
}

TEST_F(http_post_test, a_silent_server_times_out) {
    start();
    // Listening but never accepting: the kernel completes the handshake, nobody answers.
    asio::io_context tmp;
    asio::ip::tcp::acceptor silent(tmp, {asio::ip::make_address("127.0.0.1"), 0});
    http_post_options opts;
    opts.timeout = 200ms;
    const auto t0 = steady::now();
    const auto r = post(
        "http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/api", "x", opts);
    EXPECT_EQ(r.ec, asio::error::timed_out) << r.ec.message();
    EXPECT_GE(steady::now() - t0, 150ms);
}

TEST_F(http_post_test, https_to_a_plain_server_fails_instead_of_hanging) {
    start();
    http_post_options opts;
    opts.timeout = 2s;
    const auto r = post("https://127.0.0.1:" + std::to_string(port()) + "/echo", "x", opts);
    EXPECT_TRUE(r.ec);
    EXPECT_NE(r.ec, asio::error::timed_out) << r.ec.message();
}

TEST_F(http_post_test, a_bad_url_is_invalid_argument_and_never_inline) {
    start();
    const auto r = post("ftp://example.com/", "x");
    EXPECT_EQ(r.ec, std::errc::invalid_argument);
    EXPECT_FALSE(r.called_inline);
    const auto ok = post(url("/echo"), "y");
    EXPECT_FALSE(ok.called_inline);
    EXPECT_EQ(ok.status, 201);
}
