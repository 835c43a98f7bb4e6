// The client session: ordered replies over raw forwarding, local commands, pinning.
#include "session.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>

#include <asio/post.hpp>
#include <asio/write.hpp>

#include <respite/client/command_info.hpp>
#include <respite/cluster/cluster_client.hpp>
#include <respite/cluster/slot.hpp>
#include <respite/obs/log.hpp>
#include <respite/proxy/effects.hpp>
#include <respite/resp/frame_scanner.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/writer.hpp>

#include "follow.hpp"
#include "frames.hpp"
#include "pubsub_hub.hpp"
#include "text.hpp"

namespace respite::proxy::server {

namespace {

using client::iequals;

constexpr std::size_t k_read_chunk = 16 * 1024;
// Unprocessed input kept while processing is held (blocked, paused, output full).
constexpr std::size_t k_held_input = 256 * 1024;
constexpr std::size_t k_max_pipeline = 8192;  // replies outstanding before input is held

std::atomic<std::uint64_t> next_session_id{1};

resp::limits limits_of(const proxy_config& cfg) {
    resp::limits l;
    l.max_bulk_length = cfg.max_bulk;
    l.max_aggregate_elements = cfg.max_args;
    return l;
}

resp::limits unauthenticated_limits() {
    resp::limits l;
    l.max_bulk_length = 16 * 1024;
    l.max_aggregate_elements = 10;
    l.max_line_length = 16 * 1024;
    return l;
}

std::vector<std::string> copy_args(std::span<const std::string_view> args) {
    return {args.begin(), args.end()};
}

// A cluster node's answer that the slot lives elsewhere (or is being migrated).
// Backend parameters that hold credentials: CONFIG GET through the proxy leaves them out, and
// CONFIG SET of them is refused (the proxy's own connections use them).
bool is_secret_parameter(std::string_view name) {
    for (std::string_view s : {"requirepass", "masterauth", "masteruser", "tls-key-file-pass",
                               "tls-client-key-file-pass"})
        if (iequals(name, s))
            return true;
    return false;
}

// The value a client of the proxy reads for a backend parameter about where the server listens
// (CONFIG GET port/tls-port/bind/unixsocket): the proxy's own, as Redis gives its own. nullopt
// for other parameters.
std::optional<std::string> proxy_listen_parameter(std::string_view name, const proxy_config& cfg) {
    const bool tls = !cfg.tls_cert_file.empty() && !cfg.tls_key_file.empty();
    const std::string port = std::to_string(cfg.listen_port);
    if (name == "port")
        return tls ? "0" : port;
    if (name == "tls-port")
        return tls ? port : "0";
    if (name == "bind")
        return cfg.listen_host;
    if (name == "unixsocket")
        return cfg.unix_socket;
    return std::nullopt;
}

// A CONFIG GET reply (RESP2 flat array of name/value, RESP3 map) as the proxy's clients may see
// it: without the backend's secrets, `cluster-enabled no` (to its clients the proxy is one
// standalone server, see as_proxy_info), and the proxy's own listening address instead of
// the backend's. nullopt when there is nothing to change.
std::optional<std::string> as_proxy_config(std::string_view frame, int proto,
                                           const proxy_config& cfg) {
    const auto v = decode_frame(frame);
    if (!v || !v->is_aggregate() || v->elements().size() % 2 != 0)
        return std::nullopt;
    std::vector<resp::value> kept;
    bool changed = false;
    const auto& e = v->elements();
    for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
        if (e[i].is_string() && is_secret_parameter(e[i].str())) {
            changed = true;
            continue;
        }
        kept.push_back(e[i]);
        if (e[i].is_string() && e[i].str() == "cluster-enabled" && e[i + 1].is_string() &&
            e[i + 1].str() != "no") {
            kept.push_back(resp::value::bulk_string("no"));
            changed = true;
            continue;
        }
        if (const auto own =
                e[i].is_string() ? proxy_listen_parameter(e[i].str(), cfg) : std::nullopt;
            own && e[i + 1].is_string() && e[i + 1].str() != *own) {
            kept.push_back(resp::value::bulk_string(*own));
            changed = true;
            continue;
        }
        kept.push_back(e[i + 1]);
    }
    if (!changed)
        return std::nullopt;
    const bool map = frame.starts_with("%");
    return encode_value(
        map ? resp::value::map(std::move(kept)) : resp::value::array(std::move(kept)), proto);
}

// A backend's INFO reply as the proxy's clients may see it: the port they reach the server on
// (`tcp_port`) is the proxy's, and a cluster node's reply reads as a standalone server's: the
// proxy looks like one server, and a client library that reads `redis_mode:cluster` or
// `cluster_enabled:1` would go to the nodes themselves (bypassing the proxy and its follower).
// nullopt when there is nothing to change.
std::optional<std::string> as_proxy_info(std::string_view frame, const proxy_config& cfg) {
    if (frame.empty() || (frame[0] != '$' && frame[0] != '='))
        return std::nullopt;
    const auto crlf = frame.find("\r\n");
    if (crlf == std::string_view::npos || frame.size() < crlf + 4)
        return std::nullopt;
    std::string text(frame.substr(crlf + 2, frame.size() - crlf - 4));
    bool changed = false;
    for (const auto& [from, to] : {std::pair{std::string_view("redis_mode:cluster\r\n"),
                                             std::string_view("redis_mode:standalone\r\n")},
                                   std::pair{std::string_view("cluster_enabled:1\r\n"),
                                             std::string_view("cluster_enabled:0\r\n")}}) {
        if (const auto at = text.find(from); at != std::string::npos) {
            text.replace(at, from.size(), to);
            changed = true;
        }
    }
    constexpr std::string_view port_field = "\r\ntcp_port:";
    if (const auto at = text.find(port_field); at != std::string::npos) {
        const auto from = at + port_field.size();
        const auto end = text.find("\r\n", from);
        const auto own = std::to_string(cfg.listen_port);
        if (end != std::string::npos && text.compare(from, end - from, own) != 0) {
            text.replace(from, end - from, own);
            changed = true;
        }
    }
    if (!changed)
        return std::nullopt;
    std::string out(1, frame[0]);
    out += std::to_string(text.size());
    out += "\r\n";
    out += text;
    out += "\r\n";
    return out;
}

// EXEC's array with the replies of the INFO commands queued at `info_at` rewritten by
// as_proxy_info. nullopt when there is nothing to change (or EXEC did not run: an error, a
// null array after WATCH).
std::optional<std::string> with_proxy_info_in_exec(std::string_view frame,
                                                   const std::vector<std::uint32_t>& info_at,
                                                   const proxy_config& cfg) {
    const auto crlf = frame.find("\r\n");
    if (!frame.starts_with('*') || crlf == std::string_view::npos)
        return std::nullopt;
    std::string out(frame.substr(0, crlf + 2));
    std::size_t pos = crlf + 2;
    bool changed = false;
    auto next_info = info_at.begin();
    for (std::uint32_t i = 0; pos < frame.size(); ++i) {
        resp::frame_scanner scanner;
        const auto r = scanner.scan(frame.substr(pos));
        if (!r.complete || r.error)
            return std::nullopt;
        const auto element = frame.substr(pos, r.frame.length);
        pos += r.frame.length;
        std::optional<std::string> rewritten;
        if (next_info != info_at.end() && *next_info == i) {
            ++next_info;
            rewritten = as_proxy_info(element, cfg);
        }
        if (rewritten) {
            out += *rewritten;
            changed = true;
        } else {
            out += element;
        }
    }
    if (!changed)
        return std::nullopt;
    return out;
}

bool is_redirect(std::string_view frame) {
    return frame.starts_with("-MOVED ") || frame.starts_with("-ASK ");
}

}  // namespace

session::session(worker& w, socket_type socket)
    : w_(w),
      st_(w.shared()),
      socket_(std::move(socket)),
      id_(next_session_id++),
      parser_(limits_of(w.shared().cfg)),
      unauth_parser_(unauthenticated_limits()),
      last_activity_(std::chrono::steady_clock::now()) {
    authenticated_ = st_.cfg.users.empty();
    addr_ = socket_.peer_address();
    laddr_ = socket_.local_address();
}

session::~session() = default;

void session::start() {
    arm_idle_timer();
    do_read();
}

void session::arm_idle_timer() {
    if (st_.cfg.idle_timeout.count() == 0)
        return;
    if (!idle_timer_)
        idle_timer_ = std::make_unique<asio::steady_timer>(w_.ioc());
    // Fire when the client will have been idle for the whole timeout (not a full period later).
    const bool exempt = subscribed() || blocked_ || monitor_ || !slots_.empty() || output_due();
    const auto idle_for = std::chrono::steady_clock::now() - last_activity_;
    const auto left = exempt ? std::chrono::steady_clock::duration(st_.cfg.idle_timeout)
                             : st_.cfg.idle_timeout - idle_for;
    idle_timer_->expires_after(left > std::chrono::milliseconds(10)
                                   ? std::chrono::duration_cast<std::chrono::milliseconds>(left)
                                   : std::chrono::milliseconds(10));
    idle_timer_->async_wait([self = shared_from_this()](std::error_code ec) {
        if (ec || self->closed_)
            return;
        const auto idle = std::chrono::steady_clock::now() - self->last_activity_;
        // Like Redis: subscribers, blocked clients and MONITOR are not idle.
        // Nor is a client whose reply is still on its way out (a deferred write included).
        if (idle >= self->st_.cfg.idle_timeout && !self->subscribed() && !self->blocked_ &&
            !self->monitor_ && self->slots_.empty() && !self->output_due()) {
            self->close_now();
            return;
        }
        self->arm_idle_timer();
    });
}

void session::do_read() {
    if (reading_ || closed_ || closing_)
        return;
    const bool held = blocked_ || waiting_pause_ || slots_.size() > k_max_pipeline ||
                      out_.size() > st_.cfg.output_pause_bytes;
    if (held && in_.size() - in_start_ > k_held_input)
        return;  // backpressure: resumed by resume_processing()
    // Reads land in their own buffer: in_ may be compacted while a read is pending.
    if (read_buf_.size() < k_read_chunk)
        read_buf_.resize(k_read_chunk);
    reading_ = true;
    socket_.async_read_some(asio::buffer(read_buf_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                                self->reading_ = false;
                                if (ec) {
                                    self->close_now();
                                    return;
                                }
                                self->in_.append(self->read_buf_.data(), n);
                                self->read_at_ = std::chrono::steady_clock::now();
                                self->last_activity_ = self->read_at_;
                                self->process();
                                self->do_read();
                            });
}

void session::process() {
    // Replies can arrive synchronously from handle() (an upstream that is already closed fails
    // at once); the outer call keeps going instead of a nested one moving `in_` under it.
    if (processing_)
        return;
    processing_ = true;
    while (!closed_ && !closing_ && !blocked_ && !waiting_pause_ && in_start_ < in_.size()) {
        if (slots_.size() > k_max_pipeline || out_.size() > st_.cfg.output_pause_bytes)
            break;
        std::string_view input(in_.data() + in_start_, in_.size() - in_start_);
        // An AUTH ends a command: the next one starts in the other parser.
        auto r = (authenticated_ ? parser_ : unauth_parser_).parse(input, args_);
        if (r.error) {
            st_.protocol_errors->inc();
            std::string msg = "ERR Protocol error: ";
            // Redis's words for the limits before AUTH (at most 10 arguments of 16 KiB).
            if (!authenticated_ && r.error == resp::error::aggregate_too_large)
                msg += "unauthenticated multibulk length";
            else if (!authenticated_ && r.error == resp::error::bulk_too_large)
                msg += "unauthenticated bulk length";
            else if (!authenticated_ && r.error == resp::error::line_too_long)
                msg += "unauthenticated request too large (AUTH first)";
            else
                msg += r.reason.empty() ? std::string_view("invalid request") : r.reason;
            reply_error(msg);
            closing_ = true;
            processing_ = false;
            start_write();
            return;
        }
        if (!r.complete) {
            // Blank lines and empty arrays before the request being read go now: a client
            // sending only those would otherwise grow the buffer up to the query limit.
            if (const auto skipped = (authenticated_ ? parser_ : unauth_parser_).drop_skipped();
                skipped > 0) {
                in_start_ += skipped;
                input.remove_prefix(skipped);
            }
            if (input.size() > st_.cfg.max_query_buffer) {
                st_.protocol_errors->inc();
                reply_error("ERR Protocol error: query buffer limit exceeded");
                closing_ = true;
                processing_ = false;
                start_write();
                return;
            }
            break;
        }
        const std::string_view raw = r.is_inline ? std::string_view{} : input.substr(0, r.length);
        // handle() copies what it keeps; the bytes may go once it took the command.
        if (!args_.empty() && !handle(args_, raw))
            break;  // held (mode switch): parsed again when processing resumes
        in_start_ += r.length;
    }
    if (in_start_ == in_.size()) {
        in_.clear();
        in_start_ = 0;
        if (in_.capacity() > 4 * k_read_chunk)
            in_.shrink_to_fit();
    } else if (in_start_ > 0 && in_start_ >= in_.size() - in_start_) {
        in_.erase(0, in_start_);
        in_start_ = 0;
    }
    processing_ = false;
    start_write();
}

void session::resume_processing() {
    if (closed_)
        return;
    process();
    do_read();
}

// ---- replies in order ----

std::uint64_t session::alloc_slot(std::unique_ptr<slot_ctx> ctx) {
    // While processing input the command arrived with the read that brought it (one clock
    // read per read, not per command).
    const auto arrived = processing_ ? read_at_ : std::chrono::steady_clock::now();
    slots_.push_back(slot{false, {}, std::move(ctx), arrived, route_});
    return next_seq_++;
}

void session::complete(std::uint64_t seq, std::string_view bytes) {
    if (seq < head_seq_ || seq >= next_seq_)
        return;
    {
        // Latency as the client sees it, from the command's arrival to its reply being ready.
        const auto& s = slots_[seq - head_seq_];
        if (s.route != k_push_route) {
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                                upstream::reply_time() - s.started)
                                .count();
            w_.observe_latency(s.route, us > 0 ? static_cast<std::uint64_t>(us) : 0);
        }
    }
    if (seq == head_seq_) {
        out_.append(bytes);
        recycle_ctx(std::move(slots_.front().ctx));
        slots_.pop_front();
        ++head_seq_;
        while (!slots_.empty() && slots_.front().done) {
            out_.append(slots_.front().data);
            held_bytes_ -= slots_.front().data.size();
            recycle_ctx(std::move(slots_.front().ctx));
            slots_.pop_front();
            ++head_seq_;
        }
    } else {
        auto& s = slots_[seq - head_seq_];
        s.data.assign(bytes);
        s.done = true;
        held_bytes_ += bytes.size();
    }
    // A WAIT behind this reply may be due now (posted: this may run inside an upstream's
    // delivery or a failure, which sending must not re-enter).
    if (wait_ && !wait_->sent && head_seq_ == wait_->seq) [[unlikely]]
        asio::post(w_.ioc(), [self = shared_from_this()] { self->send_wait_when_due(); });
}

void session::reply(std::string_view bytes) {
    complete(alloc_slot(), bytes);
}

void session::push_out(std::string_view bytes) {
    // Pushes are not replies: they go out at once, ahead of replies still pending (a RESP3
    // subscriber's blocked BLPOP), as from Redis; only behind a subscription's or a cluster
    // MONITOR's confirmation (a message must not overtake it) or a push that waits for one.
    bool wait = monitor_confirming_;
    for (std::size_t i = 0; i < slots_.size() && !wait; ++i)
        wait = slots_[i].route == k_push_route ||
               slots_[i].route == static_cast<std::uint8_t>(route::subscribe);
    if (!wait) {
        out_.append(bytes);
        return;
    }
    const auto seq = alloc_slot();
    slots_.back().route = k_push_route;
    complete(seq, bytes);  // counted by the output limit (start_write) while held
}

void session::reply_error(std::string_view message) {
    std::string e;
    resp::append_error(e, message);
    reply(e);
}

void session::reply_ok() {
    reply("+OK\r\n");
}

void session::start_write() {
    if (closed_)
        return;
    // Checked on every call: a client that stopped reading keeps a write pending forever.
    check_output_limit();
    if (write_in_progress_ || closed_)
        return;
    if (out_.empty()) {
        if (closing_ && slots_.empty())
            close_now();
        return;
    }
    write_in_progress_ = true;
    writing_.swap(out_);
    out_.clear();
    socket_.async_write(asio::buffer(writing_),
                        [self = shared_from_this()](std::error_code ec, std::size_t) {
                            self->write_in_progress_ = false;
                            self->writing_.clear();
                            if (ec) {
                                self->close_now();
                                return;
                            }
                            // Like Redis: a client that takes its replies is not idle.
                            self->last_activity_ = std::chrono::steady_clock::now();
                            if (self->writing_.capacity() > (1U << 20))
                                self->writing_.shrink_to_fit();
                            self->start_write();
                            self->resume_processing();
                        });
}

void session::check_output_limit() {
    // Replies and messages held behind a reply still due (a subscriber blocked in BLPOP) count.
    const auto bytes = out_.size() + writing_.size() + held_bytes_;
    if ((subscribed() || monitor_) && bytes > st_.cfg.pubsub_output_limit) {
        st_.output_limit_disconnects->inc();
        obs::log().warn("proxy client_output_limit id={} bytes={}", id_, bytes);
        close_now();
    }
}

void session::close_gracefully() {
    if (closed_)
        return;
    closing_ = true;
    start_write();
}

void session::close_now() {
    if (closed_)
        return;
    closed_ = true;
    closing_ = true;
    socket_.close();
    if (idle_timer_)
        idle_timer_->cancel();
    if (pause_timer_)
        pause_timer_->cancel();
    if (blocked_)
        cancel_blocking();
    if (subscribed()) {
        auto& hub = w_.hub(pubsub_side_);
        hub.drop(this);
    }
    close_monitors();
    for (auto& u : std::exchange(retiring_, {}))
        u->close();
    // It holds state (MULTI, WATCH, TRACKING ...): never reused. Taken out first: close() fails
    // its waiters at once, which comes back here (on_failure).
    if (auto p = std::exchange(pinned_, nullptr))
        p->close();
    w_.session_closed(this);
}

// ---- upstream replies ----

void session::on_reply(std::uint64_t tag, std::string_view frame) {
    if (tag < head_seq_ || tag >= next_seq_)
        return;
    auto& s = slots_[tag - head_seq_];
    if (s.ctx && s.ctx->redirectable && !closed_ && is_redirect(frame)) {
        redirect_blocking(tag, *s.ctx);
        return;
    }
    if (pinned_node_ && is_redirect(frame)) {
        // A node's address is not for clients (they see one standalone server): the pinned
        // node does not serve that key (another slot's key, or the slot moved).
        w_.topology_changed(pinned_side_);
        frame =
            "-ERR proxy: this key is served by another Redis Cluster node than the one "
            "this connection is pinned to (WATCH); use keys of one slot (hash tags)\r\n";
    }
    std::optional<std::string> filtered;
    if (s.ctx && s.ctx->kind == ctx_kind::config_get &&
        (filtered = as_proxy_config(frame, proto_, st_.cfg)))
        frame = *filtered;
    if (s.ctx && s.ctx->kind == ctx_kind::info && (filtered = as_proxy_info(frame, st_.cfg)))
        frame = *filtered;
    if (s.ctx && s.ctx->kind == ctx_kind::exec && !s.ctx->info_at.empty() &&
        (filtered = with_proxy_info_in_exec(frame, s.ctx->info_at, st_.cfg)))
        frame = *filtered;
    if (wait_ && wait_->seq == tag) {
        if (!wait_->bump_error.empty() && !is_error_frame(frame)) {
            filtered =
                "-ERR proxy: cannot count the replicas that have this connection's writes: the "
                "serving backend refused the proxy's PUBLISH before the WAIT (" +
                wait_->bump_error + ")\r\n";
            frame = *filtered;
        }
        wait_.reset();
    }
    if (s.ctx)
        after_reply(*s.ctx, frame);
    if (closed_)
        return;
    complete(tag, frame);
    defer_write();
    if (!retiring_.empty())
        close_retired();
}

void session::close_retired() {
    // A former pinned connection is closed once its last reply came (Redis then discards its
    // MULTI / WATCH state).
    std::vector<std::shared_ptr<upstream>> done;
    std::erase_if(retiring_, [&](std::shared_ptr<upstream>& u) {
        if (u->pending() > 0 && u->usable())
            return false;
        done.push_back(std::move(u));
        return true;
    });
    for (auto& u : done)
        u->close();
}

void session::defer_write() {
    // Written once the upstream's whole read was delivered: a pipeline's replies (or the
    // messages of one read) in one write.
    if (!flush_deferred_) {
        flush_deferred_ = true;
        w_.defer_flush(shared_from_this());
    }
}

void session::flush_deferred() {
    flush_deferred_ = false;
    if (closed_)
        return;
    start_write();
    if (!blocked_ && !waiting_pause_)
        resume_processing();
}

void session::on_failure(std::uint64_t tag, bool written) {
    if (tag < head_seq_ || tag >= next_seq_)
        return;
    auto& s = slots_[tag - head_seq_];
    st_.upstream_errors->inc();
    if (s.ctx) {
        auto& c = *s.ctx;
        if (c.kind == ctx_kind::write || c.kind == ctx_kind::exec || c.kind == ctx_kind::blocking) {
            if (c.followed && c.kind == ctx_kind::blocking)
                follow_blocking_abandon(st_, c.serving, c.keys, written);
            else if (c.followed)
                follow_abandon(st_, c.serving, c.keys, c.global, written);
            st_.writes_in_flight.fetch_sub(1, std::memory_order_acq_rel);
        }
        if (c.kind == ctx_kind::blocking || c.kind == ctx_kind::wait) {
            blocked_ = false;
            blocking_conn_.reset();
            blocking_node_.reset();
        }
    }
    if (wait_ && wait_->seq == tag)
        wait_.reset();
    // The pinned connection is gone with its state (MULTI, WATCH, SELECT n ...): as for a
    // client of Redis whose connection broke, what this client sent after it must not run
    // without it (a write WATCH guarded, the rest of a transaction, in the wrong database).
    // Its pending replies are written, then it is closed.
    bool state_lost = false;
    if (pinned_ && !pinned_->usable()) {
        state_lost = in_multi_ || watching_ || sticky_pin_ || monitor_;
        pinned_.reset();
        pinned_node_.reset();
        close_monitors();
        in_multi_ = watching_ = sticky_pin_ = monitor_ = false;
    }
    if (closed_)
        return;
    if (upstream::failing_on_timeout())
        complete(tag, written ? "-ERR proxy: the serving backend did not answer in time; the "
                                "command may have run\r\n"
                              : "-ERR proxy: the serving backend did not answer in time\r\n");
    else
        complete(tag, written ? "-ERR proxy: connection to the serving backend lost; the command "
                                "may have run\r\n"
                              : "-ERR proxy: serving backend unavailable\r\n");
    if (state_lost) {
        st_.pinned_state_lost->inc();
        obs::log().warn(
            "proxy pinned_connection_lost id={} (the client is closed: its MULTI, "
            "WATCH or SELECT state is gone)",
            id_);
        close_gracefully();
        return;
    }
    start_write();
    resume_processing();
}

void session::after_reply(slot_ctx& c, std::string_view frame) {
    switch (c.kind) {
        case ctx_kind::none:
        case ctx_kind::config_get:  // its reply was filtered in on_reply
        case ctx_kind::info:
            break;
        case ctx_kind::write:
            follow_reply(st_, c.serving, c.request, c.keys, c.global, c.verbatim, frame, proto_,
                         c.merge);
            st_.writes_in_flight.fetch_sub(1, std::memory_order_acq_rel);
            break;
        case ctx_kind::read_shadow:
            if (!is_error_frame(frame))
                shadow_read(st_, c.serving, std::move(c.args), frame, proto_);
            break;
        case ctx_kind::wait:
            end_blocking();
            break;
        case ctx_kind::blocking: {
            end_blocking();
            follow_blocking_reply(st_, c.serving, c.request, c.keys, c.gens, frame);
            if (closed_) {
                // The client left while blocked and the pop happened anyway: put it back. The
                // put-back counts in flight before the pop stops counting, so a switch's drain
                // never sees zero in between (it would flip, and the put-back go to the old side).
                push_back_popped(w_, c.serving, c.args, frame, proto_);
            }
            st_.writes_in_flight.fetch_sub(1, std::memory_order_acq_rel);
            break;
        }
        case ctx_kind::exec:
            if (c.followed)
                follow_transaction(st_, c.serving, c.queued, c.keys, c.global, frame, proto_);
            st_.writes_in_flight.fetch_sub(1, std::memory_order_acq_rel);
            break;
        case ctx_kind::discard:
        case ctx_kind::pin_end:
            release_pin_if_unused();
            break;
    }
}

// ---- dispatch ----

// The checks of session::handle for commands it treats by name (never for a plain command):
// true when the command was refused and answered; `filter` is set for CONFIG GET and INFO.
bool session::refused_by_name(std::span<const std::string_view> args, ctx_kind& filter) {
    const auto name = args[0];
    // The backend's credentials stay behind the proxy: CONFIG SET of them is refused (the
    // proxy's own connections use them) and CONFIG GET leaves them out (see on_reply). Inside
    // MULTI the reply would come back unfiltered in EXEC's array: refused there.
    const bool config_get = iequals(name, "config") && args.size() > 2 && iequals(args[1], "get");
    if (iequals(name, "config") && args.size() > 2) {
        std::string refused;
        if (config_get && in_multi_)
            refused = "ERR proxy: CONFIG GET inside MULTI is not supported through the proxy";
        for (std::size_t i = 2; iequals(args[1], "set") && i < args.size(); i += 2)
            if (is_secret_parameter(args[i]))
                refused = "ERR proxy: CONFIG SET " + lower_copy(args[i]) +
                          " is not allowed through the proxy (the backend's credentials stay "
                          "behind it)";
        if (!refused.empty()) {
            if (in_multi_)
                multi_failed_ = true;  // EXEC aborts, as after a command Redis refuses
            reply_error(refused);
            return true;
        }
    }
    // A command that acts on the backend server as a whole (SHUTDOWN, CLIENT PAUSE, DEBUG
    // SLEEP, REPLICAOF ...) would stop, pause or re-point the server every other client and the
    // proxy's own connections use: only users named by --admin-user may send it through.
    if (const auto what = backend_wide_command(args); !what.empty() && !named_admin())
        [[unlikely]] {
        if (in_multi_)
            multi_failed_ = true;  // EXEC aborts, as after a command Redis refuses
        reply_error("ERR proxy: '" + what +
                    "' acts on the backend server behind the proxy, which other clients and the "
                    "proxy's own connections use; refused (run it on the backend directly, or "
                    "as a user named by --admin-user)");
        return true;
    }
    // To its clients the proxy is one standalone server, whatever serves behind it: CLUSTER
    // SLOTS / NODES / SHARDS from a cluster would hand clients the nodes' addresses, and they
    // would bypass the proxy. These and READONLY / READWRITE / ASKING are answered as a Redis
    // without cluster support answers them.
    // Inside MULTI on a standalone backend they are queued there and answered the same way in
    // EXEC's array, as by Redis; inside MULTI on a cluster node they abort the transaction.
    const bool cluster_txn = in_multi_ && (cluster_multi_ || pinned_node_);
    if ((iequals(name, "cluster") || iequals(name, "readonly") || iequals(name, "readwrite") ||
         iequals(name, "asking")) &&
        (!in_multi_ || cluster_txn)) [[unlikely]] {
        if (in_multi_)
            multi_failed_ = true;
        // Redis checks the arity first (CLUSTER takes a subcommand, the others nothing).
        const bool arity_ok = iequals(name, "cluster") ? args.size() >= 2 : args.size() == 1;
        reply_error(arity_ok ? std::string("ERR This instance has cluster support disabled")
                             : wrong_args(name));
        return true;
    }
    const bool info = iequals(name, "info");
    // EXEC's array would carry a cluster node's INFO unrewritten (see as_proxy_info).
    if (info && cluster_txn) [[unlikely]] {
        multi_failed_ = true;
        reply_error(
            "ERR proxy: INFO inside MULTI is not supported through the proxy in front of a "
            "Redis Cluster; the transaction is aborted");
        return true;
    }
    filter = config_get ? ctx_kind::config_get : (info ? ctx_kind::info : ctx_kind::none);
    // PROXY acts on the proxy at once: inside a transaction it would run before EXEC (or
    // despite DISCARD). Refused, and the transaction aborts like after a command Redis refuses.
    if (in_multi_ && iequals(name, "proxy")) {
        multi_failed_ = true;
        reply_error("ERR proxy: PROXY is not allowed inside MULTI; the transaction is aborted");
        return true;
    }
    // The CLIENT commands about the proxy's clients (LIST, KILL, INFO, ID, UNBLOCK) and the
    // connection's own state the proxy keeps (HELLO, AUTH, CLIENT SETNAME/GETNAME/SETINFO/REPLY):
    // queued on the pinned connection they would run on the backend's connection instead (its
    // id, its name, unblocking other clients of the proxy, CLIENT REPLY OFF silencing it).
    // CLIENT TRACKING/CACHING/NO-EVICT/NO-TOUCH ... stay: their state is that connection's.
    if (in_multi_ && (iequals(name, "hello") || iequals(name, "auth") ||
                      (iequals(name, "client") && args.size() > 1 &&
                       any_of(args[1], {"list", "kill", "info", "id", "unblock", "setname",
                                        "getname", "setinfo", "reply"})))) {
        multi_failed_ = true;
        reply_error("ERR proxy: " + lower_copy(name) +
                    (args.size() > 1 && iequals(name, "client") ? "|" + lower_copy(args[1]) : "") +
                    " is not allowed inside MULTI; the transaction is aborted");
        return true;
    }
    return false;
}

bool session::handle(std::span<const std::string_view> args, std::string_view raw) {
    const auto c = (*st_.classes)(args);
    const auto name = args[0];

    // The commands Redis flags no-auth. Redis names an unknown command or a wrong argument
    // count first (PROXY is the proxy's own).
    if (!authenticated_ && !iequals(name, "auth") && !iequals(name, "hello") &&
        !iequals(name, "quit") && !iequals(name, "reset")) {
        const auto refusal = iequals(name, "proxy") ? std::nullopt : redis_refusal(st_.table, args);
        reply_error(refusal ? *refusal : std::string("NOAUTH Authentication required."));
        return true;
    }
    if (monitor_ && !iequals(name, "quit") && !iequals(name, "reset")) {
        // A MONITOR connection is a replica to Redis 7.0: keyspace commands are refused; the
        // others go unanswered here (the stream is all the connection carries).
        if (c.kind == route::read || c.kind == route::write || c.kind == route::blocking)
            reply_error("ERR Replica can't interact with the keyspace");
        return true;
    }
    if (subscribed() && proto_ == 2 && c.kind != route::subscribe && !iequals(name, "ping") &&
        !iequals(name, "quit") && !iequals(name, "reset")) {
        // Redis names the full command ("client|id").
        reply_error("ERR Can't execute '" +
                    (c.spec != nullptr ? lower_copy(c.spec->name) : lower_copy(name)) +
                    "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
                    "allowed in this context");
        return true;
    }
    // A command held by a mode switch comes back here every millisecond: counted once.
    if (!std::exchange(held_, false))
        w_.count_command(c);
    route_ = static_cast<std::uint8_t>(c.kind);
    last_cmd_ = c.spec != nullptr ? std::string_view(c.spec->name) : c.label;

    // A reply rewritten for the proxy's clients on its way back (on_reply).
    ctx_kind filter = ctx_kind::none;
    // Commands handled by name (CONFIG, CLUSTER, INFO, PROXY, CLIENT and those on the whole
    // backend server); the classifier marks every other known command plain.
    if (!c.plain && refused_by_name(args, filter))
        return true;
    // Inside MULTI everything goes to the pinned connection: Redis validates and queues it
    // (PING and ECHO too: their replies belong in EXEC's array). The follower gets every queued
    // command so that EXEC's reply elements line up with them.
    if (in_multi_ && cluster_multi_ && c.kind != route::transaction && !iequals(name, "quit") &&
        !iequals(name, "reset") && !iequals(name, "proxy"))
        return queue_cluster_command(args);
    if (in_multi_ && c.kind != route::transaction && c.kind != route::subscribe &&
        !iequals(name, "quit") && !iequals(name, "reset") && !iequals(name, "proxy")) {
        if (iequals(name, "select") && args.size() == 2 && !st_.backend_cfg(pinned_side_).cluster) {
            // Runs at EXEC. While writes are replayed, the follower replays into its configured
            // database only: the transaction's writes after it would land in the wrong one.
            const auto db = to_int(args[1]);
            const int configured = st_.backend_cfg(pinned_side_).connection.database;
            if (db && *db != configured) {
                if (multi_replay_) {
                    multi_failed_ = true;
                    reply_error(
                        "ERR proxy: SELECT of another database is not supported while writes "
                        "are replayed (configure the backends' databases); the transaction is "
                        "aborted");
                    return true;
                }
                other_db_ = true;  // (also if EXEC does not run: refuses more, never less)
            }
        }
        if (multi_record_)
            queued_.push_back(copy_args(args));
        // EXEC's array carries this INFO's reply: rewritten there as on its own (on_reply).
        if (filter == ctx_kind::info)
            multi_info_at_.push_back(multi_sent_);
        ++multi_sent_;
        // Connection state changed at EXEC (database, protocol, user, tracking ...): this
        // connection must not go back to the pool.
        if ((c.kind == route::local && !iequals(name, "ping") && !iequals(name, "echo")) ||
            c.kind == route::pinning || iequals(name, "client"))
            sticky_pin_ = true;
        forward(*pinned_, args, raw, nullptr);
        return true;
    }

    // A mode switch that moves the serving side also holds new transactions, pins and first
    // subscriptions: they would otherwise start on the side that is about to stop serving, after
    // the switch closed the clients holding such state there (a subscriber that reconnected at
    // once stayed on the old side for good).
    if (((c.kind == route::transaction || c.kind == route::pinning) && !pinned_) ||
        (c.kind == route::subscribe && !subscribed())) {
        if (st_.writes_paused.load(std::memory_order_acquire))
            return hold_briefly();
    }

    // A transaction, a pin (below) or a blocking command (below) starts on a connection of its
    // own: the commands pipelined before it must have run first (a MULTI ... DEL after SETs
    // of the same key left the key; a BLMPOP after RPUSHes popped part of the list).
    if (c.kind == route::transaction && !pinned_ && unanswered_elsewhere(nullptr))
        return hold_briefly();

    switch (c.kind) {
        case route::local:
            handle_local(c, args);
            return true;
        case route::transaction:
            handle_transaction(c, args, raw);
            return true;
        case route::subscribe:
            handle_subscribe(args);
            return true;
        default:
            break;
    }

    // The pause before the mode: a switch stores the new mode before it lifts the pause, so a
    // write that saw no pause reads the mode the drain waited for (the switch's barrier on
    // every worker keeps this handler whole either way).
    if ((c.kind == route::write || c.kind == route::blocking) &&
        st_.writes_paused.load(std::memory_order_acquire))
        return hold_briefly();
    const auto plan = plan_of(st_.current.load(std::memory_order_acquire));
    const side serving = pinned_ ? pinned_side_ : plan.serving;
    // SELECTed before writes began to be replayed: the follower replays into its configured
    // database only, so this connection's writes would land in the wrong database there.
    if (other_db_ && (c.kind == route::write || c.kind == route::blocking) &&
        following(st_, serving)) [[unlikely]] {
        reply_error(other_db_error(serving));
        return true;
    }
    // The follower copies a key this write touches under a fence (a key written without a
    // pause, dirty for a while): the write waits for the copy's read, a millisecond or so.
    if (c.kind == route::write && follow_fenced(st_, serving, c, args)) [[unlikely]] {
        if (!std::exchange(fence_waiting_, true))
            st_.fence_held_writes->inc();
        return hold_briefly();
    }
    fence_waiting_ = false;

    if (c.kind == route::pinning) {
        // REDIRECT names the client that gets the invalidations by its id: the proxy's id to the
        // client, which the backend would match against its own connections (one of the
        // proxy's), so the client's cache would never be invalidated.
        bool redirect = false;
        if (args.size() > 2 && iequals(name, "client") && iequals(args[1], "tracking"))
            for (std::size_t i = 3; i < args.size(); ++i) {
                if (iequals(args[i], "prefix"))
                    ++i;  // its value may be any word
                else if (iequals(args[i], "redirect"))
                    redirect = true;
            }
        if (redirect) {
            reply_error(
                "ERR proxy: CLIENT TRACKING REDIRECT is not supported through the proxy (the id "
                "would name a backend connection); use RESP3 (HELLO 3) tracking on the same "
                "connection");
            return true;
        }
        if (pinned_ && pinned_node_) {
            // Pinned to one cluster node (WATCH): state that spans the keyspace (TRACKING,
            // MONITOR ...) would hold on that node only.
            reply_error("ERR proxy: " + lower_copy(name) +
                        " is not supported while this connection is pinned to one Redis Cluster "
                        "node (WATCH); run it before WATCH or after EXEC/UNWATCH");
            return true;
        }
        // MONITOR shows every client's commands with their values: like CLIENT LIST, for the
        // users named by --admin-user when there are some.
        if (iequals(name, "monitor") && !is_admin()) {
            reply_error(
                "NOPERM this user has no permissions to run the 'monitor' command (see "
                "--admin-user)");
            return true;
        }
        if (!pinned_ && iequals(name, "monitor") && st_.backend_cfg(serving).cluster) {
            monitor_cluster(serving, args);
            return true;
        }
        if (!pinned_ && unanswered_elsewhere(nullptr))
            return hold_briefly();
        if (!pinned_ && !acquire_pin(serving))
            return true;
        sticky_pin_ = true;
        if (iequals(name, "monitor"))
            monitor_ = true;  // its stream arrives through the pinned connection's push handler
        forward(*pinned_, args, raw, nullptr);
        return true;
    }

    if (c.kind == route::blocking) {
        if (!pinned_ && unanswered_elsewhere(nullptr))
            return hold_briefly();
        handle_blocking(c, serving, args, raw);
        return true;
    }

    // A keyless command that a cluster node answers for its own slots only (DBSIZE, KEYS, SCAN,
    // FLUSHALL, SCRIPT LOAD ...) runs on every master, pinned or not: one node's answer would
    // be a part of the keyspace's (session_masters.cpp).
    if (st_.backend_cfg(serving).cluster) {
        auto how = every_master_of(args);
        if (how == every_master::scan && args.size() < 2)
            how = every_master::no;  // the node's arity error
        if (how != every_master::no) {
            std::unique_ptr<slot_ctx> ctx;
            if (c.kind == route::write)
                ctx = write_ctx(c, serving, args, raw, id_, false);
            const auto seq = alloc_slot(std::move(ctx));
            if (how == every_master::scan)
                scan_masters(seq, serving, copy_args(args));
            else
                exec_on_masters(seq, serving, copy_args(args), how);
            return true;
        }
    }

    // A cluster session pinned to a node (WATCH) sends the commands of that node's slots, and
    // keyless ones (PUBLISH ...), on the pinned connection, in order with the WATCH; the cluster
    // client routes the others (their execution is not ordered with the pin's).
    const bool on_pinned_node = [&] {
        if (!pinned_ || !pinned_node_)
            return false;
        const auto slot = command_slot(c, args);
        if (slot == k_no_keys)
            return true;
        return slot >= 0 && w_.master_of(serving, static_cast<std::uint16_t>(slot)) == pinned_node_;
    }();
    if (st_.backend_cfg(serving).cluster && !on_pinned_node) {
        std::unique_ptr<slot_ctx> ctx;
        if (c.kind == route::write) {
            ctx = write_ctx(c, serving, args, raw, id_, false);
        } else if (filter != ctx_kind::none) {
            ctx = take_ctx();
            ctx->kind = filter;
        }
        forward_decoded(serving, args, std::move(ctx));
        return true;
    }

    upstream* u = pinned_ ? pinned_.get() : w_.shared_upstream_ptr(serving, proto_);
    if (u == nullptr) {
        reply_error("ERR proxy: serving backend unavailable");
        return true;
    }
    // Back from a pin or a blocking connection, or onto the other protocol's connection after
    // HELLO: the last command on the old one first.
    if (unanswered_elsewhere(u)) [[unlikely]]
        return hold_briefly();
    std::unique_ptr<slot_ctx> ctx;
    if (c.kind == route::write) {
        ctx = write_ctx(c, serving, args, raw, reinterpret_cast<std::uintptr_t>(u), false);
    } else if (filter != ctx_kind::none) {
        ctx = take_ctx();
        ctx->kind = filter;
    } else if (c.kind == route::read && plan.shadow && shadow_wanted(st_, c, args)) {
        ctx = std::make_unique<slot_ctx>();
        ctx->kind = ctx_kind::read_shadow;
        ctx->serving = serving;
        ctx->args = copy_args(args);
    }
    forward(*u, args, raw, std::move(ctx));
    return true;
}

bool session::hold_briefly() {
    // A mode switch is moving the serving side, or the follower fences the command's keys:
    // hold this command and what follows it, and handle it again in a millisecond.
    waiting_pause_ = true;
    held_ = true;
    if (!pause_timer_)
        pause_timer_ = std::make_unique<asio::steady_timer>(w_.ioc());
    pause_timer_->expires_after(std::chrono::milliseconds(1));
    pause_timer_->async_wait([self = shared_from_this()](std::error_code ec) {
        if (ec || self->closed_)
            return;
        self->waiting_pause_ = false;
        self->resume_processing();
    });
    return false;
}

std::unique_ptr<session::slot_ctx> session::write_ctx(const command_class& c, side serving,
                                                      std::span<const std::string_view> args,
                                                      std::string_view raw, std::uint64_t origin,
                                                      bool always) {
    // Without a follower a plain write needs no context at all (the common primary-only path).
    if (!always && !following(st_, serving))
        return nullptr;
    auto ctx = take_ctx();
    bool verbatim = false;
    merge_hint merge;
    // A blocking read (XREAD BLOCK) writes nothing: begun, its keys would stay in flight while
    // it blocks, and every other client's write to them would turn them dirty (a copy of the
    // whole stream per XADD).
    // A blocking write (BLPOP ...) is not counted in flight while it waits: its keys stay
    // copyable (follow_begin_blocking).
    const bool follow =
        is_replayable_write(c.spec) &&
        (c.kind == route::blocking
             ? follow_begin_blocking(st_, serving, c, args, ctx->keys, origin, ctx->gens)
             : follow_begin(st_, serving, c, args, ctx->keys, origin, &verbatim, &merge));
    if (!follow && !always) {
        recycle_ctx(std::move(ctx));
        return nullptr;
    }
    ctx->kind = ctx_kind::write;
    ctx->serving = serving;
    if (follow) {
        ctx->followed = true;
        ctx->global = ctx->keys.empty();
        ctx->verbatim = verbatim;
        ctx->merge = merge;
        if (raw.empty())
            resp::append_command(ctx->request, args);
        else
            ctx->request.assign(raw);
    }
    st_.writes_in_flight.fetch_add(1, std::memory_order_acq_rel);
    return ctx;
}

std::string session::other_db_error(side serving) const {
    return "ERR proxy: this connection selected database " + std::to_string(db_) +
           ", and writes are now replayed, into the configured database only; SELECT " +
           std::to_string(st_.backend_cfg(serving).connection.database) +
           " (or reconnect) to write";
}

std::unique_ptr<session::slot_ctx> session::take_ctx() {
    // Reused contexts keep their vectors' and request's capacity: a followed write allocates
    // nothing here in the steady state.
    if (ctx_pool_.empty())
        return std::make_unique<slot_ctx>();
    auto ctx = std::move(ctx_pool_.back());
    ctx_pool_.pop_back();
    return ctx;
}

void session::recycle_ctx(std::unique_ptr<slot_ctx> ctx) {
    constexpr std::size_t k_pool = 64;
    constexpr std::size_t k_keep_bytes = 16 * 1024;
    if (!ctx || ctx_pool_.size() >= k_pool || ctx->request.capacity() > k_keep_bytes)
        return;
    ctx->kind = ctx_kind::none;
    ctx->serving = side::primary;
    ctx->args.clear();
    ctx->request.clear();
    recycle_keys(ctx->keys);
    ctx->followed = ctx->global = ctx->verbatim = ctx->redirectable = false;
    ctx->merge = {};
    ctx->queued.clear();
    ctx->gens.clear();
    ctx->info_at.clear();
    ctx->sent = {};
    ctx->cls = nullptr;
    ctx->c = {};
    ctx_pool_.push_back(std::move(ctx));
}

void session::forward(upstream& u, std::span<const std::string_view> args, std::string_view raw,
                      std::unique_ptr<slot_ctx> ctx, std::chrono::milliseconds patience) {
    const auto seq = alloc_slot(std::move(ctx));
    last_conn_ = &u;
    last_conn_seq_ = seq;
    if (!raw.empty()) {
        u.send(raw, *this, seq, patience);
    } else {
        std::string encoded;
        resp::append_command(encoded, args);
        u.send(encoded, *this, seq, patience);
    }
}

namespace {
// How long a blocking command's reply may take: its own timeout and a grace period for the
// server's answer (a block of 0 waits forever).
std::chrono::milliseconds blocking_patience(std::span<const std::string_view> args,
                                            std::chrono::milliseconds backend_timeout) {
    const auto t = client::blocking_time(args);
    if (!t.duration)
        return upstream::never_times_out;
    return *t.duration + std::max(backend_timeout, std::chrono::milliseconds(1));
}
}  // namespace

void session::handle_blocking(const command_class& c, side serving,
                              std::span<const std::string_view> args, std::string_view raw) {
    if (iequals(args[0], "wait") || iequals(args[0], "waitaof"))
        return handle_wait(c, serving, args, raw);
    std::shared_ptr<upstream> conn;
    std::optional<cluster::node_address> node;
    const bool cluster = st_.backend_cfg(serving).cluster;
    if (cluster) {
        // On the master of the keys' slot, raw, so that a client that leaves can be unblocked
        // there (CLIENT UNBLOCK needs the node and the connection's id).
        const auto slot = command_slot(c, args);
        if (slot == k_cross_slot)
            return reply_error("CROSSSLOT Keys in request don't hash to the same slot");
        if (slot >= 0)
            node = w_.master_of(serving, static_cast<std::uint16_t>(slot));
        if (node && pinned_ && pinned_node_ == node)
            conn = pinned_;
        else if (node)
            conn = w_.dedicated(serving, proto_, &*node);
    } else {
        conn = pinned_ ? pinned_ : w_.dedicated(serving, proto_);
        if (!conn)
            return reply_error("ERR proxy: serving backend unavailable");
    }
    auto ctx = write_ctx(c, serving, args, raw,
                         conn ? reinterpret_cast<std::uintptr_t>(conn.get()) : id_, true);
    ctx->kind = ctx_kind::blocking;
    ctx->args = copy_args(args);  // to put a popped value back if the client leaves
    blocking_side_ = serving;
    blocked_ = true;
    if (!conn) {
        // A keyless command (WAIT) or no slot map yet: the cluster client blocks on a connection
        // of its own, and a client that leaves meanwhile is not cancelled upstream.
        forward_decoded(serving, args, std::move(ctx));
        return;
    }
    ctx->redirectable = cluster;
    blocking_conn_ = std::move(conn);
    blocking_node_ = std::move(node);
    forward(*blocking_conn_, args, raw, std::move(ctx),
            blocking_patience(args, st_.backend_cfg(serving).connection.command_timeout));
}

void session::end_blocking() {
    blocked_ = false;
    if (blocking_conn_) {
        // A dedicated connection returns to the pool; a pinned one stays.
        if (blocking_conn_ != pinned_)
            w_.release(std::move(blocking_conn_), blocking_side_, true,
                       blocking_node_ ? &*blocking_node_ : nullptr);
        blocking_conn_.reset();
        blocking_node_.reset();
    }
}

void session::handle_wait(const command_class& c, side serving,
                          std::span<const std::string_view> args, std::string_view raw) {
    if (st_.backend_cfg(serving).cluster)
        return reply_error("ERR proxy: " + lower_copy(args[0]) +
                           " is not supported in front of a Redis Cluster: this connection's "
                           "writes went to many masters, and one master's replicas cannot vouch "
                           "for them");
    auto conn = pinned_ ? pinned_ : w_.dedicated(serving, proto_);
    if (!conn)
        return reply_error("ERR proxy: serving backend unavailable");
    (void)c;
    // Not a write: not followed (a keyless write would hold the follower's whole keyspace in
    // flight while it blocks) and not counted in writes_in_flight (a WAIT 0 would hold mode
    // switches).
    auto ctx = take_ctx();
    ctx->kind = ctx_kind::wait;
    ctx->serving = serving;
    blocking_side_ = serving;
    blocked_ = true;
    blocking_conn_ = std::move(conn);
    blocking_node_.reset();
    pending_wait w;
    if (raw.empty())
        resp::append_command(w.request, args);
    else
        w.request.assign(raw);
    w.patience = blocking_patience(args, st_.backend_cfg(serving).connection.command_timeout);
    w.seq = alloc_slot(std::move(ctx));
    wait_ = std::move(w);
    send_wait_when_due();
}

void session::send_wait_when_due() {
    // Due once every earlier command of this client was answered: its writes are on the server.
    if (!wait_ || wait_->sent || closed_ || head_seq_ != wait_->seq)
        return;
    if (!blocked_ || !blocking_conn_) {  // failed meanwhile
        wait_.reset();
        return;
    }
    wait_->sent = true;
    std::string bump;
    resp::append_command(bump, {"PUBLISH", "__respite:wait", ""});
    blocking_conn_->send(bump,
                         std::make_shared<callback_sink>(
                             [self = shared_from_this(), seq = wait_->seq](std::string_view reply) {
                                 if (reply.empty() || (reply[0] != '-' && reply[0] != '!') ||
                                     !self->wait_ || self->wait_->seq != seq)
                                     return;
                                 // "-TEXT\r\n", or RESP3's "!<length>\r\nTEXT\r\n".
                                 auto text = reply.substr(1);
                                 if (reply[0] == '!')
                                     text = text.substr(std::min(text.size(), text.find('\n') + 1));
                                 self->wait_->bump_error.assign(
                                     text.substr(0, std::min<std::size_t>(text.find('\r'), 200)));
                             }),
                         0);
    blocking_conn_->send(wait_->request, *this, wait_->seq, wait_->patience);
}

void session::redirect_blocking(std::uint64_t seq, slot_ctx& ctx) {
    // The slot moved since the map was read: the command did not run there. The cluster client
    // follows the redirect; the client gets that answer in this command's place.
    ctx.redirectable = false;
    w_.topology_changed(blocking_side_);
    if (blocking_conn_ && blocking_conn_ != pinned_)
        w_.release(std::move(blocking_conn_), blocking_side_, true,
                   blocking_node_ ? &*blocking_node_ : nullptr);
    blocking_conn_.reset();
    blocking_node_.reset();
    const std::vector<std::string_view> views(ctx.args.begin(), ctx.args.end());
    exec_decoded(seq, blocking_side_, views);
}

void session::monitor_cluster(side s, std::span<const std::string_view> args) {
    // Redis Cluster has no cluster-wide MONITOR: every master streams its own commands, and the
    // lines are merged here in arrival order. The client's +OK waits for every master's, so
    // that a command sent after it is seen wherever it runs.
    auto nodes = w_.masters(s);
    if (nodes.empty())
        return reply_error("ERR proxy: serving backend unavailable");
    struct confirmations {
        std::size_t left = 0;
        std::string reply = "+OK\r\n";  // or the first error
    };
    auto state = std::make_shared<confirmations>();
    state->left = nodes.size();
    const auto seq = alloc_slot();
    const auto generation = monitor_gen_;
    auto confirmed = [weak = weak_from_this(), seq, state, generation](std::string_view frame) {
        if (frame.starts_with("-") && state->reply.starts_with("+"))
            state->reply.assign(frame);
        if (--state->left > 0)
            return;
        auto self = weak.lock();
        if (!self || self->closed_)
            return;
        self->monitor_confirming_ = false;
        // Still this MONITOR (not ended by RESET, nor replaced by a later one): a refusal ends it.
        if (!state->reply.starts_with("+") && self->monitor_gen_ == generation) {
            // A master refused or is unreachable: no partial MONITOR.
            self->close_monitors();
            self->monitor_ = false;
        }
        self->complete(seq, state->reply);
        self->start_write();
    };
    monitor_side_ = s;
    monitor_cmd_.clear();
    resp::append_command(monitor_cmd_, args);
    monitor_confirming_ = true;
    for (const auto& node : nodes)
        add_monitor(node, confirmed);
    monitor_ = true;
    if (!monitor_timer_)
        monitor_timer_ = std::make_unique<asio::steady_timer>(w_.ioc());
    follow_monitored_masters();
}

void session::add_monitor(const cluster::node_address& node,
                          std::function<void(std::string_view)> confirmed) {
    auto u = w_.dedicated(monitor_side_, proto_, &node);
    u->set_push_handler([weak = weak_from_this()](std::string_view frame) {
        if (auto self = weak.lock(); self && !self->closed_) {
            self->push_out(frame);
            self->defer_write();  // the lines of one read in one write
        }
    });
    u->send(monitor_cmd_, std::make_shared<callback_sink>(std::move(confirmed)), 0);
    monitors_.push_back({node, std::move(u)});
}

void session::follow_monitored_masters() {
    const auto generation = monitor_gen_;
    monitor_timer_->expires_after(std::chrono::seconds(1));
    monitor_timer_->async_wait([weak = weak_from_this(), generation](std::error_code ec) {
        const auto self = weak.lock();
        if (ec || !self || self->closed_ || !self->monitor_ || self->monitor_gen_ != generation)
            return;
        const auto masters = self->w_.masters(self->monitor_side_);
        if (!masters.empty()) {
            // A node that is no longer a master would stream its master's commands again (a
            // replica's MONITOR shows what it replicates); a lost link is opened again.
            std::vector<std::shared_ptr<upstream>> gone;
            std::erase_if(self->monitors_, [&](monitor_link& l) {
                const bool keep = l.conn->usable() && std::find(masters.begin(), masters.end(),
                                                                l.node) != masters.end();
                if (!keep) {
                    obs::log().info("proxy monitor_link_closed node={} reason=\"{}\"",
                                    l.node.to_string(),
                                    l.conn->usable() ? "no longer a master" : "connection lost");
                    gone.push_back(std::move(l.conn));
                }
                return !keep;
            });
            for (auto& u : gone)
                u->close();  // a MONITOR connection is never reused
            for (const auto& m : masters) {
                const bool have = std::any_of(self->monitors_.begin(), self->monitors_.end(),
                                              [&](const monitor_link& l) { return l.node == m; });
                if (have)
                    continue;
                const auto name = m.to_string();
                if (!self->monitor_refused_.contains(name))
                    obs::log().info("proxy monitor_link_opened node={}", name);
                self->add_monitor(m, [weak, m](std::string_view frame) {
                    auto s = weak.lock();
                    if (frame.starts_with("+")) {
                        if (s)
                            s->monitor_refused_.erase(m.to_string());
                        return;
                    }
                    // Refused or unreachable: closed now, asked again at the next check (the
                    // first refusal of a node is logged).
                    if (!s || s->closed_)
                        return;
                    if (s->monitor_refused_.insert(m.to_string()).second)
                        obs::log().warn("proxy monitor_link_refused node={} reply={}",
                                        m.to_string(),
                                        frame.substr(0, std::min<std::size_t>(frame.size(), 120)));
                    const auto it =
                        std::find_if(s->monitors_.begin(), s->monitors_.end(),
                                     [&](const monitor_link& l) { return l.node == m; });
                    if (it != s->monitors_.end()) {
                        auto u = std::move(it->conn);
                        s->monitors_.erase(it);
                        u->close();
                    }
                });
            }
        }
        self->follow_monitored_masters();
    });
}

void session::close_monitors() {
    // close() fails pending confirmations at once, which may come back here: the list is taken
    // out first, and the generation tells a late confirmation that its MONITOR is over.
    ++monitor_gen_;
    if (monitor_timer_)
        monitor_timer_->cancel();
    auto ms = std::exchange(monitors_, {});
    for (auto& l : ms)
        l.conn->close();  // a MONITOR connection is never reused
}

std::int32_t session::command_slot(const command_class& c,
                                   std::span<const std::string_view> args) const {
    thread_local std::vector<std::size_t> positions;
    positions.clear();
    if (c.spec != nullptr)
        st_.table.key_positions(*c.spec, args, positions);
    std::int32_t slot = k_no_keys;
    for (auto i : positions) {
        const auto k = static_cast<std::int32_t>(cluster::hash_slot(args[i]));
        if (slot == k_no_keys)
            slot = k;
        else if (slot != k)
            return k_cross_slot;
    }
    return slot;
}

bool session::acquire_pin(side s, std::int32_t slot) {
    if (pinned_)
        return true;
    std::optional<cluster::node_address> node;
    if (st_.backend_cfg(s).cluster) {
        // A cluster pin is a connection to the master of the command's slot (WATCH); state that
        // spans the whole keyspace (CLIENT TRACKING, ...) has no single node to live on.
        if (slot < 0) {
            reply_error(
                "ERR proxy: this command needs a pinned connection, which a Redis Cluster "
                "backend does not support yet");
            return false;
        }
        node = w_.master_of(s, static_cast<std::uint16_t>(slot));
        if (!node) {
            reply_error("ERR proxy: serving backend unavailable");
            return false;
        }
    }
    pinned_ = w_.dedicated(s, proto_, node ? &*node : nullptr);
    if (!pinned_) {
        reply_error("ERR proxy: serving backend unavailable");
        return false;
    }
    pinned_side_ = s;
    pinned_node_ = std::move(node);
    // Pushes on the pinned connection (RESP3 invalidations with CLIENT TRACKING, MONITOR's
    // stream) belong to this client.
    pinned_->set_push_handler([weak = weak_from_this()](std::string_view frame) {
        if (auto self = weak.lock(); self && !self->closed_) {
            self->push_out(frame);
            self->defer_write();  // the pushes of one read in one write
        }
    });
    return true;
}

void session::release_pin_if_unused() {
    if (pinned_ && !in_multi_ && !watching_ && !sticky_pin_ && !blocked_) {
        w_.release(std::move(pinned_), pinned_side_, true, pinned_node_ ? &*pinned_node_ : nullptr);
        pinned_.reset();
        pinned_node_.reset();
    }
}

}  // namespace respite::proxy::server

namespace respite::proxy::server {

void session::cancel_blocking() {
    // The client is gone while its command blocks upstream. Unblock it (its reply, a timeout or
    // a value popped in the meantime, still comes here and a value is put back).
    st_.cancelled_blocking->inc();
    if (wait_ && !wait_->sent) {  // a WAIT not sent yet: nothing blocks upstream
        wait_.reset();
        end_blocking();
        return;
    }
    send_unblock(0);
}

bool session::wake(bool error) {
    if (!blocked_ || !blocking_conn_)
        return false;
    send_unblock(0, error);
    return true;
}

void session::send_unblock(int attempt, bool error) {
    if (!blocked_ || !blocking_conn_)
        return;  // answered meanwhile
    const auto id = blocking_conn_->client_id();
    // CLIENT UNBLOCK must reach the server the command blocks on: on a cluster, its node.
    std::shared_ptr<upstream> u;
    if (id != 0)
        u = blocking_node_ ? w_.node_upstream(blocking_side_, *blocking_node_)
                           : w_.shared_upstream(blocking_side_, 2);
    if (!u) {
        blocking_conn_->close();
        return;
    }
    std::string cmd;
    const auto id_text = std::to_string(id);
    if (error)
        resp::append_command(cmd, {"CLIENT", "UNBLOCK", id_text, "ERROR"});
    else
        resp::append_command(cmd, {"CLIENT", "UNBLOCK", id_text});
    auto again = [self = shared_from_this(), attempt, error](std::string_view reply) {
        // :0 while the command is still unanswered: UNBLOCK travels on another connection and
        // overtook it (it is not blocked yet). Try again shortly; after about a second, close
        // its connection, which unblocks it for sure.
        if (reply != ":0\r\n" || !self->blocked_ || !self->blocking_conn_)
            return;
        if (attempt >= 50) {
            obs::log().warn("proxy unblock_gave_up id={} action=close_connection", self->id_);
            self->blocking_conn_->close();
            return;
        }
        auto t =
            std::make_shared<asio::steady_timer>(self->w_.ioc(), std::chrono::milliseconds(20));
        t->async_wait([self, attempt, error, t](std::error_code ec) {
            if (!ec)
                self->send_unblock(attempt + 1, error);
        });
    };
    u->send(cmd, std::make_shared<callback_sink>(std::move(again)), 0);
}

void session::forward_decoded(side s, std::span<const std::string_view> args,
                              std::unique_ptr<slot_ctx> ctx) {
    exec_decoded(alloc_slot(std::move(ctx)), s, args);
}

namespace {
// A cluster client's failure of a command that never ran, as the client's error reply (empty:
// the outcome is unknown, "connection lost; the command may have run").
std::string_view cluster_refusal(std::error_code ec) {
    if (ec == client::error::invalid_argument)
        return "-ERR proxy: this command needs a connection of its own, which a Redis Cluster "
               "backend does not give it\r\n";
    if (ec == cluster::cluster_error::crossslot)
        return "-CROSSSLOT Keys in request don't hash to the same slot\r\n";
    if (ec == cluster::cluster_error::too_many_redirects)
        return "-ERR proxy: the Redis Cluster redirected the command too many times (slots are "
               "moving); it did not run, retry\r\n";
    if (ec == cluster::cluster_error::no_route)
        return "-ERR proxy: serving backend unavailable (no Redis Cluster node is known for the "
               "command's slot)\r\n";
    return {};
}
}  // namespace

void session::exec_decoded(std::uint64_t seq, side s, std::span<const std::string_view> args) {
    // Cluster backends: the cluster client routes and follows redirects; its decoded reply is
    // written back in this client's protocol.
    client::request req;
    req.push_args(args);
    auto& ioc = w_.ioc();
    st_.client_backend(s, proto_)->exec(
        std::move(req), [self = shared_from_this(), seq, &ioc](client::result<replies_t> r) {
            asio::post(ioc, [self, seq, r = std::move(r)]() mutable {
                if (!r && !cluster_refusal(r.error()).empty()) {
                    self->on_reply(seq, cluster_refusal(r.error()));  // it did not run
                    return;
                }
                if (!r || r->empty()) {
                    self->on_failure(seq, true);
                    return;
                }
                self->on_reply(seq, encode_value(r->front(), self->proto_));
            });
        });
}

}  // namespace respite::proxy::server
