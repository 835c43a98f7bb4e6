// The proxy's small HTTP/1.1 server (/metrics, /healthz, admin actions) and its one-shot POST
// client.
//
// Module boundary: http depends on standalone Asio, OpenSSL and obs only; it knows nothing about
// Redis, so the admin endpoints are plain handlers the server registers. Everything runs on the
// caller's io_context; handlers run on that context's thread and must not block it for long.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <asio/io_context.hpp>

namespace respite::proxy {

using http_fields = std::vector<std::pair<std::string, std::string>>;

struct http_request {
    std::string method;  // as sent ("GET"); methods are case-sensitive
    std::string path;    // percent-decoded, without the query
    std::string target;  // the raw request target, path and query
    // Query parameters, percent-decoded ('+' is a space); for a repeated key the last one wins.
    std::map<std::string, std::string, std::less<>> query;
    // Header names lower-cased; repeated headers are joined with ", " as RFC 9110 allows.
    std::map<std::string, std::string, std::less<>> headers;
    std::string body;

    // The header's value, or empty; name in lower case.
    [[nodiscard]] std::string_view header(std::string_view name) const;
    // The query parameter's value, or fallback.
    [[nodiscard]] std::string_view param(std::string_view name,
                                         std::string_view fallback = {}) const;
};

struct http_response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    // Written as given; Content-Length, Content-Type and Connection are the server's.
    http_fields headers{};
};

using http_handler = std::function<http_response(const http_request&)>;

enum class route_match {
    exact,   // the path equals the route's
    prefix,  // the path starts with the route's (the longest matching prefix wins)
};

struct http_server_options {
    // Request line and headers together; beyond this the answer is 413 and the connection closes.
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1024 * 1024;
    // A request (or a response write) that takes longer is cut off: 408 if part of a request had
    // arrived, a silent close for an idle keep-alive connection.
    std::chrono::milliseconds read_timeout{10000};
    // Connections beyond this are accepted and closed at once, so a flood cannot exhaust the
    // process's descriptors or starve the admin thread.
    std::size_t max_connections = 256;
    // Runs for each parsed request before routing: a response to send instead (a refusal), or
    // nullopt to route it. On the server's thread; must not block.
    std::function<std::optional<http_response>(const http_request&)> admit{};
};

class http_server {
  public:
    explicit http_server(asio::io_context& ioc, http_server_options opts = {});
    // Closes the acceptor and every connection (see stop()).
    ~http_server();
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Binds and starts accepting (when the io_context runs). host is an address or a name that
    // resolves; port 0 picks a free one. Call before the io_context runs or on its thread.
    // On failure the error's message says why ("Address already in use"); nothing is listening.
    std::error_code listen(const std::string& host, std::uint16_t port);
    // The bound port (0 before a successful listen()).
    [[nodiscard]] std::uint16_t port() const noexcept;

    // Registers a handler. Call before listen(). A path with routes but none for the method
    // answers 405; HEAD falls back to the GET handler without the body.
    // `blocking`: the handler may wait (for a backend, a lock, a mode switch): it runs on one
    // of two threads of the server's own, and the server keeps answering other requests
    // meanwhile. Such a handler must be thread-safe.
    void route(std::string method, std::string path, http_handler handler,
               route_match match = route_match::exact, bool blocking = false);

    // Closes the acceptor and all connections; in-flight responses are dropped. Thread-safe:
    // from another thread it is posted to the io_context (and takes effect when that runs).
    void stop();

    // Open connections (for tests and a gauge); read on the io_context's thread.
    [[nodiscard]] std::size_t connections() const noexcept;

    struct impl;

  private:
    std::shared_ptr<impl> impl_;
};

struct http_post_options {
    std::string content_type = "application/json";
    http_fields headers{};
    // Covers resolve, connect, TLS handshake, write and reading the status: all of it.
    std::chrono::milliseconds timeout{5000};
    // https only: check the server's certificate against the system's CAs and the host name.
    bool verify_peer = true;
};

// The status code (any, including 4xx/5xx), or why there is none: asio errors, timed_out when the
// deadline passed, invalid_argument for a URL that is not http(s)://host[:port][/path].
using http_post_callback = std::function<void(std::error_code, int status)>;

// POSTs body to url ("http://host:port/path", or https://) and calls done exactly once, on the
// io_context's thread, never inside this call. Never blocks: resolving, connecting and writing
// all run on the io_context. The request carries Connection: close; only the status is read.
void http_post(asio::io_context& ioc, std::string_view url, std::string body,
               http_post_options options, http_post_callback done);

}  // namespace respite::proxy
