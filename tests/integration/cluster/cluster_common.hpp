// Helpers for the cluster integration tests: a client config for a fixture cluster, deadlines.
#pragma once

#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

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

}  // namespace respite::test
