// The respite-proxy binary itself: signals. SIGTERM drains and exits 0; a second SIGTERM while
// the drain waits exits at once.
#include <chrono>
#include <fcntl.h>
#include <signal.h>
#include <string>
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

    void spawn(std::vector<std::string> args) {
        args.insert(args.begin(), RESPITE_PROXY_BINARY);
        pid_ = ::fork();
        ASSERT_GE(pid_, 0);
        if (pid_ == 0) {
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, 1);
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

}  // namespace
}  // namespace respite::test
