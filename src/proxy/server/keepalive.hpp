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
// unanswered probes end the connection (Redis's tcp-keepalive scheme). Keepalive probes only an
// idle connection: one with data sent and never acknowledged (a peer black-holed while requests
// are outstanding) would retransmit for ~15 minutes, so TCP_USER_TIMEOUT ends it after the
// same time. 0: off.
inline void set_tcp_keepalive(asio::ip::tcp::socket& s, int idle_seconds) {
    if (idle_seconds <= 0)
        return;
    std::error_code ignored;
    s.set_option(asio::socket_base::keep_alive(true), ignored);
    const int interval = std::max(1, idle_seconds / 3), count = 3;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &idle_seconds, sizeof idle_seconds);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    const unsigned int user_timeout_ms =
        static_cast<unsigned int>(idle_seconds + interval * count) * 1000U;
    ::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
                 sizeof user_timeout_ms);
}

}  // namespace respite::proxy::server
