// The respite-proxy binary itself: signals. SIGTERM drains and exits 0; a second SIGTERM while
// the drain waits exits at once.
#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "proxy_fixture.hpp"

namespace respite::test {
namespace {

using namespace std::chrono_literals;

class proxy_binary : public ::testing::Test {
  protected:
    redis_server primary_;
    redis_server secondary_;
    pid_t pid_ = -1;
    std::uint16_t port_ = free_port();

    void TearDown() override {
        ::kill(secondary_.pid(), SIGCONT);
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }

    // open_files: the child's RLIMIT_NOFILE (0: inherited); log: where its stderr goes.
    void spawn(std::vector<std::string> args, rlim_t open_files = 0, const std::string& log = {}) {
        args.insert(args.begin(), RESPITE_PROXY_BINARY);
        pid_ = ::fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
            if (!log.empty())
                ::dup2(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
            if (open_files != 0) {
                const rlimit rl{open_files, open_files};
                ::setrlimit(RLIMIT_NOFILE, &rl);
            }
            std::vector<char*> argv;
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
    }
    // The exit status once the process ended, or -1 if it still runs after `limit`.
    int wait_exit(std::chrono::milliseconds limit) {
        const auto end = std::chrono::steady_clock::now() + limit;
        while (true) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
            if (std::chrono::steady_clock::now() >= end)
                return -1;
            std::this_thread::sleep_for(10ms);
        }
    }
    bool serving() {
        try {
            raw_conn c(port_);
            return c.call({"PING"}) == "+PONG\r\n";
        } catch (const std::exception&) {
            return false;
        }
    }
    std::vector<std::string> flags(bool follower) const {
        std::vector<std::string> f{"--listen",  "127.0.0.1:" + std::to_string(port_),
                                   "--primary", "127.0.0.1:" + std::to_string(primary_.port()),
                                   "--admin",   "",
                                   "--threads", "1",
                                   "--mode",    follower ? "dual-write" : "primary-only"};
        if (follower) {
            f.insert(f.end(), {"--secondary", "127.0.0.1:" + std::to_string(secondary_.port()),
                               "--shutdown-timeout", "60"});
        }
        return f;
    }
};

TEST_F(proxy_binary, sigterm_drains_and_exits_cleanly) {
    spawn(flags(false));
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    EXPECT_EQ(wait_exit(15s), 0);
}

// --shutdown-delay: after SIGTERM /readyz says 503 while the proxy still accepts and serves;
// then it drains and exits.
TEST_F(proxy_binary, the_shutdown_delay_reports_not_ready_while_still_serving) {
    const std::uint16_t admin = free_port();
    auto f = flags(false);
    for (std::size_t i = 0; i + 1 < f.size(); ++i)
        if (f[i] == "--admin")
            f[i + 1] = "127.0.0.1:" + std::to_string(admin);
    f.insert(f.end(), {"--shutdown-delay", "1.5"});
    spawn(f);
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    EXPECT_EQ(http(admin, "GET", "/readyz"), "200 ready\n");
    raw_conn before(port_);
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    EXPECT_TRUE(
        eventually([&] { return http(admin, "GET", "/readyz") == "503 shutting down\n"; }, 1s));
    // Still serving: a connected client and a new one.
    EXPECT_EQ(before.call({"SET", "k", "v"}), "+OK\r\n");
    EXPECT_TRUE(serving());
    EXPECT_EQ(wait_exit(15s), 0);
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 1400ms);
}

// A client blocked for good (BLPOP q 0, a job queue's worker) is closed when the drain starts,
// as Redis does on SHUTDOWN: it held every shutdown for the whole --shutdown-timeout.
TEST_F(proxy_binary, a_blocked_client_does_not_hold_the_shutdown) {
    auto f = flags(false);
    f.insert(f.end(), {"--shutdown-timeout", "60"});
    spawn(f);
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    raw_conn blocked(port_);
    blocked.command({"BLPOP", "q", "0"});
    ASSERT_TRUE(eventually(
        [&] {
            return primary_.cli({"CLIENT", "LIST"}).find("cmd=blpop") != std::string::npos;
        },
        10s));
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    EXPECT_EQ(wait_exit(15s), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
    EXPECT_TRUE(blocked.closed_by_peer());
}

// A switch waiting for a stopped secondary to catch up (up to --switch-timeout) ends when the
// drain begins: the shutdown took the switch's whole timeout, once per queued switch.
TEST_F(proxy_binary, a_switch_under_way_does_not_hold_the_shutdown) {
    auto f = flags(true);
    for (std::size_t i = 0; i + 1 < f.size(); ++i)
        if (f[i] == "--shutdown-timeout")
            f[i + 1] = "2";
    f.insert(f.end(), {"--switch-timeout", "60"});
    spawn(f);
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    ASSERT_EQ(::kill(secondary_.pid(), SIGSTOP), 0);
    raw_conn c(port_);
    ASSERT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");  // queued for the stopped secondary
    raw_conn switcher(port_);
    switcher.command({"PROXY", "MODE", "SET", "secondary-primary"});
    raw_conn second(port_);
    second.command({"PROXY", "MODE", "SET", "secondary-only"});
    std::this_thread::sleep_for(300ms);  // the switch waits (a deadline of 60 s)
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    const auto reply = switcher.frame(15s);
    ASSERT_TRUE(reply.has_value());
    EXPECT_NE(reply->find("shutting down"), std::string::npos) << *reply;
    EXPECT_EQ(wait_exit(20s), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 12s);
}

TEST_F(proxy_binary, a_second_sigterm_while_draining_exits_at_once) {
    // The drain waits for the follower, whose secondary does not answer (up to the 60 s
    // shutdown timeout): an operator's second signal ends it.
    spawn(flags(true));
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    ASSERT_EQ(::kill(secondary_.pid(), SIGSTOP), 0);
    {
        raw_conn c(port_);
        EXPECT_EQ(c.call({"SET", "k", "v"}), "+OK\r\n");  // queued for the stopped secondary
    }
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    EXPECT_EQ(wait_exit(1s), -1);  // still draining
    ASSERT_EQ(::kill(pid_, SIGTERM), 0);
    EXPECT_EQ(wait_exit(5s), 1);
}

// The open files limit below what --max-clients needs: max_clients is lowered to fit (as Redis
// does) and a flood of connections is refused, not accepted until descriptors run out. Before,
// the accept loop then retried at once: 100% CPU, millions of log lines, no new client served.
TEST_F(proxy_binary, a_low_open_files_limit_lowers_max_clients_and_a_flood_does_not_spin) {
    const std::string log = ::testing::TempDir() + "proxy_open_files.log";
    spawn(flags(false), 200, log);
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    std::vector<std::unique_ptr<raw_conn>> flood;
    for (int i = 0; i < 260; ++i)
        flood.push_back(std::make_unique<raw_conn>(port_));
    // The last ones were refused at once, as over --max-clients.
    EXPECT_EQ(flood.back()->frame(5s).value_or(""), "-ERR max number of clients reached\r\n");
    const auto cpu = [&] {  // the proxy's user + system time, in clock ticks
        std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
        std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::istringstream fields(s.substr(s.rfind(')') + 2));
        std::string f;
        long ticks = 0;
        for (int i = 3; i <= 15 && fields >> f; ++i)
            if (i >= 14)
                ticks += std::stol(f);
        return ticks;
    };
    const long before = cpu();
    std::this_thread::sleep_for(1s);
    EXPECT_LT(cpu() - before, ::sysconf(_SC_CLK_TCK) / 5) << "the proxy spins";
    // Room again: a new client is served.
    flood.resize(100);
    EXPECT_TRUE(eventually([&] { return serving(); }, 5s));
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("max_clients_reduced configured=10000"), std::string::npos) << text;
    EXPECT_LT(text.size(), 100000U);
}

// Operators' questions about a switch, answered by its log line (JSON here): who asked, and how
// long new writes were held; a change of the shadow sampling is logged too.
TEST_F(proxy_binary, a_mode_switch_logs_who_asked_and_how_long_writes_were_held) {
    const std::string log = ::testing::TempDir() + "proxy_switch_log.log";
    auto f = flags(true);
    f.insert(f.end(), {"--log-format", "json", "--log-level", "info"});
    spawn(f, 0, log);
    ASSERT_TRUE(eventually([&] { return serving(); }, 10s));
    raw_conn c(port_);
    EXPECT_EQ(c.call({"PROXY", "SHADOW", "PERCENT", "5"}), "+OK\r\n");
    EXPECT_EQ(c.call({"PROXY", "MODE", "SET", "secondary-primary"}), "+OK\r\n");
    const auto text = [&] {
        std::ifstream in(log);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    };
    EXPECT_TRUE(eventually([&] {
        return text().find("\"event\":\"mode_switch\"") != std::string::npos;
    })) << text();
    const auto t = text();
    const auto at = t.find("\"component\":\"proxy\",\"event\":\"mode_switch\"");
    ASSERT_NE(at, std::string::npos) << t;
    const auto line = t.substr(at, t.find('\n', at) - at);
    EXPECT_NE(line.find("\"from\":\"dual-write\",\"to\":\"secondary-primary\",\"held_ms\":"),
              std::string::npos)
        << line;
    EXPECT_NE(line.find("\"by\":\"client addr=127.0.0.1:"), std::string::npos) << line;
    EXPECT_NE(line.find("user=default"), std::string::npos) << line;
    EXPECT_NE(t.find("\"event\":\"shadow_percent\",\"from\":100,\"to\":5"), std::string::npos) << t;
}

}  // namespace
}  // namespace respite::test
