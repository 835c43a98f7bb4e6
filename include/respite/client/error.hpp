// Client error codes and typed access to server error replies (MOVED, ASK, TRYAGAIN, ...).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <respite/resp/value.hpp>

namespace respite::client {

template <class T>
using result = std::expected<T, std::error_code>;

enum class error {
    ok = 0,
    timeout = 1,          // the command's deadline passed before its reply arrived
    connection_lost,      // the connection broke after the command was written (outcome unknown)
    not_connected,        // no connection and queue_while_disconnected is off
    closed,               // the client or connection was closed
    connect_failed,       // could not connect or the handshake failed
    auth_failed,          // HELLO/AUTH rejected (WRONGPASS, NOAUTH, NOPERM)
    protocol_error,       // the server sent bytes respite could not parse
    server_error,         // the reply is an error (see server_error_of on the value)
    transaction_aborted,  // EXEC returned null: a WATCHed key changed
    invalid_argument,     // e.g. an empty command, a request of the wrong shape
    unexpected_reply,     // a reply of an unexpected type for a typed helper
};

const std::error_category& client_category() noexcept;
std::error_code make_error_code(error e) noexcept;

// The error code prefixes that drive client logic (the first word of an error reply).
enum class server_error_kind : std::uint8_t {
    err,  // plain ERR
    moved,
    ask,
    tryagain,
    clusterdown,
    crossslot,
    loading,
    busy,
    readonly,
    noscript,
    noauth,
    wrongpass,
    noperm,
    noproto,
    misconf,
    execabort,
    wrongtype,
    oom,
    other,
};

std::string_view to_string(server_error_kind k) noexcept;

// A server error reply, parsed: `MOVED 3999 127.0.0.1:6381` -> kind moved, slot 3999, endpoint.
class server_error {
  public:
    explicit server_error(std::string message);

    [[nodiscard]] server_error_kind kind() const noexcept { return kind_; }
    [[nodiscard]] std::string_view prefix() const noexcept;  // "MOVED", "ERR", ...
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    // MOVED/ASK only: the slot and "host:port" target.
    [[nodiscard]] std::optional<std::uint16_t> slot() const noexcept;
    [[nodiscard]] std::optional<std::string_view> endpoint() const noexcept;

  private:
    std::string message_;
    server_error_kind kind_;
};

// The server error carried by a reply value, if it is one.
std::optional<server_error> server_error_of(const resp::value& v);

}  // namespace respite::client

template <>
struct std::is_error_code_enum<respite::client::error> : std::true_type {};
