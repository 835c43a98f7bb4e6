// A request: one or more commands encoded once, sent in one write, answered in order.
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <respite/client/command_info.hpp>

namespace respite::client {

namespace detail {

// Holds the text of one argument: strings by view, numbers formatted in a small buffer.
class arg_text {
  public:
    template <class T>
    requires std::is_convertible_v<const T&, std::string_view> arg_text(const T& s)
        : view_(s) {}  // NOLINT(google-explicit-constructor)

    template <std::integral T>
    requires(!std::is_same_v<T, bool> && !std::is_same_v<T, char>)
        arg_text(T n) {  // NOLINT(google-explicit-constructor)
        auto [p, ec] = std::to_chars(buf_.data(), buf_.data() + buf_.size(), n);
        (void)ec;
        view_ = std::string_view(buf_.data(), static_cast<std::size_t>(p - buf_.data()));
    }

    arg_text(double d);  // NOLINT(google-explicit-constructor)

    arg_text(const arg_text&) = delete;
    arg_text& operator=(const arg_text&) = delete;

    [[nodiscard]] std::string_view view() const noexcept { return view_; }

  private:
    std::array<char, 32> buf_{};
    std::string_view view_;
};

}  // namespace detail

class request {
  public:
    request() = default;

    // Appends one command, e.g. push("SET", key, 42). Arguments are binary-safe.
    template <class... Args>
    request& push(const Args&... args) {
        if constexpr (sizeof...(Args) > 0) {
            const detail::arg_text texts[] = {detail::arg_text(args)...};
            std::array<std::string_view, sizeof...(Args)> views;
            for (std::size_t i = 0; i < sizeof...(Args); ++i)
                views[i] = texts[i].view();
            push_args(views);
        } else {
            push_args(std::span<const std::string_view>{});
        }
        return *this;
    }

    // Appends one command from a list of arguments (the first is the command name).
    request& push_args(std::span<const std::string_view> args);
    request& push_args(const std::vector<std::string>& args);

    [[nodiscard]] std::size_t size() const noexcept { return commands_; }
    [[nodiscard]] bool empty() const noexcept { return commands_ == 0; }
    [[nodiscard]] const std::string& payload() const noexcept { return payload_; }

    // Any command that may block server-side; the longest block (nullopt: unbounded).
    [[nodiscard]] bool blocking() const noexcept { return blocking_; }
    [[nodiscard]] std::optional<std::chrono::milliseconds> block_duration() const noexcept {
        return unbounded_ ? std::nullopt : std::optional(max_block_);
    }
    // Any (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE: those are only valid through the pub/sub API.
    [[nodiscard]] bool has_pubsub() const noexcept { return pubsub_; }
    // Any command that changes connection state (SELECT, WATCH, MULTI, CLIENT ...).
    [[nodiscard]] bool has_connection_state() const noexcept { return state_; }
    // An empty command was pushed.
    [[nodiscard]] bool has_empty_command() const noexcept { return empty_command_; }

    // Appends every command of another request.
    request& append(const request& other);
    // Appends already-encoded commands (complete RESP arrays, e.g. a slice of another request's
    // payload). No flags are derived from them: use it for ordinary, non-blocking commands.
    request& append_encoded(std::string_view bytes, std::size_t commands);

    void clear() noexcept;
    // Capacity for `bytes` of encoded commands (saves the regrowth of a request built in steps).
    void reserve(std::size_t bytes) { payload_.reserve(bytes); }

  private:
    std::string payload_;
    std::size_t commands_ = 0;
    bool blocking_ = false;
    bool unbounded_ = false;
    bool pubsub_ = false;
    bool state_ = false;
    bool empty_command_ = false;
    std::chrono::milliseconds max_block_{0};
};

// One-command request: cmd("GET", "key").
template <class... Args>
request cmd(const Args&... args) {
    request r;
    r.push(args...);
    return r;
}

}  // namespace respite::client
