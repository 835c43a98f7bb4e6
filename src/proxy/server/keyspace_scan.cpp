// The per-node cursor of a keyspace SCAN and its topology checks.
#include "keyspace_scan.hpp"

#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace respite::proxy::server {

std::vector<std::string> migrations_in(std::string_view cluster_nodes) {
    std::vector<std::string> out;
    while (!cluster_nodes.empty()) {
        const auto eol = cluster_nodes.find('\n');
        auto line = cluster_nodes.substr(0, eol);
        cluster_nodes.remove_prefix(eol == std::string_view::npos ? cluster_nodes.size() : eol + 1);
        // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
        std::size_t field = 0;
        bool myself = false;
        while (!line.empty()) {
            const auto sp = line.find(' ');
            auto word = line.substr(0, sp);
            line.remove_prefix(sp == std::string_view::npos ? line.size() : sp + 1);
            if (!word.empty() && word.back() == '\r')
                word.remove_suffix(1);
            if (word.empty())
                continue;
            if (field == 2)
                myself = word.find("myself") != std::string_view::npos;
            if (field == 2 && !myself)
                break;
            if (field >= 8 && word.front() == '[')
                out.emplace_back(word);
            ++field;
        }
        if (myself)
            break;
    }
    return out;
}

void keyspace_scan::begin(topology_view start) {
    start_ = std::move(start);
    nodes_ = start_.cluster ? start_.map.masters() : std::vector<cluster::node_address>{};
    if (nodes_.empty())
        nodes_.emplace_back();  // a standalone Redis: exec() reaches its one node
    index_ = 0;
    cursor_.assign(1, '0');  // not `= "0"`: a false -Wrestrict of GCC 12
    begun_ = true;
}

void keyspace_scan::restart() noexcept {
    begun_ = false;
    index_ = 0;
    cursor_.assign(1, '0');  // not `= "0"`: a false -Wrestrict of GCC 12
}

keyspace_scan::step keyspace_scan::advance(std::string next_cursor) {
    cursor_ = std::move(next_cursor);
    if (cursor_ != "0")
        return step::page;
    if (index_ + 1 < nodes_.size()) {
        ++index_;
        return step::node_done;
    }
    return step::pass_done;
}

std::optional<std::string> keyspace_scan::broken_by(const topology_view& now) const {
    if (!start_.cluster)
        return std::nullopt;
    if (!now.unsettled.empty())
        return fmt::format("topology not settled: {}", fmt::join(now.unsettled, ", "));
    if (!start_.map.same_routing(now.map))
        return std::string("the slot map changed (resharding or failover)");
    return std::nullopt;
}

}  // namespace respite::proxy::server
