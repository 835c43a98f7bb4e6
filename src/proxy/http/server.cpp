// The Asio shell around request_parser: accept loop, one coroutine per connection, routing.
#include <algorithm>
#include <array>
#include <atomic>
#include <exception>
#include <unordered_set>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <respite/obs/log.hpp>
#include <respite/proxy/http.hpp>

#include "request_parser.hpp"
#include "status_text.hpp"

namespace respite::proxy {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk = 16 * 1024;
// After an error answer the rest of the request is read and dropped (bounded), because closing
// with unread bytes makes the kernel send a reset that can destroy the answer in flight.
constexpr std::size_t drain_limit = 1024 * 1024;
constexpr std::chrono::milliseconds drain_time{1000};
constexpr std::chrono::milliseconds accept_retry{50};

struct connection {
    explicit connection(asio::ip::tcp::socket s)
        : socket(std::move(s)), deadline(socket.get_executor()) {}
    asio::ip::tcp::socket socket;
    asio::steady_timer deadline;
    bool timed_out = false;
    // Waiting for a request with nothing of it read yet, since `idle_since`: the first to go
    // when the connection limit is reached.
    bool idle = true;
    std::chrono::steady_clock::time_point idle_since = std::chrono::steady_clock::now();
};

struct route_entry {
    std::string method;
    std::string path;
    http_handler handler;
    route_match match;
    bool blocking = false;
};

std::string serialize(const http_response& r, bool keep_alive, bool with_body) {
    std::string out;
    out.reserve(128 + r.body.size());
    out.append("HTTP/1.1 ")
        .append(std::to_string(r.status))
        .append(" ")
        .append(http_detail::status_text(r.status))
        .append("\r\nContent-Type: ")
        .append(r.content_type)
        .append("\r\nContent-Length: ")
        .append(std::to_string(r.body.size()))
        .append(keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    for (const auto& [name, value] : r.headers) {
        out.append(name).append(": ").append(value).append("\r\n");
    }
    out.append("\r\n");
    if (with_body) {
        out.append(r.body);
    }
    return out;
}

http_response error_response(int status) {
    http_response r;
    r.status = status;
    r.body = std::string(http_detail::status_text(status)) + "\n";
    return r;
}

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
    impl(asio::io_context& ioc, http_server_options opts)
        : ioc_(ioc), opts_(opts), acceptor_(ioc) {}

    asio::io_context& ioc_;
    http_server_options opts_;
    asio::ip::tcp::acceptor acceptor_;
    std::vector<route_entry> routes_;
    // Runs the handlers of blocking routes, so that the server's thread keeps answering the
    // others (a /healthz while a /mode switch waits); made with the first blocking route.
    std::unique_ptr<asio::thread_pool> pool_;
    std::unordered_set<std::shared_ptr<connection>> connections_;
    std::atomic<std::size_t> connection_count_{0};
    std::atomic<std::uint16_t> port_{0};
    bool stopped_ = false;

    void close_all() {
        stopped_ = true;
        std::error_code ec;
        acceptor_.close(ec);
        for (const auto& c : connections_) {
            c->socket.close(ec);
            c->deadline.cancel();
        }
    }

    // The socket is cancelled (not closed) when the deadline passes, so the session can still
    // answer 408 before it closes.
    void arm(const std::shared_ptr<connection>& c, std::chrono::milliseconds timeout) {
        c->timed_out = false;
        c->deadline.expires_after(timeout);
        c->deadline.async_wait([weak = std::weak_ptr<connection>(c)](std::error_code ec) {
            if (ec) {
                return;
            }
            if (auto conn = weak.lock()) {
                conn->timed_out = true;
                std::error_code ignored;
                conn->socket.cancel(ignored);
            }
        });
    }

    asio::awaitable<void> accept_loop() {
        auto self = shared_from_this();
        asio::steady_timer retry(ioc_);
        while (!stopped_) {
            auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
            if (stopped_ || ec == asio::error::operation_aborted) {
                co_return;
            }
            if (ec) {
                // Out of descriptors and the like: back off instead of spinning on the error.
                obs::log().warn("http_accept_failed error=\"{}\"", ec.message());
                retry.expires_after(accept_retry);
                co_await retry.async_wait(use_tuple);
                continue;
            }
            if (connections_.size() >= opts_.max_connections && !close_oldest_idle()) {
                obs::log().debug("http_connection_rejected open={}", connections_.size());
                std::error_code ignored;
                socket.close(ignored);
                continue;
            }
            auto c = std::make_shared<connection>(std::move(socket));
            connections_.insert(c);
            connection_count_.store(connections_.size());
            asio::co_spawn(ioc_, serve(c), asio::detached);
        }
    }

    // At the limit, the connection idle the longest (nothing of a request read) makes room: idle
    // connections that fill every slot (a client that opens many and sends nothing) would
    // otherwise refuse the health checks and /metrics for up to the read timeout.
    bool close_oldest_idle() {
        std::shared_ptr<connection> oldest;
        for (const auto& c : connections_) {
            std::error_code ec;
            // Bytes that arrived but were not read yet: a request has begun.
            if (!c->idle || !c->socket.is_open() || c->socket.available(ec) > 0 || ec)
                continue;
            if (!oldest || c->idle_since < oldest->idle_since)
                oldest = c;
        }
        if (!oldest)
            return false;
        std::error_code ignored;
        oldest->socket.close(ignored);  // its session ends and leaves connections_
        return true;
    }

    asio::awaitable<void> serve(std::shared_ptr<connection> c) {
        auto self = shared_from_this();
        try {
            co_await session(c);
        } catch (const std::exception& e) {
            obs::log().warn("http_session_failed error=\"{}\"", e.what());
        }
        std::error_code ignored;
        c->socket.close(ignored);
        c->deadline.cancel();
        connections_.erase(c);
        connection_count_.store(connections_.size());
    }

    asio::awaitable<void> session(const std::shared_ptr<connection>& c) {
        std::string buffer;
        std::array<char, read_chunk> chunk{};
        http_detail::request_parser parser(opts_.max_header_bytes, opts_.max_body_bytes);
        while (!stopped_) {
            parser.reset();
            arm(c, opts_.read_timeout);
            bool continue_sent = false;
            auto state = parser.consume(buffer);
            while (state == http_detail::request_parser::state::need_more) {
                if (parser.wants_continue() && !continue_sent) {
                    continue_sent = true;
                    static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
                    auto [we, wn] =
                        co_await asio::async_write(c->socket, asio::buffer(go_on), use_tuple);
                    if (we) {
                        co_return;
                    }
                }
                c->idle = buffer.empty();
                if (c->idle)
                    c->idle_since = std::chrono::steady_clock::now();
                auto [ec, n] = co_await c->socket.async_read_some(asio::buffer(chunk), use_tuple);
                c->idle = false;
                if (ec) {
                    if (c->timed_out && !buffer.empty() && !stopped_) {
                        co_await answer_error(c, 408);
                    }
                    co_return;
                }
                buffer.append(chunk.data(), n);
                state = parser.consume(buffer);
            }
            if (state == http_detail::request_parser::state::failed) {
                co_await answer_error(c, parser.error_status());
                co_return;
            }

            const auto& req = parser.request();
            const bool keep_alive = parser.keep_alive();
            http_response response;
            const route_entry* chosen = nullptr;
            if (auto refused = opts_.admit ? opts_.admit(req) : std::nullopt)
                response = std::move(*refused);
            else
                chosen = choose(req, response);
            if (chosen != nullptr && chosen->blocking && pool_) {
                response = co_await asio::co_spawn(
                    pool_->get_executor(),
                    [&]() -> asio::awaitable<http_response> { co_return invoke(*chosen, req); },
                    asio::use_awaitable);
            } else if (chosen != nullptr) {
                response = invoke(*chosen, req);
            }
            const auto out = serialize(response, keep_alive, req.method != "HEAD");
            buffer.erase(0, parser.consumed());
            arm(c, opts_.read_timeout);
            auto [we, wn] = co_await asio::async_write(c->socket, asio::buffer(out), use_tuple);
            if (we || !keep_alive) {
                if (!we) {
                    std::error_code ignored;
                    c->socket.shutdown(asio::socket_base::shutdown_send, ignored);
                }
                co_return;
            }
        }
    }

    asio::awaitable<void> answer_error(const std::shared_ptr<connection>& c, int status) {
        const auto out = serialize(error_response(status), false, true);
        arm(c, std::min(opts_.read_timeout, drain_time));
        auto [we, wn] = co_await asio::async_write(c->socket, asio::buffer(out), use_tuple);
        if (we) {
            co_return;
        }
        std::error_code ignored;
        c->socket.shutdown(asio::socket_base::shutdown_send, ignored);
        std::array<char, read_chunk> sink{};
        std::size_t drained = 0;
        while (drained < drain_limit && !c->timed_out) {
            auto [ec, n] = co_await c->socket.async_read_some(asio::buffer(sink), use_tuple);
            if (ec) {
                break;
            }
            drained += n;
        }
    }

    // The route that answers `req`, or nullptr with the error response in `error`.
    const route_entry* choose(const http_request& req, http_response& error) const {
        // The routes of the best-matching path: an exact one, else the longest prefix.
        const route_entry* best = nullptr;
        for (const auto& r : routes_) {
            const bool hit =
                r.match == route_match::exact ? req.path == r.path : req.path.starts_with(r.path);
            if (!hit) {
                continue;
            }
            if (best == nullptr ||
                (best->match == route_match::prefix &&
                 (r.match == route_match::exact || r.path.size() > best->path.size()))) {
                best = &r;
            }
        }
        if (best == nullptr) {
            error = error_response(404);
            return nullptr;
        }
        const route_entry* chosen = nullptr;
        const route_entry* get = nullptr;
        std::string allow;
        for (const auto& r : routes_) {
            if (r.match != best->match || r.path != best->path) {
                continue;
            }
            if (r.method == req.method) {
                chosen = &r;
            }
            if (r.method == "GET") {
                get = &r;
            }
            allow.append(allow.empty() ? "" : ", ").append(r.method);
        }
        if (chosen == nullptr && req.method == "HEAD") {
            chosen = get;
        }
        if (chosen == nullptr) {
            error = error_response(405);
            error.headers.emplace_back("Allow", allow);
        }
        return chosen;
    }

    static http_response invoke(const route_entry& chosen, const http_request& req) {
        try {
            auto r = chosen.handler(req);
            if (r.status < 100 || r.status > 999) {
                obs::log().warn("http_handler_bad_status path={} status={}", req.path, r.status);
                return error_response(500);
            }
            return r;
        } catch (const std::exception& e) {
            obs::log().warn("http_handler_failed path={} error=\"{}\"", req.path, e.what());
        } catch (...) {
            obs::log().warn("http_handler_failed path={}", req.path);
        }
        return error_response(500);
    }
};

http_server::http_server(asio::io_context& ioc, http_server_options opts)
    : impl_(std::make_shared<impl>(ioc, opts)) {}

http_server::~http_server() {
    stop();
    // A blocking handler still running may use what its route captured, which may go with the
    // owner of this server: wait for it (handlers not yet started are dropped).
    if (impl_->pool_) {
        impl_->pool_->stop();
        impl_->pool_->join();
    }
}

std::error_code http_server::listen(const std::string& host, std::uint16_t port) {
    std::error_code ec;
    asio::ip::tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
        endpoint = {address, port};
    } else {
        asio::ip::tcp::resolver resolver(impl_->ioc_);
        const auto results = resolver.resolve(host, std::to_string(port), ec);
        if (ec) {
            return ec;
        }
        endpoint = results.begin()->endpoint();
    }
    auto& acceptor = impl_->acceptor_;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor.listen(asio::socket_base::max_listen_connections, ec);
    }
    if (ec) {
        std::error_code ignored;
        acceptor.close(ignored);
        return ec;
    }
    impl_->port_.store(acceptor.local_endpoint(ec).port());
    impl_->stopped_ = false;
    asio::co_spawn(impl_->ioc_, impl_->accept_loop(), asio::detached);
    return {};
}

std::uint16_t http_server::port() const noexcept {
    return impl_->port_.load();
}

void http_server::route(std::string method, std::string path, http_handler handler,
                        route_match match, bool blocking) {
    if (blocking && !impl_->pool_)
        impl_->pool_ = std::make_unique<asio::thread_pool>(2);
    impl_->routes_.push_back(
        {std::move(method), std::move(path), std::move(handler), match, blocking});
}

void http_server::stop() {
    if (impl_->ioc_.get_executor().running_in_this_thread()) {
        impl_->close_all();
    } else {
        asio::post(impl_->ioc_, [self = impl_] { self->close_all(); });
    }
}

std::size_t http_server::connections() const noexcept {
    return impl_->connection_count_.load();
}

}  // namespace respite::proxy
