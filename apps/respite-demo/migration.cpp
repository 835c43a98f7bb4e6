// The migration demo (respite-demo without arguments): moves a live application from one Redis to
// another through respite-proxy, running in this process between two throwaway redis-servers.
//
//   (1) primary-only       preloaded data on the primary; the workload reads through the proxy
//   (2) dual-write         the workload writes too; the proxy follows every write on the secondary
//   (3) PROXY SYNC         the proxy copies the keys that existed before, under live traffic:
//                          SCAN of the primary, each key copied by the follower's repair loop
//   (4) dual-write-shadow  sampled reads are compared against the secondary
//   (5) secondary-primary  cut-over: PROXY MODE SET waits for the follower, then flips
//   (6) secondary-only     the primary is retired
//   (7) verify             DEBUG DIGEST of both servers must be equal
//
// The workload writes only under "live:", the preloaded data lives under "demo:"; PROXY SYNC copies
// both (a copy never overwrites a newer followed write: it waits for the key's writes in flight
// and copies again when one begins meanwhile; docs/proxy.md, runbook step 3).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <fmt/core.h>

#include <respite/client/client.hpp>
#include <respite/client/sync_client.hpp>
#include <respite/obs/log.hpp>
#include <respite/proxy/proxy.hpp>

#include "demo.hpp"
#include "support/redis_server.hpp"

namespace respite::demo {

namespace {

using namespace std::chrono_literals;
using client::cmd;
using steady = std::chrono::steady_clock;

constexpr std::string_view k_live_prefix = "live:";  // the workload's keys (followed by the proxy)
constexpr std::string_view k_data_prefix = "demo:";  // the preloaded keys (copied in step 3)
constexpr std::size_t k_live_keys = 4096;            // per workload client and type

steady::time_point g_t0 = steady::now();

double seconds_since(steady::time_point t) {
    return std::chrono::duration<double>(steady::now() - t).count();
}

template <class... A>
void say(fmt::format_string<A...> f, A&&... a) {
    fmt::print("  [{:5.1f}s] {}\n", seconds_since(g_t0), fmt::format(f, std::forward<A>(a)...));
    std::fflush(stdout);
}

void step(int n, std::string_view title) {
    fmt::print("\n== ({}) {}\n", n, title);
    std::fflush(stdout);
}

resp::value must(client::result<resp::value> r, std::string_view what) {
    if (!r)
        throw std::runtime_error(fmt::format("{}: {}", what, r.error().message()));
    if (r->is_error())
        throw std::runtime_error(fmt::format("{}: {}", what, r->str()));
    return std::move(*r);
}

std::vector<resp::value> must_all(client::result<std::vector<resp::value>> r,
                                  std::string_view what) {
    if (!r)
        throw std::runtime_error(fmt::format("{}: {}", what, r.error().message()));
    for (const auto& v : *r)
        if (v.is_error())
            throw std::runtime_error(fmt::format("{}: {}", what, v.str()));
    return std::move(*r);
}

// "name:value" lines of an INFO section.
using info_map = std::map<std::string, std::string, std::less<>>;
info_map parse_info(std::string_view text) {
    info_map m;
    while (!text.empty()) {
        auto end = text.find('\n');
        auto line = text.substr(0, end);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (auto colon = line.find(':'); colon != std::string_view::npos && line[0] != '#')
            m.emplace(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
        if (end == std::string_view::npos)
            break;
        text.remove_prefix(end + 1);
    }
    return m;
}

long long num(const info_map& m, std::string_view key) {
    auto it = m.find(key);
    if (it == m.end())
        return 0;
    try {
        return static_cast<long long>(std::stod(it->second));
    } catch (const std::exception&) {
        return 0;
    }
}

std::string text_of(const info_map& m, std::string_view key) {
    auto it = m.find(key);
    return it == m.end() ? std::string("?") : it->second;
}

// A minimal HTTP/1.1 GET against the proxy's admin endpoint: {status, body}.
std::pair<int, std::string> http_get(std::uint16_t port, std::string_view path) {
    asio::io_context ioc;
    asio::ip::tcp::socket s(ioc);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    const auto req =
        fmt::format("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    asio::write(s, asio::buffer(req));
    std::string in;
    const auto head_len = asio::read_until(s, asio::dynamic_buffer(in), "\r\n\r\n");
    const std::string head = in.substr(0, head_len);
    std::size_t length = 0;
    for (std::string_view name : {"Content-Length: ", "content-length: "})
        if (auto p = head.find(name); p != std::string::npos)
            length = std::stoul(head.substr(p + name.size()));
    std::error_code ec;
    if (in.size() < head_len + length)
        asio::read(s, asio::dynamic_buffer(in),
                   asio::transfer_exactly(head_len + length - in.size()), ec);
    int status = 0;
    if (head.size() > 12)
        status = std::stoi(head.substr(9, 3));
    return {status, in.substr(head_len, length)};
}

std::string first_line(std::string_view s) {
    return std::string(s.substr(0, s.find('\n')));
}

// ---- the workload ----

struct traffic_totals {
    std::uint64_t commands = 0;
    std::uint64_t writes = 0;
    std::uint64_t errors = 0;
};

// Client threads sending pipelined batches of mixed reads and writes through the proxy. Client t
// writes only "live:t:*" keys (each key has one writer, so its writes reach the proxy in order);
// reads cover its own keys and the preloaded ones.
class workload {
  public:
    workload(std::uint16_t proxy_port, const migration_options& o, std::size_t per_type)
        : port_(proxy_port), opts_(o), per_type_(per_type) {}
    ~workload() { stop(); }

    void start() {
        stop_.store(false);
        for (std::size_t t = 0; t < opts_.clients; ++t)
            threads_.emplace_back([this, t] { run(t); });
    }
    void stop() {
        stop_.store(true);
        for (auto& th : threads_)
            th.join();
        threads_.clear();
    }
    void allow_writes(bool on) { writes_.store(on); }

    [[nodiscard]] traffic_totals totals() const {
        return {commands_.load(), writes_done_.load(), errors_.load()};
    }
    // The slowest batch since the last call, in ms.
    double take_slowest_ms() { return static_cast<double>(slowest_us_.exchange(0)) / 1000.0; }
    [[nodiscard]] std::vector<std::string> first_errors() const {
        std::lock_guard lock(mu_);
        return first_errors_;
    }

  private:
    void note_error(std::string what) {
        errors_.fetch_add(1);
        std::lock_guard lock(mu_);
        if (first_errors_.size() < 5)
            first_errors_.push_back(std::move(what));
    }

    void run(std::size_t t) {
        client::client_config cfg;
        cfg.connection.host = "127.0.0.1";
        cfg.connection.port = port_;
        cfg.connection.protocol = opts_.protocol;
        cfg.connection.client_name = fmt::format("demo-load-{}", t);
        cfg.connection.command_timeout = 5s;
        client::sync_client c(cfg);
        std::mt19937_64 rng(0x5eed + t);
        std::uint64_t n = 0;
        while (!stop_.load()) {
            client::request r;
            const bool writes = writes_.load();
            std::uint64_t batch_writes = 0;
            for (std::size_t i = 0; i < opts_.batch; ++i, ++n)
                batch_writes += add_command(r, t, rng, writes, n) ? 1 : 0;
            const auto t0 = steady::now();
            auto res = c.exec(std::move(r));
            const auto us = static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - t0).count());
            auto prev = slowest_us_.load();
            while (us > prev && !slowest_us_.compare_exchange_weak(prev, us)) {
            }
            if (!res) {
                note_error(fmt::format("transport: {} (a batch of {} commands sent at {:.1f} s)",
                                       res.error().message(), opts_.batch,
                                       std::chrono::duration<double>(t0 - g_t0).count()));
                std::this_thread::sleep_for(10ms);
                continue;
            }
            for (const auto& v : *res)
                if (v.is_error())
                    note_error(v.str());
            commands_.fetch_add(res->size());
            writes_done_.fetch_add(batch_writes);
        }
    }

    // Appends one command; true for a write.
    bool add_command(client::request& r, std::size_t t, std::mt19937_64& rng, bool writes,
                     std::uint64_t n) {
        const auto i = rng() % k_live_keys;
        auto live = [&](std::string_view type, std::size_t idx) {
            return fmt::format("{}{}:{}:{}", k_live_prefix, t, type, idx);
        };
        if (writes && rng() % 100 < 60) {
            switch (rng() % 15) {
                case 0:
                    r.push("SET", live("str", i), fmt::format("v{}", n));
                    break;
                case 1:
                    r.push("INCR", live("ctr", i));
                    break;
                case 2:
                    r.push("HSET", live("hash", i), fmt::format("f{}", rng() % 8),
                           fmt::format("v{}", n));
                    break;
                case 3:
                    r.push("HINCRBY", live("hash", i), "hits", 1);
                    break;
                case 4:
                    r.push("LPUSH", live("list", i), fmt::format("e{}", n));
                    break;
                case 5:
                    r.push("LTRIM", live("list", i), 0, 31);
                    break;
                case 6:
                    r.push("RPOP", live("list", i));  // replayed by effect: the popped value
                    break;
                case 7:
                    r.push("SADD", live("set", i), fmt::format("m{}", rng() % 24));
                    break;
                case 8:
                    r.push("SPOP", live("set", i));  // random member: replayed as SREM of it
                    break;
                case 9:
                    r.push("ZADD", live("zset", i), static_cast<int>(rng() % 1000),
                           fmt::format("m{}", rng() % 24));
                    break;
                case 10:
                    r.push("ZINCRBY", live("zset", i), "1.5", fmt::format("m{}", rng() % 24));
                    break;
                case 11:
                    // XADD *: replayed with the ID the primary generated.
                    r.push("XADD", live("stream", i % 256), "MAXLEN", 100, "*", "n", n);
                    break;
                case 12:
                    r.push("EXPIRE", live("str", i), 3600);  // replayed as PEXPIREAT
                    break;
                case 13:
                    r.push("INCRBYFLOAT", live("float", i), "0.1");  // replayed as SET
                    break;
                default:
                    r.push("DEL", live("str", i));
                    break;
            }
            return true;
        }
        const auto j = rng() % per_type_;
        auto data = [&](std::string_view type) {
            return fmt::format("{}{}:{}", k_data_prefix, type, j);
        };
        switch (rng() % 12) {
            case 0:
                r.push("GET", live("str", i));
                break;
            case 1:
                r.push("HGETALL", live("hash", i));
                break;
            case 2:
                r.push("LRANGE", live("list", i), 0, -1);
                break;
            case 3:
                r.push("SMEMBERS", live("set", i));
                break;
            case 4:
                r.push("ZRANGE", live("zset", i), 0, -1, "WITHSCORES");
                break;
            case 5:
                r.push("XRANGE", live("stream", i % 256), "-", "+", "COUNT", 10);
                break;
            case 6:
                r.push("TTL", live("str", i));
                break;
            case 7:
                r.push("GET", data("str"));
                break;
            case 8:
                r.push("HGETALL", data("hash"));
                break;
            case 9:
                r.push("LRANGE", data("list"), 0, -1);
                break;
            case 10:
                r.push("ZRANGE", data("zset"), 0, -1, "WITHSCORES");
                break;
            default:
                r.push("XRANGE", data("stream"), "-", "+");
                break;
        }
        return false;
    }

    std::uint16_t port_;
    migration_options opts_;
    std::size_t per_type_;
    std::vector<std::thread> threads_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> writes_{false};
    std::atomic<std::uint64_t> commands_{0}, writes_done_{0}, errors_{0}, slowest_us_{0};
    mutable std::mutex mu_;
    std::vector<std::string> first_errors_;
};

// Runs traffic for `seconds` and prints what it did.
void traffic_for(workload& w, double seconds) {
    const auto before = w.totals();
    const auto t0 = steady::now();
    w.take_slowest_ms();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const auto after = w.totals();
    const double secs = seconds_since(t0);
    say("traffic: {} commands ({} writes) in {:.1f} s = {:.0f} ops/s, errors {}, slowest batch "
        "{:.1f} ms",
        after.commands - before.commands, after.writes - before.writes, secs,
        static_cast<double>(after.commands - before.commands) / secs, after.errors - before.errors,
        w.take_slowest_ms());
}

// ---- the data ----

struct preload_result {
    std::size_t keys = 0;
    std::size_t with_ttl = 0;
};

preload_result preload(client::sync_client& primary, std::size_t per_type) {
    preload_result out;
    client::request r;
    auto flush = [&] {
        if (!r.empty())
            must_all(primary.exec(std::move(r)), "preload");
        r = client::request{};
    };
    for (std::size_t j = 0; j < per_type; ++j) {
        const auto k = [&](std::string_view type) {
            return fmt::format("{}{}:{}", k_data_prefix, type, j);
        };
        r.push("SET", k("str"), fmt::format("value-{}-{}", j, std::string(j % 40, 'x')));
        r.push("HSET", k("hash"), "name", fmt::format("user-{}", j), "visits", j, "plan",
               j % 3 == 0 ? "pro" : "free", "since", 1700000000 + j);
        r.push("RPUSH", k("list"), "a", "b", j, "d", fmt::format("e{}", j));
        r.push("SADD", k("set"), j, j + 1, fmt::format("m{}", j), "shared");
        r.push("ZADD", k("zset"), 1, "one", 2.5, "two-and-a-half", j, fmt::format("m{}", j));
        for (int e = 0; e < 3; ++e)
            r.push("XADD", k("stream"), "*", "event", e, "user", j);
        if (j % 10 == 0)
            r.push("XGROUP", "CREATE", k("stream"), "workers", "0");
        out.keys += 6;
        if (j % 4 == 0) {  // some of every type expire (in an hour: not during the demo)
            for (auto type : {"str", "hash", "list", "set", "zset", "stream"})
                r.push("PEXPIRE", k(type), 3'600'000 + static_cast<std::int64_t>(j));
            out.with_ttl += 6;
        }
        if (r.size() >= 2000)
            flush();
    }
    flush();
    return out;
}

std::int64_t dbsize(client::sync_client& c) {
    return must(c.command("DBSIZE"), "DBSIZE").integer();
}

// When the digests differ: the first keys whose values differ (DEBUG DIGEST-VALUE per key).
void print_differences(client::sync_client& primary, client::sync_client& secondary) {
    std::vector<std::string> keys;
    for (auto* side : {&primary, &secondary}) {
        std::string cursor = "0";
        do {
            auto page = must(side->command("SCAN", cursor, "COUNT", 1000), "SCAN");
            cursor = page.elements().at(0).str();
            for (const auto& k : page.elements().at(1).elements())
                keys.push_back(k.str());
        } while (cursor != "0");
    }
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    int shown = 0;
    for (std::size_t at = 0; at < keys.size() && shown < 10; at += 500) {
        client::request a, b;
        const auto end = std::min(keys.size(), at + 500);
        for (auto i = at; i < end; ++i) {
            a.push("DEBUG", "DIGEST-VALUE", keys[i]);
            b.push("DEBUG", "DIGEST-VALUE", keys[i]);
        }
        auto ra = primary.exec(std::move(a));
        auto rb = secondary.exec(std::move(b));
        if (!ra || !rb)
            return;
        for (auto i = at; i < end && shown < 10; ++i) {
            const auto& x = (*ra)[i - at];
            const auto& y = (*rb)[i - at];
            const auto xs = x.is_aggregate() && x.size() == 1 ? x[0].str() : x.to_display();
            const auto ys = y.is_aggregate() && y.size() == 1 ? y[0].str() : y.to_display();
            if (xs != ys) {
                say("  differs: {} (primary {}, secondary {})", keys[i], xs, ys);
                ++shown;
            }
        }
    }
}

// PROXY MODE SET through a client connection to the proxy, as an operator would.
double switch_mode(client::sync_client& admin, std::string_view to) {
    const auto t0 = steady::now();
    must(admin.command("PROXY", "MODE", "SET", to), fmt::format("PROXY MODE SET {}", to));
    return seconds_since(t0) * 1000;
}

info_map proxy_info(client::sync_client& admin) {
    return parse_info(must(admin.command("INFO", "proxy"), "INFO proxy").str());
}

}  // namespace

int run_migration(const migration_options& opts) {
    g_t0 = steady::now();
    bool ok = true;
    try {
        fmt::print(
            "respite-proxy live migration demo: two throwaway redis-servers, the proxy in this "
            "process,\n{} client threads sending pipelined traffic through it the whole time.\n",
            opts.clients);

        step(0, "setup");
        test::redis_server primary_server;
        test::redis_server secondary_server;
        say("primary   redis-server on 127.0.0.1:{} (the current deployment)",
            primary_server.port());
        say("secondary redis-server on 127.0.0.1:{} (the migration target, empty)",
            secondary_server.port());

        proxy::proxy_config pc;
        pc.listen_host = "127.0.0.1";
        pc.listen_port = 0;
        pc.threads = opts.proxy_threads;
        pc.primary.connection.host = primary_server.host();
        pc.primary.connection.port = primary_server.port();
        proxy::backend_config sec;
        sec.connection.host = secondary_server.host();
        sec.connection.port = secondary_server.port();
        pc.secondary = sec;
        pc.initial_mode = proxy::mode::primary_only;
        pc.admin_host = "127.0.0.1";
        pc.admin_port = 0;
        pc.repair_rate = 0;  // PROXY SYNC copies as fast as the servers take it
        pc.log_level = "warn";
        proxy::proxy_server proxy(pc);
        if (auto r = proxy.start(); !r)
            throw std::runtime_error("respite-proxy: " + r.error());
        say("respite-proxy on 127.0.0.1:{}, admin http://127.0.0.1:{}, {} workers, mode {}",
            proxy.port(), proxy.admin_port(), opts.proxy_threads,
            proxy::mode_name(proxy.current_mode()));

        auto direct = [](const test::redis_server& s) {
            client::client_config c;
            c.connection.host = s.host();
            c.connection.port = s.port();
            c.connection.client_name = "demo-direct";
            c.connection.command_timeout = 30s;
            return c;
        };
        client::sync_client primary(direct(primary_server));
        client::sync_client secondary(direct(secondary_server));
        client::client_config ac;
        ac.connection.host = "127.0.0.1";
        ac.connection.port = proxy.port();
        ac.connection.client_name = "demo-operator";
        ac.connection.command_timeout = 30s;
        client::sync_client admin(ac);  // the operator's connection to the proxy

        // ---- (1) ----
        step(1, "primary-only: the application talks to the proxy, the proxy to the primary");
        const std::size_t per_type = std::max<std::size_t>(1, opts.keys / 6);
        auto t0 = steady::now();
        const auto pre = preload(primary, per_type);
        say("preloaded {} keys on the primary in {:.0f} ms: {} each of string, hash, list, set, "
            "zset, stream ({} with a TTL, some streams with a consumer group)",
            pre.keys, seconds_since(t0) * 1000, per_type, pre.with_ttl);
        say("DBSIZE primary {}, secondary {}", dbsize(primary), dbsize(secondary));
        {
            auto [st, body] = http_get(proxy.admin_port(), "/readyz");
            auto [mst, mbody] = http_get(proxy.admin_port(), "/mode");
            say("GET /readyz -> {} {}, GET /mode -> {} {}", st, first_line(body), mst,
                first_line(mbody));
        }
        workload load(proxy.port(), opts, per_type);
        load.start();
        say("{} clients send pipelined batches of {} commands through the proxy; reads only "
            "for now:",
            opts.clients, opts.batch);
        say("writes made before dual-write would be missing on the secondary (only the copy "
            "of step 3 brings old keys over)");
        traffic_for(load, opts.phase_seconds);

        // ---- (2) ----
        step(2, "dual-write: the primary serves, every write is followed on the secondary");
        auto ms = switch_mode(admin, "dual-write");
        load.allow_writes(true);
        say("PROXY MODE SET dual-write -> OK in {:.1f} ms (the serving side is unchanged: no wait)",
            ms);
        say("the workload now also writes, only under \"{}<client>:*\" (strings, counters, "
            "hashes, lists, sets, zsets, streams, TTLs);",
            k_live_prefix);
        say("RPOP/SPOP/XADD */EXPIRE/INCRBYFLOAT are replayed by their effect (popped value, "
            "generated ID, absolute time, result)");
        traffic_for(load, opts.phase_seconds);
        {
            auto i = proxy_info(admin);
            say("follower -> secondary: applied {}, queued {}, lag {} s, dirty keys {}, failed {}",
                num(i, "follow_secondary_applied"), num(i, "follow_secondary_queued_items"),
                text_of(i, "follow_secondary_lag_seconds"), num(i, "follow_secondary_dirty_keys"),
                num(i, "follow_secondary_failed"));
            say("DBSIZE primary {}, secondary {} (only the keys written since dual-write)",
                dbsize(primary), dbsize(secondary));
        }

        // ---- (3) ----
        step(3,
             "PROXY SYNC: the proxy copies the keys that existed before (traffic keeps "
             "running)");
        say("SCAN of the primary; every key goes to the follower's repair loop: DUMP/PEXPIRETIME "
            "on the primary,");
        say("RESTORE <key> <expiry> <payload> REPLACE ABSTTL on the secondary. A copy waits for "
            "the key's writes in flight");
        say("and is redone when a write begins meanwhile, so it never puts an older value over a "
            "followed write.");
        t0 = steady::now();
        must(admin.command("PROXY", "SYNC", "START", "COUNT", 1000, "PRUNE"), "PROXY SYNC START");
        info_map sync;
        const auto sync_deadline = steady::now() + 120s;
        for (;;) {
            sync = parse_info(must(admin.command("PROXY", "SYNC", "STATUS"), "PROXY SYNC").str());
            const auto state = text_of(sync, "sync_state");
            if (state != "scanning" && state != "repairing")
                break;
            if (steady::now() > sync_deadline) {
                must(admin.command("PROXY", "SYNC", "STOP"), "PROXY SYNC STOP");
                sync =
                    parse_info(must(admin.command("PROXY", "SYNC", "STATUS"), "PROXY SYNC").str());
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
        if (text_of(sync, "sync_state") != "done") {
            ok = false;
            say("FAIL: PROXY SYNC ended in state {}: {}", text_of(sync, "sync_state"),
                text_of(sync, "sync_error"));
        }
        say("PROXY SYNC {}: {} keys scanned in {} SCAN calls, {} copied, in {:.0f} ms",
            text_of(sync, "sync_state"), num(sync, "sync_keys_scanned"),
            num(sync, "sync_scan_calls"), num(sync, "sync_repaired"), seconds_since(t0) * 1000);
        say("DBSIZE primary {}, secondary {}", dbsize(primary), dbsize(secondary));
        traffic_for(load, opts.phase_seconds / 2);

        // ---- (4) ----
        step(4, "dual-write-shadow: reads are also run on the secondary and compared");
        ms = switch_mode(admin, "dual-write-shadow");
        say("PROXY MODE SET dual-write-shadow -> OK in {:.1f} ms; shadow percent {}", ms,
            text_of(proxy_info(admin), "shadow_percent"));
        traffic_for(load, opts.phase_seconds * 1.5);
        {
            auto i = proxy_info(admin);
            say("INFO proxy: shadow_compared {}, shadow_matched {}, shadow_cleared_on_recheck {}, "
                "shadow_reported {}",
                num(i, "shadow_compared"), num(i, "shadow_matched"),
                num(i, "shadow_cleared_on_recheck"), num(i, "shadow_reported"));
            say("INFO proxy: divergence_migration_gap {}, divergence_data_mismatch {}, "
                "divergence_extra_data {}, divergence_secondary_error {}",
                num(i, "divergence_migration_gap"), num(i, "divergence_data_mismatch"),
                num(i, "divergence_extra_data"), num(i, "divergence_secondary_error"));
            say("(a read that differs at first is re-read after the follower applied that key's "
                "queued writes: \"cleared on recheck\")");
            say("INFO proxy: follow_secondary_reply_mismatches {} (writes whose integer reply on "
                "the secondary differed from the primary's, checked since the complete SYNC)",
                num(i, "follow_secondary_reply_mismatches"));
            auto [st, metrics] = http_get(proxy.admin_port(), "/metrics");
            std::string_view m = metrics;
            for (std::size_t p = 0;
                 (p = m.find("respite_proxy_shadow_reads_total{", p)) != std::string_view::npos;) {
                const auto end = m.find('\n', p);
                say("GET /metrics: {}", m.substr(p, end - p));
                p = end;
            }
            const auto divergences =
                num(i, "divergence_migration_gap") + num(i, "divergence_data_mismatch") +
                num(i, "divergence_extra_data") + num(i, "divergence_secondary_error");
            if (divergences != 0) {
                ok = false;
                auto [dst, dbody] = http_get(proxy.admin_port(), "/divergences");
                say("FAIL: {} divergences; GET /divergences:\n{}", divergences, dbody);
            } else {
                say("zero divergences: the secondary answers like the primary");
            }
        }

        // ---- (5) ----
        step(5, "secondary-primary: cut-over, the secondary serves, the primary follows");
        {
            const auto before = proxy_info(admin);
            say("before: writes in flight {}, follower -> secondary queued {} items, dirty keys {}",
                num(before, "writes_in_flight"), num(before, "follow_secondary_queued_items"),
                num(before, "follow_secondary_dirty_keys"));
            // Watch the switch from the side: the largest follower backlog it had to wait for.
            std::atomic<bool> switching{true};
            long long max_queued = 0, max_in_flight = 0;
            std::thread watcher([&] {
                while (switching.load()) {
                    const auto i = parse_info(proxy.info());
                    max_queued = std::max(max_queued, num(i, "follow_secondary_queued_items"));
                    max_in_flight = std::max(max_in_flight, num(i, "writes_in_flight"));
                    std::this_thread::sleep_for(200us);
                }
            });
            load.take_slowest_ms();
            ms = switch_mode(admin, "secondary-primary");
            switching.store(false);
            watcher.join();
            const auto after = proxy_info(admin);
            say("PROXY MODE SET secondary-primary -> OK in {:.1f} ms", ms);
            say("it held new writes, waited for the writes in flight (up to {} seen) and for the "
                "follower",
                max_in_flight);
            say("to apply everything queued for the secondary (up to {} items seen), then "
                "flipped;",
                max_queued);
            say("after: follower -> secondary queued {}, dirty {}; slowest workload batch across "
                "the switch {:.1f} ms",
                num(after, "follow_secondary_queued_items"),
                num(after, "follow_secondary_dirty_keys"), load.take_slowest_ms());
        }
        const auto rollback_before = num(proxy_info(admin), "follow_primary_applied");
        traffic_for(load, opts.phase_seconds);
        {
            auto i = proxy_info(admin);
            say("follower -> primary (the rollback path): applied {} since the cut-over, queued "
                "{}, dirty {}",
                num(i, "follow_primary_applied") - rollback_before,
                num(i, "follow_primary_queued_items"), num(i, "follow_primary_dirty_keys"));
            say("shadow reads now compare against the primary: compared {}, reported {}",
                num(i, "shadow_compared"), num(i, "shadow_reported"));
            auto [st, body] = http_get(proxy.admin_port(), "/readyz");
            say("GET /readyz -> {} {} (the serving side, now the secondary, answers PING)", st,
                first_line(body));
        }

        // ---- (6) ----
        step(6, "secondary-only: the primary is retired");
        say("the workload stops writing first: from secondary-only on, the primary gets nothing,");
        say("and step 7 compares both servers at the moment of the switch");
        load.stop();
        load.allow_writes(false);
        {
            const auto deadline = steady::now() + 10s;
            info_map i;
            while (true) {
                i = proxy_info(admin);
                if ((num(i, "writes_in_flight") == 0 &&
                     num(i, "follow_primary_queued_items") == 0 &&
                     num(i, "follow_primary_dirty_keys") == 0) ||
                    steady::now() > deadline)
                    break;
                std::this_thread::sleep_for(5ms);
            }
            say("follower -> primary drained: queued {}, dirty {}, failed {}",
                num(i, "follow_primary_queued_items"), num(i, "follow_primary_dirty_keys"),
                num(i, "follow_primary_failed"));
        }
        ms = switch_mode(admin, "secondary-only");
        say("PROXY MODE SET secondary-only -> OK in {:.1f} ms", ms);
        load.start();
        say("read-only traffic against secondary-only:");
        traffic_for(load, std::max(0.5, opts.phase_seconds / 2));
        load.stop();
        {
            auto [st, body] = http_get(proxy.admin_port(), "/mode");
            say("GET /mode -> {} {}", st, first_line(body));
        }

        // ---- (7) ----
        step(7, "verify: both servers hold the same data");
        const auto dp = must(primary.command("DEBUG", "DIGEST"), "DEBUG DIGEST primary").str();
        const auto ds = must(secondary.command("DEBUG", "DIGEST"), "DEBUG DIGEST secondary").str();
        const auto np = dbsize(primary);
        const auto ns = dbsize(secondary);
        say("primary   DEBUG DIGEST {}  DBSIZE {}", dp, np);
        say("secondary DEBUG DIGEST {}  DBSIZE {}", ds, ns);
        if (dp == ds && np == ns) {
            say("EQUAL");
        } else {
            say("DIFFERENT");
            print_differences(primary, secondary);
            ok = false;
        }

        const auto tot = load.totals();
        const double secs = seconds_since(g_t0);
        fmt::print("\n== summary\n");
        say("workload: {} commands ({} writes), {} errors; whole demo {:.1f} s", tot.commands,
            tot.writes, tot.errors, secs);
        for (const auto& e : load.first_errors())
            say("  error: {}", e);
        if (tot.errors != 0)
            ok = false;
        // The demo's own connections to the proxy end with it: that is not worth a warning.
        respite::obs::set_log_level("error");
        proxy.stop();
        say("{}", ok ? "migration complete: no client error, no divergence, data equal"
                     : "FAILED (see above)");
    } catch (const std::exception& ex) {
        fmt::print(stderr, "respite-demo: {}\n", ex.what());
        return 1;
    }
    return ok ? 0 : 1;
}

}  // namespace respite::demo
