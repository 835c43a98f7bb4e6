// The facades' own I/O thread: start, run-and-wait, orderly stop.
#include <future>

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>

#include <respite/client/io_thread.hpp>
#include <respite/obs/thread_name.hpp>

namespace respite::client::detail {

io_thread::io_thread() : ioc_(std::make_shared<asio::io_context>(1)) {
    thread_ = std::thread([ioc = ioc_.get()] {
        obs::name_this_thread("respite-io");
        auto work = asio::make_work_guard(*ioc);
        ioc->run();
    });
}

io_thread::~io_thread() {
    asio::post(*ioc_, [ioc = ioc_.get()] { ioc->stop(); });
    if (!thread_.joinable())
        return;
    if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();  // destroyed by one of its own handlers: it cannot join itself
        return;
    }
    thread_.join();
    // Run what is left (closing loops, posted releases) so nothing keeps a core alive through
    // the io_context.
    ioc_->restart();
    ioc_->poll();
}

void io_thread::run_and_wait(const std::function<void()>& f) {
    if (!thread_.joinable() || ioc_->get_executor().running_in_this_thread()) {
        f();
        return;
    }
    std::promise<void> done;
    auto finished = done.get_future();
    asio::post(*ioc_, [&] {
        f();
        done.set_value();
    });
    finished.wait();
}

}  // namespace respite::client::detail
