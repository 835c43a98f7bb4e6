// One multiplexed, auto-pipelined connection to a Redis server, with its own reconnect loop.
//
// Everything queued while a write is in flight goes out in the next single write; every complete
// reply in the read buffer is handled before the next read; RESP3 pushes go to the push handler
// as they arrive (idle connections included). Not thread-safe: call it on its executor (the
// client facade does that for you); only the read-only accessors state(), connects() and
// protocol() may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/io_context.hpp>

#include <respite/client/config.hpp>
#include <respite/client/error.hpp>
#include <respite/client/request.hpp>
#include <respite/resp/value.hpp>

namespace respite::client {

enum class connection_state : unsigned char { idle, connecting, ready, backoff, closed };

// Gets the replies of a request (one per command, in order; the callee may move them out) or an
// error with no replies.
using reply_handler = std::move_only_function<void(std::error_code, std::vector<resp::value>&)>;

// Completes a handler with an error.
inline void fail(reply_handler& done, std::error_code ec) {
    std::vector<resp::value> none;
    done(ec, none);
}

class connection : public std::enable_shared_from_this<connection> {
  public:
    using executor_type = asio::io_context::executor_type;

    static std::shared_ptr<connection> create(executor_type ex, connection_config cfg);
    ~connection();

    // Starts connecting (and reconnecting after failures) until close().
    void start();
    // Fails every pending request with error::closed and stops for good.
    void close();

    // Sends a request; `done` gets one reply per command, or an error. The deadline is the
    // configured command timeout, extended for blocking commands.
    void execute(const request& req, reply_handler done);
    // One (un)subscribe command with explicit names: it completes with +OK when the server has
    // confirmed every name (confirmation pushes are counted, in order with other replies), or
    // with the error reply Redis sent instead (ACL NOPERM, CROSSSLOT, MOVED, ...).
    void execute_pubsub(const request& req, reply_handler done);

    // RESP2 pub/sub mode: arrays that look like pub/sub events are pushes (dedicated connections).
    void set_resp2_pubsub(bool on);
    // Pushes (RESP3 '>' frames, or RESP2 pub/sub events) as they arrive.
    void set_push_handler(std::function<void(resp::value&&)> handler);
    // Called after every successful (re)connect and handshake, before queued requests are sent.
    void set_on_ready(std::function<void()> handler);

    [[nodiscard]] connection_state state() const noexcept;
    [[nodiscard]] int protocol() const noexcept;  // 2 or 3 as negotiated (0 before)
    [[nodiscard]] std::size_t pending() const noexcept;
    [[nodiscard]] executor_type get_executor() const noexcept;
    [[nodiscard]] const connection_config& config() const noexcept;
    // The last connect or handshake error (cleared on success).
    [[nodiscard]] std::error_code last_error() const noexcept;
    // Server-side id (CLIENT ID) as reported by HELLO; 0 when unknown.
    [[nodiscard]] long long server_id() const noexcept;
    // Total successful connects (1 after the first, +1 per reconnect).
    [[nodiscard]] std::uint64_t connects() const noexcept;

    // Abruptly closes the socket as if the network had failed (for tests and health checks).
    void drop();

    struct impl;

  private:
    explicit connection(std::shared_ptr<impl> p);
    std::shared_ptr<impl> impl_;
};

}  // namespace respite::client
