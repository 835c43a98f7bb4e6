// http_post: one request per connection, plain or TLS, bounded by a single deadline.
#include <array>
#include <charconv>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <tuple>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <respite/proxy/http.hpp>

#include "url.hpp"

namespace respite::proxy {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// The status line and headers are all we read; a server sending more before them is not HTTP.
constexpr std::size_t max_response_head = 64 * 1024;

struct post_call {
    explicit post_call(asio::io_context& ioc) : resolver(ioc), socket(ioc), deadline(ioc) {}
    asio::ip::tcp::resolver resolver;
    asio::ip::tcp::socket socket;
    std::unique_ptr<asio::ssl::context> tls_context;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls;
    asio::steady_timer deadline;
    bool timed_out = false;
};

std::string make_request(const http_detail::http_url& url, const std::string& body,
                         const http_post_options& options) {
    std::string out;
    out.reserve(256 + body.size());
    out.append("POST ")
        .append(url.target)
        .append(" HTTP/1.1\r\nHost: ")
        .append(url.host_header)
        .append("\r\nContent-Type: ")
        .append(options.content_type)
        .append("\r\nContent-Length: ")
        .append(std::to_string(body.size()))
        .append("\r\nConnection: close\r\nUser-Agent: respite-proxy\r\n");
    for (const auto& [name, value] : options.headers) {
        out.append(name).append(": ").append(value).append("\r\n");
    }
    out.append("\r\n").append(body);
    return out;
}

// The status from "HTTP/1.x SSS reason"; nullopt if the head is not an HTTP response.
std::optional<int> parse_status(std::string_view head) {
    if (!head.starts_with("HTTP/1.") || head.size() < 12 || head[8] != ' ') {
        return std::nullopt;
    }
    int status = 0;
    const auto digits = head.substr(9, 3);
    const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), status);
    if (ec != std::errc{} || p != digits.data() + digits.size() || status < 100) {
        return std::nullopt;
    }
    return status;
}

// Writes the request and reads up to the end of the response's head.
template <class Stream>
asio::awaitable<std::pair<std::error_code, int>> exchange(Stream& stream,
                                                          const std::string& request) {
    auto [we, wn] = co_await asio::async_write(stream, asio::buffer(request), use_tuple);
    if (we) {
        co_return std::pair{we, 0};
    }
    std::string head;
    std::array<char, 4096> chunk{};
    for (;;) {
        auto [re, n] = co_await stream.async_read_some(asio::buffer(chunk), use_tuple);
        head.append(chunk.data(), n);
        // The status line is enough: the rest of the head and the body are not needed.
        if (const auto eol = head.find("\r\n"); eol != std::string::npos) {
            if (const auto status = parse_status(std::string_view(head).substr(0, eol))) {
                co_return std::pair{std::error_code{}, *status};
            }
            co_return std::pair{std::make_error_code(std::errc::protocol_error), 0};
        }
        if (re) {
            co_return std::pair{re, 0};
        }
        if (head.size() > max_response_head) {
            co_return std::pair{std::make_error_code(std::errc::protocol_error), 0};
        }
    }
}

asio::awaitable<std::pair<std::error_code, int>> run_post(post_call& call,
                                                          const http_detail::http_url& url,
                                                          const std::string& request,
                                                          const http_post_options& options) {
    auto [re, endpoints] = co_await call.resolver.async_resolve(url.host, url.port, use_tuple);
    if (re) {
        co_return std::pair{re, 0};
    }
    auto [ce, endpoint] = co_await asio::async_connect(call.socket, endpoints, use_tuple);
    if (ce) {
        co_return std::pair{ce, 0};
    }
    std::error_code ignored;
    call.socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    if (!url.tls) {
        co_return co_await exchange(call.socket, request);
    }
    std::error_code ec;
    call.tls_context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    if (options.verify_peer) {
        call.tls_context->set_default_verify_paths(ec);
        if (ec) {
            co_return std::pair{ec, 0};
        }
        call.tls_context->set_verify_mode(asio::ssl::verify_peer);
    } else {
        call.tls_context->set_verify_mode(asio::ssl::verify_none);
    }
    call.tls =
        std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(call.socket, *call.tls_context);
    SSL_set_tlsext_host_name(call.tls->native_handle(), url.host.c_str());
    if (options.verify_peer) {
        call.tls->set_verify_callback(asio::ssl::host_name_verification(url.host));
    }
    auto [he] = co_await call.tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (he) {
        co_return std::pair{he, 0};
    }
    co_return co_await exchange(*call.tls, request);
}

asio::awaitable<void> post(asio::io_context& ioc, http_detail::http_url url, std::string request,
                           http_post_options options, http_post_callback done) {
    std::error_code ec;
    int status = 0;
    try {
        auto call = std::make_shared<post_call>(ioc);
        call->deadline.expires_after(options.timeout);
        // Closing the socket ends whichever step is running: resolve, connect, handshake or I/O.
        call->deadline.async_wait([weak = std::weak_ptr<post_call>(call)](std::error_code e) {
            if (e) {
                return;
            }
            if (auto c = weak.lock()) {
                c->timed_out = true;
                c->resolver.cancel();
                std::error_code ignored;
                c->socket.close(ignored);
            }
        });
        std::tie(ec, status) = co_await run_post(*call, url, request, options);
        call->deadline.cancel();
        if (call->timed_out && ec) {
            ec = asio::error::timed_out;
        }
    } catch (const std::bad_alloc&) {
        ec = std::make_error_code(std::errc::not_enough_memory);
    } catch (const std::system_error& e) {
        ec = e.code();
    } catch (const std::exception&) {
        ec = std::make_error_code(std::errc::io_error);
    }
    if (ec) {
        status = 0;
    }
    done(ec, status);
}

}  // namespace

void http_post(asio::io_context& ioc, std::string_view url, std::string body,
               http_post_options options, http_post_callback done) {
    auto parsed = http_detail::parse_url(url);
    if (!parsed) {
        asio::post(ioc, [done = std::move(done)] {
            done(std::make_error_code(std::errc::invalid_argument), 0);
        });
        return;
    }
    auto request = make_request(*parsed, body, options);
    // co_spawn starts the coroutine through a post, so done never runs inside this call.
    asio::co_spawn(
        ioc, post(ioc, std::move(*parsed), std::move(request), std::move(options), std::move(done)),
        asio::detached);
}

}  // namespace respite::proxy
