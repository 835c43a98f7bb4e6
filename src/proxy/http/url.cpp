// URL splitting for http_post.
#include "url.hpp"

#include <algorithm>
#include <charconv>

namespace respite::proxy::http_detail {

std::optional<http_url> parse_url(std::string_view url) {
    http_url out;
    if (url.starts_with("http://")) {
        url.remove_prefix(7);
        out.port = "80";
    } else if (url.starts_with("https://")) {
        url.remove_prefix(8);
        out.tls = true;
        out.port = "443";
    } else {
        return std::nullopt;
    }
    const auto slash = url.find_first_of("/?#");
    const auto authority = url.substr(0, slash);
    auto rest = slash == std::string_view::npos ? std::string_view{} : url.substr(slash);
    rest = rest.substr(0, rest.find('#'));
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view host = authority;
    std::string_view port;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') {
                return std::nullopt;
            }
            port = after.substr(1);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        return std::nullopt;
    }
    if (!port.empty()) {
        unsigned value = 0;
        const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc{} || p != port.data() + port.size() || value == 0 || value > 65535) {
            return std::nullopt;
        }
        out.port.assign(port);
    }
    const auto bad = [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7f;
    };
    if (std::any_of(authority.begin(), authority.end(), bad) ||
        std::any_of(rest.begin(), rest.end(), bad)) {
        return std::nullopt;
    }
    out.host.assign(host);
    out.host_header.assign(authority);
    if (rest.empty()) {
        out.target.assign(1, '/');  // not `= "/"`: a false -Wrestrict of GCC 12
    } else if (rest.front() == '?') {
        out.target = "/" + std::string(rest);
    } else {
        out.target.assign(rest);
    }
    return out;
}

}  // namespace respite::proxy::http_detail
