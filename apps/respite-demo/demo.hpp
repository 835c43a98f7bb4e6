// respite-demo: the migration demo (default) and the client tour (--client-tour).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace respite::demo {

struct tour_options {
    std::string host{};  // empty: start a throwaway local redis-server
    std::uint16_t port = 6379;
    std::string password{};
    int protocol = 3;
    int requests = 100000;  // commands per throughput step
    bool cluster = false;   // also start a local 3+3 Redis Cluster and move a slot
};

// The client at work against one Redis: pipelining, pub/sub, RESP3 types, metrics. Exit code.
int run_client_tour(const tour_options& opts);

struct migration_options {
    std::size_t keys = 6000;        // preloaded on the primary, spread over six types
    std::size_t clients = 4;        // workload threads, one pipelined client each
    std::size_t batch = 64;         // commands per pipelined request
    double phase_seconds = 2.0;     // traffic time per step
    std::size_t proxy_threads = 2;  // proxy workers
    int protocol = 3;               // RESP version the workload asks the proxy for
};

// A live migration through respite-proxy between two local redis-servers. Exit code: 0 when the
// workload saw no error, shadow reads reported no divergence and both servers end up equal.
int run_migration(const migration_options& opts);

}  // namespace respite::demo
