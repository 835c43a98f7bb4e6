// The client tour (respite-demo --client-tour): the client at work against a Redis server (a
// throwaway local one unless --host is given): pipelining, pub/sub, RESP3 types, metrics, and
// with --cluster the cluster client following a live resharding.
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <fmt/core.h>

#include <respite/client/client.hpp>
#include <respite/cluster/cluster_client.hpp>
#include <respite/cluster/slot.hpp>
#include <respite/obs/metrics.hpp>

#include "demo.hpp"
#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"

using namespace respite;
using namespace std::chrono_literals;
using client::cmd;
using steady = std::chrono::steady_clock;

namespace {

template <class T>
T wait(std::future<T> f) {
    if (f.wait_for(30s) != std::future_status::ready) {
        throw std::runtime_error("the server did not answer within 30 s");
    }
    return f.get();
}

resp::value must(client::result<resp::value> r, const char* what) {
    if (!r)
        throw std::runtime_error(fmt::format("{}: {}", what, r.error().message()));
    return std::move(*r);
}

double seconds_since(steady::time_point t0) {
    return std::chrono::duration<double>(steady::now() - t0).count();
}

void section(const char* title) {
    fmt::print("\n== {}\n", title);
}

}  // namespace

int demo::run_client_tour(const demo::tour_options& opts) {
    std::string host = opts.host;
    std::uint16_t port = opts.port;
    const std::string& password = opts.password;
    const int protocol = opts.protocol;
    const int n = opts.requests;
    const bool with_cluster = opts.cluster;
    std::unique_ptr<test::redis_server> local;
    try {
        if (host.empty()) {
            fmt::print("starting a throwaway redis-server ... ");
            std::fflush(stdout);
            local = std::make_unique<test::redis_server>();
            host = local->host();
            port = local->port();
            fmt::print("listening on {}:{} (data in {})\n", host, port, local->dir());
        }

        client::client_config cfg;
        cfg.connection.host = host;
        cfg.connection.port = port;
        cfg.connection.password = password;
        cfg.connection.protocol = protocol;
        cfg.connection.client_name = "respite-demo";
        client::client c(cfg);

        section("connection");
        auto hello = must(wait(c.async_command(cmd("HELLO", protocol), asio::use_future)), "HELLO");
        if (const auto* v = hello.find("version"))
            fmt::print("server version  {}\n", v->str());
        fmt::print("protocol        RESP{}\n", c.connections()[0]->protocol());
        fmt::print("HELLO reply     {} ({} fields)\n", resp::type_name(hello.type()), hello.size());

        section("RESP3 types");
        c.async_exec(client::request{}
                         .push("DEL", "demo:h", "demo:s", "demo:z")
                         .push("HSET", "demo:h", "name", "respite", "lang", "C++23")
                         .push("SADD", "demo:s", "fast", "correct", "observable")
                         .push("ZADD", "demo:z", "3.25", "pi-ish", "inf", "top"),
                     asio::use_future)
            .get();
        auto h = must(wait(c.async_command(cmd("HGETALL", "demo:h"), asio::use_future)), "HGETALL");
        fmt::print("HGETALL         {} of {} pairs\n", resp::type_name(h.type()), h.size());
        auto s =
            must(wait(c.async_command(cmd("SMEMBERS", "demo:s"), asio::use_future)), "SMEMBERS");
        fmt::print("SMEMBERS        {} of {} members\n", resp::type_name(s.type()), s.size());
        auto z =
            must(wait(c.async_command(cmd("ZSCORE", "demo:z", "top"), asio::use_future)), "ZSCORE");
        fmt::print("ZSCORE top      {} {}\n", resp::type_name(z.type()),
                   z.type() == resp::type::double_ ? fmt::format("{}", z.double_value()) : z.str());
        auto e = must(wait(c.async_command(cmd("INCR", "demo:h"), asio::use_future)), "INCR");
        if (auto se = client::server_error_of(e)) {
            fmt::print("INCR on a hash  error reply, kind {}: {}\n", client::to_string(se->kind()),
                       se->message());
        }

        section("pipelining");
        {
            client::request r;
            for (int i = 0; i < n; ++i)
                r.push("SET", fmt::format("demo:key:{}", i), i);
            auto t0 = steady::now();
            auto rs = wait(c.async_exec(std::move(r), asio::use_future));
            if (!rs)
                throw std::runtime_error(rs.error().message());
            auto secs = seconds_since(t0);
            fmt::print("explicit        {} SETs in one request: {:.0f} ms, {:.0f} ops/s\n", n,
                       secs * 1000, n / secs);
        }
        {
            asio::io_context ioc;
            client::client ac(ioc, cfg);
            int workers = 64, done = 0, failed = 0;
            int per = std::max(1, n / workers);
            for (int w = 0; w < workers; ++w) {
                asio::co_spawn(
                    ioc,
                    [&, w]() -> asio::awaitable<void> {
                        for (int i = 0; i < per; ++i) {
                            auto r = co_await ac.async_command(
                                cmd("INCR", fmt::format("demo:ctr:{}", w % 8)),
                                asio::use_awaitable);
                            if (!r)
                                ++failed;
                        }
                        ++done;
                    },
                    asio::detached);
            }
            auto t0 = steady::now();
            auto deadline = t0 + 120s;
            while (done < workers && steady::now() < deadline)
                ioc.run_one_for(10ms);
            auto secs = seconds_since(t0);
            fmt::print(
                "automatic       {} coroutines x {} INCR on one connection: {:.0f} ops/s, "
                "{} failed\n",
                workers, per, workers * per / secs, failed);
        }

        section("transaction");
        {
            client::request tx;
            tx.push("SET", "demo:balance", 100)
                .push("DECRBY", "demo:balance", 30)
                .push("GET", "demo:balance");
            auto r = wait(c.async_transaction(std::move(tx), asio::use_future));
            if (!r)
                throw std::runtime_error(r.error().message());
            fmt::print("MULTI/EXEC      balance after DECRBY 30: {}\n", (*r)[2].str());
        }

        section("pub/sub");
        {
            auto sub = wait(c.async_subscribe(client::subscription_kind::channel, {"demo:news"},
                                              asio::use_future));
            if (!sub)
                throw std::runtime_error(sub.error().message());
            auto psub = wait(c.async_subscribe(client::subscription_kind::pattern,
                                               {"demo:*:alerts"}, asio::use_future));
            if (!psub)
                throw std::runtime_error(psub.error().message());
            client::request pubs;
            pubs.push("PUBLISH", "demo:news", "respite is up")
                .push("PUBLISH", "demo:eu:alerts", "disk 91%")
                .push("PUBLISH", "demo:news", "bye");
            wait(c.async_exec(std::move(pubs), asio::use_future));
            for (int i = 0; i < 3; ++i) {
                auto m = wait(c.async_receive(asio::use_future));
                if (!m)
                    throw std::runtime_error(m.error().message());
                fmt::print("received        {:8} channel={} {}payload=\"{}\"\n",
                           m->kind == client::message::kind::pmessage ? "pmessage" : "message",
                           m->channel, m->pattern.empty() ? "" : "pattern=" + m->pattern + " ",
                           m->payload);
            }
        }

        if (with_cluster) {
            section("cluster");
            fmt::print("starting a local 3 masters + 3 replicas cluster ... ");
            std::fflush(stdout);
            test::redis_cluster rc;
            fmt::print("ok\n");
            cluster::cluster_config ccfg;
            for (auto p : rc.ports())
                ccfg.seeds.push_back({"127.0.0.1", p});
            cluster::cluster_client cc(ccfg);
            client::request writes;
            for (int i = 0; i < 1000; ++i)
                writes.push("SET", fmt::format("demo:key:{}", i), i);
            writes.push("SET", "demo:{tag}:moved", "still here");
            auto t0 = steady::now();
            auto wr = wait(cc.async_exec(std::move(writes), asio::use_future));
            if (!wr)
                throw std::runtime_error(wr.error().message());
            fmt::print("pipeline        1001 SETs split over {} masters in {:.1f} ms\n",
                       cc.topology().masters().size(), seconds_since(t0) * 1000);
            auto slot = cluster::hash_slot("tag");
            auto from = rc.master_of_slot(slot);
            auto to = rc.another_master(from);
            rc.migrate_slot(slot, to);
            fmt::print("resharding      slot {} moved from node {} to node {}\n", slot, from, to);
            auto v = must(
                wait(cc.async_command(client::cmd("GET", "demo:{tag}:moved"), asio::use_future)),
                "GET after the move");
            auto& moved = obs::registry::global().get_counter("respite_cluster_redirects_total",
                                                              "Redirects followed, by kind",
                                                              {{"kind", "moved"}});
            fmt::print("after the move  GET demo:{{tag}}:moved = \"{}\" (MOVED followed: {})\n",
                       v.str(), moved.value());
        }

        section("metrics (Prometheus, excerpt)");
        auto& reg = obs::registry::global();
        auto& lat = reg.get_histogram("respite_client_request_duration_seconds",
                                      "Time from submission to the last reply of a request");
        fmt::print("requests        {}\n", lat.count());
        fmt::print("latency         p50 {} us, p99 {} us\n", lat.quantile_us(0.5),
                   lat.quantile_us(0.99));
        auto text = reg.prometheus_text();
        for (auto name : {"respite_client_commands_total", "respite_client_reconnects_total",
                          "respite_client_pushes_total"}) {
            auto pos = text.find(std::string("\n") + name);
            if (pos != std::string::npos) {
                auto end = text.find('\n', pos + 1);
                fmt::print("{}\n", text.substr(pos + 1, end - pos - 1));
            }
        }
        fmt::print("\ndone.\n");
    } catch (const std::exception& ex) {
        fmt::print(stderr, "respite-demo: {}\n", ex.what());
        return 1;
    }
    return 0;
}
