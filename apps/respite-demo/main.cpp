// respite-demo: the README's main command.
//
//   respite-demo                       a live migration through respite-proxy between two
//                                      throwaway local redis-servers (migration.cpp)
//   respite-demo --client-tour         the client at work against one Redis (client_tour.cpp);
//                [--host H --port P]   against your server instead of a throwaway one
//                [--cluster]           plus a local 3+3 Redis Cluster and a live resharding
//
// --host and --cluster belong to the tour and imply it (they meant that before the migration
// demo existed).
#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "demo.hpp"

int main(int argc, char** argv) {
    using namespace respite::demo;
    CLI::App app{
        "respite demo: a live migration through respite-proxy (default), or the client tour "
        "(--client-tour)"};
    tour_options tour;
    migration_options mig;
    bool client_tour = false;
    app.add_flag("--client-tour", client_tour, "Run the client tour instead of the migration demo");
    app.add_option("--host", tour.host,
                   "Tour: Redis host (default: start a local redis-server); implies --client-tour");
    app.add_option("--port", tour.port, "Tour: Redis port")->check(CLI::Range(1, 65535));
    app.add_option("--password", tour.password, "Tour: Redis password");
    app.add_option("--protocol", tour.protocol, "RESP version to ask for")
        ->check(CLI::IsMember({2, 3}));
    app.add_flag("--cluster", tour.cluster,
                 "Tour: also start a local 3+3 Redis Cluster and show the cluster client moving a "
                 "slot; implies --client-tour");
    app.add_option("-n,--requests", tour.requests, "Tour: commands per throughput step")
        ->check(CLI::Range(1, 10000000));
    app.add_option("--keys", mig.keys, "Migration: keys preloaded on the primary")
        ->capture_default_str()
        ->check(CLI::Range(6, 1000000));
    app.add_option("--clients", mig.clients, "Migration: workload threads (one client each)")
        ->capture_default_str()
        ->check(CLI::Range(1, 64));
    app.add_option("--seconds", mig.phase_seconds, "Migration: seconds of traffic per step")
        ->capture_default_str()
        ->check(CLI::Range(0.2, 60.0));
    CLI11_PARSE(app, argc, argv);

    if (client_tour || !tour.host.empty() || tour.cluster)
        return run_client_tour(tour);
    mig.protocol = tour.protocol;
    return run_migration(mig);
}
