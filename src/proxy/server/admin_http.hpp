// The HTTP admin endpoint: /metrics, /healthz, /readyz, /mode, /status.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <asio/io_context.hpp>

#include <respite/proxy/http.hpp>

#include "worker.hpp"

namespace respite::proxy {
class http_server;
}

namespace respite::proxy::server {

class admin_http {
  public:
    using switch_fn = std::function<std::expected<void, std::string>(mode, bool)>;
    admin_http(shared_state& st, asio::io_context& ioc);
    ~admin_http();
    std::expected<void, std::string> start(const std::string& host, std::uint16_t port,
                                           switch_fn switch_mode);
    void stop();
    [[nodiscard]] std::uint16_t port() const noexcept;

  private:
    // Refuses requests a web page could forge (cross-origin, DNS rebinding); see the .cpp.
    [[nodiscard]] std::optional<http_response> admit(const http_request& req) const;

    shared_state& st_;
    asio::io_context& ioc_;
    std::unique_ptr<http_server> http_;
    switch_fn switch_;
    std::string listen_host_;  // --admin's host: a name allowed in Host
};

}  // namespace respite::proxy::server
