// respite-proxy: flags/config → proxy_server; SIGINT/SIGTERM drain and stop, a second one exits
// at once.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

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
    // The signals are caught from here on, also while start() waits for the backends: a
    // SIGTERM then stops the proxy cleanly once it started, instead of killing it half-way.
    asio::io_context signals_ctx;
    asio::signal_set signals(signals_ctx, SIGINT, SIGTERM);
    std::promise<void> first;
    signals.async_wait([&](std::error_code ec, int sig) {
        if (ec)
            return;
        respite::obs::log().info("proxy signal={} action=drain", sig);
        first.set_value();
        // A second signal while draining (an operator who does not want to wait): exit now.
        // What the follower has not applied is lost from the secondary; the state file is not
        // marked clean, so the next run flags that side for a PROXY SYNC.
        signals.async_wait([](std::error_code ec2, int sig2) {
            if (ec2)
                return;
            respite::obs::log().error(
                "proxy signal={} action=exit_now note=\"second signal while "
                "draining; the secondary needs a PROXY SYNC\"",
                sig2);
            std::_Exit(1);
        });
    });
    std::thread signal_thread([&] { signals_ctx.run(); });
    respite::proxy::proxy_server server(std::move(*cfg));
    int rc = 0;
    if (auto r = server.start(); !r) {
        std::fprintf(stderr, "respite-proxy: %s\n", r.error().c_str());
        rc = 1;
    } else {
        first.get_future().wait();
        server.stop();
    }
    signals_ctx.stop();
    signal_thread.join();
    return rc;
}
