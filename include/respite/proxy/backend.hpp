// An upstream the proxy talks to off the client's hot path (secondary writes, shadow reads,
// repairs): a standalone Redis through respite::client or a Redis Cluster through
// respite::cluster. The hot path forwards raw frames on its own per-worker connections.
//
// Module boundary: backend depends on client and cluster; the rest of the proxy sees only this
// interface, so tests can run the replayer or the shadow reader against either kind.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <respite/client/client.hpp>
#include <respite/client/config.hpp>
#include <respite/client/error.hpp>
#include <respite/client/request.hpp>
#include <respite/cluster/cluster_client.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy {

using replies = std::vector<resp::value>;
using replies_callback = std::move_only_function<void(client::result<replies>)>;

class backend {
  public:
    virtual ~backend() = default;

    // Runs the commands as one pipeline: one reply per command, in order (error replies are
    // values). Thread-safe. The callback runs on the backend's I/O thread and must not block.
    // A Redis Cluster runs the keyless commands every_master_of names (FLUSHALL, SCRIPT LOAD,
    // DBSIZE ...; not SCAN) on every master, their replies combined, the commands around them
    // waiting for them (every_master.hpp).
    virtual void exec(client::request req, replies_callback cb) = 0;
    // The pipeline on one node: for a Redis Cluster the master at `node` of topology() (no
    // redirect is followed: MOVED/ASK come back as values), for commands that address a node
    // rather than a key (SCAN, CLUSTER NODES, INFO). A standalone Redis runs it like exec().
    virtual void exec_on(const cluster::node_address& node, client::request req,
                         replies_callback cb) {
        (void)node;
        exec(std::move(req), std::move(cb));
    }
    // MULTI, the commands, EXEC: the EXEC replies (a cluster backend needs one slot).
    virtual void transaction(client::request req, replies_callback cb) = 0;
    // "primary" or "secondary" (the role, not an address: addresses stay out of errors).
    [[nodiscard]] virtual const std::string& name() const noexcept = 0;
    [[nodiscard]] virtual bool is_cluster() const noexcept = 0;
    // A Redis Cluster's current slot map (which master owns each slot), for callers that open
    // connections of their own to a node; an empty map for a standalone Redis. Thread-safe.
    [[nodiscard]] virtual cluster::slot_map topology() const { return {}; }
    // A Redis Cluster reads its slot map again now (coalesced with a refresh in flight); `done`
    // runs on the backend's I/O thread once it finished or failed. Others call `done` at once.
    virtual void refresh_topology(std::move_only_function<void()> done) { done(); }
    // Fails everything pending with client::error::closed.
    virtual void close() = 0;
};

// A standalone Redis (own I/O thread).
std::shared_ptr<backend> make_standalone_backend(std::string name, client::client_config cfg);
// A Redis Cluster (own I/O thread).
std::shared_ptr<backend> make_cluster_backend(std::string name, cluster::cluster_config cfg);
// The same on the caller's io_context (which the caller runs; no thread of its own).
std::shared_ptr<backend> make_standalone_backend(asio::io_context& ioc, std::string name,
                                                 client::client_config cfg);
std::shared_ptr<backend> make_cluster_backend(asio::io_context& ioc, std::string name,
                                              cluster::cluster_config cfg);

// Where a backend is and how to reach it; one of these per side in the proxy's config.
struct backend_config {
    bool cluster = false;  // `connection` host/port is then a seed of a Redis Cluster
    client::connection_config connection{};
    // A cluster's further seeds, tried when `connection`'s node does not answer.
    std::vector<cluster::node_address> more_seeds{};
};
std::shared_ptr<backend> make_backend(std::string name, const backend_config& cfg);
std::shared_ptr<backend> make_backend(asio::io_context& ioc, std::string name,
                                      const backend_config& cfg);

}  // namespace respite::proxy
