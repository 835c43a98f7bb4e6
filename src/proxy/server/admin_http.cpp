// The HTTP admin endpoint (see admin_http.hpp).
#include "admin_http.hpp"

namespace respite::proxy::server {

admin_http::admin_http(shared_state& st, asio::io_context& ioc) : st_(st), ioc_(ioc) {}
admin_http::~admin_http() = default;

std::expected<void, std::string> admin_http::start(const std::string& host, std::uint16_t port,
                                                   switch_fn switch_mode) {
    (void)host, (void)port;
    switch_ = std::move(switch_mode);
    return {};
}

void admin_http::stop() {}

std::uint16_t admin_http::port() const noexcept {
    return 0;
}

}  // namespace respite::proxy::server
