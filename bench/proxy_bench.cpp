// respite-proxy's cost: redis-benchmark against redis-server directly, through nutcracker, and
// through respite-proxy (primary-only and dual-write), in one run, with the proxies' peak RSS.
//
// Every target fronts the same primary redis-server; dual-write also writes to a second one.
// Within a round the targets run each test back to back (the order rotates per test and round);
// requests/s are medians over rounds and ratios medians of the per-round ratios, because this
// VM's speed drifts by more than some of the differences measured.
//
// --pin pins the redis-servers to CPU 0 and nutcracker and respite-proxy to CPU 1 (redis-benchmark
// left free). It is off by default: on this 2-core VM it did not make runs steadier (see
// bench/README.md, session 5).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sched.h>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "peer.hpp"
#include "support/redis_server.hpp"

using namespace respite;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();

// A peer process (nutcracker, respite-proxy) with its output in a log file. It gets SIGKILL if
// this program dies (PR_SET_PDEATHSIG), and SIGTERM then SIGKILL when the object is destroyed
// (normal end or an exception), so no run leaves a proxy behind.
class child_process {
  public:
    child_process(std::string name, const std::vector<std::string>& args, const fs::path& log)
        : name_(std::move(name)), log_(log) {
        std::vector<char*> argv;
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
            throw std::runtime_error("cannot create " + log.string());
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) {
            ::close(out);
            throw std::runtime_error("fork failed");
        }
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent)
                ::_exit(127);
            ::signal(SIGPIPE, SIG_DFL);  // undo this program's SIG_IGN for the peer
            const int null_in = ::open("/dev/null", O_RDONLY);
            ::dup2(null_in, 0);
            ::dup2(out, 1);
            ::dup2(out, 2);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        ::close(out);
    }
    ~child_process() { stop(); }
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] const std::string& name() const { return name_; }

    // False once the process has exited (and reaps it).
    bool alive() {
        if (pid_ <= 0)
            return false;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return false;
        }
        return true;
    }

    void stop() {
        if (pid_ <= 0)
            return;
        ::kill(pid_, SIGTERM);
        const auto deadline = steady::now() + 5s;
        while (steady::now() < deadline) {
            if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

    [[nodiscard]] std::string log_tail(std::size_t max = 2000) const {
        std::ifstream in(log_);
        std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        return all.size() > max ? all.substr(all.size() - max) : all;
    }

  private:
    std::string name_;
    fs::path log_;
    pid_t pid_ = -1;
};

// Waits until the port answers PING, or throws with the process's log.
void wait_ready(child_process& p, int port, std::chrono::seconds limit = 15s) {
    const auto deadline = steady::now() + limit;
    while (steady::now() < deadline) {
        if (!p.alive())
            throw std::runtime_error(p.name() + " exited during start-up:\n" + p.log_tail());
        auto out = bench::run_capture(
            fmt::format("timeout 2 redis-cli -h 127.0.0.1 -p {} PING 2>/dev/null", port));
        if (out.starts_with("PONG"))
            return;
        std::this_thread::sleep_for(50ms);
    }
    throw std::runtime_error(p.name() + " did not answer PING within " +
                             std::to_string(limit.count()) + " s:\n" + p.log_tail());
}

// Peak VmRSS (kB) of each watched process, sampled every 50 ms on a thread of its own.
class rss_sampler {
  public:
    rss_sampler() : thread_([this](std::stop_token st) { run(st); }) {}
    ~rss_sampler() {
        thread_.request_stop();
        thread_.join();
    }
    void watch(const std::string& name, pid_t pid) {
        std::lock_guard lock(mutex_);
        watched_[name] = pid;
        peak_kb_.try_emplace(name, 0);
    }
    long peak_kb(const std::string& name) {
        std::lock_guard lock(mutex_);
        auto it = peak_kb_.find(name);
        return it == peak_kb_.end() ? 0 : it->second;
    }

  private:
    static long vm_rss_kb(pid_t pid) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/status");
        std::string line;
        while (std::getline(in, line)) {
            if (line.starts_with("VmRSS:"))
                return std::stol(line.substr(6));
        }
        return 0;
    }
    void run(const std::stop_token& st) {
        while (!st.stop_requested()) {
            {
                std::lock_guard lock(mutex_);
                for (const auto& [name, pid] : watched_) {
                    auto& peak = peak_kb_[name];
                    peak = std::max(peak, vm_rss_kb(pid));
                }
            }
            std::this_thread::sleep_for(50ms);
        }
    }
    std::mutex mutex_;
    std::map<std::string, pid_t> watched_;
    std::map<std::string, long> peak_kb_;
    std::jthread thread_;
};

struct numbers {
    double rps = nan;
    double p50_ms = nan;
    double p99_ms = nan;
    double avg_ms = nan;
    double cpu_us = nan;        // the peer's CPU time per request (all its threads), µs
    double servers_us = nan;    // both redis-servers' CPU time per request, µs
    double secondary_us = nan;  // the secondary redis-server's share of servers_us
    double client_us = nan;     // redis-benchmark's own CPU time per request, µs
};

// Pins every thread of a process to one CPU (threads it starts later inherit it).
void pin_process(pid_t pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        const pid_t tid = std::stoi(task.path().filename().string());
        // A thread that ended meanwhile (ESRCH) needs no pinning.
        if (::sched_setaffinity(tid, sizeof set, &set) != 0 && errno != ESRCH)
            throw std::runtime_error(
                fmt::format("cannot pin {} to CPU {}: {}", pid, cpu, std::strerror(errno)));
    }
    if (ec)
        throw std::runtime_error(fmt::format("cannot list the threads of {}", pid));
}

// CPU time of every thread of `pid` so far, in ns (sum of /proc/pid/task/*/schedstat field 1).
// Robust where requests/s is not: it does not depend on what else runs on the machine.
double cpu_ns(pid_t pid) {
    double total = 0;
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        std::ifstream in(task.path() / "schedstat");
        double ns = 0;
        if (in >> ns)
            total += ns;
    }
    return total;
}

// CPU time of this process's finished and reaped descendants (redis-benchmark runs), ns.
double children_cpu_ns() {
    rusage ru{};
    ::getrusage(RUSAGE_CHILDREN, &ru);
    const auto ns = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_usec) * 1e3;
    };
    return ns(ru.ru_utime) + ns(ru.ru_stime);
}

// One redis-benchmark run of several tests; rows keyed by test name ("SET"). A run that fails
// (a target that crashed or hung) leaves its rows out and prints why, so the table shows n/a.
std::map<std::string, numbers> redis_benchmark(int port, const std::string& tests, int clients,
                                               int pipeline, long n) {
    const auto cmd = fmt::format(
        "timeout 600 redis-benchmark -h 127.0.0.1 -p {} -c {} -P {} -n {} -r 100000 -d 3 -t {} "
        "--csv 2>&1",
        port, clients, pipeline, n, tests);
    auto out = bench::run_capture(cmd);
    std::map<std::string, numbers> rows;
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with("\""))
            continue;
        auto f = bench::csv_fields(line);
        if (f.size() < 7 || f[0] == "test")
            continue;
        try {
            rows[f[0]] = {std::stod(f[1]), std::stod(f[4]), std::stod(f[6]), std::stod(f[2])};
        } catch (const std::exception&) {
        }
    }
    if (rows.empty())
        fmt::print(stderr, "redis-benchmark on port {} gave no results:\n{}\n", port, out);
    return rows;
}

double median(std::vector<double> v) {
    std::erase_if(v, [](double x) { return std::isnan(x); });
    if (v.empty())
        return nan;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

std::string cell(double v, const char* fmt_spec) {
    return std::isnan(v) ? std::string("n/a") : fmt::format(fmt::runtime(fmt_spec), v);
}

struct target {
    std::string name;
    int port;
    pid_t pid = 0;  // the peer measured for CPU per request (0: direct)
};

fs::path default_proxy_path() {
    std::error_code ec;
    const auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec)
        return "apps/respite-proxy/respite-proxy";
    // <tree>/bench/proxy_bench -> <tree>/apps/respite-proxy/respite-proxy
    return self.parent_path().parent_path() / "apps" / "respite-proxy" / "respite-proxy";
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string part;
    while (std::getline(in, part, sep))
        if (!part.empty())
            out.push_back(part);
    return out;
}

std::string upper(std::string s) {
    for (auto& c : s)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
}

int run(int argc, char** argv) {
    CLI::App app{"redis-benchmark direct vs nutcracker vs respite-proxy (same server, same run)"};
    std::string proxy = default_proxy_path().string();
    std::string nutcracker = "/usr/sbin/nutcracker";
    std::string tests = "set,get,incr,lpush,rpop,hset";
    std::string pipelines = "1,16";
    long n = 200000;
    int repeats = 3;
    int clients = 50;
    int threads = 1;
    bool pin = false;
    long latency_n = 20000;
    std::string latency_tests = "set,get";
    app.add_option("--proxy", proxy, "respite-proxy binary (default: this build tree's)");
    app.add_option("--nutcracker", nutcracker, "nutcracker binary");
    app.add_option("-t,--tests", tests, "redis-benchmark -t list");
    app.add_option("--pipelines", pipelines, "Comma-separated -P values");
    app.add_option("-n,--requests", n, "Requests per test at P=1 (x4 at P>1)")
        ->check(CLI::Range(1000L, 100000000L));
    app.add_option("-c,--clients", clients, "redis-benchmark connections")
        ->check(CLI::Range(1, 10000));
    app.add_option("--repeat,--repeats", repeats, "Rounds (target order rotates); medians shown")
        ->check(CLI::Range(1, 50));
    app.add_option("--threads", threads, "respite-proxy --threads")->check(CLI::Range(1, 64));
    app.add_flag("--pin,!--no-pin", pin,
                 "Pin the redis-servers to CPU 0 and nutcracker/respite-proxy to CPU 1");
    app.add_option("--latency-requests", latency_n,
                   "Requests per test of the one-client latency run (0: skip it)")
        ->check(CLI::Range(0L, 10000000L));
    app.add_option("--latency-tests", latency_tests, "redis-benchmark -t list, one-client run");
    CLI11_PARSE(app, argc, argv);

    std::vector<int> pipeline_list;
    for (const auto& p : split(pipelines, ','))
        pipeline_list.push_back(std::stoi(p));
    const auto test_list = split(tests, ',');
    const auto latency_list = split(latency_tests, ',');

    // Servers first, from this thread (the fixture's children die with the thread that started
    // them).
    test::redis_server primary;
    test::redis_server secondary;
    auto tmp = fs::temp_directory_path() / fmt::format("respite-proxy-bench-{}", ::getpid());
    fs::create_directories(tmp);
    struct cleanup {
        fs::path dir;
        ~cleanup() {
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } remove_tmp{tmp};

    if (pin) {
        pin_process(primary.pid(), 0);
        pin_process(secondary.pid(), 0);
    }
    rss_sampler rss;
    std::vector<target> targets{{"direct", primary.port()}};
    std::vector<std::unique_ptr<child_process>> peers;

    if (::access(nutcracker.c_str(), X_OK) == 0) {
        const int port = test::free_port();
        const int stats_port = test::free_port();
        const auto conf = tmp / "nutcracker.yml";
        std::ofstream(conf) << fmt::format(
            "bench:\n  listen: 127.0.0.1:{}\n  redis: true\n  hash: fnv1a_64\n"
            "  distribution: ketama\n  auto_eject_hosts: false\n  timeout: 10000\n"
            "  server_connections: 1\n  servers:\n    - 127.0.0.1:{}:1\n",
            port, primary.port());
        peers.push_back(std::make_unique<child_process>(
            "nutcracker",
            std::vector<std::string>{nutcracker, "-c", conf.string(), "-s",
                                     std::to_string(stats_port), "-a", "127.0.0.1", "-o",
                                     (tmp / "nutcracker.log").string(), "-v", "4"},
            tmp / "nutcracker.out"));
        wait_ready(*peers.back(), port);
        if (pin)
            pin_process(peers.back()->pid(), 1);
        rss.watch("nutcracker", peers.back()->pid());
        targets.push_back({"nutcracker", port, peers.back()->pid()});
    } else {
        fmt::print("nutcracker not found at {} (Debian: apt-get install nutcracker); skipping it\n",
                   nutcracker);
    }

    const bool have_proxy = ::access(proxy.c_str(), X_OK) == 0;
    if (have_proxy) {
        for (const std::string mode : {"primary-only", "dual-write"}) {
            const int port = test::free_port();
            peers.push_back(std::make_unique<child_process>(
                mode,
                std::vector<std::string>{
                    proxy, "--listen", fmt::format("127.0.0.1:{}", port), "--primary",
                    fmt::format("127.0.0.1:{}", primary.port()), "--secondary",
                    fmt::format("127.0.0.1:{}", secondary.port()), "--mode", mode, "--threads",
                    std::to_string(threads), "--admin", "127.0.0.1:0", "--log-level", "warn"},
                tmp / (mode + ".log")));
            wait_ready(*peers.back(), port);
            if (pin)
                pin_process(peers.back()->pid(), 1);
            rss.watch(mode, peers.back()->pid());
            targets.push_back({mode, port, peers.back()->pid()});
        }
    } else {
        fmt::print(
            "respite-proxy not found at {}: build it (ninja respite-proxy) or pass --proxy PATH; "
            "measuring only redis-server directly and nutcracker\n",
            proxy);
    }

    fmt::print(
        "{} clients, -n {} per test at P=1 (x4 when pipelined), {} rounds with rotating "
        "order, medians; respite-proxy --threads {}; {}\n",
        clients, n, repeats, threads,
        pin ? "pinned: redis-servers on CPU 0, nutcracker and respite-proxy on CPU 1, "
              "redis-benchmark free"
            : "not pinned");
    std::fflush(stdout);

    // results[pipeline][test][target] -> one sample per round; each test is its own
    // redis-benchmark run so that the peer's CPU time can be charged to it.
    std::map<int, std::map<std::string, std::map<std::string, std::vector<numbers>>>> results;
    const auto sample = [&](const target& t, const std::string& test, int conns, int pipeline,
                            long requests) {
        for (auto& p : peers) {
            if (!p->alive())
                throw std::runtime_error(p->name() + " exited:\n" + p->log_tail());
        }
        // The same data set for everyone: lists and counters do not grow across runs.
        primary.cli({"FLUSHALL"});
        secondary.cli({"FLUSHALL"});
        const double cpu0 = t.pid != 0 ? cpu_ns(t.pid) : nan;
        const auto servers_ns = [&] { return cpu_ns(primary.pid()) + cpu_ns(secondary.pid()); };
        const double servers0 = servers_ns();
        const double secondary0 = cpu_ns(secondary.pid());
        const double client0 = children_cpu_ns();
        auto rows = redis_benchmark(t.port, test, conns, pipeline, requests);
        const double client_ns = children_cpu_ns() - client0;
        const auto it = rows.find(upper(test));
        numbers r = it == rows.end() ? numbers{} : it->second;
        if (t.pid != 0 && it != rows.end())
            r.cpu_us = (cpu_ns(t.pid) - cpu0) / 1000.0 / static_cast<double>(requests);
        if (it != rows.end()) {
            r.servers_us = (servers_ns() - servers0) / 1000.0 / static_cast<double>(requests);
            r.secondary_us =
                (cpu_ns(secondary.pid()) - secondary0) / 1000.0 / static_cast<double>(requests);
        }
        if (it != rows.end())
            r.client_us = client_ns / 1000.0 / static_cast<double>(requests);
        return r;
    };
    for (int round = 0; round < repeats; ++round) {
        for (int pipeline : pipeline_list) {
            const long requests = pipeline > 1 ? n * 4 : n;
            const auto t0 = steady::now();
            // The targets of one test run back to back (seconds apart), so that a ratio taken
            // within a round compares them under the same VM moment; the order rotates.
            for (std::size_t k = 0; k < test_list.size(); ++k) {
                for (std::size_t i = 0; i < targets.size(); ++i) {
                    const auto& t =
                        targets[(i + k + static_cast<std::size_t>(round)) % targets.size()];
                    results[pipeline][upper(test_list[k])][t.name].push_back(
                        sample(t, test_list[k], clients, pipeline, requests));
                }
            }
            fmt::print(stderr, "round {} P={}: {:.1f} s\n", round + 1, pipeline,
                       std::chrono::duration<double>(steady::now() - t0).count());
        }
        // One client, P=1: the latency a hop adds when nothing queues (redis-benchmark's own
        // p50 under 50 clients is mostly the wait behind the other 49).
        for (std::size_t i = 0; i < targets.size() && latency_n > 0; ++i) {
            const auto& t = targets[(i + static_cast<std::size_t>(round)) % targets.size()];
            for (const auto& test : latency_list)
                results[0][upper(test)][t.name].push_back(sample(t, test, 1, 1, latency_n));
        }
    }

    // nan for a target this run does not measure (no samples), like for a failed sample.
    const auto med = [&](int p, const std::string& test, const std::string& tgt,
                         double numbers::*field) {
        std::vector<double> v;
        for (const auto& s : results[p][test][tgt])
            v.push_back(s.*field);
        return median(v);
    };
    // The median over rounds of a / b within each round (both run seconds apart): steadier than
    // the ratio of the medians when the VM's speed drifts between rounds.
    const auto paired = [&](int p, const std::string& test, const std::string& a,
                            const std::string& b) {
        const auto& x = results[p][test][a];
        const auto& y = results[p][test][b];
        std::vector<double> v;
        for (std::size_t r = 0; r < std::min(x.size(), y.size()); ++r)
            v.push_back(x[r].rps / y[r].rps);
        return v.empty() ? nan : median(v);
    };
    const auto has = [&](const std::string& name) {
        return std::any_of(targets.begin(), targets.end(),
                           [&](const target& t) { return t.name == name; });
    };

    fmt::print("\nthroughput (requests/s, medians) and ratios (medians of the per-round ratios)\n");
    fmt::print("{:<3} {:<6} {:>10} {:>10} {:>8} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8}\n", "P",
               "test", "direct", "nutcrckr", "nut/dir", "prim-only", "po/dir", "po/nut", "dual-wr",
               "dw/dir", "dw/nut", "dw/po");
    for (int p : pipeline_list) {
        for (const auto& test : test_list) {
            const auto T = upper(test);
            const double d = med(p, T, "direct", &numbers::rps);
            const double nc = med(p, T, "nutcracker", &numbers::rps);
            const double po = med(p, T, "primary-only", &numbers::rps);
            const double dw = med(p, T, "dual-write", &numbers::rps);
            const auto ratio = [&](const std::string& a, const std::string& b) {
                return has(a) && has(b) ? cell(paired(p, T, a, b), "{:.2f}x") : std::string("n/a");
            };
            fmt::print(
                "{:<3} {:<6} {:>10} {:>10} {:>8} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8} {:>8}\n", p,
                T, cell(d, "{:.0f}"), cell(nc, "{:.0f}"), ratio("nutcracker", "direct"),
                cell(po, "{:.0f}"), ratio("primary-only", "direct"),
                ratio("primary-only", "nutcracker"), cell(dw, "{:.0f}"),
                ratio("dual-write", "direct"), ratio("dual-write", "nutcracker"),
                ratio("dual-write", "primary-only"));
        }
    }

    fmt::print("\np50 latency in ms (added over direct in parentheses); p99 for reference\n");
    fmt::print("{:<3} {:<6} {:>8} {:>17} {:>17} {:>17} {:>8} {:>8} {:>8} {:>8}\n", "P", "test",
               "direct", "nutcracker", "primary-only", "dual-write", "p99 dir", "p99 nut", "p99 po",
               "p99 dw");
    for (int p : pipeline_list) {
        for (const auto& test : test_list) {
            const auto T = upper(test);
            const double d = med(p, T, "direct", &numbers::p50_ms);
            const auto with_added = [&](const std::string& tgt) {
                if (!has(tgt))
                    return std::string("n/a");
                const double v = med(p, T, tgt, &numbers::p50_ms);
                return std::isnan(v) ? std::string("n/a")
                                     : fmt::format("{:.3f} ({:+.3f})", v, v - d);
            };
            const auto p99 = [&](const std::string& tgt) {
                return has(tgt) ? cell(med(p, T, tgt, &numbers::p99_ms), "{:.3f}")
                                : std::string("n/a");
            };
            fmt::print("{:<3} {:<6} {:>8} {:>17} {:>17} {:>17} {:>8} {:>8} {:>8} {:>8}\n", p, T,
                       cell(d, "{:.3f}"), with_added("nutcracker"), with_added("primary-only"),
                       with_added("dual-write"), p99("direct"), p99("nutcracker"),
                       p99("primary-only"), p99("dual-write"));
        }
    }

    fmt::print("\nCPU time per request of the proxy process (all threads, µs; lower is better)\n");
    fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>8} {:>8}\n", "P", "test", "nutcrckr",
               "prim-only", "dual-wr", "po/nut", "dw/po");
    for (int p : pipeline_list) {
        for (const auto& test : test_list) {
            const auto T = upper(test);
            const double nc = med(p, T, "nutcracker", &numbers::cpu_us);
            const double po = med(p, T, "primary-only", &numbers::cpu_us);
            const double dw = med(p, T, "dual-write", &numbers::cpu_us);
            fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>8} {:>8}\n", p, T, cell(nc, "{:.2f}"),
                       cell(po, "{:.2f}"), cell(dw, "{:.2f}"), cell(po / nc, "{:.2f}x"),
                       cell(dw / po, "{:.2f}x"));
        }
    }

    // The servers' share: how well each target batches for them (and, in dual-write, the
    // secondary's work, which runs on the same cores).
    fmt::print(
        "\nCPU time per request of the redis-servers (primary + secondary, µs; dw sec: the "
        "secondary's share in dual-write)\n");
    fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "P", "test", "direct",
               "nutcrckr", "prim-only", "dual-wr", "dw sec");
    for (int p : pipeline_list) {
        for (const auto& test : test_list) {
            const auto T = upper(test);
            const auto srv = [&](const std::string& tgt) {
                return med(p, T, tgt, &numbers::servers_us);
            };
            const double sec = med(p, T, "dual-write", &numbers::secondary_us);
            fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>10} {:>10}\n", p, T,
                       cell(srv("direct"), "{:.2f}"), cell(srv("nutcracker"), "{:.2f}"),
                       cell(srv("primary-only"), "{:.2f}"), cell(srv("dual-write"), "{:.2f}"),
                       cell(sec, "{:.2f}"));
        }
    }

    // Everything on the machine's cores per request. Two targets that keep the cores equally
    // busy run at the inverse ratio of these sums.
    fmt::print(
        "\nCPU time per request: redis-benchmark, and all processes (benchmark + proxy + "
        "servers), µs\n");
    // dw/po ceiling: the ratio dual-write would reach if the proxy's follower cost nothing and
    // only the secondary's own work were added (at equal use of the cores).
    fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "P", "test",
               "bench dir", "bench nut", "bench po", "all dir", "all nut", "all po", "all dw",
               "dw/po max");
    for (int p : pipeline_list) {
        for (const auto& test : test_list) {
            const auto T = upper(test);
            const auto of = [&](const std::string& tgt, double numbers::*f) {
                return med(p, T, tgt, f);
            };
            const auto all = [&](const std::string& tgt) {
                const double proxy = tgt == "direct" ? 0.0 : of(tgt, &numbers::cpu_us);
                return of(tgt, &numbers::client_us) + proxy + of(tgt, &numbers::servers_us);
            };
            const double po_all = all("primary-only");
            const double ceiling = po_all / (po_all + of("dual-write", &numbers::secondary_us));
            fmt::print("{:<3} {:<6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", p,
                       T, cell(of("direct", &numbers::client_us), "{:.2f}"),
                       cell(of("nutcracker", &numbers::client_us), "{:.2f}"),
                       cell(of("primary-only", &numbers::client_us), "{:.2f}"),
                       cell(all("direct"), "{:.2f}"), cell(all("nutcracker"), "{:.2f}"),
                       cell(po_all, "{:.2f}"), cell(all("dual-write"), "{:.2f}"),
                       cell(ceiling, "{:.2f}x"));
        }
    }

    if (latency_n > 0) {
        fmt::print("\none client, P=1, {} requests: mean / p50 latency in µs (added over direct)\n",
                   latency_n);
        fmt::print("{:<6} {:>10} {:>22} {:>22} {:>22}\n", "test", "direct", "nutcracker",
                   "primary-only", "dual-write");
        for (const auto& test : latency_list) {
            const auto T = upper(test);
            const double da = med(0, T, "direct", &numbers::avg_ms) * 1000;
            const double dp = med(0, T, "direct", &numbers::p50_ms) * 1000;
            const auto lat = [&](const std::string& tgt) {
                if (!has(tgt))
                    return std::string("n/a");
                const double a = med(0, T, tgt, &numbers::avg_ms) * 1000;
                const double p = med(0, T, tgt, &numbers::p50_ms) * 1000;
                return fmt::format("{:.0f} / {:.0f} ({:+.0f} / {:+.0f})", a, p, a - da, p - dp);
            };
            fmt::print("{:<6} {:>10} {:>22} {:>22} {:>22}\n", T,
                       fmt::format("{:.0f} / {:.0f}", da, dp), lat("nutcracker"),
                       lat("primary-only"), lat("dual-write"));
        }
    }

    fmt::print("\npeak RSS (VmRSS sampled every 50 ms over the whole run)\n");
    for (const std::string name : {"nutcracker", "primary-only", "dual-write"}) {
        if (has(name))
            fmt::print("  {:<13} {:>8.1f} MiB\n", name,
                       static_cast<double>(rss.peak_kb(name)) / 1024);
    }
    return 0;
}

}  // namespace

// No signal handlers: Ctrl-C or kill ends the process, and every peer and redis-server it started
// was started with PR_SET_PDEATHSIG, so the kernel ends them with it.
int main(int argc, char** argv) {
    // A closed stdout (| head) then fails a print, which unwinds and stops the peers cleanly.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        fmt::print(stderr, "proxy_bench: {}\n", e.what());
        return 1;
    }
}
