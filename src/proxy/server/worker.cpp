// Worker threads: accept loops, upstream pools, per-command metrics.
#include "worker.hpp"

#include <future>
#include <set>
#include <utility>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>

#include <respite/obs/log.hpp>
#include <respite/obs/thread_name.hpp>

#include "keepalive.hpp"
#include "pubsub_hub.hpp"
#include "session.hpp"

namespace respite::proxy::server {

namespace {
// After a failed connect, new connections to that side are not tried for this long (commands
// fail fast with "backend unavailable" instead of piling up).
constexpr auto k_retry_after = std::chrono::milliseconds(200);
constexpr std::size_t k_idle_pool = 64;
}  // namespace

worker::worker(shared_state& st, std::size_t index) : st_(st), index_(index), ioc_(1) {
    other_counter_ = &st_.metrics->get_counter(
        "respite_proxy_commands_total", "Commands received, by command", {{"command", "other"}});
    for (int r = 0; r < 8; ++r)
        route_latency_[r] = std::make_unique<obs::histogram_batch>(st_.metrics->get_histogram(
            "respite_proxy_command_duration_seconds",
            "Seconds from a command's arrival to its reply being ready (buckets from 1 "
            "microsecond), by route",
            {{"route", std::string(route_name(static_cast<route>(r)))}}));
}

void worker::post_latency_flush() {
    latency_flush_posted_ = true;
    asio::post(ioc_, [this] {
        latency_flush_posted_ = false;
        flush_batches();
    });
}

void worker::flush_batches() {
    for (auto& b : route_latency_)
        b->flush();
    for (const auto i : command_touched_)
        command_counters_[i]->inc(std::exchange(command_pending_[i], 0));
    command_touched_.clear();
    if (other_pending_ != 0)
        other_counter_->inc(std::exchange(other_pending_, 0));
}

worker::~worker() = default;

upstream_endpoint shared_state::endpoint(side s, int protocol,
                                         const cluster::node_address* node) const {
    const auto& c = backend_cfg(s).connection;
    upstream_endpoint ep;
    ep.host = c.host;
    ep.port = c.port;
    ep.username = c.username;
    ep.password = c.password;
    ep.database = c.database;
    if (node != nullptr) {
        // A node that does not know its own address is announced without a host: it is then
        // reachable where the seed is.
        if (!node->host.empty())
            ep.host = node->host;
        ep.port = node->port;
        ep.database = 0;  // a cluster has only database 0
    }
    ep.protocol = protocol;
    ep.connect_timeout = c.connect_timeout;
    ep.reply_timeout = c.command_timeout;
    ep.keepalive_seconds = cfg.backend_keepalive_seconds;
    ep.tls = upstream_tls[static_cast<int>(s)];
    ep.tls_server_name = c.tls.server_name;
    return ep;
}

std::shared_ptr<upstream> worker::shared_upstream(side s, int protocol) {
    return shared_slot(s, protocol);
}

const std::shared_ptr<upstream>& worker::shared_slot(side s, int protocol) {
    static const std::shared_ptr<upstream> k_none;
    auto& pool = shared_pool_[static_cast<int>(s)][protocol == 3 ? 1 : 0];
    const std::size_t n = std::max<std::size_t>(1, st_.cfg.upstream_connections);
    if (pool.size() < n)
        pool.resize(n);
    auto& slot = pool[next_shared_++ % n];
    if (slot && slot->usable())
        return slot;
    const auto now = std::chrono::steady_clock::now();
    if (slot && now - last_failure_[static_cast<int>(s)] < k_retry_after)
        return k_none;
    slot = std::make_shared<upstream>(ioc_, st_.endpoint(s, protocol));
    slot->set_close_handler(
        [this, s] { last_failure_[static_cast<int>(s)] = std::chrono::steady_clock::now(); });
    slot->start();
    return slot;
}

std::shared_ptr<upstream> worker::dedicated(side s, int protocol,
                                            const cluster::node_address* node) {
    if (node != nullptr) {
        auto& idle = node_idle_[static_cast<int>(s)][protocol == 3 ? 1 : 0][node->to_string()];
        while (!idle.empty()) {
            auto u = std::move(idle.back());
            idle.pop_back();
            if (u->usable())
                return u;
        }
        auto u = std::make_shared<upstream>(ioc_, st_.endpoint(s, protocol, node));
        u->start();
        track_dedicated(u);
        return u;
    }
    auto& idle = idle_[static_cast<int>(s)][protocol == 3 ? 1 : 0];
    while (!idle.empty()) {
        auto u = std::move(idle.back());
        idle.pop_back();
        if (u->usable())
            return u;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_failure_[static_cast<int>(s)] < k_retry_after)
        return nullptr;
    auto u = std::make_shared<upstream>(ioc_, st_.endpoint(s, protocol));
    u->start();
    track_dedicated(u);
    return u;
}

void worker::track_dedicated(const std::shared_ptr<upstream>& u) {
    if (dedicated_.size() >= dedicated_prune_at_) {
        std::erase_if(dedicated_, [](const auto& w) { return w.expired(); });
        dedicated_prune_at_ = std::max<std::size_t>(64, dedicated_.size() * 2);
    }
    dedicated_.push_back(u);
}

void worker::release(std::shared_ptr<upstream> u, side s, bool clean,
                     const cluster::node_address* node) {
    if (!u)
        return;
    const int p = u->protocol() == 3 ? 1 : 0;
    auto& idle = node != nullptr ? node_idle_[static_cast<int>(s)][p][node->to_string()]
                                 : idle_[static_cast<int>(s)][p];
    if (!clean || !u->usable() || idle.size() >= k_idle_pool) {
        u->close();
        return;
    }
    u->set_push_handler(nullptr);
    idle.push_back(std::move(u));
}

const cluster::slot_map& worker::topology(side s) {
    auto& t = topology_[static_cast<int>(s)];
    const auto now = std::chrono::steady_clock::now();
    // Copying the map costs a few microseconds: once a second, or after a redirect, is enough
    // for the commands that need a node of their own (the cluster client routes the others).
    if (now - t.fetched > std::chrono::seconds(1) || t.map.shards().empty()) {
        if (const auto& b = st_.backends[static_cast<int>(s)]) {
            t.map = b->topology();
            t.fetched = now;
            prune_nodes(s, t.map);
        }
    }
    return t.map;
}

void worker::prune_nodes(side s, const cluster::slot_map& map) {
    // Connections to nodes that are no longer masters (failover, resharding, a new address)
    // are closed: idle ones at once, the shared one once nothing waits on it.
    if (map.shards().empty())
        return;
    std::set<std::string> current;
    for (const auto& n : map.masters())
        current.insert(n.to_string());
    const auto i = static_cast<int>(s);
    for (auto& per_protocol : node_idle_[i]) {
        for (auto it = per_protocol.begin(); it != per_protocol.end();) {
            if (current.contains(it->first)) {
                ++it;
                continue;
            }
            for (auto& u : it->second)
                u->close();
            it = per_protocol.erase(it);
        }
    }
    for (auto it = node_shared_[i].begin(); it != node_shared_[i].end();) {
        if (current.contains(it->first) || (it->second && it->second->pending() > 0)) {
            ++it;
            continue;
        }
        if (it->second)
            it->second->close();
        it = node_shared_[i].erase(it);
    }
}

std::optional<cluster::node_address> worker::master_of(side s, std::uint16_t slot) {
    return topology(s).master_of(slot);
}

std::vector<cluster::node_address> worker::masters(side s) {
    return topology(s).masters();
}

std::shared_ptr<upstream> worker::node_upstream(side s, const cluster::node_address& node) {
    auto& u = node_shared_[static_cast<int>(s)][node.to_string()];
    if (!u || !u->usable()) {
        u = std::make_shared<upstream>(ioc_, st_.endpoint(s, 2, &node));
        u->start();
    }
    return u;
}

pubsub_hub& worker::hub(side s) {
    auto& h = hubs_[static_cast<int>(s)];
    if (!h)
        h = std::make_unique<pubsub_hub>(*this, s);
    return *h;
}

void worker::count_command(const command_class& c) {
    if (!latency_flush_posted_)
        post_latency_flush();
    // Indexed by the spec's place in the table (a lookup per command, no hashing).
    const auto& specs = st_.table.specs();
    const auto i =
        c.spec == nullptr ? specs.size() : static_cast<std::size_t>(c.spec - specs.data());
    if (i >= specs.size()) {
        ++other_pending_;
        return;
    }
    if (command_counters_.size() != specs.size()) {
        command_counters_.assign(specs.size(), nullptr);
        command_pending_.assign(specs.size(), 0);
    }
    auto*& counter = command_counters_[i];
    if (counter == nullptr)
        counter = &st_.metrics->get_counter("respite_proxy_commands_total",
                                            "Commands received, by command",
                                            {{"command", std::string(c.label)}});
    if (command_pending_[i]++ == 0)
        command_touched_.push_back(static_cast<std::uint32_t>(i));
}

void worker::defer_flush(std::shared_ptr<session> s) {
    if (deferred_flush_.empty())
        asio::post(ioc_, [this] { run_deferred_flush(); });
    deferred_flush_.push_back(std::move(s));
}

void worker::run_deferred_flush() {
    // Taken out whole: a session that defers again, or one released at the end of this scope
    // that makes another defer, lands in a fresh list with its own post.
    auto batch = std::exchange(deferred_flush_, {});
    for (auto& s : batch)
        s->flush_deferred();
}

void worker::session_opened(const std::shared_ptr<session>& s) {
    sessions_.emplace(s.get(), s);
    st_.clients.fetch_add(1);
    st_.connected_clients->add(1);
}

void worker::session_closed(session* s) {
    if (sessions_.erase(s) > 0) {
        st_.clients.fetch_sub(1);
        st_.connected_clients->add(-1);
    }
}

template <class Acceptor>
void worker::accept_loop(std::shared_ptr<Acceptor> acc) {
    acc->async_accept([this, acc](std::error_code ec, typename Acceptor::protocol_type::socket s) {
        if (ec) {
            if (ec == asio::error::operation_aborted || !acc->is_open())
                return;
            accept_failed(acc, ec);
            return;
        }
        if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
            std::error_code ignored;
            s.set_option(asio::ip::tcp::no_delay(true), ignored);
            set_tcp_keepalive(s, st_.cfg.tcp_keepalive_seconds);
        }
        if (st_.draining.load() ||
            st_.clients.load() + st_.handshakes.load() >= st_.cfg.max_clients) {
            st_.rejected_clients->inc();
            static constexpr std::string_view msg = "-ERR max number of clients reached\r\n";
            std::error_code ignored;
            if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
                // Over TLS the refusal goes after the handshake, as Redis sends it (a few at
                // a time: beyond them the connection is just closed).
                if (st_.tls) {
                    refuse_tls(std::move(s), msg);
                    accept_loop(acc);
                    return;
                }
            }
            asio::write(s, asio::buffer(msg), ignored);
            s.close(ignored);
        } else if constexpr (std::is_same_v<Acceptor, asio::ip::tcp::acceptor>) {
            if (st_.tls)
                handshake(std::move(s));
            else
                open_session(client_stream(client_stream::plain(std::move(s))));
        } else {
            open_session(client_stream(client_stream::plain(std::move(s))));
        }
        accept_loop(acc);
    });
}

// Out of descriptors (EMFILE, ENFILE) or memory, accept fails until a connection closes, and the
// waiting connection stays in the listen backlog: trying again at once spun at 100% CPU and
// wrote millions of log lines. The loop waits a moment instead; other errors (a connection
// aborted in the backlog) are tried again at once. One log line per second at most.
template <class Acceptor>
void worker::accept_failed(std::shared_ptr<Acceptor> acc, std::error_code ec) {
    st_.accept_errors->inc();
    if (std::uint64_t suppressed = 0; accept_log_.allow(suppressed))
        obs::log().warn("proxy accept_failed error=\"{}\" suppressed={}{}", ec.message(),
                        suppressed,
                        ec == asio::error::no_descriptors
                            ? " (out of file descriptors: raise ulimit -n, or lower --max-clients)"
                            : "");
    const bool out_of_resources =
        ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space ||
        ec == asio::error::no_memory || ec == std::errc::too_many_files_open_in_system;
    if (!out_of_resources) {
        accept_loop(acc);
        return;
    }
    auto timer = std::make_shared<asio::steady_timer>(ioc_, std::chrono::milliseconds(100));
    timer->async_wait([this, acc, timer](std::error_code e) {
        if (!e && acc->is_open())
            accept_loop(acc);
    });
}

void worker::open_session(client_stream stream) {
    auto sess = std::make_shared<session>(*this, std::move(stream));
    session_opened(sess);
    sess->start();
}

void worker::tls_accept(
    asio::ip::tcp::socket s, std::chrono::seconds limit,
    std::function<void(std::error_code, std::shared_ptr<client_stream::tls>)> then) {
    auto stream = std::make_shared<client_stream::tls>(std::move(s), *st_.tls);
    // A client that never finishes its handshake is dropped.
    auto timer = std::make_shared<asio::steady_timer>(ioc_, limit);
    timer->async_wait([stream](std::error_code ec) {
        if (!ec) {
            std::error_code ignored;
            stream->lowest_layer().close(ignored);
        }
    });
    stream->async_handshake(asio::ssl::stream_base::server,
                            [stream, timer, then = std::move(then)](std::error_code ec) {
                                timer->cancel();
                                then(ec, stream);
                            });
}

void worker::handshake(asio::ip::tcp::socket s) {
    st_.handshakes.fetch_add(1);
    tls_accept(std::move(s), std::chrono::seconds(10),
               [this](std::error_code ec, const std::shared_ptr<client_stream::tls>& stream) {
                   st_.handshakes.fetch_sub(1);
                   if (ec) {
                       st_.tls_handshake_failures->inc();
                       return;
                   }
                   open_session(client_stream(std::move(*stream)));
               });
}

void worker::refuse_tls(asio::ip::tcp::socket s, std::string_view msg) {
    constexpr std::size_t k_max_refusing = 16;
    if (refusing_tls_ >= k_max_refusing) {
        std::error_code ignored;
        s.close(ignored);
        return;
    }
    ++refusing_tls_;
    tls_accept(std::move(s), std::chrono::seconds(2),
               [this, msg](std::error_code ec, const std::shared_ptr<client_stream::tls>& stream) {
                   const auto done = [this, stream] {
                       --refusing_tls_;
                       std::error_code ignored;
                       stream->lowest_layer().close(ignored);
                   };
                   if (ec)
                       return done();
                   asio::async_write(*stream, asio::buffer(msg),
                                     [done](std::error_code, std::size_t) { done(); });
               });
}

void worker::start_accepting(asio::ip::tcp::acceptor acceptor) {
    tcp_acceptor_ = std::make_shared<asio::ip::tcp::acceptor>(std::move(acceptor));
    accept_loop(tcp_acceptor_);
}

void worker::start_accepting_unix(asio::local::stream_protocol::acceptor acceptor) {
    unix_acceptor_ = std::make_shared<asio::local::stream_protocol::acceptor>(std::move(acceptor));
    accept_loop(unix_acceptor_);
}

void worker::run_thread() {
    thread_ = std::thread([this] {
        obs::name_this_thread("rp-worker-" + std::to_string(index_));
        auto guard = asio::make_work_guard(ioc_);
        ioc_.run();
    });
}

void worker::stop_accepting() {
    asio::post(ioc_, [this] {
        std::error_code ignored;
        if (tcp_acceptor_)
            tcp_acceptor_->close(ignored);
        if (unix_acceptor_)
            unix_acceptor_->close(ignored);
    });
}

// A blocked client is unblocked now (a popped value is put back), as Redis closes it on
// SHUTDOWN; the others get their pending replies first.
void worker::close_leaving(session& s) {
    if (s.blocked())
        s.close_now();
    else
        s.close_gracefully();
}

void worker::close_clients() {
    asio::post(ioc_, [this] {
        auto copy = sessions_;
        for (auto& [p, weak] : copy)
            if (auto s = weak.lock())
                close_leaving(*s);  // a blocked one would hold the shutdown (BLPOP q 0: always)
    });
}

std::size_t worker::close_stateful(side s, bool blocked_only) {
    auto done = std::make_shared<std::promise<std::size_t>>();
    auto f = done->get_future();
    asio::post(ioc_, [this, s, done, blocked_only] {
        std::size_t n = 0;
        auto copy = sessions_;
        for (auto& [p, weak] : copy)
            if (auto sess = weak.lock();
                sess && sess->holds_state_on(s) && (!blocked_only || sess->blocked())) {
                close_leaving(*sess);
                ++n;
            }
        done->set_value(n);
    });
    if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
        return 0;
    return f.get();
}

void worker::join() {
    asio::post(ioc_, [this] {
        auto copy = sessions_;
        for (auto& [p, weak] : copy)
            if (auto s = weak.lock())
                s->close_now();
        for (auto& per_side : shared_pool_)
            for (auto& per_proto : per_side)
                for (auto& u : per_proto)
                    if (u)
                        u->close();
        for (auto& per_side : idle_)
            for (auto& per_proto : per_side)
                for (auto& u : per_proto)
                    u->close();
        for (auto& per_side : node_idle_)
            for (auto& per_proto : per_side)
                for (auto& [addr, pool] : per_proto)
                    for (auto& u : pool)
                        u->close();
        for (auto& per_side : node_shared_)
            for (auto& [addr, u] : per_side)
                if (u)
                    u->close();
        // Dedicated connections still in use: a closed session blocked upstream (BLPOP) waits
        // for its reply on one, and the two hold each other. The reply will not come now:
        // closing fails the wait and ends the session.
        for (auto& w : std::exchange(dedicated_, {}))
            if (auto u = w.lock())
                u->close();
        hubs_[0].reset();
        hubs_[1].reset();
        flush_batches();  // a flush posted behind this handler would never run
        ioc_.stop();
    });
    if (thread_.joinable())
        thread_.join();
}

}  // namespace respite::proxy::server
