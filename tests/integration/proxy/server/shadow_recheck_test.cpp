// The shadow reader's re-check against two real redis-servers and a real follower: a key written
// and restored while the re-check runs is skipped as unstable, never reported as a divergence.
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>
#include <respite/proxy/backend.hpp>
#include <respite/proxy/divergence.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/resp/writer.hpp>

#include "shadow_reader.hpp"
#include "support/eventually.hpp"
#include "support/redis_server.hpp"
#include "worker.hpp"

namespace respite::test {
namespace {

using namespace std::chrono_literals;
using proxy::backend;
using proxy::replies_callback;
using proxy::server::shadow_outcome;

client::client_config config_for(const redis_server& s) {
    client::client_config cfg;
    cfg.connection.host = s.host();
    cfg.connection.port = s.port();
    cfg.connection.command_timeout = 5s;
    return cfg;
}

// A real backend whose timing the test controls, never its replies: calls can be held (and are
// then sent in order on release), and the next call can wait for an action of the test, which
// runs on a thread of its own (the caller may be the follower's thread, which the action needs).
class timed_backend : public backend {
  public:
    explicit timed_backend(std::shared_ptr<backend> inner) : inner_(std::move(inner)) {}
    ~timed_backend() override { join(); }

    void hold(bool on) {
        std::lock_guard lock(mu_);
        held_ = on;
        if (on)
            return;
        // Under the lock: a call arriving meanwhile goes after the held ones.
        for (auto& send : std::exchange(parked_, {}))
            send();
    }
    void before_next(std::move_only_function<void()> action) {
        std::lock_guard lock(mu_);
        action_ = std::move(action);
    }
    void join() {
        for (auto& t : std::exchange(threads_, {}))
            t.join();
    }
    // Calls whose reply came back (counted after their callback returned).
    [[nodiscard]] int answered() const noexcept { return answered_.load(); }

    void exec(client::request req, replies_callback cb) override {
        pass(false, std::move(req), std::move(cb));
    }
    void transaction(client::request req, replies_callback cb) override {
        pass(true, std::move(req), std::move(cb));
    }
    [[nodiscard]] const std::string& name() const noexcept override { return inner_->name(); }
    [[nodiscard]] bool is_cluster() const noexcept override { return false; }
    void close() override { inner_->close(); }

  private:
    void pass(bool atomic, client::request req, replies_callback cb) {
        replies_callback counted = [this,
                                    cb = std::move(cb)](client::result<proxy::replies> r) mutable {
            cb(std::move(r));
            ++answered_;
        };
        std::move_only_function<void()> send = [this, atomic, req = std::move(req),
                                                cb = std::move(counted)]() mutable {
            if (atomic)
                inner_->transaction(std::move(req), std::move(cb));
            else
                inner_->exec(std::move(req), std::move(cb));
        };
        std::lock_guard lock(mu_);
        if (action_) {
            threads_.emplace_back(
                [action = std::exchange(action_, nullptr), send = std::move(send)]() mutable {
                    action();
                    send();
                });
        } else if (held_) {
            parked_.push_back(std::move(send));
        } else {
            send();
        }
    }

    std::shared_ptr<backend> inner_;
    std::mutex mu_;
    bool held_ = false;
    std::vector<std::move_only_function<void()>> parked_;
    std::move_only_function<void()> action_;
    std::vector<std::thread> threads_;
    std::atomic<int> answered_{0};
};

class shadow_recheck : public ::testing::Test {
  protected:
    redis_server primary_server_;
    redis_server secondary_server_;
    obs::registry registry_;
    asio::io_context control_;
    asio::executor_work_guard<asio::io_context::executor_type> work_ =
        asio::make_work_guard(control_);
    std::thread control_thread_{[this] { control_.run(); }};
    proxy::server::shared_state st_;
    std::shared_ptr<backend> writer_ =
        proxy::make_standalone_backend("primary", config_for(primary_server_));
    std::shared_ptr<timed_backend> secondary_reads_ = std::make_shared<timed_backend>(
        proxy::make_standalone_backend("secondary", config_for(secondary_server_)));
    // The follower's two lanes to the secondary ("a" and "b" go to different ones).
    std::mutex lanes_mu_;
    std::vector<std::shared_ptr<timed_backend>> lanes_;
    void hold_lanes(bool on) {
        std::lock_guard lock(lanes_mu_);
        for (auto& l : lanes_)
            l->hold(on);
    }
    std::shared_ptr<proxy::server::shadow_reader> reader_;

    void SetUp() override {
        st_.table = commands::command_table::builtin();
        st_.metrics = &registry_;
        st_.control = &control_;
        st_.backends[0] = proxy::make_standalone_backend("primary", config_for(primary_server_));
        st_.backends[1] = secondary_reads_;
        proxy::replayer_config rc;
        rc.lanes = 2;
        auto lane_cfg = config_for(secondary_server_);
        lane_cfg.connections = 1;
        lane_cfg.connection.queue_while_disconnected = false;
        st_.replay_to[1] = std::make_shared<proxy::replayer>(
            rc, st_.backends[0],
            [this, lane_cfg](asio::io_context& ioc, std::size_t) {
                auto lane = std::make_shared<timed_backend>(
                    proxy::make_standalone_backend(ioc, "secondary", lane_cfg));
                std::lock_guard lock(lanes_mu_);
                lanes_.push_back(lane);
                return lane;
            },
            &registry_);
        st_.divergences = std::make_shared<proxy::divergence_reporter>(proxy::reporter_options{},
                                                                       nullptr, registry_);
        reader_ = std::make_shared<proxy::server::shadow_reader>(st_);
    }

    void TearDown() override {
        hold_lanes(false);
        secondary_reads_->join();
        lanes_.clear();  // built on the follower's io_context, which goes with it
        st_.replay_to[1].reset();
        work_.reset();
        control_thread_.join();
    }

    // A client's write through the proxy: begun, run on the primary, replayed by the follower.
    void write(std::initializer_list<std::string_view> args) {
        const std::string_view keys[] = {args.begin()[1]};
        st_.follower_of(proxy::server::side::primary)->begin_write(keys, 1);
        client::request r;
        r.push_args(std::span<const std::string_view>(args.begin(), args.size()));
        std::promise<client::result<proxy::replies>> done;
        writer_->exec(std::move(r),
                      [&](client::result<proxy::replies> res) { done.set_value(std::move(res)); });
        auto res = done.get_future().get();
        ASSERT_TRUE(res && res->size() == 1 && !res->front().is_error())
            << args.begin()[0] << ": " << (res ? res->front().str() : res.error().message());
        std::string raw;
        resp::append_command(raw, args);
        st_.follower_of(proxy::server::side::primary)->submit_command(raw, keys);
    }

    // APPEND then DEL on the primary; the follower applies the APPEND and holds the DEL.
    void append_then_delete_behind_a_held_lane() {
        write({"APPEND", "k", "x"});
        ASSERT_TRUE(eventually([&] { return secondary_server_.cli({"GET", "k"}) == "x"; }));
        hold_lanes(true);
        write({"DEL", "k"});
    }
};

TEST_F(shadow_recheck, a_key_written_and_restored_during_the_recheck_is_not_reported) {
    // The client's read found k missing on the primary. Before the secondary is read, a client
    // runs APPEND k x then DEL k; the follower applied the APPEND, not yet the DEL: the secondary
    // shows "x" and the re-check waits for the follower.
    secondary_reads_->before_next([&] { append_then_delete_behind_a_held_lane(); });
    auto outcome = std::make_shared<std::promise<shadow_outcome>>();
    reader_->compare(proxy::server::side::primary, {"GET", "k"},
                     resp::value::null(resp::null_kind::bulk),
                     [outcome](shadow_outcome o) { outcome->set_value(o); });
    ASSERT_TRUE(eventually([&] { return secondary_reads_->answered() == 1; }));
    // The follower catches up; the re-check reads k missing on the primary again. Then, before
    // its read of the secondary, the same two writes run again: the secondary shows "x", which
    // the primary held for a moment, and the primary reads missing once more. Both sides ran the
    // same writes in the same order: nothing may be reported.
    secondary_reads_->before_next([&] { append_then_delete_behind_a_held_lane(); });
    hold_lanes(false);
    auto f = outcome->get_future();
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(f.get(), shadow_outcome::unstable);
    // The re-check went as far as its read of the secondary (counted once its callback returned,
    // which may be after the outcome).
    EXPECT_TRUE(eventually([&] { return secondary_reads_->answered() == 2; }));
    EXPECT_TRUE(st_.divergences->recent().empty());
    hold_lanes(false);
    EXPECT_TRUE(eventually([&] { return secondary_server_.cli({"EXISTS", "k"}) == "0"; }));
}

TEST_F(shadow_recheck, a_read_of_several_keys_waits_for_each_keys_writes) {
    // The re-check waited for the writes of the read's first key only: an MGET whose second key
    // had a write still queued for the secondary was reported as a data_mismatch.
    write({"SET", "a", "1"});
    write({"SET", "b", "1"});
    ASSERT_TRUE(eventually([&] { return secondary_server_.cli({"GET", "b"}) == "1"; }));
    hold_lanes(true);
    write({"SET", "b", "2"});  // on the primary; its replay waits on the held lane
    auto served =
        resp::value::array({resp::value::bulk_string("1"), resp::value::bulk_string("2")});
    auto outcome = std::make_shared<std::promise<shadow_outcome>>();
    reader_->compare(proxy::server::side::primary, {"MGET", "a", "b"}, std::move(served),
                     [outcome](shadow_outcome o) { outcome->set_value(o); });
    auto f = outcome->get_future();
    // While b's write is held the compare cannot end (it waits for it, up to 2 s).
    EXPECT_EQ(f.wait_for(1s), std::future_status::timeout);
    hold_lanes(false);
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(f.get(), shadow_outcome::match_after_recheck);
    EXPECT_TRUE(st_.divergences->recent().empty());
}

}  // namespace
}  // namespace respite::test
