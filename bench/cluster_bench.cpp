// Cluster client throughput against redis-benchmark --cluster on the same local Redis Cluster,
// in the same run: 50 concurrent callers at P=1 and P=16, SET and GET on random keys.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/core.h>

#include <respite/cluster/cluster_client.hpp>
#include <respite/obs/metrics.hpp>

#include "peer.hpp"
#include "support/redis_cluster.hpp"

using namespace respite;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

double redis_benchmark(int port, const char* test, int conns, int pipeline, long n) {
    auto out = bench::run_capture(fmt::format(
        "redis-benchmark --cluster -h 127.0.0.1 -p {} -c {} -P {} -n {} -r 100000 -d 3 -t {} "
        "--csv 2>/dev/null",
        port, conns, pipeline, n, test));
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("\"test\"", 0) == 0 || line.find(',') == std::string::npos)
            continue;
        auto a = line.find("\",\"");
        if (a == std::string::npos)
            continue;
        auto b = line.find('"', a + 3);
        return std::stod(line.substr(a + 3, b - a - 3));
    }
    throw std::runtime_error("could not parse redis-benchmark output:\n" + out);
}

// Keys: "random" spreads every pipeline over all masters; "per-node" gives each caller a hash tag
// owned by one master, the way redis-benchmark --cluster builds its keys, so a pipeline goes to
// one node and the servers see the same batches as with the peer.
double respite_run(const test::redis_cluster& c, const char* test, int callers, int pipeline,
                   long n, bool per_node) {
    asio::io_context ioc(1);
    cluster::cluster_config cfg;
    for (auto p : c.ports())
        cfg.seeds.push_back({"127.0.0.1", p});
    obs::registry reg;
    cfg.connection.metrics = &reg;
    cfg.connection.command_timeout = 30s;
    cluster::cluster_client cl(ioc, cfg);
    bool ready = false;
    cl.async_refresh([&](client::result<void>) { ready = true; });
    while (!ready)
        ioc.run_one();
    long per = std::max(1L, n / (static_cast<long>(callers) * pipeline));
    std::vector<std::string> prefixes(static_cast<std::size_t>(callers), "key:");
    if (per_node) {
        auto masters = c.masters();
        for (int w = 0; w < callers; ++w) {
            auto node = masters[static_cast<std::size_t>(w) % masters.size()];
            for (int t = 0;; ++t) {
                auto tag = "t" + std::to_string(w) + "-" + std::to_string(t);
                if (c.master_of_slot(test::redis_cluster::key_slot(tag)) == node) {
                    prefixes[static_cast<std::size_t>(w)] = "{" + tag + "}:key:";
                    break;
                }
            }
        }
    }
    int finished = 0;
    const bool is_set = std::string_view(test) == "set";
    for (int w = 0; w < callers; ++w) {
        asio::co_spawn(
            ioc,
            [&, w]() -> asio::awaitable<void> {
                std::uint32_t rng = static_cast<std::uint32_t>(w) * 2654435761u + 1u;
                std::string kbuf = prefixes[static_cast<std::size_t>(w)] + "000000000000";
                const std::string_view k(kbuf);
                const std::size_t digits_end = kbuf.size();
                for (long i = 0; i < per; ++i) {
                    client::request r;
                    for (int p = 0; p < pipeline; ++p) {
                        rng ^= rng << 13;
                        rng ^= rng >> 17;
                        rng ^= rng << 5;
                        unsigned v = rng % 100000u;
                        for (std::size_t d = digits_end - 1; d >= digits_end - 6; --d, v /= 10) {
                            kbuf[d] = static_cast<char>('0' + v % 10);
                        }
                        if (is_set) {
                            r.push("SET", k, "xxx");
                        } else {
                            r.push("GET", k);
                        }
                    }
                    if (pipeline == 1) {
                        co_await cl.async_command(std::move(r), asio::use_awaitable);
                    } else {
                        co_await cl.async_exec(std::move(r), asio::use_awaitable);
                    }
                }
                ++finished;
            },
            asio::detached);
    }
    auto t0 = steady::now();
    while (finished < callers)
        ioc.run_one();
    auto secs = std::chrono::duration<double>(steady::now() - t0).count();
    cl.close();
    ioc.poll();
    return static_cast<double>(per) * callers * pipeline / secs;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"respite cluster client vs redis-benchmark --cluster (same cluster, same run)"};
    long n = 400000;
    int repeats = 3;
    int only_pipeline = 0;
    app.add_option("--pipeline", only_pipeline, "Run only this pipeline depth (1 or 16)");
    app.add_option("-n,--requests", n, "Commands per run")->check(CLI::Range(1000L, 100000000L));
    app.add_option("--repeats", repeats, "Alternating runs per cell; medians are printed")
        ->check(CLI::Range(1, 50));
    CLI11_PARSE(app, argc, argv);

    test::redis_cluster_options o;
    o.replicas_per_master = 0;  // replicas would only compete for the two cores
    test::redis_cluster c(o);
    fmt::print("3-master local cluster, 50 callers, {} alternating runs per cell, medians\n\n",
               repeats);
    fmt::print("{:<6} {:<4} {:<9} {:>12} {:>12} {:>7}\n", "P", "test", "keys", "rb ops/s",
               "respite", "ratio");
    double worst = 1e9;
    for (int pipeline : {1, 16}) {
        if (only_pipeline != 0 && pipeline != only_pipeline)
            continue;
        for (const char* test : {"set", "get"}) {
            std::vector<double> rb, rs, rs_random;
            long runs_n = pipeline == 1 ? n : n * 4;
            for (int i = 0; i < repeats; ++i) {
                rb.push_back(redis_benchmark(c.seed_port(), test, 50, pipeline, runs_n));
                rs.push_back(respite_run(c, test, 50, pipeline, runs_n, true));
                rs_random.push_back(respite_run(c, test, 50, pipeline, runs_n, false));
            }
            auto median = [](std::vector<double>& v) {
                std::sort(v.begin(), v.end());
                return v[v.size() / 2];
            };
            double a = median(rb), b = median(rs), r = median(rs_random);
            worst = std::min(worst, b / a);
            fmt::print("{:<6} {:<4} {:<9} {:>12.0f} {:>12.0f} {:>6.2f}x\n", pipeline, test,
                       "per-node", a, b, b / a);
            fmt::print("{:<6} {:<4} {:<9} {:>12} {:>12.0f} {:>6.2f}x\n", pipeline, test, "random",
                       "", r, r / a);
            std::fflush(stdout);
        }
    }
    fmt::print(
        "\nworst respite / redis-benchmark --cluster throughput ratio (same key layout): "
        "{:.2f}x\n",
        worst);
    return 0;
}
