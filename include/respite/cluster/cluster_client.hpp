// The Redis Cluster client: routes commands by key slot over one multiplexed connection per node,
// follows MOVED/ASK, retries TRYAGAIN/CLUSTERDOWN/LOADING within the command's deadline, keeps
// the slot map fresh, splits pipelines per node, and keeps sharded Pub/Sub subscribed through
// slot moves and failovers.
//
// Module boundary: cluster depends on client, commands and resp; never on proxy/streams/replicas.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include <respite/client/client.hpp>
#include <respite/cluster/slot_map.hpp>

namespace respite::cluster {

using client::request;
using client::result;

enum class read_preference : std::uint8_t {
    primary,         // every command goes to the slot's master
    prefer_replica,  // read-only commands go to a replica (READONLY) when one is up
};

struct cluster_config {
    // Nodes to learn the topology from ("host", port); any one reachable node is enough.
    std::vector<node_address> seeds{};
    // Settings for every node connection (host/port are replaced per node).
    client::connection_config connection{};
    read_preference reads = read_preference::primary;
    // Redirects (MOVED/ASK) one command may follow before it fails with too_many_redirects.
    int max_redirects = 5;
    // Periodic slot-map refresh (jittered by up to +-20%); 0 disables.
    std::chrono::milliseconds refresh_interval = std::chrono::seconds(10);
    // Retry backoff for TRYAGAIN, CLUSTERDOWN, LOADING and unreachable nodes, capped; retries stop
    // at the command's deadline.
    std::chrono::milliseconds retry_initial = std::chrono::milliseconds(10);
    std::chrono::milliseconds retry_max = std::chrono::milliseconds(500);
    // TRYAGAIN (a multi-key command whose keys a slot migration has split) and, in a
    // transaction, ASK are retried after the backoff until the migration ends: commands sent
    // later to the same slot may run first. false: the TRYAGAIN reply is the command's reply
    // (a transaction fails with client::error::server_error, as an EXECABORT), for callers that
    // must keep their commands in order (a proxy).
    bool retry_tryagain = true;
};

enum class cluster_error {
    ok = 0,
    crossslot = 1,       // a command's (or transaction's) keys hash to different slots
    too_many_redirects,  // more MOVED/ASK than max_redirects
    no_route,            // no node is known for the slot (no reachable seed, no map)
    retries_exhausted,   // TRYAGAIN/CLUSTERDOWN/LOADING or an unreachable node until the deadline
};

const std::error_category& cluster_category() noexcept;
std::error_code make_error_code(cluster_error e) noexcept;

namespace detail {
class cluster_core;
}

class cluster_client {
  public:
    explicit cluster_client(cluster_config cfg);                // own I/O thread
    cluster_client(asio::io_context& ioc, cluster_config cfg);  // caller's io_context
    ~cluster_client();
    cluster_client(const cluster_client&) = delete;
    cluster_client& operator=(const cluster_client&) = delete;

    void close();

    // One command, routed by its keys' slot; keyless commands go to some master.
    template <class Token>
    auto async_command(request req, Token&& token) {
        return client::detail::initiate<resp::value>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { command(std::move(r), std::move(cb)); });
    }

    // A pipeline: split per node, sent in parallel, replies reassembled in submission order.
    template <class Token>
    auto async_exec(request req, Token&& token) {
        return client::detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(),
            [this, r = std::move(req)](auto cb) mutable { exec(std::move(r), std::move(cb)); });
    }

    // MULTI/EXEC pinned to the one slot all keys share (CROSSSLOT otherwise, before sending).
    // The EXEC array's elements; client::error::server_error when the node refused the
    // transaction (a command refused while queued: EXECABORT), transaction_aborted when a
    // WATCHed key changed.
    template <class Token>
    auto async_transaction(request req, Token&& token) {
        return client::detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(), [this, r = std::move(req)](auto cb) mutable {
                transaction(std::move(r), std::move(cb));
            });
    }

    // A dedicated connection to the master of `key`'s slot, for WATCH/MULTI/EXEC flows on keys
    // of that slot (use hash tags). Redirect replies inside a session are returned as values.
    template <class Token>
    auto async_session(std::string key, Token&& token) {
        return client::detail::initiate<client::session>(
            std::forward<Token>(token), executor(),
            [this, k = std::move(key)](auto cb) mutable { session(std::move(k), std::move(cb)); });
    }

    // One command on every master (SCAN 0, DBSIZE, KEYS, FLUSHALL, SCRIPT LOAD, ...); one reply
    // per master, in slot-map order.
    template <class Token>
    auto async_on_all_masters(request req, Token&& token) {
        return client::detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(), [this, r = std::move(req)](auto cb) mutable {
                on_all_masters(std::move(r), std::move(cb));
            });
    }

    // A pipeline on the multiplexed connection of one node, for commands that address a node
    // rather than a key (SCAN, CLUSTER NODES, INFO): one reply per command, in order. No
    // redirect is followed (MOVED/ASK come back as values) and nothing is retried.
    template <class Token>
    auto async_exec_on(node_address node, request req, Token&& token) {
        return client::detail::initiate<std::vector<resp::value>>(
            std::forward<Token>(token), executor(),
            [this, n = std::move(node), r = std::move(req)](auto cb) mutable {
                exec_on(std::move(n), std::move(r), std::move(cb));
            });
    }

    // Pub/Sub: shard channels follow their slot's master; channels and patterns live on one node
    // and move when it goes away.
    template <class Token>
    auto async_subscribe(client::subscription_kind k, std::vector<std::string> names,
                         Token&& token) {
        return client::detail::initiate<void>(std::forward<Token>(token), executor(),
                                              [this, k, n = std::move(names)](auto cb) mutable {
                                                  subscription(k, true, std::move(n),
                                                               std::move(cb));
                                              });
    }
    template <class Token>
    auto async_unsubscribe(client::subscription_kind k, std::vector<std::string> names,
                           Token&& token) {
        return client::detail::initiate<void>(std::forward<Token>(token), executor(),
                                              [this, k, n = std::move(names)](auto cb) mutable {
                                                  subscription(k, false, std::move(n),
                                                               std::move(cb));
                                              });
    }
    template <class Token>
    auto async_receive(Token&& token) {
        return client::detail::initiate<client::message>(
            std::forward<Token>(token), executor(),
            [this](auto cb) mutable { receive(std::move(cb)); });
    }
    void set_message_handler(std::function<void(const client::message&)> handler);

    // Forces a slot-map refresh now (coalesced with any refresh in flight).
    template <class Token>
    auto async_refresh(Token&& token) {
        return client::detail::initiate<void>(std::forward<Token>(token), executor(),
                                              [this](auto cb) mutable { refresh(std::move(cb)); });
    }

    // A copy of the current slot map (safe from any thread).
    [[nodiscard]] slot_map topology() const;
    [[nodiscard]] asio::io_context::executor_type executor() const noexcept;

  private:
    void command(request r, client::detail::callback<resp::value> cb);
    void exec(request r, client::detail::callback<std::vector<resp::value>> cb);
    void transaction(request r, client::detail::callback<std::vector<resp::value>> cb);
    void on_all_masters(request r, client::detail::callback<std::vector<resp::value>> cb);
    void exec_on(node_address node, request r,
                 client::detail::callback<std::vector<resp::value>> cb);
    void subscription(client::subscription_kind k, bool subscribe, std::vector<std::string> n,
                      client::detail::callback<void> cb);
    void receive(client::detail::callback<client::message> cb);
    void refresh(client::detail::callback<void> cb);
    void session(std::string key, client::detail::callback<client::session> cb);

    std::unique_ptr<client::detail::io_thread> io_;  // null on the caller's io_context
    std::shared_ptr<detail::cluster_core> core_;
};

}  // namespace respite::cluster

template <>
struct std::is_error_code_enum<respite::cluster::cluster_error> : std::true_type {};
