// The raw upstream connection: handshake, coalesced writes, FIFO reply matching.
#include "upstream.hpp"

#include <algorithm>
#include <charconv>

#include <asio/connect.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <respite/obs/log.hpp>
#include <respite/resp/writer.hpp>

#include "keepalive.hpp"

namespace respite::proxy::server {

namespace {
constexpr std::size_t k_read_chunk = 64 * 1024;
// Set while one read's replies are delivered (see reply_time()).
thread_local std::chrono::steady_clock::time_point delivering_at{};
// Set while a connection that timed out fails its sinks (see failing_on_timeout()).
thread_local bool failing_timeout = false;
constexpr std::string_view k_timeout_reason = "reply timeout";
}  // namespace

bool upstream::failing_on_timeout() noexcept {
    return failing_timeout;
}

std::chrono::steady_clock::time_point upstream::reply_time() noexcept {
    const auto t = delivering_at;
    return t == std::chrono::steady_clock::time_point{} ? std::chrono::steady_clock::now() : t;
}

upstream::upstream(asio::io_context& ioc, upstream_endpoint ep, resp::limits limits)
    : ioc_(ioc),
      ep_(std::move(ep)),
      socket_(ioc),
      connect_timer_(ioc),
      watchdog_(ioc),
      scanner_(limits) {}

upstream::~upstream() = default;

void upstream::start() {
    if (started_)
        return;
    started_ = true;
    // The handshake goes first in the output buffer; its replies are consumed here.
    std::string hs;
    if (ep_.protocol == 3) {
        if (!ep_.password.empty())
            resp::append_command(
                hs, {"HELLO", "3", "AUTH", ep_.username.empty() ? "default" : ep_.username,
                     ep_.password});
        else
            resp::append_command(hs, {"HELLO", "3"});
        ++handshake_left_;
    } else if (!ep_.password.empty()) {
        if (ep_.username.empty())
            resp::append_command(hs, {"AUTH", ep_.password});
        else
            resp::append_command(hs, {"AUTH", ep_.username, ep_.password});
        ++handshake_left_;
    }
    if (ep_.database != 0) {
        const auto db = std::to_string(ep_.database);
        resp::append_command(hs, {"SELECT", db});
        ++handshake_left_;
    }
    resp::append_command(hs, {"CLIENT", "ID"});
    ++handshake_left_;
    for (std::size_t i = 0; i < handshake_left_; ++i)
        pending_.push_back(waiter{});
    unwritten_waiters_ += handshake_left_;
    out_.insert(0, hs);
    connect();
}

void upstream::connect() {
    auto self = shared_from_this();
    asio::ip::tcp::resolver resolver(ioc_);
    std::error_code ec;
    auto endpoints = resolver.resolve(ep_.host, std::to_string(ep_.port), ec);
    if (ec) {
        fail("resolve failed");
        return;
    }
    connect_timer_.expires_after(ep_.connect_timeout);
    connect_timer_.async_wait([self](std::error_code e) {
        if (!e && self->state_ == state::connecting)
            self->fail("connect timeout");
    });
    asio::async_connect(socket_, endpoints,
                        [self](std::error_code e, const asio::ip::tcp::endpoint&) {
                            self->connect_timer_.cancel();
                            if (self->state_ == state::closed)
                                return;
                            if (e) {
                                self->fail("connect failed");
                                return;
                            }
                            std::error_code ignored;
                            self->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
                            set_tcp_keepalive(self->socket_, self->ep_.keepalive_seconds);
                            self->on_connected();
                        });
}

void upstream::on_connected() {
    if (!ep_.tls) {
        state_ = state::ready;
        // The reply clock starts now (connecting has its own timeout): a server that accepts
        // but never answers the handshake is found too.
        head_moved(std::chrono::steady_clock::now());
        flush();
        read();
        return;
    }
    tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(socket_, *ep_.tls);
    const auto& name = ep_.tls_server_name.empty() ? ep_.host : ep_.tls_server_name;
    SSL_set_tlsext_host_name(tls_->native_handle(), name.c_str());
    tls_->set_verify_callback(asio::ssl::host_name_verification(name));
    connect_timer_.expires_after(ep_.connect_timeout);
    connect_timer_.async_wait([self = shared_from_this()](std::error_code e) {
        if (!e && self->state_ == state::connecting)
            self->fail("TLS handshake timeout");
    });
    tls_->async_handshake(
        asio::ssl::stream_base::client, [self = shared_from_this()](std::error_code ec) {
            self->connect_timer_.cancel();
            if (self->state_ == state::closed)
                return;
            if (ec) {
                obs::log().error("proxy upstream_tls_failed error=\"{}\"", ec.message());
                self->fail("TLS handshake failed");
                return;
            }
            self->state_ = state::ready;
            self->head_moved(std::chrono::steady_clock::now());
            self->flush();
            self->read();
        });
}

std::shared_ptr<asio::ssl::context> make_upstream_tls(const client::tls_config& cfg,
                                                      std::string& error) {
    if (!cfg.enabled)
        return nullptr;
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    std::error_code ec;
    if (cfg.ca_file.empty())
        ctx->set_default_verify_paths(ec);
    else
        ctx->load_verify_file(cfg.ca_file, ec);
    if (ec) {
        error = "cannot load the backend CA " + cfg.ca_file + ": " + ec.message();
        return nullptr;
    }
    ctx->set_verify_mode(cfg.verify_peer ? asio::ssl::verify_peer : asio::ssl::verify_none);
    if (!cfg.cert_file.empty()) {
        ctx->use_certificate_chain_file(cfg.cert_file, ec);
        if (!ec)
            ctx->use_private_key_file(cfg.key_file, asio::ssl::context::pem, ec);
        if (ec) {
            error = "cannot load the backend client certificate: " + ec.message();
            return nullptr;
        }
    }
    return ctx;
}

void upstream::send_to(std::string_view command, reply_sink* to, std::shared_ptr<reply_sink> owner,
                       std::uint64_t tag, std::chrono::milliseconds patience) {
    if (state_ == state::closed) {
        to->on_failure(tag, false);
        return;
    }
    out_.append(command);
    const bool idle = pending_.empty();
    pending_.push_back(waiter{to, std::move(owner), tag, patience});
    ++unwritten_waiters_;
    if (idle)
        head_moved(std::chrono::steady_clock::now());
    schedule_flush();
}

std::chrono::milliseconds upstream::patience_of(const waiter& w) const noexcept {
    return w.patience == std::chrono::milliseconds{} ? ep_.reply_timeout : w.patience;
}

namespace {
// Longer than this is "forever" (and keeps time_point arithmetic far from overflow).
constexpr std::chrono::milliseconds k_longest_patience = std::chrono::hours(24 * 365);
}  // namespace

void upstream::head_moved(std::chrono::steady_clock::time_point now) {
    head_since_ = now;
    if (pending_.empty() || state_ != state::ready ||
        ep_.reply_timeout <= std::chrono::milliseconds{})
        return;
    // Armed for an earlier head with more patience (a blocking command): the new head's
    // deadline may come first.
    const auto patience = patience_of(pending_.front());
    if (!watchdog_armed_ ||
        (patience > std::chrono::milliseconds{} && patience < k_longest_patience &&
         head_since_ + patience < watchdog_.expiry()))
        arm_watchdog();
}

void upstream::arm_watchdog() {
    const auto patience = patience_of(pending_.front());
    ++watchdog_gen_;  // a handler of an earlier arm (cancelled below) leaves the flag alone
    watchdog_armed_ = false;
    watchdog_.cancel();
    if (patience <= std::chrono::milliseconds{} || patience >= k_longest_patience)
        return;  // a command that may block forever: armed again when the head moves
    watchdog_armed_ = true;
    watchdog_.expires_at(head_since_ + patience);
    watchdog_.async_wait([self = shared_from_this(), gen = watchdog_gen_](std::error_code ec) {
        if (gen != self->watchdog_gen_)
            return;
        self->watchdog_armed_ = false;
        if (!ec)
            self->on_watchdog();
    });
}

void upstream::on_watchdog() {
    if (state_ != state::ready || pending_.empty())
        return;
    const auto patience = patience_of(pending_.front());
    if (patience <= std::chrono::milliseconds{} || patience >= k_longest_patience)
        return;
    // Bytes read (head_since_) and, while a write is out, bytes written count as progress: a
    // large command on a slow link is not a hung server; a write that stopped moving (the
    // server's buffers full) is.
    auto last = head_since_;
    if (writing_)
        last = std::max(last, write_progress_);
    if (std::chrono::steady_clock::now() - last >= patience) {
        fail(k_timeout_reason);
        return;
    }
    head_since_ = last;
    arm_watchdog();  // the head moved (or bytes came) since: wait for the new deadline
}

void upstream::send_unreplied(std::string_view command) {
    if (state_ == state::closed)
        return;
    out_.append(command);
    schedule_flush();
}

void upstream::set_push_handler(std::function<void(std::string_view)> handler) {
    on_push_ = std::move(handler);
}

void upstream::set_close_handler(std::function<void()> handler) {
    on_close_ = std::move(handler);
}

void upstream::schedule_flush() {
    if (flush_scheduled_ || writing_ || state_ != state::ready)
        return;
    flush_scheduled_ = true;
    // One write per event-loop turn: every command queued in this turn goes together.
    asio::post(ioc_, [self = shared_from_this()] {
        self->flush_scheduled_ = false;
        self->flush();
    });
}

void upstream::flush() {
    if (writing_ || out_.empty() || state_ != state::ready)
        return;
    writing_ = true;
    writing_buf_.swap(out_);
    out_.clear();
    unwritten_waiters_ = 0;
    auto done = [self = shared_from_this()](std::error_code ec, std::size_t) {
        self->writing_ = false;
        self->writing_buf_.clear();
        if (ec) {
            self->fail("write failed");
            return;
        }
        self->flush();
    };
    // Each partial write is progress for the reply watchdog (a large command on a slow link);
    // a write that stops moving is not.
    auto progress = [self = shared_from_this()](const std::error_code& ec, std::size_t n) {
        self->write_progress_ = std::chrono::steady_clock::now();
        return asio::transfer_all()(ec, n);
    };
    if (tls_)
        asio::async_write(*tls_, asio::buffer(writing_buf_), progress, std::move(done));
    else
        asio::async_write(socket_, asio::buffer(writing_buf_), progress, std::move(done));
}

void upstream::read() {
    if (in_.size() < in_start_ + k_read_chunk)
        in_.resize(in_start_ + k_read_chunk * 2);
    auto self = shared_from_this();
    const std::size_t have = in_len_;
    async_read_some(asio::buffer(in_.data() + have, in_.size() - have), [self](std::error_code ec,
                                                                               std::size_t n) {
        if (ec) {
            self->fail(ec == asio::error::eof ? "closed by server" : "read failed");
            return;
        }
        self->in_len_ += n;
        struct delivering {
            std::chrono::steady_clock::time_point saved = delivering_at;
            delivering() { delivering_at = std::chrono::steady_clock::now(); }
            ~delivering() { delivering_at = saved; }
            delivering(const delivering&) = delete;
            delivering& operator=(const delivering&) = delete;
        } scope;
        // Bytes from the server are progress, even before a reply is complete (a large one).
        self->head_since_ = delivering_at;
        while (self->state_ != state::closed) {
            std::string_view avail(self->in_.data() + self->in_start_,
                                   self->in_len_ - self->in_start_);
            if (avail.empty())
                break;
            auto r = self->scanner_.scan(avail);
            if (r.error) {
                self->fail("protocol error from server");
                return;
            }
            if (!r.complete)
                break;
            const auto frame = avail.substr(0, r.frame.length);
            self->in_start_ += r.frame.length;
            self->handle_frame(frame, r.frame.type_byte);
        }
        if (self->state_ == state::closed)
            return;
        // Keep the partial frame at the front of the buffer.
        if (self->in_start_ == self->in_len_) {
            self->in_start_ = self->in_len_ = 0;
        } else if (self->in_start_ > 0 && self->in_len_ + k_read_chunk > self->in_.size()) {
            std::memmove(self->in_.data(), self->in_.data() + self->in_start_,
                         self->in_len_ - self->in_start_);
            self->in_len_ -= self->in_start_;
            self->in_start_ = 0;
        }
        if (self->in_len_ + k_read_chunk > self->in_.size())
            self->in_.resize(self->in_len_ + k_read_chunk);
        self->read();
    });
}

void upstream::handle_frame(std::string_view frame, char type) {
    if (type == '>' || (pending_.empty() && on_push_)) {
        if (on_push_)
            on_push_(frame);
        return;
    }
    if (pending_.empty()) {
        fail("unexpected reply");
        return;
    }
    waiter w = std::move(pending_.front());
    pending_.pop_front();
    if (ep_.reply_timeout > std::chrono::milliseconds{})
        head_moved(reply_time());
    if (!w.to) {
        // A handshake reply.
        --handshake_left_;
        if (type == '-' || type == '!') {
            obs::log().error("proxy upstream_handshake_failed reply={}",
                             frame.substr(0, std::min<std::size_t>(frame.size(), 120)));
            fail("handshake failed");
            return;
        }
        if (handshake_left_ == 0 && type == ':') {
            std::int64_t id = 0;
            std::from_chars(frame.data() + 1, frame.data() + frame.size() - 2, id);
            client_id_ = id;
        }
        return;
    }
    // `w.owner` (or a waiter ahead that was delivered already, and handed it on) keeps the sink
    // alive through the call, even if the call ends this connection.
    w.to->on_reply(w.tag, frame);
    if (w.owner && !pending_.empty() && pending_.front().to == w.to && !pending_.front().owner)
        pending_.front().owner = std::move(w.owner);
}

void upstream::close() {
    fail("closed");
}

void upstream::fail(std::string_view why) {
    if (state_ == state::closed)
        return;
    const bool was_ready = state_ == state::ready;
    state_ = state::closed;
    if (why != "closed")
        obs::log().warn("proxy upstream_failed reason=\"{}\" pending={} connected={}", why,
                        pending_.size(), was_ready);
    std::error_code ignored;
    connect_timer_.cancel();
    watchdog_.cancel();
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    auto waiters = std::move(pending_);
    pending_.clear();
    const std::size_t unwritten = std::min(unwritten_waiters_, waiters.size());
    const std::size_t written_end = waiters.size() - unwritten;
    // `waiters` holds every owner until the loop ended.
    struct timeout_scope {
        bool saved = failing_timeout;
        explicit timeout_scope(bool on) { failing_timeout = on; }
        ~timeout_scope() { failing_timeout = saved; }
        timeout_scope(const timeout_scope&) = delete;
        timeout_scope& operator=(const timeout_scope&) = delete;
    } scope(why == k_timeout_reason);
    for (std::size_t i = 0; i < waiters.size(); ++i) {
        if (waiters[i].to)
            waiters[i].to->on_failure(waiters[i].tag, i < written_end);
    }
    if (on_close_) {
        auto h = std::move(on_close_);
        h();
    }
}

}  // namespace respite::proxy::server
