// Self-test of the test fixtures: a real redis-server comes up as configured, and the fault proxy
// forwards and breaks traffic as documented. Uses plain blocking sockets and redis-cli only.
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/fault_proxy.hpp"
#include "support/redis_server.hpp"

namespace respite::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

constexpr milliseconds patience = 5s;      // how long a condition that should happen may take
constexpr milliseconds quiet_for = 150ms;  // how long we watch for something that must not happen
const std::string ping = "*1\r\n$4\r\nPING\r\n";
const std::string pong = "+PONG\r\n";

// Waits until pred() holds or the deadline passes; returns pred()'s last value.
bool eventually(const std::function<bool()>& pred, milliseconds timeout = patience) {
    const auto deadline = steady::now() + timeout;
    while (!pred()) {
        if (steady::now() >= deadline) {
            return pred();
        }
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// A blocking loopback TCP client with deadline-bounded reads.
class test_socket {
  public:
    explicit test_socket(std::uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    }
    ~test_socket() { ::close(fd_); }
    test_socket(const test_socket&) = delete;
    test_socket& operator=(const test_socket&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }
    // True once a read saw EOF or an error (reset).
    [[nodiscard]] bool closed_by_peer() const { return closed_; }

    bool send(const std::string& bytes) {
        return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }

    // Reads until at least n bytes arrived, the peer closed, or the timeout passed.
    std::string read_n(std::size_t n, milliseconds timeout = patience) {
        std::string out;
        const auto deadline = steady::now() + timeout;
        while (out.size() < n && read_some(out, deadline)) {
        }
        return out;
    }

    // Reads until the peer closes or the timeout passes; returns what arrived meanwhile.
    std::string read_until_closed(milliseconds timeout = patience) {
        std::string out;
        const auto deadline = steady::now() + timeout;
        while (read_some(out, deadline)) {
        }
        return out;
    }

    // True if nothing arrives (and the peer does not close) for the whole period.
    bool silent_for(milliseconds period) {
        std::string out;
        return !read_some(out, steady::now() + period) && out.empty() && !closed_;
    }

  private:
    // One read into out; false on timeout, EOF or error.
    bool read_some(std::string& out, steady::time_point deadline) {
        if (closed_) {
            return false;
        }
        const auto left =
            std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
        pollfd pfd{fd_, POLLIN, 0};
        if (left <= 0 || ::poll(&pfd, 1, static_cast<int>(left)) <= 0) {
            return false;
        }
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0) {
            closed_ = true;
            return false;
        }
        out.append(buf, static_cast<std::size_t>(n));
        return true;
    }

    int fd_;
    bool connected_ = false;
    bool closed_ = false;
};

std::string bulk_echo(const std::string& word) {
    return "*2\r\n$4\r\nECHO\r\n$" + std::to_string(word.size()) + "\r\n" + word + "\r\n";
}

TEST(RedisServer, StartsAndAnswersPingOverTcpAndUnixSocket) {
    redis_server server;
    EXPECT_TRUE(server.running());
    EXPECT_NE(server.port(), 0);
    EXPECT_EQ(server.cli({"PING"}), "PONG");
    EXPECT_TRUE(std::filesystem::exists(server.unix_path()));

    test_socket client(server.port());
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_n(pong.size()), pong);
}

TEST(RedisServer, DebugCommandIsEnabled) {
    redis_server server;
    EXPECT_EQ(server.cli({"DEBUG", "DIGEST"}).size(), 40U);
}

TEST(RedisServer, WithoutUnixSocketStillStarts) {
    redis_server server({.unix_socket = false});
    EXPECT_TRUE(server.unix_path().empty());
    EXPECT_EQ(server.cli({"PING"}), "PONG");
}

TEST(RedisServer, RequirepassRejectsAnonymousAndCliAuthenticates) {
    redis_server server({.requirepass = "s3cret pass"});
    EXPECT_EQ(server.cli({"SET", "k", "v"}), "OK");
    EXPECT_EQ(server.cli({"GET", "k"}), "v");

    test_socket anonymous(server.port());
    ASSERT_TRUE(anonymous.send(ping));
    EXPECT_TRUE(anonymous.read_n(7).starts_with("-NOAUTH"));
}

TEST(RedisServer, AclUsersExist) {
    redis_server server({.acl_users = {"alice on >wonderland ~* +@all", "bob on >builder +ping"}});
    EXPECT_EQ(server.cli_as("alice", "wonderland", {"ACL", "WHOAMI"}), "alice");
    EXPECT_EQ(server.cli_as("bob", "builder", {"PING"}), "PONG");
    EXPECT_NE(server.cli_as("bob", "builder", {"GET", "k"}).find("NOPERM"), std::string::npos);
}

TEST(RedisServer, ExtraConfigIsApplied) {
    redis_server server({.config = {{"maxmemory", "10mb"}}});
    EXPECT_EQ(server.cli({"CONFIG", "GET", "maxmemory"}), "maxmemory\n10485760");
}

TEST(RedisServer, StopThenStartKeepsPortAndSocket) {
    redis_server server;
    const auto port = server.port();
    server.stop();
    EXPECT_FALSE(server.running());
    EXPECT_FALSE(test_socket(port).connected());

    server.start();
    EXPECT_TRUE(server.running());
    EXPECT_EQ(server.port(), port);
    EXPECT_EQ(server.cli({"PING"}), "PONG");
    EXPECT_TRUE(std::filesystem::exists(server.unix_path()));
}

TEST(RedisServer, KillThenStart) {
    redis_server server;
    test_socket client(server.port());
    ASSERT_TRUE(client.connected());
    server.kill();
    EXPECT_FALSE(server.running());
    EXPECT_TRUE(client.read_until_closed().empty());
    EXPECT_TRUE(client.closed_by_peer());
    EXPECT_FALSE(test_socket(server.port()).connected());

    server.start();
    EXPECT_EQ(server.cli({"PING"}), "PONG");
}

TEST(RedisServer, TwoServersAreIndependent) {
    redis_server a;
    redis_server b;
    EXPECT_NE(a.port(), b.port());
    EXPECT_NE(a.dir(), b.dir());
    EXPECT_EQ(a.cli({"SET", "only-in-a", "1"}), "OK");
    EXPECT_EQ(a.cli({"EXISTS", "only-in-a"}), "1");
    EXPECT_EQ(b.cli({"EXISTS", "only-in-a"}), "0");
}

TEST(RedisServer, DestructorRemovesTheDirectory) {
    std::string dir;
    {
        redis_server server;
        dir = server.dir();
        EXPECT_TRUE(std::filesystem::is_directory(dir));
    }
    EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(RedisServer, BadConfigFailsWithTheLogInTheMessage) {
    try {
        redis_server server({.config = {{"no-such-directive", "1"}}});
        FAIL() << "started with a bad config";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("no-such-directive"), std::string::npos) << e.what();
    }
}

TEST(RedisServer, RestartFailsClearlyWhenThePortWasTaken) {
    redis_server server;
    server.stop();
    const int squatter = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(squatter, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(squatter, 8), 0);
    try {
        server.start();
        ADD_FAILURE() << "started on a taken port";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("port is taken"), std::string::npos) << e.what();
    }
    ::close(squatter);
    EXPECT_FALSE(server.running());
    server.start();
    EXPECT_EQ(server.cli({"PING"}), "PONG");
}

// gtest suite names are CamelCase like the other suites.
class FaultProxy : public ::testing::Test {  // NOLINT(readability-identifier-naming)
  protected:
    redis_server server_{{.unix_socket = false}};
    fault_proxy proxy_{server_.host(), server_.port()};
};

TEST_F(FaultProxy, ForwardsPingAndCountsConnections) {
    {
        test_socket client(proxy_.port());
        ASSERT_TRUE(client.connected());
        ASSERT_TRUE(client.send(ping));
        EXPECT_EQ(client.read_n(pong.size()), pong);
        EXPECT_EQ(proxy_.accepted_connections(), 1U);
        EXPECT_EQ(proxy_.open_connections(), 1U);
    }
    EXPECT_TRUE(eventually([&] { return proxy_.open_connections() == 0; }));
    EXPECT_EQ(proxy_.accepted_connections(), 1U);
}

TEST_F(FaultProxy, LatencyDelaysBothDirectionsAndKeepsOrder) {
    proxy_.set_latency(50ms);
    test_socket client(proxy_.port());
    const auto start = steady::now();
    ASSERT_TRUE(client.send(bulk_echo("first")));
    ASSERT_TRUE(client.send(bulk_echo("second")));
    const std::string expected = "$5\r\nfirst\r\n$6\r\nsecond\r\n";
    EXPECT_EQ(client.read_n(expected.size()), expected);
    EXPECT_GE(steady::now() - start, 100ms);  // 50 ms out, 50 ms back
}

TEST_F(FaultProxy, StallHoldsBytesUntilReleased) {
    test_socket client(proxy_.port());
    ASSERT_TRUE(client.send(ping));
    ASSERT_EQ(client.read_n(pong.size()), pong);

    proxy_.stall(true);
    ASSERT_TRUE(client.send(ping));
    ASSERT_TRUE(client.send(bulk_echo("held")));
    EXPECT_TRUE(client.silent_for(quiet_for));
    proxy_.stall(false);
    const std::string expected = pong + "$4\r\nheld\r\n";
    EXPECT_EQ(client.read_n(expected.size()), expected);
}

TEST_F(FaultProxy, BlackholeDropsBytesButKeepsTheConnection) {
    test_socket client(proxy_.port());
    proxy_.blackhole(true);
    ASSERT_TRUE(client.send(bulk_echo("lost")));
    EXPECT_TRUE(client.silent_for(quiet_for));
    proxy_.blackhole(false);
    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_n(pong.size()), pong);
    EXPECT_TRUE(client.silent_for(quiet_for));
}

TEST_F(FaultProxy, RefuseResetsNewConnections) {
    proxy_.refuse(true);
    {
        test_socket refused(proxy_.port());
        refused.send(ping);
        EXPECT_EQ(refused.read_until_closed(), "");
        EXPECT_TRUE(refused.closed_by_peer());
        EXPECT_EQ(proxy_.accepted_connections(), 1U);
        EXPECT_EQ(proxy_.open_connections(), 0U);
    }
    proxy_.refuse(false);
    test_socket client(proxy_.port());
    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_n(pong.size()), pong);
}

TEST_F(FaultProxy, ResetAllClosesOpenConnections) {
    test_socket first(proxy_.port());
    test_socket second(proxy_.port());
    ASSERT_TRUE(first.send(ping));
    ASSERT_TRUE(second.send(ping));
    ASSERT_EQ(first.read_n(pong.size()), pong);
    ASSERT_EQ(second.read_n(pong.size()), pong);

    proxy_.reset_all();
    EXPECT_EQ(proxy_.open_connections(), 0U);
    EXPECT_EQ(first.read_until_closed(), "");
    EXPECT_TRUE(first.closed_by_peer());
    EXPECT_EQ(second.read_until_closed(), "");
    EXPECT_TRUE(second.closed_by_peer());

    test_socket third(proxy_.port());
    ASSERT_TRUE(third.send(ping));
    EXPECT_EQ(third.read_n(pong.size()), pong);
}

TEST_F(FaultProxy, InjectReachesTheClient) {
    test_socket client(proxy_.port());
    ASSERT_TRUE(eventually([&] { return proxy_.open_connections() == 1; }));
    proxy_.inject_to_clients(">2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n");
    const std::string expected = ">2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n";
    EXPECT_EQ(client.read_n(expected.size()), expected);
}

TEST_F(FaultProxy, GarbleReplacesTheNextReplyOnly) {
    test_socket client(proxy_.port());
    proxy_.garble_next_reply();
    ASSERT_TRUE(client.send(ping));
    const std::string garbled = client.read_n(pong.size());
    ASSERT_EQ(garbled.size(), pong.size());
    EXPECT_NE(garbled, pong);
    EXPECT_EQ(garbled.front(), '\x01');

    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_n(pong.size()), pong);
}

TEST_F(FaultProxy, TruncateForwardsAPrefixThenCloses) {
    test_socket client(proxy_.port());
    proxy_.truncate_next_reply(3);
    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_until_closed(), "+PO");
    EXPECT_TRUE(client.closed_by_peer());
}

TEST_F(FaultProxy, TruncatedConnectionIsNoLongerOpenOnceTheClientCloses) {
    {
        test_socket client(proxy_.port());
        proxy_.truncate_next_reply(0);
        ASSERT_TRUE(client.send(ping));
        EXPECT_EQ(client.read_until_closed(), "");
        EXPECT_TRUE(client.closed_by_peer());
    }
    EXPECT_TRUE(eventually([&] { return proxy_.open_connections() == 0; }));
}

TEST_F(FaultProxy, TogglingFaultsUnderTrafficLosesNothingAndKeepsOrder) {
    test_socket client(proxy_.port());
    std::string expected;
    for (int i = 0; i < 200; ++i) {
        const std::string word = "w" + std::to_string(i);
        ASSERT_TRUE(client.send(bulk_echo(word)));
        expected += "$" + std::to_string(word.size()) + "\r\n" + word + "\r\n";
        proxy_.stall(i % 20 < 10);
        proxy_.set_latency(std::chrono::microseconds(i % 7 * 100));
    }
    proxy_.stall(false);
    proxy_.set_latency(0ms);
    EXPECT_EQ(client.read_n(expected.size()), expected);
}

TEST(FaultProxyTarget, UnreachableTargetResetsTheClient) {
    fault_proxy proxy("127.0.0.1", free_port());
    test_socket client(proxy.port());
    ASSERT_TRUE(client.connected());
    EXPECT_EQ(client.read_until_closed(), "");
    EXPECT_TRUE(client.closed_by_peer());
    EXPECT_TRUE(eventually([&] { return proxy.open_connections() == 0; }));
}

TEST(FaultProxyTarget, ServerRestartBehindTheProxy) {
    redis_server server;
    fault_proxy proxy(server.host(), server.port());
    {
        test_socket client(proxy.port());
        ASSERT_TRUE(client.send(ping));
        ASSERT_EQ(client.read_n(pong.size()), pong);
        server.kill();
        EXPECT_EQ(client.read_until_closed(), "");
        EXPECT_TRUE(client.closed_by_peer());
    }
    server.start();
    test_socket client(proxy.port());
    ASSERT_TRUE(client.send(ping));
    EXPECT_EQ(client.read_n(pong.size()), pong);
}

}  // namespace
}  // namespace respite::test
