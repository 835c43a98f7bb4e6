// Untrusted declared lengths must not drive allocations: tracks the largest single allocation.
#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include <respite/resp/frame_scanner.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/request_parser.hpp>

namespace {

std::atomic<std::size_t> largest_allocation{0};

}  // namespace

void* operator new(std::size_t n) {
    std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
    while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
    }
    if (void* p = std::malloc(n == 0 ? 1 : n)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace respite::resp {
namespace {

constexpr std::size_t one_mib = 1 << 20;

std::size_t largest_allocation_while(const auto& f) {
    largest_allocation = 0;
    f();
    return largest_allocation.load();
}

TEST(allocation, huge_declared_lengths_do_not_preallocate) {
    for (const std::string input :
         {"*60000000\r\n:1\r\n", "%30000000\r\n+a\r\n", "~50000000\r\n", ">50000000\r\n",
          "|30000000\r\n", "$500000000\r\nabc", "!500000000\r\nabc",
          "=500000000\r\ntxt:", "$?\r\n;500000000\r\nabc", "*1\r\n*60000000\r\n*60000000\r\n"}) {
        parser p;
        const std::size_t largest = largest_allocation_while([&] {
            const auto r = p.feed(input);
            EXPECT_FALSE(r.error) << input;
            EXPECT_FALSE(r.complete) << input;
        });
        EXPECT_LT(largest, one_mib) << input;
    }
}

TEST(allocation, rejected_lengths_allocate_nothing_large) {
    limits small;
    small.max_bulk_length = 1024;
    parser bulk(small);
    parser aggregate;
    const std::size_t largest = largest_allocation_while([&] {
        EXPECT_EQ(bulk.feed("$536870911\r\n").error, make_error_code(error::bulk_too_large));
        EXPECT_EQ(aggregate.feed("*2147483647\r\n").error,
                  make_error_code(error::aggregate_too_large));
    });
    EXPECT_LT(largest, one_mib);
}

TEST(allocation, partial_blobs_grow_with_the_bytes_that_arrive) {
    parser p;
    std::string chunk(4096, 'x');
    const std::size_t largest = largest_allocation_while([&] {
        EXPECT_FALSE(p.feed("$400000000\r\n").complete);
        for (int i = 0; i < 16; ++i) {
            EXPECT_FALSE(p.feed(chunk).complete);
        }
    });
    EXPECT_LT(largest, one_mib);
}

TEST(allocation, request_and_scanner_counts_do_not_preallocate) {
    request_parser rp;
    frame_scanner fs;
    std::vector<std::string_view> args;
    args.reserve(4);
    const std::size_t largest = largest_allocation_while([&] {
        EXPECT_FALSE(rp.parse("*60000000\r\n$1\r\na\r\n", args).complete);
        EXPECT_FALSE(fs.scan("*60000000\r\n$500000000\r\nab").complete);
    });
    EXPECT_LT(largest, one_mib);
}

}  // namespace
}  // namespace respite::resp
