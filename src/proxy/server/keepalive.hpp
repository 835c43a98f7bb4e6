// TCP keepalive: a peer that vanished (a host gone, a cable pulled, a black-holed route) is
// found without any traffic of ours. Without it a client blocked in BLPOP k 0 whose host died
// stays "connected" for ever, and the next value pushed would be popped for nobody.
#pragma once

#include <algorithm>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <asio/ip/tcp.hpp>

namespace respite::proxy::server {

// Probes after `idle_seconds` without traffic, then every idle/3 s (at least 1 s); three
// unanswered probes end the connection (Redis's tcp-keepalive scheme). 0: off.
inline void set_tcp_keepalive(asio::ip::tcp::socket& s, int idle_seconds) {
    if (idle_seconds <= 0)
        return;
    std::error_code ignored;
    s.set_option(asio::socket_base::keep_alive(true), ignored);
    const int interval = std::max(1, idle_seconds / 3), count = 3;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle_seconds, sizeof idle_seconds);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

}  // namespace respite::proxy::server
