// A blocking facade over client, for scripts, tools and simple programs. Thread-safe.
#pragma once

#include <asio/use_future.hpp>

#include <respite/client/client.hpp>

namespace respite::client {

class sync_client {
  public:
    explicit sync_client(client_config cfg) : client_(std::move(cfg)) {}

    // command("SET", "k", 1) -> the reply (an error reply is a value, see server_error_of).
    template <class... Args>
    result<resp::value> command(const Args&... args) {
        return run(cmd(args...));
    }
    result<resp::value> run(request r) {
        return client_.async_command(std::move(r), asio::use_future).get();
    }
    result<std::vector<resp::value>> exec(request r) {
        return client_.async_exec(std::move(r), asio::use_future).get();
    }
    result<std::vector<resp::value>> transaction(request r) {
        return client_.async_transaction(std::move(r), asio::use_future).get();
    }

    client& async() noexcept { return client_; }

  private:
    client client_;
};

}  // namespace respite::client
