// The commands a session answers itself: connection commands, transactions, pub/sub, PROXY.
#include <algorithm>
#include <charconv>

#include <asio/post.hpp>
#include <fmt/format.h>

#include <respite/client/command_info.hpp>
#include <respite/cluster/cluster_client.hpp>
#include <respite/resp/writer.hpp>

#include "admin.hpp"
#include "follow.hpp"
#include "pubsub_hub.hpp"
#include "session.hpp"
#include "text.hpp"

namespace respite::proxy::server {

namespace {
// Redis's rule for client names (CLIENT SETNAME, HELLO SETNAME): printable, no spaces.
bool valid_client_name(std::string_view name) {
    return std::ranges::all_of(name, [](char ch) { return ch > ' ' && ch <= '~'; });
}
constexpr std::string_view k_bad_client_name =
    "ERR Client names cannot contain spaces, newlines or special characters.";
}  // namespace

namespace {

using client::iequals;

resp::protocol proto_of(int p) {
    return p == 3 ? resp::protocol::resp3 : resp::protocol::resp2;
}

}  // namespace

void session::handle_local(const command_class& c, std::span<const std::string_view> args) {
    (void)c;
    const auto name = args[0];
    std::string out;
    if (iequals(name, "ping")) {
        if (args.size() > 2)
            return reply_error(wrong_args(name));
        if (subscribed() && proto_ == 2) {
            resp::append_array_header(out, 2);
            resp::append_bulk(out, "pong");
            resp::append_bulk(out, args.size() == 2 ? args[1] : std::string_view{});
            return reply(out);
        }
        if (args.size() == 2) {
            resp::append_bulk(out, args[1]);
            return reply(out);
        }
        return reply("+PONG\r\n");
    }
    if (iequals(name, "echo")) {
        if (args.size() != 2)
            return reply_error(wrong_args(name));
        resp::append_bulk(out, args[1]);
        return reply(out);
    }
    if (iequals(name, "quit")) {
        reply_ok();
        closing_ = true;
        return;
    }
    if (iequals(name, "hello"))
        return handle_hello(args);
    if (iequals(name, "auth")) {
        if (args.size() < 2)
            return reply_error(wrong_args(name));
        if (args.size() > 3)
            return reply_error("ERR syntax error");
        if (st_.cfg.users.empty()) {
            // As Redis without a password: the default user takes any password when named;
            // other users do not exist.
            if (args.size() == 2)
                return reply_error(
                    "ERR AUTH <password> called without any password configured for "
                    "the default user. Are you sure your configuration is correct?");
            if (args[1] != "default")
                return reply_error("WRONGPASS invalid username-password pair or user is disabled.");
            return reply_ok();
        }
        const bool ok =
            args.size() == 2 ? handle_auth("default", args[1]) : handle_auth(args[1], args[2]);
        if (!ok)
            return reply_error("WRONGPASS invalid username-password pair or user is disabled.");
        return reply_ok();
    }
    if (iequals(name, "select")) {
        if (args.size() != 2)
            return reply_error(wrong_args(name));
        auto db = to_int(args[1]);
        if (!db)
            return reply_error("ERR value is not an integer or out of range");
        const auto plan = plan_of(st_.current.load());
        const side serving = pinned_ ? pinned_side_ : plan.serving;
        if (st_.backend_cfg(serving).cluster) {
            // What a Redis Cluster node answers: it has database 0 only.
            if (*db != 0)
                return reply_error("ERR SELECT is not allowed in cluster mode");
            db_ = 0;
            return reply_ok();
        }
        if (*db < 0 || *db > 1'000'000)
            return reply_error("ERR DB index is out of range");
        const int configured = st_.backend_cfg(serving).connection.database;
        if (*db == configured && !pinned_) {
            db_ = static_cast<int>(*db);
            return reply_ok();
        }
        if (plan.follower && *db != configured)
            return reply_error(
                "ERR proxy: SELECT of another database is not supported while "
                "writes are replayed (configure the backends' databases)");
        if (!acquire_pin(serving))
            return;
        sticky_pin_ = true;
        db_ = static_cast<int>(*db);
        other_db_ = *db != configured;
        forward(*pinned_, args, {}, nullptr);
        return;
    }
    if (iequals(name, "reset")) {
        close_monitors();
        if (in_multi_ || watching_ || sticky_pin_) {
            // Taken out first: close() fails its waiters at once, which comes back here. With
            // replies still due on it (MULTI, WATCH, SET ... pipelined before RESET) it is closed
            // once they came, so that they reach the client as Redis would send them.
            if (auto p = std::exchange(pinned_, nullptr)) {
                if (p->pending() > 0)
                    retiring_.push_back(std::move(p));
                else
                    p->close();
            }
            pinned_node_.reset();
        }
        in_multi_ = watching_ = sticky_pin_ = monitor_ = cluster_multi_ = false;
        queued_.clear();
        if (subscribed()) {
            w_.hub(pubsub_side_).drop(this);
            flush_pending_subs(std::nullopt, {});
            channels_.clear();
            patterns_.clear();
            shard_channels_.clear();
        }
        proto_ = 2;
        name_.clear();
        db_ = 0;
        other_db_ = false;
        authenticated_ = st_.cfg.users.empty();
        user_.clear();
        return reply("+RESET\r\n");
    }
    if (iequals(name, "client")) {
        if (args.size() < 2)
            return reply_error(wrong_args(name));
        const auto sub = args[1];
        if (any_of(sub, {"id", "getname", "info"}) && args.size() != 2)
            return reply_error(wrong_args("client|" + std::string(sub)));
        if (iequals(sub, "id")) {
            resp::append_integer(out, static_cast<std::int64_t>(id_));
            return reply(out);
        }
        if (iequals(sub, "setname")) {
            if (args.size() != 3)
                return reply_error(wrong_args("client|setname"));
            if (!valid_client_name(args[2]))
                return reply_error(k_bad_client_name);
            name_.assign(args[2]);
            return reply_ok();
        }
        if (iequals(sub, "getname")) {
            if (name_.empty())
                resp::append_null(out, proto_of(proto_));
            else
                resp::append_bulk(out, name_);
            return reply(out);
        }
        if (iequals(sub, "setinfo")) {  // Redis 7.2's checks (the proxy stores nothing)
            if (args.size() != 4)
                return reply_error(wrong_args("client|setinfo"));
            if (!iequals(args[2], "lib-name") && !iequals(args[2], "lib-ver"))
                return reply_error("ERR Unrecognized option '" + std::string(args[2]) + "'");
            return reply_ok();
        }
        if (iequals(sub, "info"))
            return client_info();
        // They show, close or wake other users' connections: admin users only, when named.
        if (any_of(sub, {"list", "kill", "unblock"}) && !is_admin())
            return reply_error("NOPERM this user has no permissions to run the 'client|" +
                               lower_copy(sub) + "' command (see --admin-user)");
        if (iequals(sub, "list"))
            return client_list(args);
        if (iequals(sub, "kill")) {
            if (args.size() < 3)
                return reply_error(wrong_args("client|kill"));
            return client_kill(args);
        }
        if (iequals(sub, "unblock"))
            return client_unblock(args);
        if (iequals(sub, "reply"))
            // Replies the server leaves out would desynchronise the pipelined upstream.
            return reply_error("ERR proxy: CLIENT REPLY is not supported through the proxy");
        return reply_error("ERR unknown subcommand");
    }
    if (iequals(name, "info"))
        return reply(info_reply(st_, proto_));
    if (iequals(name, "proxy"))
        return handle_proxy_command(args);
    reply_error("ERR unknown command");
}

bool session::handle_auth(std::string_view user, std::string_view pass) {
    for (const auto& u : st_.cfg.users) {
        if (u.name == user && u.password.size() == pass.size()) {
            // Constant-time compare: no early exit on the first differing byte.
            unsigned char diff = 0;
            for (std::size_t i = 0; i < pass.size(); ++i)
                diff |= static_cast<unsigned char>(u.password[i] ^ pass[i]);
            if (diff == 0) {
                authenticated_ = true;
                user_ = u.name;
                return true;
            }
        }
    }
    return false;
}

void session::handle_hello(std::span<const std::string_view> args) {
    int want = proto_;
    std::size_t i = 1;
    if (args.size() > 1) {
        auto v = to_int(args[1]);
        if (!v)
            return reply_error("ERR Protocol version is not an integer or out of range");
        if (*v != 2 && *v != 3)
            return reply_error("NOPROTO unsupported protocol version");
        want = static_cast<int>(*v);
        i = 2;
    }
    std::string_view setname;
    bool has_setname = false;
    for (; i < args.size(); ++i) {
        if (iequals(args[i], "auth") && i + 2 < args.size()) {
            if (st_.cfg.users.empty() && !(args[i + 1] == "default")) {
                return reply_error("WRONGPASS invalid username-password pair or user is disabled.");
            }
            if (!st_.cfg.users.empty() && !handle_auth(args[i + 1], args[i + 2]))
                return reply_error("WRONGPASS invalid username-password pair or user is disabled.");
            i += 2;
        } else if (iequals(args[i], "setname") && i + 1 < args.size()) {
            // As CLIENT SETNAME: a name with spaces or newlines would forge CLIENT LIST lines.
            if (!valid_client_name(args[i + 1]))
                return reply_error(k_bad_client_name);
            setname = args[i + 1];
            has_setname = true;
            ++i;
        } else {
            return reply_error("ERR Syntax error in HELLO option '" + std::string(args[i]) + "'");
        }
    }
    if (!authenticated_)
        return reply_error(
            "NOAUTH HELLO must be called with the client already authenticated, "
            "otherwise the HELLO AUTH <user> <pass> option can be used to "
            "authenticate the client and select the RESP protocol version at the "
            "same time");
    // Subscriptions live in the worker's hub, which sends each message in the client's protocol
    // of the moment; a pinned connection's state (MULTI, WATCH, MONITOR ...) is on the server.
    if (want != proto_ && pinned_) {
        return reply_error(
            "ERR proxy: cannot change the protocol while the connection holds "
            "server-side state (MULTI, WATCH, MONITOR, ...)");
    }
    proto_ = want;
    if (has_setname)
        name_.assign(setname);
    const auto p = proto_of(proto_);
    std::string out;
    resp::append_map_header(out, 7, p);
    resp::append_bulk(out, "server");
    resp::append_bulk(out, "redis");
    resp::append_bulk(out, "version");
    resp::append_bulk(out, st_.server_version);
    resp::append_bulk(out, "proto");
    resp::append_integer(out, proto_);
    resp::append_bulk(out, "id");
    resp::append_integer(out, static_cast<std::int64_t>(id_));
    resp::append_bulk(out, "mode");
    resp::append_bulk(out, "standalone");
    resp::append_bulk(out, "role");
    resp::append_bulk(out, "master");
    resp::append_bulk(out, "modules");
    resp::append_array_header(out, 0);
    reply(out);
}

void session::handle_transaction(const command_class& c, std::span<const std::string_view> args,
                                 std::string_view raw) {
    const auto name = args[0];
    const auto plan = plan_of(st_.current.load(std::memory_order_acquire));
    const side serving = pinned_ ? pinned_side_ : plan.serving;

    // Arity first, as Redis checks it before the command runs: the session's state must not
    // change for a command the server refuses (a DISCARD x would leave the server in MULTI and
    // the connection back in the pool). Inside MULTI it aborts the transaction; EXEC x ends it.
    std::string exec_abort = "EXECABORT Transaction discarded because of previous errors.";
    if (iequals(name, "watch") ? args.size() < 2 : args.size() != 1) {
        const auto refusal = wrong_args(name);
        if (!iequals(name, "exec")) {
            if (in_multi_)
                multi_failed_ = true;
            return reply_error(refusal);
        }
        exec_abort = "EXECABORT Transaction discarded because of: " + refusal.substr(4);
        if (!in_multi_)
            return reply_error(exec_abort);
        multi_failed_ = true;
    }
    // Writes of this connection's other database (SELECTed before, or queued in this MULTI
    // while writes were not replayed) would be replayed into the configured one.
    if (iequals(name, "exec") && in_multi_ && other_db_ && following(st_, serving)) {
        multi_failed_ = true;
        exec_abort =
            "EXECABORT Transaction discarded because of: " + other_db_error(serving).substr(4);
    }

    // A MULTI queued here for a cluster ends here, whatever serves now (a switch closes such a
    // client, and EXEC refuses a transaction whose side no longer serves).
    if (in_multi_ && cluster_multi_)
        return handle_cluster_transaction(args, cluster_multi_side_, exec_abort);
    if (!pinned_ && st_.backend_cfg(serving).cluster && iequals(name, "multi"))
        return handle_cluster_transaction(args, serving, exec_abort);
    if (in_multi_ && !pinned_ && (iequals(name, "exec") || iequals(name, "discard"))) {
        // The transaction's connection is gone (never expected: a lost pin closes the client).
        in_multi_ = watching_ = multi_failed_ = false;
        queued_.clear();
        return reply_error(iequals(name, "exec")
                               ? "EXECABORT Transaction discarded because of: proxy: the "
                                 "transaction's backend connection was lost"
                               : "ERR proxy: the transaction's backend connection was lost");
    }
    if (iequals(name, "multi")) {
        if (in_multi_)
            return reply_error("ERR MULTI calls can not be nested");
        if (other_db_ && plan.follower && plan.serving == serving)  // as for its writes
            return reply_error(other_db_error(serving));
        if (!acquire_pin(serving))
            return close_gracefully();  // its queued commands, sent behind it, must not run now
        in_multi_ = true;
        multi_failed_ = false;
        queued_.clear();
        multi_sent_ = 0;
        multi_info_at_.clear();
        multi_replay_ = st_.follower_of(serving) != nullptr && plan.follower;
        // Recorded whenever the side has a follower: a switch to a following mode before EXEC
        // must still replay it (follow_begin_transaction decides at EXEC).
        multi_record_ = st_.follower_of(serving) != nullptr;
        forward(*pinned_, args, raw, nullptr);
        return;
    }
    if (iequals(name, "exec") && in_multi_ && multi_failed_) {
        // The proxy refused a command of this transaction (one Redis would have queued, such as
        // SUBSCRIBE): like a command Redis refuses while queueing, it aborts EXEC. The server
        // discards what it queued; the connection then holds no more state.
        in_multi_ = watching_ = multi_failed_ = false;
        queued_.clear();
        const auto seq = alloc_slot();
        std::string discard;
        resp::append_command(discard, {"DISCARD"});
        pinned_->send(
            discard,
            std::make_shared<callback_sink>([weak = weak_from_this(), seq,
                                             reply = "-" + exec_abort + "\r\n"](std::string_view) {
                if (auto self = weak.lock(); self && !self->closed_) {
                    self->complete(seq, reply);
                    self->release_pin_if_unused();
                    self->start_write();
                }
            }),
            0);
        return;
    }
    if (iequals(name, "exec")) {
        if (!in_multi_)
            return reply_error("ERR EXEC without MULTI");
        in_multi_ = false;
        watching_ = false;  // EXEC always unwatches
        auto ctx = std::make_unique<slot_ctx>();
        ctx->kind = ctx_kind::exec;
        ctx->serving = pinned_side_;
        ctx->queued = std::move(queued_);
        queued_.clear();
        ctx->info_at = std::move(multi_info_at_);
        multi_info_at_.clear();
        if (multi_record_ && !ctx->queued.empty() &&
            follow_begin_transaction(st_, pinned_side_, ctx->queued, ctx->keys, ctx->global,
                                     reinterpret_cast<std::uintptr_t>(pinned_.get()))) {
            ctx->followed = true;
        } else {
            ctx->queued.clear();
        }
        st_.writes_in_flight.fetch_add(1, std::memory_order_acq_rel);
        // Redis runs what follows on this connection after EXEC, so it is clean for the next
        // user at once; FIFO matching still brings EXEC's reply here.
        auto pin = pinned_;
        forward(*pin, args, raw, std::move(ctx));
        release_pin_if_unused();
        return;
    }
    if (iequals(name, "discard")) {
        if (!in_multi_)
            return reply_error("ERR DISCARD without MULTI");
        in_multi_ = false;
        watching_ = false;
        queued_.clear();
        auto pin = pinned_;
        forward(*pin, args, raw, nullptr);
        release_pin_if_unused();
        return;
    }
    if (iequals(name, "watch")) {
        if (in_multi_)
            return reply_error("ERR WATCH inside MULTI is not allowed");
        if (args.size() < 2)
            return reply_error(wrong_args(name));
        // On a cluster the pin goes to the master of the watched keys' slot, which must be one
        // slot, as a cluster node requires. A later WATCH of another node's key on the same pin
        // gets that node's -MOVED, as a client connected to one node would.
        std::int32_t slot = k_no_keys;
        if (st_.backend_cfg(serving).cluster) {
            slot = command_slot(c, args);
            if (slot == k_cross_slot)
                return reply_error("CROSSSLOT Keys in request don't hash to the same slot");
        }
        if (!acquire_pin(serving, slot))
            return close_gracefully();  // the write it guards, sent behind it, must not run
        watching_ = true;
        forward(*pinned_, args, raw, nullptr);
        return;
    }
    // UNWATCH
    if (pinned_) {
        watching_ = false;
        auto pin = pinned_;
        forward(*pin, args, raw, nullptr);
        release_pin_if_unused();
        return;
    }
    reply_ok();
}

// MULTI/EXEC without WATCH in front of a Redis Cluster: the commands are queued here (checked
// against the command table the way Redis checks them) and EXEC runs them as one MULTI/EXEC on
// the node that owns their slot, through the cluster client. (After WATCH the session is pinned
// to the slot's master and MULTI/EXEC run there, as on a standalone backend.)
void session::handle_cluster_transaction(std::span<const std::string_view> args, side serving,
                                         std::string_view exec_abort) {
    const auto name = args[0];
    if (iequals(name, "multi")) {
        if (in_multi_)
            return reply_error("ERR MULTI calls can not be nested");
        in_multi_ = true;
        cluster_multi_ = true;
        cluster_multi_side_ = serving;
        multi_failed_ = false;
        queued_.clear();
        return reply_ok();
    }
    if (iequals(name, "discard")) {
        in_multi_ = cluster_multi_ = false;
        queued_.clear();
        return reply_ok();
    }
    if (iequals(name, "watch"))
        return reply_error("ERR WATCH inside MULTI is not allowed");
    if (iequals(name, "unwatch")) {
        queue_cluster_command(args);  // Redis queues it (a no-op at EXEC: nothing is watched)
        return;
    }
    // EXEC
    in_multi_ = cluster_multi_ = false;
    auto queued = std::move(queued_);
    queued_.clear();
    if (multi_failed_)
        return reply_error(exec_abort);
    if (plan_of(st_.current.load(std::memory_order_acquire)).serving != serving)
        return reply_error(
            "EXECABORT Transaction discarded because of: proxy: the serving side changed since "
            "MULTI");
    if (queued.empty())
        return reply("*0\r\n");
    auto ctx = std::make_unique<slot_ctx>();
    ctx->kind = ctx_kind::exec;
    ctx->serving = serving;
    ctx->followed = follow_begin_transaction(st_, serving, queued, ctx->keys, ctx->global, id_);
    ctx->queued = ctx->followed ? queued : std::vector<std::vector<std::string>>{};
    st_.writes_in_flight.fetch_add(1, std::memory_order_acq_rel);
    const auto seq = alloc_slot(std::move(ctx));
    client::request req;
    for (const auto& q : queued)
        req.push_args(q);
    auto& ioc = w_.ioc();
    st_.client_backend(serving, proto_)
        ->transaction(std::move(req), [self = shared_from_this(), seq,
                                       &ioc](client::result<replies_t> r) {
            asio::post(ioc, [self, seq, r = std::move(r)]() mutable {
                const auto p = self->proto_ == 3 ? resp::protocol::resp3 : resp::protocol::resp2;
                std::string out;
                if (r) {
                    resp::append_array_header(out, r->size());
                    for (const auto& v : *r)
                        resp::append_value(out, v, p);
                } else if (r.error() == cluster::cluster_error::crossslot) {
                    resp::append_error(out,
                                       "CROSSSLOT Keys in request don't hash to the same slot");
                } else if (r.error() == client::error::server_error) {
                    resp::append_error(
                        out, "EXECABORT Transaction discarded because of previous errors.");
                } else if (r.error() == client::error::transaction_aborted) {
                    resp::append_null(out, p);
                } else {
                    self->on_failure(seq, r.error() == client::error::connection_lost ||
                                              r.error() == client::error::timeout);
                    return;
                }
                self->on_reply(seq, out);
            });
        });
}

bool session::queue_cluster_command(std::span<const std::string_view> args) {
    // Redis's checks at queue time: an unknown command or a wrong arity aborts the transaction.
    if (const auto refusal = redis_refusal(st_.table, args)) {
        multi_failed_ = true;
        reply_error(*refusal);
        return true;
    }
    queued_.push_back({args.begin(), args.end()});
    reply("+QUEUED\r\n");
    return true;
}

void session::handle_subscribe(std::span<const std::string_view> args) {
    const auto name = lower_copy(args[0]);
    const bool sub = name.find("unsubscribe") == std::string::npos;
    const sub_kind k = (name == "subscribe" || name == "unsubscribe") ? sub_kind::channel
                       : name[0] == 'p'                               ? sub_kind::pattern
                                                                      : sub_kind::shard;
    auto& set = k == sub_kind::channel   ? channels_
                : k == sub_kind::pattern ? patterns_
                                         : shard_channels_;
    const std::string_view verb = name;
    if (sub && args.size() < 2)
        return reply_error(wrong_args(name));
    if (in_multi_) {
        multi_failed_ = true;  // EXEC aborts, as after a command Redis refuses to queue
        return reply_error(
            "ERR proxy: " + name +
            " inside MULTI is not supported (the subscription would belong to the transaction's "
            "connection); the transaction is aborted");
    }
    if (!subscribed())
        pubsub_side_ = plan_of(st_.current.load()).serving;
    auto& hub = w_.hub(pubsub_side_);
    const auto p = proto_of(proto_);

    auto confirmation = [&](std::string_view n, bool null_name) {
        std::string out;
        if (p == resp::protocol::resp3)
            out = ">3\r\n";
        else
            resp::append_array_header(out, 3);
        resp::append_bulk(out, verb);
        if (null_name)
            resp::append_null(out, p);
        else
            resp::append_bulk(out, n);
        const auto count =
            k == sub_kind::shard ? shard_channels_.size() : channels_.size() + patterns_.size();
        resp::append_integer(out, static_cast<std::int64_t>(count));
        return out;
    };

    if (sub) {
        for (std::size_t i = 1; i < args.size(); ++i) {
            std::string n(args[i]);
            const bool added = set.insert(n).second;
            const auto out = confirmation(n, false);
            if (!added) {
                reply(out);
                continue;
            }
            if (hub.subscribe(shared_from_this(), k, n)) {
                reply(out);
            } else {
                const auto seq = alloc_slot();
                slots_.back().data = out;
                pending_subs_.push_back({static_cast<std::uint8_t>(k), std::move(n), seq});
            }
        }
        return;
    }
    std::vector<std::string> names;
    if (args.size() > 1)
        names.assign(args.begin() + 1, args.end());
    else
        names.assign(set.begin(), set.end());
    if (names.empty()) {
        reply(confirmation({}, true));
        return;
    }
    for (auto& n : names) {
        if (set.erase(n) > 0) {
            hub.unsubscribe(this, k, n);
            // A confirmation still waiting for the upstream goes out now, before this one.
            flush_pending_subs(static_cast<std::uint8_t>(k), n);
        }
        reply(confirmation(n, false));
    }
}

void session::flush_pending_subs(std::optional<std::uint8_t> kind, std::string_view name) {
    for (auto it = pending_subs_.begin(); it != pending_subs_.end();) {
        if (!kind || (it->kind == *kind && it->name == name)) {
            if (it->seq >= head_seq_ && it->seq < next_seq_) {
                auto data = std::move(slots_[it->seq - head_seq_].data);
                complete(it->seq, data);
            }
            it = pending_subs_.erase(it);
        } else {
            ++it;
        }
    }
}

void session::subscription_failed(std::uint8_t kind, std::string_view name,
                                  std::string_view error) {
    auto& set = kind == 0 ? channels_ : kind == 1 ? patterns_ : shard_channels_;
    if (auto it = set.find(name); it != set.end())
        set.erase(it);
    for (auto it = pending_subs_.begin(); it != pending_subs_.end();) {
        if (it->kind == kind && it->name == name) {
            if (it->seq >= head_seq_ && it->seq < next_seq_)
                complete(it->seq, error);
            it = pending_subs_.erase(it);
        } else {
            ++it;
        }
    }
    start_write();
}

void session::subscription_confirmed(std::uint8_t kind, std::string_view name) {
    flush_pending_subs(kind, name);
    start_write();
}

void session::deliver_push(std::string_view resp3_push) {
    if (closed_)
        return;
    if (proto_ == 3) {
        push_out(resp3_push);
    } else {
        // A message push holds only bulk strings: its RESP2 form differs in the first byte.
        std::string conv(resp3_push);
        conv[0] = '*';
        push_out(conv);
    }
    defer_write();
}

bool session::named_admin() const {
    return std::ranges::find(st_.cfg.admin_users, user()) != st_.cfg.admin_users.end();
}

bool session::is_admin() const {
    return st_.cfg.admin_users.empty() || named_admin();
}

void session::handle_proxy_command(std::span<const std::string_view> args) {
    if (changes_the_proxy(args) && !is_admin())
        return reply_error(
            "NOPERM this user has no permissions to change the proxy (see "
            "--admin-user)");
    auto r = run_proxy_command(st_, args, proto_);
    if (!r.switch_to) {
        reply(r.reply);
        return;
    }
    // A mode switch waits for writes in flight: answered when it is done, off this thread.
    const auto seq = alloc_slot();
    auto& ioc = w_.ioc();
    st_.switch_mode_async(*r.switch_to, r.force,
                          fmt::format("client addr={} user={}", addr_, user()),
                          [weak = weak_from_this(), seq, &ioc, p = proto_](std::string result) {
                              asio::post(ioc, [weak, seq, result = std::move(result)] {
                                  if (auto self = weak.lock(); self && !self->closed_) {
                                      self->complete(seq, result);
                                      self->start_write();
                                  }
                              });
                              (void)p;
                          });
}

}  // namespace respite::proxy::server
