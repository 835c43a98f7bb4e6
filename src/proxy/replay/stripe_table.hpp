// In-flight writes per key stripe: the lock-free state the hot path updates and repairs consult.
//
// One 64-bit word per stripe: the count of writes in flight on the primary, the origin of the
// last write that began while the stripe was idle, and a generation bumped by every begin. A
// repair copies a key only when its stripe had nothing in flight and nothing queued (the
// replayer counts what is queued on its own thread), and applies the copy only if the
// generation did not move meanwhile. Keys map to stripes by hash: a collision only makes a
// repair wait or retry, never skips one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace respite::proxy::replay {

class stripe_table {
  public:
    static constexpr std::size_t stripes = 65536;

    struct state {
        std::uint32_t in_flight = 0;
        std::uint32_t generation = 0;
        friend bool operator==(const state&, const state&) = default;
    };

    stripe_table() : words_(std::make_unique<std::atomic<std::uint64_t>[]>(stripes + 1)) {}

    static std::size_t stripe_of(std::string_view key) noexcept {
        return std::hash<std::string_view>{}(key) & (stripes - 1);
    }
    // The keyspace-wide stripe (FLUSHALL, FLUSHDB, SWAPDB ...).
    static constexpr std::size_t global_stripe = stripes;

    // A write begins. True when a write of another origin is in flight on the stripe: the
    // primary may apply the two in either order.
    bool begin(std::size_t s, std::uint64_t origin) noexcept {
        const std::uint64_t tag = origin & owner_mask;
        auto& w = words_[s];
        std::uint64_t cur = w.load(std::memory_order_relaxed);
        for (;;) {
            const std::uint64_t count = cur & count_mask;
            const std::uint64_t owner = (cur >> owner_shift) & owner_mask;
            const std::uint64_t gen = (cur >> gen_shift) + 1;
            const bool conflict = count > 0 && owner != tag;
            const std::uint64_t next =
                (gen << gen_shift) | ((count == 0 ? tag : owner) << owner_shift) | (count + 1);
            if (w.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
                return conflict;
        }
    }
    void end(std::size_t s) noexcept { words_[s].fetch_sub(1, std::memory_order_acq_rel); }
    // The generation moves, nothing else: a blocking command's start and end (it is not counted
    // in flight while it waits), a copy being read.
    void bump(std::size_t s) noexcept {
        words_[s].fetch_add(std::uint64_t{1} << gen_shift, std::memory_order_acq_rel);
    }

    // A copy of a key of the stripe is read: its generation moves, only if the stripe is still
    // idle at `seen` (nothing began since). The new state, or nullopt (a write began).
    std::optional<state> bump_if_idle(std::size_t s, state seen) noexcept {
        auto& w = words_[s];
        std::uint64_t cur = w.load(std::memory_order_acquire);
        for (;;) {
            const state now{static_cast<std::uint32_t>(cur & count_mask),
                            static_cast<std::uint32_t>(cur >> gen_shift)};
            if (now != seen || now.in_flight != 0)
                return std::nullopt;
            const std::uint64_t next = cur + (std::uint64_t{1} << gen_shift);
            if (w.compare_exchange_weak(cur, next, std::memory_order_acq_rel,
                                        std::memory_order_acquire))
                return state{0, static_cast<std::uint32_t>(next >> gen_shift)};
        }
    }

    [[nodiscard]] state load(std::size_t s) const noexcept {
        const std::uint64_t w = words_[s].load(std::memory_order_acquire);
        return {static_cast<std::uint32_t>(w & count_mask),
                static_cast<std::uint32_t>(w >> gen_shift)};
    }
    // Any write of another origin in flight on the stripe?
    [[nodiscard]] bool busy_for(std::size_t s, std::uint64_t origin) const noexcept {
        const std::uint64_t w = words_[s].load(std::memory_order_acquire);
        return (w & count_mask) > 0 && ((w >> owner_shift) & owner_mask) != (origin & owner_mask);
    }

  private:
    static constexpr std::uint64_t count_mask = (std::uint64_t{1} << 20) - 1;
    static constexpr int owner_shift = 20;
    static constexpr std::uint64_t owner_mask = (std::uint64_t{1} << 24) - 1;
    static constexpr int gen_shift = 44;

    std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

}  // namespace respite::proxy::replay
