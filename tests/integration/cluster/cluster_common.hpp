// Helpers for the cluster integration tests: a client config for a fixture cluster, deadlines.
#pragma once

#include <chrono>
#include <future>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <gtest/gtest.h>

#include <respite/cluster/cluster_client.hpp>

#include "support/redis_cluster.hpp"

namespace respite::test {

inline cluster::cluster_config cluster_config_for(const redis_cluster& c) {
    cluster::cluster_config cfg;
    for (auto p : c.ports())
        cfg.seeds.push_back({"127.0.0.1", p});
    cfg.connection.command_timeout = std::chrono::seconds(5);
    cfg.connection.reconnect.initial = std::chrono::milliseconds(10);
    cfg.connection.reconnect.max = std::chrono::milliseconds(200);
    cfg.refresh_interval = std::chrono::seconds(2);
    return cfg;
}

// A test suite sharing one real 3+3 cluster, started once per process (each suite runs in its
// own process, see CMakeLists.txt). Suite: class name : public shared_cluster_suite<name> {}.
template <class Suite>
class shared_cluster_suite : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { cluster_ = new redis_cluster(); }
    static void TearDownTestSuite() {
        delete cluster_;
        cluster_ = nullptr;
    }
    static inline redis_cluster* cluster_ = nullptr;
};

template <class T>
T get(std::future<T>&& f, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    if (f.wait_for(limit) != std::future_status::ready) {
        throw std::runtime_error("operation did not complete within its deadline (hang)");
    }
    return f.get();
}

template <class F>
bool eventually(F&& cond, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (cond())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return cond();
}

// Writers INCR keys in a loop on their own thread and keep a ledger of acknowledged increments,
// to check afterwards that nothing acknowledged was lost and nothing was applied twice.
struct ledger_load {
    asio::io_context ioc;
    cluster::cluster_client client;
    std::vector<std::string> keys;
    std::map<std::string, long> acked, unknown;
    std::map<std::string, long> clear_errors;
    std::atomic<bool> stop{false};
    std::atomic<int> running{0};
    std::atomic<long> ops{0}, failures{0};
    std::chrono::steady_clock::duration longest{};
    std::thread io;

    ledger_load(const redis_cluster& c, const std::string& prefix, int nkeys)
        : client(ioc, config(c)) {
        for (int i = 0; i < nkeys; ++i)
            keys.push_back(prefix + std::to_string(i));
    }
    ledger_load(const redis_cluster& c, std::vector<std::string> k)
        : client(ioc, config(c)), keys(std::move(k)) {}
    static cluster::cluster_config config(const redis_cluster& c) {
        auto cfg = cluster_config_for(c);
        cfg.connection.command_timeout = std::chrono::seconds(4);
        return cfg;
    }

    void start(int writers) {
        for (int w = 0; w < writers; ++w) {
            ++running;
            asio::co_spawn(
                ioc,
                [this, w]() -> asio::awaitable<void> {
                    std::size_t i = static_cast<std::size_t>(w) * 7;
                    while (!stop) {
                        const auto& key = keys[i++ % keys.size()];
                        auto t0 = std::chrono::steady_clock::now();
                        auto r = co_await client.async_command(client::cmd("INCR", key),
                                                               asio::use_awaitable);
                        longest = std::max(longest, std::chrono::steady_clock::now() - t0);
                        ++ops;
                        if (r && !r->is_error()) {
                            ++acked[key];
                            continue;
                        }
                        ++failures;
                        // Outcome unknown unless the command surely never ran.
                        bool never_ran =
                            r ? false
                              : (r.error() == cluster::cluster_error::retries_exhausted ||
                                 r.error() == client::error::not_connected);
                        if (!never_ran)
                            ++unknown[key];
                        ++clear_errors[r ? std::string(r->str().substr(0, 12))
                                         : r.error().message()];
                    }
                    --running;
                },
                asio::detached);
        }
        io = std::thread([this] {
            auto work = asio::make_work_guard(ioc);
            while (running > 0)
                ioc.run_one_for(std::chrono::milliseconds(20));
        });
    }
    void finish() {
        stop = true;
        io.join();
    }

    // Every acknowledged increment is there; at most the unknown ones were applied on top.
    void verify(const redis_cluster& c) {
        cluster::cluster_client check(cluster_config_for(c));
        for (const auto& [key, n] : acked) {
            auto v = get(check.async_command(client::cmd("GET", key), asio::use_future));
            ASSERT_TRUE(v) << v.error().message();
            long have = v->is_null() ? 0 : std::stol(v->str());
            EXPECT_GE(have, n) << key << ": acknowledged writes lost";
            EXPECT_LE(have, n + unknown[key]) << key;
        }
        for (const auto& [what, count] : clear_errors) {
            std::printf("  failure under load: %ld x %s\n", count, what.c_str());
        }
    }
};

}  // namespace respite::test
