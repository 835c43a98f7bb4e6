// The per-worker Pub/Sub hub (see pubsub_hub.hpp).
#include "pubsub_hub.hpp"

#include <algorithm>
#include <optional>

#include <asio/steady_timer.hpp>

#include <respite/obs/log.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/writer.hpp>

#include "session.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

namespace {
constexpr std::string_view k_sub_verb[3] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"};
constexpr std::string_view k_unsub_verb[3] = {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};
}  // namespace

pubsub_hub::pubsub_hub(worker& w, side s) : w_(w), side_(s), shadow_timer_(w.ioc()) {
    shadow_.set_window(w.shared().cfg.pubsub_compare_window);
}

pubsub_hub::~pubsub_hub() {
    shadow_timer_.cancel();
    for (auto* c : {&conn_, &shadow_conn_}) {
        if (*c) {
            (*c)->set_close_handler(nullptr);
            (*c)->set_push_handler(nullptr);
            (*c)->close();
        }
    }
}

void pubsub_hub::shadow_tick() {
    auto& st = w_.shared();
    const auto plan = plan_of(st.current.load());
    bool any = false;
    for (auto& per_kind : entries_)
        any = any || !per_kind.empty();
    shadow_on(plan.shadow && plan.serving == side_ && any && st.has_secondary());
    if (shadowing_) {
        // The other side gets PUBLISH through the follower: wait as long as it lags, at least.
        auto window = st.cfg.pubsub_compare_window;
        if (auto* r = st.follower_of(side_)) {
            const auto lag = std::chrono::milliseconds(
                static_cast<std::int64_t>(r->snapshot().lag_seconds * 1000));
            window += lag;
        }
        shadow_.set_window(window);
        report(shadow_.sweep(std::chrono::steady_clock::now()));
    }
    if (any) {
        timer_armed_ = true;
        shadow_timer_.expires_after(std::chrono::milliseconds(500));
        shadow_timer_.async_wait([this, alive = std::weak_ptr<bool>(alive_)](std::error_code ec) {
            if (alive.expired())
                return;
            timer_armed_ = false;
            if (!ec)
                shadow_tick();
        });
    }
}

void pubsub_hub::shadow_on(bool on) {
    if (on == shadowing_ && (!on || (shadow_conn_ && shadow_conn_->usable())))
        return;
    if (!on) {
        shadowing_ = false;
        report(shadow_.close(std::chrono::steady_clock::now()));
        if (shadow_conn_) {
            shadow_conn_->set_close_handler(nullptr);
            shadow_conn_->close();
            shadow_conn_.reset();
        }
        return;
    }
    const side other = side_ == side::primary ? side::secondary : side::primary;
    shadow_conn_ = std::make_shared<upstream>(w_.ioc(), w_.shared().endpoint(other, 3));
    shadow_conn_->set_push_handler([this](std::string_view f) { on_shadow_push(f); });
    shadow_conn_->set_close_handler([this] {
        // Messages in the window can no longer be verified; resubscribed at the next tick.
        report(shadow_.close(std::chrono::steady_clock::now()));
        shadowing_ = false;
    });
    shadow_conn_->start();
    shadowing_ = true;
    for (int k = 0; k < 3; ++k)
        for (auto& [name, e] : entries_[k]) {
            std::string cmd;
            resp::append_command(cmd, {k_sub_verb[k], name});
            shadow_conn_->send_unreplied(cmd);
            shadow_.subscribe(name);
        }
}

void pubsub_hub::report(std::vector<divergence> ds) {
    auto& st = w_.shared();
    if (!st.divergences)
        return;
    // Reported from the migration's point of view: "primary" is the serving side.
    for (auto& d : ds)
        st.divergences->report(d);
}

namespace {
// A pub/sub push (["message", channel, payload], confirmations, ...), or nullopt.
std::optional<resp::value> decode_push(std::string_view frame) {
    resp::parser p;
    auto r = p.feed(frame);
    if (!r.complete)
        return std::nullopt;
    auto v = p.take();
    if (!v.is_aggregate() || v.size() < 3 || !v[0].is_string())
        return std::nullopt;
    return v;
}
}  // namespace

void pubsub_hub::on_shadow_push(std::string_view frame) {
    if (!shadowing_)
        return;
    const auto decoded = decode_push(frame);
    if (!decoded)
        return;
    const auto& v = *decoded;
    const auto& kind = v[0].str();
    const auto now = std::chrono::steady_clock::now();
    if (kind == "message" || kind == "smessage")
        shadow_.record_secondary({}, v[1].str(), v[2].str(), now);
    else if (kind == "pmessage" && v.size() >= 4)
        shadow_.record_secondary(v[1].str(), v[2].str(), v[3].str(), now);
}

void pubsub_hub::ensure_connection() {
    if (conn_ && conn_->usable())
        return;
    // Confirmations and messages arrive as pushes.
    const auto ep = w_.shared().endpoint(side_, 3);
    conn_ = std::make_shared<upstream>(w_.ioc(), ep);
    conn_->set_push_handler([this](std::string_view frame) { on_push(frame); });
    conn_->set_close_handler([this] {
        // Every upstream subscription is gone: subscribe again after a short pause.
        for (auto& per_kind : entries_)
            for (auto& [name, e] : per_kind)
                e.confirmed = e.requested = false;
        unconfirmed_.clear();
        auto timer = std::make_shared<asio::steady_timer>(w_.ioc(), std::chrono::milliseconds(100));
        timer->async_wait([this, timer](std::error_code ec) {
            if (!ec)
                resubscribe_all();
        });
    });
    conn_->start();
}

void pubsub_hub::resubscribe_all() {
    bool any = false;
    for (auto& per_kind : entries_)
        any = any || !per_kind.empty();
    if (!any)
        return;
    ensure_connection();
    for (int k = 0; k < 3; ++k)
        for (auto& [name, e] : entries_[k])
            if (!e.requested) {
                e.requested = true;
                unconfirmed_.emplace_back(static_cast<sub_kind>(k), name);
                send(k_sub_verb[k], name);
            }
}

void pubsub_hub::send(std::string_view verb, const std::string& name) {
    std::string cmd;
    resp::append_command(cmd, {verb, name});
    conn_->send_unreplied(cmd);
    if (shadowing_ && shadow_conn_ && shadow_conn_->usable()) {
        shadow_conn_->send_unreplied(cmd);
        if (verb.find("UNSUB") == std::string_view::npos)
            shadow_.subscribe(name);
    }
    if (!timer_armed_)
        shadow_tick();
}

bool pubsub_hub::subscribe(const std::shared_ptr<session>& s, sub_kind k, const std::string& name) {
    auto& e = entries_[static_cast<int>(k)][name];
    e.subscribers.push_back(s);
    e.raw.push_back(s.get());
    if (e.confirmed)
        return true;
    if (!e.requested) {
        ensure_connection();
        e.requested = true;
        unconfirmed_.emplace_back(k, name);
        send(k_sub_verb[static_cast<int>(k)], name);
    }
    return false;
}

void pubsub_hub::unsubscribe(session* s, sub_kind k, const std::string& name) {
    auto& per_kind = entries_[static_cast<int>(k)];
    auto it = per_kind.find(name);
    if (it == per_kind.end())
        return;
    auto& e = it->second;
    for (std::size_t i = 0; i < e.raw.size(); ++i) {
        if (e.raw[i] == s) {
            e.raw.erase(e.raw.begin() + static_cast<std::ptrdiff_t>(i));
            e.subscribers.erase(e.subscribers.begin() + static_cast<std::ptrdiff_t>(i));
            break;
        }
    }
    if (e.raw.empty()) {
        if (e.requested && conn_ && conn_->usable())
            send(k_unsub_verb[static_cast<int>(k)], name);
        if (shadowing_)
            report(shadow_.unsubscribe(name, std::chrono::steady_clock::now()));
        per_kind.erase(it);
    }
}

void pubsub_hub::drop(session* s) {
    for (int k = 0; k < 3; ++k) {
        std::vector<std::string> names;
        for (auto& [name, e] : entries_[k])
            if (std::find(e.raw.begin(), e.raw.end(), s) != e.raw.end())
                names.push_back(name);
        for (auto& n : names)
            unsubscribe(s, static_cast<sub_kind>(k), n);
    }
}

std::size_t pubsub_hub::upstream_subscriptions() const noexcept {
    std::size_t n = 0;
    for (const auto& per_kind : entries_)
        n += per_kind.size();
    return n;
}

void pubsub_hub::fail_oldest(std::string_view error_frame) {
    if (unconfirmed_.empty())
        return;
    auto [k, name] = std::move(unconfirmed_.front());
    unconfirmed_.pop_front();
    auto& per_kind = entries_[static_cast<int>(k)];
    auto it = per_kind.find(name);
    if (it == per_kind.end())
        return;
    auto subs = std::move(it->second.subscribers);
    per_kind.erase(it);
    for (auto& weak : subs)
        if (auto s = weak.lock())
            s->subscription_failed(static_cast<std::uint8_t>(k), name, error_frame);
}

void pubsub_hub::on_push(std::string_view frame) {
    if (!frame.empty() && (frame[0] == '-' || frame[0] == '!')) {
        // The server refused a subscription (NOPERM, unknown command ...).
        fail_oldest(frame);
        return;
    }
    const auto decoded = decode_push(frame);
    if (!decoded)
        return;
    const auto& v = *decoded;
    const auto& kind = v[0].str();
    auto deliver = [&](sub_kind k, const std::string& name) {
        auto& per_kind = entries_[static_cast<int>(k)];
        auto it = per_kind.find(name);
        if (it == per_kind.end())
            return;
        ++messages_;
        // Copy: a delivery may close a session (output limit) and change the list.
        auto subs = it->second.subscribers;
        for (auto& weak : subs)
            if (auto s = weak.lock())
                s->deliver_push(frame);
    };
    auto confirm = [&](sub_kind k, const std::string& name) {
        auto& per_kind = entries_[static_cast<int>(k)];
        auto it = per_kind.find(name);
        if (it == per_kind.end())
            return;
        it->second.confirmed = true;
        for (auto u = unconfirmed_.begin(); u != unconfirmed_.end(); ++u)
            if (u->first == k && u->second == name) {
                unconfirmed_.erase(u);
                break;
            }
        auto subs = it->second.subscribers;
        for (auto& weak : subs)
            if (auto s = weak.lock())
                s->subscription_confirmed(static_cast<std::uint8_t>(k), name);
    };
    const auto now = std::chrono::steady_clock::now();
    if (kind == "message") {
        deliver(sub_kind::channel, v[1].str());
        if (shadowing_)
            shadow_.record_primary({}, v[1].str(), v[2].str(), now);
    } else if (kind == "pmessage" && v.size() >= 4) {
        deliver(sub_kind::pattern, v[1].str());
        if (shadowing_)
            shadow_.record_primary(v[1].str(), v[2].str(), v[3].str(), now);
    } else if (kind == "smessage") {
        deliver(sub_kind::shard, v[1].str());
        if (shadowing_)
            shadow_.record_primary({}, v[1].str(), v[2].str(), now);
    } else if (kind == "subscribe")
        confirm(sub_kind::channel, v[1].str());
    else if (kind == "psubscribe")
        confirm(sub_kind::pattern, v[1].str());
    else if (kind == "ssubscribe")
        confirm(sub_kind::shard, v[1].str());
}

}  // namespace respite::proxy::server
