// Deterministic shadow sampling: by key hash for keyed reads, by counter for keyless ones.
#include <cmath>
#include <cstdint>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy {

namespace {

// FNV-1a alone clusters on keys that differ only in their last bytes ("user:1", "user:2"); the
// splitmix64 finaliser spreads them over the whole range.
std::uint64_t key_hash(std::string_view key) noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : key) {
        h ^= static_cast<unsigned char>(c);
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

constexpr std::uint64_t parts = 1'000'000;  // sampling resolution: 0.0001 %

std::uint64_t parts_of(double percent) noexcept {
    if (!(percent > 0)) {
        return 0;  // also NaN
    }
    if (percent >= 100) {
        return parts;
    }
    return static_cast<std::uint64_t>(std::llround(percent * (parts / 100)));
}

}  // namespace

bool sampled(std::string_view key, double percent) noexcept {
    const std::uint64_t p = parts_of(percent);
    if (p == parts) {
        return true;
    }
    return key_hash(key) % parts < p;
}

bool keyless_sampler::next(double percent) noexcept {
    const std::uint64_t p = parts_of(percent);
    const std::uint64_t n = calls_.fetch_add(1, std::memory_order_relaxed) % parts;
    // Call n is sampled when it crosses the next multiple: exactly p of every `parts` calls,
    // evenly spaced rather than in a burst.
    return ((n + 1) * p) / parts > (n * p) / parts;
}

}  // namespace respite::proxy
