// The multiplexer at the heart of a connection (sans-I/O): requests are staged into one write
// buffer, replies are matched to them in FIFO order, pushes are routed aside, deadlines expire.
//
// It knows nothing of sockets or executors; connection.cpp performs what it decides. Completions
// run synchronously from push()/on_value()/expire()/fail_*() after the entry has left the queue,
// so a completion may push new requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <respite/resp/value.hpp>

namespace respite::client::detail {

using clock = std::chrono::steady_clock;

// Called once per request with its replies (one per command; empty on error). The callee may
// move the vector or its elements out.
using completion = std::move_only_function<void(std::error_code, std::vector<resp::value>&)>;

enum class reply_mode : std::uint8_t {
    normal,
    // (Un)subscribe: one confirmation push per name (kind given in request_options::confirm)
    // ends it with +OK; an error reply (ACL NOPERM, CROSSSLOT, ...) ends it with that error.
    confirmations,
};

struct request_options {
    std::uint32_t replies = 1;
    clock::time_point deadline = clock::time_point::max();
    reply_mode mode = reply_mode::normal;
    // confirmations mode: the push kind to count ("subscribe", "sunsubscribe", ...), lower case.
    std::string_view confirm{};
};

class request_queue {
  public:
    enum class value_route : std::uint8_t { reply, push, unsolicited_error, unexpected };

    // Stages `encoded` (one or more commands) for the next write.
    void push(std::string_view encoded, request_options opts, completion done);

    [[nodiscard]] bool has_staged() const noexcept { return !staging_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }
    [[nodiscard]] std::size_t written() const noexcept { return written_; }

    // Hands out everything staged as one buffer (swapped with `out`); those entries now count as
    // written: their replies are expected next.
    void take_staged(std::string& out);

    // Routes one parsed value; replies complete their request, pushes go to the push sink.
    value_route on_value(resp::value&& v);

    // RESP2 pub/sub connections: arrays whose first element names a pub/sub event are pushes.
    void set_resp2_pubsub(bool on) noexcept { resp2_pubsub_ = on; }

    void set_push_sink(std::function<void(resp::value&&)> sink) { push_sink_ = std::move(sink); }

    // Fails requests whose deadline passed: staged ones are removed with their bytes, written ones
    // are answered with `timeout` and their late replies dropped. Returns how many expired.
    std::size_t expire(clock::time_point now, std::error_code timeout_ec);

    // The connection broke: written requests fail with `ec` (their outcome is unknown); staged
    // ones stay for the next connection.
    void fail_written(std::error_code ec);
    void fail_all(std::error_code ec);

    // Earliest deadline among pending requests (max() when none).
    [[nodiscard]] clock::time_point next_deadline() const noexcept;

  private:
    struct entry {
        completion done;
        std::vector<resp::value> replies;  // one per command, in order
        std::string_view confirm;          // confirmations: the push kind counted
        std::uint32_t expected = 1;
        std::uint32_t received = 0;
        std::uint32_t bytes = 0;  // encoded size while staged
        clock::time_point deadline;
        reply_mode mode = reply_mode::normal;
        bool abandoned = false;
    };

    bool is_resp2_push(const resp::value& v) const noexcept;
    bool is_confirmation_for_head(const resp::value& v) const noexcept;
    void finish(entry& e, std::error_code ec);

    std::deque<entry> entries_;  // written entries first, then staged ones
    std::size_t written_ = 0;
    std::string staging_;
    bool resp2_pubsub_ = false;
    std::function<void(resp::value&&)> push_sink_;
};

}  // namespace respite::client::detail
