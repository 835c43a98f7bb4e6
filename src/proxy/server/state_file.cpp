// The state file: key=value lines, written atomically.
#include "state_file.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace respite::proxy::server {

namespace {

std::expected<bool, std::string> flag(std::string_view v, std::string_view key) {
    if (v == "0")
        return false;
    if (v == "1")
        return true;
    return std::unexpected(std::string(key) + " must be 0 or 1, got '" + std::string(v) + "'");
}

}  // namespace

std::string format_state(const persisted_state& s) {
    std::string out =
        "# respite-proxy state, written by the proxy. It wins over --mode at start; delete the "
        "file to start from --mode.\n";
    out += "mode=" + std::string(mode_name(s.current)) + "\n";
    out += std::string("clean_shutdown=") + (s.clean_shutdown ? "1" : "0") + "\n";
    out += std::string("primary_needs_sync=") + (s.needs_sync[0] ? "1" : "0") + "\n";
    out += std::string("secondary_needs_sync=") + (s.needs_sync[1] ? "1" : "0") + "\n";
    out += "primary_dirty_keys_saved=" + std::to_string(s.dirty_saved[0]) + "\n";
    out += "secondary_dirty_keys_saved=" + std::to_string(s.dirty_saved[1]) + "\n";
    return out;
}

std::expected<persisted_state, std::string> parse_state(std::string_view text) {
    persisted_state s;
    bool have_mode = false;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (line.empty() || line.front() == '#')
            continue;
        const auto eq = line.find('=');
        const auto where = "line " + std::to_string(line_no) + ": ";
        if (eq == std::string_view::npos)
            return std::unexpected(where + "expected key=value");
        const auto key = line.substr(0, eq);
        const auto value = line.substr(eq + 1);
        if (key == "mode") {
            auto m = parse_mode(value);
            if (!m)
                return std::unexpected(where + "unknown mode '" + std::string(value) + "'");
            s.current = *m;
            have_mode = true;
            continue;
        }
        std::uint64_t* count = key == "primary_dirty_keys_saved"     ? &s.dirty_saved[0]
                               : key == "secondary_dirty_keys_saved" ? &s.dirty_saved[1]
                                                                     : nullptr;
        if (count != nullptr) {
            const auto [end, ec] =
                std::from_chars(value.data(), value.data() + value.size(), *count);
            if (ec != std::errc{} || value.empty() || end != value.data() + value.size())
                return std::unexpected(where + std::string(key) + " must be a count, got '" +
                                       std::string(value) + "'");
            continue;
        }
        bool* target = key == "clean_shutdown"         ? &s.clean_shutdown
                       : key == "primary_needs_sync"   ? &s.needs_sync[0]
                       : key == "secondary_needs_sync" ? &s.needs_sync[1]
                                                       : nullptr;
        if (target == nullptr)
            return std::unexpected(where + "unknown key '" + std::string(key) + "'");
        auto f = flag(value, key);
        if (!f)
            return std::unexpected(where + f.error());
        *target = *f;
    }
    if (!have_mode)
        return std::unexpected("no mode= line");
    return s;
}

std::expected<std::optional<persisted_state>, std::string> read_state(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        if (errno == ENOENT)
            return std::optional<persisted_state>{};
        return std::unexpected("cannot read " + path + ": " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto s = parse_state(ss.str());
    if (!s)
        return std::unexpected(path + ": " + s.error());
    return std::optional<persisted_state>(*s);
}

std::expected<void, std::string> write_file_atomically(const std::string& path,
                                                       std::string_view text) {
    const auto tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return std::unexpected("cannot write " + tmp + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < text.size()) {
        const auto n = ::write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            const std::string why = std::strerror(errno);
            ::close(fd);
            return std::unexpected("cannot write " + tmp + ": " + why);
        }
        done += static_cast<std::size_t>(n);
    }
    const bool synced = ::fsync(fd) == 0;
    ::close(fd);
    if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0)
        return std::unexpected("cannot replace " + path + ": " + std::strerror(errno));
    return {};
}

std::expected<void, std::string> write_state(const std::string& path, const persisted_state& s) {
    return write_file_atomically(path, format_state(s));
}

}  // namespace respite::proxy::server
