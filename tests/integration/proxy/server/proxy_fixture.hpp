// Fixture for the proxy's integration tests: two real redis-servers (primary, secondary), an
// in-process respite-proxy in front of them, raw RESP sockets and respite clients through it.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <gtest/gtest.h>

#include <respite/client/sync_client.hpp>
#include <respite/proxy/proxy.hpp>
#include <respite/resp/frame_scanner.hpp>

#include "support/eventually.hpp"
#include "support/memory_pressure.hpp"
#include "support/redis_server.hpp"

namespace respite::test {

// A command as RESP bytes.
inline std::string resp_command(std::initializer_list<std::string_view> args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (auto a : args)
        out += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
    return out;
}

// A blocking RESP connection for byte-exact checks: send raw bytes, read whole frames.
class raw_conn {
  public:
    explicit raw_conn(std::uint16_t port) : socket_(ioc_) {
        asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
        socket_.connect(ep);
        socket_.set_option(asio::ip::tcp::no_delay(true));
    }
    void send(std::string_view bytes) { asio::write(socket_, asio::buffer(bytes)); }
    // Sends a command as a RESP array.
    void command(std::initializer_list<std::string_view> args) {
        command(std::span<const std::string_view>(args.begin(), args.size()));
    }
    void command(std::span<const std::string_view> args) {
        std::string out = "*" + std::to_string(args.size()) + "\r\n";
        for (auto a : args)
            out += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
        send(out);
    }
    // The next complete frame, or nullopt on EOF / deadline.
    std::optional<std::string> frame(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (true) {
            if (!buf_.empty()) {
                resp::frame_scanner sc;
                auto r = sc.scan(buf_);
                if (r.complete) {
                    auto f = buf_.substr(0, r.frame.length);
                    buf_.erase(0, r.frame.length);
                    return f;
                }
                if (r.error)
                    return std::nullopt;
            }
            if (std::chrono::steady_clock::now() >= end)
                return std::nullopt;
            if (!read_some(end))
                return std::nullopt;
        }
    }
    // One command, its reply frame.
    std::string call(std::initializer_list<std::string_view> args) {
        command(args);
        return frame().value_or("<no reply>");
    }
    std::string call(std::span<const std::string_view> args) {
        command(args);
        return frame().value_or("<no reply>");
    }
    // True when the peer closed the connection (EOF) before the deadline.
    bool closed_by_peer(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < end) {
            if (!read_some(end))
                return eof_;
        }
        return false;
    }
    void close() {
        std::error_code ec;
        socket_.close(ec);
    }
    asio::ip::tcp::socket& socket() { return socket_; }

  private:
    bool read_some(std::chrono::steady_clock::time_point end) {
        socket_.non_blocking(true);
        char tmp[65536];
        while (std::chrono::steady_clock::now() < end) {
            std::error_code ec;
            const auto n = socket_.read_some(asio::buffer(tmp), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
                continue;
            }
            if (ec) {
                eof_ = true;
                return false;
            }
            buf_.append(tmp, n);
            return true;
        }
        return false;
    }
    asio::io_context ioc_;
    asio::ip::tcp::socket socket_;
    std::string buf_;
    bool eof_ = false;
};

// A minimal HTTP/1.1 exchange (Connection: close) returning "status body".
// `headers`: more header lines, each ending in CRLF ("Host: ..." replaces the default).
inline std::string http(std::uint16_t port, std::string_view method, std::string_view target,
                        std::string_view headers = {}) {
    raw_conn c(port);
    const bool own_host = headers.starts_with("Host:");
    c.send(std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n" +
           (own_host ? "" : "Host: 127.0.0.1\r\n") + std::string(headers) +
           "Connection: close\r\nContent-Length: 0\r\n\r\n");
    std::string all;
    char buf[4096];
    std::error_code ec;
    while (true) {
        auto n = c.socket().read_some(asio::buffer(buf), ec);
        if (ec)
            break;
        all.append(buf, n);
    }
    const auto sp = all.find(' ');
    const auto body = all.find("\r\n\r\n");
    if (sp == std::string::npos || body == std::string::npos)
        return "bad response";
    return all.substr(sp + 1, 3) + " " + all.substr(body + 4);
}

class proxy_fixture : public ::testing::Test {
  protected:
    redis_server primary_;
    // With an append-only file: a secondary that restarts keeps its data, like a real one.
    redis_server secondary_{redis_server_options{.config = {{"appendonly", "yes"}}}};
    std::unique_ptr<proxy::proxy_server> proxy_;

    proxy::proxy_config config(proxy::mode m) const {
        proxy::proxy_config cfg;
        cfg.listen_port = 0;
        cfg.threads = 2;
        cfg.admin_host = "127.0.0.1";
        cfg.admin_port = 0;
        cfg.log_level = "warn";
        cfg.primary.connection.host = primary_.host();
        cfg.primary.connection.port = primary_.port();
        proxy::backend_config sec;
        sec.connection.host = secondary_.host();
        sec.connection.port = secondary_.port();
        cfg.secondary = sec;
        cfg.initial_mode = m;
        return cfg;
    }

    void start(proxy::mode m, const std::function<void(proxy::proxy_config&)>& tweak = {}) {
        auto cfg = config(m);
        if (tweak)
            tweak(cfg);
        proxy_ = std::make_unique<proxy::proxy_server>(cfg);
        auto r = proxy_->start();
        ASSERT_TRUE(r.has_value()) << r.error();
    }

    void TearDown() override {
        if (proxy_)
            proxy_->stop();
    }

    client::client_config client_config(int protocol = 3) const {
        client::client_config c;
        c.connection.host = "127.0.0.1";
        c.connection.port = proxy_->port();
        c.connection.protocol = protocol;
        c.connection.command_timeout = std::chrono::seconds(10);
        return c;
    }

    std::string digest(const redis_server& s) const { return s.cli({"DEBUG", "DIGEST"}); }

    // Both backends hold the same data (waits for the follower to catch up).
    ::testing::AssertionResult converged(
        std::chrono::milliseconds limit = std::chrono::seconds(30)) {
        std::string a, b;
        const bool ok = eventually(
            [&] {
                a = digest(primary_);
                b = digest(secondary_);
                return a == b;
            },
            limit);
        if (ok)
            return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure()
               << "DEBUG DIGEST differs: primary " << a << " secondary " << b << "\n"
               << differing_keys() << "\nproxy info:\n"
               << proxy_->info();
    }

    // The keys whose value digest differs (for failure messages).
    std::string differing_keys(std::size_t limit = 20) const {
        if (auto fast = differing_keys_pipelined(limit))
            return *fast;
        std::string out;  // a server the pipelines cannot reach (a password): one cli per key
        std::size_t n = 0;
        for (const redis_server* s : {&primary_, &secondary_}) {
            std::stringstream ss(s->cli({"KEYS", "*"}));
            std::string k;
            while (std::getline(ss, k) && n < limit) {
                if (k.empty())
                    continue;
                const auto da = primary_.cli({"DEBUG", "DIGEST-VALUE", k});
                const auto db = secondary_.cli({"DEBUG", "DIGEST-VALUE", k});
                if (da != db && out.find("key " + k + " ") == std::string::npos) {
                    ++n;
                    out += "key " + k + " type " + primary_.cli({"TYPE", k}) + "/" +
                           secondary_.cli({"TYPE", k}) + "\n";
                }
            }
        }
        return out;
    }
    // The same in one KEYS and one pipeline of DEBUG DIGEST-VALUE per server (a redis-cli per
    // key took minutes over 10 000 keys); nullopt when a server does not answer them.
    std::optional<std::string> differing_keys_pipelined(std::size_t limit) const {
        auto connect = [](const redis_server& s) {
            client::client_config c;
            c.connection.host = s.host();
            c.connection.port = s.port();
            c.connection.command_timeout = std::chrono::seconds(10);
            return client::sync_client(c);
        };
        auto pa = connect(primary_);
        auto sa = connect(secondary_);
        std::set<std::string> keys;
        for (auto* c : {&pa, &sa}) {
            const auto all = c->command("KEYS", "*");
            if (!all || !all->is_aggregate())
                return std::nullopt;
            for (const auto& k : all->elements())
                keys.insert(k.str());
        }
        const std::vector<std::string> names(keys.begin(), keys.end());
        auto digests = [&](client::sync_client& c) -> std::optional<std::vector<resp::value>> {
            client::request r;
            for (const auto& k : names)
                r.push("DEBUG", "DIGEST-VALUE", k);
            auto got = c.exec(std::move(r));
            if (!got || got->size() != names.size())
                return std::nullopt;
            return std::move(*got);
        };
        const auto da = digests(pa);
        const auto db = digests(sa);
        if (!da || !db)
            return std::nullopt;
        std::string out;
        for (std::size_t i = 0, n = 0; i < names.size() && n < limit; ++i) {
            if ((*da)[i] == (*db)[i])
                continue;
            ++n;
            out += "key " + names[i] + " type " + primary_.cli({"TYPE", names[i]}) + "/" +
                   secondary_.cli({"TYPE", names[i]}) + "\n";
        }
        return out;
    }

    // The secondary's maxmemory just above what it uses: a write or copy of a few MB gets OOM.
    void leave_secondary_no_room() const { leave_no_room(secondary_); }

    std::string recent_divergences() const {
        return http(proxy_->admin_port(), "GET", "/divergences");
    }

    // respite_proxy_commands_total of one command label, from /metrics (0 when absent).
    std::uint64_t commands_counted(std::string_view label) const {
        const auto text = http(proxy_->admin_port(), "GET", "/metrics");
        const auto key = "\nrespite_proxy_commands_total{command=\"" + std::string(label) + "\"} ";
        const auto at = text.find(key);
        return at == std::string::npos ? 0 : std::stoull(text.substr(at + key.size()));
    }

    // A process stopped with SIGSTOP (a server that no longer answers), resumed on destruction.
    struct stopped_process {
        int pid;
        explicit stopped_process(int p) : pid(p) { EXPECT_EQ(::kill(pid, SIGSTOP), 0); }
        ~stopped_process() { ::kill(pid, SIGCONT); }
        stopped_process(const stopped_process&) = delete;
        stopped_process& operator=(const stopped_process&) = delete;
    };
    // In dual-write: a first write reaches the secondary, then the secondary stops answering,
    // so the follower cannot apply the next ones (and a switch to it waits).
    std::unique_ptr<stopped_process> stop_the_follower_target(raw_conn& c) {
        EXPECT_EQ(c.call({"SET", "k", "1"}), "+OK\r\n");
        EXPECT_TRUE(eventually([&] { return secondary_.cli({"GET", "k"}) == "1"; }));
        return std::make_unique<stopped_process>(secondary_.pid());
    }

    // A value from INFO proxy ("" when absent).
    std::string info_field(std::string_view name) const {
        const auto text = proxy_->info();
        const auto key = std::string(name) + ":";
        auto pos = text.find(key);
        if (pos == std::string::npos)
            return {};
        auto end = text.find("\r\n", pos);
        return text.substr(pos + key.size(), end - pos - key.size());
    }
};

}  // namespace respite::test
