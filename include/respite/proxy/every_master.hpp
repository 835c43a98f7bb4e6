// Keyless commands that a Redis Cluster node answers for its own slots only (DBSIZE, KEYS, SCAN,
// FLUSHALL, SCRIPT LOAD ...): which ones the proxy runs on every master, how the masters'
// replies combine into the reply one standalone server would give, and the SCAN cursor that
// walks the masters one after the other. Sans-I/O.
//
// Module boundary: part of respite_proxy_backend; depends on resp only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/cluster/slot_map.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy {

enum class every_master : std::uint8_t {
    no,           // routed by key, or keyless but cluster-wide already (PUBLISH, PING ...)
    first_reply,  // a write (FLUSHALL, FLUSHDB, SCRIPT LOAD/FLUSH, FUNCTION LOAD/FLUSH/
                  // DELETE/RESTORE): the first master's reply, or the first error
    sum,          // DBSIZE
    concat,       // KEYS
    all_of,       // SCRIPT EXISTS: 1 where every master has the script
    any_non_nil,  // RANDOMKEY: a key of a master that has one
    scan,         // SCAN: one master at a time (scan_cursor)
};

[[nodiscard]] every_master every_master_of(std::span<const std::string_view> args);

// One reply per master (not for `scan`, nor `no`): the first error reply if any, else the
// combination. `pick` chooses where any_non_nil starts looking (any number).
[[nodiscard]] resp::value combine_replies(every_master how, std::span<const resp::value> replies,
                                          std::size_t pick = 0);

// Masters in the order a cluster SCAN walks them: by address, so that resharding (slots moving
// between the same masters) keeps every master's place.
[[nodiscard]] std::vector<cluster::node_address> scan_order(std::vector<cluster::node_address> m);

// The cursor a client sees when the proxy serves a Redis Cluster: the master's place in
// scan_order (10 bits), a 7-bit check of that master's address (finds the master again when a
// master was added or removed before it) and the master's own cursor (46 bits; a cluster
// node's cursor is its slot (14 bits) above a per-slot table position, far below that). 63 bits
// in all, so that clients that parse the cursor as a signed 64-bit number read it too. 0 starts
// a scan at the first master and ends it after the last.
struct scan_cursor {
    static constexpr int k_node_bits = 46;
    static constexpr int k_check_bits = 7;
    static constexpr int k_index_bits = 10;
    static constexpr std::uint64_t k_max_node_cursor = (std::uint64_t{1} << k_node_bits) - 1;
    static constexpr std::size_t k_max_masters = std::size_t{1} << k_index_bits;

    std::size_t index = 0;          // place in scan_order
    std::uint8_t check = 0;         // address_check of that master (0 with index 0, cursor 0)
    std::uint64_t node_cursor = 0;  // that master's SCAN cursor

    // nullopt: not a number (Redis: "ERR invalid cursor").
    [[nodiscard]] static std::optional<scan_cursor> parse(std::string_view text);
    [[nodiscard]] std::uint64_t encode() const noexcept;
    [[nodiscard]] static std::uint8_t address_check(const cluster::node_address& n) noexcept;
};

// Where a cursor continues in today's masters (scan_order): the master at its place when the
// check agrees, else the master with that check elsewhere (one was added or removed before
// it), else the master now at its place from cursor 0 (that master was replaced, e.g. by a
// failover: its keys come again rather than not at all). nullopt: past the last master.
struct scan_step {
    std::size_t index;
    std::uint64_t node_cursor;
};
[[nodiscard]] std::optional<scan_step> resume_scan(const scan_cursor& c,
                                                   std::span<const cluster::node_address> masters);

// The client's cursor after master `index` of `count` answered `node_cursor` (0: it is done).
// nullopt: that cursor does not fit (k_max_node_cursor).
[[nodiscard]] std::optional<std::uint64_t> next_scan_cursor(
    std::span<const cluster::node_address> masters, std::size_t index, std::uint64_t node_cursor);

}  // namespace respite::proxy
