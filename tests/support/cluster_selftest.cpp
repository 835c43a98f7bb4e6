// Self-test of the Redis Cluster fixture: the cluster comes up converged, and resharding,
// failover, a dead master, and nodes joining and leaving behave as documented. Checks through
// redis-cli only, and prints how long each part took.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "support/redis_cluster.hpp"
#include "support/redis_server.hpp"

namespace respite::test {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// Prints the time since the previous lap, so that a slow part shows up in the test log.
class stopwatch {
  public:
    void lap(std::string_view part) {
        const auto now = steady::now();
        const auto ms = std::chrono::duration_cast<milliseconds>(now - last_).count();
        std::printf("[ timing   ] %-46.*s %6lld ms\n", static_cast<int>(part.size()), part.data(),
                    static_cast<long long>(ms));
        std::fflush(stdout);
        last_ = now;
    }

  private:
    steady::time_point last_ = steady::now();
};

// Waits until pred() holds or the timeout passes; returns pred()'s last value.
bool eventually(const std::function<bool()>& pred, milliseconds timeout = 10s) {
    const auto deadline = steady::now() + timeout;
    while (!pred()) {
        if (steady::now() >= deadline) {
            return pred();
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

std::string field(const std::string& info, const std::string& key) {
    const auto at = info.find(key + ":");
    if (at == std::string::npos) {
        return {};
    }
    const auto start = at + key.size() + 1;
    return info.substr(start, info.find_first_of("\r\n", start) - start);
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at <= text.size()) {
        auto end = text.find('\n', at);
        if (end == std::string::npos) {
            end = text.size();
        }
        out.push_back(text.substr(at, end - at));
        at = end + 1;
    }
    return out;
}

bool contains(const std::vector<std::size_t>& v, std::size_t x) {
    return std::ranges::find(v, x) != v.end();
}

std::string slot_text(std::uint16_t slot) {
    return std::to_string(slot);
}

long long keys_in_slot(redis_cluster& cluster, std::size_t node, std::uint16_t slot) {
    return std::stoll(cluster.cli(node, {"CLUSTER", "COUNTKEYSINSLOT", slot_text(slot)}));
}

// The index of the node a replica replicates from, by ROLE (slave, host, port, state, offset).
std::size_t master_of_replica(redis_cluster& cluster, std::size_t replica) {
    const auto role = lines(cluster.cli(replica, {"ROLE"}));
    if (role.size() < 3 || role[0] != "slave") {
        ADD_FAILURE() << "node " << replica << " is not a replica";
        return cluster.size();
    }
    const auto ports = cluster.ports();
    const auto it = std::ranges::find(ports, static_cast<std::uint16_t>(std::stoi(role[2])));
    return static_cast<std::size_t>(it - ports.begin());
}

std::size_t some_replica_of(redis_cluster& cluster, std::size_t master) {
    for (const std::size_t r : cluster.replicas()) {
        if (master_of_replica(cluster, r) == master) {
            return r;
        }
    }
    ADD_FAILURE() << "node " << master << " has no replica";
    return cluster.size();
}

// The CLUSTER NODES line a node prints about itself.
std::string myself_line(redis_cluster& cluster, std::size_t node) {
    for (const auto& line : lines(cluster.cli(node, {"CLUSTER", "NODES"}))) {
        if (line.find("myself") != std::string::npos) {
            return line;
        }
    }
    return {};
}

void expect_known_nodes_everywhere(redis_cluster& cluster, std::size_t expected) {
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        if (cluster.node(i).running()) {
            const auto info = cluster.cli(i, {"CLUSTER", "INFO"});
            EXPECT_EQ(field(info, "cluster_known_nodes"), std::to_string(expected)) << "node " << i;
            EXPECT_EQ(field(info, "cluster_state"), "ok") << "node " << i;
        }
    }
}

TEST(redis_cluster_selftest, key_slot_matches_cluster_keyslot) {
    // Known values: CRC16-XMODEM("123456789") is 0x31C3; the rest are the Redis docs' examples.
    EXPECT_EQ(redis_cluster::key_slot("123456789"), 0x31C3 % 16384);
    EXPECT_EQ(redis_cluster::key_slot("{user1000}.following"), redis_cluster::key_slot("user1000"));
    EXPECT_EQ(redis_cluster::key_slot("{user1000}.followers"),
              redis_cluster::key_slot("{user1000}.following"));
    EXPECT_EQ(redis_cluster::key_slot("foo{bar}{zap}"), redis_cluster::key_slot("bar"));
    EXPECT_EQ(redis_cluster::key_slot("foo{{bar}}zap"), redis_cluster::key_slot("{bar"));
    EXPECT_NE(redis_cluster::key_slot("foo{}{bar}"), redis_cluster::key_slot("bar"));

    redis_server_options opts;
    opts.config = {{"cluster-enabled", "yes"},
                   {"cluster-config-file", "nodes.conf"},
                   {"cluster-port", std::to_string(free_port())}};
    redis_server server(opts);
    const std::vector<std::string> keys{"",
                                        "a",
                                        "foo",
                                        "123456789",
                                        "{user1000}.following",
                                        "{user1000}.followers",
                                        "foo{}{bar}",
                                        "foo{{bar}}zap",
                                        "foo{bar}{zap}",
                                        "{}",
                                        "{}{a}",
                                        "{{}}",
                                        "{",
                                        "}",
                                        "{a",
                                        "a}",
                                        "}{a}",
                                        "x{}",
                                        "x{y}",
                                        "{bar",
                                        "user:{42}:x",
                                        "\xc3\xa9t\xc3\xa9",
                                        "a long key with spaces {and a tag}"};
    for (const auto& key : keys) {
        EXPECT_EQ(std::to_string(redis_cluster::key_slot(key)),
                  server.cli({"CLUSTER", "KEYSLOT", key}))
            << "key '" << key << "'";
    }
}

TEST(redis_cluster_selftest, lifecycle) {
    stopwatch time;
    stopwatch total;
    redis_cluster cluster;
    time.lap("start 3 masters + 3 replicas");

    // --- The new cluster is complete and every node says so.
    ASSERT_EQ(cluster.size(), 6U);
    const auto masters = cluster.masters();
    ASSERT_EQ(masters.size(), 3U);
    EXPECT_EQ(cluster.replicas().size(), 3U);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        EXPECT_EQ(cluster.node_id(i), cluster.cli(i, {"CLUSTER", "MYID"}));
        ids.insert(cluster.node_id(i));
        const auto info = cluster.cli(i, {"CLUSTER", "INFO"});
        EXPECT_EQ(field(info, "cluster_slots_assigned"), "16384") << "node " << i;
        EXPECT_EQ(field(info, "cluster_slots_ok"), "16384") << "node " << i;
    }
    EXPECT_EQ(ids.size(), 6U);
    expect_known_nodes_everywhere(cluster, 6);
    std::set<std::size_t> owners;
    for (std::uint32_t slot = 0; slot < redis_cluster::slot_count; slot += 97) {
        owners.insert(cluster.master_of_slot(static_cast<std::uint16_t>(slot)));
    }
    owners.insert(cluster.master_of_slot(16383));
    EXPECT_EQ(owners, std::set<std::size_t>(masters.begin(), masters.end()));
    EXPECT_EQ(cluster.seed_port(), cluster.ports().front());
    time.lap("check coverage");

    // --- Keys written through redis-cli -c land on their slot's owner.
    for (int k = 0; k < 20; ++k) {
        const auto key = "key:" + std::to_string(k);
        ASSERT_EQ(cluster.cli(0, {"-c", "SET", key, "v" + std::to_string(k)}), "OK") << key;
        EXPECT_EQ(keys_in_slot(cluster, cluster.master_of_slot(redis_cluster::key_slot(key)),
                               redis_cluster::key_slot(key)),
                  1)
            << key;
    }
    std::vector<std::string> mset{"-c", "MSET"};
    std::vector<std::string> moving;
    for (int k = 0; k < 20; ++k) {
        moving.push_back("{moving}:" + std::to_string(k));
        mset.insert(mset.end(), {moving.back(), "m" + std::to_string(k)});
    }
    ASSERT_EQ(cluster.cli(0, mset), "OK");
    EXPECT_EQ(cluster.cli(cluster.size() - 1, {"-c", "GET", "key:7"}), "v7");
    time.lap("write keys through redis-cli -c");

    // --- Resharding step by step: clients keep reading and writing, via ASK redirects.
    const std::uint16_t slot = redis_cluster::key_slot("{moving}");
    const std::size_t from = cluster.master_of_slot(slot);
    const std::size_t to = masters[masters[0] == from ? 1 : 0];
    ASSERT_EQ(keys_in_slot(cluster, from, slot), 20);
    cluster.begin_migration(slot, to);
    EXPECT_NE(myself_line(cluster, from).find("[" + slot_text(slot) + "->-" + cluster.node_id(to)),
              std::string::npos);
    EXPECT_NE(myself_line(cluster, to).find("[" + slot_text(slot) + "-<-" + cluster.node_id(from)),
              std::string::npos);
    EXPECT_EQ(cluster.migrate_keys(slot, 5), 5U);
    EXPECT_EQ(keys_in_slot(cluster, from, slot), 15);
    EXPECT_EQ(keys_in_slot(cluster, to, slot), 5);
    EXPECT_EQ(cluster.master_of_slot(slot), from);  // still, until the migration finishes
    ASSERT_EQ(cluster.cli(0, {"-c", "SET", "{moving}:new", "during"}), "OK");
    for (std::size_t k = 0; k < moving.size(); ++k) {
        const auto value = "w" + std::to_string(k);
        ASSERT_EQ(cluster.cli(0, {"-c", "SET", moving[k], value}), "OK") << moving[k];
        EXPECT_EQ(cluster.cli(0, {"-c", "GET", moving[k]}), value) << moving[k];
    }
    EXPECT_EQ(cluster.migrate_keys(slot, 5), 5U);
    cluster.finish_migration(slot);
    EXPECT_EQ(cluster.master_of_slot(slot), to);
    EXPECT_EQ(keys_in_slot(cluster, to, slot), 21);
    EXPECT_EQ(keys_in_slot(cluster, from, slot), 0);
    for (std::size_t k = 0; k < moving.size(); ++k) {
        EXPECT_EQ(cluster.cli(to, {"GET", moving[k]}), "w" + std::to_string(k)) << moving[k];
    }
    EXPECT_EQ(cluster.cli(to, {"GET", "{moving}:new"}), "during");
    EXPECT_EQ(myself_line(cluster, from).find('['), std::string::npos);
    EXPECT_EQ(myself_line(cluster, to).find('['), std::string::npos);
    time.lap("migrate a slot step by step");

    // --- migrate_slot while another client keeps writing to the slot.
    {
        const std::uint16_t busy = redis_cluster::key_slot("{busy}");
        const std::size_t busy_from = cluster.master_of_slot(busy);
        const std::size_t busy_to = masters[masters[0] == busy_from ? 1 : 0];
        std::vector<std::string> preload{"-c", "MSET"};
        for (int k = 0; k < 30; ++k) {
            preload.insert(preload.end(), {"{busy}:p" + std::to_string(k), std::to_string(k)});
        }
        ASSERT_EQ(cluster.cli(0, preload), "OK");

        std::atomic<bool> stop{false};
        std::atomic<int> acknowledged{0};
        std::mutex failures_mutex;
        std::vector<std::string> failures;
        std::thread writer([&] {
            const auto fail = [&](std::string what) {
                const std::scoped_lock lock(failures_mutex);
                failures.push_back(std::move(what));
            };
            try {
                for (int n = 0; !stop; ++n) {
                    const auto key = "{busy}:w" + std::to_string(n);
                    const auto reply = cluster.cli(0, {"-c", "SET", key, std::to_string(n)});
                    if (reply != "OK") {
                        fail(std::string("SET ").append(key).append(" -> ").append(reply));
                        return;
                    }
                    acknowledged = n + 1;
                }
            } catch (const std::exception& e) {
                fail(e.what());
            }
        });
        EXPECT_TRUE(eventually([&] { return acknowledged >= 3; }));
        const int before = acknowledged;
        cluster.migrate_slot(busy, busy_to);
        const int during = acknowledged - before;
        EXPECT_TRUE(eventually([&] { return acknowledged >= before + during + 3; }));
        stop = true;
        writer.join();
        EXPECT_TRUE(failures.empty()) << failures.front();
        const int written = acknowledged;
        std::printf("[ info     ] %d writes acknowledged while migrate_slot ran\n", during);
        EXPECT_EQ(cluster.master_of_slot(busy), busy_to);
        EXPECT_EQ(keys_in_slot(cluster, busy_to, busy), 30 + written);
        EXPECT_EQ(keys_in_slot(cluster, busy_from, busy), 0);
        for (int n = 0; n < written; ++n) {
            EXPECT_EQ(cluster.cli(busy_to, {"GET", "{busy}:w" + std::to_string(n)}),
                      std::to_string(n));
        }
    }
    time.lap("migrate_slot under concurrent writes");

    // --- Manual failover: the replica takes over, its old master follows it.
    {
        const std::size_t replica = cluster.replicas().front();
        const std::size_t old_master = master_of_replica(cluster, replica);
        cluster.failover(replica);
        EXPECT_TRUE(contains(cluster.masters(), replica));
        EXPECT_TRUE(contains(cluster.replicas(), old_master));
        EXPECT_EQ(master_of_replica(cluster, old_master), replica);
        for (int k = 0; k < 20; ++k) {
            const auto key = "key:" + std::to_string(k);
            EXPECT_EQ(cluster.cli(0, {"-c", "GET", key}), "v" + std::to_string(k)) << key;
        }
    }
    time.lap("manual failover");

    // --- A master dies: its replica is elected, and the old master comes back as a replica.
    {
        const std::size_t victim = cluster.master_of_slot(slot);
        const std::size_t heir = some_replica_of(cluster, victim);
        ASSERT_LT(heir, cluster.size());
        // The heir must have every write before the master dies (replication is asynchronous).
        const auto master_offset =
            std::stoll(field(cluster.cli(victim, {"INFO", "replication"}), "master_repl_offset"));
        EXPECT_TRUE(eventually([&] {
            return std::stoll(field(cluster.cli(heir, {"INFO", "replication"}),
                                    "slave_repl_offset")) >= master_offset;
        }));
        time.lap("wait for the replica to catch up");
        cluster.kill_node(victim);
        EXPECT_FALSE(cluster.node(victim).running());
        cluster.wait_for_failover_of(victim);
        time.lap("kill a master, wait for the failover");
        EXPECT_EQ(cluster.master_of_slot(slot), heir);
        EXPECT_FALSE(contains(cluster.masters(), victim));
        EXPECT_EQ(cluster.cli(heir, {"GET", "{moving}:new"}), "during");
        // Through a node that has to redirect (node 0 may be the dead one).
        std::size_t bystander = 0;
        while (bystander == victim || bystander == heir) {
            ++bystander;
        }
        EXPECT_EQ(cluster.cli(bystander, {"-c", "GET", "{moving}:3"}), "w3");

        cluster.restart_node(victim);
        time.lap("restart the old master");
        EXPECT_TRUE(contains(cluster.replicas(), victim));
        EXPECT_EQ(master_of_replica(cluster, victim), heir);
        EXPECT_EQ(cluster.node_id(victim), cluster.cli(victim, {"CLUSTER", "MYID"}));
        EXPECT_EQ(cluster.master_of_slot(slot), heir);
    }

    // --- Nodes join and leave.
    {
        const std::size_t added = cluster.add_node();
        EXPECT_EQ(added, 6U);
        EXPECT_EQ(cluster.size(), 7U);
        EXPECT_TRUE(contains(cluster.masters(), added));
        EXPECT_EQ(std::ranges::count(myself_line(cluster, added), ' '), 7)
            << "an added master owns no slots: " << myself_line(cluster, added);
        expect_known_nodes_everywhere(cluster, 7);
        cluster.remove_node(added);
        EXPECT_EQ(cluster.size(), 6U);
        expect_known_nodes_everywhere(cluster, 6);
        time.lap("add and remove an empty master");

        const std::size_t master = cluster.masters().front();
        const std::size_t replica = cluster.add_node(true, master);
        EXPECT_TRUE(contains(cluster.replicas(), replica));
        EXPECT_EQ(master_of_replica(cluster, replica), master);
        expect_known_nodes_everywhere(cluster, 7);
        cluster.remove_node(replica);
        EXPECT_EQ(cluster.size(), 6U);
        expect_known_nodes_everywhere(cluster, 6);
        EXPECT_EQ(cluster.cli(0, {"-c", "GET", "key:11"}), "v11");
        time.lap("add and remove a replica");
    }
    total.lap("lifecycle total");
}

}  // namespace
}  // namespace respite::test
