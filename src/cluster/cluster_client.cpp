// The cluster client's core: slot routing, redirects and retries, slot-map refresh, pipelines
// split per node, transactions pinned to a slot, fan-out, and sharded Pub/Sub placement. Runs on
// one executor; the facade posts to it.
#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <respite/cluster/cluster_client.hpp>
#include <respite/cluster/slot.hpp>
#include <respite/commands/command_table.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>
#include <respite/resp/request_parser.hpp>

namespace respite::cluster {

namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "respite.cluster"; }
    std::string message(int ev) const override {
        switch (static_cast<cluster_error>(ev)) {
            case cluster_error::ok:
                return "success";
            case cluster_error::crossslot:
                return "the keys of the command or transaction hash to different slots";
            case cluster_error::too_many_redirects:
                return "too many MOVED/ASK redirects for one command";
            case cluster_error::no_route:
                return "no cluster node is known for the slot (no reachable seed node)";
            case cluster_error::retries_exhausted:
                return "the cluster kept answering TRYAGAIN/CLUSTERDOWN/LOADING or a node stayed "
                       "unreachable until the command's deadline";
        }
        return "unknown respite.cluster error";
    }
};

using clock = std::chrono::steady_clock;
using client::connection;
using client::error;
using client::server_error_kind;

// One command of a request: where its arguments are in the flat argument list (views into the
// request's payload), its slot, and whether it only reads.
struct command_view {
    std::uint32_t first = 0;
    std::uint32_t count = 0;
    std::string_view bytes;  // the encoded command
    std::optional<std::uint16_t> slot;
    bool crossslot = false;
    bool readonly = false;
};

struct split_request {
    std::vector<command_view> cmds;
    std::vector<std::string_view> args;  // every command's arguments, back to back

    [[nodiscard]] std::span<const std::string_view> args_of(const command_view& c) const {
        return std::span<const std::string_view>(args).subspan(c.first, c.count);
    }
};

// Reads one `*N $len arg ...` command as our own writer encodes it (the common case), without
// the general request parser. Returns its length, or 0 to let the general parser decide.
std::size_t parse_own_encoding(std::string_view in, std::vector<std::string_view>& args) {
    auto number = [&in](std::size_t& pos, std::size_t& value) {
        value = 0;
        std::size_t start = pos;
        while (pos < in.size() && in[pos] >= '0' && in[pos] <= '9' && pos - start < 10) {
            value = value * 10 + static_cast<std::size_t>(in[pos++] - '0');
        }
        if (pos == start || pos + 1 >= in.size() || in[pos] != '\r' || in[pos + 1] != '\n') {
            return false;
        }
        pos += 2;
        return true;
    };
    args.clear();
    std::size_t pos = 1, n = 0;
    if (in.empty() || in[0] != '*' || !number(pos, n) || n == 0)
        return 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t len = 0;
        if (pos >= in.size() || in[pos] != '$')
            return 0;
        ++pos;
        if (!number(pos, len) || in.size() - pos < len + 2)
            return 0;
        if (in[pos + len] != '\r' || in[pos + len + 1] != '\n')
            return 0;
        args.push_back(in.substr(pos, len));
        pos += len + 2;
    }
    return pos;
}

// Splits an encoded request into its commands and computes each one's slot.
bool split(const std::string& payload, std::size_t commands, split_request& out) {
    resp::request_parser parser;
    std::string_view rest = payload;
    std::vector<std::size_t> keys;
    std::vector<std::string_view> one;
    const auto& table = commands::command_table::builtin();
    out.cmds.reserve(commands);
    out.args.reserve(commands * 3);
    while (!rest.empty()) {
        command_view c;
        std::size_t length = parse_own_encoding(rest, one);
        if (length == 0) {
            auto r = parser.parse(rest, one);
            if (!r.complete || r.error)
                return false;
            parser.reset();
            length = r.length;
        }
        c.bytes = rest.substr(0, length);
        rest.remove_prefix(length);
        c.first = static_cast<std::uint32_t>(out.args.size());
        c.count = static_cast<std::uint32_t>(one.size());
        out.args.insert(out.args.end(), one.begin(), one.end());
        if (const auto* spec = table.lookup(one)) {
            c.readonly = commands::is_readonly(*spec);
            if (table.key_positions(*spec, one, keys)) {
                for (auto k : keys) {
                    auto slot = hash_slot(one[k]);
                    if (c.slot && *c.slot != slot)
                        c.crossslot = true;
                    c.slot = slot;
                }
            }
        }
        out.cmds.push_back(c);
    }
    return true;
}

client::request to_request(std::span<const std::string_view> args) {
    client::request r;
    r.push_args(args);
    return r;
}

resp::value crossslot_reply() {
    return resp::value::simple_error("CROSSSLOT Keys in request don't hash to the same slot");
}

}  // namespace

const std::error_category& cluster_category() noexcept {
    static const category c;
    return c;
}

std::error_code make_error_code(cluster_error e) noexcept {
    return {static_cast<int>(e), cluster_category()};
}

namespace detail {

struct cluster_metrics {
    obs::counter& moved;
    obs::counter& ask;
    obs::counter& retries;
    obs::counter& refreshes;
    obs::counter& refresh_failures;
    obs::gauge& nodes;

    static cluster_metrics make(obs::registry& r) {
        return {
            r.get_counter("respite_cluster_redirects_total", "Redirects followed, by kind",
                          {{"kind", "moved"}}),
            r.get_counter("respite_cluster_redirects_total", "Redirects followed, by kind",
                          {{"kind", "ask"}}),
            r.get_counter("respite_cluster_retries_total",
                          "Commands retried after TRYAGAIN, CLUSTERDOWN, LOADING or an "
                          "unreachable node"),
            r.get_counter("respite_cluster_slot_map_refreshes_total", "Slot-map refreshes"),
            r.get_counter("respite_cluster_slot_map_refresh_failures_total",
                          "Slot-map refreshes that reached no node"),
            r.get_gauge("respite_cluster_nodes", "Nodes in the current slot map"),
        };
    }
};

// A single command making its way through redirects and retries.
struct operation {
    client::request req;
    std::optional<std::uint16_t> slot;
    bool readonly = false;
    int redirects = 0;
    int attempts = 0;
    clock::time_point deadline;
    std::optional<node_address> ask_to;
    std::optional<resp::value> last_error_reply;
    std::move_only_function<void(result<resp::value>)> done;
};

class cluster_core : public std::enable_shared_from_this<cluster_core> {
  public:
    using executor = asio::io_context::executor_type;

    cluster_core(executor ex, cluster_config cfg)
        : ex_(ex),
          cfg_(std::move(cfg)),
          registry_(cfg_.connection.metrics ? *cfg_.connection.metrics : obs::registry::global()),
          metrics_(cluster_metrics::make(registry_)),
          messages_(65536, registry_, cfg_.connection.metrics_label),
          refresh_timer_(ex),
          rng_(std::random_device{}()) {}

    // ---- lifecycle --------------------------------------------------------------------------

    void start() {
        refresh_now();
        schedule_periodic_refresh();
    }

    void close() {
        if (closed_)
            return;
        closed_ = true;
        refresh_timer_.cancel();
        for (auto& [a, c] : conns_)
            c->close();
        for (auto& [a, c] : replica_conns_)
            c->close();
        for (auto& [a, c] : pubsub_conns_)
            c->close();
        for (auto& [a, idle] : blocking_idle_) {
            for (auto& c : idle)
                c->close();
        }
        blocking_idle_.clear();
        auto busy = std::move(busy_);
        for (const auto& c : busy)
            c->close();
        conns_.clear();
        replica_conns_.clear();
        pubsub_conns_.clear();
        messages_.close();
        auto waiters = std::move(refresh_waiters_);
        for (auto& w : waiters)
            w(false);
    }

    template <class F>
    void run(F&& f) {
        if (ex_.running_in_this_thread()) {
            f();
        } else {
            asio::post(ex_, std::forward<F>(f));
        }
    }

    slot_map topology() const {
        std::lock_guard l(map_mu_);
        return map_;
    }

    // ---- connections ------------------------------------------------------------------------

    client::connection_config node_config(const node_address& a) const {
        auto c = cfg_.connection;
        c.host = a.host;
        c.port = a.port;
        c.unix_path.clear();
        c.metrics_node = a.to_string();
        // A dead node's commands fail fast, so they can be re-routed after a refresh.
        c.queue_while_disconnected = false;
        return c;
    }

    connection& conn(const node_address& a) {
        auto it = conns_.find(a);
        if (it == conns_.end()) {
            auto c = connection::create(ex_, node_config(a));
            c->set_push_handler([w = weak_from_this()](resp::value&& v) {
                if (auto self = w.lock())
                    self->on_push(std::move(v), {});
            });
            c->start();
            it = conns_.emplace(a, std::move(c)).first;
        }
        return *it->second;
    }

    std::shared_ptr<connection> take_blocking(const node_address& a) {
        auto& idle = blocking_idle_[a];
        std::shared_ptr<connection> c;
        if (!idle.empty()) {
            c = std::move(idle.back());
            idle.pop_back();
        } else {
            c = connection::create(ex_, node_config(a));
            c->start();
        }
        busy_.insert(c);
        return c;
    }

    void give_back_blocking(const node_address& a, const std::shared_ptr<connection>& c,
                            bool reusable) {
        busy_.erase(c);
        auto& idle = blocking_idle_[a];
        // A timed-out blocking command may still block server-side: never reuse that one.
        if (closed_ || !reusable || idle.size() >= 16) {
            c->close();
            return;
        }
        idle.push_back(c);
    }

    connection& replica_conn(const node_address& a) {
        auto it = replica_conns_.find(a);
        if (it == replica_conns_.end()) {
            auto cfg = node_config(a);
            cfg.init_commands.push_back({"READONLY"});
            auto c = connection::create(ex_, cfg);
            c->start();
            it = replica_conns_.emplace(a, std::move(c)).first;
        }
        return *it->second;
    }

    // ---- routing ----------------------------------------------------------------------------

    std::optional<node_address> any_master() {
        auto masters = map_.masters();
        if (masters.empty())
            return std::nullopt;
        std::uniform_int_distribution<std::size_t> d(0, masters.size() - 1);
        return masters[d(rng_)];
    }

    // Where a command goes: the slot's master, a replica for reads when asked for, some master
    // for keyless commands.
    // Where a command goes: the slot's master, a replica for reads when asked for, some master
    // for keyless commands. The address points into the slot map (valid until it changes).
    std::pair<const node_address*, bool> route(std::optional<std::uint16_t> slot, bool readonly) {
        if (!slot) {
            const auto& shards = map_.shards();
            if (shards.empty())
                return {nullptr, false};
            std::uniform_int_distribution<std::size_t> d(0, shards.size() - 1);
            return {&shards[d(rng_)].master.address, false};
        }
        const auto* s = map_.shard_of(*slot);
        if (!s)
            return {nullptr, false};
        if (readonly && cfg_.reads == read_preference::prefer_replica) {
            std::size_t healthy = 0;
            for (const auto& r : s->replicas)
                healthy += r.healthy ? 1 : 0;
            if (healthy > 0) {
                std::uniform_int_distribution<std::size_t> d(0, healthy - 1);
                auto pick = d(rng_);
                for (const auto& r : s->replicas) {
                    if (r.healthy && pick-- == 0)
                        return {&r.address, true};
                }
            }
        }
        return {&s->master.address, false};
    }

    clock::time_point deadline_for(const client::request& r) const {
        auto t = cfg_.connection.command_timeout;
        if (t.count() == 0)
            t = std::chrono::hours(24 * 365);
        if (r.blocking()) {
            auto b = r.block_duration();
            if (!b)
                return clock::time_point::max();
            t = std::max(t, *b + cfg_.connection.blocking_margin);
        }
        return clock::now() + t;
    }

    void command(client::request r, std::move_only_function<void(result<resp::value>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        split_request sr;
        if (r.size() != 1 || r.has_pubsub() || !split(r.payload(), r.size(), sr) ||
            sr.cmds.size() != 1) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        auto& cmds = sr.cmds;
        if (cmds[0].crossslot) {
            cb(std::unexpected(make_error_code(cluster_error::crossslot)));
            return;
        }
        auto op = std::make_shared<operation>();
        op->slot = cmds[0].slot;
        op->readonly = cmds[0].readonly;
        op->deadline = deadline_for(r);
        op->req = std::move(r);
        op->done = std::move(cb);
        execute(op);
    }

    void finish(const std::shared_ptr<operation>& op, result<resp::value> r) {
        if (!op->done)
            return;
        auto done = std::move(op->done);
        done(std::move(r));
    }

    void execute(const std::shared_ptr<operation>& op) {
        if (closed_) {
            finish(op, std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (!have_map_) {
            // No topology yet: wait for the first refresh (bounded by the deadline).
            when_refreshed([self = shared_from_this(), op](bool ok) {
                if (ok) {
                    self->execute(op);
                } else {
                    self->retry_later(op);
                }
            });
            return;
        }
        std::optional<node_address> target;
        bool replica = false;
        if (op->ask_to) {
            target = op->ask_to;
        } else if (auto [where, to_replica] = route(op->slot, op->readonly); where) {
            target = *where;
            replica = to_replica;
        }
        if (!target) {
            request_refresh();
            retry_later(op);
            return;
        }
        client::request to_send;
        const bool asking = op->ask_to.has_value();
        if (asking) {
            to_send.push("ASKING");
            to_send.append(op->req);
            op->ask_to.reset();  // one shot: the next attempt follows the map again
        }
        if (op->req.blocking() || op->req.has_connection_state()) {
            // A blocking command must not hold up the node's shared connection, and a command
            // that changes connection state (CLIENT, SELECT, ...) must not change it.
            auto dedicated = take_blocking(*target);
            dedicated->execute(asking ? to_send : op->req,
                               [self = shared_from_this(), op, target = *target, dedicated](
                                   std::error_code ec, std::vector<resp::value>& replies) mutable {
                                   self->give_back_blocking(target, dedicated,
                                                            !ec && !op->req.has_connection_state());
                                   self->on_reply(op, target, ec, replies);
                               });
            return;
        }
        auto& c = replica ? replica_conn(*target) : conn(*target);
        c.execute(asking ? to_send : op->req,
                  [self = shared_from_this(), op, target = *target](
                      std::error_code ec, std::vector<resp::value>& replies) mutable {
                      self->on_reply(op, target, ec, replies);
                  });
    }

    void on_reply(const std::shared_ptr<operation>& op, const node_address& target,
                  std::error_code ec, std::vector<resp::value>& replies) {
        if (ec) {
            if (ec == error::not_connected || ec == error::connect_failed) {
                // Never written: safe to send elsewhere once the map says where.
                request_refresh();
                retry_later(op);
                return;
            }
            if (ec == error::connection_lost)
                request_refresh();
            finish(op, std::unexpected(ec));
            return;
        }
        auto& v = replies.back();
        auto se = client::server_error_of(v);
        if (!se) {
            finish(op, std::move(v));
            return;
        }
        switch (se->kind()) {
            case server_error_kind::moved: {
                metrics_.moved.inc();
                auto ep = parse_endpoint(se->endpoint(), target);
                if (!ep || ++op->redirects > cfg_.max_redirects) {
                    finish(op, redirect_failure(v));
                    return;
                }
                if (auto slot = se->slot())
                    apply_moved(*slot, *ep);
                request_refresh();
                execute(op);
                return;
            }
            case server_error_kind::ask: {
                metrics_.ask.inc();
                auto ep = parse_endpoint(se->endpoint(), target);
                if (!ep || ++op->redirects > cfg_.max_redirects) {
                    finish(op, redirect_failure(v));
                    return;
                }
                op->ask_to = *ep;
                execute(op);
                return;
            }
            case server_error_kind::clusterdown:
                request_refresh();
                [[fallthrough]];
            case server_error_kind::tryagain:
                if (se->kind() == server_error_kind::tryagain && !cfg_.retry_tryagain) {
                    finish(op, std::move(v));
                    return;
                }
                [[fallthrough]];
            case server_error_kind::loading:
                op->last_error_reply = std::move(v);
                retry_later(op);
                return;
            default:
                finish(op, std::move(v));
                return;
        }
    }

    result<resp::value> redirect_failure(resp::value& last) {
        obs::log().warn("too_many_redirects last=\"{}\"", last.str());
        return std::unexpected(make_error_code(cluster_error::too_many_redirects));
    }

    static std::optional<node_address> parse_endpoint(std::optional<std::string_view> ep,
                                                      const node_address& from) {
        if (!ep)
            return std::nullopt;
        auto colon = ep->rfind(':');
        if (colon == std::string_view::npos)
            return std::nullopt;
        node_address a;
        a.host = std::string(ep->substr(0, colon));
        // An empty host ("MOVED 1 :6380") means the node we asked.
        if (a.host.empty())
            a.host = from.host;
        unsigned port = 0;
        auto digits = ep->substr(colon + 1);
        auto [p, e] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (e != std::errc{} || port == 0 || port > 65535)
            return std::nullopt;
        a.port = static_cast<std::uint16_t>(port);
        return a;
    }

    void apply_moved(std::uint16_t slot, const node_address& to) {
        std::lock_guard l(map_mu_);
        map_.assign(slot, to);
    }

    std::chrono::milliseconds retry_delay(int attempt) {
        long long ms = cfg_.retry_initial.count();
        for (int i = 0; i < attempt && ms < cfg_.retry_max.count(); ++i)
            ms *= 2;
        ms = std::min<long long>(std::max<long long>(ms, 1), cfg_.retry_max.count());
        std::uniform_int_distribution<long long> d(ms / 2, ms);
        return std::chrono::milliseconds(d(rng_));
    }

    void retry_later(const std::shared_ptr<operation>& op) {
        if (closed_) {
            finish(op, std::unexpected(make_error_code(error::closed)));
            return;
        }
        auto delay = retry_delay(op->attempts++);
        if (clock::now() + delay >= op->deadline) {
            if (op->last_error_reply) {
                finish(op, std::move(*op->last_error_reply));
            } else {
                finish(op, std::unexpected(make_error_code(cluster_error::retries_exhausted)));
            }
            return;
        }
        metrics_.retries.inc();
        auto t = std::make_shared<asio::steady_timer>(ex_, delay);
        t->async_wait([self = shared_from_this(), op, t](std::error_code) { self->execute(op); });
    }

    // ---- pipelines, transactions, fan-out ---------------------------------------------------

    // A pipeline's shared state: the request (its payload backs every command_view), one reply
    // slot per command, and the caller's completion.
    struct pipeline_state {
        client::request req;
        split_request split;
        std::vector<resp::value> replies;
        std::size_t pending = 0;
        std::optional<std::error_code> error;
        clock::time_point deadline;
        // Commands to send again (redirected, TRYAGAIN, node unreachable), one at a time in
        // submission order, so two commands on one key never swap places.
        std::deque<std::size_t> reroutes;
        bool rerouting = false;
        std::move_only_function<void(result<std::vector<resp::value>>)> cb;

        void complete(std::size_t i, result<resp::value> v) {
            if (v) {
                replies[i] = std::move(*v);
            } else if (!error) {
                error = v.error();
            }
            if (--pending == 0) {
                if (error) {
                    cb(std::unexpected(*error));
                } else {
                    cb(std::move(replies));
                }
            }
        }
    };

    void exec(client::request r,
              std::move_only_function<void(result<std::vector<resp::value>>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        auto p = std::make_shared<pipeline_state>();
        p->req = std::move(r);
        // Connection-state commands (MULTI, WATCH, CLIENT, ...) would change the node's shared
        // connection: transactions have async_transaction, single commands async_command.
        if (p->req.empty() || p->req.has_pubsub() || p->req.has_connection_state() ||
            !split(p->req.payload(), p->req.size(), p->split)) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        p->replies.resize(p->split.cmds.size());
        p->pending = p->split.cmds.size();
        p->deadline = deadline_for(p->req);
        p->cb = std::move(cb);
        if (!have_map_ || p->req.blocking()) {
            // No map yet (or blocking commands): every command takes the single-command path.
            for (std::size_t i = 0; i < p->split.cmds.size(); ++i)
                run_alone(p, i);
            return;
        }
        // One request per node: the commands for a node go out together in one write. A cluster
        // has few nodes, so the groups are found by a linear search.
        struct group {
            node_address target;
            bool replica;
            std::vector<std::size_t> indices;
            client::request batch;
        };
        std::vector<group> groups;
        groups.reserve(4);
        for (std::size_t i = 0; i < p->split.cmds.size(); ++i) {
            const auto& c = p->split.cmds[i];
            if (c.crossslot) {
                p->complete(i, crossslot_reply());
                continue;
            }
            auto [target, replica] = route(c.slot, c.readonly);
            if (!target) {
                run_alone(p, i);
                continue;
            }
            auto g = std::find_if(groups.begin(), groups.end(), [&](const group& x) {
                return x.replica == replica && x.target == *target;
            });
            if (g == groups.end()) {
                groups.push_back(group{*target, replica, {}, {}});
                g = std::prev(groups.end());
                g->indices.reserve(p->split.cmds.size());
            }
            g->indices.push_back(i);
            g->batch.append_encoded(c.bytes, 1);
        }
        for (auto& g : groups) {
            auto& c = g.replica ? replica_conn(g.target) : conn(g.target);
            c.execute(g.batch, [self = shared_from_this(), p, indices = std::move(g.indices)](
                                   std::error_code ec, std::vector<resp::value>& replies) {
                if (ec) {
                    // Never written: each command finds its way alone after a refresh.
                    if (ec == error::not_connected || ec == error::connect_failed) {
                        self->request_refresh();
                        for (auto i : indices)
                            self->reroute(p, i);
                    } else {
                        for (auto i : indices)
                            p->complete(i, std::unexpected(ec));
                    }
                    return;
                }
                for (std::size_t j = 0; j < indices.size(); ++j) {
                    auto se = client::server_error_of(replies[j]);
                    if (se && needs_rerouting(se->kind())) {
                        // Redirected or asked to retry: follow it on the single-command path.
                        self->reroute(p, indices[j]);
                    } else {
                        p->complete(indices[j], std::move(replies[j]));
                    }
                }
            });
        }
    }

    static bool needs_rerouting(server_error_kind k) {
        return k == server_error_kind::moved || k == server_error_kind::ask ||
               k == server_error_kind::tryagain || k == server_error_kind::clusterdown ||
               k == server_error_kind::loading;
    }

    void reroute(const std::shared_ptr<pipeline_state>& p, std::size_t i) {
        p->reroutes.push_back(i);
        if (!p->rerouting)
            next_reroute(p);
    }

    void next_reroute(const std::shared_ptr<pipeline_state>& p) {
        if (p->reroutes.empty()) {
            p->rerouting = false;
            return;
        }
        p->rerouting = true;
        auto i = p->reroutes.front();
        p->reroutes.pop_front();
        run_alone(p, i, [self = shared_from_this(), p] { self->next_reroute(p); });
    }

    // One command of a pipeline through redirects and retries on its own.
    void run_alone(const std::shared_ptr<pipeline_state>& p, std::size_t i,
                   std::move_only_function<void()> then = {}) {
        const auto& c = p->split.cmds[i];
        if (c.crossslot) {
            p->complete(i, crossslot_reply());
            if (then)
                then();
            return;
        }
        auto op = std::make_shared<operation>();
        op->slot = c.slot;
        op->readonly = c.readonly;
        op->deadline = p->deadline;
        op->req = to_request(p->split.args_of(c));
        op->done = [p, i, then = std::move(then)](result<resp::value> v) mutable {
            p->complete(i, std::move(v));
            if (then)
                then();
        };
        execute(op);
    }

    void transaction(client::request r,
                     std::move_only_function<void(result<std::vector<resp::value>>)> cb) {
        split_request sr;
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (r.empty() || r.has_pubsub() || r.has_connection_state() ||
            !split(r.payload(), r.size(), sr)) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        std::optional<std::uint16_t> slot;
        for (const auto& c : sr.cmds) {
            if (c.crossslot || (c.slot && slot && *c.slot != *slot)) {
                cb(std::unexpected(make_error_code(cluster_error::crossslot)));
                return;
            }
            if (c.slot)
                slot = c.slot;
        }
        auto tx = std::make_shared<transaction_state>();
        tx->body = std::move(r);
        tx->slot = slot;
        tx->deadline = deadline_for(tx->body);
        tx->cb = std::move(cb);
        run_transaction(tx);
    }

    struct transaction_state {
        client::request body;
        std::optional<std::uint16_t> slot;
        clock::time_point deadline;
        int redirects = 0;
        int attempts = 0;
        std::move_only_function<void(result<std::vector<resp::value>>)> cb;
    };

    void run_transaction(const std::shared_ptr<transaction_state>& tx) {
        if (closed_) {
            tx->cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        std::optional<node_address> target;
        if (have_map_)
            target = tx->slot ? map_.master_of(*tx->slot) : any_master();
        if (!target) {
            request_refresh();
            retry_transaction(tx, std::nullopt);
            return;
        }
        client::request whole = client::cmd("MULTI");
        whole.append(tx->body);
        whole.push("EXEC");
        auto n = tx->body.size();
        conn(*target).execute(whole, [self = shared_from_this(), tx, n, target = *target](
                                         std::error_code ec,
                                         std::vector<resp::value>& replies) mutable {
            if (ec) {
                if (ec == error::not_connected) {
                    self->request_refresh();
                    self->retry_transaction(tx, std::nullopt);
                    return;
                }
                tx->cb(std::unexpected(ec));
                return;
            }
            // A queued command redirected: Redis discarded the transaction; follow and retry.
            for (std::size_t i = 1; i <= n; ++i) {
                auto se = client::server_error_of(replies[i]);
                if (!se)
                    continue;
                if (se->kind() == server_error_kind::moved) {
                    self->metrics_.moved.inc();
                    if (auto ep = parse_endpoint(se->endpoint(), target); ep && se->slot()) {
                        self->apply_moved(*se->slot(), *ep);
                    }
                    self->request_refresh();
                    if (++tx->redirects > self->cfg_.max_redirects) {
                        tx->cb(std::unexpected(make_error_code(cluster_error::too_many_redirects)));
                        return;
                    }
                    self->run_transaction(tx);
                    return;
                }
                const bool migrating = se->kind() == server_error_kind::ask ||
                                       se->kind() == server_error_kind::tryagain;
                if (migrating && !self->cfg_.retry_tryagain) {
                    // As the node's EXECABORT: the transaction did not run.
                    tx->cb(std::unexpected(make_error_code(error::server_error)));
                    return;
                }
                if (migrating || se->kind() == server_error_kind::clusterdown ||
                    se->kind() == server_error_kind::loading) {
                    // The slot is moving: wait for the migration to finish, then retry.
                    self->retry_transaction(tx, std::move(replies[i]));
                    return;
                }
                // Refused while queued (OOM, NOPERM, READONLY ...): the node discarded it with
                // EXECABORT. Not an EXEC reply: a one-element array would read as one.
                obs::log().debug("cluster_transaction_refused reason=\"{}\"", replies[i].str());
                tx->cb(std::unexpected(make_error_code(error::server_error)));
                return;
            }
            auto& exec_reply = replies[n + 1];
            if (exec_reply.is_null()) {
                tx->cb(std::unexpected(make_error_code(error::transaction_aborted)));
            } else if (exec_reply.is_error()) {
                tx->cb(std::unexpected(make_error_code(error::server_error)));
            } else {
                tx->cb(std::move(exec_reply.elements()));
            }
        });
    }

    void retry_transaction(const std::shared_ptr<transaction_state>& tx,
                           std::optional<resp::value> last) {
        if (closed_) {
            tx->cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        auto delay = retry_delay(tx->attempts++);
        if (clock::now() + delay >= tx->deadline) {
            if (last) {
                obs::log().debug("cluster_transaction_retries_exhausted last=\"{}\"", last->str());
                tx->cb(std::unexpected(make_error_code(error::server_error)));
            } else {
                tx->cb(std::unexpected(make_error_code(cluster_error::retries_exhausted)));
            }
            return;
        }
        metrics_.retries.inc();
        auto t = std::make_shared<asio::steady_timer>(ex_, delay);
        t->async_wait(
            [self = shared_from_this(), tx, t](std::error_code) { self->run_transaction(tx); });
    }

    void on_all_masters(client::request r,
                        std::move_only_function<void(result<std::vector<resp::value>>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (r.size() != 1 || r.has_pubsub() || r.has_connection_state() || r.blocking()) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        if (!have_map_) {
            when_refreshed(
                [self = shared_from_this(), r = std::move(r), cb = std::move(cb)](bool ok) mutable {
                    if (!ok) {
                        cb(std::unexpected(make_error_code(cluster_error::no_route)));
                        return;
                    }
                    self->on_all_masters(std::move(r), std::move(cb));
                });
            return;
        }
        auto masters = map_.masters();
        struct gather {
            std::vector<resp::value> replies;
            std::size_t pending;
            std::optional<std::error_code> error;
            std::move_only_function<void(result<std::vector<resp::value>>)> cb;
        };
        auto g = std::make_shared<gather>();
        g->replies.resize(masters.size());
        g->pending = masters.size();
        g->cb = std::move(cb);
        if (masters.empty()) {
            g->cb(std::unexpected(make_error_code(cluster_error::no_route)));
            return;
        }
        for (std::size_t i = 0; i < masters.size(); ++i) {
            conn(masters[i])
                .execute(r, [g, i](std::error_code ec, std::vector<resp::value>& replies) {
                    if (ec) {
                        if (!g->error)
                            g->error = ec;
                    } else {
                        g->replies[i] = std::move(replies[0]);
                    }
                    if (--g->pending == 0) {
                        if (g->error) {
                            g->cb(std::unexpected(*g->error));
                        } else {
                            g->cb(std::move(g->replies));
                        }
                    }
                });
        }
    }

    void exec_on(const node_address& node, client::request r,
                 std::move_only_function<void(result<std::vector<resp::value>>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (r.empty() || r.has_pubsub() || r.has_connection_state() || r.blocking()) {
            cb(std::unexpected(make_error_code(error::invalid_argument)));
            return;
        }
        conn(node).execute(
            r, [cb = std::move(cb)](std::error_code ec, std::vector<resp::value>& replies) mutable {
                if (ec) {
                    cb(std::unexpected(ec));
                } else {
                    cb(std::move(replies));
                }
            });
    }

    // ---- slot map refresh -------------------------------------------------------------------

    void when_refreshed(std::move_only_function<void(bool)> f) {
        if (closed_) {
            f(false);
            return;
        }
        refresh_waiters_.push_back(std::move(f));
        if (!refreshing_)
            refresh_now();
    }

    // Coalesced: a storm of MOVED replies causes one refresh (and at most one every 100 ms).
    void request_refresh() {
        if (closed_)
            return;
        if (refreshing_) {
            // The running refresh may have read the old topology: run one more after it.
            refresh_again_ = true;
            return;
        }
        if (refresh_pending_)
            return;
        auto since = clock::now() - last_refresh_;
        auto gap = std::chrono::milliseconds(100);
        if (since >= gap) {
            refresh_now();
            return;
        }
        refresh_pending_ = true;
        auto t = std::make_shared<asio::steady_timer>(
            ex_, std::chrono::duration_cast<std::chrono::milliseconds>(gap - since));
        t->async_wait([self = shared_from_this(), t](std::error_code) {
            self->refresh_pending_ = false;
            if (!self->refreshing_)
                self->refresh_now();
        });
    }

    void schedule_periodic_refresh() {
        if (cfg_.refresh_interval.count() == 0 || closed_)
            return;
        auto base = cfg_.refresh_interval.count();
        std::uniform_int_distribution<long long> d(base * 8 / 10, base * 12 / 10);
        refresh_timer_.expires_after(std::chrono::milliseconds(d(rng_)));
        refresh_timer_.async_wait([w = weak_from_this()](std::error_code ec) {
            auto self = w.lock();
            if (ec || !self || self->closed_)
                return;
            if (!self->refreshing_)
                self->refresh_now();
            self->schedule_periodic_refresh();
        });
    }

    void refresh_now() {
        if (closed_)
            return;
        refreshing_ = true;
        metrics_.refreshes.inc();
        // Known masters first (shuffled), then the seeds.
        std::vector<node_address> candidates = map_.masters();
        std::shuffle(candidates.begin(), candidates.end(), rng_);
        for (const auto& s : cfg_.seeds) {
            if (std::find(candidates.begin(), candidates.end(), s) == candidates.end()) {
                candidates.push_back(s);
            }
        }
        try_refresh(std::make_shared<std::vector<node_address>>(std::move(candidates)), 0, true);
    }

    void try_refresh(std::shared_ptr<std::vector<node_address>> candidates, std::size_t i,
                     bool shards) {
        if (closed_)
            return;
        if (i >= candidates->size()) {
            metrics_.refresh_failures.inc();
            obs::log().warn("slot_map_refresh_failed tried={}", candidates->size());
            refresh_done(false);
            return;
        }
        auto req = shards ? client::cmd("CLUSTER", "SHARDS") : client::cmd("CLUSTER", "SLOTS");
        auto addr = (*candidates)[i];
        conn(addr).execute(req, [self = shared_from_this(), candidates, i, shards, addr](
                                    std::error_code ec, std::vector<resp::value>& replies) {
            if (ec) {
                self->try_refresh(candidates, i + 1, true);
                return;
            }
            auto& v = replies[0];
            if (v.is_error()) {
                // Before Redis 7 there is no CLUSTER SHARDS: ask the same node for SLOTS.
                if (shards) {
                    self->try_refresh(candidates, i, false);
                } else {
                    self->try_refresh(candidates, i + 1, true);
                }
                return;
            }
            std::string why;
            auto map = shards ? slot_map::from_cluster_shards(v, &why)
                              : slot_map::from_cluster_slots(v, &why);
            if (!map || map->shards().empty()) {
                obs::log().warn("slot_map_unusable node={} error=\"{}\"", addr.to_string(), why);
                self->try_refresh(candidates, i + 1, true);
                return;
            }
            self->install(std::move(*map));
            self->refresh_done(true);
        });
    }

    void refresh_done(bool ok) {
        refreshing_ = false;
        last_refresh_ = clock::now();
        auto waiters = std::move(refresh_waiters_);
        refresh_waiters_.clear();
        for (auto& w : waiters)
            w(ok);
        if (refresh_again_) {
            refresh_again_ = false;
            request_refresh();
        }
    }

    void install(slot_map map) {
        bool changed = !have_map_ || !map.same_routing(map_);
        {
            std::lock_guard l(map_mu_);
            map_ = std::move(map);
        }
        have_map_ = true;
        std::set<node_address> live;
        for (const auto& s : map_.shards()) {
            live.insert(s.master.address);
            for (const auto& r : s.replicas)
                live.insert(r.address);
        }
        metrics_.nodes.set(static_cast<double>(live.size()));
        // Nodes that left the cluster: close their idle connections.
        auto prune = [&](auto& conns) {
            for (auto it = conns.begin(); it != conns.end();) {
                bool seed =
                    std::find(cfg_.seeds.begin(), cfg_.seeds.end(), it->first) != cfg_.seeds.end();
                if (!live.count(it->first) && !seed && it->second->pending() == 0) {
                    it->second->close();
                    it = conns.erase(it);
                } else {
                    ++it;
                }
            }
        };
        prune(conns_);
        prune(replica_conns_);
        for (auto it = blocking_idle_.begin(); it != blocking_idle_.end();) {
            if (!live.count(it->first)) {
                for (auto& c : it->second)
                    c->close();
                it = blocking_idle_.erase(it);
            } else {
                ++it;
            }
        }
        if (changed) {
            obs::log().info("slot_map_changed shards={} nodes={}", map_.shards().size(),
                            live.size());
        }
        place_subscriptions();
        // Pub/Sub connections to nodes that left the map and hold no subscription any more.
        for (auto it = pubsub_conns_.begin(); it != pubsub_conns_.end();) {
            bool used = std::any_of(subs_.begin(), subs_.end(),
                                    [&](const auto& e) { return e.second == it->first; });
            if (!live.count(it->first) && !used) {
                it->second->close();
                it = pubsub_conns_.erase(it);
            } else {
                ++it;
            }
        }
    }

    // ---- pub/sub ----------------------------------------------------------------------------

    connection& pubsub_conn(const node_address& a) {
        auto it = pubsub_conns_.find(a);
        if (it == pubsub_conns_.end()) {
            auto c = connection::create(ex_, node_config(a));
            c->set_resp2_pubsub(true);
            c->set_push_handler([w = weak_from_this(), a](resp::value&& v) {
                if (auto self = w.lock())
                    self->on_push(std::move(v), a);
            });
            auto* raw = c.get();
            c->set_on_ready([w = weak_from_this(), a, raw] {
                auto self = w.lock();
                if (self && raw->connects() > 1)
                    self->resubscribe_node(a);
            });
            c->start();
            it = pubsub_conns_.emplace(a, std::move(c)).first;
        }
        return *it->second;
    }

    static std::string_view verb(client::subscription_kind k, bool subscribe) {
        switch (k) {
            case client::subscription_kind::pattern:
                return subscribe ? "PSUBSCRIBE" : "PUNSUBSCRIBE";
            case client::subscription_kind::shard_channel:
                return subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE";
            case client::subscription_kind::channel:
            default:
                return subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
        }
    }

    // Where a subscription lives: shard channels at their slot's master, the rest at a "home"
    // master (PUBLISH reaches every node of a cluster).
    std::optional<node_address> placement(client::subscription_kind k, const std::string& name) {
        if (!have_map_)
            return std::nullopt;
        if (k == client::subscription_kind::shard_channel)
            return map_.master_of(hash_slot(name));
        auto masters = map_.masters();
        if (!home_ || std::find(masters.begin(), masters.end(), *home_) == masters.end()) {
            if (masters.empty())
                return std::nullopt;
            home_ = masters.front();
        }
        return home_;
    }

    using sub_key = std::pair<client::subscription_kind, std::string>;

    void send_subscription(client::subscription_kind k, bool subscribe, const node_address& at,
                           std::vector<std::string> names,
                           std::move_only_function<void(std::error_code)> done) {
        std::vector<std::string_view> args{verb(k, subscribe)};
        for (const auto& n : names)
            args.push_back(n);
        client::request r;
        r.push_args(std::span<const std::string_view>(args));
        pubsub_conn(at).execute_pubsub(
            r, [done = std::move(done)](std::error_code ec, std::vector<resp::value>& rep) mutable {
                if (!ec && !rep.empty() && rep[0].is_error()) {
                    obs::log().warn("subscription_rejected error=\"{}\"", rep[0].str());
                    ec = make_error_code(error::server_error);
                }
                done(ec);
            });
    }

    void subscription(client::subscription_kind k, bool subscribe, std::vector<std::string> names,
                      std::move_only_function<void(result<void>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (names.empty()) {
            // Unsubscribe from everything of that kind.
            if (subscribe) {
                cb(std::unexpected(make_error_code(error::invalid_argument)));
                return;
            }
            for (const auto& [key, at] : subs_) {
                if (key.first == k)
                    names.push_back(key.second);
            }
            if (names.empty()) {
                cb(result<void>{});
                return;
            }
        }
        if (!have_map_) {
            when_refreshed([self = shared_from_this(), k, subscribe, names = std::move(names),
                            cb = std::move(cb)](bool ok) mutable {
                if (!ok) {
                    cb(std::unexpected(make_error_code(cluster_error::no_route)));
                    return;
                }
                self->subscription(k, subscribe, std::move(names), std::move(cb));
            });
            return;
        }
        // Group by node (and, for shard channels, by slot: SSUBSCRIBE takes one slot's channels).
        std::map<std::pair<node_address, int>, std::vector<std::string>> groups;
        for (auto& n : names) {
            std::optional<node_address> at;
            if (!subscribe) {
                auto it = subs_.find({k, n});
                if (it == subs_.end())
                    continue;
                at = it->second;
                subs_.erase(it);
            } else {
                at = placement(k, n);
                if (!at) {
                    cb(std::unexpected(make_error_code(cluster_error::no_route)));
                    return;
                }
                subs_[{k, n}] = *at;
            }
            int slot = k == client::subscription_kind::shard_channel ? hash_slot(n) : -1;
            groups[{*at, slot}].push_back(n);
        }
        if (groups.empty()) {
            cb(result<void>{});
            return;
        }
        struct gather {
            std::size_t pending;
            std::error_code first;
            std::move_only_function<void(result<void>)> cb;
        };
        auto g = std::make_shared<gather>(gather{groups.size(), {}, std::move(cb)});
        for (auto& [where, group] : groups) {
            auto names_copy = group;
            send_subscription(k, subscribe, where.first, std::move(group),
                              [self = shared_from_this(), g, k, subscribe,
                               names_copy = std::move(names_copy)](std::error_code ec) {
                                  if (ec && subscribe) {
                                      for (const auto& n : names_copy)
                                          self->subs_.erase({k, n});
                                  }
                                  if (ec && !g->first)
                                      g->first = ec;
                                  if (--g->pending == 0) {
                                      if (g->first) {
                                          g->cb(std::unexpected(g->first));
                                      } else {
                                          g->cb(result<void>{});
                                      }
                                  }
                              });
        }
    }

    // After a refresh: every subscription whose place changed moves there.
    void place_subscriptions() {
        std::map<std::tuple<node_address, client::subscription_kind, int>, std::vector<std::string>>
            moves;
        for (auto& [key, at] : subs_) {
            auto want = placement(key.first, key.second);
            if (!want || *want == at)
                continue;
            // Leave the old place if it is still reachable (it may be gone for good). Shard
            // channels need not: the server dropped them itself when the slot left.
            auto old = pubsub_conns_.find(at);
            if (key.first != client::subscription_kind::shard_channel &&
                old != pubsub_conns_.end() &&
                old->second->state() == client::connection_state::ready) {
                send_subscription(key.first, false, at, {key.second}, [](std::error_code) {});
            }
            at = *want;
            int slot =
                key.first == client::subscription_kind::shard_channel ? hash_slot(key.second) : -1;
            moves[{*want, key.first, slot}].push_back(key.second);
        }
        for (auto& [where, names] : moves) {
            obs::log().info("subscriptions_moved node={} count={}", std::get<0>(where).to_string(),
                            names.size());
            auto kind = std::get<1>(where);
            auto copy = names;
            send_subscription(
                kind, true, std::get<0>(where), std::move(names),
                [self = shared_from_this(), kind, copy = std::move(copy)](std::error_code ec) {
                    if (ec)
                        self->unplace(kind, copy);
                });
        }
    }

    // A pub/sub connection came back: restore what lived on it.
    void resubscribe_node(const node_address& a) {
        std::map<std::pair<client::subscription_kind, int>, std::vector<std::string>> groups;
        for (const auto& [key, at] : subs_) {
            if (at != a)
                continue;
            int slot =
                key.first == client::subscription_kind::shard_channel ? hash_slot(key.second) : -1;
            groups[{key.first, slot}].push_back(key.second);
        }
        for (auto& [kind_slot, names] : groups) {
            auto kind = kind_slot.first;
            auto copy = names;
            send_subscription(
                kind, true, a, std::move(names),
                [self = shared_from_this(), kind, copy = std::move(copy)](std::error_code ec) {
                    // E.g. MOVED: the node is a replica now; find the new owner.
                    if (ec)
                        self->unplace(kind, copy);
                });
        }
        request_refresh();
    }

    // Subscriptions that could not be (re)placed: the next refresh places them again, so a
    // failed move never leaves a subscription recorded where it does not exist.
    void unplace(client::subscription_kind kind, const std::vector<std::string>& names) {
        for (const auto& n : names) {
            auto it = subs_.find({kind, n});
            if (it != subs_.end())
                it->second = node_address{};
        }
        request_refresh();
    }

    void on_push(resp::value&& v, std::optional<node_address> from) {
        auto kind = client::push_kind(v);
        if (kind == "sunsubscribe" && from && v.size() >= 2 && v[1].is_string()) {
            // Unsolicited: the server dropped the shard channel because its slot moved away.
            auto it = subs_.find({client::subscription_kind::shard_channel, v[1].str()});
            if (it != subs_.end() && it->second == *from) {
                obs::log().info("shard_channel_slot_moved channel={}", obs::quoted{v[1].str()});
                request_refresh();
            }
            return;
        }
        if (auto m = client::to_message(std::move(v)))
            messages_.deliver(std::move(*m));
    }

    void session(std::string key, std::move_only_function<void(result<client::session>)> cb) {
        if (closed_) {
            cb(std::unexpected(make_error_code(error::closed)));
            return;
        }
        if (!have_map_) {
            when_refreshed([self = shared_from_this(), key = std::move(key),
                            cb = std::move(cb)](bool ok) mutable {
                if (!ok) {
                    cb(std::unexpected(make_error_code(cluster_error::no_route)));
                    return;
                }
                self->session(std::move(key), std::move(cb));
            });
            return;
        }
        auto target = map_.master_of(hash_slot(key));
        if (!target) {
            cb(std::unexpected(make_error_code(cluster_error::no_route)));
            return;
        }
        auto c = take_blocking(*target);
        std::weak_ptr<cluster_core> pool = shared_from_this();
        cb(client::session(shared_from_this(), std::move(c),
                           [pool, at = *target](std::shared_ptr<connection> conn, bool reusable) {
                               auto p = pool.lock();
                               if (!p || p->closed_)
                                   return;
                               p->run([p, at, conn = std::move(conn), reusable] {
                                   p->give_back_blocking(at, conn, reusable);
                               });
                           }));
    }

    void receive(std::move_only_function<void(result<client::message>)> cb) {
        messages_.receive(std::move(cb));
    }

    // The facade's own io_context when it has one: sessions may outlive the facade. Declared
    // first, so it is destroyed after every connection of the core.
    std::shared_ptr<asio::io_context> keep_alive_;
    executor ex_;
    cluster_config cfg_;
    obs::registry& registry_;
    cluster_metrics metrics_;
    client::message_queue messages_;
    asio::steady_timer refresh_timer_;
    std::mt19937_64 rng_;
    mutable std::mutex map_mu_;  // guards map_ writes and cross-thread reads (topology())
    slot_map map_;
    bool have_map_ = false;
    bool refreshing_ = false;
    bool refresh_pending_ = false;
    std::atomic<bool> closed_{false};
    clock::time_point last_refresh_{};
    std::vector<std::move_only_function<void(bool)>> refresh_waiters_;
    std::map<node_address, std::shared_ptr<connection>> conns_;
    std::map<node_address, std::shared_ptr<connection>> replica_conns_;
    std::map<node_address, std::shared_ptr<connection>> pubsub_conns_;
    std::map<node_address, std::vector<std::shared_ptr<connection>>> blocking_idle_;
    std::set<std::shared_ptr<connection>> busy_;  // dedicated connections in use
    bool refresh_again_ = false;
    std::map<sub_key, node_address> subs_;
    std::optional<node_address> home_;
};

}  // namespace detail

// ---- facade ---------------------------------------------------------------------------------

cluster_client::cluster_client(cluster_config cfg)
    : io_(std::make_unique<client::detail::io_thread>()) {
    core_ = std::make_shared<detail::cluster_core>(io_->context()->get_executor(), std::move(cfg));
    core_->keep_alive_ = io_->context();
    asio::post(*io_->context(), [c = core_] { c->start(); });
}

cluster_client::cluster_client(asio::io_context& ioc, cluster_config cfg)
    : core_(std::make_shared<detail::cluster_core>(ioc.get_executor(), std::move(cfg))) {
    asio::post(ioc, [c = core_] { c->start(); });
}

cluster_client::~cluster_client() {
    close();
    io_.reset();
}

void cluster_client::close() {
    auto c = core_;
    if (io_) {
        io_->run_and_wait([c] { c->close(); });
    } else {
        c->run([c] { c->close(); });
    }
}

void cluster_client::command(request r, client::detail::callback<resp::value> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->command(std::move(r), std::move(cb));
    });
}

void cluster_client::exec(request r, client::detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->exec(std::move(r), std::move(cb));
    });
}

void cluster_client::transaction(request r, client::detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->transaction(std::move(r), std::move(cb));
    });
}

void cluster_client::on_all_masters(request r,
                                    client::detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, r = std::move(r), cb = std::move(cb)]() mutable {
        c->on_all_masters(std::move(r), std::move(cb));
    });
}

void cluster_client::exec_on(node_address node, request r,
                             client::detail::callback<std::vector<resp::value>> cb) {
    core_->run([c = core_, n = std::move(node), r = std::move(r), cb = std::move(cb)]() mutable {
        c->exec_on(n, std::move(r), std::move(cb));
    });
}

void cluster_client::subscription(client::subscription_kind k, bool subscribe,
                                  std::vector<std::string> n, client::detail::callback<void> cb) {
    core_->run([c = core_, k, subscribe, n = std::move(n), cb = std::move(cb)]() mutable {
        c->subscription(k, subscribe, std::move(n), std::move(cb));
    });
}

void cluster_client::receive(client::detail::callback<client::message> cb) {
    core_->run([c = core_, cb = std::move(cb)]() mutable { c->receive(std::move(cb)); });
}

void cluster_client::set_message_handler(std::function<void(const client::message&)> handler) {
    core_->run(
        [c = core_, h = std::move(handler)]() mutable { c->messages_.set_handler(std::move(h)); });
}

void cluster_client::session(std::string key, client::detail::callback<client::session> cb) {
    core_->run([c = core_, k = std::move(key), cb = std::move(cb)]() mutable {
        c->session(std::move(k), std::move(cb));
    });
}

void cluster_client::refresh(client::detail::callback<void> cb) {
    core_->run([c = core_, cb = std::move(cb)]() mutable {
        c->when_refreshed([cb = std::move(cb)](bool ok) mutable {
            if (ok) {
                cb(result<void>{});
            } else {
                cb(std::unexpected(make_error_code(cluster_error::no_route)));
            }
        });
    });
}

slot_map cluster_client::topology() const {
    return core_->topology();
}

asio::io_context::executor_type cluster_client::executor() const noexcept {
    return core_->ex_;
}

}  // namespace respite::cluster
