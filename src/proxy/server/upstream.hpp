// A pipelined upstream connection that forwards raw RESP frames (no decode, no re-encode).
//
// Commands are appended to one output buffer and written once per event-loop turn; replies are
// matched to their senders in FIFO order and handed over as byte views valid during the call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>

#include <respite/client/config.hpp>
#include <respite/proxy/ring.hpp>
#include <respite/resp/frame_scanner.hpp>
#include <respite/resp/limits.hpp>

namespace respite::proxy::server {

// Receives the replies of the commands it sent.
class reply_sink {
  public:
    virtual ~reply_sink() = default;
    // The reply frame of the command sent with `tag` (bytes valid during the call).
    virtual void on_reply(std::uint64_t tag, std::string_view frame) = 0;
    // The connection ended before the reply; `written`: the command may have run.
    virtual void on_failure(std::uint64_t tag, bool written) = 0;
};

// A reply handed to a function (a lost connection as the proxy's error reply).
class callback_sink final : public reply_sink {
  public:
    explicit callback_sink(std::function<void(std::string_view)> f) : f_(std::move(f)) {}
    void on_reply(std::uint64_t, std::string_view frame) override { f_(frame); }
    void on_failure(std::uint64_t, bool) override {
        f_("-ERR proxy: serving backend unavailable\r\n");
    }

  private:
    std::function<void(std::string_view)> f_;
};

struct upstream_endpoint {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string username{};
    std::string password{};
    int database = 0;
    int protocol = 2;  // 2 or 3: the frames forwarded are in this protocol
    std::chrono::milliseconds connect_timeout{2000};
    // A command that waits this long for its reply (counted from when it reached the head of
    // the queue) ends the connection: every command on it fails (0: wait forever). A command
    // sent with its own patience (blocking commands) waits that long instead.
    std::chrono::milliseconds reply_timeout{0};
    int keepalive_seconds = 15;  // TCP keepalive idle time (0: off)
    // TLS to the backend (nullptr: plain TCP); the name is for SNI and verification.
    std::shared_ptr<asio::ssl::context> tls{};
    std::string tls_server_name{};
};

// The client-side TLS context for a backend's tls_config (CA, optional client certificate).
// Empty optional + message on a file that cannot be loaded.
std::shared_ptr<asio::ssl::context> make_upstream_tls(const client::tls_config& cfg,
                                                      std::string& error);

class upstream : public std::enable_shared_from_this<upstream> {
  public:
    enum class state : std::uint8_t { connecting, ready, closed };

    upstream(asio::io_context& ioc, upstream_endpoint ep, resp::limits limits = {});
    ~upstream();
    upstream(const upstream&) = delete;
    upstream& operator=(const upstream&) = delete;

    // Starts connecting (commands sent before it completes are written after the handshake).
    void start();
    // One command, as complete RESP bytes; its reply goes to sink->on_reply(tag, ...).
    void send(std::string_view command, std::shared_ptr<reply_sink> sink, std::uint64_t tag) {
        reply_sink* to = sink.get();
        send_to(command, to, std::move(sink), tag);
    }
    // The same for a sink that owns itself (enable_shared_from_this): a run of consecutive
    // commands of one sink (a client's pipeline) holds one reference, not one per command, so
    // forwarding a command touches no atomic reference count.
    // patience: how long its reply may take (0: the endpoint's reply_timeout; never_times_out:
    // no limit), for commands that block by design.
    template <class Sink>
    void send(std::string_view command, Sink& sink, std::uint64_t tag,
              std::chrono::milliseconds patience = {}) {
        reply_sink* to = &sink;
        if (!pending_.empty() && pending_.back().to == to)
            send_to(command, to, nullptr, tag, patience);
        else
            send_to(command, to, sink.shared_from_this(), tag, patience);
    }
    static constexpr std::chrono::milliseconds never_times_out{-1};
    // Bytes that expect no reply in the FIFO (RESP3 pub/sub commands answered by pushes).
    void send_unreplied(std::string_view command);
    // Push frames ('>') and, on a RESP2 pub/sub connection, every frame when no command waits.
    void set_push_handler(std::function<void(std::string_view)> handler);
    // Called once when the connection ends (after every pending sink was failed).
    void set_close_handler(std::function<void()> handler);
    void close();

    [[nodiscard]] state current_state() const noexcept { return state_; }
    [[nodiscard]] bool usable() const noexcept { return state_ != state::closed; }
    [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }
    // The server's CLIENT ID of this connection (0 until the handshake finished).
    [[nodiscard]] std::int64_t client_id() const noexcept { return client_id_; }
    [[nodiscard]] int protocol() const noexcept { return ep_.protocol; }
    // While the replies of one read are handed to their sinks (on this thread): when that read
    // completed, so that receivers need not read the clock per reply; else the clock's now.
    [[nodiscard]] static std::chrono::steady_clock::time_point reply_time() noexcept;
    // While a failing connection fails its sinks (on this thread): true when it failed because
    // a reply took longer than its timeout.
    [[nodiscard]] static bool failing_on_timeout() noexcept;

  private:
    struct waiter {
        reply_sink* to = nullptr;  // nullptr: a handshake reply
        // The reference that keeps `to` alive; nullptr when the waiter ahead of this one is of
        // the same sink and holds it (it is handed on when that one's reply was delivered).
        std::shared_ptr<reply_sink> owner;
        std::uint64_t tag = 0;
        std::chrono::milliseconds patience{};  // 0: ep_.reply_timeout
    };

    void send_to(std::string_view command, reply_sink* to, std::shared_ptr<reply_sink> owner,
                 std::uint64_t tag, std::chrono::milliseconds patience = {});
    // The reply watchdog: armed while a command waits, checks that the head of the queue moved
    // within its patience (one timer per connection, re-armed only when it fires).
    void head_moved(std::chrono::steady_clock::time_point now);
    void arm_watchdog();
    void on_watchdog();
    [[nodiscard]] std::chrono::milliseconds patience_of(const waiter& w) const noexcept;

    void connect();
    void schedule_flush();
    void flush();
    void read();
    void handle_frame(std::string_view frame, char type);
    void fail(std::string_view why);

    asio::io_context& ioc_;
    upstream_endpoint ep_;
    asio::ip::tcp::socket& tcp() noexcept { return tls_ ? tls_->next_layer() : socket_; }
    template <class Buffers, class Handler>
    void async_read_some(const Buffers& b, Handler&& h) {
        if (tls_)
            tls_->async_read_some(b, std::forward<Handler>(h));
        else
            socket_.async_read_some(b, std::forward<Handler>(h));
    }
    void on_connected();

    asio::ip::tcp::socket socket_;
    std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    asio::steady_timer connect_timer_;
    asio::steady_timer watchdog_;
    bool watchdog_armed_ = false;
    std::uint64_t watchdog_gen_ = 0;  // bumped by every arm: stale handlers do nothing
    std::chrono::steady_clock::time_point head_since_{};      // the head of pending_ since then
    std::chrono::steady_clock::time_point write_progress_{};  // the last partial write
    resp::frame_scanner scanner_;
    state state_ = state::connecting;
    bool started_ = false;
    bool flush_scheduled_ = false;
    bool writing_ = false;
    std::string out_;                    // waiting to be written
    std::string writing_buf_;            // being written
    std::size_t unwritten_waiters_ = 0;  // waiters at the back of pending_ whose bytes are in out_
    std::string in_;
    std::size_t in_start_ = 0;  // first unconsumed byte
    std::size_t in_len_ = 0;    // bytes read into in_
    ring<waiter> pending_;
    std::size_t handshake_left_ = 0;
    std::int64_t client_id_ = 0;
    std::function<void(std::string_view)> on_push_;
    std::function<void()> on_close_;
};

}  // namespace respite::proxy::server
