// Client throughput and latency against redis-benchmark on the same server, in the same run.
//
// For each configuration (connections x pipeline depth) and each test (SET, GET) it runs
// redis-benchmark, then respite doing the same work (C connections, each with one request of P
// commands outstanding, random keys, 3-byte values), and prints the ratios and respite's CPU
// time per operation.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <fmt/core.h>

#include <respite/client/client.hpp>
#include <respite/obs/metrics.hpp>

#include "peer.hpp"
#include "support/redis_server.hpp"

using namespace respite;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct numbers {
    double ops = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    double cpu_us_per_op = 0;  // user + system CPU of the client process per command
};

struct cpu_times {
    double user = 0, sys = 0;
};

cpu_times cpu_of(int who) {
    rusage u{};
    getrusage(who, &u);
    return {static_cast<double>(u.ru_utime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec) / 1e6,
            static_cast<double>(u.ru_stime.tv_sec) + static_cast<double>(u.ru_stime.tv_usec) / 1e6};
}

double percentile_ms(std::vector<std::uint32_t>& us, double q) {
    if (us.empty())
        return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(us.size() - 1));
    std::nth_element(us.begin(), us.begin() + static_cast<std::ptrdiff_t>(k), us.end());
    return us[k] / 1000.0;
}

// redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
// "p95_latency_ms","p99_latency_ms","max_latency_ms"
numbers redis_benchmark(const std::string& host, int port, const std::string& test, int conns,
                        int pipeline, long n) {
    auto cpu0 = cpu_of(RUSAGE_CHILDREN);
    auto out = bench::run_capture(fmt::format(
        "redis-benchmark -h {} -p {} -c {} -P {} -n {} -r 100000 -d 3 -t {} --csv 2>/dev/null",
        host, port, conns, pipeline, n, test));
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        auto f = bench::csv_fields(line);
        if (f.size() >= 7 && f[0] != "test") {
            numbers r;
            r.ops = std::stod(f[1]);
            r.p50_ms = std::stod(f[4]);
            r.p99_ms = std::stod(f[6]);
            auto cpu1 = cpu_of(RUSAGE_CHILDREN);
            r.cpu_us_per_op =
                (cpu1.user - cpu0.user + cpu1.sys - cpu0.sys) * 1e6 / static_cast<double>(n);
            return r;
        }
    }
    throw std::runtime_error("could not parse redis-benchmark output:\n" + out);
}

double cpu_seconds() {
    auto c = cpu_of(RUSAGE_SELF);
    return c.user + c.sys;
}

numbers respite_run(const std::string& host, int port, const std::string& test, int conns,
                    int pipeline, long n) {
    asio::io_context ioc(1);
    client::client_config cfg;
    cfg.connection.host = host;
    cfg.connection.port = static_cast<std::uint16_t>(port);
    cfg.connection.command_timeout = 30s;
    obs::registry reg;  // keep the benchmark's numbers apart from the global registry
    cfg.connection.metrics = &reg;
    std::vector<std::unique_ptr<client::client>> clients;
    for (int i = 0; i < conns; ++i)
        clients.push_back(std::make_unique<client::client>(ioc, cfg));

    // Warm up: every connection established before timing starts.
    int ready = 0;
    for (auto& c : clients) {
        c->async_command(client::cmd("PING"), [&](client::result<resp::value>) { ++ready; });
    }
    while (ready < conns)
        ioc.run_one();

    std::vector<std::uint32_t> latency;
    long requests_per_conn = std::max(1L, n / (static_cast<long>(conns) * pipeline));
    latency.reserve(static_cast<std::size_t>(requests_per_conn * conns));
    long failures = 0;
    int finished = 0;
    const bool is_set = test == "set";
    for (int w = 0; w < conns; ++w) {
        asio::co_spawn(
            ioc,
            [&, w]() -> asio::awaitable<void> {
                // xorshift: as cheap as redis-benchmark's random(), so the peer is not favoured.
                std::uint32_t rng = static_cast<std::uint32_t>(w) * 2654435761u + 1u;
                auto key = [&rng] {
                    rng ^= rng << 13;
                    rng ^= rng >> 17;
                    rng ^= rng << 5;
                    return rng % 100000u;
                };
                auto& c = *clients[static_cast<std::size_t>(w)];
                // Keys like redis-benchmark's key:__rand_int__: fixed width, digits replaced in
                // place, so the workload generator costs as little as the peer's.
                char kbuf[] = "key:000000000000";
                const std::string_view k(kbuf, sizeof kbuf - 1);
                for (long i = 0; i < requests_per_conn; ++i) {
                    client::request r;
                    for (int p = 0; p < pipeline; ++p) {
                        unsigned v = key();
                        for (int d = 15; d >= 10; --d, v /= 10)
                            kbuf[d] = static_cast<char>('0' + v % 10);
                        if (is_set) {
                            r.push("SET", k, "xxx");
                        } else {
                            r.push("GET", k);
                        }
                    }
                    auto t0 = steady::now();
                    if (pipeline == 1) {
                        auto res = co_await c.async_command(std::move(r), asio::use_awaitable);
                        if (!res)
                            ++failures;
                    } else {
                        auto res = co_await c.async_exec(std::move(r), asio::use_awaitable);
                        if (!res)
                            ++failures;
                    }
                    latency.push_back(static_cast<std::uint32_t>(
                        std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - t0)
                            .count()));
                }
                ++finished;
            },
            asio::detached);
    }
    auto cpu0 = cpu_seconds();
    auto t0 = steady::now();
    while (finished < conns)
        ioc.run_one();
    auto secs = std::chrono::duration<double>(steady::now() - t0).count();
    auto cpu = cpu_seconds() - cpu0;
    for (auto& c : clients)
        c->close();
    ioc.poll();
    if (failures)
        fmt::print(stderr, "respite: {} failed requests\n", failures);
    double total = static_cast<double>(requests_per_conn) * conns * pipeline;
    numbers r;
    r.ops = total / secs;
    r.p50_ms = percentile_ms(latency, 0.5);
    r.p99_ms = percentile_ms(latency, 0.99);
    r.cpu_us_per_op = cpu * 1e6 / total;
    return r;
}

// Median of each field independently.
numbers median(std::vector<numbers> v) {
    auto med = [&](auto field) {
        std::vector<double> x;
        for (const auto& n : v)
            x.push_back(n.*field);
        std::sort(x.begin(), x.end());
        return x[x.size() / 2];
    };
    return {med(&numbers::ops), med(&numbers::p50_ms), med(&numbers::p99_ms),
            med(&numbers::cpu_us_per_op)};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"respite client benchmark vs redis-benchmark (same server, same run)"};
    std::string host;
    int port = 6379;
    long n = 400000;
    std::string only;
    int repeats = 3;
    app.add_option("--host", host, "Redis host (default: start a local redis-server)");
    app.add_option("--port", port, "Redis port");
    app.add_option("-n,--requests", n, "Commands per run")->check(CLI::Range(1000L, 100000000L));
    app.add_option("--only", only, "Run one configuration: c50p1, c50p16, c1p1, c1p128");
    app.add_option("--repeats", repeats, "Alternating runs per cell; medians are printed")
        ->check(CLI::Range(1, 50));
    CLI11_PARSE(app, argc, argv);

    std::unique_ptr<test::redis_server> local;
    if (host.empty()) {
        local = std::make_unique<test::redis_server>();
        host = local->host();
        port = local->port();
    }

    struct config {
        const char* name;
        int conns;
        int pipeline;
    };
    const config configs[] = {
        {"c50p1", 50, 1}, {"c50p16", 50, 16}, {"c1p1", 1, 1}, {"c1p128", 1, 128}};
    fmt::print(
        "respite vs redis-benchmark, {} alternating runs per cell, medians; cpu/op is the "
        "client process's user+system CPU per command\n\n",
        repeats);
    fmt::print("{:<8} {:<4} {:>11} {:>11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "config",
               "test", "rb ops/s", "rs ops/s", "ratio", "rb p50", "rs p50", "rb p99", "rs p99",
               "rb cpu/op", "rs cpu/op");
    double worst = 1e9;
    for (const auto& c : configs) {
        if (!only.empty() && only != c.name)
            continue;
        long runs_n = c.conns == 1 && c.pipeline == 1 ? n / 4 : n;
        if (c.pipeline > 1)
            runs_n = n * 4;
        for (const char* test : {"set", "get"}) {
            std::vector<numbers> rbs, rss;
            for (int i = 0; i < repeats; ++i) {
                rbs.push_back(redis_benchmark(host, port, test, c.conns, c.pipeline, runs_n));
                rss.push_back(respite_run(host, port, test, c.conns, c.pipeline, runs_n));
            }
            auto rb = median(rbs);
            auto rs = median(rss);
            double ratio = rs.ops / rb.ops;
            worst = std::min(worst, ratio);
            fmt::print(
                "{:<8} {:<4} {:>11.0f} {:>11.0f} {:>6.2f}x {:>7.3f}ms {:>7.3f}ms {:>7.3f}ms "
                "{:>7.3f}ms {:>7.3f}us {:>7.3f}us\n",
                c.name, test, rb.ops, rs.ops, ratio, rb.p50_ms, rs.p50_ms, rb.p99_ms, rs.p99_ms,
                rb.cpu_us_per_op, rs.cpu_us_per_op);
            std::fflush(stdout);
        }
    }
    fmt::print("\nworst respite / redis-benchmark throughput ratio: {:.2f}x\n", worst);
    return 0;
}
