// Test fixture: a real Redis Cluster (masters with replicas) made of redis_server instances.
//
// Every operation that changes the cluster (resharding, failover, a node dying or joining) returns
// only after the cluster has converged: every running node reports cluster_state:ok, all 16384
// slots are assigned, every running node has the same slot map, the same membership and the same
// replication topology, no running node is flagged as failing, and every replica's link to its
// master is up. If that does not happen within `start_timeout` it throws std::runtime_error with
// every node's view and log tail.
//
// Nodes are addressed by index (0 .. size()-1, in creation order); an index stays valid while the
// node is killed and restarted, and remove_node() shifts the indices above it down by one.
// Roles are not fixed: masters() and replicas() ask the nodes. Like redis_server, drive one cluster
// from one thread (the thread that constructed it); other threads may only use cli(), and only
// while no node is being added or removed.
//
// Each node runs with cluster-enabled, its own nodes.conf, a bus port of its own (cluster-port;
// the default port + 10000 may not exist), cluster-node-timeout from the options,
// cluster-replica-validity-factor 0 (replicas may always fail over),
// cluster-allow-replica-migration no (roles change only when asked), no persistence, and
// repl-diskless-sync-delay 0 (the default 5 s would delay every replica's first sync).
//
// Depends only on redis_server and POSIX sockets; it talks RESP2 to the nodes itself and uses
// redis-cli only for `redis-cli --cluster create` and cli().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/redis_server.hpp"

namespace respite::test {

struct redis_cluster_options {
    int masters = 3;
    int replicas_per_master = 1;
    std::chrono::milliseconds node_timeout{2000};
    // Bounds the start and every later wait for the cluster to converge.
    std::chrono::milliseconds start_timeout{30000};
    // Extra directives for every node, written after the fixture's own.
    std::vector<std::pair<std::string, std::string>> config{};
};

class redis_cluster {
  public:
    static constexpr std::uint16_t slot_count = 16384;

    // Starts masters * (1 + replicas_per_master) nodes, runs `redis-cli --cluster create` and
    // waits until the cluster has converged; throws std::runtime_error otherwise.
    explicit redis_cluster(redis_cluster_options opts = {});
    ~redis_cluster();  // stops every node; redis_server removes their directories
    redis_cluster(const redis_cluster&) = delete;
    redis_cluster& operator=(const redis_cluster&) = delete;

    [[nodiscard]] std::size_t size() const { return nodes_.size(); }
    redis_server& node(std::size_t i);
    [[nodiscard]] const redis_server& node(std::size_t i) const;
    [[nodiscard]] std::vector<std::uint16_t> ports() const;
    [[nodiscard]] std::string seed_host() const;  // node 0
    [[nodiscard]] std::uint16_t seed_port() const;

    // Running nodes by their current role (ROLE), in index order; killed nodes are in neither.
    [[nodiscard]] std::vector<std::size_t> masters() const;
    [[nodiscard]] std::vector<std::size_t> replicas() const;
    // The node that owns the slot in the slot map of the first running node.
    [[nodiscard]] std::size_t master_of_slot(std::uint16_t slot) const;
    // A running master other than `node` (to move a slot to); throws when there is none.
    [[nodiscard]] std::size_t another_master(std::size_t node) const;
    // CLUSTER MYID; remembered, so it is also known while the node is down.
    [[nodiscard]] std::string node_id(std::size_t i) const;
    // The hash slot of a key (CRC16-XMODEM of the key or of its hash tag, mod 16384).
    static std::uint16_t key_slot(std::string_view key);

    // Online resharding of one slot to a master, with its keys, while clients may keep using
    // the slot (they get ASK redirects meanwhile). migrate_slot() does all three steps.
    void migrate_slot(std::uint16_t slot, std::size_t to_node);
    // SETSLOT IMPORTING on the target, then SETSLOT MIGRATING on the current owner.
    void begin_migration(std::uint16_t slot, std::size_t to_node);
    // Moves at most `batch` keys of the slot (GETKEYSINSLOT + MIGRATE ... REPLACE KEYS); returns
    // how many keys were handed to MIGRATE, 0 once the source has none left.
    std::size_t migrate_keys(std::uint16_t slot, std::size_t batch = 100);
    // Moves the remaining keys, assigns the slot to the target on every master, waits.
    void finish_migration(std::uint16_t slot);

    // CLUSTER FAILOVER on a replica; waits until it is a master and everyone agrees.
    void failover(std::size_t replica_index);
    // SIGKILL; does not wait for anything. Remembers which slots the node owned.
    void kill_node(std::size_t i);
    // Same port and directory, so the node keeps its nodes.conf (and id); waits for convergence.
    void restart_node(std::size_t i);
    // Waits until one running node owns all the slots the killed master owned and the running
    // nodes have converged.
    void wait_for_failover_of(std::size_t killed_master);
    // Waits until the cluster has converged (see the top of this file).
    void wait_until_stable();

    // Starts a node and introduces it (CLUSTER MEET); as an empty master or as a replica of
    // `master` (CLUSTER REPLICATE). Returns its index.
    std::size_t add_node(bool as_replica_of_master = false, std::size_t master = 0);
    // Stops a replica or a master without slots and replicas, and makes every running node
    // forget it (CLUSTER FORGET). Indices above i shift down by one.
    void remove_node(std::size_t i);

    // redis-cli against one node (see redis_server::cli); pass "-c" first to follow redirects.
    std::string cli(std::size_t node, const std::vector<std::string>& args) const;
    // Who is who, and the first running node's CLUSTER NODES, for diagnostics.
    [[nodiscard]] std::string cluster_nodes() const;

  private:
    struct member {
        std::unique_ptr<redis_server> server;
        std::uint16_t bus_port = 0;
        std::string id;  // CLUSTER MYID, kept in nodes.conf across restarts
    };
    struct migration {
        std::string source_id;
        std::string target_id;
    };
    class link_pool;  // RESP connections to the nodes
    struct snapshot;  // every running node's view of the cluster at one moment

    [[nodiscard]] member start_member() const;
    [[nodiscard]] const member& at(std::size_t i) const;
    [[nodiscard]] std::size_t index_of(std::string_view id) const;
    [[nodiscard]] std::string label(std::string_view id) const;  // "node <index>", or the id
    [[nodiscard]] std::size_t first_running(
        std::size_t except = static_cast<std::size_t>(-1)) const;
    static void check_slot(std::uint16_t slot);
    // A command on node i; throws std::runtime_error if the node is down or answers an error.
    // The reply's first string (or integer, as text), or every element of an array reply.
    std::string call(std::size_t i, const std::vector<std::string>& args) const;
    std::vector<std::string> call_list(std::size_t i, const std::vector<std::string>& args) const;
    [[nodiscard]] std::string role(std::size_t i) const;  // "master" or "slave"
    // Slot ranges owned by a node id in node `ask`'s view.
    [[nodiscard]] std::vector<std::pair<std::uint16_t, std::uint16_t>> slots_of(
        const std::string& id, std::size_t ask) const;
    [[nodiscard]] std::string slot_owner_id(std::uint16_t slot) const;
    [[nodiscard]] snapshot take_snapshot() const;
    // Empty if the snapshot shows a converged cluster, otherwise everything that is off.
    [[nodiscard]] std::string convergence_problem(const snapshot& snap) const;
    // Polls until the cluster has converged and `extra` (if any) returns an empty string.
    void wait_for(std::string_view what,
                  const std::function<std::string(const snapshot&)>& extra = {}) const;
    [[nodiscard]] std::string diagnostics() const;  // every node's view and log tail

    redis_cluster_options opts_;
    std::vector<member> nodes_;
    std::map<std::uint16_t, migration> migrations_;
    // Slot ranges a node owned when kill_node() killed it, by node id.
    std::map<std::string, std::vector<std::pair<std::uint16_t, std::uint16_t>>> slots_of_killed_;
    std::unique_ptr<link_pool> links_;
};

}  // namespace respite::test
