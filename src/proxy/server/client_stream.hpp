// A client connection's byte stream: plain (TCP or unix socket) or TLS over TCP.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

namespace respite::proxy::server {

class client_stream {
  public:
    using plain = asio::generic::stream_protocol::socket;
    using tls = asio::ssl::stream<asio::ip::tcp::socket>;

    explicit client_stream(plain s) : v_(std::move(s)) {}
    explicit client_stream(tls s) : v_(std::move(s)) {}

    template <class Buffers, class Handler>
    void async_read_some(const Buffers& b, Handler&& h) {
        std::visit([&](auto& s) { s.async_read_some(b, std::forward<Handler>(h)); }, v_);
    }
    template <class Buffers, class Handler>
    void async_write(const Buffers& b, Handler&& h) {
        std::visit([&](auto& s) { asio::async_write(s, b, std::forward<Handler>(h)); }, v_);
    }
    // Ends the connection at once (no TLS close_notify: the peer may be gone or hostile).
    void close() {
        std::error_code ignored;
        if (auto* p = std::get_if<plain>(&v_)) {
            p->shutdown(asio::socket_base::shutdown_both, ignored);
            p->close(ignored);
        } else {
            auto& s = std::get<tls>(v_).lowest_layer();
            s.shutdown(asio::socket_base::shutdown_both, ignored);
            s.close(ignored);
        }
    }

    // The peer's and the local address as Redis shows them in CLIENT LIST ("1.2.3.4:5",
    // "[::1]:5", "/path/to.sock:0"); empty when unknown (the peer is already gone).
    [[nodiscard]] std::string peer_address() const { return address(true); }
    [[nodiscard]] std::string local_address() const { return address(false); }
    // The socket's descriptor (CLIENT LIST fd=); -1 once closed.
    [[nodiscard]] int descriptor() const {
        // asio's native_handle() is not const; it reads the descriptor only.
        auto& v = const_cast<std::variant<plain, tls>&>(v_);
        if (auto* p = std::get_if<plain>(&v))
            return p->is_open() ? static_cast<int>(p->native_handle()) : -1;
        auto& s = std::get<tls>(v).lowest_layer();
        return s.is_open() ? static_cast<int>(s.native_handle()) : -1;
    }

  private:
    [[nodiscard]] std::string address(bool peer) const;

    std::variant<plain, tls> v_;
};

}  // namespace respite::proxy::server
