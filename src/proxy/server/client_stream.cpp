// client_stream's addresses, formatted as Redis formats them.
#include "client_stream.hpp"

#include <sys/socket.h>
#include <sys/un.h>

namespace respite::proxy::server {

namespace {

std::string format(const asio::ip::address& a, unsigned short port) {
    const auto host = a.to_string();
    return (a.is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string format(const asio::generic::stream_protocol::endpoint& ep) {
    const auto* sa = ep.data();
    if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
        // A TCP endpoint in generic form: through asio's own type, which reads sockaddr_in(6).
        asio::ip::tcp::endpoint tcp;
        if (ep.size() > tcp.capacity())
            return {};
        std::memcpy(tcp.data(), sa, ep.size());
        tcp.resize(ep.size());
        return format(tcp.address(), tcp.port());
    }
    if (sa->sa_family == AF_UNIX) {
        const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
        const std::size_t max = ep.size() > offsetof(sockaddr_un, sun_path)
                                    ? ep.size() - offsetof(sockaddr_un, sun_path)
                                    : 0;
        return std::string(un->sun_path, strnlen(un->sun_path, max)) + ":0";
    }
    return {};
}

}  // namespace

std::string client_stream::address(bool peer) const {
    std::error_code ec;
    if (const auto* p = std::get_if<plain>(&v_)) {
        const auto ep = peer ? p->remote_endpoint(ec) : p->local_endpoint(ec);
        return ec ? std::string{} : format(ep);
    }
    const auto& s = std::get<tls>(v_).lowest_layer();
    const auto ep = peer ? s.remote_endpoint(ec) : s.local_endpoint(ec);
    return ec ? std::string{} : format(ep.address(), ep.port());
}

}  // namespace respite::proxy::server
