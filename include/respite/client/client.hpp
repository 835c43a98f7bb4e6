// The client facade: thread-safe, asynchronous (any Asio completion token: use_awaitable,
// callbacks, use_future), over a few multiplexed connections plus dedicated ones for blocking
// commands, WATCH sessions and pub/sub.
//
// Module boundary: client depends on resp and obs, never on proxy, streams or replicas.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <respite/client/config.hpp>
#include <respite/client/connection.hpp>
#include <respite/client/error.hpp>
#include <respite/client/io_thread.hpp>
#include <respite/client/message_queue.hpp>
#include <respite/client/request.hpp>
#include <respite/resp/value.hpp>

namespace respite::client {

enum class subscription_kind : std::uint8_t { channel, pattern, shard_channel };

namespace detail {

template <class T>
using callback = std::move_only_function<void(result<T>)>;

// Wraps a completion handler so it runs on its associated executor (default: the client's).
template <class T, class Handler>
callback<T> bind_handler(Handler&& handler, asio::io_context::executor_type io) {
    auto ex = asio::get_associated_executor(handler, io);
    auto work = asio::make_work_guard(ex);
    return [h = std::forward<Handler>(handler), w = std::move(work)](result<T> r) mutable {
        auto ex = asio::get_associated_executor(h, w.get_executor());
        asio::dispatch(
            ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        w.reset();
    };
}

// Starts an asynchronous operation completing with result<T>: `start` receives the callback.
template <class T, class Token, class Start>
auto initiate(Token&& token, asio::io_context::executor_type ex, Start&& start) {
    return asio::async_initiate<Token, void(result<T>)>(
        [ex](auto handler, auto start_fn) mutable {
            std::move(start_fn)(bind_handler<T>(std::move(handler), ex));
        },
        token, std::forward<Start>(start));
}

class core;

}  // namespace detail

// A dedicated connection leased from the client: for WATCH/MULTI/EXEC flows and anything that
// changes connection state. Returned to the pool when destroyed (closed instead when its state
// was changed, so no WATCH or SELECT leaks to the next user).
class session {
  public:
    session() = default;
    session(session&&) noexcept = default;
    session& operator=(session&&) noexcept;
    ~session();

    template <class Token>
    auto async_command(request req, Token&& token) {
        return detail::initiate<resp::value>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { command(std::move(r), std::move(cb)); });
    }

    template <class Token>
    auto async_exec(request req, Token&& token) {
        return detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { exec(std::move(r), std::move(cb)); });
    }

    // False for a default-constructed or moved-from session; the operations require a valid one.
    [[nodiscard]] bool valid() const noexcept { return conn_ != nullptr; }

    // How a pool takes its connection back: (connection, reusable). Called on any thread; the
    // pool hops onto its executor itself. Not called once the pool has closed.
    using release_fn = std::move_only_function<void(std::shared_ptr<connection>, bool)>;

    // For connection pools (client, cluster_client): `owner` keeps the pool and its io_context
    // alive while the session lives.
    session(std::shared_ptr<void> owner, std::shared_ptr<connection> conn, release_fn release);

  private:
    void command(request r, detail::callback<resp::value> cb);
    void exec(request r, detail::callback<std::vector<resp::value>> cb);
    void submit(request r, reply_handler done);
    asio::io_context::executor_type executor() const;
    void release();

    std::shared_ptr<void> owner_;  // first: destroyed last, after the connection
    std::shared_ptr<connection> conn_;
    release_fn release_;
    bool dirty_ = false;
};

class client {
  public:
    // Runs its own I/O thread.
    explicit client(client_config cfg);
    // Runs on the caller's io_context (which the caller runs); no thread of its own.
    client(asio::io_context& ioc, client_config cfg);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    // Fails everything pending with error::closed; later calls fail the same way.
    void close();

    // One command -> its reply. An error reply is a value (see server_error_of), not an error.
    template <class Token>
    auto async_command(request req, Token&& token) {
        return detail::initiate<resp::value>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { command(std::move(r), std::move(cb)); });
    }

    // A pipeline: every command's reply, in order, from one write.
    template <class Token>
    auto async_exec(request req, Token&& token) {
        return detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { exec(std::move(r), std::move(cb)); });
    }

    // MULTI, the commands, EXEC as one write; the EXEC replies, or error::transaction_aborted,
    // or the error reply that made Redis discard the transaction (EXECABORT) as server_error.
    template <class Token>
    auto async_transaction(request req, Token&& token) {
        return detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(), [this, r = std::move(req)](auto cb) mutable {
                transaction(std::move(r), std::move(cb));
            });
    }

    // A dedicated connection for WATCH flows and connection-state commands.
    template <class Token>
    auto async_session(Token&& token) {
        return detail::initiate<session>(std::forward<Token>(token), executor(),
                                         [this](auto cb) mutable { lease(std::move(cb)); });
    }

    // Subscribes (confirmations awaited); subscriptions are restored after every reconnect.
    template <class Token>
    auto async_subscribe(subscription_kind k, std::vector<std::string> names, Token&& token) {
        return subscription_op(k, true, std::move(names), std::forward<Token>(token));
    }
    // Empty names: unsubscribe from every subscription of that kind.
    template <class Token>
    auto async_unsubscribe(subscription_kind k, std::vector<std::string> names, Token&& token) {
        return subscription_op(k, false, std::move(names), std::forward<Token>(token));
    }

    // The next Pub/Sub message from the bounded queue (used when no message handler is set).
    template <class Token>
    auto async_receive(Token&& token) {
        return detail::initiate<message>(std::forward<Token>(token), executor(),
                                         [this](auto cb) mutable { receive(std::move(cb)); });
    }

    // Messages go to this handler (on the client's I/O thread) instead of the queue. Must not
    // block. Pass nullptr to go back to the queue.
    void set_message_handler(std::function<void(const message&)> handler);
    // Every other push (invalidate, maintenance notifications, ...), on the I/O thread.
    void set_push_handler(std::function<void(const resp::value&)> handler);

    [[nodiscard]] push_queue_stats push_stats() const;
    [[nodiscard]] asio::io_context::executor_type executor() const noexcept;
    [[nodiscard]] const client_config& config() const noexcept;
    // The multiplexed connections (for inspection and tests; use on the client's executor).
    [[nodiscard]] std::vector<std::shared_ptr<connection>> connections() const;
    // The Pub/Sub connection, nullptr before the first subscription.
    [[nodiscard]] std::shared_ptr<connection> pubsub_connection() const;

  private:
    template <class Token>
    auto subscription_op(subscription_kind k, bool subscribe, std::vector<std::string> names,
                         Token&& token) {
        return detail::initiate<void>(std::forward<Token>(token), executor(),
                                      [this, k, subscribe, n = std::move(names)](auto cb) mutable {
                                          subscription(k, subscribe, std::move(n), std::move(cb));
                                      });
    }

    void command(request r, detail::callback<resp::value> cb);
    void exec(request r, detail::callback<std::vector<resp::value>> cb);
    void transaction(request r, detail::callback<std::vector<resp::value>> cb);
    void lease(detail::callback<session> cb);
    void subscription(subscription_kind k, bool subscribe, std::vector<std::string> names,
                      detail::callback<void> cb);
    void receive(detail::callback<message> cb);

    std::unique_ptr<detail::io_thread> io_;  // null when running on the caller's io_context
    std::shared_ptr<detail::core> core_;
};

}  // namespace respite::client
