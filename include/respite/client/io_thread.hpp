// An io_context with a thread of its own, for facades (client, cluster_client) that run their I/O
// themselves when the caller does not give them an io_context.
#pragma once

#include <functional>
#include <memory>
#include <thread>

#include <asio/io_context.hpp>

namespace respite::client::detail {

class io_thread {
  public:
    io_thread();
    // Stops the io_context, joins the thread (detaches it when destroyed from that very thread,
    // e.g. by a completion handler) and runs what was left queued.
    ~io_thread();
    io_thread(const io_thread&) = delete;
    io_thread& operator=(const io_thread&) = delete;

    // Shared: a core keeps it alive for objects (sessions, connections) that outlive the facade.
    [[nodiscard]] const std::shared_ptr<asio::io_context>& context() const noexcept { return ioc_; }

    // Runs f on the thread and waits for it; inline when already there or the thread is gone.
    void run_and_wait(const std::function<void()>& f);

  private:
    std::shared_ptr<asio::io_context> ioc_;
    std::thread thread_;
};

}  // namespace respite::client::detail
