// The pub/sub shadow matcher: a multiset of (pattern, channel, payload) per side, with a window.
#include <algorithm>

#include <respite/proxy/pubsub_shadow.hpp>

namespace respite::proxy {

namespace {

using clock = std::chrono::steady_clock;

clock::duration distance(clock::time_point a, clock::time_point b) {
    return a > b ? a - b : b - a;
}

// The subscription a delivery belongs to: its pattern for pmessage, its channel for message.
std::string_view subscription_of(std::string_view pattern, std::string_view channel) {
    return pattern.empty() ? channel : pattern;
}

}  // namespace

pubsub_shadow::pubsub_shadow(pubsub_shadow_options options) : options_(options) {}

void pubsub_shadow::record_primary(std::string_view pattern, std::string_view channel,
                                   std::string_view payload, clock::time_point t) {
    record(origin::primary, pattern, channel, payload, t);
}

void pubsub_shadow::record_secondary(std::string_view pattern, std::string_view channel,
                                     std::string_view payload, clock::time_point t) {
    record(origin::secondary, pattern, channel, payload, t);
}

bool pubsub_shadow::quiet(std::string_view pattern, std::string_view channel, clock::time_point t) {
    if (quiet_until_.empty()) {
        return false;
    }
    const auto it = quiet_until_.find(subscription_of(pattern, channel));
    if (it == quiet_until_.end()) {
        return false;
    }
    if (t <= it->second) {
        return true;
    }
    quiet_until_.erase(it);
    return false;
}

void pubsub_shadow::record(origin from, std::string_view pattern, std::string_view channel,
                           std::string_view payload, clock::time_point t) {
    if (closed_ || quiet(pattern, channel, t)) {
        ++stats_.unverified;
        return;
    }
    const auto key = std::make_tuple(pattern, channel, payload);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
        entry& e = it->second;
        side& other = from == origin::primary ? e.secondary : e.primary;
        // The oldest copy within the window is this message's twin.
        for (auto w = other.waiting.begin(); w != other.waiting.end(); ++w) {
            if (!w->late_copy_seen && distance(w->t, t) <= options_.window) {
                other.waiting.erase(w);
                --pending_;
                ++stats_.matched;
                if (e.empty()) {
                    entries_.erase(it);
                }
                return;
            }
        }
        // A twin already past the window: it will be (or was) reported as late, once.
        for (auto& w : other.waiting) {
            if (!w.late_copy_seen && w.t < t) {
                w.late_copy_seen = true;
                ++stats_.late;
                return;
            }
        }
        for (auto r = other.reported.begin(); r != other.reported.end(); ++r) {
            if (*r < t && t - *r <= options_.late_grace) {
                other.reported.erase(r);
                --reported_held_;
                ++stats_.late;
                if (e.empty()) {
                    entries_.erase(it);
                }
                return;
            }
        }
    }
    if (pending_ >= options_.max_pending) {
        ++stats_.overflow;
        return;
    }
    if (it == entries_.end()) {
        it = entries_.emplace(message_key(pattern, channel, payload), entry{}).first;
    }
    side& mine = from == origin::primary ? it->second.primary : it->second.secondary;
    // Keep arrival order even if callers on different threads stamp slightly out of order.
    const auto pos =
        std::upper_bound(mine.waiting.begin(), mine.waiting.end(), t,
                         [](clock::time_point x, const waiting_message& w) { return x < w.t; });
    mine.waiting.insert(pos, waiting_message{t});
    ++pending_;
}

std::vector<divergence> pubsub_shadow::expire(clock::time_point now,
                                              std::chrono::system_clock::time_point wall,
                                              const std::string_view* subscription,
                                              bool drop_live) {
    struct found {
        clock::time_point t;
        divergence d;
    };
    std::vector<found> out;
    for (auto it = entries_.begin(); it != entries_.end();) {
        const auto& [pattern, channel, payload] = it->first;
        if (subscription != nullptr && *subscription != pattern &&
            !(pattern.empty() && *subscription == channel)) {
            ++it;
            continue;
        }
        for (const origin from : {origin::primary, origin::secondary}) {
            side& s = from == origin::primary ? it->second.primary : it->second.secondary;
            for (auto w = s.waiting.begin(); w != s.waiting.end();) {
                if (now - w->t > options_.window && w->t < settle_until_) {
                    // Arrived within a window of a reopen: its twin may have come while closed.
                    ++stats_.unverified;
                } else if (now - w->t > options_.window) {
                    divergence d;
                    d.command = pattern.empty() ? "subscribe" : "psubscribe";
                    d.key = channel;
                    d.pattern = pattern;
                    if (from == origin::primary) {
                        d.kind = divergence_kind::data_mismatch;
                        d.primary = display(std::string_view(payload));
                        ++stats_.missing_on_secondary;
                    } else {
                        d.kind = divergence_kind::extra_data;
                        d.secondary = display(std::string_view(payload));
                        ++stats_.extra_on_secondary;
                    }
                    d.at = wall - std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                      now - w->t);
                    out.push_back({w->t, std::move(d)});
                    if (!w->late_copy_seen && !drop_live && reported_held_ < options_.max_pending) {
                        s.reported.push_back(w->t);
                        ++reported_held_;
                    }
                } else if (drop_live) {
                    ++stats_.unverified;
                } else {
                    ++w;
                    continue;
                }
                w = s.waiting.erase(w);
                --pending_;
            }
            // Reports kept for late copies: expired ones go, and all of them once the
            // subscription ends (copies arriving now are dropped by the quiet period).
            const auto before = s.reported.size();
            std::erase_if(s.reported, [&](clock::time_point r) {
                return drop_live || now - r > options_.late_grace;
            });
            reported_held_ -= before - s.reported.size();
        }
        it = it->second.empty() ? entries_.erase(it) : std::next(it);
    }
    std::erase_if(quiet_until_, [&](const auto& q) { return now > q.second; });
    std::stable_sort(out.begin(), out.end(),
                     [](const found& a, const found& b) { return a.t < b.t; });
    std::vector<divergence> result;
    result.reserve(out.size());
    for (auto& f : out) {
        result.push_back(std::move(f.d));
    }
    return result;
}

std::vector<divergence> pubsub_shadow::sweep(clock::time_point now,
                                             std::chrono::system_clock::time_point wall) {
    return expire(now, wall, nullptr, false);
}

std::vector<divergence> pubsub_shadow::unsubscribe(std::string_view pattern_or_channel,
                                                   clock::time_point now,
                                                   std::chrono::system_clock::time_point wall) {
    auto result = expire(now, wall, &pattern_or_channel, true);
    // The other side's unsubscribe may lag: its copies of the dropped messages still arrive.
    quiet_until_.insert_or_assign(std::string(pattern_or_channel), now + options_.window);
    return result;
}

void pubsub_shadow::subscribe(std::string_view pattern_or_channel) {
    if (const auto it = quiet_until_.find(pattern_or_channel); it != quiet_until_.end()) {
        quiet_until_.erase(it);
    }
}

std::vector<divergence> pubsub_shadow::close(clock::time_point now,
                                             std::chrono::system_clock::time_point wall) {
    auto result = expire(now, wall, nullptr, true);
    closed_ = true;
    entries_.clear();
    quiet_until_.clear();
    pending_ = 0;
    reported_held_ = 0;
    return result;
}

}  // namespace respite::proxy
