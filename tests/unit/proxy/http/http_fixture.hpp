// Shared by the server and client tests: a server on its own io_context thread, a raw socket
// client with deadlines, and waiting on a condition.
#pragma once

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <gtest/gtest.h>

#include <respite/proxy/http.hpp>

namespace respite::proxy::testing {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// Polls pred until it holds or the deadline passes.
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 5s) {
    const auto deadline = steady::now() + limit;
    while (!pred()) {
        if (steady::now() >= deadline) {
            return false;
        }
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

struct parsed_response {
    int status = 0;
    std::string head;  // status line and headers
    std::string body;
};

// A blocking-style client whose every read has a deadline (its own io_context, run_for).
class raw_client {
  public:
    bool connect(std::uint16_t port) {
        std::error_code ec;
        socket_.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
        return !ec;
    }

    void send(std::string_view bytes) {
        std::error_code ec;
        asio::write(socket_, asio::buffer(bytes), ec);
    }

    // Reads until the server closes (true) or the deadline passes (false); data gathers in
    // received().
    bool read_until_closed(std::chrono::milliseconds limit = 5s) {
        const auto deadline = steady::now() + limit;
        for (;;) {
            const auto r = read_some(deadline);
            if (!r) {
                return false;
            }
            if (*r == 0) {
                return true;
            }
        }
    }

    // One Content-Length response off the stream (keep-alive friendly).
    std::optional<parsed_response> read_response(std::chrono::milliseconds limit = 5s) {
        const auto deadline = steady::now() + limit;
        for (;;) {
            const auto end = received_.find("\r\n\r\n");
            if (end != std::string::npos) {
                parsed_response r;
                r.head = received_.substr(0, end);
                r.status = std::stoi(r.head.substr(9, 3));
                std::size_t length = 0;
                const auto cl = r.head.find("Content-Length: ");
                if (cl != std::string::npos) {
                    length = std::stoul(r.head.substr(cl + 16));
                }
                if (received_.size() >= end + 4 + length) {
                    r.body = received_.substr(end + 4, length);
                    received_.erase(0, end + 4 + length);
                    return r;
                }
            }
            const auto got = read_some(deadline);
            if (!got || *got == 0) {
                return std::nullopt;
            }
        }
    }

    [[nodiscard]] const std::string& received() const { return received_; }
    asio::ip::tcp::socket& socket() { return socket_; }

  private:
    // Bytes read (0 at end of stream or on a reset), or nullopt at the deadline.
    std::optional<std::size_t> read_some(steady::time_point deadline) {
        std::optional<std::size_t> result;
        socket_.async_read_some(asio::buffer(chunk_),
                                [&](std::error_code ec, std::size_t n) { result = ec ? 0 : n; });
        ioc_.restart();
        ioc_.run_until(deadline);
        if (!result) {
            socket_.cancel();
            ioc_.restart();
            ioc_.run();
            return std::nullopt;
        }
        received_.append(chunk_.data(), *result);
        return result;
    }

    asio::io_context ioc_;
    asio::ip::tcp::socket socket_{ioc_};
    std::array<char, 16384> chunk_{};
    std::string received_;
};

// A server with a few routes on an ephemeral port, its io_context on a thread of its own.
class server_fixture : public ::testing::Test {
  protected:
    void start(http_server_options opts = {}) {
        server_ = std::make_unique<http_server>(ioc_, opts);
        server_->route("GET", "/hello", [](const http_request&) {
            return http_response{.status = 200, .body = "hello\n"};
        });
        server_->route("GET", "/echo-query", [](const http_request& r) {
            std::string out;
            for (const auto& [k, v] : r.query) {
                out += k + "=" + v + ";";
            }
            return http_response{.body = out};
        });
        server_->route("POST", "/echo", [this](const http_request& r) {
            last_content_type_ = std::string(r.header("content-type"));
            last_custom_ = std::string(r.header("x-custom"));
            return http_response{.status = 201,
                                 .content_type = "application/octet-stream",
                                 .body = r.body,
                                 .headers = {{"X-Echo", "yes"}}};
        });
        server_->route(
            "GET", "/admin/",
            [](const http_request& r) { return http_response{.body = "admin:" + r.path}; },
            route_match::prefix);
        server_->route("GET", "/throws", [](const http_request&) -> http_response {
            throw std::runtime_error("handler bug");
        });
        const auto ec = server_->listen("127.0.0.1", 0);
        ASSERT_FALSE(ec) << ec.message();
        ASSERT_NE(server_->port(), 0);
        thread_ = std::thread([this] { ioc_.run(); });
    }

    void TearDown() override {
        if (server_) {
            server_->stop();
        }
        guard_.reset();
        if (thread_.joinable()) {
            thread_.join();
        }
        server_.reset();
    }

    [[nodiscard]] std::uint16_t port() const { return server_->port(); }

    asio::io_context ioc_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_{ioc_.get_executor()};
    std::unique_ptr<http_server> server_;
    std::thread thread_;
    // Written by handlers on the io thread, read after the response arrived.
    std::string last_content_type_;
    std::string last_custom_;
};

}  // namespace respite::proxy::testing
