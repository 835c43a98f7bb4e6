// The README's tour, compiled with the project so it cannot rot: INCR a counter with a coroutine.
// Usage: example_hello [host] [port]
#include <cstdio>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <respite/client/client.hpp>

using respite::client::cmd;

int main(int argc, char** argv) {
    asio::io_context ioc;
    respite::client::client c(
        ioc,
        {.connection = {.host = argc > 1 ? argv[1] : "127.0.0.1",
                        .port = static_cast<std::uint16_t>(argc > 2 ? std::stoi(argv[2]) : 6379)}});
    int status = 1;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
            auto r = co_await c.async_command(cmd("INCR", "visits"), asio::use_awaitable);
            if (r) {
                std::printf("visits: %lld\n", static_cast<long long>(r->integer()));
                status = 0;
            } else {
                std::printf("error: %s\n", r.error().message().c_str());
            }
            c.close();
        },
        asio::detached);
    ioc.run();
    return status;
}
