// Pub/sub shadow: matches the messages a subscriber receives from the primary against those its
// mirror subscription receives from the secondary, within a time window.
//
// Module boundary (respite_proxy_shadow): sans-I/O and single-threaded (one per client session);
// every call takes the current time from the caller.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <respite/proxy/divergence.hpp>

namespace respite::proxy {

struct pubsub_shadow_options {
    // How long a message may wait for its copy from the other side. The secondary receives
    // PUBLISH through the replay queue, so the caller should keep this above the queue delay
    // (set_window() as the measured lag changes); the original proxy's fixed 2 s flooded
    // data_mismatch whenever the queue fell behind.
    std::chrono::steady_clock::duration window = std::chrono::seconds(2);
    // After a message is reported, a late copy from the other side within this long is consumed
    // silently (counted as late) instead of being reported a second time.
    std::chrono::steady_clock::duration late_grace = std::chrono::seconds(60);
    // Unmatched messages held (both sides together); beyond it new ones are not verified. Reported
    // messages kept for late copies are capped at the same number (beyond it none is kept).
    std::size_t max_pending = 10'000;
};

// Messages are matched as a multiset on (pattern, channel, payload), in any order. Reported
// kinds: a primary message the secondary never delivered -> data_mismatch (as in the original);
// a secondary message the primary never delivered -> extra_data. command is "subscribe" or
// "psubscribe", key the channel.
//
// Timing rules (t = the message's arrival, w = the window):
//   - two copies match when their arrivals differ by at most w;
//   - sweep(now) reports a message once now - t > w (a message exactly w old is still waiting);
//   - unsubscribe()/close() report only messages already older than w; those still inside the
//     window are dropped unreported and counted as unverified, as are copies arriving for that
//     subscription within w afterwards (the other side's unsubscribe may lag).
class pubsub_shadow {
  public:
    using clock = std::chrono::steady_clock;

    struct stats {
        std::uint64_t matched = 0;
        std::uint64_t missing_on_secondary = 0;  // reported data_mismatch
        std::uint64_t extra_on_secondary = 0;    // reported extra_data
        std::uint64_t late = 0;                  // copies that matched an already reported message
        std::uint64_t unverified = 0;  // dropped on unsubscribe/close while still in the window
        std::uint64_t overflow = 0;    // not recorded because max_pending was reached
    };

    explicit pubsub_shadow(pubsub_shadow_options options = {});

    // `pattern` is empty for a SUBSCRIBE delivery ("message"), the pattern for "pmessage".
    void record_primary(std::string_view pattern, std::string_view channel,
                        std::string_view payload, clock::time_point t);
    void record_secondary(std::string_view pattern, std::string_view channel,
                          std::string_view payload, clock::time_point t);

    // Reports messages unmatched for longer than the window. `wall` stamps the divergences (the
    // caller reads the wall clock; tests pass a fixed one). Results are in arrival order.
    std::vector<divergence> sweep(
        clock::time_point now,
        std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());

    // The client left a channel (SUBSCRIBE) or pattern (PSUBSCRIBE).
    std::vector<divergence> unsubscribe(
        std::string_view pattern_or_channel, clock::time_point now,
        std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());
    // Subscribing again ends the quiet period an earlier unsubscribe() started.
    void subscribe(std::string_view pattern_or_channel);
    // The session ended: like unsubscribing from everything; later records are ignored.
    std::vector<divergence> close(
        clock::time_point now,
        std::chrono::system_clock::time_point wall = std::chrono::system_clock::now());
    // A new session after close() (the other side's connection is back, the shadow mode is on
    // again; nothing to do when it was never closed). Messages that arrive within one window
    // from `now` are still matched, but one left without a twin is counted unverified instead of
    // reported: its twin may have come while closed. (Dropping them on arrival would split the
    // two copies of a message sent across that boundary.) The counters carry on.
    void reopen(clock::time_point now) noexcept {
        if (closed_)
            settle_until_ = now + options_.window;
        closed_ = false;
    }

    void set_window(clock::duration window) noexcept { options_.window = window; }
    [[nodiscard]] clock::duration window() const noexcept { return options_.window; }
    [[nodiscard]] std::size_t pending() const noexcept { return pending_; }
    [[nodiscard]] const stats& counters() const noexcept { return stats_; }

  private:
    // pattern, channel, payload
    using message_key = std::tuple<std::string, std::string, std::string>;
    struct waiting_message {
        clock::time_point t;
        // A copy from the other side arrived after the window: this message is still reported
        // (it was late), but that copy was consumed and is not reported as well.
        bool late_copy_seen = false;
    };
    struct side {
        std::deque<waiting_message> waiting;     // unmatched, oldest first
        std::deque<clock::time_point> reported;  // reported, kept for late copies
    };
    struct entry {
        side primary;
        side secondary;
        [[nodiscard]] bool empty() const noexcept {
            return primary.waiting.empty() && primary.reported.empty() &&
                   secondary.waiting.empty() && secondary.reported.empty();
        }
    };
    enum class origin : std::uint8_t { primary, secondary };

    void record(origin from, std::string_view pattern, std::string_view channel,
                std::string_view payload, clock::time_point t);
    bool quiet(std::string_view pattern, std::string_view channel, clock::time_point t);
    // Reports the waiting messages older than the window, of one subscription or of all
    // (subscription == nullptr). With drop_live the younger ones are dropped as unverified and
    // the reports kept for late copies are forgotten.
    std::vector<divergence> expire(clock::time_point now,
                                   std::chrono::system_clock::time_point wall,
                                   const std::string_view* subscription, bool drop_live);

    pubsub_shadow_options options_;
    std::map<message_key, entry, std::less<>> entries_;
    std::map<std::string, clock::time_point, std::less<>> quiet_until_;  // after unsubscribe
    std::size_t pending_ = 0;        // waiting messages, both sides
    std::size_t reported_held_ = 0;  // reported messages kept for late copies
    bool closed_ = false;
    clock::time_point settle_until_{};  // reopen(): unmatched arrivals before it not reported
    stats stats_;
};

}  // namespace respite::proxy
