// respite-proxy: flags/config → proxy_server; SIGINT/SIGTERM drain and stop.
#include <csignal>
#include <cstdio>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <respite/obs/log.hpp>
#include <respite/proxy/proxy.hpp>

int main(int argc, char** argv) {
    auto cfg = respite::proxy::parse_config(argc, argv);
    if (!cfg) {
        std::fprintf(cfg.error().exit_ok ? stdout : stderr, "%s\n", cfg.error().message.c_str());
        return cfg.error().exit_ok ? 0 : 2;
    }
    respite::proxy::proxy_server server(std::move(*cfg));
    if (auto r = server.start(); !r) {
        std::fprintf(stderr, "respite-proxy: %s\n", r.error().c_str());
        return 1;
    }
    asio::io_context signals_ctx;
    asio::signal_set signals(signals_ctx, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int sig) {
        respite::obs::log().info("proxy signal={} action=drain", sig);
    });
    signals_ctx.run();
    server.stop();
    return 0;
}
