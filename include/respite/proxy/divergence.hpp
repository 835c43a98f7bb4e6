// Divergences between primary and secondary: their kinds, the reporter (metrics, rate-limited
// logs, recent ring), the per-fingerprint cooldown and a Sentry-compatible sink.
//
// Module boundary (respite_proxy_shadow): sans-I/O. The Sentry sink builds requests and hands
// them to an injected transport; it never opens a socket. Clocks are passed in where behaviour
// depends on them.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <respite/obs/metrics.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy {

// Kinds are named from the migration's point of view: "primary" is the side that serves the
// clients, "secondary" the one being verified (after the cut-over, in secondary-primary, the
// roles are the other way round; divergence::serving says which it is).
enum class divergence_kind : std::uint8_t {
    migration_gap,    // the serving side has data the other lacks (not migrated yet, or lost)
    data_mismatch,    // both have data and it differs
    extra_data,       // the other side has data the serving side lacks
    secondary_error,  // the other side answered with an error or not at all
};
inline constexpr std::size_t divergence_kind_count = 4;

// "migration_gap", "data_mismatch", "extra_data", "secondary_error".
std::string_view name(divergence_kind k) noexcept;

// Display fields are truncated to this many bytes, so one huge value cannot flood logs or Sentry.
inline constexpr std::size_t divergence_display_limit = 256;

struct divergence {
    divergence_kind kind = divergence_kind::data_mismatch;
    std::string command;  // bounded label: a known lower-case command name or "other"
    std::string key;      // the first key (pub/sub: the channel); never used as a metric label
    std::string pattern;  // pub/sub: the pattern of a PSUBSCRIBE delivery
    // What each backend answered (the real sides, whichever served): display text, at most
    // divergence_display_limit bytes.
    std::string primary;
    std::string secondary;
    std::string serving = "primary";  // the side that served the client: primary or secondary
    std::chrono::system_clock::time_point at;
};

// One-line, ASCII-only rendering of a reply (non-printable bytes as \xNN) truncated to `limit`
// bytes with a trailing "..." when cut; safe for log lines and JSON.
std::string display(const resp::value& v, std::size_t limit = divergence_display_limit);
// The same escaping and truncation for raw bytes (keys, pub/sub payloads).
std::string display(std::string_view bytes, std::size_t limit = divergence_display_limit);

// The bounded label for a command name: its lower-case name when the builtin table knows it,
// otherwise "other". Client-supplied names must never become label values unchecked.
std::string command_label(std::string_view command);

// "divergence_<kind>_<command>": the de-duplication key of the original proxy.
std::string fingerprint(divergence_kind kind, std::string_view command);

// Remembers when each fingerprint was last let through and lets it through again only after
// `period`. Bounded: at capacity the expired entries are evicted; if none is expired the new
// fingerprint is refused (and counted) rather than growing without limit. Not thread-safe; the
// reporter serialises calls.
class cooldown {
  public:
    using clock = std::chrono::steady_clock;

    explicit cooldown(clock::duration period = std::chrono::seconds(60),
                      std::size_t capacity = 10'000);

    // True when `fingerprint` may be reported at `now` (and records it); false while it cools
    // down or when the table is full of live entries.
    bool allow(std::string_view fingerprint, clock::time_point now);

    [[nodiscard]] std::size_t size() const noexcept { return last_.size(); }
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
    [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }
    [[nodiscard]] std::uint64_t evicted() const noexcept { return evicted_; }

  private:
    clock::duration period_;
    std::size_t capacity_;
    std::map<std::string, clock::time_point, std::less<>> last_;
    std::uint64_t refused_ = 0;
    std::uint64_t evicted_ = 0;
};

// A write the follower's side refused (an error reply to a replayed write or a repair copy).
// The keys turn dirty and are copied; this is the report of it, as the original proxy's
// "secondary_write_<cmd>" Sentry events.
struct write_failure {
    std::string command;  // bounded label (command_label)
    std::string target;   // "secondary", or "primary" for the rollback follower
    std::string error;    // the reply, display text
    std::size_t keys = 0;
    std::chrono::system_clock::time_point at;
};

// "secondary_write_<command>" (the target's name in place of "secondary").
std::string fingerprint(const write_failure& f);

// Where de-duplicated divergences go beyond metrics and logs (Sentry, a test fake).
class divergence_sink {
  public:
    virtual ~divergence_sink() = default;
    virtual void send(const divergence& d) = 0;
    virtual void send(const write_failure&) {}
};

struct reporter_options {
    std::size_t recent_capacity = 128;  // divergences kept for the admin endpoint
    std::size_t log_lines_per_second = 10;
    // migration_gap is expected while a migration runs: logged at debug, 1 in this many.
    std::uint64_t gap_log_every = 1000;
    std::chrono::steady_clock::duration sink_cooldown = std::chrono::seconds(60);
    std::size_t cooldown_capacity = 10'000;
    bool sink_migration_gaps = false;  // gaps go to metrics and logs only, as in the original
};

// The one place divergences are reported. Thread-safe (a mutex: divergences are off the hot
// path). For each report: counter respite_proxy_divergences_total{kind,command} (command
// re-bounded through command_label), a log line within the rate limit, the recent ring, and the
// sink when the fingerprint is out of its cooldown.
class divergence_reporter {
  public:
    using clock = std::chrono::steady_clock;

    explicit divergence_reporter(reporter_options options = {},
                                 std::shared_ptr<divergence_sink> sink = nullptr,
                                 obs::registry& metrics = obs::registry::global());

    void report(divergence d) { report(std::move(d), clock::now()); }
    void report(divergence d, clock::time_point now);
    // A write the follower's side refused: to the sink when its fingerprint is out of its
    // cooldown (metrics and logs are the replayer's).
    void report(const write_failure& f, clock::time_point now = clock::now());

    // Newest last; at most options.recent_capacity.
    [[nodiscard]] std::vector<divergence> recent() const;
    [[nodiscard]] std::array<std::uint64_t, divergence_kind_count> counts() const;
    [[nodiscard]] std::uint64_t count(divergence_kind k) const;
    // Log lines written and those held back by the rate limit (lines below the logger's level
    // and unsampled gaps are neither).
    [[nodiscard]] std::uint64_t logged_lines() const;
    [[nodiscard]] std::uint64_t suppressed_lines() const;
    // Reports kept from the sink by the cooldown (including a full cooldown table).
    [[nodiscard]] std::uint64_t sink_skipped() const;

  private:
    bool take_log_slot(clock::time_point now);  // mu_ held

    reporter_options options_;
    std::shared_ptr<divergence_sink> sink_;
    obs::registry& metrics_;
    obs::counter& sink_skipped_metric_;

    mutable std::mutex mu_;
    cooldown cooldown_;
    std::deque<divergence> recent_;
    std::array<std::uint64_t, divergence_kind_count> counts_{};
    std::uint64_t gaps_seen_ = 0;
    clock::time_point log_window_start_{};
    std::size_t log_window_lines_ = 0;
    std::uint64_t suppressed_pending_ = 0;  // not yet announced in a "suppressed" line
    std::uint64_t logged_ = 0;
    std::uint64_t suppressed_ = 0;
    std::uint64_t sink_skipped_ = 0;
};

// A Sentry DSN: scheme://PUBLIC_KEY[:SECRET]@HOST[:PORT][/PATH]/PROJECT_ID.
struct sentry_dsn {
    std::string scheme;  // "http" or "https"
    std::string public_key;
    std::string host;
    std::uint16_t port = 0;  // 0: the scheme's default
    std::string path;        // prefix before the project id, "" or "/sentry"
    std::string project_id;

    [[nodiscard]] std::string origin() const;        // scheme://host[:port]
    [[nodiscard]] std::string store_url() const;     // origin/path/api/ID/store/
    [[nodiscard]] std::string envelope_url() const;  // origin/path/api/ID/envelope/
};

// The parsed DSN, or a message naming what is wrong with it.
std::expected<sentry_dsn, std::string> parse_sentry_dsn(std::string_view dsn);

struct sentry_options {
    std::string environment = "production";
    std::string release;        // omitted when empty
    std::string server_name;    // omitted when empty
    bool use_envelope = false;  // false: POST the event JSON to the store endpoint
    std::size_t max_in_flight = 32;
    // Fraction of events sent (1: all; 0: none), as the SDKs' sample_rate; after the cooldown.
    double sample_rate = 1.0;
};

// Builds Sentry events for divergences and hands them to the transport. The transport is
// asynchronous: it must call complete() once per send, success or failure, so the sink can bound
// the events in flight; beyond options.max_in_flight new events are dropped and counted.
// Thread-safe.
class sentry_sink final : public divergence_sink {
  public:
    using header_list = std::vector<std::pair<std::string, std::string>>;
    using transport =
        std::function<void(const std::string& url, const header_list& headers, std::string body)>;

    sentry_sink(sentry_dsn dsn, transport send, sentry_options options = {});

    void send(const divergence& d) override;
    void send(const write_failure& f) override;
    void complete() noexcept;

    // The event JSON (also the last line of an envelope); exposed for tests and dry runs.
    [[nodiscard]] std::string event_json(const divergence& d, std::string_view event_id) const;
    [[nodiscard]] std::string event_json(const write_failure& f, std::string_view event_id) const;
    // "Sentry sentry_version=7, sentry_client=respite-proxy/0.1, sentry_key=KEY".
    [[nodiscard]] std::string auth_header() const;

    [[nodiscard]] std::uint64_t sent() const noexcept { return sent_.load(); }
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(); }
    // Events left out by sample_rate.
    [[nodiscard]] std::uint64_t sampled_out() const noexcept { return sampled_out_.load(); }
    [[nodiscard]] std::size_t in_flight() const noexcept { return in_flight_.load(); }

  private:
    std::string next_event_id();
    [[nodiscard]] bool sampled_in();
    // Sends one event's JSON (bounded in flight), as a store request or an envelope.
    void post(const std::string& id, std::string body);

    sentry_dsn dsn_;
    transport transport_;
    sentry_options options_;
    std::uint64_t id_seed_;
    std::atomic<std::uint64_t> id_counter_{0};
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::uint64_t> sent_{0};
    std::atomic<std::uint64_t> dropped_{0};
    std::atomic<std::uint64_t> sampled_out_{0};
};

}  // namespace respite::proxy
