// Pub/Sub fan-out for one worker and one side: one upstream subscription per channel, pattern or
// shard channel, shared by every local subscriber; messages copied to each subscriber in its
// protocol. Confirmations reach a client only after the upstream confirmed the subscription.
// On a Redis Cluster side, shard channels are subscribed on the master of their slot (one
// connection per node) and follow the slot when it moves; channels and patterns stay on the
// seed (a cluster broadcasts PUBLISH to every node). In the shadow modes the same holds for the
// twin subscriptions on the other side: on a cluster, a shard channel's twin goes to the master of
// its slot there.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio/steady_timer.hpp>

#include <respite/cluster/slot_map.hpp>
#include <respite/proxy/pubsub_shadow.hpp>

#include "upstream.hpp"

namespace respite::proxy::server {

class session;
class worker;
enum class side : std::uint8_t;

enum class sub_kind : std::uint8_t { channel = 0, pattern = 1, shard = 2 };

class pubsub_hub {
  public:
    pubsub_hub(worker& w, side s);
    ~pubsub_hub();

    // True when the upstream already confirmed `name` (the client's confirmation can go now);
    // otherwise session::subscription_confirmed follows.
    bool subscribe(const std::shared_ptr<session>& s, sub_kind k, const std::string& name);
    void unsubscribe(session* s, sub_kind k, const std::string& name);
    // The session is gone: every subscription of it ends.
    void drop(session* s);

    [[nodiscard]] std::size_t upstream_subscriptions() const noexcept;
    [[nodiscard]] std::uint64_t messages() const noexcept { return messages_; }
    [[nodiscard]] const pubsub_shadow::stats& shadow_stats() const noexcept {
        return shadow_.counters();
    }

  private:
    struct entry {
        std::vector<std::weak_ptr<session>> subscribers;
        std::vector<session*> raw;  // same order as subscribers, for removal
        bool confirmed = false;
        bool requested = false;
        std::string node;  // cluster shard channels: the node link it was sent on
    };
    // Cluster sides: the pub/sub connection to one master, for the shard channels of its slots.
    struct node_link {
        std::shared_ptr<upstream> conn;
        // SSUBSCRIBE (true) and SUNSUBSCRIBE (false) sent and not answered yet, in order: each
        // gets one reply, a push or an error (-MOVED when the slot moved meanwhile).
        std::deque<std::pair<bool, std::string>> sent;
    };
    [[nodiscard]] bool shards_per_node() const;
    void ensure_connection();
    // Sends the subscription of an entry not requested yet (on a cluster side, a shard channel
    // goes to its slot's master; without a slot map yet, after a refresh).
    void request(sub_kind k, const std::string& name, entry& e);
    node_link& link(const cluster::node_address& node);
    void on_push(std::string_view frame);
    void on_node_push(const std::string& node, std::string_view frame);
    void on_node_closed(const std::string& node);
    // The shard channel's slot is elsewhere now: subscribe it again once the map is refreshed.
    void replace_shard(const std::string& name);
    void refresh_and_resubscribe();
    void resubscribe_all();
    void send(std::string_view verb, const std::string& name);
    // The twin of a (un)subscription on the other side, when shadowing (verb: the client's).
    void send_shadow(std::string_view verb, const std::string& name);
    void deliver(sub_kind k, const std::string& name, std::string_view frame);
    void confirm(sub_kind k, const std::string& name);
    void fail(sub_kind k, const std::string& name, std::string_view error_frame);
    // Shadow modes: the same subscriptions on the other side, messages matched in a window.
    void shadow_tick();
    void shadow_on(bool on);
    // A connection to the other side carrying twin subscriptions: the seed (channels, patterns,
    // shard channels of a standalone side) or, on a cluster, one per master for the shard
    // channels of its slots.
    struct twin_conn {
        std::shared_ptr<upstream> conn;
        // Twin (un)subscriptions sent and not answered yet, in order: true for SUBSCRIBE,
        // PSUBSCRIBE, SSUBSCRIBE. Each gets one reply, a push or an error.
        std::deque<std::pair<bool, std::string>> sent;
    };
    [[nodiscard]] bool shadow_shards_per_node() const;
    // Where the twin of `name` goes (nullptr: nowhere yet; with no slot map for a cluster other
    // side the shadow restarts once the map is read). `key` is "" for the seed, else the node.
    twin_conn* shadow_target(bool shard, const std::string& name, std::string* key = nullptr);
    twin_conn* twin_by_key(const std::string& key);
    void on_twin_push(const std::string& key, std::string_view frame);
    // The other side refused a twin (NOPERM, CLUSTERDOWN ...): the name is not verified, and
    // asked again every 10 s, until the other side accepts it.
    void twin_refused(const std::string& name, std::string_view error_frame);
    // Some client of this hub subscribes to `name` (as a channel, pattern or shard channel).
    [[nodiscard]] bool subscribed_anyhow(const std::string& name) const;
    // Adds this hub's counter changes to shared_state::pubsub_shadow (INFO proxy).
    void publish_shadow_stats();
    // The shadow's view is wrong (a twin moved, a link was lost): off now, on again at the next
    // tick with the slot map read again (refresh_map).
    void restart_shadow(bool refresh_map);
    void close_twins();
    [[nodiscard]] bool twin_active(const std::string& name) const {
        return twin_refused_.empty() || !twin_refused_.contains(name);
    }
    void report(std::vector<divergence> ds);

    worker& w_;
    side side_;
    std::shared_ptr<upstream> conn_;
    std::unordered_map<std::string, entry> entries_[3];
    std::uint64_t messages_ = 0;
    // Subscriptions sent and not confirmed yet, in order: an error reply fails the oldest.
    std::deque<std::pair<sub_kind, std::string>> unconfirmed_;
    void fail_oldest(std::string_view error_frame);
    std::map<std::string, node_link> links_;  // by node address ("host:port")
    bool refresh_pending_ = false;
    twin_conn shadow_seed_;
    std::map<std::string, twin_conn> shadow_links_;  // cluster other side, by node ("host:port")
    // Names whose twin the other side refused, and when it was last asked.
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> twin_refused_;
    // What publish_shadow_stats() last added to shared_state::pubsub_shadow.
    pubsub_shadow::stats published_{};
    std::int64_t published_refused_ = 0;
    std::chrono::steady_clock::time_point shadow_restart_logged_{};
    std::chrono::steady_clock::time_point twin_refused_logged_{};
    std::uint64_t shadow_gen_ = 0;  // bumped by every shadow_on(true)
    bool shadowing_ = false;
    pubsub_shadow shadow_;
    asio::steady_timer shadow_timer_;
    bool timer_armed_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // timer handlers check it
};

}  // namespace respite::proxy::server
