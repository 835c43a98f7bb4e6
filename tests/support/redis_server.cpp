// Test fixture implementation: runs redis-server and redis-cli as shell-less child processes.
#include "support/redis_server.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <signal.h>
#include <stdexcept>
#include <string_view>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>

namespace respite::test {
namespace {

using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

constexpr milliseconds poll_interval{10};
constexpr milliseconds probe_io_timeout{500};
constexpr milliseconds stop_grace{10000};
constexpr milliseconds cli_timeout{30000};
constexpr int port_attempts = 5;
constexpr int exec_failed = 127;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

// Owns one file descriptor.
class unique_fd {
  public:
    explicit unique_fd(int fd = -1) : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    void reset() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = -1;
    }

  private:
    int fd_;
};

std::string find_on_path(std::string_view name) {
    const char* path = std::getenv("PATH");
    std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!dirs.empty()) {
        const auto colon = dirs.find(':');
        std::string candidate(dirs.substr(0, colon));
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
        if (candidate.empty()) {
            continue;
        }
        candidate.append("/").append(name);
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    throw std::runtime_error(std::string(name) + " not found on PATH");
}

// sun_path holds 108 bytes: a long $TMPDIR would not fit the socket path, so fall back to /tmp.
std::string make_temp_dir() {
    const char* tmpdir = std::getenv("TMPDIR");
    std::string base =
        tmpdir != nullptr && *tmpdir != '\0' && std::strlen(tmpdir) < 64 ? tmpdir : "/tmp";
    std::string templ = base + "/respite-redis-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
        throw_errno("mkdtemp " + templ);
    }
    return templ;
}

std::string tail_of_file(const std::string& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return {};
    }
    in.seekg(0, std::ios::end);
    const auto size = static_cast<std::size_t>(in.tellg());
    const std::size_t start = size > max_bytes ? size - max_bytes : 0;
    in.seekg(static_cast<std::streamoff>(start));
    std::string out(size - start, '\0');
    in.read(out.data(), static_cast<std::streamsize>(out.size()));
    return out;
}

// Quotes a value for redis.conf (sdssplitargs rules).
std::string conf_quoted(std::string_view value) {
    std::string out = "\"";
    for (const char c : value) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
        }
        out.push_back(c);
    }
    out.push_back('"');
    return out;
}

// Forks and execs exe with args (argv[0] included in args); the child's stdio is redirected to
// the given descriptors and every other descriptor is closed, so it cannot hold the test's
// sockets open. The child is killed when the calling thread exits.
pid_t spawn(const std::string& exe, const std::vector<std::string>& args, int in_fd, int out_fd,
            int err_fd) {
    // Everything the child needs is prepared before fork: between fork and exec only
    // async-signal-safe calls are allowed (the parent may have other threads).
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (const auto& arg : args) {
        argv.push_back(const_cast<char*>(arg.c_str()));
    }
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();

    const pid_t pid = ::fork();
    if (pid < 0) {
        throw_errno("fork");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(exec_failed);
        }
        sigset_t none;
        ::sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) {
            ::_exit(exec_failed);
        }
        if (::close_range(3, ~0U, 0) != 0) {
            for (int fd = 3; fd < 65536; ++fd) {
                ::close(fd);
            }
        }
        ::execv(exe.c_str(), argv.data());
        ::_exit(exec_failed);
    }
    return pid;
}

// Reaps pid if it exits before the deadline.
std::optional<int> wait_exit(pid_t pid, steady::time_point deadline) {
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            return status;
        }
        if (r < 0 && errno != EINTR) {
            return status;  // not our child any more: nothing to wait for
        }
        if (steady::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(poll_interval);
    }
}

void wait_exit_blocking(pid_t pid) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return "killed by signal " + std::to_string(WTERMSIG(status));
    }
    return "ended";
}

void set_io_timeouts(int fd, milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

unique_fd connect_tcp(std::uint16_t port) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw_errno("socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        fd.reset();
    }
    return fd;
}

unique_fd connect_unix(const std::string& path) {
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw_errno("socket");
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), std::min(path.size() + 1, sizeof addr.sun_path));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        fd.reset();
    }
    return fd;
}

std::string resp_command(const std::vector<std::string>& args) {
    std::string out;
    out.append("*").append(std::to_string(args.size())).append("\r\n");
    for (const auto& arg : args) {
        out.append("$").append(std::to_string(arg.size())).append("\r\n");
        out.append(arg).append("\r\n");
    }
    return out;
}

// Sends a request and reads `replies` top-level simple/error/bulk replies (enough for PING, AUTH
// and INFO); nullopt if the connection fails or times out.
std::optional<std::vector<std::string>> exchange(int fd, const std::string& request,
                                                 std::size_t replies) {
    set_io_timeouts(fd, probe_io_timeout);
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
        return std::nullopt;
    }
    std::string buf;
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (out.size() < replies) {
        const auto eol = buf.find("\r\n", pos);
        if (eol != std::string::npos) {
            std::string line = buf.substr(pos, eol - pos);
            if (line.empty() || line[0] != '$') {
                out.push_back(std::move(line));
                pos = eol + 2;
                continue;
            }
            const long len = std::strtol(line.c_str() + 1, nullptr, 10);
            if (len < 0) {
                out.push_back(std::move(line));
                pos = eol + 2;
                continue;
            }
            const std::size_t end = eol + 2 + static_cast<std::size_t>(len) + 2;
            if (buf.size() >= end) {
                out.push_back(buf.substr(eol + 2, static_cast<std::size_t>(len)));
                pos = end;
                continue;
            }
        }
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            return std::nullopt;
        }
        buf.append(chunk, static_cast<std::size_t>(n));
    }
    return out;
}

bool means_up(const std::string& reply) {
    return reply == "+PONG" || reply.starts_with("-NOAUTH");
}

enum class probe_result { down, up, someone_else };

}  // namespace

std::uint16_t free_port() {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        throw_errno("socket");
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw_errno("bind 127.0.0.1:0");
    }
    socklen_t len = sizeof addr;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        throw_errno("getsockname");
    }
    return ntohs(addr.sin_port);
}

redis_server::redis_server(redis_server_options opts)
    : opts_(std::move(opts)),
      redis_server_path_(find_on_path("redis-server")),
      dir_(make_temp_dir()) {
    if (opts_.unix_socket) {
        unix_path_ = dir_ + "/redis.sock";
    }
    try {
        port_ = free_port();
        spawn_and_wait(true);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        throw;
    }
}

redis_server::~redis_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void redis_server::write_config() const {
    std::ofstream conf(dir_ + "/redis.conf", std::ios::trunc);
    conf << "port " << port_ << "\n"
         << "bind 127.0.0.1\n";
    if (opts_.unix_socket) {
        conf << "unixsocket " << conf_quoted(unix_path_) << "\n"
             << "unixsocketperm 700\n";
    }
    conf << "dir " << conf_quoted(dir_) << "\n"
         << "save \"\"\n"
         << "appendonly no\n"
         << "daemonize no\n"
         << "logfile " << conf_quoted(dir_ + "/redis.log") << "\n"
         << "enable-debug-command yes\n"
         // Redis 7 waits up to 10 s for lagging replicas on SIGTERM; tests stop servers often.
         << "shutdown-timeout 0\n";
    if (!opts_.requirepass.empty()) {
        conf << "requirepass " << conf_quoted(opts_.requirepass) << "\n";
    }
    for (const auto& user : opts_.acl_users) {
        conf << "user " << user << "\n";
    }
    for (const auto& [key, value] : opts_.config) {
        conf << key << " " << value << "\n";
    }
    conf.close();
    if (!conf) {
        throw std::runtime_error("cannot write " + dir_ + "/redis.conf");
    }
}

void redis_server::spawn_and_wait(bool may_change_port) {
    for (int attempt = 1;; ++attempt) {
        write_config();
        const std::string log = dir_ + "/redis.log";
        const std::string err = dir_ + "/redis.stderr";
        unique_fd truncate_log(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        unique_fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        unique_fd err_out(::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (null_in.get() < 0 || err_out.get() < 0) {
            throw_errno("open " + err);
        }
        pid_ = spawn(redis_server_path_, {redis_server_path_, dir_ + "/redis.conf"}, null_in.get(),
                     err_out.get(), err_out.get());

        const auto deadline = steady::now() + opts_.start_timeout;
        probe_result result = probe_result::down;
        std::optional<int> exit_status;
        while (result == probe_result::down) {
            if ((exit_status = wait_exit(pid_, steady::now()))) {
                break;
            }
            if (opts_.unix_socket) {
                // Redis binds its TCP port before the unix socket and exits if that fails, so an
                // answer on our private socket proves the port is ours too.
                if (unique_fd fd = connect_unix(unix_path_); fd.get() >= 0) {
                    if (auto r = exchange(fd.get(), resp_command({"PING"}), 1);
                        r && means_up(r->front())) {
                        result = probe_result::up;
                    }
                }
            } else if (unique_fd fd = connect_tcp(port_); fd.get() >= 0) {
                // The port may belong to another process that won the free_port() race: check
                // the answering server's pid.
                std::vector<std::string> req;
                if (!opts_.requirepass.empty()) {
                    req.push_back(resp_command({"AUTH", opts_.requirepass}));
                }
                req.push_back(resp_command({"INFO", "server"}));
                std::string request;
                for (const auto& r : req) {
                    request += r;
                }
                if (auto r = exchange(fd.get(), request, req.size())) {
                    const std::string& info = r->back();
                    const auto at = info.find("process_id:");
                    if (info.starts_with("-NOAUTH")) {
                        result = probe_result::up;  // cannot check the pid without credentials
                    } else if (at != std::string::npos) {
                        const long pid = std::strtol(info.c_str() + at + 11, nullptr, 10);
                        result = pid == pid_ ? probe_result::up : probe_result::someone_else;
                    }
                }
            }
            if (result != probe_result::down) {
                break;
            }
            if (steady::now() >= deadline) {
                break;
            }
            std::this_thread::sleep_for(poll_interval);
        }
        if (result == probe_result::up) {
            return;
        }

        const std::string where = "redis-server on 127.0.0.1:" + std::to_string(port_);
        if (!exit_status) {
            ::kill(pid_, SIGKILL);
            wait_exit_blocking(pid_);
        }
        pid_ = -1;
        const std::string tail = log_tail();
        const bool port_taken = result == probe_result::someone_else ||
                                tail.find("Address already in use") != std::string::npos;
        if (port_taken && may_change_port && attempt < port_attempts) {
            port_ = free_port();
            continue;
        }
        std::string why;
        if (port_taken) {
            why = "port is taken";
        } else if (exit_status) {
            why = describe_status(*exit_status);
        } else {
            why =
                "did not answer PING within " + std::to_string(opts_.start_timeout.count()) + " ms";
        }
        std::string message = where;
        message.append(": ").append(why).append(" (dir ").append(dir_).append(")\n").append(tail);
        throw std::runtime_error(message);
    }
}

void redis_server::start() {
    if (running()) {
        stop();
    }
    spawn_and_wait(false);
}

void redis_server::stop() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGTERM);
    if (!wait_exit(pid_, steady::now() + stop_grace)) {
        ::kill(pid_, SIGKILL);
        wait_exit_blocking(pid_);
    }
    pid_ = -1;
}

void redis_server::kill() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGKILL);
    wait_exit_blocking(pid_);
    pid_ = -1;
}

std::string redis_server::log_tail(std::size_t max_bytes) const {
    std::string out = "--- redis.log (tail) ---\n" + tail_of_file(dir_ + "/redis.log", max_bytes);
    const std::string err = tail_of_file(dir_ + "/redis.stderr", max_bytes);
    if (!err.empty()) {
        out += "--- stderr (tail) ---\n" + err;
    }
    return out;
}

std::string redis_server::cli(const std::vector<std::string>& args) const {
    if (opts_.requirepass.empty()) {
        return run_cli({}, args);
    }
    return run_cli({"-a", opts_.requirepass, "--no-auth-warning"}, args);
}

std::string redis_server::cli_as(const std::string& user, const std::string& pass,
                                 const std::vector<std::string>& args) const {
    return run_cli({"--user", user, "--pass", pass, "--no-auth-warning"}, args);
}

std::string redis_server::run_cli(const std::vector<std::string>& auth,
                                  const std::vector<std::string>& args) const {
    const std::string exe = find_on_path("redis-cli");
    std::vector<std::string> argv{exe, "-h", host(), "-p", std::to_string(port_)};
    argv.insert(argv.end(), auth.begin(), auth.end());
    argv.insert(argv.end(), args.begin(), args.end());

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    unique_fd read_end(fds[0]);
    unique_fd write_end(fds[1]);
    unique_fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    const pid_t pid = spawn(exe, argv, null_in.get(), write_end.get(), 2);
    write_end.reset();

    std::string out;
    const auto deadline = steady::now() + cli_timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<milliseconds>(deadline - steady::now()).count();
        pollfd pfd{read_end.get(), POLLIN, 0};
        const int ready = left > 0 ? ::poll(&pfd, 1, static_cast<int>(left)) : 0;
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (ready <= 0) {
            ::kill(pid, SIGKILL);
            wait_exit_blocking(pid);
            throw std::runtime_error("redis-cli did not finish within 30 s; output so far: " + out);
        }
        char buf[4096];
        const ssize_t n = ::read(read_end.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == exec_failed) {
        throw std::runtime_error("cannot run " + exe);
    }
    if (out.ends_with('\n')) {
        out.pop_back();
    }
    return out;
}

}  // namespace respite::test
