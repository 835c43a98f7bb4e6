// The Asio shell around request_queue: connect, handshake, read/write loops, health, reconnect.
#include <algorithm>
#include <atomic>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <random>
#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/ssl.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <respite/client/command_info.hpp>
#include <respite/client/connection.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/request_parser.hpp>
#include <respite/resp/writer.hpp>

#include "request_queue.hpp"

namespace respite::client {

namespace {

using executor = asio::io_context::executor_type;
template <class T>
using task = asio::awaitable<T, executor>;
constexpr auto use_task = asio::experimental::as_tuple(asio::use_awaitable_t<executor>{});
using tcp_socket = asio::basic_stream_socket<asio::ip::tcp, executor>;
using unix_socket = asio::basic_stream_socket<asio::local::stream_protocol, executor>;
using tls_stream = asio::ssl::stream<tcp_socket>;
using timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, executor>;
using detail::clock;

constexpr std::size_t read_chunk = 64 * 1024;

struct client_metrics {
    obs::counter& commands;
    obs::counter& requests;
    obs::counter& timeouts;
    obs::counter& connection_errors;
    obs::counter& server_errors;
    obs::counter& reconnects;
    obs::counter& connect_failures;
    obs::counter& pushes;
    obs::counter& unsolicited_errors;
    obs::counter& protocol_errors;
    obs::counter& bytes_written;
    obs::counter& bytes_read;
    obs::histogram& latency;
    obs::gauge& connected;

    static client_metrics make(obs::registry& r, const std::string& label,
                               const std::string& node) {
        obs::labels l;
        if (!label.empty())
            l.emplace_back("client", label);
        if (!node.empty())
            l.emplace_back("node", node);
        auto with = [&](const char* k, const char* v) {
            auto x = l;
            x.emplace_back(k, v);
            return x;
        };
        return client_metrics{
            r.get_counter("respite_client_commands_total", "Commands sent", l),
            r.get_counter("respite_client_requests_total", "Requests (batches of commands) sent",
                          l),
            r.get_counter("respite_client_request_errors_total", "Requests that failed, by cause",
                          with("cause", "timeout")),
            r.get_counter("respite_client_request_errors_total", "Requests that failed, by cause",
                          with("cause", "connection")),
            r.get_counter("respite_client_server_error_replies_total", "Error replies received", l),
            r.get_counter("respite_client_reconnects_total", "Connections re-established", l),
            r.get_counter("respite_client_connect_failures_total",
                          "Connect or handshake attempts that failed", l),
            r.get_counter("respite_client_pushes_total", "Push frames received", l),
            r.get_counter("respite_client_unsolicited_errors_total",
                          "Error replies that answered no request (e.g. MISCONF)", l),
            r.get_counter("respite_client_protocol_errors_total",
                          "Connections dropped because the server's bytes could not be parsed", l),
            r.get_counter("respite_client_bytes_written_total", "Bytes written to servers", l),
            r.get_counter("respite_client_bytes_read_total", "Bytes read from servers", l),
            r.get_histogram("respite_client_request_duration_seconds",
                            "Time from submission to the last reply of a request", l),
            r.get_gauge("respite_client_connections", "Connections currently ready", l),
        };
    }
};

bool is_auth_error(const resp::value& v) {
    auto e = server_error_of(v);
    if (!e)
        return false;
    auto k = e->kind();
    return k == server_error_kind::wrongpass || k == server_error_kind::noauth ||
           k == server_error_kind::noperm;
}

// HELLO unsupported by this server (pre-6 or NOPROTO): fall back to RESP2 + AUTH.
bool is_hello_unsupported(const resp::value& v) {
    auto e = server_error_of(v);
    if (!e)
        return false;
    if (e->kind() == server_error_kind::noproto)
        return true;
    const auto& m = e->message();
    return m.find("unknown command") != std::string::npos ||
           m.find("unknown subcommand") != std::string::npos;
}

}  // namespace

struct connection::impl : std::enable_shared_from_this<impl> {
    impl(executor ex, connection_config cfg)
        : ex_(ex),
          cfg_(std::move(cfg)),
          parser_(cfg_.limits),
          write_signal_(ex),
          sweep_timer_(ex),
          backoff_timer_(ex),
          health_timer_(ex),
          metrics_(client_metrics::make(cfg_.metrics ? *cfg_.metrics : obs::registry::global(),
                                        cfg_.metrics_label, cfg_.metrics_node)),
          rng_(std::random_device{}()) {
        write_signal_.expires_at(clock::time_point::max());
        sweep_timer_.expires_at(clock::time_point::max());
        rbuf_.resize(read_chunk);
        queue_.set_push_sink([this](resp::value&& v) {
            metrics_.pushes.inc();
            if (push_handler_)
                push_handler_(std::move(v));
        });
    }

    // ---- requests -------------------------------------------------------------------------

    clock::time_point deadline_for(const request& req) const {
        if (cfg_.command_timeout.count() == 0)
            return clock::time_point::max();
        auto timeout = cfg_.command_timeout;
        if (req.blocking()) {
            auto block = req.block_duration();
            if (!block)
                return clock::time_point::max();
            timeout = std::max(timeout, *block + cfg_.blocking_margin);
        }
        return clock::now() + timeout;
    }

    void submit(std::string_view bytes, detail::request_options opts, std::size_t commands,
                reply_handler done) {
        if (state_ == connection_state::closed) {
            fail(done, make_error_code(error::closed));
            return;
        }
        if (state_ == connection_state::backoff && !cfg_.queue_while_disconnected) {
            // A wrong password or an untrusted certificate is said as such: waiting cannot fix
            // it, and "not connected" hid the cause.
            const bool lasting = last_error_ == error::auth_failed ||
                                 last_error_.category() == asio::error::get_ssl_category();
            fail(done, lasting ? last_error_ : make_error_code(error::not_connected));
            return;
        }
        metrics_.requests.inc();
        metrics_.commands.inc(commands);
        auto start = clock::now();
        queue_.push(bytes, opts,
                    [this, start, done = std::move(done)](
                        std::error_code ec, std::vector<resp::value>& replies) mutable {
                        auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                                      clock::now() - start)
                                      .count();
                        metrics_.latency.observe_us(static_cast<std::uint64_t>(us));
                        if (ec == error::timeout) {
                            metrics_.timeouts.inc();
                        } else if (ec) {
                            metrics_.connection_errors.inc();
                        }
                        for (const auto& r : replies) {
                            if (r.is_error())
                                metrics_.server_errors.inc();
                        }
                        done(ec, replies);
                    });
        if (opts.deadline < armed_deadline_) {
            armed_deadline_ = opts.deadline;
            sweep_timer_.expires_at(opts.deadline);
        }
        wake_writer();
    }

    void wake_writer() {
        // While a read is being processed, the reader flushes everything at its end in one write.
        if (in_process_)
            return;
        if (state_ == connection_state::ready && writer_waiting_ && !writer_woken_) {
            writer_woken_ = true;
            write_signal_.cancel();
        }
    }

    // ---- lifecycle ------------------------------------------------------------------------

    void start() {
        if (started_)
            return;
        started_ = true;
        auto self = shared_from_this();
        asio::co_spawn(
            ex_, [self]() { return self->run(); }, asio::detached);
        asio::co_spawn(
            ex_, [self]() { return self->sweeper(); }, asio::detached);
    }

    void close() {
        if (state_ == connection_state::closed)
            return;
        bool was_ready = state_ == connection_state::ready;
        state_ = connection_state::closed;
        if (was_ready)
            metrics_.connected.add(-1);
        close_stream();
        write_signal_.cancel();
        sweep_timer_.cancel();
        backoff_timer_.cancel();
        health_timer_.cancel();
        queue_.fail_all(make_error_code(error::closed));
    }

    // Ends the current connection (the run loop reconnects): from here on nothing new is
    // written to it.
    void abort_connection(std::error_code why) {
        if (state_ != connection_state::ready)
            return;
        last_error_ = why;
        state_ = connection_state::backoff;
        close_stream();
    }

    // The connection given up on, for the next handshake's CLIENT KILL: its id, and the run_id
    // of the server process that gave it (after a restart the id could name another client:
    // ids start again at 1; the old connection is gone with the old process anyway).
    void remember_abandoned() {
        if (run_id_.empty())
            return;
        abandoned_id_ = server_id_;
        abandoned_run_id_ = run_id_;
    }

    void close_stream() {
        std::error_code ec;
        if (tls_) {
            tls_->lowest_layer().shutdown(asio::socket_base::shutdown_both, ec);
            tls_->lowest_layer().close(ec);
        }
        if (tcp_) {
            tcp_->shutdown(asio::socket_base::shutdown_both, ec);
            tcp_->close(ec);
        }
        if (unix_) {
            unix_->shutdown(asio::socket_base::shutdown_both, ec);
            unix_->close(ec);
        }
    }

    std::chrono::milliseconds backoff_delay(int attempt) {
        long long cap = cfg_.reconnect.max.count();
        auto base = std::max<long long>(1, cfg_.reconnect.initial.count());
        long long ceiling = base;
        cap = std::max<long long>(cap, 1);
        for (int i = 0; i < attempt && ceiling < cap; ++i)
            ceiling *= 2;
        ceiling = std::min(ceiling, cap);
        // "Equal jitter": half fixed, half random, so retries spread but never hammer.
        std::uniform_int_distribution<long long> d(ceiling / 2, ceiling);
        return std::chrono::milliseconds(d(rng_));
    }

    task<void> run() {
        auto self = shared_from_this();
        int attempt = 0;
        while (state_ != connection_state::closed) {
            state_ = connection_state::connecting;
            auto ec = co_await connect_and_handshake();
            if (state_ == connection_state::closed)
                break;
            if (ec) {
                last_error_ = ec;
                metrics_.connect_failures.inc();
                close_stream();
                if (attempt == 0 || attempt % 20 == 0) {
                    obs::log().warn("connect_failed endpoint={} error=\"{}\" attempt={}",
                                    endpoint(), ec.message(), attempt + 1);
                }
                if (ec == error::auth_failed || ec.category() == asio::error::get_ssl_category()) {
                    // Waiting cannot make a wrong password or an untrusted certificate right.
                    queue_.fail_all(ec);
                } else if (!cfg_.queue_while_disconnected) {
                    queue_.fail_all(make_error_code(error::not_connected));
                }
                state_ = connection_state::backoff;
                co_await sleep(backoff_delay(attempt++));
                continue;
            }
            last_error_ = {};
            if (connects_ > 0) {
                metrics_.reconnects.inc();
                obs::log().info("reconnected endpoint={} protocol={}", endpoint(), protocol_);
            }
            ++connects_;
            attempt = 0;
            state_ = connection_state::ready;
            metrics_.connected.add(1);
            last_read_ = clock::now();
            if (on_ready_)
                on_ready_();
            if (state_ != connection_state::ready)
                break;

            using namespace asio::experimental::awaitable_operators;
            if (tls_) {
                co_await (reader(*tls_) || writer(*tls_) || health());
            } else if (tcp_) {
                co_await (reader(*tcp_) || writer(*tcp_) || health());
            } else {
                co_await (reader(*unix_) || writer(*unix_) || health());
            }
            if (state_ == connection_state::closed)
                break;
            state_ = connection_state::backoff;
            metrics_.connected.add(-1);
            // Every way a ready connection ends comes here (a timeout, a failed health check,
            // a read or write error, a protocol error): requests still out may yet run.
            if (cfg_.kill_abandoned && queue_.written() > 0 && server_id_ != 0)
                remember_abandoned();
            close_stream();
            parser_.reset();
            writer_waiting_ = false;
            queue_.fail_written(make_error_code(error::connection_lost));
            obs::log().warn("connection_lost endpoint={} error=\"{}\"", endpoint(),
                            last_error_.message());
            state_ = connection_state::backoff;
            // The first retry comes quickly: most drops are a restart or a killed connection.
            co_await sleep(backoff_delay(attempt++ == 0 ? -1 : attempt));
        }
        queue_.fail_all(make_error_code(error::closed));
    }

    task<void> sleep(std::chrono::milliseconds d) {
        backoff_timer_.expires_after(d);
        co_await backoff_timer_.async_wait(use_task);
    }

    std::string endpoint() const {
        if (!cfg_.unix_path.empty())
            return "unix:" + cfg_.unix_path;
        return cfg_.host + ":" + std::to_string(cfg_.port);
    }

    // ---- connect + handshake -------------------------------------------------------------

    task<std::error_code> connect_and_handshake() {
        using namespace asio::experimental::awaitable_operators;
        timer deadline(ex_);
        deadline.expires_after(cfg_.connect_timeout);
        auto r = co_await (do_connect() || deadline.async_wait(use_task));
        if (r.index() == 1) {
            close_stream();
            co_return make_error_code(error::connect_failed);
        }
        co_return std::get<0>(r);
    }

    task<std::error_code> do_connect() {
        tls_.reset();
        tcp_.reset();
        unix_.reset();
        parser_.reset();
        protocol_ = 0;
        server_id_ = 0;  // HELLO gives the new one (RESP2: none, so nothing to fence later)
        std::error_code ec;
        if (!cfg_.unix_path.empty()) {
            unix_.emplace(ex_);
            auto [e] = co_await unix_->async_connect(
                asio::local::stream_protocol::endpoint(cfg_.unix_path), use_task);
            if (e)
                co_return e;
            unix_->non_blocking(true, ec);
            co_return co_await handshake(*unix_);
        }
        asio::ip::basic_resolver<asio::ip::tcp, executor> resolver(ex_);
        auto [re, results] =
            co_await resolver.async_resolve(cfg_.host, std::to_string(cfg_.port), use_task);
        if (re)
            co_return re;
        tcp_socket sock(ex_);
        auto [ce, ep] = co_await asio::async_connect(sock, results, use_task);
        if (ce)
            co_return ce;
        sock.set_option(asio::ip::tcp::no_delay(true), ec);
        enable_keepalive(sock);
        if (cfg_.tls.enabled) {
            if (!ssl_ctx_) {
                ec = make_tls_context();
                if (ec)
                    co_return ec;
            }
            tls_ = std::make_unique<tls_stream>(std::move(sock), *ssl_ctx_);
            const auto& name = cfg_.tls.server_name.empty() ? cfg_.host : cfg_.tls.server_name;
            SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
            if (cfg_.tls.verify_peer) {
                tls_->set_verify_callback(asio::ssl::host_name_verification(name));
            }
            auto [he] = co_await tls_->async_handshake(asio::ssl::stream_base::client, use_task);
            if (he)
                co_return he;
            co_return co_await handshake(*tls_);
        }
        tcp_.emplace(std::move(sock));
        tcp_->non_blocking(true, ec);
        co_return co_await handshake(*tcp_);
    }

    // TCP keepalive finds a peer that vanished while requests are outstanding and no command
    // timeout is set (the health check only probes idle connections): ~30 s to detect.
    static void enable_keepalive(tcp_socket& sock) {
        std::error_code ec;
        sock.set_option(asio::socket_base::keep_alive(true), ec);
        int idle = 15, interval = 5, count = 3;
        ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    }

    std::error_code make_tls_context() {
        std::error_code ec;
        ssl_ctx_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        if (cfg_.tls.ca_file.empty()) {
            ssl_ctx_->set_default_verify_paths(ec);
        } else {
            ssl_ctx_->load_verify_file(cfg_.tls.ca_file, ec);
        }
        if (!ec && !cfg_.tls.cert_file.empty()) {
            ssl_ctx_->use_certificate_chain_file(cfg_.tls.cert_file, ec);
        }
        if (!ec && !cfg_.tls.key_file.empty()) {
            ssl_ctx_->use_private_key_file(cfg_.tls.key_file, asio::ssl::context::pem, ec);
        }
        if (!ec) {
            ssl_ctx_->set_verify_mode(cfg_.tls.verify_peer ? asio::ssl::verify_peer
                                                           : asio::ssl::verify_none);
        }
        if (ec)
            ssl_ctx_.reset();
        return ec;
    }

    // One command, one reply, before the read/write loops run.
    template <class Stream>
    task<result<resp::value>> roundtrip(Stream& s, std::vector<std::string_view> args) {
        std::string out;
        resp::append_command(out, std::span<const std::string_view>(args));
        co_return co_await roundtrip_raw(s, out);
    }

    template <class Stream>
    task<std::error_code> handshake(Stream& s) {
        bool resp2 = cfg_.protocol == 2;
        if (!resp2) {
            std::vector<std::string_view> hello{"HELLO", "3"};
            if (!cfg_.password.empty()) {
                hello.insert(hello.end(), {"AUTH",
                                           cfg_.username.empty() ? std::string_view("default")
                                                                 : std::string_view(cfg_.username),
                                           cfg_.password});
            }
            if (!cfg_.client_name.empty())
                hello.insert(hello.end(), {"SETNAME", cfg_.client_name});
            auto r = co_await roundtrip(s, std::move(hello));
            if (!r)
                co_return r.error();
            if (r->is_error()) {
                if (is_hello_unsupported(*r)) {
                    resp2 = true;
                } else if (is_auth_error(*r)) {
                    auth_error_text_ = r->str();
                    co_return make_error_code(error::auth_failed);
                } else {
                    co_return make_error_code(error::connect_failed);
                }
            } else {
                protocol_ = 3;
                if (const auto* id = r->find("id"))
                    server_id_ = id->integer();
            }
        }
        if (resp2) {
            protocol_ = 2;
            if (!cfg_.password.empty()) {
                std::vector<std::string_view> auth{"AUTH"};
                if (!cfg_.username.empty())
                    auth.push_back(cfg_.username);
                auth.push_back(cfg_.password);
                auto r = co_await roundtrip(s, std::move(auth));
                if (!r)
                    co_return r.error();
                if (r->is_error()) {
                    auth_error_text_ = r->str();
                    co_return make_error_code(error::auth_failed);
                }
            }
            if (!cfg_.client_name.empty()) {
                std::vector<std::string_view> setname{"CLIENT", "SETNAME", cfg_.client_name};
                auto r = co_await roundtrip(s, std::move(setname));
                if (!r)
                    co_return r.error();
            }
        }
        if (cfg_.database != 0) {
            auto db = std::to_string(cfg_.database);
            std::vector<std::string_view> select{"SELECT", db};
            auto r = co_await roundtrip(s, std::move(select));
            if (!r)
                co_return r.error();
            if (r->is_error())
                co_return make_error_code(error::connect_failed);
        }
        if (cfg_.kill_abandoned) {
            // Which server process this is (INFO server's run_id), so that a later fence kills
            // only in the process that gave the abandoned connection its id.
            std::vector<std::string_view> info{"INFO", "server"};
            auto r = co_await roundtrip(s, std::move(info));
            if (!r)
                co_return r.error();
            run_id_.clear();
            if (r->is_error() && !run_id_refused_logged_) {
                run_id_refused_logged_ = true;
                obs::log().warn(
                    "server_run_id_unknown endpoint={} error=\"{}\" (a connection "
                    "given up on cannot be killed: requests it carried may still "
                    "run after the next connection's)",
                    endpoint(), r->str());
            }
            if (r->is_string()) {
                const std::string_view text = r->str();
                if (const auto at = text.find("run_id:"); at != std::string_view::npos)
                    run_id_ = std::string(text.substr(at + 7, 40));
            }
        }
        if (abandoned_id_ != 0) {
            const auto id = std::to_string(abandoned_id_);
            if (run_id_.empty() || run_id_ != abandoned_run_id_) {
                obs::log().info(
                    "abandoned_connection_gone endpoint={} id={} (another server "
                    "process, or its run_id unknown: nothing to kill)",
                    endpoint(), id);
            } else {
                std::vector<std::string_view> kill{"CLIENT", "KILL", "ID", id};
                auto k = co_await roundtrip(s, std::move(kill));
                if (!k)
                    co_return k.error();
                if (k->is_error())
                    obs::log().warn(
                        "abandoned_connection_not_killed endpoint={} id={} "
                        "error=\"{}\" (requests it carried may still run after this "
                        "connection's)",
                        endpoint(), id, k->str());
                else
                    obs::log().info("abandoned_connection_killed endpoint={} id={} killed={}",
                                    endpoint(), id, k->integer());
            }
            abandoned_id_ = 0;
        }
        for (const auto& command : cfg_.init_commands) {
            std::vector<std::string_view> args(command.begin(), command.end());
            auto r = co_await roundtrip(s, std::move(args));
            if (!r)
                co_return r.error();
            if (r->is_error()) {
                obs::log().warn("init_command_failed endpoint={} error=\"{}\"", endpoint(),
                                r->str());
                co_return make_error_code(error::connect_failed);
            }
        }
        co_return std::error_code{};
    }

    template <class Stream>
    task<result<resp::value>> roundtrip_raw(Stream& s, const std::string& out) {
        auto [we, wn] = co_await asio::async_write(s, asio::buffer(out), use_task);
        if (we)
            co_return std::unexpected(we);
        for (;;) {
            auto [re, n] = co_await s.async_read_some(asio::buffer(rbuf_), use_task);
            if (re)
                co_return std::unexpected(re);
            auto r = parser_.feed(std::string_view(rbuf_.data(), n));
            if (r.error)
                co_return std::unexpected(make_error_code(error::protocol_error));
            if (r.complete) {
                // Nothing may follow a handshake reply before we ask for more.
                if (r.consumed != n) {
                    co_return std::unexpected(make_error_code(error::protocol_error));
                }
                co_return parser_.take();
            }
        }
    }

    // ---- loops ----------------------------------------------------------------------------

    template <class Stream>
    task<void> reader(Stream& s) {
        for (;;) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(rbuf_), use_task);
            if (ec) {
                // Aborted: another loop ended the connection and already said why.
                if (ec != asio::error::operation_aborted)
                    last_error_ = ec;
                co_return;
            }
            metrics_.bytes_read.inc(n);
            last_read_ = clock::now();
            in_process_ = true;
            bool ok = process(std::string_view(rbuf_.data(), n));
            in_process_ = false;
            if (!ok)
                co_return;
            flush_inline(s);
        }
    }

    // Writes what the replies just processed made callers send, right here, without a trip
    // through the scheduler: a non-blocking write_some; whatever does not fit goes to the writer.
    template <class Stream>
    void flush_inline(Stream& s) {
        if (!queue_.has_staged() || state_ != connection_state::ready)
            return;
        if constexpr (!std::is_same_v<Stream, tls_stream>) {
            if (writer_waiting_ && wpos_ == wbuf_.size()) {
                queue_.take_staged(wbuf_);
                std::error_code ec;
                auto n = s.write_some(asio::buffer(wbuf_), ec);
                if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
                    n = 0;  // the writer retries and reports the error
                }
                wpos_ = n;
                metrics_.bytes_written.inc(n);
                if (wpos_ == wbuf_.size())
                    return;
            }
        }
        wake_writer();
    }

    bool process(std::string_view data) {
        while (!data.empty()) {
            auto r = parser_.feed(data);
            data.remove_prefix(r.consumed);
            if (r.error) {
                metrics_.protocol_errors.inc();
                obs::log().error("protocol_error endpoint={} error=\"{}\"", endpoint(),
                                 r.error.message());
                last_error_ = make_error_code(error::protocol_error);
                return false;
            }
            if (!r.complete)
                break;
            auto route = queue_.on_value(parser_.take());
            if (state_ != connection_state::ready)
                return false;
            if (route == detail::request_queue::value_route::unsolicited_error) {
                metrics_.unsolicited_errors.inc();
                obs::log().warn("unsolicited_error endpoint={}", endpoint());
            } else if (route == detail::request_queue::value_route::unexpected) {
                metrics_.protocol_errors.inc();
                obs::log().error("unexpected_reply endpoint={} (no request was waiting)",
                                 endpoint());
                last_error_ = make_error_code(error::protocol_error);
                return false;
            }
        }
        return true;
    }

    template <class Stream>
    task<void> writer(Stream& s) {
        wbuf_.clear();
        wpos_ = 0;
        for (;;) {
            for (;;) {
                if (wpos_ == wbuf_.size()) {
                    if (!queue_.has_staged() || state_ != connection_state::ready)
                        break;
                    queue_.take_staged(wbuf_);
                    wpos_ = 0;
                }
                auto [ec, n] = co_await asio::async_write(
                    s, asio::buffer(wbuf_.data() + wpos_, wbuf_.size() - wpos_), use_task);
                if (ec) {
                    if (ec != asio::error::operation_aborted)
                        last_error_ = ec;
                    co_return;
                }
                wpos_ = wbuf_.size();
                metrics_.bytes_written.inc(n);
            }
            writer_waiting_ = true;
            writer_woken_ = false;
            co_await write_signal_.async_wait(use_task);
            writer_waiting_ = false;
            // Not woken by wake_writer(): the connection is ending; take nothing more from the
            // queue, so unsent requests stay staged for the next connection.
            if (!writer_woken_ || state_ != connection_state::ready)
                co_return;
        }
    }

    // PING an idle connection; no answer within the interval means the connection is dead.
    task<void> health() {
        auto interval = cfg_.health_check_interval;
        if (interval.count() == 0) {
            health_timer_.expires_at(clock::time_point::max());
            co_await health_timer_.async_wait(use_task);
            co_return;
        }
        for (;;) {
            health_timer_.expires_after(interval);
            auto [ec] = co_await health_timer_.async_wait(use_task);
            if (ec || state_ != connection_state::ready)
                co_return;
            if (queue_.size() != 0 || clock::now() - last_read_ < interval)
                continue;
            auto answered = std::make_shared<int>(0);  // 0 pending, 1 ok, -1 failed
            request ping = cmd("PING");
            submit(ping.payload(), {1, clock::now() + interval, detail::reply_mode::normal}, 1,
                   [answered](std::error_code e, std::vector<resp::value>&) {
                       *answered = e ? -1 : 1;
                   });
            health_timer_.expires_after(interval);
            auto [ec2] = co_await health_timer_.async_wait(use_task);
            if (ec2 || state_ != connection_state::ready)
                co_return;
            if (*answered != 1) {
                obs::log().warn("health_check_failed endpoint={}", endpoint());
                last_error_ = make_error_code(error::timeout);
                co_return;
            }
        }
    }

    // Expires deadlines; a connection whose written requests time out with nothing read since
    // is considered dead and dropped (its replies would otherwise never come).
    task<void> sweeper() {
        auto self = shared_from_this();
        while (state_ != connection_state::closed) {
            co_await sweep_timer_.async_wait(use_task);
            if (state_ == connection_state::closed)
                break;
            auto now = clock::now();
            if (now >= armed_deadline_ || armed_deadline_ == clock::time_point::max()) {
                // Dropped only when a request did time out now: a wake-up for an older deadline
                // (its request answered since) that came late, under load, found nothing read
                // for a command timeout and failed a younger written request as lost instead
                // of letting it reach its own deadline.
                const auto expired = queue_.expire(now, make_error_code(error::timeout));
                if (expired > 0 && state_ == connection_state::ready && queue_.written() > 0 &&
                    cfg_.command_timeout.count() > 0 && now - last_read_ >= cfg_.command_timeout &&
                    !blocking_written()) {
                    obs::log().warn("connection_unresponsive endpoint={} dropping", endpoint());
                    abort_connection(make_error_code(error::timeout));
                }
            }
            armed_deadline_ = queue_.next_deadline();
            if (armed_deadline_ != clock::time_point::max()) {
                armed_deadline_ += std::chrono::milliseconds(1);
            }
            sweep_timer_.expires_at(armed_deadline_);
        }
    }

    bool blocking_written() const { return blocking_in_flight_ > 0; }

    executor ex_;
    connection_config cfg_;
    resp::parser parser_;
    detail::request_queue queue_;
    std::optional<tcp_socket> tcp_;
    std::optional<unix_socket> unix_;
    std::unique_ptr<tls_stream> tls_;
    std::unique_ptr<asio::ssl::context> ssl_ctx_;
    std::string rbuf_;
    std::string wbuf_;
    std::size_t wpos_ = 0;  // bytes of wbuf_ already written
    timer write_signal_;
    timer sweep_timer_;
    timer backoff_timer_;
    timer health_timer_;
    client_metrics metrics_;
    std::mt19937_64 rng_;
    clock::time_point armed_deadline_ = clock::time_point::max();
    clock::time_point last_read_{};
    std::atomic<connection_state> state_{connection_state::idle};
    std::error_code last_error_;
    std::string auth_error_text_;
    std::function<void(resp::value&&)> push_handler_;
    std::function<void()> on_ready_;
    std::atomic<std::uint64_t> connects_{0};
    long long server_id_ = 0;
    long long abandoned_id_ = 0;    // a connection given up with requests out (kill_abandoned)
    std::string abandoned_run_id_;  // the server process it belonged to
    std::string run_id_;            // this connection's server process (kill_abandoned only)
    bool run_id_refused_logged_ = false;
    std::atomic<int> protocol_{0};
    int blocking_in_flight_ = 0;
    bool writer_waiting_ = false;
    bool in_process_ = false;
    bool writer_woken_ = false;
    bool started_ = false;
};

// ---- public surface ----------------------------------------------------------------------

connection::connection(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

connection::~connection() {
    if (impl_)
        impl_->close();
}

std::shared_ptr<connection> connection::create(executor_type ex, connection_config cfg) {
    auto p = std::make_shared<impl>(ex, std::move(cfg));
    return std::shared_ptr<connection>(new connection(std::move(p)));
}

void connection::start() {
    impl_->start();
}
void connection::close() {
    impl_->close();
}

void connection::execute(const request& req, reply_handler done) {
    if (req.empty() || req.has_empty_command()) {
        fail(done, make_error_code(error::invalid_argument));
        return;
    }
    auto deadline = impl_->deadline_for(req);
    if (req.blocking()) {
        ++impl_->blocking_in_flight_;
        done = [p = impl_.get(), d = std::move(done)](std::error_code ec,
                                                      std::vector<resp::value>& r) mutable {
            --p->blocking_in_flight_;
            d(ec, r);
        };
    }
    impl_->submit(req.payload(),
                  {static_cast<std::uint32_t>(req.size()), deadline, detail::reply_mode::normal},
                  req.size(), std::move(done));
}

void connection::execute_pubsub(const request& req, reply_handler done) {
    // One (un)subscribe command with explicit names: its confirmations are counted.
    resp::request_parser parser;
    std::vector<std::string_view> args;
    auto parsed = parser.parse(req.payload(), args);
    if (req.size() != 1 || !parsed.complete || args.size() < 2 ||
        classify(args) == command_kind::ordinary) {
        fail(done, make_error_code(error::invalid_argument));
        return;
    }
    static constexpr std::string_view kinds[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                                 "unsubscribe", "punsubscribe", "sunsubscribe"};
    std::string_view confirm;
    for (auto k : kinds) {
        if (iequals(args[0], k))
            confirm = k;
    }
    if (confirm.empty()) {
        fail(done, make_error_code(error::invalid_argument));
        return;
    }
    detail::request_options opts;
    opts.replies = static_cast<std::uint32_t>(args.size() - 1);
    opts.deadline = impl_->deadline_for(req);
    opts.mode = detail::reply_mode::confirmations;
    opts.confirm = confirm;
    impl_->submit(req.payload(), opts, 1, std::move(done));
}

void connection::set_resp2_pubsub(bool on) {
    impl_->queue_.set_resp2_pubsub(on);
}
void connection::set_push_handler(std::function<void(resp::value&&)> h) {
    impl_->push_handler_ = std::move(h);
}
void connection::set_on_ready(std::function<void()> h) {
    impl_->on_ready_ = std::move(h);
}
connection_state connection::state() const noexcept {
    return impl_->state_;
}
int connection::protocol() const noexcept {
    return impl_->protocol_;
}
std::size_t connection::pending() const noexcept {
    return impl_->queue_.size();
}
connection::executor_type connection::get_executor() const noexcept {
    return impl_->ex_;
}
const connection_config& connection::config() const noexcept {
    return impl_->cfg_;
}
std::error_code connection::last_error() const noexcept {
    return impl_->last_error_;
}
long long connection::server_id() const noexcept {
    return impl_->server_id_;
}
std::uint64_t connection::connects() const noexcept {
    return impl_->connects_;
}

void connection::drop() {
    impl_->abort_connection(make_error_code(error::connection_lost));
}

}  // namespace respite::client
