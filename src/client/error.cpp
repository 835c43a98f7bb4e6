// Client error category and parsing of server error replies into typed kinds.
#include <array>
#include <charconv>

#include <respite/client/error.hpp>

namespace respite::client {

namespace {

class category final : public std::error_category {
  public:
    const char* name() const noexcept override { return "respite.client"; }
    std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
            case error::ok:
                return "success";
            case error::timeout:
                return "the command timed out before its reply arrived";
            case error::connection_lost:
                return "the connection was lost after the command was sent (outcome unknown)";
            case error::not_connected:
                return "not connected to the server";
            case error::closed:
                return "the client was closed";
            case error::connect_failed:
                return "could not connect to the server or the handshake failed";
            case error::auth_failed:
                return "authentication failed (wrong user or password, or not allowed)";
            case error::protocol_error:
                return "the server sent bytes that are not valid RESP";
            case error::server_error:
                return "the server replied with an error";
            case error::transaction_aborted:
                return "the transaction was aborted: a watched key changed";
            case error::invalid_argument:
                return "invalid request (empty command, or a command this API cannot send)";
            case error::unexpected_reply:
                return "the reply has an unexpected type";
        }
        return "unknown respite.client error";
    }
};

struct prefix_kind {
    std::string_view prefix;
    server_error_kind kind;
};

constexpr std::array<prefix_kind, 18> prefixes{{
    {"ERR", server_error_kind::err},
    {"MOVED", server_error_kind::moved},
    {"ASK", server_error_kind::ask},
    {"TRYAGAIN", server_error_kind::tryagain},
    {"CLUSTERDOWN", server_error_kind::clusterdown},
    {"CROSSSLOT", server_error_kind::crossslot},
    {"LOADING", server_error_kind::loading},
    {"BUSY", server_error_kind::busy},
    {"READONLY", server_error_kind::readonly},
    {"NOSCRIPT", server_error_kind::noscript},
    {"NOAUTH", server_error_kind::noauth},
    {"WRONGPASS", server_error_kind::wrongpass},
    {"NOPERM", server_error_kind::noperm},
    {"NOPROTO", server_error_kind::noproto},
    {"MISCONF", server_error_kind::misconf},
    {"EXECABORT", server_error_kind::execabort},
    {"WRONGTYPE", server_error_kind::wrongtype},
    {"OOM", server_error_kind::oom},
}};

}  // namespace

const std::error_category& client_category() noexcept {
    static const category c;
    return c;
}

std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), client_category()};
}

std::string_view to_string(server_error_kind k) noexcept {
    for (const auto& p : prefixes) {
        if (p.kind == k)
            return p.prefix;
    }
    return "OTHER";
}

server_error::server_error(std::string message)
    : message_(std::move(message)), kind_(server_error_kind::other) {
    auto p = prefix();
    for (const auto& pk : prefixes) {
        if (pk.prefix == p) {
            kind_ = pk.kind;
            break;
        }
    }
}

std::string_view server_error::prefix() const noexcept {
    std::string_view m = message_;
    return m.substr(0, m.find(' '));
}

std::optional<std::uint16_t> server_error::slot() const noexcept {
    if (kind_ != server_error_kind::moved && kind_ != server_error_kind::ask)
        return std::nullopt;
    std::string_view m = message_;
    auto a = m.find(' ');
    if (a == std::string_view::npos)
        return std::nullopt;
    auto b = m.find(' ', a + 1);
    auto digits = m.substr(a + 1, b == std::string_view::npos ? m.npos : b - a - 1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc{} || p != digits.data() + digits.size() || v > 16383)
        return std::nullopt;
    return static_cast<std::uint16_t>(v);
}

std::optional<std::string_view> server_error::endpoint() const noexcept {
    if (!slot())
        return std::nullopt;
    std::string_view m = message_;
    auto b = m.find(' ', m.find(' ') + 1);
    if (b == std::string_view::npos || b + 1 >= m.size())
        return std::nullopt;
    return m.substr(b + 1);
}

std::optional<server_error> server_error_of(const resp::value& v) {
    if (!v.is_error())
        return std::nullopt;
    return server_error(v.str());
}

}  // namespace respite::client
