// The dirty-key list: length-prefixed keys between a header and a checksummed trailer.
#include "dirty_list.hpp"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "state_file.hpp"

namespace respite::proxy::server {

namespace {

constexpr std::string_view magic = "respite-proxy dirty keys v1\n";

// FNV-1a, 64 bits: catches truncation and stray edits; the file is not guarded against malice.
std::uint64_t checksum(std::string_view data) {
    std::uint64_t h = 14695981039346656037ULL;
    for (const unsigned char c : data) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

// Reads "<name>=<decimal>\n" at the front of `in`.
std::optional<std::uint64_t> number_line(std::string_view& in, std::string_view name) {
    if (!in.starts_with(name) || in.size() <= name.size() || in[name.size()] != '=')
        return std::nullopt;
    in.remove_prefix(name.size() + 1);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), v);
    if (ec != std::errc{} || end == in.data() || end == in.data() + in.size() || *end != '\n')
        return std::nullopt;
    in.remove_prefix(static_cast<std::size_t>(end - in.data()) + 1);
    return v;
}

}  // namespace

std::string dirty_list_path(const std::string& state_file) {
    return state_file + ".dirty";
}

std::string format_dirty_list(std::string_view follower, std::span<const std::string> keys) {
    std::string out(magic);
    out += fmt::format("side={}\ncount={}\n", follower, keys.size());
    for (const auto& k : keys) {
        out += fmt::format("{}:", k.size());
        out += k;
        out += '\n';
    }
    out += fmt::format("end={:016x}\n", checksum(out));
    return out;
}

std::expected<std::vector<std::string>, std::string> parse_dirty_list(std::string_view data,
                                                                      std::string_view follower) {
    using err = std::unexpected<std::string>;
    std::string_view in = data;
    if (!in.starts_with(magic))
        return err("not a respite-proxy dirty key list (bad header)");
    in.remove_prefix(magic.size());
    const auto nl = in.find('\n');
    if (!in.starts_with("side=") || nl == std::string_view::npos)
        return err("no side= line");
    const auto side = in.substr(5, nl - 5);
    if (side != follower)
        return err(fmt::format("the list is for the {}, not the {}", side, follower));
    in.remove_prefix(nl + 1);
    const auto count = number_line(in, "count");
    if (!count)
        return err("no valid count= line");
    std::vector<std::string> keys;
    for (std::uint64_t i = 0; i < *count; ++i) {
        std::size_t len = 0;
        const auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), len);
        const auto head = static_cast<std::size_t>(end - in.data());
        if (ec != std::errc{} || head == 0 || head >= in.size() || *end != ':' ||
            len >= in.size() - head - 1 || in[head + 1 + len] != '\n')
            return err(fmt::format("truncated or damaged at key {} of {}", i + 1, *count));
        keys.emplace_back(in.substr(head + 1, len));
        in.remove_prefix(head + 1 + len + 1);
    }
    const auto body = data.substr(0, data.size() - in.size());
    const std::string trailer = fmt::format("end={:016x}\n", checksum(body));
    if (!in.starts_with("end="))
        return err(fmt::format("truncated: no end= line after {} keys", *count));
    if (in != trailer)
        return err("checksum mismatch (the file was altered or cut short)");
    return keys;
}

std::expected<std::optional<std::vector<std::string>>, std::string> read_dirty_list(
    const std::string& path, std::string_view follower) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        if (errno == ENOENT)
            return std::optional<std::vector<std::string>>{};
        return std::unexpected("cannot read " + path + ": " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    auto keys = parse_dirty_list(ss.str(), follower);
    if (!keys)
        return std::unexpected(path + ": " + keys.error());
    return std::optional<std::vector<std::string>>(std::move(*keys));
}

std::expected<void, std::string> write_dirty_list(const std::string& path,
                                                  std::string_view follower,
                                                  std::span<const std::string> keys) {
    return write_file_atomically(path, format_dirty_list(follower, keys));
}

}  // namespace respite::proxy::server
