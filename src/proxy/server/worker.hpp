// A worker: one thread, one io_context, its clients, and its own upstream connections.
// Workers share nothing on the hot path but `shared_state` (read-mostly, atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <respite/cluster/slot_map.hpp>
#include <respite/commands/command_table.hpp>
#include <respite/obs/log_limiter.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/proxy/proxy.hpp>
#include <respite/proxy/script_bodies.hpp>

#include "classify.hpp"
#include "client_stream.hpp"
#include "upstream.hpp"

namespace respite::proxy {
class replayer;
class divergence_reporter;
}  // namespace respite::proxy

namespace respite::proxy::server {

enum class side : std::uint8_t { primary = 0, secondary = 1 };
[[nodiscard]] constexpr side other_side(side s) noexcept {
    return s == side::primary ? side::secondary : side::primary;
}
// "primary" / "secondary": the role, for logs, metrics labels and errors (never an address).
[[nodiscard]] constexpr const char* side_name(side s) noexcept {
    return s == side::primary ? "primary" : "secondary";
}
using replies_t = std::vector<resp::value>;

// Which side serves clients, which side follows, and whether reads are shadowed.
struct mode_plan {
    side serving = side::primary;
    bool follower = false;  // writes are replayed on the other side
    bool shadow = false;    // sampled reads are compared against the other side
};
// Inline: called for every command (out of line, GCC returned the 3-byte struct through the
// stack and the reload stalled on store forwarding, ~4% of the proxy's CPU at P=16).
constexpr mode_plan plan_of(mode m) noexcept {
    switch (m) {
        case mode::primary_only:
            return {side::primary, false, false};
        case mode::dual_write:
            return {side::primary, true, false};
        case mode::dual_write_shadow:
            return {side::primary, true, true};
        case mode::secondary_primary:
            return {side::secondary, true, true};
        case mode::secondary_only:
            return {side::secondary, false, false};
    }
    return {};
}

class session;
class pubsub_hub;
class shadow_reader;
class bulk_sync;
class restart_watch;

// Process-wide state every worker reads.
class worker;

struct shared_state {
    proxy_config cfg;
    // Script bodies seen through the proxy: EVALSHA is replayed as EVAL of its body.
    script_bodies scripts;
    commands::command_table table;        // the primary's COMMAND reply, or the builtin table
    std::unique_ptr<classifier> classes;  // routes precomputed from `table`
    std::atomic<mode> current{mode::dual_write};
    // Set during a mode switch that changes the serving side: new writes wait.
    std::atomic<bool> writes_paused{false};
    std::atomic<std::int64_t> writes_in_flight{0};
    // Switches that left a following mode (the writes until the next one were not replayed):
    // a PROXY SYNC that saw one cannot vouch for the copy, however short the gap.
    std::atomic<std::uint64_t> follow_gaps{0};
    std::atomic<std::size_t> clients{0};
    std::atomic<std::size_t> handshakes{0};  // TLS handshakes under way: count as clients
    std::atomic<bool> draining{false};
    std::atomic<bool> shutting_down{false};     // the shutdown delay: not ready, still serving
    std::atomic<double> shadow_percent{100.0};  // PROXY SHADOW PERCENT changes it at run time
    // The pub/sub shadow's counters over every worker's hub (each adds its changes every tick).
    struct pubsub_shadow_totals {
        std::atomic<std::uint64_t> matched{0};
        std::atomic<std::uint64_t> unverified{0};
        std::atomic<std::uint64_t> late{0};
        std::atomic<std::uint64_t> overflow{0};
        std::atomic<std::int64_t> refused_names{0};  // twins the other side refuses now
    } pubsub_shadow;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

    std::shared_ptr<backend> backends[2];  // decoded access (shadow reads, cluster, repairs)
    // A cluster side's commands for RESP2 clients go through a RESP2 cluster client: the
    // shapes of Redis's RESP2 replies (ZRANGE WITHSCORES flat, XREAD as an array of pairs,
    // *-1 against $-1, scores as Redis prints them) are not a conversion of its RESP3 ones.
    std::shared_ptr<backend> resp2_backends[2];
    [[nodiscard]] const std::shared_ptr<backend>& client_backend(side s, int proto) const {
        const auto i = static_cast<int>(s);
        return proto == 2 && resp2_backends[i] ? resp2_backends[i] : backends[i];
    }
    std::shared_ptr<replayer> replay_to[2];  // replay_to[s]: the replayer whose target is side s
    std::shared_ptr<divergence_reporter> divergences;
    std::shared_ptr<shadow_reader> shadows;
    std::shared_ptr<bulk_sync> sync;          // PROXY SYNC (runs on the control thread)
    std::shared_ptr<bulk_sync> verify;        // PROXY VERIFY (control thread)
    std::shared_ptr<restart_watch> restarts;  // backends' run_id checks (control thread)
    std::string server_version = "7.0.0";
    // PROXY MODE SET: runs the switch off the worker threads, then calls back with the reply.
    // (mode, force, who asked for the log, done(reply))
    std::function<void(mode, bool, std::string, std::function<void(std::string)>)>
        switch_mode_async;
    std::function<std::string()> info_text;  // the INFO proxy section
    asio::io_context* control = nullptr;     // admin thread: HTTP, mode switches, reports
    std::vector<worker*> workers;            // every worker (set before any client connects)

    obs::registry* metrics = nullptr;
    obs::counter* mode_switches = nullptr;
    obs::counter* rejected_clients = nullptr;
    obs::counter* accept_errors = nullptr;
    obs::counter* protocol_errors = nullptr;
    obs::counter* upstream_errors = nullptr;
    obs::counter* cancelled_blocking = nullptr;
    obs::counter* pushed_back = nullptr;
    obs::counter* output_limit_disconnects = nullptr;
    obs::counter* pinned_state_lost = nullptr;
    obs::counter* fence_held_writes = nullptr;  // writes that waited for a fenced copy
    obs::gauge* connected_clients = nullptr;
    obs::counter* tls_handshake_failures = nullptr;
    std::shared_ptr<asio::ssl::context> tls;              // client-facing TLS (nullptr: plain)
    std::shared_ptr<asio::ssl::context> upstream_tls[2];  // to each backend (nullptr: plain)
    // A raw upstream endpoint for side s in a protocol (address, credentials, TLS); with `node`,
    // that node of a cluster side instead of the configured seed.
    [[nodiscard]] upstream_endpoint endpoint(side s, int protocol,
                                             const cluster::node_address* node = nullptr) const;

    [[nodiscard]] bool has_secondary() const noexcept { return cfg.secondary.has_value(); }
    [[nodiscard]] const backend_config& backend_cfg(side s) const {
        return s == side::primary ? cfg.primary : *cfg.secondary;
    }
    // The replayer that follows writes served by `serving` (nullptr when none).
    [[nodiscard]] replayer* follower_of(side serving) const noexcept {
        return replay_to[serving == side::primary ? 1 : 0].get();
    }
};

class worker {
  public:
    worker(shared_state& st, std::size_t index);
    ~worker();

    void start_accepting(asio::ip::tcp::acceptor acceptor);
    void start_accepting_unix(asio::local::stream_protocol::acceptor acceptor);
    void run_thread();
    void stop_accepting();
    // Closes every client (after its pending replies were written, within the bound).
    void close_clients();
    // A mode switch moves the serving side away from `s`: clients holding state there (MULTI,
    // WATCH, SELECT, blocked, subscribed, MONITOR, TRACKING) are closed once their replies are
    // written; they reconnect to the new side. Waits until the worker did it.
    std::size_t close_stateful(side s, bool blocked_only = false);
    void join();

    [[nodiscard]] asio::io_context& ioc() noexcept { return ioc_; }
    [[nodiscard]] shared_state& shared() noexcept { return st_; }
    [[nodiscard]] std::size_t index() const noexcept { return index_; }

    // The shared pipelined connection to a side in a protocol (reconnected on demand), or
    // nullptr when that side is unreachable right now (recent connect failure).
    std::shared_ptr<upstream> shared_upstream(side s, int protocol);
    // The same without a reference (none to count per forwarded command): valid until the next
    // call of either on this worker.
    upstream* shared_upstream_ptr(side s, int protocol) { return shared_slot(s, protocol).get(); }
    // A connection of its own (from the idle pool or new); with `node`, to that node of a
    // cluster side (pooled per node).
    std::shared_ptr<upstream> dedicated(side s, int protocol,
                                        const cluster::node_address* node = nullptr);
    // Back to the pool it came from when its state is clean, else closed.
    void release(std::shared_ptr<upstream> u, side s, bool clean,
                 const cluster::node_address* node = nullptr);

    // Cluster sides: the master that owns `slot` (nullopt while the cluster client has no map),
    // and every master; from the cluster client's slot map, cached for a second.
    std::optional<cluster::node_address> master_of(side s, std::uint16_t slot);
    std::vector<cluster::node_address> masters(side s);
    // A redirect showed the cached map is stale: fetch it again at the next lookup.
    void topology_changed(side s) { topology_[static_cast<int>(s)].fetched = {}; }
    // A shared pipelined RESP2 connection to one node of a cluster side (CLIENT UNBLOCK, putting
    // a popped value back), reconnected on demand.
    std::shared_ptr<upstream> node_upstream(side s, const cluster::node_address& node);

    pubsub_hub& hub(side s);

    // Per-command metrics, cached per worker (no registry lock on the hot path).
    void count_command(const command_class& c);
    // Gathered per worker and added to the shared histograms once per event-loop turn.
    void observe_latency(std::uint8_t route, std::uint64_t micros) {
        route_latency_[route & 7]->observe_us(micros);
        if (!latency_flush_posted_)
            post_latency_flush();
    }
    void session_closed(session* s);
    void session_opened(const std::shared_ptr<session>& s);
    // A session got replies from an upstream read: its output is written once, after every
    // reply of that read was delivered (not one write per reply, which would split a
    // pipeline's replies over several writes and wake the client for each).
    void defer_flush(std::shared_ptr<session> s);
    [[nodiscard]] std::size_t session_count() const noexcept { return sessions_.size(); }
    // Calls f(session&) for every live client of this worker (on this worker's thread only).
    template <class F>
    void each_session(F&& f) {
        auto copy = sessions_;  // f may close a session, which leaves sessions_
        for (auto& [p, weak] : copy)
            if (auto s = weak.lock())
                f(*s);
    }

  private:
    // The pool slot holding the shared connection of shared_upstream (a null slot: unreachable).
    const std::shared_ptr<upstream>& shared_slot(side s, int protocol);

    template <class Acceptor>
    void accept_loop(std::shared_ptr<Acceptor> acc);
    template <class Acceptor>
    void accept_failed(std::shared_ptr<Acceptor> acc, std::error_code ec);
    void handshake(asio::ip::tcp::socket s);
    // A server-side TLS handshake, dropped after `limit`; then(ec, stream).
    void tls_accept(asio::ip::tcp::socket s, std::chrono::seconds limit,
                    std::function<void(std::error_code, std::shared_ptr<client_stream::tls>)> then);
    static void close_leaving(session& s);
    // Over max clients with TLS: the handshake, then "-ERR max number of clients reached".
    void refuse_tls(asio::ip::tcp::socket s, std::string_view msg);
    std::size_t refusing_tls_ = 0;  // refusals under way (bounded)
    void open_session(client_stream stream);

    shared_state& st_;
    std::size_t index_;
    asio::io_context ioc_;
    std::thread thread_;
    std::shared_ptr<asio::ip::tcp::acceptor> tcp_acceptor_;
    obs::log_limiter accept_log_{std::chrono::seconds(1)};  // accept_failed's log lines
    std::shared_ptr<asio::local::stream_protocol::acceptor> unix_acceptor_;
    std::size_t next_shared_ = 0;
    std::vector<std::shared_ptr<upstream>> shared_pool_[2][2];  // [side][protocol 2/3]
    std::chrono::steady_clock::time_point last_failure_[2]{};
    std::vector<std::shared_ptr<upstream>> idle_[2][2];
    // Every dedicated connection handed out (closed at join()); pruned as it grows.
    void track_dedicated(const std::shared_ptr<upstream>& u);
    std::vector<std::weak_ptr<upstream>> dedicated_;
    std::size_t dedicated_prune_at_ = 64;
    struct cached_topology {
        cluster::slot_map map;
        std::chrono::steady_clock::time_point fetched{};
    };
    const cluster::slot_map& topology(side s);
    cached_topology topology_[2];
    // Cluster sides, by node address ("host:port"): idle dedicated connections, shared ones.
    std::map<std::string, std::vector<std::shared_ptr<upstream>>> node_idle_[2][2];
    std::map<std::string, std::shared_ptr<upstream>> node_shared_[2];
    // Closes the pooled connections of nodes that are not masters in `map` any more.
    void prune_nodes(side s, const cluster::slot_map& map);
    std::unique_ptr<pubsub_hub> hubs_[2];
    std::unordered_map<session*, std::weak_ptr<session>> sessions_;
    std::vector<std::shared_ptr<session>> deferred_flush_;
    void run_deferred_flush();
    std::vector<obs::counter*> command_counters_;  // by index in st_.table.specs()
    // Counts not yet added to command_counters_ (once per loop turn, with the latency batches:
    // no atomic add per command), the indexes touched since, and the `other` label's count.
    std::vector<std::uint64_t> command_pending_;
    std::vector<std::uint32_t> command_touched_;
    std::uint64_t other_pending_ = 0;
    obs::counter* other_counter_ = nullptr;
    std::unique_ptr<obs::histogram_batch> route_latency_[8];
    bool latency_flush_posted_ = false;
    void post_latency_flush();
    void flush_batches();  // the latency and per-command counts gathered since the last one
};

}  // namespace respite::proxy::server
