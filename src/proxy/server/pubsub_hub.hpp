// Pub/Sub fan-out for one worker and one side: one upstream subscription per channel, pattern or
// shard channel, shared by every local subscriber; messages copied to each subscriber in its
// protocol. Confirmations reach a client only after the upstream confirmed the subscription.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <asio/steady_timer.hpp>

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
    };
    void ensure_connection();
    void on_push(std::string_view frame);
    void resubscribe_all();
    void send(std::string_view verb, const std::string& name);
    // Shadow modes: the same subscriptions on the other side, messages matched in a window.
    void shadow_tick();
    void shadow_on(bool on);
    void on_shadow_push(std::string_view frame);
    void report(std::vector<divergence> ds);

    worker& w_;
    side side_;
    std::shared_ptr<upstream> conn_;
    std::unordered_map<std::string, entry> entries_[3];
    std::uint64_t messages_ = 0;
    // Subscriptions sent and not confirmed yet, in order: an error reply fails the oldest.
    std::deque<std::pair<sub_kind, std::string>> unconfirmed_;
    void fail_oldest(std::string_view error_frame);
    std::shared_ptr<upstream> shadow_conn_;
    bool shadowing_ = false;
    pubsub_shadow shadow_;
    asio::steady_timer shadow_timer_;
    bool timer_armed_ = false;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // timer handlers check it
};

}  // namespace respite::proxy::server
