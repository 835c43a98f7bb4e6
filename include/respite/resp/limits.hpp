// Bounds the parsers enforce on untrusted input; every one of them ends in a typed protocol error.
#pragma once

#include <cstddef>

namespace respite::resp {

struct limits {
    // Largest blob ($ ! = and each streamed chunk); Redis's proto-max-bulk-len default.
    std::size_t max_bulk_length = 512ull * 1024 * 1024;
    // Largest element count of one aggregate (maps and attributes count 2 per pair).
    std::size_t max_aggregate_elements = 1ull << 26;
    // Deepest nesting of aggregates (a top-level array is depth 1).
    std::size_t max_depth = 128;
    // Longest simple line (+ - : , # ( and length lines; inline requests).
    std::size_t max_line_length = 64ull * 1024;
};

}  // namespace respite::resp
