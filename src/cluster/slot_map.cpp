// The slot map: CLUSTER SHARDS / CLUSTER SLOTS readers, the slot index and MOVED updates.
#include <algorithm>
#include <iterator>
#include <string>

#include <respite/cluster/slot_map.hpp>

namespace respite::cluster {

namespace {

using resp::value;

bool fail(std::string* error, std::string reason) {
    if (error != nullptr)
        *error = std::move(reason);
    return false;
}

bool is_object(const value& v) noexcept {
    return v.type() == resp::type::map ||
           (v.type() == resp::type::array && v.elements().size() % 2 == 0);
}

// A field of a RESP3 map or of a RESP2 flat key, value, ... array; nullptr when absent.
const value* field(const value& obj, std::string_view key) noexcept {
    if (obj.type() == resp::type::map)
        return obj.find(key);
    const auto& e = obj.elements();
    for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
        if (e[i].is_string() && e[i].str() == key)
            return &e[i + 1];
    }
    return nullptr;
}

std::string_view text_of(const value* v) noexcept {
    return v != nullptr && v->is_string() ? std::string_view(v->str()) : std::string_view{};
}

bool read_slot(const value& v, std::uint16_t& out) noexcept {
    std::int64_t n = 0;
    if (!v.to_int64(n) || n < 0 || n >= slot_count)
        return false;
    out = static_cast<std::uint16_t>(n);
    return true;
}

// A port field: absent gives 0; present it must be an integer in 0..65535.
bool read_port(const value* v, std::uint16_t& out) noexcept {
    out = 0;
    if (v == nullptr)
        return true;
    std::int64_t n = 0;
    if (!v->to_int64(n) || n < 0 || n > 65535)
        return false;
    out = static_cast<std::uint16_t>(n);
    return true;
}

bool usable_host(std::string_view h) noexcept {
    return !h.empty() && h != "?";
}

// Adds [first, last] to sorted, disjoint ranges, merging neighbours.
void add_range(std::vector<slot_range>& ranges, slot_range r) {
    auto it = std::lower_bound(ranges.begin(), ranges.end(), r);
    it = ranges.insert(it, r);
    if (it != ranges.begin()) {
        auto prev = std::prev(it);
        if (prev->second + 1 >= it->first) {
            prev->second = std::max(prev->second, it->second);
            it = std::prev(ranges.erase(it));
        }
    }
    while (std::next(it) != ranges.end() && it->second + 1 >= std::next(it)->first) {
        it->second = std::max(it->second, std::next(it)->second);
        ranges.erase(std::next(it));
    }
}

void remove_slot(std::vector<slot_range>& ranges, std::uint16_t slot) {
    for (auto it = ranges.begin(); it != ranges.end(); ++it) {
        if (slot < it->first || slot > it->second)
            continue;
        if (it->first == it->second) {
            ranges.erase(it);
        } else if (slot == it->first) {
            ++it->first;
        } else if (slot == it->second) {
            --it->second;
        } else {
            const slot_range tail{static_cast<std::uint16_t>(slot + 1), it->second};
            it->second = static_cast<std::uint16_t>(slot - 1);
            ranges.insert(std::next(it), tail);
        }
        return;
    }
}

// Records that shard `owner` serves `r`; false when a slot already has an owner.
bool claim(std::vector<std::uint16_t>& index, slot_range r, std::uint16_t owner, std::uint16_t none,
           std::string* error) {
    for (unsigned s = r.first; s <= r.second; ++s) {
        if (index[s] != none && index[s] != owner)
            return fail(error, "slot " + std::to_string(s) + " is served by two shards");
        index[s] = owner;
    }
    return true;
}

// One node of a CLUSTER SHARDS shard.
bool read_shards_node(const value& v, cluster_node& out, std::string* error) {
    if (!is_object(v))
        return fail(error, "CLUSTER SHARDS node is not a map");
    out.id = std::string(text_of(field(v, "id")));
    std::uint16_t port = 0;
    std::uint16_t tls_port = 0;
    if (!read_port(field(v, "port"), port) || !read_port(field(v, "tls-port"), tls_port))
        return fail(error, "CLUSTER SHARDS node " + out.id + " has an invalid port");
    out.address.port = port != 0 ? port : tls_port;
    if (out.address.port == 0)
        return fail(error, "CLUSTER SHARDS node " + out.id + " has no port");
    const auto endpoint = text_of(field(v, "endpoint"));
    out.address.host = std::string(usable_host(endpoint) ? endpoint : text_of(field(v, "ip")));
    const auto role = text_of(field(v, "role"));
    if (role == "master")
        out.is_master = true;
    else if (role == "replica" || role == "slave")
        out.is_master = false;
    else
        return fail(error,
                    "CLUSTER SHARDS node " + out.id + " has role '" + std::string(role) + "'");
    const value* health = field(v, "health");
    out.healthy = health == nullptr || text_of(health) == "online";
    return true;
}

// One node of a CLUSTER SLOTS range: host, port[, id[, metadata]].
bool read_slots_node(const value& v, cluster_node& out, std::string* error) {
    if (v.type() != resp::type::array || v.size() < 2)
        return fail(error, "CLUSTER SLOTS node is not an array of at least host and port");
    if (!v[0].is_string() && !v[0].is_null())
        return fail(error, "CLUSTER SLOTS node host is not a string");
    if (v.size() > 2 && !v[2].is_string())
        return fail(error, "CLUSTER SLOTS node id is not a string");
    out.id = v.size() > 2 ? v[2].str() : std::string{};
    std::uint16_t port = 0;
    if (v[1].type() != resp::type::integer || !read_port(&v[1], port) || port == 0)
        return fail(error, "CLUSTER SLOTS node " + out.id + " has an invalid port");
    out.address.port = port;
    std::string_view host = text_of(&v[0]);
    if (!usable_host(host) && v.size() > 3 && is_object(v[3])) {
        const auto ip = text_of(field(v[3], "ip"));
        host = usable_host(ip) ? ip : text_of(field(v[3], "hostname"));
    }
    out.address.host = std::string(host == "?" ? std::string_view{} : host);
    out.healthy = true;
    return true;
}

}  // namespace

std::string node_address::to_string() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

slot_map::slot_map() : index_(slot_count, no_shard) {}

std::optional<slot_map> slot_map::from_cluster_shards(const resp::value& reply,
                                                      std::string* error) {
    if (reply.is_error()) {
        fail(error, "CLUSTER SHARDS failed: " + reply.str());
        return std::nullopt;
    }
    if (reply.type() != resp::type::array) {
        fail(error, "CLUSTER SHARDS reply is not an array");
        return std::nullopt;
    }
    slot_map map;
    for (const auto& s : reply.elements()) {
        if (!is_object(s)) {
            fail(error, "CLUSTER SHARDS shard is not a map");
            return std::nullopt;
        }
        const value* slots = field(s, "slots");
        const value* nodes = field(s, "nodes");
        if (slots == nullptr || slots->type() != resp::type::array || slots->size() % 2 != 0) {
            fail(error, "CLUSTER SHARDS shard has no even 'slots' array");
            return std::nullopt;
        }
        if (nodes == nullptr || nodes->type() != resp::type::array) {
            fail(error, "CLUSTER SHARDS shard has no 'nodes' array");
            return std::nullopt;
        }
        shard sh;
        for (std::size_t i = 0; i < slots->size(); i += 2) {
            slot_range r;
            if (!read_slot((*slots)[i], r.first) || !read_slot((*slots)[i + 1], r.second) ||
                r.first > r.second) {
                fail(error, "CLUSTER SHARDS shard has an invalid slot range");
                return std::nullopt;
            }
            add_range(sh.ranges, r);
        }
        bool has_master = false;
        for (const auto& n : nodes->elements()) {
            cluster_node node;
            if (!read_shards_node(n, node, error))
                return std::nullopt;
            if (!node.is_master) {
                sh.replicas.push_back(std::move(node));
            } else if (has_master) {
                fail(error, "CLUSTER SHARDS shard has two masters");
                return std::nullopt;
            } else {
                sh.master = std::move(node);
                has_master = true;
            }
        }
        if (!has_master) {
            if (sh.ranges.empty())
                continue;
            fail(error, "CLUSTER SHARDS shard serves slots but has no master");
            return std::nullopt;
        }
        if (map.shards_.size() >= slot_count) {
            fail(error, "CLUSTER SHARDS reply has too many shards");
            return std::nullopt;
        }
        const auto owner = static_cast<std::uint16_t>(map.shards_.size());
        for (const auto& r : sh.ranges) {
            if (!claim(map.index_, r, owner, no_shard, error))
                return std::nullopt;
        }
        map.shards_.push_back(std::move(sh));
    }
    return map;
}

std::optional<slot_map> slot_map::from_cluster_slots(const resp::value& reply, std::string* error) {
    if (reply.is_error()) {
        fail(error, "CLUSTER SLOTS failed: " + reply.str());
        return std::nullopt;
    }
    if (reply.type() != resp::type::array) {
        fail(error, "CLUSTER SLOTS reply is not an array");
        return std::nullopt;
    }
    slot_map map;
    for (const auto& e : reply.elements()) {
        if (e.type() != resp::type::array || e.size() < 3) {
            fail(error, "CLUSTER SLOTS entry is not an array of start, end and master");
            return std::nullopt;
        }
        slot_range r;
        if (!read_slot(e[0], r.first) || !read_slot(e[1], r.second) || r.first > r.second) {
            fail(error, "CLUSTER SLOTS entry has an invalid slot range");
            return std::nullopt;
        }
        cluster_node master;
        if (!read_slots_node(e[2], master, error))
            return std::nullopt;
        master.is_master = true;
        auto it = std::find_if(map.shards_.begin(), map.shards_.end(),
                               [&](const shard& s) { return s.master.address == master.address; });
        if (it == map.shards_.end()) {
            if (map.shards_.size() >= slot_count) {
                fail(error, "CLUSTER SLOTS reply has too many shards");
                return std::nullopt;
            }
            shard sh;
            sh.master = std::move(master);
            for (std::size_t i = 3; i < e.size(); ++i) {
                cluster_node replica;
                if (!read_slots_node(e[i], replica, error))
                    return std::nullopt;
                sh.replicas.push_back(std::move(replica));
            }
            map.shards_.push_back(std::move(sh));
            it = std::prev(map.shards_.end());
        } else {
            for (std::size_t i = 3; i < e.size(); ++i) {
                cluster_node replica;
                if (!read_slots_node(e[i], replica, error))
                    return std::nullopt;
            }
        }
        const auto owner = static_cast<std::uint16_t>(it - map.shards_.begin());
        if (!claim(map.index_, r, owner, no_shard, error))
            return std::nullopt;
        add_range(it->ranges, r);
    }
    return map;
}

const shard* slot_map::shard_of(std::uint16_t slot) const noexcept {
    // index_.size() is slot_count except in a moved-from map, which then serves nothing.
    if (slot >= index_.size() || index_[slot] == no_shard)
        return nullptr;
    return &shards_[index_[slot]];
}

bool slot_map::covers_all_slots() const noexcept {
    return index_.size() == slot_count &&
           std::find(index_.begin(), index_.end(), no_shard) == index_.end();
}

std::vector<node_address> slot_map::masters() const {
    std::vector<node_address> out;
    out.reserve(shards_.size());
    for (const auto& s : shards_) {
        if (std::find(out.begin(), out.end(), s.master.address) == out.end())
            out.push_back(s.master.address);
    }
    return out;
}

std::optional<node_address> slot_map::master_of(std::uint16_t slot) const {
    const node_address* a = master_address(slot);
    if (a == nullptr)
        return std::nullopt;
    return *a;
}

void slot_map::assign(std::uint16_t slot, const node_address& master) {
    if (slot >= slot_count)
        return;
    if (index_.size() != slot_count)
        rebuild_index();  // a moved-from map
    auto target = std::find_if(shards_.begin(), shards_.end(),
                               [&](const shard& s) { return s.master.address == master; });
    if (target == shards_.end()) {
        shard sh;
        sh.master.address = master;
        sh.master.is_master = true;
        sh.master.healthy = true;
        shards_.push_back(std::move(sh));
        target = std::prev(shards_.end());
    }
    const auto owner = static_cast<std::uint16_t>(target - shards_.begin());
    const auto previous = index_[slot];
    if (previous == owner)
        return;
    index_[slot] = owner;
    add_range(shards_[owner].ranges, {slot, slot});
    if (previous == no_shard)
        return;
    shard& old = shards_[previous];
    remove_slot(old.ranges, slot);
    // A master known only by its address (a redirect target) is forgotten with its last slot,
    // which bounds the shard count by the slot count whatever the redirects.
    if (old.ranges.empty() && old.master.id.empty()) {
        shards_.erase(shards_.begin() + previous);
        rebuild_index();
    }
}

bool slot_map::same_routing(const slot_map& other) const noexcept {
    for (std::uint16_t s = 0; s < slot_count; ++s) {
        const node_address* a = master_address(s);
        const node_address* b = other.master_address(s);
        if ((a == nullptr) != (b == nullptr))
            return false;
        if (a != nullptr && *a != *b)
            return false;
    }
    return true;
}

const node_address* slot_map::master_address(std::uint16_t slot) const noexcept {
    const shard* s = shard_of(slot);
    return s == nullptr ? nullptr : &s->master.address;
}

void slot_map::rebuild_index() {
    index_.assign(slot_count, no_shard);
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        for (const auto& r : shards_[i].ranges) {
            for (unsigned s = r.first; s <= r.second; ++s)
                index_[s] = static_cast<std::uint16_t>(i);
        }
    }
}

}  // namespace respite::cluster
