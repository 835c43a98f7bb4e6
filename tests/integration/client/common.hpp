// Shared helpers for the client integration tests: configs for a fixture server, waiting on
// futures with a deadline (a hang is a failure, never a stuck CI run).
#pragma once

#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include <respite/client/client.hpp>
#include <respite/obs/metrics.hpp>

#include "support/eventually.hpp"
#include "support/redis_server.hpp"

namespace respite::test {

inline client::client_config config_for(const redis_server& s, int protocol = 3) {
    client::client_config cfg;
    cfg.connection.host = s.host();
    cfg.connection.port = s.port();
    cfg.connection.protocol = protocol;
    cfg.connection.command_timeout = std::chrono::seconds(5);
    cfg.connection.reconnect.initial = std::chrono::milliseconds(10);
    cfg.connection.reconnect.max = std::chrono::milliseconds(200);
    return cfg;
}

template <class T>
T get(std::future<T>& f, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    if (f.wait_for(limit) != std::future_status::ready) {
        throw std::runtime_error("operation did not complete within its deadline (hang)");
    }
    return f.get();
}

template <class T>
T get(std::future<T>&& f, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    return get(f, limit);
}

// Runs `ioc` until `done()` holds or the deadline passes (the client's connections keep the
// io_context busy forever, so run_for alone would always take its whole limit).
template <class F>
bool run_until(asio::io_context& ioc, F&& done,
               std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < end) {
        ioc.run_one_for(std::chrono::milliseconds(10));
    }
    return done();
}

}  // namespace respite::test
