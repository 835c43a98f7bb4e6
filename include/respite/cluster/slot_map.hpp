// Which master serves each hash slot: built from CLUSTER SHARDS or CLUSTER SLOTS, patched by MOVED.
//
// Sans-I/O: the caller runs the command and feeds the reply; redirects are applied with assign().
// Depends only on resp and the standard library.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <respite/cluster/slot.hpp>
#include <respite/resp/value.hpp>

namespace respite::cluster {

struct node_address {
    // As the cluster announces it: an IP, a hostname, or empty when the node did not know its
    // own address (then it is the host of the node that sent the reply).
    std::string host;
    std::uint16_t port = 0;

    // NOLINTNEXTLINE(modernize-use-nullptr): clang-tidy 14 misreads a defaulted <=>
    friend auto operator<=>(const node_address&, const node_address&) = default;
    friend bool operator==(const node_address&, const node_address&) = default;

    // "host:port", with an IPv6 host in brackets ("[::1]:6379").
    [[nodiscard]] std::string to_string() const;
};

struct cluster_node {
    std::string id;  // 40 hex characters; empty when not known (CLUSTER SLOTS of old servers,
                     // or a master learned from a MOVED redirect)
    node_address address;
    bool is_master = false;
    bool healthy = true;  // CLUSTER SHARDS health is "online"; CLUSTER SLOTS lists healthy nodes

    friend bool operator==(const cluster_node&, const cluster_node&) = default;
};

using slot_range = std::pair<std::uint16_t, std::uint16_t>;  // inclusive: first, last

struct shard {
    cluster_node master;
    std::vector<cluster_node> replicas;
    std::vector<slot_range> ranges;  // sorted, disjoint, adjacent ranges merged

    friend bool operator==(const shard&, const shard&) = default;
};

class slot_map {
  public:
    // An empty map: no shards, no slot assigned.
    slot_map();

    // CLUSTER SHARDS (Redis >= 7.0), RESP2 (flat key/value arrays) or RESP3 (maps). Each shard
    // needs exactly one master; a shard with no slots and no master is skipped. A node's host
    // is its `endpoint`, or its `ip` when the endpoint is "?" or empty; its port is `port`, or
    // `tls-port` when the node only has a TLS port. On a malformed reply (a missing or bad
    // field, a slot range outside 0..16383 or reversed, a slot owned twice): nullopt, and the
    // reason in *error.
    static std::optional<slot_map> from_cluster_shards(const resp::value& reply,
                                                       std::string* error = nullptr);
    // CLUSTER SLOTS (any version): ranges owned by the same master address form one shard,
    // whose replicas are those listed with its first range. A host of "?" or null is replaced
    // by the `ip` (then `hostname`) of the node's metadata.
    static std::optional<slot_map> from_cluster_slots(const resp::value& reply,
                                                      std::string* error = nullptr);

    // The shard serving `slot`, or nullptr when the slot is unassigned or out of range. O(1).
    [[nodiscard]] const shard* shard_of(std::uint16_t slot) const noexcept;
    // Every shard, in reply order (shards created by assign() last). Shards may own no slots.
    // At most slot_count shards come from a reply, and assign() adds only shards that own a
    // slot, so there are fewer than 2 * slot_count.
    [[nodiscard]] const std::vector<shard>& shards() const noexcept { return shards_; }
    [[nodiscard]] bool covers_all_slots() const noexcept;
    // The master address of every shard, in shard order, without duplicates.
    [[nodiscard]] std::vector<node_address> masters() const;
    [[nodiscard]] std::optional<node_address> master_of(std::uint16_t slot) const;

    // Applies a MOVED redirect: `slot` now belongs to the shard whose master has this address,
    // a new shard (master id unknown, no replicas) when no shard has it. The previous owner
    // keeps its other slots; when it has none left and its master id is unknown, it is
    // dropped (so redirects cannot grow the map without bound). Slots out of range are ignored.
    void assign(std::uint16_t slot, const node_address& master);

    // True when every slot is served by the same master address in both maps (unassigned in
    // both counts as the same).
    [[nodiscard]] bool same_routing(const slot_map& other) const noexcept;

  private:
    static constexpr std::uint16_t no_shard = 0xffff;

    const node_address* master_address(std::uint16_t slot) const noexcept;
    void rebuild_index();

    std::vector<shard> shards_;
    std::vector<std::uint16_t> index_;  // slot -> position in shards_, or no_shard
};

}  // namespace respite::cluster
