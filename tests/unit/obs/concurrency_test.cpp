// Many threads registering and updating the same metrics while a scraper reads: totals are exact.
#include <atomic>
#include <cstdint>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>

namespace respite::obs {
namespace {

constexpr int thread_count = 4;
constexpr std::uint64_t iterations = 20'000;

constexpr std::size_t max_scrapes = 200;

std::uint64_t latency_for(std::uint64_t i) {
    return (i * 7919) % 2'000'000;
}

// The value of the sample line starting with `series`, or "" when it is absent.
std::string sample(const std::string& text, const std::string& series) {
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) {
        return "";
    }
    const auto begin = at + 1 + series.size() + 1;
    return text.substr(begin, text.find('\n', begin) - begin);
}

TEST(concurrency, updates_from_many_threads_add_up_exactly) {
    registry r;
    std::latch start(thread_count + 1);
    std::atomic<int> writers_left{thread_count};
    std::size_t scrapes = 0;

    std::vector<std::jthread> threads;
    threads.reserve(thread_count + 1);
    for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&] {
            start.arrive_and_wait();
            for (std::uint64_t i = 0; i < iterations; ++i) {
                // Looking the metric up each time also races registrations against each other.
                r.get_counter("ops_total", "Ops.").inc();
                r.get_histogram("op_latency_seconds", "Latency.").observe_us(latency_for(i));
                r.get_gauge("in_flight", "In flight.").add(1.0);
            }
            writers_left.fetch_sub(1);
        });
    }
    // The scraper reads while the writers run; a bounded number of scrapes keeps it from
    // monopolising the registry lock on a small machine.
    threads.emplace_back([&] {
        start.arrive_and_wait();
        do {
            const std::string text = r.prometheus_text();
            EXPECT_EQ(sample(text, "op_latency_seconds_bucket{le=\"+Inf\"}"),
                      sample(text, "op_latency_seconds_count"));
            ++scrapes;
        } while (writers_left.load() > 0 && scrapes < max_scrapes);
    });
    threads.clear();  // joins

    histogram reference;
    for (std::uint64_t i = 0; i < iterations; ++i) {
        reference.observe_us(latency_for(i));
    }
    const std::uint64_t total = thread_count * iterations;
    auto& h = r.get_histogram("op_latency_seconds", "Latency.");
    EXPECT_EQ(r.get_counter("ops_total", "Ops.").value(), total);
    EXPECT_EQ(r.get_gauge("in_flight", "In flight.").value(), static_cast<double>(total));
    EXPECT_EQ(h.count(), total);
    EXPECT_EQ(h.sum_us(), thread_count * reference.sum_us());
    for (std::size_t i = 0; i <= histogram::bounds_us().size(); ++i) {
        EXPECT_EQ(h.bucket_count(i), thread_count * reference.bucket_count(i)) << "bucket " << i;
    }
    const std::string text = r.prometheus_text();
    EXPECT_EQ(sample(text, "ops_total"), std::to_string(total));
    EXPECT_EQ(sample(text, "op_latency_seconds_count"), std::to_string(total));
    EXPECT_GE(scrapes, 1U);
}

TEST(concurrency, updates_through_held_references_add_up_exactly) {
    registry r;
    counter& c = r.get_counter("held_total", "Held.", {{"shard", "0"}});
    histogram& h = r.get_histogram("held_latency_seconds", "Held.");
    std::latch start(thread_count);
    {
        std::vector<std::jthread> threads;
        threads.reserve(thread_count);
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                start.arrive_and_wait();
                for (std::uint64_t i = 0; i < iterations; ++i) {
                    c.inc(2);
                    h.observe_us(static_cast<std::uint64_t>(t));
                }
            });
        }
    }
    EXPECT_EQ(c.value(), 2 * iterations * thread_count);
    EXPECT_EQ(h.count(), thread_count * iterations);
    static_assert(thread_count == 4);
    EXPECT_EQ(h.sum_us(), iterations * (0 + 1 + 2 + 3));
    EXPECT_EQ(h.bucket_count(0), 2 * iterations);  // 0 and 1 µs
    EXPECT_EQ(h.bucket_count(1), iterations);      // 2 µs
    EXPECT_EQ(h.bucket_count(2), iterations);      // 3 µs
}

}  // namespace
}  // namespace respite::obs
