// The cursor of a SCAN over a whole keyspace: one node for a standalone Redis, every master in
// turn for a Redis Cluster, and the topology checks that say whether a pass may have missed keys.
//
// SCAN returns every key that exists on a node from the start to the end of its scan. On a
// cluster that holds only while the slots stay where they are: a slot that moves away from a node
// whose scan is under way, or into a node whose scan already ended, can hide keys. So a pass
// records the topology at its start and compares it with the topology at the end of each node's
// scan (and, cheaply, with the client's cached slot map after each page): a different slot map
// (resharding, failover, a master added or gone) or a slot in migration breaks the pass, and the
// caller scans the side again. A pass only starts on a settled topology (every slot covered, no
// migration, every master answered).
//
// Sans-I/O: the caller runs SCAN and CLUSTER NODES and feeds the results. Control thread only.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <respite/cluster/slot_map.hpp>

namespace respite::proxy::server {

// What a side's topology looked like at one moment.
struct topology_view {
    bool cluster = false;
    cluster::slot_map map;  // which master serves each slot (empty for a standalone Redis)
    // Why no guarantee can hold now: a slot in migration ("127.0.0.1:7001 [42->-<id>]"), a
    // master that did not answer, slots no master serves. Empty when settled.
    std::vector<std::string> unsettled;
};

// The slots in migration on the node that sent this CLUSTER NODES reply (its "myself" line's
// "[slot->-id]" / "[slot-<-id]" fields), each as "[...]".
std::vector<std::string> migrations_in(std::string_view cluster_nodes);

class keyspace_scan {
  public:
    // Starts a pass on a settled view: its masters in slot-map order, or the one standalone node.
    void begin(topology_view start);
    // No pass under way (before begin(), and after restart()).
    [[nodiscard]] bool begun() const noexcept { return begun_; }
    // Forgets the pass: the next begin() scans every node from cursor 0.
    void restart() noexcept;

    // The node and cursor of the next SCAN (an empty address for a standalone Redis).
    [[nodiscard]] const cluster::node_address& node() const { return nodes_.at(index_); }
    [[nodiscard]] const std::string& cursor() const noexcept { return cursor_; }
    [[nodiscard]] std::size_t node_count() const noexcept { return nodes_.size(); }
    [[nodiscard]] bool cluster() const noexcept { return start_.cluster; }

    enum class step : unsigned char {
        page,       // the node has more: SCAN it again from cursor()
        node_done,  // the node's scan ended; check the topology, then SCAN the next node
        pass_done,  // the last node's scan ended; check the topology, then the pass is done
    };
    // A SCAN reply's cursor.
    step advance(std::string next_cursor);

    // Why a pass that started with start() is no longer sure to have seen every key, given the
    // topology now (nullopt: it still is). `now` from a fresh read at a node's end, or the
    // client's cached map after a page (then with unsettled empty).
    [[nodiscard]] std::optional<std::string> broken_by(const topology_view& now) const;

  private:
    bool begun_ = false;
    topology_view start_;
    std::vector<cluster::node_address> nodes_;
    std::size_t index_ = 0;
    std::string cursor_ = "0";
};

}  // namespace respite::proxy::server
