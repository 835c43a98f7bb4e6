// Test fixture implementation: a loopback TCP proxy whose forwarding can be delayed, held, dropped,
// reset, truncated or garbled from the test thread.
//
// Threading: every socket, timer, queue and session lives on the proxy's io thread. The test
// thread only stores fault switches (atomics, read where a chunk is read or written) or runs a
// function on the io thread and waits for it (reset_all, inject_to_clients).
//
// Each connection is four coroutines: a reader per side turns reads into chunks stamped with a
// delivery time and queues them for the other side; a writer per side forwards its queue in order
// once the chunk is due and the proxy is not stalled.
#include "support/fault_proxy.hpp"

#include <atomic>
#include <deque>
#include <exception>
#include <future>
#include <limits>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include <asio.hpp>

namespace respite::test {
namespace {

using asio::ip::tcp;
using steady = std::chrono::steady_clock;

constexpr std::size_t no_truncation = std::numeric_limits<std::size_t>::max();
constexpr std::size_t read_size = std::size_t{16} * 1024;
constexpr char garbage_lead_byte = '\x01';  // not a RESP2/RESP3 type byte

// What one read produced, or the end of a side's stream.
struct chunk {
    enum class kind { data, end_of_stream, data_then_close };
    std::string bytes;
    steady::time_point due;
    kind what = kind::data;
};

// Fail loudly: an exception escaping a proxy coroutine is a bug in the fixture.
void rethrow(const std::exception_ptr& e) {
    if (e) {
        std::rethrow_exception(e);
    }
}

auto with(std::error_code& ec) {
    return asio::redirect_error(asio::use_awaitable, ec);
}

}  // namespace

struct fault_proxy::impl {
    // Chunks travelling one way, and the alarm their writer sleeps on. The alarm is cancelled to
    // wake the writer: a chunk arrived, the stall was released, or the connection closed.
    struct direction {
        explicit direction(asio::io_context& io) : alarm(io) {}
        std::deque<chunk> queue;
        asio::steady_timer alarm;
        bool ended = false;  // end of stream forwarded (write side shut down)
    };

    struct session {
        session(asio::io_context& io, std::uint64_t id, tcp::socket client)
            : id(id), client(std::move(client)), server(io), to_server(io), to_client(io) {}
        std::uint64_t id;
        tcp::socket client;
        tcp::socket server;
        direction to_server;
        direction to_client;
        bool closed = false;
        // After a truncated reply: the server side is gone and the client has been sent FIN;
        // what the client still sends is read and discarded until it closes, so that closing
        // does not turn into an RST that could destroy the truncated reply in its buffer.
        bool draining = false;
        bool client_read_done = false;
    };

    impl(const std::string& host, std::uint16_t port)
        : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
          work_(io_.get_executor()) {
        tcp::resolver resolver(io_);
        for (const auto& entry : resolver.resolve(host, std::to_string(port))) {
            target_.push_back(entry.endpoint());
        }
        port_ = acceptor_.local_endpoint().port();
        asio::co_spawn(io_, accept_loop(), rethrow);
        thread_ = std::thread([this] { io_.run(); });
    }

    ~impl() {
        asio::post(io_, [this] { shutdown(); });
        work_.reset();
        thread_.join();
    }

    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    // Runs f on the io thread and returns when it has run.
    template <class F>
    void run_in_io(F f) {
        if (io_.get_executor().running_in_this_thread()) {
            f();
            return;
        }
        std::promise<void> done;
        auto finished = done.get_future();
        asio::post(io_, [&] {
            try {
                f();
                done.set_value();
            } catch (...) {
                done.set_exception(std::current_exception());
            }
        });
        finished.get();
    }

    std::vector<std::shared_ptr<session>> live_sessions() {
        std::vector<std::shared_ptr<session>> out;
        for (const auto& [id, weak] : sessions_) {
            if (auto s = weak.lock()) {
                out.push_back(std::move(s));
            }
        }
        return out;
    }

    void shutdown() {
        std::error_code ec;
        acceptor_.close(ec);
        for (const auto& s : live_sessions()) {
            close(*s, true);
        }
    }

    void wake_writers() {
        for (const auto& s : live_sessions()) {
            s->to_server.alarm.cancel();
            s->to_client.alarm.cancel();
        }
    }

    void push(direction& d, chunk c) {
        d.queue.push_back(std::move(c));
        d.alarm.cancel();
    }

    [[nodiscard]] steady::time_point due_time() const {
        return steady::now() + std::chrono::microseconds(latency_us_.load());
    }

    void close(session& s, bool reset) {
        if (s.closed) {
            return;
        }
        s.closed = true;
        for (tcp::socket* sock : {&s.client, &s.server}) {
            std::error_code ec;
            if (reset && sock->is_open()) {
                sock->set_option(asio::socket_base::linger(true, 0), ec);
            }
            sock->close(ec);
        }
        s.to_server.alarm.cancel();
        s.to_client.alarm.cancel();
        sessions_.erase(s.id);
        open_.fetch_sub(1);
    }

    void begin_drain(session& s) {
        s.draining = true;
        std::error_code ec;
        s.client.shutdown(tcp::socket::shutdown_send, ec);
        s.server.close(ec);
        s.to_server.alarm.cancel();
        if (s.client_read_done) {
            close(s, false);
        }
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            std::error_code ec;
            tcp::socket client = co_await acceptor_.async_accept(with(ec));
            if (!acceptor_.is_open()) {
                co_return;
            }
            if (ec) {
                continue;
            }
            if (refuse_.load()) {
                accepted_.fetch_add(1);
                client.set_option(asio::socket_base::linger(true, 0), ec);
                client.close(ec);
                continue;
            }
            auto s = std::make_shared<session>(io_, next_id_++, std::move(client));
            sessions_.emplace(s->id, s);
            open_.fetch_add(1);
            accepted_.fetch_add(1);
            asio::co_spawn(io_, run_session(std::move(s)), rethrow);
        }
    }

    asio::awaitable<void> run_session(std::shared_ptr<session> s) {
        std::error_code ec;
        co_await asio::async_connect(s->server, target_, with(ec));
        if (s->closed) {
            co_return;
        }
        if (ec) {
            close(*s, true);
            co_return;
        }
        s->client.set_option(tcp::no_delay(true), ec);
        s->server.set_option(tcp::no_delay(true), ec);
        asio::co_spawn(io_, read_side(s, false), rethrow);
        asio::co_spawn(io_, read_side(s, true), rethrow);
        asio::co_spawn(io_, write_side(s, false), rethrow);
        asio::co_spawn(io_, write_side(s, true), rethrow);
    }

    asio::awaitable<void> read_side(std::shared_ptr<session> s, bool from_server) {
        tcp::socket& from = from_server ? s->server : s->client;
        direction& out = from_server ? s->to_client : s->to_server;
        std::vector<char> buf(read_size);
        for (;;) {
            std::error_code ec;
            const std::size_t n = co_await from.async_read_some(asio::buffer(buf), with(ec));
            if (s->closed) {
                co_return;
            }
            if (s->draining) {
                if (from_server) {
                    co_return;
                }
                if (ec) {
                    close(*s, false);
                    co_return;
                }
                continue;
            }
            if (ec == asio::error::eof) {
                s->client_read_done = s->client_read_done || !from_server;
                push(out, {{}, due_time(), chunk::kind::end_of_stream});
                co_return;
            }
            if (ec) {
                close(*s, true);
                co_return;
            }
            if (blackhole_.load()) {
                continue;
            }
            chunk c{std::string(buf.data(), n), due_time(), chunk::kind::data};
            if (from_server) {
                if (const std::size_t keep = truncate_.exchange(no_truncation);
                    keep != no_truncation) {
                    c.bytes.resize(std::min(keep, n));
                    c.what = chunk::kind::data_then_close;
                    push(out, std::move(c));
                    co_return;  // nothing after the truncated reply reaches the client
                }
                if (garble_.exchange(false)) {
                    std::uniform_int_distribution<int> byte(0, 255);
                    for (char& b : c.bytes) {
                        b = static_cast<char>(byte(rng_));
                    }
                    c.bytes.front() = garbage_lead_byte;
                }
            }
            push(out, std::move(c));
        }
    }

    asio::awaitable<void> sleep_until(asio::steady_timer& alarm, steady::time_point when) {
        alarm.expires_at(when);
        std::error_code ec;
        co_await alarm.async_wait(with(ec));
    }

    asio::awaitable<void> write_side(std::shared_ptr<session> s, bool to_server) {
        tcp::socket& to = to_server ? s->server : s->client;
        direction& in = to_server ? s->to_server : s->to_client;
        for (;;) {
            if (s->closed || s->draining) {
                co_return;
            }
            if (in.queue.empty() || stalled_.load()) {
                co_await sleep_until(in.alarm, steady::time_point::max());
                continue;
            }
            if (const auto due = in.queue.front().due; steady::now() < due) {
                co_await sleep_until(in.alarm, due);
                continue;
            }
            chunk c = std::move(in.queue.front());
            in.queue.pop_front();
            if (!c.bytes.empty()) {
                std::error_code ec;
                co_await asio::async_write(to, asio::buffer(c.bytes), with(ec));
                if (s->closed || s->draining) {
                    co_return;
                }
                if (ec) {
                    close(*s, true);
                    co_return;
                }
            }
            if (c.what == chunk::kind::end_of_stream) {
                std::error_code ec;
                to.shutdown(tcp::socket::shutdown_send, ec);
                in.ended = true;
                if (s->to_server.ended && s->to_client.ended) {
                    close(*s, false);
                }
                co_return;
            }
            if (c.what == chunk::kind::data_then_close) {
                begin_drain(*s);
                co_return;
            }
        }
    }

    // Declared first so that it is destroyed last: sockets and timers below refer to it.
    asio::io_context io_;
    tcp::acceptor acceptor_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::vector<tcp::endpoint> target_;
    std::uint16_t port_ = 0;

    // Fault switches, written by the test thread.
    std::atomic<std::int64_t> latency_us_{0};
    std::atomic<bool> stalled_{false};
    std::atomic<bool> blackhole_{false};
    std::atomic<bool> refuse_{false};
    std::atomic<std::size_t> truncate_{no_truncation};
    std::atomic<bool> garble_{false};

    std::atomic<std::size_t> open_{0};
    std::atomic<std::size_t> accepted_{0};

    // io thread only.
    std::unordered_map<std::uint64_t, std::weak_ptr<session>> sessions_;
    std::uint64_t next_id_ = 0;
    std::minstd_rand rng_{20240601};
    std::thread thread_;
};

fault_proxy::fault_proxy(const std::string& target_host, std::uint16_t target_port)
    : impl_(std::make_unique<impl>(target_host, target_port)) {}

fault_proxy::~fault_proxy() = default;

std::uint16_t fault_proxy::port() const {
    return impl_->port_;
}

void fault_proxy::set_latency(std::chrono::microseconds d) {
    impl_->latency_us_.store(d.count());
}

void fault_proxy::stall(bool on) {
    impl_->stalled_.store(on);
    if (!on) {
        // A writer that saw the stall is asleep on its alarm; the io thread wakes it after this.
        asio::post(impl_->io_, [i = impl_.get()] { i->wake_writers(); });
    }
}

void fault_proxy::blackhole(bool on) {
    impl_->blackhole_.store(on);
}

void fault_proxy::refuse(bool on) {
    impl_->refuse_.store(on);
}

void fault_proxy::reset_all() {
    impl_->run_in_io([i = impl_.get()] {
        for (const auto& s : i->live_sessions()) {
            i->close(*s, true);
        }
    });
}

void fault_proxy::inject_to_clients(const std::string& bytes) {
    impl_->run_in_io([i = impl_.get(), &bytes] {
        for (const auto& s : i->live_sessions()) {
            if (!s->draining) {
                i->push(s->to_client, {bytes, i->due_time(), chunk::kind::data});
            }
        }
    });
}

void fault_proxy::truncate_next_reply(std::size_t n) {
    impl_->truncate_.store(n);
}

void fault_proxy::garble_next_reply() {
    impl_->garble_.store(true);
}

std::size_t fault_proxy::open_connections() const {
    return impl_->open_.load();
}

std::size_t fault_proxy::accepted_connections() const {
    return impl_->accepted_.load();
}

}  // namespace respite::test
