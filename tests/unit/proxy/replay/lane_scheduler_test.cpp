// The lane scheduler: FIFO per lane, pipelining on one connection, barriers across lanes.
#include "lane_scheduler.hpp"

#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

using respite::proxy::replay::entry_id;
using respite::proxy::replay::lane_scheduler;

namespace {

entry_id push(lane_scheduler& s, std::initializer_list<std::size_t> lanes) {
    std::vector<std::size_t> v(lanes);
    return s.push(v);
}

std::vector<entry_id> ids(std::initializer_list<entry_id> l) {
    return l;
}

}  // namespace

TEST(lane_scheduler, single_lane_entries_pipeline_in_order) {
    lane_scheduler s(2);
    auto a = push(s, {0});
    auto b = push(s, {0});
    auto c = push(s, {1});
    EXPECT_EQ(s.take_ready(0, 10), ids({a, b}));
    EXPECT_EQ(s.take_ready(1, 10), ids({c}));
    // Already sent: nothing more until new entries arrive.
    EXPECT_TRUE(s.take_ready(0, 10).empty());
    auto d = push(s, {0});
    EXPECT_EQ(s.take_ready(0, 10), ids({d}));
    EXPECT_EQ(s.size(), 4u);
}

TEST(lane_scheduler, take_ready_respects_max) {
    lane_scheduler s(1);
    for (int i = 0; i < 5; ++i)
        push(s, {0});
    EXPECT_EQ(s.take_ready(0, 2), ids({1, 2}));
    EXPECT_EQ(s.take_ready(0, 2), ids({3, 4}));
    EXPECT_EQ(s.take_ready(0, 2), ids({5}));
}

TEST(lane_scheduler, barrier_waits_for_the_other_lane_to_complete) {
    lane_scheduler s(2);
    auto a = push(s, {1});     // lane 1 work before the barrier
    auto m = push(s, {0, 1});  // MSET x y: home lane 0
    auto b = push(s, {1});     // lane 1 work after the barrier
    auto c = push(s, {0});     // lane 0 work after the barrier
    EXPECT_EQ(s.take_ready(1, 10), ids({a}));
    // m is blocked: a was sent on lane 1's connection, not m's.
    EXPECT_TRUE(s.take_ready(0, 10).empty());
    s.complete(a);
    // m goes; c pipelines behind it on the same connection; b must wait for m.
    EXPECT_EQ(s.take_ready(0, 10), ids({m, c}));
    EXPECT_TRUE(s.take_ready(1, 10).empty());
    s.complete(m);
    EXPECT_EQ(s.take_ready(1, 10), ids({b}));
}

TEST(lane_scheduler, barrier_pipelines_behind_entries_of_its_home_connection) {
    lane_scheduler s(2);
    auto a = push(s, {0});
    auto m = push(s, {1, 0});  // home is the lowest lane: 0
    EXPECT_EQ(s.lanes_of(m), (std::vector<std::size_t>{0, 1}));
    // a is on lane 0's connection like m: m may follow it at once.
    EXPECT_EQ(s.take_ready(0, 10), ids({a, m}));
    EXPECT_TRUE(s.take_ready(1, 10).empty());
}

TEST(lane_scheduler, barrier_entries_of_lane_behind_a_barrier_homed_elsewhere_wait) {
    lane_scheduler s(3);
    auto m = push(s, {0, 2});
    auto x = push(s, {2});
    EXPECT_TRUE(s.take_ready(2, 10).empty());  // m is waiting, x is behind it
    EXPECT_EQ(s.take_ready(0, 10), ids({m}));
    EXPECT_TRUE(s.take_ready(2, 10).empty());  // m sent on lane 0's connection
    s.complete(m);
    EXPECT_EQ(s.take_ready(2, 10), ids({x}));
}

TEST(lane_scheduler, consecutive_barriers_on_one_home_pipeline) {
    lane_scheduler s(2);
    auto m1 = push(s, {0, 1});
    auto m2 = push(s, {0, 1});
    EXPECT_EQ(s.take_ready(0, 10), ids({m1, m2}));
}

TEST(lane_scheduler, global_entry_is_ordered_against_every_lane) {
    lane_scheduler s(4);
    auto a = push(s, {1});
    auto b = push(s, {3});
    auto g = s.push({});  // FLUSHALL
    auto c = push(s, {2});
    EXPECT_EQ(s.lanes_of(g).size(), 4u);
    EXPECT_EQ(s.take_ready(1, 10), ids({a}));
    EXPECT_EQ(s.take_ready(3, 10), ids({b}));
    EXPECT_TRUE(s.take_ready(0, 10).empty());
    EXPECT_TRUE(s.take_ready(2, 10).empty());
    s.complete(a);
    EXPECT_TRUE(s.take_ready(0, 10).empty());
    s.complete(b);
    EXPECT_EQ(s.take_ready(0, 10), ids({g}));
    EXPECT_TRUE(s.take_ready(2, 10).empty());
    s.complete(g);
    EXPECT_EQ(s.take_ready(2, 10), ids({c}));
}

TEST(lane_scheduler, done_through_tracks_each_lane) {
    lane_scheduler s(2);
    EXPECT_TRUE(s.done_through(0, s.last_id()));
    auto a = push(s, {0});
    auto b = push(s, {1});
    EXPECT_FALSE(s.done_through(0, a));
    EXPECT_TRUE(s.done_through(0, 0));
    EXPECT_FALSE(s.done_through(1, b));
    s.take_ready(0, 10);
    s.complete(a);
    EXPECT_TRUE(s.done_through(0, b));
    EXPECT_FALSE(s.done_through(1, b));
    EXPECT_EQ(s.oldest(), b);
}

TEST(lane_scheduler, out_of_order_completion_retires_in_order) {
    lane_scheduler s(1);
    auto a = push(s, {0});
    auto b = push(s, {0});
    s.take_ready(0, 10);
    s.complete(b);
    EXPECT_FALSE(s.done_through(0, a));
    EXPECT_EQ(s.oldest(), a);
    s.complete(a);
    EXPECT_TRUE(s.done_through(0, b));
    EXPECT_TRUE(s.empty());
}

TEST(lane_scheduler, cancel_waiting_unblocks_other_lanes) {
    lane_scheduler s(2);
    auto a = push(s, {0});
    auto m = push(s, {0, 1});  // waits behind a? no: a is on its home connection
    auto b = push(s, {1});
    auto c = push(s, {0});
    EXPECT_EQ(s.take_ready(0, 1), ids({a}));
    // Lane 0's connection fails: m and c were not sent; a is still out.
    EXPECT_EQ(s.cancel_waiting(0), ids({m, c}));
    EXPECT_EQ(s.take_ready(1, 10), ids({b}));
    EXPECT_EQ(s.size(), 2u);
    s.complete(a);
    s.complete(b);
    EXPECT_TRUE(s.empty());
    EXPECT_TRUE(s.done_through(0, s.last_id()));
    EXPECT_TRUE(s.done_through(1, s.last_id()));
}

// Random interleavings over many lanes: simulated connections complete in order; every entry is
// sent exactly once, and it is sent only when every earlier entry sharing a lane with it has
// completed or was sent earlier on the same connection.
TEST(lane_scheduler, random_interleavings_keep_per_lane_order) {
    constexpr std::size_t lanes = 16;
    constexpr std::size_t total = 800;
    for (unsigned seed = 1; seed <= 10; ++seed) {
        std::mt19937 rng(seed);
        lane_scheduler s(lanes);
        std::vector<std::vector<std::size_t>> lanes_of(1);  // by id
        std::vector<int> state(1);                          // 0 waiting, 1 sent, 2 done
        std::vector<std::size_t> home(1);
        std::vector<std::vector<entry_id>> conn(lanes);  // in flight per connection, FIFO
        std::size_t pushed = 0, completed = 0;
        auto check_send = [&](entry_id id, std::size_t h) {
            for (entry_id p = 1; p < id; ++p) {
                bool shares = false;
                for (auto l : lanes_of[p])
                    shares = shares || std::ranges::count(lanes_of[id], l) > 0;
                if (!shares)
                    continue;
                ASSERT_TRUE(state[p] == 2 || (state[p] == 1 && home[p] == h))
                    << "seed " << seed << ": entry " << id << " sent before " << p;
            }
        };
        while (completed < total) {
            const int action = static_cast<int>(rng() % 10);
            if (action < 4 && pushed < total) {
                std::vector<std::size_t> l;
                const auto kind = rng() % 20;
                if (kind == 0) {
                    // global: every lane
                } else {
                    const auto n = kind < 4 ? 2 + rng() % 3 : 1;
                    for (std::size_t i = 0; i < n; ++i)
                        l.push_back(rng() % lanes);
                }
                auto id = s.push(l);
                ASSERT_EQ(id, lanes_of.size());
                lanes_of.push_back(s.lanes_of(id));
                state.push_back(0);
                home.push_back(lanes_of.back().front());
                ++pushed;
            } else if (action < 7) {
                const auto l = rng() % lanes;
                for (auto id : s.take_ready(l, 1 + rng() % 4)) {
                    ASSERT_EQ(state[id], 0);
                    ASSERT_EQ(home[id], l);
                    check_send(id, l);
                    state[id] = 1;
                    conn[l].push_back(id);
                }
            } else {
                const auto l = rng() % lanes;
                if (!conn[l].empty()) {
                    auto id = conn[l].front();
                    conn[l].erase(conn[l].begin());
                    s.complete(id);
                    state[id] = 2;
                    ++completed;
                } else if (pushed == total) {
                    // Drive the rest: pump every lane.
                    for (std::size_t k = 0; k < lanes; ++k)
                        for (auto id : s.take_ready(k, 8)) {
                            check_send(id, k);
                            state[id] = 1;
                            conn[k].push_back(id);
                        }
                }
            }
        }
        EXPECT_TRUE(s.empty()) << "seed " << seed;
    }
}

TEST(lane_scheduler, many_lanes_barrier_releases_all) {
    constexpr std::size_t lanes = 64;
    lane_scheduler s(lanes);
    std::vector<entry_id> before;
    for (std::size_t l = 0; l < lanes; ++l)
        before.push_back(push(s, {l}));
    auto g = s.push({});
    std::vector<entry_id> after;
    for (std::size_t l = 0; l < lanes; ++l)
        after.push_back(push(s, {l}));
    for (std::size_t l = 0; l < lanes; ++l)
        ASSERT_EQ(s.take_ready(l, 10), std::vector<entry_id>{before[l]});
    for (std::size_t l = 1; l < lanes; ++l) {
        s.complete(before[l]);
        EXPECT_TRUE(s.take_ready(l, 10).empty());
    }
    // Lane 0's own entry is on g's home connection: g may follow it, and so may lane 0's next.
    EXPECT_EQ(s.take_ready(0, 10), ids({g, after[0]}));
    s.complete(before[0]);
    s.complete(g);
    for (std::size_t l = 1; l < lanes; ++l)
        EXPECT_EQ(s.take_ready(l, 10), std::vector<entry_id>{after[l]});
}
