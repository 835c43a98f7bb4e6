// Shadow reads: a sampled read served by one side is read again on the other side, compared
// after normalisation, re-checked once the follower has applied the key's in-flight writes, and
// reported only when no write to the key began during the re-check. Never on the client's path:
// runs on the backends' threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/proxy/divergence.hpp>
#include <respite/proxy/shadow.hpp>
#include <respite/resp/value.hpp>

#include "classify.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

// How one compare ended (for callers that wait for it, e.g. PROXY VERIFY).
enum class shadow_outcome : std::uint8_t {
    match,
    match_after_recheck,
    divergence,
    error,
    unstable
};

// The two sides agreed, at once or after the re-check.
[[nodiscard]] constexpr bool agreed(shadow_outcome o) noexcept {
    return o == shadow_outcome::match || o == shadow_outcome::match_after_recheck;
}

class shadow_reader : public std::enable_shared_from_this<shadow_reader> {
  public:
    explicit shadow_reader(shared_state& st);
    using done_fn = std::move_only_function<void(shadow_outcome)>;

    // Sampled (by key hash), understood by the compare, and under the in-flight bound.
    bool wanted(const command_class& c, std::span<const std::string_view> args);
    // done (optional) runs once with the outcome, on a backend's or the control thread.
    void compare(side serving, std::vector<std::string> args, resp::value served,
                 done_fn done = {});
    // The same under a rule chosen by the caller (PROXY VERIFY's consumer-group reads, which
    // rule_for skips for shadow reads); the key for the re-check is still found from args.
    void compare(side serving, std::vector<std::string> args, resp::value served,
                 const shadow_rule& rule, done_fn done = {});
    void stop() noexcept { stopped_.store(true); }
    [[nodiscard]] std::string info() const;

  private:
    struct job;
    void first_compare(const std::shared_ptr<job>& j, client::result<replies_t> other);
    void recheck(const std::shared_ptr<job>& j);
    // when_settled for each key the job's read names (2 s in all).
    void settle(const std::shared_ptr<job>& j, std::move_only_function<void(bool)> fn);
    void report(const job& j, divergence_kind k, const resp::value* served,
                const resp::value* other);
    void finish(job& j, shadow_outcome o);

    shared_state& st_;
    keyless_sampler keyless_;
    std::atomic<bool> stopped_{false};
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::uint64_t> compared_{0}, matched_{0}, cleared_on_recheck_{0}, reported_{0},
        skipped_busy_{0}, unstable_{0};
    obs::counter* results_[6]{};
};

// Calls fn(true) once no write to `key` is between the serving side and the follower's queue
// and the follower applied what it held for the key (at once without a follower); fn(false) when
// the key does not settle before `deadline` (a hot key). Polls on `ioc` while writes are in flight.
void when_settled(asio::io_context* ioc, replayer* r, std::string key,
                  std::move_only_function<void(bool)> fn,
                  std::chrono::steady_clock::time_point deadline);

// A divergence's values under their real sides (the kind is from the serving side's point of
// view): `served` is what the serving side answered, `other` the side compared.
inline void set_values(divergence& d, side serving, std::string served, std::string other) {
    d.serving = side_name(serving);
    d.primary = std::move(serving == side::primary ? served : other);
    d.secondary = std::move(serving == side::primary ? other : served);
}

// The Sentry sink for --sentry-dsn (nullptr when none is configured or the DSN is invalid).
std::shared_ptr<divergence_sink> make_divergence_sink(shared_state& st);

}  // namespace respite::proxy::server
