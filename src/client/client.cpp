// The client facade's core: connection selection, dedicated-connection pool, pub/sub tracking
// and the bounded message queue. Everything here runs on the client's I/O executor.
#include <atomic>
#include <deque>
#include <set>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <respite/client/client.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>

namespace respite::client {

namespace detail {

class core : public std::enable_shared_from_this<core> {
  public:
    using executor = asio::io_context::executor_type;

    core(executor ex, client_config cfg)
        : ex_(ex),
          cfg_(std::move(cfg)),
          messages_(cfg_.push_queue_capacity,
                    cfg_.connection.metrics ? *cfg_.connection.metrics : obs::registry::global(),
                    cfg_.connection.metrics_label) {
        if (cfg_.connections == 0)
            cfg_.connections = 1;
        if (cfg_.push_queue_capacity == 0)
            cfg_.push_queue_capacity = 1;
    }

    void start() {
        for (std::size_t i = 0; i < cfg_.connections; ++i) {
            auto c = connection::create(ex_, cfg_.connection);
            c->set_push_handler([w = weak_from_this()](resp::value&& v) {
                if (auto self = w.lock())
                    self->on_push(std::move(v));
            });
            c->start();
            conns_.push_back(std::move(c));
        }
    }

    void close() {
        if (closed_)
            return;
        closed_ = true;
        for (auto& c : conns_)
            c->close();
        for (auto& c : idle_dedicated_)
            c->close();
        idle_dedicated_.clear();
        // Dedicated connections in use (a blocking command, a session) fail their work too.
        auto busy = std::move(busy_dedicated_);
        for (const auto& c : busy)
            c->close();
        auto waiters = std::move(dedicated_waiters_);
        for (auto& w : waiters) {
            w->timer.cancel();
            if (auto callback = std::move(w->cb))
                callback(std::unexpected(make_error_code(error::closed)));
        }
        if (pubsub_)
            pubsub_->close();
        messages_.close();
    }

    // Runs f on the I/O executor: inline when already there, posted otherwise.
    template <class F>
    void run(F&& f) {
        if (ex_.running_in_this_thread()) {
            f();
        } else {
            asio::post(ex_, std::forward<F>(f));
        }
    }

    connection& next_connection() {
        auto& c = *conns_[rr_];
        if (++rr_ == conns_.size())
            rr_ = 0;
        return c;
    }

    static std::error_code check_request(const request& r) {
        if (r.empty() || r.has_empty_command())
            return make_error_code(error::invalid_argument);
        // Pub/Sub commands go through the subscription API: their replies are pushes.
        if (r.has_pubsub())
            return make_error_code(error::invalid_argument);
        return {};
    }

    void command(request r, callback<resp::value> cb) {
        if (auto ec = check_request(r); ec || r.size() != 1) {
            cb(std::unexpected(ec ? ec : make_error_code(error::invalid_argument)));
            return;
        }
        auto done = [cb = std::move(cb)](std::error_code ec,
                                         std::vector<resp::value>& replies) mutable {
            if (ec) {
                cb(std::unexpected(ec));
            } else {
                cb(std::move(replies[0]));
            }
        };
        dispatch(std::move(r), std::move(done));
    }

    void exec(request r, callback<std::vector<resp::value>> cb) {
        if (auto ec = check_request(r)) {
            cb(std::unexpected(ec));
            return;
        }
        dispatch(std::move(r), [cb = std::move(cb)](std::error_code ec,
                                                    std::vector<resp::value>& replies) mutable {
            if (ec) {
                cb(std::unexpected(ec));
            } else {
                cb(std::move(replies));
            }
        });
    }

    // Blocking and state-changing requests take a dedicated connection; the rest are multiplexed.
    void dispatch(request r, reply_handler done) {
        if (closed_) {
            fail(done, make_error_code(error::closed));
            return;
        }
        if (!r.blocking() && !r.has_connection_state()) {
            next_connection().execute(r, std::move(done));
            return;
        }
        with_dedicated([self = shared_from_this(), r = std::move(r),
                        done = std::move(done)](result<std::shared_ptr<connection>> conn) mutable {
            if (!conn) {
                fail(done, conn.error());
                return;
            }
            bool reusable = !r.has_connection_state();
            auto c = *conn;
            c->execute(r, [self, c, reusable, done = std::move(done)](
                              std::error_code ec, std::vector<resp::value>& replies) mutable {
                // A timed-out blocking command may still be blocked server-side: do not reuse.
                self->give_back(c, reusable && !ec);
                done(ec, replies);
            });
        });
    }

    void transaction(request r, callback<std::vector<resp::value>> cb) {
        auto ec = check_request(r);
        // WATCH/SELECT/... inside would change the shared connection; use a session for those.
        if (!ec && r.has_connection_state())
            ec = make_error_code(error::invalid_argument);
        if (ec) {
            cb(std::unexpected(ec));
            return;
        }
        // MULTI, the commands and EXEC form one request, hence one contiguous write: nothing
        // from other callers can interleave on the multiplexed connection.
        request tx = cmd("MULTI");
        tx.append(r);
        tx.push("EXEC");
        auto n = r.size();
        next_connection().execute(
            tx,
            [cb = std::move(cb), n](std::error_code ec, std::vector<resp::value>& replies) mutable {
                if (ec) {
                    cb(std::unexpected(ec));
                    return;
                }
                auto& exec_reply = replies[n + 1];
                if (exec_reply.is_null()) {
                    cb(std::unexpected(make_error_code(error::transaction_aborted)));
                    return;
                }
                if (exec_reply.is_error()) {
                    // EXECABORT: report the first queued command's error, it says why.
                    for (std::size_t i = 1; i <= n; ++i) {
                        if (replies[i].is_error()) {
                            cb(std::vector<resp::value>{std::move(replies[i])});
                            return;
                        }
                    }
                    cb(std::vector<resp::value>{std::move(exec_reply)});
                    return;
                }
                cb(std::move(exec_reply.elements()));
            });
    }

    using dedicated_callback = std::move_only_function<void(result<std::shared_ptr<connection>>)>;

    std::shared_ptr<connection> new_dedicated() {
        auto c = connection::create(ex_, cfg_.connection);
        c->set_push_handler([w = weak_from_this()](resp::value&& v) {
            if (auto self = w.lock())
                self->on_push(std::move(v));
        });
        c->start();
        busy_dedicated_.insert(c);
        return c;
    }

    // Hands out a dedicated connection: an idle one, a new one while fewer than max_dedicated
    // exist, or the next one returned (waiting at most the command timeout, then error::timeout).
    void with_dedicated(dedicated_callback cb) {
        if (!idle_dedicated_.empty()) {
            auto c = std::move(idle_dedicated_.back());
            idle_dedicated_.pop_back();
            busy_dedicated_.insert(c);
            cb(std::move(c));
            return;
        }
        if (busy_dedicated_.size() < std::max<std::size_t>(cfg_.max_dedicated, 1)) {
            cb(new_dedicated());
            return;
        }
        auto waiter = std::make_shared<dedicated_waiter>(ex_);
        waiter->cb = std::move(cb);
        dedicated_waiters_.push_back(waiter);
        if (cfg_.connection.command_timeout.count() > 0) {
            waiter->timer.expires_after(cfg_.connection.command_timeout);
            waiter->timer.async_wait([w = std::weak_ptr(waiter)](std::error_code ec) {
                auto waiting = w.lock();
                if (ec || !waiting || !waiting->cb)
                    return;
                auto callback = std::move(waiting->cb);
                waiting->cb = nullptr;
                obs::log().warn("dedicated_connections_exhausted (max_dedicated reached)");
                callback(std::unexpected(make_error_code(error::timeout)));
            });
        }
    }

    void give_back(const std::shared_ptr<connection>& c, bool reusable) {
        busy_dedicated_.erase(c);
        reusable = reusable && !closed_ && c->state() != connection_state::closed;
        // Someone is waiting: hand this connection over (or a fresh one in its place).
        while (!dedicated_waiters_.empty()) {
            auto waiter = std::move(dedicated_waiters_.front());
            dedicated_waiters_.pop_front();
            if (!waiter->cb)
                continue;  // timed out already
            waiter->timer.cancel();
            auto callback = std::move(waiter->cb);
            waiter->cb = nullptr;
            if (!reusable)
                c->close();
            std::shared_ptr<connection> next = reusable ? c : new_dedicated();
            if (reusable)
                busy_dedicated_.insert(next);
            callback(std::move(next));
            return;
        }
        if (!reusable || idle_dedicated_.size() >= cfg_.max_dedicated) {
            c->close();
            return;
        }
        idle_dedicated_.push_back(c);
    }

    void lease(callback<session> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        with_dedicated([self = shared_from_this(),
                        cb = std::move(cb)](result<std::shared_ptr<connection>> conn) mutable {
            if (!conn) {
                cb(std::unexpected(conn.error()));
                return;
            }
            std::weak_ptr<core> pool = self;
            cb(session(self, std::move(*conn),
                       [pool](std::shared_ptr<connection> c, bool reusable) {
                           auto p = pool.lock();
                           // After the client closed, the connection is closed already and the
                           // executor may no longer run: just let go of it.
                           if (!p || p->closed_)
                               return;
                           p->run([p, c = std::move(c), reusable] { p->give_back(c, reusable); });
                       }));
        });
    }

    // ---- pub/sub ----------------------------------------------------------------------------

    std::set<std::string>& tracked(subscription_kind k) {
        switch (k) {
            case subscription_kind::pattern:
                return patterns_;
            case subscription_kind::shard_channel:
                return shard_channels_;
            case subscription_kind::channel:
            default:
                return channels_;
        }
    }

    static std::string_view verb(subscription_kind k, bool subscribe) {
        switch (k) {
            case subscription_kind::pattern:
                return subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE";
            case subscription_kind::shard_channel:
                return subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
            case subscription_kind::channel:
            default:
                return subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
        }
    }

    connection& pubsub() {
        if (!pubsub_) {
            pubsub_ = connection::create(ex_, cfg_.connection);
            pubsub_->set_resp2_pubsub(true);
            pubsub_->set_push_handler([w = weak_from_this()](resp::value&& v) {
                if (auto self = w.lock())
                    self->on_push(std::move(v));
            });
            pubsub_->set_on_ready([w = weak_from_this()] {
                auto self = w.lock();
                // The first connect sends the queued SUBSCRIBE itself; later ones restore.
                if (self && self->pubsub_->connects() > 1)
                    self->resubscribe();
            });
            pubsub_->start();
        }
        return *pubsub_;
    }

    // After a reconnect the server has forgotten our subscriptions: restore all of them.
    void resubscribe() {
        for (auto k : {subscription_kind::channel, subscription_kind::pattern,
                       subscription_kind::shard_channel}) {
            auto& set = tracked(k);
            if (set.empty())
                continue;
            request r;
            std::vector<std::string_view> args{verb(k, true)};
            for (const auto& n : set)
                args.push_back(n);
            r.push_args(args);
            pubsub_->execute_pubsub(r, [k](std::error_code ec, std::vector<resp::value>& rep) {
                if (ec || (!rep.empty() && rep[0].is_error())) {
                    obs::log().error("resubscribe_failed kind={} error=\"{}\"", static_cast<int>(k),
                                     ec ? ec.message() : rep[0].str());
                }
            });
        }
    }

    void subscription(subscription_kind k, bool subscribe, std::vector<std::string> names,
                      callback<void> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (subscribe && names.empty()) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        auto& set = tracked(k);
        if (!subscribe && names.empty()) {
            // "Everything of that kind": name them, so each confirmation can be counted.
            names.assign(set.begin(), set.end());
            if (names.empty()) {
                cb(result<void>{});
                return;
            }
        }
        if (subscribe) {
            set.insert(names.begin(), names.end());
        } else {
            for (const auto& n : names)
                set.erase(n);
        }
        request r;
        std::vector<std::string_view> args{verb(k, subscribe)};
        for (const auto& n : names)
            args.push_back(n);
        r.push_args(args);
        pubsub().execute_pubsub(
            r, [self = shared_from_this(), k, subscribe, names = std::move(names),
                cb = std::move(cb)](std::error_code ec, std::vector<resp::value>& rep) mutable {
                if (!ec && !rep.empty() && rep[0].is_error()) {
                    ec = make_error_code(error::server_error);
                    obs::log().warn("subscribe_rejected error=\"{}\"", rep[0].str());
                }
                if (ec && subscribe) {
                    for (const auto& n : names)
                        self->tracked(k).erase(n);
                }
                if (ec) {
                    cb(std::unexpected(ec));
                } else {
                    cb(result<void>{});
                }
            });
    }

    void on_push(resp::value&& v) {
        if (auto m = to_message(std::move(v))) {
            messages_.deliver(std::move(*m));
            return;
        }
        // Subscription confirmations: the subscription API already answered the caller.
        if (push_kind(v).find("subscribe") != std::string_view::npos)
            return;
        if (push_handler_)
            push_handler_(v);
    }

    void receive(callback<message> cb) { messages_.receive(std::move(cb)); }

    // With its own io_context, the client shares it with the core, so a session that outlives
    // the client still finds the io_context its connection was made on. Declared first: it must
    // be destroyed after every connection of the core.
    std::shared_ptr<asio::io_context> keep_alive_;
    executor ex_;
    client_config cfg_;
    std::vector<std::shared_ptr<connection>> conns_;
    std::vector<std::shared_ptr<connection>> idle_dedicated_;
    std::shared_ptr<connection> pubsub_;
    std::set<std::string> channels_, patterns_, shard_channels_;
    message_queue messages_;
    std::function<void(const resp::value&)> push_handler_;
    std::size_t rr_ = 0;
    std::set<std::shared_ptr<connection>> busy_dedicated_;
    struct dedicated_waiter {
        explicit dedicated_waiter(executor ex) : timer(ex) {}
        asio::steady_timer timer;
        dedicated_callback cb;
    };
    std::deque<std::shared_ptr<dedicated_waiter>> dedicated_waiters_;
    std::atomic<bool> closed_{false};
};

}  // namespace detail

// ---- session --------------------------------------------------------------------------------

session::session(std::shared_ptr<void> owner, std::shared_ptr<connection> conn, release_fn release)
    : owner_(std::move(owner)), conn_(std::move(conn)), release_(std::move(release)) {}

session& session::operator=(session&& o) noexcept {
    if (this != &o) {
        release();
        owner_ = std::move(o.owner_);
        conn_ = std::move(o.conn_);
        release_ = std::move(o.release_);
        dirty_ = o.dirty_;
    }
    return *this;
}

session::~session() {
    release();
}

void session::release() {
    if (!conn_)
        return;
    auto conn = std::move(conn_);
    if (release_) {
        auto fn = std::move(release_);
        fn(std::move(conn), !dirty_);
    }
}

asio::io_context::executor_type session::executor() const {
    return conn_->get_executor();
}

void session::command(request r, detail::callback<resp::value> cb) {
    if (r.size() != 1) {
        cb(std::unexpected(make_error_code(error::invalid_argument)));
        return;
    }
    submit(std::move(r),
           [cb = std::move(cb)](std::error_code ec, std::vector<resp::value>& rep) mutable {
               if (ec) {
                   cb(std::unexpected(ec));
               } else {
                   cb(std::move(rep[0]));
               }
           });
}

void session::exec(request r, detail::callback<std::vector<resp::value>> cb) {
    submit(std::move(r),
           [cb = std::move(cb)](std::error_code ec, std::vector<resp::value>& rep) mutable {
               if (ec) {
                   cb(std::unexpected(ec));
               } else {
                   cb(std::move(rep));
               }
           });
}

// Both operations: on the connection's executor, pub/sub refused, state changes remembered.
void session::submit(request r, reply_handler done) {
    if (!conn_) {
        fail(done, make_error_code(error::closed));
        return;
    }
    if (r.empty() || r.has_pubsub()) {
        fail(done, make_error_code(error::invalid_argument));
        return;
    }
    if (r.has_connection_state() || r.blocking())
        dirty_ = true;
    asio::dispatch(conn_->get_executor(),
                   [conn = conn_, r = std::move(r), done = std::move(done)]() mutable {
                       conn->execute(r, std::move(done));
                   });
}

// ---- client ---------------------------------------------------------------------------------

client::client(client_config cfg) : io_(std::make_unique<detail::io_thread>()) {
    core_ = std::make_shared<detail::core>(io_->context()->get_executor(), std::move(cfg));
    core_->keep_alive_ = io_->context();
    core_->start();
}

client::client(asio::io_context& ioc, client_config cfg)
    : core_(std::make_shared<detail::core>(ioc.get_executor(), std::move(cfg))) {
    core_->start();
}

client::~client() {
    close();
    io_.reset();
}

void client::close() {
    auto c = core_;
    if (io_) {
        // Wait until the close has run so no completion races the destructor.
        io_->run_and_wait([c] { c->close(); });
    } else {
        c->run([c] { c->close(); });
    }
}

// Each entry point hands the work to the core on its executor. The core stays alive while work
// for it is queued (the posted closure shares ownership), even if the client is being destroyed.
void client::command(request r, detail::callback<resp::value> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->command(std::move(r), std::move(cb));
    });
}

void client::exec(request r, detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->exec(std::move(r), std::move(cb));
    });
}

void client::transaction(request r, detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->transaction(std::move(r), std::move(cb));
    });
}

void client::lease(detail::callback<session> cb) {
    core_->run([c = core_, cb = std::move(cb)]() mutable { c->lease(std::move(cb)); });
}

void client::subscription(subscription_kind k, bool subscribe, std::vector<std::string> names,
                          detail::callback<void> cb) {
    core_->run([c = core_, k, subscribe, n = std::move(names), cb = std::move(cb)]() mutable {
        c->subscription(k, subscribe, std::move(n), std::move(cb));
    });
}

void client::receive(detail::callback<message> cb) {
    core_->run([c = core_, cb = std::move(cb)]() mutable { c->receive(std::move(cb)); });
}

void client::set_message_handler(std::function<void(const message&)> handler) {
    core_->run(
        [c = core_, h = std::move(handler)]() mutable { c->messages_.set_handler(std::move(h)); });
}

void client::set_push_handler(std::function<void(const resp::value&)> handler) {
    core_->run([c = core_, h = std::move(handler)]() mutable { c->push_handler_ = std::move(h); });
}

push_queue_stats client::push_stats() const {
    return core_->messages_.stats();
}

asio::io_context::executor_type client::executor() const noexcept {
    return core_->ex_;
}
const client_config& client::config() const noexcept {
    return core_->cfg_;
}
std::vector<std::shared_ptr<connection>> client::connections() const {
    return core_->conns_;
}
std::shared_ptr<connection> client::pubsub_connection() const {
    return core_->pubsub_;
}

}  // namespace respite::client
