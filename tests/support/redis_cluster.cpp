// Test fixture implementation: starts the nodes, drives resharding, failover and membership changes
// over a small blocking RESP2 client, and polls every node until the cluster has converged.
#include "support/redis_cluster.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <set>
#include <stdexcept>
#include <sys/socket.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace respite::test {
namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

constexpr milliseconds poll_interval{20};
// MIGRATE itself may take up to its own 5 s timeout.
constexpr milliseconds link_io_timeout{10000};
constexpr int bus_port_attempts = 3;
constexpr std::size_t finish_batch = 100;
constexpr std::size_t diagnostic_log_bytes = 2000;
constexpr std::uint16_t hash_slot_mask = redis_cluster::slot_count - 1;
const std::string loopback = "127.0.0.1";
const std::string migrate_timeout_ms = "5000";

// One RESP2 reply; nested for arrays.
struct reply {
    char type = 0;  // '+', '-', ':', '$' or '*'
    bool nil = false;
    std::string text;  // simple, error and bulk strings
    long long integer = 0;
    std::vector<reply> elements;

    [[nodiscard]] bool is_error() const { return type == '-'; }
};

// Parses one reply starting at pos; nullopt (pos unchanged) if buf does not hold all of it yet.
std::optional<reply> parse_reply(std::string_view buf, std::size_t& pos) {
    const auto eol = buf.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) {
        return std::nullopt;
    }
    reply r;
    r.type = buf[pos];
    const std::string_view line = buf.substr(pos + 1, eol - pos - 1);
    std::size_t next = eol + 2;
    long long number = 0;
    if (r.type == ':' || r.type == '$' || r.type == '*') {
        const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), number);
        if (ec != std::errc{} || end != line.data() + line.size()) {
            throw std::runtime_error("malformed RESP header: " + std::string(line));
        }
    }
    switch (r.type) {
        case '+':
        case '-':
            r.text = line;
            break;
        case ':':
            r.integer = number;
            break;
        case '$': {
            if (number < 0) {
                r.nil = true;
                break;
            }
            const auto len = static_cast<std::size_t>(number);
            if (buf.size() < next + len + 2) {
                return std::nullopt;
            }
            r.text = buf.substr(next, len);
            next += len + 2;
            break;
        }
        case '*':
            if (number < 0) {
                r.nil = true;
                break;
            }
            for (long long k = 0; k < number; ++k) {
                auto element = parse_reply(buf, next);
                if (!element) {
                    return std::nullopt;
                }
                r.elements.push_back(std::move(*element));
            }
            break;
        default:
            throw std::runtime_error("unexpected RESP type byte: " + std::string(1, r.type));
    }
    pos = next;
    return r;
}

std::string resp_request(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& arg : args) {
        out.append("$")
            .append(std::to_string(arg.size()))
            .append("\r\n")
            .append(arg)
            .append("\r\n");
    }
    return out;
}

std::string concat(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (const auto part : parts) {
        out += part;
    }
    return out;
}

std::string join(const std::vector<std::string>& args) {
    std::string out;
    for (const auto& arg : args) {
        if (!out.empty()) {
            out.push_back(' ');
        }
        out += arg;
    }
    return out;
}

// One blocking loopback connection to a node; every I/O is bounded by link_io_timeout.
class resp_link {
  public:
    explicit resp_link(int fd) : fd_(fd) {}
    ~resp_link() { ::close(fd_); }
    resp_link(const resp_link&) = delete;
    resp_link& operator=(const resp_link&) = delete;

    // nullptr if nobody listens on the port.
    static std::unique_ptr<resp_link> connect(std::uint16_t port) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            throw std::system_error(errno, std::generic_category(), "socket");
        }
        auto link = std::make_unique<resp_link>(fd);
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(link_io_timeout.count() / 1000);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
            return nullptr;
        }
        return link;
    }

    // True if the peer has closed (or reset) the connection; never blocks.
    [[nodiscard]] bool closed_by_peer() const {
        pollfd pfd{fd_, POLLIN | POLLRDHUP, 0};
        return ::poll(&pfd, 1, 0) != 0;  // idle connections never have unread data
    }

    // Sends the requests in one write and reads one reply per request; nullopt if the
    // connection fails or times out (the link is then unusable).
    std::optional<std::vector<reply>> exchange(
        const std::vector<std::vector<std::string>>& requests) {
        std::string out;
        for (const auto& args : requests) {
            out += resp_request(args);
        }
        for (std::size_t sent = 0; sent < out.size();) {
            const ssize_t n = ::send(fd_, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                return std::nullopt;
            }
            sent += static_cast<std::size_t>(n);
        }
        std::vector<reply> replies;
        std::string buf;
        std::size_t pos = 0;
        while (replies.size() < requests.size()) {
            if (auto r = parse_reply(buf, pos)) {
                replies.push_back(std::move(*r));
                continue;
            }
            char chunk[16384];
            const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n <= 0) {
                if (n < 0 && errno == EINTR) {
                    continue;
                }
                return std::nullopt;
            }
            buf.append(chunk, static_cast<std::size_t>(n));
        }
        return replies;
    }

  private:
    int fd_;
};

std::uint16_t crc16_xmodem(std::string_view data) {
    std::uint16_t crc = 0;
    for (const char c : data) {
        crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                      : static_cast<std::uint16_t>(crc << 1);
        }
    }
    return crc;
}

// "key:value" lines of INFO / CLUSTER INFO; empty if absent.
std::string info_field(std::string_view info, std::string_view key) {
    for (std::size_t at = 0; at < info.size();) {
        auto eol = info.find('\n', at);
        if (eol == std::string_view::npos) {
            eol = info.size();
        }
        std::string_view line = info.substr(at, eol - at);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
            return std::string(line.substr(key.size() + 1));
        }
        at = eol + 1;
    }
    return {};
}

std::vector<std::string> split(std::string_view text, char separator) {
    std::vector<std::string> out;
    for (std::size_t at = 0; at <= text.size();) {
        auto end = text.find(separator, at);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        if (end > at) {
            out.emplace_back(text.substr(at, end - at));
        }
        at = end + 1;
    }
    return out;
}

// One line of CLUSTER NODES.
struct node_entry {
    std::string id;
    std::string address;  // ip:port@cport[,hostname]
    std::vector<std::string> flags;
    std::string master_id;  // "-" for masters
    std::string link_state;

    [[nodiscard]] bool has_flag(std::string_view flag) const {
        return std::ranges::find(flags, flag) != flags.end();
    }
    [[nodiscard]] bool failing() const {
        return has_flag("fail") || has_flag("fail?") || has_flag("handshake") || has_flag("noaddr");
    }
    // What the rest of the cluster must agree on about this node.
    [[nodiscard]] std::string role() const {
        return has_flag("master") ? "master" : "replica of " + master_id;
    }
};

std::vector<node_entry> parse_cluster_nodes(std::string_view text) {
    std::vector<node_entry> out;
    for (const auto& line : split(text, '\n')) {
        const auto fields = split(line, ' ');
        if (fields.size() < 8) {
            continue;
        }
        out.push_back({fields[0], fields[1], split(fields[2], ','), fields[3], fields[7]});
    }
    return out;
}

const node_entry* find_entry(const std::vector<node_entry>& entries, std::string_view id) {
    const auto it = std::ranges::find(entries, id, &node_entry::id);
    return it == entries.end() ? nullptr : &*it;
}

// A run of slots with one owner, from CLUSTER SLOTS.
struct slot_range {
    std::uint16_t first = 0;
    std::uint16_t last = 0;
    std::string owner_id;

    bool operator==(const slot_range&) const = default;
};

std::string describe(const std::vector<slot_range>& slots, std::size_t k) {
    if (k >= slots.size()) {
        return "(nothing)";
    }
    return std::to_string(slots[k].first) + "-" + std::to_string(slots[k].last) + " -> " +
           slots[k].owner_id;
}

// Sorted, with neighbouring runs of one owner merged.
std::vector<slot_range> parse_cluster_slots(const reply& r) {
    std::vector<slot_range> out;
    for (const auto& entry : r.elements) {
        if (entry.elements.size() < 3 || entry.elements[2].elements.size() < 3) {
            throw std::runtime_error("unexpected CLUSTER SLOTS entry");
        }
        out.push_back({static_cast<std::uint16_t>(entry.elements[0].integer),
                       static_cast<std::uint16_t>(entry.elements[1].integer),
                       entry.elements[2].elements[2].text});
    }
    std::ranges::sort(out, {}, &slot_range::first);
    std::vector<slot_range> merged;
    for (auto& range : out) {
        if (!merged.empty() && merged.back().owner_id == range.owner_id &&
            merged.back().last + 1 == range.first) {
            merged.back().last = range.last;
        } else {
            merged.push_back(std::move(range));
        }
    }
    return merged;
}

const slot_range* range_of(const std::vector<slot_range>& slots, std::uint16_t slot) {
    for (const auto& range : slots) {
        if (range.first <= slot && slot <= range.last) {
            return &range;
        }
    }
    return nullptr;
}

// What one running node says about the cluster.
struct node_view {
    std::size_t index = 0;
    std::string cluster_info;
    std::vector<slot_range> slots;
    std::vector<node_entry> nodes;
    std::string replication_info;
};

}  // namespace

// Cached connections by port, re-opened when the node went away in between.
class redis_cluster::link_pool {
  public:
    std::optional<std::vector<reply>> try_exchange(
        std::uint16_t port, const std::vector<std::vector<std::string>>& requests) {
        auto& link = links_[port];
        if (link && link->closed_by_peer()) {
            link.reset();
        }
        if (!link) {
            link = resp_link::connect(port);
            if (!link) {
                return std::nullopt;
            }
        }
        auto replies = link->exchange(requests);
        if (!replies) {
            link.reset();
        }
        return replies;
    }

    void forget(std::uint16_t port) { links_.erase(port); }

  private:
    std::map<std::uint16_t, std::unique_ptr<resp_link>> links_;
};

struct redis_cluster::snapshot {
    std::vector<node_view> views;  // running nodes, in index order
    std::string problem;           // set if some running node did not answer
};

redis_cluster::redis_cluster(redis_cluster_options opts)
    : opts_(std::move(opts)), links_(std::make_unique<link_pool>()) {
    if (opts_.masters < 3 || opts_.replicas_per_master < 0) {
        throw std::invalid_argument(
            "redis_cluster: redis-cli --cluster create needs at least 3 masters and a "
            "non-negative number of replicas");
    }
    const auto count = static_cast<std::size_t>(opts_.masters) *
                       (1 + static_cast<std::size_t>(opts_.replicas_per_master));
    for (std::size_t i = 0; i < count; ++i) {
        nodes_.push_back(start_member());
        nodes_.back().id = call(i, {"CLUSTER", "MYID"});
    }
    std::vector<std::string> create{"--cluster", "create"};
    for (const auto& m : nodes_) {
        create.push_back(loopback + ":" + std::to_string(m.server->port()));
    }
    create.insert(create.end(), {"--cluster-replicas", std::to_string(opts_.replicas_per_master),
                                 "--cluster-yes"});
    const std::string out = nodes_.front().server->cli(create);
    if (out.find("[OK] All 16384 slots covered") == std::string::npos) {
        throw std::runtime_error("redis-cli " + join(create) + " failed:\n" + out + "\n" +
                                 diagnostics());
    }
    wait_for("the new cluster to converge");
}

redis_cluster::~redis_cluster() = default;

redis_cluster::member redis_cluster::start_member() const {
    for (int attempt = 1;; ++attempt) {
        // The default bus port (port + 10000) may be taken or above 65535: choose one.
        const std::uint16_t bus_port = free_port();
        redis_server_options server_opts;
        server_opts.config = {
            {"cluster-enabled", "yes"},
            {"cluster-config-file", "nodes.conf"},
            {"cluster-port", std::to_string(bus_port)},
            {"cluster-node-timeout", std::to_string(opts_.node_timeout.count())},
            {"cluster-allow-replica-migration", "no"},
            {"cluster-replica-validity-factor", "0"},
            {"appendonly", "no"},
            {"save", "\"\""},
            // The default delay (5 s) would hold every replica's first sync back.
            {"repl-diskless-sync-delay", "0"},
        };
        server_opts.config.insert(server_opts.config.end(), opts_.config.begin(),
                                  opts_.config.end());
        server_opts.start_timeout = opts_.start_timeout;
        try {
            return member{std::make_unique<redis_server>(std::move(server_opts)), bus_port, {}};
        } catch (const std::runtime_error& e) {
            const bool bus_port_taken =
                std::string_view(e.what()).find("Address already in use") != std::string::npos;
            if (!bus_port_taken || attempt == bus_port_attempts) {
                throw;
            }
        }
    }
}

redis_server& redis_cluster::node(std::size_t i) {
    return *at(i).server;
}

const redis_server& redis_cluster::node(std::size_t i) const {
    return *at(i).server;
}

const redis_cluster::member& redis_cluster::at(std::size_t i) const {
    if (i >= nodes_.size()) {
        throw std::out_of_range("redis_cluster: no node " + std::to_string(i) + " (size " +
                                std::to_string(nodes_.size()) + ")");
    }
    return nodes_[i];
}

std::vector<std::uint16_t> redis_cluster::ports() const {
    std::vector<std::uint16_t> out;
    for (const auto& m : nodes_) {
        out.push_back(m.server->port());
    }
    return out;
}

std::string redis_cluster::seed_host() const {
    return at(0).server->host();
}

std::uint16_t redis_cluster::seed_port() const {
    return at(0).server->port();
}

std::string redis_cluster::node_id(std::size_t i) const {
    return at(i).id;
}

std::size_t redis_cluster::index_of(std::string_view id) const {
    const auto it = std::ranges::find(nodes_, id, &member::id);
    if (it == nodes_.end()) {
        throw std::runtime_error("redis_cluster: node id " + std::string(id) +
                                 " is not one of this cluster's nodes");
    }
    return static_cast<std::size_t>(it - nodes_.begin());
}

std::string redis_cluster::label(std::string_view id) const {
    const auto it = std::ranges::find(nodes_, id, &member::id);
    if (it == nodes_.end()) {
        return std::string(id);
    }
    return "node " + std::to_string(it - nodes_.begin());
}

std::size_t redis_cluster::first_running(std::size_t except) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (i != except && nodes_[i].server->running()) {
            return i;
        }
    }
    throw std::runtime_error("redis_cluster: no node is running");
}

std::string redis_cluster::call(std::size_t i, const std::vector<std::string>& args) const {
    const auto list = call_list(i, args);
    return list.empty() ? std::string{} : list.front();
}

std::vector<std::string> redis_cluster::call_list(std::size_t i,
                                                  const std::vector<std::string>& args) const {
    const auto& m = at(i);
    const std::string who = "node " + std::to_string(i) + " (" + loopback + ":" +
                            std::to_string(m.server->port()) + "): " + join(args);
    if (!m.server->running()) {
        throw std::runtime_error("redis_cluster: " + who + ": the node is down");
    }
    auto replies = links_->try_exchange(m.server->port(), {args});
    if (!replies) {
        throw std::runtime_error("redis_cluster: " + who + ": no answer");
    }
    const reply& r = replies->front();
    if (r.is_error()) {
        throw std::runtime_error("redis_cluster: " + who + ": " + r.text);
    }
    std::vector<std::string> out;
    if (r.type == '*') {
        for (const auto& e : r.elements) {
            out.push_back(e.type == ':' ? std::to_string(e.integer) : e.text);
        }
    } else if (!r.nil) {
        out.push_back(r.type == ':' ? std::to_string(r.integer) : r.text);
    }
    return out;
}

std::string redis_cluster::role(std::size_t i) const {
    return call(i, {"ROLE"});
}

std::vector<std::size_t> redis_cluster::masters() const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].server->running() && role(i) == "master") {
            out.push_back(i);
        }
    }
    return out;
}

std::vector<std::size_t> redis_cluster::replicas() const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].server->running() && role(i) == "slave") {
            out.push_back(i);
        }
    }
    return out;
}

std::vector<std::pair<std::uint16_t, std::uint16_t>> redis_cluster::slots_of(
    const std::string& id, std::size_t ask) const {
    auto replies = links_->try_exchange(at(ask).server->port(), {{"CLUSTER", "SLOTS"}});
    if (!replies || replies->front().is_error()) {
        throw std::runtime_error("redis_cluster: node " + std::to_string(ask) +
                                 " did not answer CLUSTER SLOTS");
    }
    std::vector<std::pair<std::uint16_t, std::uint16_t>> out;
    for (const auto& range : parse_cluster_slots(replies->front())) {
        if (range.owner_id == id) {
            out.emplace_back(range.first, range.last);
        }
    }
    return out;
}

std::string redis_cluster::slot_owner_id(std::uint16_t slot) const {
    check_slot(slot);
    const std::size_t ask = first_running();
    auto replies = links_->try_exchange(at(ask).server->port(), {{"CLUSTER", "SLOTS"}});
    if (!replies || replies->front().is_error()) {
        throw std::runtime_error("redis_cluster: node " + std::to_string(ask) +
                                 " did not answer CLUSTER SLOTS");
    }
    const auto slots = parse_cluster_slots(replies->front());
    const slot_range* range = range_of(slots, slot);
    if (range == nullptr) {
        throw std::runtime_error("redis_cluster: slot " + std::to_string(slot) +
                                 " has no owner in node " + std::to_string(ask) + "'s view");
    }
    return range->owner_id;
}

std::size_t redis_cluster::another_master(std::size_t node) const {
    for (auto m : masters()) {
        if (m != node)
            return m;
    }
    throw std::runtime_error("redis_cluster: no master other than node " + std::to_string(node));
}

std::size_t redis_cluster::master_of_slot(std::uint16_t slot) const {
    return index_of(slot_owner_id(slot));
}

void redis_cluster::check_slot(std::uint16_t slot) {
    if (slot >= slot_count) {
        throw std::out_of_range("redis_cluster: no slot " + std::to_string(slot));
    }
}

std::uint16_t redis_cluster::key_slot(std::string_view key) {
    // Only the part between the first '{' and the next '}' counts, if it is not empty.
    if (const auto open = key.find('{'); open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close != open + 1) {
            key = key.substr(open + 1, close - open - 1);
        }
    }
    return static_cast<std::uint16_t>(crc16_xmodem(key) & hash_slot_mask);
}

void redis_cluster::migrate_slot(std::uint16_t slot, std::size_t to_node) {
    begin_migration(slot, to_node);
    finish_migration(slot);
}

void redis_cluster::begin_migration(std::uint16_t slot, std::size_t to_node) {
    check_slot(slot);
    if (migrations_.contains(slot)) {
        throw std::logic_error("redis_cluster: slot " + std::to_string(slot) +
                               " is already being migrated");
    }
    const std::string target_id = at(to_node).id;
    const std::string source_id = slot_owner_id(slot);
    if (source_id == target_id) {
        throw std::logic_error("redis_cluster: node " + std::to_string(to_node) +
                               " already owns slot " + std::to_string(slot));
    }
    const std::string s = std::to_string(slot);
    // The target must accept ASKING clients before the source starts sending them there.
    (void)call(to_node, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id});
    (void)call(index_of(source_id), {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id});
    migrations_[slot] = migration{source_id, target_id};
}

std::size_t redis_cluster::migrate_keys(std::uint16_t slot, std::size_t batch) {
    const auto it = migrations_.find(slot);
    if (it == migrations_.end()) {
        throw std::logic_error("redis_cluster: slot " + std::to_string(slot) +
                               " is not being migrated (call begin_migration first)");
    }
    const std::size_t source = index_of(it->second.source_id);
    const std::size_t target = index_of(it->second.target_id);
    const auto keys = call_list(
        source, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), std::to_string(batch)});
    if (keys.empty()) {
        return 0;
    }
    std::vector<std::string> migrate{"MIGRATE", loopback, std::to_string(at(target).server->port()),
                                     "",        "0",      migrate_timeout_ms,
                                     "REPLACE", "KEYS"};
    migrate.insert(migrate.end(), keys.begin(), keys.end());
    (void)call(source, migrate);  // OK, or NOKEY if they all vanished meanwhile
    return keys.size();
}

void redis_cluster::finish_migration(std::uint16_t slot) {
    while (migrate_keys(slot, finish_batch) > 0) {
    }
    const migration m = migrations_.at(slot);
    const std::size_t source = index_of(m.source_id);
    const std::size_t target = index_of(m.target_id);
    const std::string s = std::to_string(slot);
    // The target first, so that it claims the slot with a new config epoch; then the source,
    // which stops redirecting with ASK; then everyone else, rather than waiting for gossip.
    (void)call(target, {"CLUSTER", "SETSLOT", s, "NODE", m.target_id});
    (void)call(source, {"CLUSTER", "SETSLOT", s, "NODE", m.target_id});
    for (const std::size_t i : masters()) {
        if (i != source && i != target) {
            (void)call(i, {"CLUSTER", "SETSLOT", s, "NODE", m.target_id});
        }
    }
    migrations_.erase(slot);
    wait_for("slot " + s + " to belong to node " + std::to_string(target) + " everywhere",
             [&](const snapshot& snap) -> std::string {
                 const slot_range* range = range_of(snap.views.front().slots, slot);
                 if (range == nullptr || range->owner_id != m.target_id) {
                     return "slot " + s + " is still owned by " +
                            (range != nullptr ? label(range->owner_id) : "nobody");
                 }
                 return {};
             });
}

void redis_cluster::failover(std::size_t replica_index) {
    const auto replication = call(replica_index, {"INFO", "replication"});
    if (info_field(replication, "role") != "slave") {
        throw std::logic_error("redis_cluster: node " + std::to_string(replica_index) +
                               " is not a replica");
    }
    const std::string id = at(replica_index).id;
    std::string old_master_id;
    for (const auto& entry : parse_cluster_nodes(call(replica_index, {"CLUSTER", "NODES"}))) {
        if (entry.id == id) {
            old_master_id = entry.master_id;
        }
    }
    (void)call(replica_index, {"CLUSTER", "FAILOVER"});
    wait_for("node " + std::to_string(replica_index) + " to take over from its master",
             [&](const snapshot& snap) -> std::string {
                 const auto& nodes = snap.views.front().nodes;
                 const node_entry* promoted = find_entry(nodes, id);
                 if (promoted == nullptr || !promoted->has_flag("master")) {
                     return "node " + std::to_string(replica_index) + " is not a master yet";
                 }
                 const node_entry* old = find_entry(nodes, old_master_id);
                 const bool old_running = std::ranges::any_of(nodes_, [&](const member& m) {
                     return m.id == old_master_id && m.server->running();
                 });
                 if (old_running && (old == nullptr || old->master_id != id)) {
                     return "the old master, " + label(old_master_id) + ", is not its replica yet";
                 }
                 return {};
             });
}

void redis_cluster::kill_node(std::size_t i) {
    const member& m = at(i);
    if (!m.server->running()) {
        return;
    }
    const std::size_t ask = nodes_.size() > 1 ? first_running(i) : i;
    slots_of_killed_[m.id] = slots_of(m.id, ask);
    m.server->kill();
    links_->forget(m.server->port());
}

void redis_cluster::restart_node(std::size_t i) {
    const member& m = at(i);
    links_->forget(m.server->port());
    m.server->start();
    slots_of_killed_.erase(m.id);
    wait_for("node " + std::to_string(i) + " to rejoin");
}

void redis_cluster::wait_for_failover_of(std::size_t killed_master) {
    const member& m = at(killed_master);
    if (m.server->running()) {
        throw std::logic_error("redis_cluster: node " + std::to_string(killed_master) +
                               " is running");
    }
    const auto recorded = slots_of_killed_.find(m.id);
    const auto slots =
        recorded != slots_of_killed_.end() ? recorded->second : slots_of(m.id, first_running());
    wait_for("another node to take over node " + std::to_string(killed_master) + "'s slots",
             [&](const snapshot& snap) -> std::string {
                 std::set<std::string> owners;
                 for (const auto& [first, last] : slots) {
                     for (std::uint32_t s = first; s <= last; ++s) {
                         const slot_range* range =
                             range_of(snap.views.front().slots, static_cast<std::uint16_t>(s));
                         owners.insert(range != nullptr ? label(range->owner_id) : "nobody");
                     }
                 }
                 if (owners.size() > 1 || owners.contains(label(m.id))) {
                     std::vector<std::string> list(owners.begin(), owners.end());
                     return "its slots are owned by " + join(list);
                 }
                 return {};
             });
}

void redis_cluster::wait_until_stable() {
    wait_for("the cluster to converge");
}

std::size_t redis_cluster::add_node(bool as_replica_of_master, std::size_t master) {
    std::string master_id;
    if (as_replica_of_master) {
        master_id = at(master).id;
        if (!at(master).server->running() || role(master) != "master") {
            throw std::logic_error("redis_cluster: node " + std::to_string(master) +
                                   " is not a running master");
        }
    }
    const std::size_t seed = first_running();
    nodes_.push_back(start_member());
    const std::size_t added = nodes_.size() - 1;
    nodes_.back().id = call(added, {"CLUSTER", "MYID"});
    (void)call(added, {"CLUSTER", "MEET", loopback, std::to_string(at(seed).server->port()),
                       std::to_string(at(seed).bus_port)});
    const std::string name = "node " + std::to_string(added);
    wait_for(name + " to join");
    if (as_replica_of_master) {
        (void)call(added, {"CLUSTER", "REPLICATE", master_id});
        const std::string id = nodes_.back().id;
        wait_for(name + " to replicate node " + std::to_string(master),
                 [&](const snapshot& snap) -> std::string {
                     const node_entry* entry = find_entry(snap.views.front().nodes, id);
                     if (entry == nullptr || entry->master_id != master_id) {
                         return name + " is not a replica of " + label(master_id) + " yet";
                     }
                     return {};
                 });
    }
    return added;
}

void redis_cluster::remove_node(std::size_t i) {
    const member& m = at(i);
    const std::string id = m.id;
    if (nodes_.size() > 1) {
        const std::size_t ask = first_running(i);
        if (const auto owned = slots_of(id, ask); !owned.empty()) {
            throw std::logic_error("redis_cluster: node " + std::to_string(i) +
                                   " still owns slots; migrate them away first");
        }
        for (const auto& entry : parse_cluster_nodes(call(ask, {"CLUSTER", "NODES"}))) {
            if (entry.master_id == id) {
                throw std::logic_error("redis_cluster: node " + std::to_string(i) +
                                       " still has replicas");
            }
        }
    }
    // Stopped first, so that it cannot introduce itself again while the others forget it.
    m.server->stop();
    links_->forget(m.server->port());
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
        if (k != i && nodes_[k].server->running()) {
            (void)call(k, {"CLUSTER", "FORGET", id});
        }
    }
    nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(i));
    slots_of_killed_.erase(id);
    wait_for("the cluster to forget node " + std::to_string(i));
}

std::string redis_cluster::cli(std::size_t node, const std::vector<std::string>& args) const {
    return at(node).server->cli(args);
}

std::string redis_cluster::cluster_nodes() const {
    std::string out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const auto& m = nodes_[i];
        out += "node " + std::to_string(i) + " = " + loopback + ":" +
               std::to_string(m.server->port()) + " " + m.id +
               (m.server->running() ? "" : " (down)") + "\n";
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (!nodes_[i].server->running()) {
            continue;
        }
        auto replies = links_->try_exchange(nodes_[i].server->port(), {{"CLUSTER", "NODES"}});
        out += "CLUSTER NODES on node " + std::to_string(i) + ":\n" +
               (replies ? replies->front().text : "(no answer)\n");
        break;
    }
    return out;
}

redis_cluster::snapshot redis_cluster::take_snapshot() const {
    snapshot snap;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const auto& m = nodes_[i];
        if (!m.server->running()) {
            continue;
        }
        auto replies = links_->try_exchange(m.server->port(), {{"CLUSTER", "INFO"},
                                                               {"CLUSTER", "SLOTS"},
                                                               {"CLUSTER", "NODES"},
                                                               {"INFO", "replication"}});
        const std::string name = "node " + std::to_string(i);
        if (!replies) {
            snap.problem = name + " does not answer";
            return snap;
        }
        for (const auto& r : *replies) {
            if (r.is_error()) {
                snap.problem = name + " answers " + r.text;
                return snap;
            }
        }
        snap.views.push_back(node_view{i, (*replies)[0].text, parse_cluster_slots((*replies)[1]),
                                       parse_cluster_nodes((*replies)[2].text),
                                       (*replies)[3].text});
    }
    if (snap.views.empty()) {
        snap.problem = "no node is running";
    }
    return snap;
}

std::string redis_cluster::convergence_problem(const snapshot& snap) const {
    if (!snap.problem.empty()) {
        return snap.problem;
    }
    // All of them, not just the first: the first is often a consequence of a later one.
    std::string problems;
    const auto add = [&](std::initializer_list<std::string_view> parts) {
        problems += problems.empty() ? "" : "; ";
        problems += concat(parts);
    };
    const node_view& ref = snap.views.front();
    const auto name = [](std::size_t i) { return "node " + std::to_string(i); };
    const std::string ref_name = name(ref.index);
    for (const node_view& view : snap.views) {
        const std::string who = name(view.index);
        if (const auto state = info_field(view.cluster_info, "cluster_state"); state != "ok") {
            add({who, " reports cluster_state:", state});
        }
        if (const auto assigned = info_field(view.cluster_info, "cluster_slots_assigned");
            assigned != std::to_string(slot_count)) {
            add({who, " reports cluster_slots_assigned:", assigned});
        }
        if (view.slots != ref.slots) {
            std::size_t k = 0;
            while (k < view.slots.size() && k < ref.slots.size() && view.slots[k] == ref.slots[k]) {
                ++k;
            }
            add({who, " and ", ref_name, " disagree on the slot map: ", describe(view.slots, k),
                 " vs ", describe(ref.slots, k)});
        }
        for (const node_entry& entry : view.nodes) {
            if (std::ranges::find(nodes_, entry.id, &member::id) == nodes_.end()) {
                add({who, " knows a node that is not a member: ", entry.id, " ", entry.address});
            }
        }
        for (std::size_t k = 0; k < nodes_.size(); ++k) {
            const node_entry* entry = find_entry(view.nodes, nodes_[k].id);
            if (entry == nullptr) {
                add({who, " does not know ", name(k)});
                continue;
            }
            if (!nodes_[k].server->running()) {
                continue;
            }
            if (entry->failing()) {
                add({who, " flags ", name(k), " as ", join(entry->flags)});
            }
            if (entry->link_state != "connected") {
                add({who, "'s link to ", name(k), " is ", entry->link_state});
            }
            const node_entry* in_ref = find_entry(ref.nodes, nodes_[k].id);
            if (in_ref != nullptr && in_ref->role() != entry->role()) {
                add({who, " sees ", name(k), " as ", entry->role(), ", ", ref_name, " as ",
                     in_ref->role()});
            }
        }
        if (info_field(view.replication_info, "role") == "slave") {
            if (const auto link = info_field(view.replication_info, "master_link_status");
                link != "up") {
                add({"replica ", who, " reports master_link_status:", link});
            }
        }
    }
    for (const slot_range& range : ref.slots) {
        const auto owner = std::ranges::find(nodes_, range.owner_id, &member::id);
        if (owner == nodes_.end()) {
            add({"slots ", std::to_string(range.first), "-", std::to_string(range.last),
                 " belong to ", range.owner_id, ", which is not a member"});
        } else if (!owner->server->running()) {
            add({"slots ", std::to_string(range.first), "-", std::to_string(range.last),
                 " belong to ", name(static_cast<std::size_t>(owner - nodes_.begin())),
                 ", which is down"});
        }
    }
    return problems;
}

void redis_cluster::wait_for(std::string_view what,
                             const std::function<std::string(const snapshot&)>& extra) const {
    const auto deadline = steady::now() + opts_.start_timeout;
    for (;;) {
        const snapshot snap = take_snapshot();
        std::string problem = convergence_problem(snap);
        if (problem.empty() && extra) {
            problem = extra(snap);
        }
        if (problem.empty()) {
            return;
        }
        if (steady::now() >= deadline) {
            throw std::runtime_error("redis_cluster: gave up waiting " +
                                     std::to_string(opts_.start_timeout.count()) + " ms for " +
                                     std::string(what) + "; last problem: " + problem + "\n" +
                                     diagnostics());
        }
        std::this_thread::sleep_for(poll_interval);
    }
}

std::string redis_cluster::diagnostics() const {
    std::string out;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const auto& m = nodes_[i];
        out += "=== node " + std::to_string(i) + " " + loopback + ":" +
               std::to_string(m.server->port()) + " (bus " + std::to_string(m.bus_port) + ") " +
               m.id + (m.server->running() ? "" : " DOWN") + " ===\n";
        if (m.server->running()) {
            auto replies = links_->try_exchange(m.server->port(), {{"CLUSTER", "NODES"}});
            out += replies ? replies->front().text : "(CLUSTER NODES: no answer)\n";
        }
        out += m.server->log_tail(diagnostic_log_bytes) + "\n";
    }
    return out;
}

}  // namespace respite::test
