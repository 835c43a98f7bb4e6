// Connection and client settings, with the defaults a production user would pick.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <respite/resp/limits.hpp>

namespace respite::obs {
class registry;
}

namespace respite::client {

using namespace std::chrono_literals;

struct tls_config {
    bool enabled = false;
    std::string ca_file{};    // empty: system default paths
    std::string cert_file{};  // client certificate (mutual TLS), optional
    std::string key_file{};
    std::string server_name{};  // SNI and verification name; empty: the host
    bool verify_peer = true;
};

struct backoff_config {
    std::chrono::milliseconds initial = 20ms;
    std::chrono::milliseconds max = 2s;
};

struct connection_config {
    std::string host = "127.0.0.1";
    std::uint16_t port = 6379;
    std::string unix_path{};  // when set, used instead of host/port
    std::string username{};   // ACL user; empty means "default"
    std::string password{};
    std::string client_name{};  // CLIENT SETNAME / HELLO SETNAME
    int database = 0;
    int protocol = 3;  // 3: HELLO 3 with fallback to RESP2; 2: RESP2 only
    tls_config tls{};

    std::chrono::milliseconds connect_timeout = 2s;
    std::chrono::milliseconds command_timeout = 5s;  // 0: none
    // A blocking command (BLPOP 1.5, XREAD BLOCK 100, ...) gets its block time plus this margin;
    // a block of 0 waits without a deadline.
    std::chrono::milliseconds blocking_margin = 1s;
    // PING when nothing was read for this long; no reply within it again -> reconnect. 0: off.
    std::chrono::milliseconds health_check_interval = 2s;
    backoff_config reconnect{};
    // Commands issued while disconnected wait for the reconnect (until their deadline); when off
    // they fail at once with error::not_connected once a connect attempt has failed (commands
    // issued during the very first connect still wait for it).
    bool queue_while_disconnected = true;
    // After the client gave up on a connection with requests written and unanswered (a
    // command timeout), the next connection first ends the old one on the server (CLIENT KILL
    // ID, before any other command). None of those requests can then run after the new
    // connection's commands: what the server had not read or run yet is dropped, and bytes
    // still in the network meet a closed socket. For a requester that treats a timed-out write
    // as not applied and repairs it. Each handshake also reads INFO server's run_id: the kill
    // is sent only to the server process that gave the old id (after a restart the id could
    // name another client). RESP3 only (the id comes from HELLO). A refusal (an ACL without
    // CLIENT KILL or INFO) is logged and the connect goes on.
    bool kill_abandoned = false;
    // Commands run during the handshake of every (re)connect, after SELECT, e.g. {"READONLY"}.
    // An error reply fails the connect.
    std::vector<std::vector<std::string>> init_commands{};

    resp::limits limits{};
    obs::registry* metrics = nullptr;  // nullptr: obs::registry::global()
    std::string metrics_label{};       // value of the "client" label (keep it bounded)
    std::string metrics_node{};        // value of the "node" label (cluster: host:port)
};

struct client_config {
    connection_config connection{};
    // Multiplexed connections for ordinary commands; commands are spread round-robin.
    std::size_t connections = 1;
    // Upper bound of dedicated connections (blocking commands, WATCH sessions), busy or idle.
    // Beyond it a request waits for one to come back, at most the command timeout.
    std::size_t max_dedicated = 64;
    // Pub/Sub messages buffered for async_receive; beyond it the oldest is dropped and counted.
    std::size_t push_queue_capacity = 65536;
};

}  // namespace respite::client
