// Small pacing helpers of the replayer: the repair token bucket, the repair batch's size, a
// copy's TTL and the longest argument of a command.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>

#include <respite/obs/log_limiter.hpp>

namespace respite::proxy::replay {

using steady = std::chrono::steady_clock;

// Tokens at `rate` per second, bursts of up to a tenth of a second's worth (at least one).
// rate 0: unlimited. Not thread-safe.
class token_bucket {
  public:
    token_bucket(std::size_t rate, steady::time_point now)
        : rate_(static_cast<double>(rate)),
          burst_(std::max(1.0, static_cast<double>(rate) / 10)),
          tokens_(burst_),
          last_(now) {}

    // Takes up to `want` whole tokens; returns how many.
    std::size_t take(steady::time_point now, std::size_t want) {
        if (rate_ <= 0)
            return want;
        refill(now);
        const auto n = std::min<std::size_t>(want, static_cast<std::size_t>(tokens_));
        tokens_ -= static_cast<double>(n);
        return n;
    }
    void give_back(std::size_t n) {
        if (rate_ > 0)
            tokens_ = std::min(burst_, tokens_ + static_cast<double>(n));
    }
    // A new rate from now on (tokens earned so far at the old one are kept, up to the new
    // burst).
    void set_rate(std::size_t rate, steady::time_point now) {
        if (rate_ > 0)
            refill(now);
        last_ = now;
        rate_ = static_cast<double>(rate);
        burst_ = std::max(1.0, static_cast<double>(rate) / 10);
        tokens_ = std::min(tokens_, burst_);
    }
    // How long until a whole token is available.
    [[nodiscard]] steady::duration wait_for_one(steady::time_point now) {
        if (rate_ <= 0)
            return steady::duration::zero();
        refill(now);
        if (tokens_ >= 1)
            return steady::duration::zero();
        return std::chrono::duration_cast<steady::duration>(
            std::chrono::duration<double>((1 - tokens_) / rate_));
    }

  private:
    void refill(steady::time_point now) {
        const double dt = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        if (dt > 0)
            tokens_ = std::min(burst_, tokens_ + dt * rate_);
    }

    double rate_;
    double burst_;
    double tokens_;
    steady::time_point last_;
};

// Rate-limited logging: obs::log_limiter (shared with the server's workers).
using obs::log_limiter;

// The TTL argument of the RESTORE that copies a key whose PTTL read `pttl` (not -2: gone).
// -1 (no expiry) is 0; a key alive in its last millisecond reads 0, and RESTORE 0 would make it
// permanent: it gets 1 ms.
constexpr std::int64_t restore_ttl(std::int64_t pttl) noexcept {
    return pttl < 0 ? 0 : std::max<std::int64_t>(pttl, 1);
}

// How many keys the next repair batch reads. Their DUMP payloads are held at once (the replies,
// then the queued copies), so the batch follows the payloads seen so far: it holds about
// `byte_budget` (a share of the queue's budget), between 1 and `max_keys` keys. It starts at
// one key (a first batch of big values could be far over the budget). Not thread-safe.
class repair_batch_sizer {
  public:
    repair_batch_sizer(std::size_t max_keys, std::size_t byte_budget) noexcept
        : max_(std::max<std::size_t>(max_keys, 1)),
          budget_(std::max<std::size_t>(byte_budget, 1)),
          keys_(1) {}

    [[nodiscard]] std::size_t next() const noexcept { return keys_; }
    // A batch of `keys` keys read `payload_bytes` bytes of DUMP payloads.
    void observe(std::size_t keys, std::size_t payload_bytes) noexcept {
        if (keys == 0)
            return;
        const std::size_t average = std::max<std::size_t>(payload_bytes / keys, 1);
        keys_ = std::clamp<std::size_t>(budget_ / average, 1, max_);
    }

  private:
    std::size_t max_;
    std::size_t budget_;
    std::size_t keys_;
};

// The length of the longest bulk string in `encoded`: RESP commands one after another, each an
// array of bulk strings (what the follower sends). A server closes the connection that sends it
// a bulk over its proto-max-bulk-len. Reads up to the first byte that is not such a command (an
// inline command) and returns what it found before it.
constexpr std::uint64_t longest_bulk(std::string_view encoded) noexcept {
    std::size_t at = 0;
    // The decimal number after encoded[at] (a type byte), up to its CRLF; false when malformed.
    auto number = [&](char type, std::uint64_t& n) {
        if (at >= encoded.size() || encoded[at] != type)
            return false;
        n = 0;
        std::size_t i = at + 1;
        for (; i < encoded.size() && encoded[i] >= '0' && encoded[i] <= '9'; ++i) {
            if (n > (UINT64_MAX - 9) / 10)
                return false;
            n = n * 10 + static_cast<std::uint64_t>(encoded[i] - '0');
        }
        if (i == at + 1 || i + 1 >= encoded.size() || encoded[i] != '\r' || encoded[i + 1] != '\n')
            return false;
        at = i + 2;
        return true;
    };
    std::uint64_t longest = 0;
    std::uint64_t args = 0;
    while (number('*', args)) {
        for (std::uint64_t a = 0; a < args; ++a) {
            std::uint64_t len = 0;
            if (!number('$', len))
                return longest;
            longest = std::max(longest, len);
            if (len > encoded.size() - at || encoded.size() - at - len < 2)
                return longest;
            at += len + 2;
        }
    }
    return longest;
}

}  // namespace respite::proxy::replay
