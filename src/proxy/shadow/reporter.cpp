// The divergence reporter: metrics, rate-limited logs, the recent ring and the cooled-down sink.
#include <utility>

#include <respite/obs/log.hpp>
#include <respite/proxy/divergence.hpp>

namespace respite::proxy {

namespace {

constexpr std::string_view divergences_metric = "respite_proxy_divergences_total";
constexpr std::string_view divergences_help =
    "Shadow-read and pub/sub divergences between primary and secondary.";

// Callers should pass display text already; this keeps a careless caller from defeating the
// bound on log lines and sink payloads.
void bound(std::string& s) {
    if (s.size() > divergence_display_limit) {
        s.resize(divergence_display_limit - 3);
        s += "...";
    }
}

}  // namespace

divergence_reporter::divergence_reporter(reporter_options options,
                                         std::shared_ptr<divergence_sink> sink,
                                         obs::registry& metrics)
    : options_(options),
      sink_(std::move(sink)),
      metrics_(metrics),
      sink_skipped_metric_(metrics.get_counter(
          "respite_proxy_divergence_sink_skipped_total",
          "Divergences kept from the sink (Sentry) by the per-fingerprint cooldown.")),
      cooldown_(options.sink_cooldown, options.cooldown_capacity) {}

bool divergence_reporter::take_log_slot(clock::time_point now) {
    if (now - log_window_start_ >= std::chrono::seconds(1)) {
        log_window_start_ = now;
        log_window_lines_ = 0;
        if (suppressed_pending_ > 0) {
            obs::log().warn("shadow_divergence_logs_suppressed count={}", suppressed_pending_);
            suppressed_pending_ = 0;
        }
    }
    if (log_window_lines_ >= options_.log_lines_per_second) {
        return false;
    }
    ++log_window_lines_;
    return true;
}

void divergence_reporter::report(const write_failure& f, clock::time_point now) {
    if (!sink_)
        return;
    write_failure bounded = f;
    bounded.command = command_label(f.command);
    bool to_sink = false;
    {
        const std::scoped_lock lock(mu_);
        to_sink = cooldown_.allow(fingerprint(bounded), now);
        if (!to_sink) {
            ++sink_skipped_;
            sink_skipped_metric_.inc();
        }
    }
    if (to_sink) {
        bound(bounded.error);
        sink_->send(bounded);
    }
}

void divergence_reporter::report(divergence d, clock::time_point now) {
    d.command = command_label(d.command);
    bound(d.key);
    bound(d.pattern);
    bound(d.primary);
    bound(d.secondary);

    const bool gap = d.kind == divergence_kind::migration_gap;
    metrics_
        .get_counter(divergences_metric, divergences_help,
                     {{"kind", std::string(name(d.kind))}, {"command", d.command}})
        .inc();

    bool log_line = false;
    bool to_sink = false;
    {
        const std::scoped_lock lock(mu_);
        ++counts_[static_cast<std::size_t>(d.kind)];
        // Gaps are expected in bulk while a migration runs: a sample at debug is enough.
        bool wanted = obs::log().should_log(gap ? spdlog::level::debug : spdlog::level::warn);
        if (gap) {
            const std::uint64_t every = options_.gap_log_every;
            ++gaps_seen_;
            wanted = wanted && every > 0 && (every == 1 || gaps_seen_ % every == 1);
        }
        if (wanted) {
            log_line = take_log_slot(now);
            if (log_line) {
                ++logged_;
            } else {
                ++suppressed_;
                ++suppressed_pending_;
            }
        }
        if (sink_ && (!gap || options_.sink_migration_gaps)) {
            to_sink = cooldown_.allow(fingerprint(d.kind, d.command), now);
            if (!to_sink) {
                ++sink_skipped_;
                sink_skipped_metric_.inc();
            }
        }
        if (options_.recent_capacity > 0) {
            if (recent_.size() >= options_.recent_capacity) {
                recent_.pop_front();
            }
            recent_.push_back(d);
        }
    }

    if (log_line) {
        const auto level = gap ? spdlog::level::debug : spdlog::level::warn;
        obs::log().log(level,
                       "shadow_divergence kind={} command={} key={} pattern={} serving={} "
                       "primary={} secondary={}",
                       name(d.kind), obs::quoted{d.command}, obs::quoted{display(d.key)},
                       obs::quoted{display(d.pattern)}, d.serving, obs::quoted{d.primary},
                       obs::quoted{d.secondary});
    }
    if (to_sink) {
        // Outside the lock: a sink may build a payload or take its own locks.
        sink_->send(d);
    }
}

std::vector<divergence> divergence_reporter::recent() const {
    const std::scoped_lock lock(mu_);
    return {recent_.begin(), recent_.end()};
}

std::array<std::uint64_t, divergence_kind_count> divergence_reporter::counts() const {
    const std::scoped_lock lock(mu_);
    return counts_;
}

std::uint64_t divergence_reporter::count(divergence_kind k) const {
    const std::scoped_lock lock(mu_);
    return counts_[static_cast<std::size_t>(k)];
}

std::uint64_t divergence_reporter::logged_lines() const {
    const std::scoped_lock lock(mu_);
    return logged_;
}

std::uint64_t divergence_reporter::suppressed_lines() const {
    const std::scoped_lock lock(mu_);
    return suppressed_;
}

std::uint64_t divergence_reporter::sink_skipped() const {
    const std::scoped_lock lock(mu_);
    return sink_skipped_;
}

}  // namespace respite::proxy
