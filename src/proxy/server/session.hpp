// One client connection: parses its commands, forwards them (raw) in order, answers the ones the
// proxy owns, pins an upstream connection when the client holds server-side state.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <asio/generic/stream_protocol.hpp>
#include <asio/steady_timer.hpp>

#include <respite/cluster/slot_map.hpp>
#include <respite/proxy/every_master.hpp>
#include <respite/proxy/merge_hint.hpp>
#include <respite/proxy/ring.hpp>
#include <respite/resp/request_parser.hpp>

#include "classify.hpp"
#include "client_stream.hpp"
#include "upstream.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

class session final : public reply_sink, public std::enable_shared_from_this<session> {
  public:
    using socket_type = client_stream;

    session(worker& w, client_stream stream);
    ~session() override;

    void start();
    // Closes after what was already answered is written (server shutdown, CLIENT KILL ...).
    void close_gracefully();
    void close_now();

    void on_reply(std::uint64_t tag, std::string_view frame) override;
    void on_failure(std::uint64_t tag, bool written) override;
    // Writes what replies completed since on_reply deferred it, and resumes input.
    void flush_deferred();

    // From the pub/sub hub: a push frame in RESP3 form ('>'), converted for RESP2 clients.
    void deliver_push(std::string_view resp3_push);
    // From the hub: the upstream confirmed a subscription this session asked for.
    void subscription_confirmed(std::uint8_t kind, std::string_view name);
    // From the hub: the server refused that subscription; the client gets its error.
    void subscription_failed(std::uint8_t kind, std::string_view name, std::string_view error);

    [[nodiscard]] int protocol() const noexcept { return proto_; }
    [[nodiscard]] bool blocked() const noexcept { return blocked_; }
    // Server-side state on side `s` that a switch of the serving side cannot carry over.
    [[nodiscard]] bool holds_state_on(side s) const noexcept {
        return (pinned_ && pinned_side_ == s) || (blocked_ && blocking_side_ == s) ||
               (in_multi_ && cluster_multi_ && cluster_multi_side_ == s) ||
               (subscribed() && pubsub_side_ == s) || (!monitors_.empty() && monitor_side_ == s);
    }
    [[nodiscard]] std::uint64_t id() const noexcept { return id_; }
    // This client as a line of CLIENT LIST (Redis's fields; on this session's worker thread).
    [[nodiscard]] std::string client_line() const;
    // What CLIENT KILL's filters look at (this session's worker thread).
    [[nodiscard]] const std::string& peer_address() const noexcept { return addr_; }
    [[nodiscard]] const std::string& local_address() const noexcept { return laddr_; }
    [[nodiscard]] std::string_view user() const noexcept {
        return user_.empty() ? std::string_view("default") : std::string_view(user_);
    }
    [[nodiscard]] bool pubsub_client() const noexcept { return subscribed(); }
    [[nodiscard]] std::chrono::steady_clock::time_point created() const noexcept {
        return created_;
    }

  private:
    enum class ctx_kind : std::uint8_t {
        none,
        write,
        read_shadow,
        blocking,
        exec,
        discard,
        pin_end,
        config_get,  // CONFIG GET: the backend's secrets are taken out of the reply
        info,        // INFO: a cluster node's reply reads as one standalone server's
        wait         // WAIT / WAITAOF: blocks like a blocking command, writes nothing
    };
    struct slot_ctx {
        ctx_kind kind = ctx_kind::none;
        side serving = side::primary;
        std::vector<std::string> args;    // the command (shadow / blocking)
        std::string request;              // the command as RESP bytes, for the follower
        std::vector<std::string> keys;    // keys begun in the follower (writes)
        std::vector<std::uint64_t> gens;  // blocking: the keys' generations at its start
        bool followed = false;            // follow_begin began it
        bool global = false;              // ... keyspace-wide
        bool verbatim = false;            // ... and its request bytes are its effect
        merge_hint merge;                 // ... which may join the next writes (follower)
        std::vector<std::vector<std::string>> queued;  // EXEC: the transaction's commands
        std::vector<std::uint32_t> info_at;            // EXEC: where INFO replies are in its array
        // A blocking command sent raw to a cluster node: a redirect (the slot moved) sends it
        // again through the cluster client instead of reaching the client.
        bool redirectable = false;
        std::chrono::steady_clock::time_point sent{};
        const command_class* cls = nullptr;
        command_class c{};
    };
    struct slot {
        bool done = false;
        std::string data;
        std::unique_ptr<slot_ctx> ctx;
        std::chrono::steady_clock::time_point started{};
        std::uint8_t route = 0;  // route of the command (latency histogram label)
    };

    void do_read();
    void process();
    // False when the command was not taken (held until a mode switch ends).
    bool handle(std::span<const std::string_view> args, std::string_view raw);
    void handle_local(const command_class& c, std::span<const std::string_view> args);
    void handle_transaction(const command_class& c, std::span<const std::string_view> args,
                            std::string_view raw);
    void handle_subscribe(std::span<const std::string_view> args);
    void handle_cluster_transaction(std::span<const std::string_view> args, side serving,
                                    std::string_view exec_abort);
    bool queue_cluster_command(std::span<const std::string_view> args);
    void handle_proxy_command(std::span<const std::string_view> args);
    void handle_hello(std::span<const std::string_view> args);
    // Refusal of a write on a connection that SELECTed another database, while followed.
    [[nodiscard]] std::string other_db_error(side serving) const;
    bool handle_auth(std::string_view user, std::string_view pass);

    // Sends the command to `u` with a fresh slot; ctx may be null.
    // patience: see upstream::send (blocking commands).
    void forward(upstream& u, std::span<const std::string_view> args, std::string_view raw,
                 std::unique_ptr<slot_ctx> ctx, std::chrono::milliseconds patience = {});
    void forward_decoded(side s, std::span<const std::string_view> args,
                         std::unique_ptr<slot_ctx> ctx);
    // The cluster client runs the command; its reply completes slot `seq`.
    void exec_decoded(std::uint64_t seq, side s, std::span<const std::string_view> args);
    // Cluster side: a keyless command a node answers for its own slots only (DBSIZE, KEYS,
    // FLUSHALL, SCRIPT LOAD ...) runs on every master; the combined reply completes slot `seq`
    // (session_masters.cpp). `refreshed`: the slot map was read again already.
    // Without a slot map of side s: refreshes it once and runs `again` on this worker (already
    // refreshed: the command fails as not sent).
    void refresh_then(std::uint64_t seq, side s, bool refreshed,
                      std::move_only_function<void()> again);
    void exec_on_masters(std::uint64_t seq, side s, std::vector<std::string> args, every_master how,
                         bool refreshed = false);
    void masters_answered(std::uint64_t seq, every_master how,
                          std::vector<client::result<replies_t>> results);
    // Cluster side: SCAN walks the masters one after the other (scan_cursor).
    void scan_masters(std::uint64_t seq, side s, std::vector<std::string> args,
                      bool refreshed = false);
    void scan_node(std::uint64_t seq, side s, std::vector<std::string> args,
                   std::vector<cluster::node_address> masters, std::size_t index,
                   std::uint64_t node_cursor);
    void scan_answered(std::uint64_t seq, side s, std::vector<std::string> args,
                       std::vector<cluster::node_address> masters, std::size_t index,
                       client::result<replies_t> r);
    // Blocking commands on a dedicated connection (to the slot's master on a cluster side).
    void handle_blocking(const command_class& c, side serving,
                         std::span<const std::string_view> args, std::string_view raw);
    // A raw blocking command got -MOVED/-ASK: run it through the cluster client instead.
    void redirect_blocking(std::uint64_t seq, slot_ctx& ctx);
    // MONITOR on a cluster side: one MONITOR connection per master, merged into this client.
    void monitor_cluster(side s, std::span<const std::string_view> args);
    // Opens the MONITOR of one master; `confirmed` gets its reply.
    void add_monitor(const cluster::node_address& node,
                     std::function<void(std::string_view)> confirmed);
    // Every second: MONITORs of new masters opened, of former masters and lost links closed.
    void follow_monitored_masters();
    void close_retired();
    void close_monitors();
    // The hash slot all of a command's keys share, k_no_keys, or k_cross_slot.
    static constexpr std::int32_t k_no_keys = -1;
    static constexpr std::int32_t k_cross_slot = -2;
    [[nodiscard]] std::int32_t command_slot(const command_class& c,
                                            std::span<const std::string_view> args) const;
    // A cluster pin takes the connection to the master of `slot`.
    bool acquire_pin(side s, std::int32_t slot);
    std::unique_ptr<slot_ctx> write_ctx(const command_class& c, side serving,
                                        std::span<const std::string_view> args,
                                        std::string_view raw, std::uint64_t origin, bool always);
    bool acquire_pin(side s) { return acquire_pin(s, k_no_keys); }
    std::unique_ptr<slot_ctx> take_ctx();
    void recycle_ctx(std::unique_ptr<slot_ctx> ctx);
    bool hold_briefly();
    // The last command forwarded went out on another backend connection than `next` (nullptr:
    // a connection not taken yet) and is not answered yet: sent now, `next` could run before
    // it (replies come back in order, execution across connections does not).
    [[nodiscard]] bool unanswered_elsewhere(const void* next) const noexcept {
        if (last_conn_ == nullptr || last_conn_ == next || last_conn_seq_ < head_seq_)
            return false;
        return !slots_[last_conn_seq_ - head_seq_].done;
    }
    void release_pin_if_unused();
    void after_reply(slot_ctx& ctx, std::string_view frame);
    void cancel_blocking();
    // CLIENT UNBLOCK on the backend for this client's blocked command (error: its ERROR form),
    // tried again while the command has not reached the server yet.
    void send_unblock(int attempt, bool error = false);
    // CLIENT UNBLOCK of this client by another: false when it is not blocked upstream.
    bool wake(bool error);
    void handle_wait(const command_class& c, side serving, std::span<const std::string_view> args,
                     std::string_view raw);
    void send_wait_when_due();
    bool refused_by_name(std::span<const std::string_view> args, ctx_kind& filter);
    void end_blocking();  // the blocking command's reply came: its dedicated connection goes back
    // Completes subscription confirmations still waiting for the upstream (all when no kind).
    void flush_pending_subs(std::optional<std::uint8_t> kind, std::string_view name);

    std::uint64_t alloc_slot(std::unique_ptr<slot_ctx> ctx = nullptr);
    void complete(std::uint64_t seq, std::string_view bytes);
    void reply(std::string_view bytes);     // a local reply in order
    void push_out(std::string_view bytes);  // a push (message, invalidation, MONITOR line)
    static constexpr std::uint8_t k_push_route = 0xff;
    void reply_error(std::string_view message);
    void reply_ok();
    void start_write();
    void defer_write();  // start_write() once the current upstream read was delivered
    // A reply about to be handed to the socket in this event-loop turn (a deferred write, or
    // output queued while no write is running). Not a write that makes no progress: a client
    // that does not read goes idle like in Redis (a completed write counts as activity).
    [[nodiscard]] bool output_due() const noexcept {
        return flush_deferred_ || (!out_.empty() && !write_in_progress_);
    }
    void check_output_limit();
    void resume_processing();
    void arm_idle_timer();

    // No --admin-user is named, or this session's user is one of them.
    [[nodiscard]] bool is_admin() const;
    // This session's user is named by --admin-user (none named: nobody is).
    [[nodiscard]] bool named_admin() const;
    // CLIENT LIST, CLIENT KILL, CLIENT INFO (session_clients.cpp).
    void client_list(std::span<const std::string_view> args);
    void client_kill(std::span<const std::string_view> args);
    void client_unblock(std::span<const std::string_view> args);
    void client_info();
    // Runs visit(session, out) over every client of every worker, each on its worker's thread,
    // then answers this command with done(everything they appended).
    void across_clients(std::function<void(session&, std::string&)> visit,
                        std::function<std::string(session&, std::string)> done);

    worker& w_;
    shared_state& st_;
    socket_type socket_;
    std::uint64_t id_;
    std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
    std::string addr_;                    // the peer, as CLIENT LIST shows it
    std::string laddr_;                   // the local end
    std::string_view last_cmd_ = "NULL";  // the table's name of the last command (CLIENT LIST)
    resp::request_parser parser_;
    // Until AUTH succeeded (when users are configured), as Redis: at most 10 arguments of at
    // most 16 KiB each, so a client without a password cannot make the proxy buffer 512 MB.
    resp::request_parser unauth_parser_;
    std::vector<std::string_view> args_;
    std::string read_buf_;  // the pending read's target (in_ may move meanwhile)
    std::string in_;        // received, not yet processed from in_start_
    std::size_t in_start_ = 0;
    bool reading_ = false;
    bool processing_ = false;
    std::uint8_t route_ = 0;  // route of the command being handled
    std::string out_;
    std::string writing_;
    bool write_in_progress_ = false;
    bool flush_deferred_ = false;  // queued in the worker's deferred flush
    ring<slot> slots_;
    std::vector<std::unique_ptr<slot_ctx>> ctx_pool_;  // finished contexts, for reuse
    std::uint64_t head_seq_ = 0;
    std::uint64_t next_seq_ = 0;
    bool closing_ = false;  // no more input is processed; close when output is written
    bool closed_ = false;

    int proto_ = 2;
    bool authenticated_ = false;
    std::string user_;  // the user of the last successful AUTH (empty: none)
    std::string name_;
    int db_ = 0;
    std::size_t held_bytes_ = 0;  // in slots_ done but behind one still due
    // SELECTed a database other than the backend's configured one (on a pinned connection).
    bool other_db_ = false;
    // Server-side state held on a pinned connection.
    std::shared_ptr<upstream> pinned_;
    side pinned_side_ = side::primary;
    std::optional<cluster::node_address> pinned_node_;  // cluster sides: the node pinned to
    // Former pinned connections (RESET) closed once the replies still due on them came.
    std::vector<std::shared_ptr<upstream>> retiring_;
    // Cluster MONITOR: one connection per master, kept in step with the masters (a failover, a
    // node added) every second by monitor_timer_.
    struct monitor_link {
        cluster::node_address node;
        std::shared_ptr<upstream> conn;
    };
    std::vector<monitor_link> monitors_;
    side monitor_side_ = side::primary;
    std::string monitor_cmd_;
    std::set<std::string, std::less<>> monitor_refused_;  // nodes whose refusal was logged
    std::unique_ptr<asio::steady_timer> monitor_timer_;
    std::uint64_t monitor_gen_ = 0;  // bumped when MONITOR connections are closed
    // A cluster MONITOR's +OK waits for every master's: the lines of the masters that confirmed
    // first wait behind it (push_out).
    bool monitor_confirming_ = false;
    bool in_multi_ = false;
    bool watching_ = false;
    bool sticky_pin_ = false;  // CLIENT TRACKING, MONITOR, SELECT n: until RESET / disconnect
    bool monitor_ = false;
    std::vector<std::vector<std::string>> queued_;  // MULTI: commands for the follower
    bool multi_replay_ = false;
    bool cluster_multi_ = false;    // MULTI queued here for a cluster backend
    side cluster_multi_side_{};     // the side that served at that MULTI
    bool multi_record_ = false;     // MULTI: the queued commands are kept for a follower
    bool multi_failed_ = false;     // a queued command was refused: EXEC aborts
    std::uint32_t multi_sent_ = 0;  // commands forwarded inside this MULTI
    std::vector<std::uint32_t> multi_info_at_;  // ... of which these were INFO
    // A blocking command in flight: input is not processed until its reply.
    bool blocked_ = false;
    std::shared_ptr<upstream> blocking_conn_;
    side blocking_side_ = side::primary;
    std::optional<cluster::node_address> blocking_node_;  // cluster sides: blocking_conn_'s node
    // WAIT / WAITAOF: sent once every earlier command of this client was answered (their writes
    // are on the server), behind a PUBLISH on the same connection, which moves that connection's
    // replication offset past them (Redis waits for the offset of the connection's last
    // propagated command, and the client's writes went over other connections).
    struct pending_wait {
        std::uint64_t seq = 0;
        std::string request;
        std::chrono::milliseconds patience{};
        std::string bump_error;  // the PUBLISH's error reply: the WAIT's count would not hold
        bool sent = false;
    };
    std::optional<pending_wait> wait_;
    bool waiting_pause_ = false;  // a write waits for a mode switch to finish
    bool fence_waiting_ = false;  // the command held is waiting for a fenced copy (counted once)
    // The connection of the last forwarded command and its slot (unanswered_elsewhere).
    const void* last_conn_ = nullptr;
    std::uint64_t last_conn_seq_ = 0;
    bool held_ = false;  // the next command handled is the held one again: not recounted
    std::unique_ptr<asio::steady_timer> pause_timer_;
    std::unique_ptr<asio::steady_timer> idle_timer_;
    std::chrono::steady_clock::time_point last_activity_;  // last read or completed write
    std::chrono::steady_clock::time_point read_at_;        // when the last read completed

    // Pub/Sub.
    std::set<std::string, std::less<>> channels_, patterns_, shard_channels_;
    [[nodiscard]] bool subscribed() const noexcept {
        return !channels_.empty() || !patterns_.empty() || !shard_channels_.empty();
    }
    side pubsub_side_ = side::primary;
    struct pending_sub {
        std::uint8_t kind;
        std::string name;
        std::uint64_t seq;
    };
    std::vector<pending_sub> pending_subs_;  // confirmations waiting for the upstream's
};

}  // namespace respite::proxy::server
