// Test fixture: a real redis-server on a free loopback port (and a unix socket) in a temp dir.
//
// The server and every redis-cli run are child processes started without a shell; they receive
// SIGKILL if the thread that started them exits (PR_SET_PDEATHSIG), so start servers from the
// test's own thread, not from a short-lived helper thread. Not thread-safe: one thread drives a
// server.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace respite::test {

// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
std::uint16_t free_port();

struct redis_server_options {
    // Empty: none.
    std::string requirepass{};
    // ACL SETUSER argument lines, e.g. "alice on >pw ~* +@all"; written as "user <line>".
    std::vector<std::string> acl_users{};
    // Extra directives, written verbatim as "<first> <second>" after the fixture's own.
    std::vector<std::pair<std::string, std::string>> config{};
    bool unix_socket = true;
    std::chrono::milliseconds start_timeout{10000};
};

class redis_server {
  public:
    // Starts; throws std::runtime_error (with the tail of the server's log). If the port turns out
    // to be taken (free_port() is racy), retries a few times on new ports.
    explicit redis_server(redis_server_options opts = {});
    ~redis_server();  // stops and removes the temp dir
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;

    [[nodiscard]] std::string host() const { return "127.0.0.1"; }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] const std::string& unix_path() const { return unix_path_; }  // empty if none
    [[nodiscard]] const std::string& dir() const { return dir_; }
    [[nodiscard]] bool running() const { return pid_ > 0; }
    // The server's process id (-1 when not running).
    [[nodiscard]] int pid() const { return pid_; }

    void stop();   // SIGTERM (nothing is saved), waits for exit; SIGKILL after 10 s
    void kill();   // SIGKILL, waits for exit
    void start();  // (re)starts on the same port and socket, waits until it answers PING

    // Runs redis-cli against this server (with the password if any) and returns its stdout with
    // the trailing newline removed; an independent client for checking what respite did.
    // redis-cli's stderr goes to the test's stderr; a run longer than 30 s is killed.
    std::string cli(const std::vector<std::string>& args) const;
    // The same, authenticated as an ACL user (redis-cli --user --pass).
    std::string cli_as(const std::string& user, const std::string& pass,
                       const std::vector<std::string>& args) const;

    // The last max_bytes of the current run's redis.log (and of its stderr), for failure messages.
    [[nodiscard]] std::string log_tail(std::size_t max_bytes = 4096) const;

  private:
    void write_config() const;
    void spawn_and_wait(bool may_change_port);
    std::string run_cli(const std::vector<std::string>& auth,
                        const std::vector<std::string>& args) const;

    redis_server_options opts_;
    std::string redis_server_path_;
    std::string dir_;
    std::string unix_path_;
    std::uint16_t port_ = 0;
    int pid_ = -1;
};

}  // namespace respite::test
