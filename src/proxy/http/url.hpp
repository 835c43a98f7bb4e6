// Splitting an http(s) URL into what a client connects to and what it sends.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace respite::proxy::http_detail {

struct http_url {
    bool tls = false;
    std::string host;         // without IPv6 brackets, for resolving and SNI
    std::string port;         // "80"/"443" when the URL has none
    std::string target;       // path and query, "/" when the URL has none
    std::string host_header;  // as the URL spelled it, port included
};

// nullopt for anything but http://host[:port][/target] or https://...; userinfo is refused.
std::optional<http_url> parse_url(std::string_view url);

}  // namespace respite::proxy::http_detail
