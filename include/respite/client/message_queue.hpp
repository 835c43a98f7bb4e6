// The bounded Pub/Sub message queue shared by the client and the cluster client: messages go to
// a handler, to a waiting receiver, or into the queue; when full the oldest is dropped, counted
// and logged, so replies are never stalled by unread messages. Use on one executor only (the
// counters may be read from any thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>

#include <respite/client/error.hpp>
#include <respite/resp/value.hpp>

namespace respite::obs {
class counter;
class gauge;
class registry;
}  // namespace respite::obs

namespace respite::client {

// A Pub/Sub delivery: message (SUBSCRIBE), pmessage (PSUBSCRIBE) or smessage (SSUBSCRIBE).
struct message {
    enum class kind : std::uint8_t { message, pmessage, smessage };
    message::kind kind = kind::message;
    std::string channel;
    std::string pattern;  // pmessage only
    std::string payload;
};

struct push_queue_stats {
    std::size_t size = 0;
    std::size_t capacity = 0;
    std::uint64_t delivered = 0;
    std::uint64_t dropped = 0;
};

// message, pmessage or smessage push (RESP3 '>' or RESP2 array) -> message; nullopt otherwise.
std::optional<message> to_message(resp::value&& push);
// The kind of a push ("subscribe", "invalidate", ...); empty when it has none.
std::string_view push_kind(const resp::value& push) noexcept;

class message_queue {
  public:
    message_queue(std::size_t capacity, obs::registry& metrics, const std::string& label);

    void deliver(message&& m);
    void receive(std::move_only_function<void(result<message>)> cb);
    void set_handler(std::function<void(const message&)> handler);
    // Fails waiting receivers with error::closed; later receives fail the same way when empty.
    void close();

    [[nodiscard]] push_queue_stats stats() const noexcept;

  private:
    std::size_t capacity_;
    obs::counter& dropped_metric_;
    obs::gauge& size_gauge_;
    std::deque<message> queue_;
    std::deque<std::move_only_function<void(result<message>)>> receivers_;
    std::function<void(const message&)> handler_;
    std::atomic<std::uint64_t> delivered_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::size_t> size_{0};
    bool closed_ = false;
};

}  // namespace respite::client
