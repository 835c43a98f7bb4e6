// The per-worker Pub/Sub hub (see pubsub_hub.hpp).
#include "pubsub_hub.hpp"

#include <algorithm>
#include <optional>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <respite/cluster/slot.hpp>
#include <respite/obs/log.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/writer.hpp>

#include "frames.hpp"
#include "session.hpp"
#include "shadow_reader.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

namespace {
constexpr std::string_view k_sub_verb[3] = {"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"};
constexpr std::string_view k_unsub_verb[3] = {"UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};

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

pubsub_hub::pubsub_hub(worker& w, side s) : w_(w), side_(s), shadow_timer_(w.ioc()) {
    shadow_.set_window(w.shared().cfg.pubsub_compare_window);
}

pubsub_hub::~pubsub_hub() {
    shadow_timer_.cancel();
    if (conn_) {
        conn_->set_close_handler(nullptr);
        conn_->set_push_handler(nullptr);
        conn_->close();
    }
    for (auto& [node, l] : links_) {
        if (l.conn) {
            l.conn->set_close_handler(nullptr);
            l.conn->set_push_handler(nullptr);
            l.conn->close();
        }
    }
    close_twins();
}

bool pubsub_hub::shards_per_node() const {
    return w_.shared().backend_cfg(side_).cluster;
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
        const auto now = std::chrono::steady_clock::now();
        report(shadow_.sweep(now));
        // Twins the other side refused: asked again every 10 s (an ACL fixed, a cluster up).
        std::vector<std::string> again;
        for (auto& [name, asked] : twin_refused_)
            if (now - asked >= std::chrono::seconds(10)) {
                asked = now;
                again.push_back(name);
            }
        for (const auto& name : again)
            for (int k = 0; k < 3 && shadowing_; ++k)
                if (entries_[k].contains(name))
                    send_shadow(k_sub_verb[k], name);
    }
    // A refused name no client subscribes to any more is not asked again: forgotten.
    std::erase_if(twin_refused_, [&](const auto& r) { return !subscribed_anyhow(r.first); });
    publish_shadow_stats();
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
    if (on && shadowing_ && shadow_seed_.conn && shadow_seed_.conn->usable())
        return;
    if (!on) {
        if (!shadowing_ && !shadow_seed_.conn && shadow_links_.empty())
            return;
        shadowing_ = false;
        report(shadow_.close(std::chrono::steady_clock::now()));
        close_twins();
        return;
    }
    close_twins();  // a seed that was lost: start over on fresh connections
    if (shadow_gen_++ > 0)
        report(shadow_.close(std::chrono::steady_clock::now()));  // an earlier session's leftovers
    const side other = other_side(side_);
    shadow_seed_.conn = std::make_shared<upstream>(w_.ioc(), w_.shared().endpoint(other, 3));
    shadow_seed_.conn->set_push_handler([this](std::string_view f) { on_twin_push({}, f); });
    // Messages in the window can no longer be verified; everything starts over at the next tick.
    shadow_seed_.conn->set_close_handler([this] { restart_shadow(false); });
    shadow_seed_.conn->start();
    shadowing_ = true;
    // After an earlier close (a lost connection, the mode switched back): what arrives within a
    // window from now may have a twin that was never recorded, so it is not compared.
    shadow_.reopen(std::chrono::steady_clock::now());
    for (int k = 0; k < 3; ++k)
        for (auto& [name, e] : entries_[k]) {
            send_shadow(k_sub_verb[k], name);
            if (!shadowing_)
                return;  // no slot map yet: restarted
        }
}

void pubsub_hub::close_twins() {
    twin_refused_.clear();
    auto close = [](twin_conn& t) {
        if (t.conn) {
            t.conn->set_close_handler(nullptr);
            t.conn->set_push_handler(nullptr);
            t.conn->close();
        }
        t.conn.reset();
        t.sent.clear();
    };
    close(shadow_seed_);
    for (auto& [node, l] : shadow_links_)
        close(l);
    shadow_links_.clear();
}

bool pubsub_hub::shadow_shards_per_node() const {
    return w_.shared().backend_cfg(other_side(side_)).cluster;
}

pubsub_hub::twin_conn* pubsub_hub::twin_by_key(const std::string& key) {
    if (key.empty())
        return &shadow_seed_;
    auto it = shadow_links_.find(key);
    return it == shadow_links_.end() ? nullptr : &it->second;
}

pubsub_hub::twin_conn* pubsub_hub::shadow_target(bool shard, const std::string& name,
                                                 std::string* key_out) {
    if (!shard || !shadow_shards_per_node()) {
        if (key_out != nullptr)
            key_out->clear();
        return shadow_seed_.conn && shadow_seed_.conn->usable() ? &shadow_seed_ : nullptr;
    }
    const side other = other_side(side_);
    const auto node = w_.master_of(other, cluster::hash_slot(name));
    if (!node) {
        if (w_.masters(other).empty())
            restart_shadow(true);  // no slot map yet: read it, start over
        else
            twin_refused(name, "-ERR no master serves the channel's slot\r\n");
        return nullptr;
    }
    const auto key = node->to_string();
    if (key_out != nullptr)
        *key_out = key;
    auto& l = shadow_links_[key];
    if (!l.conn || !l.conn->usable()) {
        l.sent.clear();
        l.conn = std::make_shared<upstream>(w_.ioc(), w_.shared().endpoint(other, 3, &*node));
        l.conn->set_push_handler([this, key](std::string_view f) { on_twin_push(key, f); });
        l.conn->set_close_handler([this] { restart_shadow(true); });
        l.conn->start();
    }
    return &l;
}

void pubsub_hub::on_twin_push(const std::string& key, std::string_view frame) {
    if (!shadowing_)
        return;
    twin_conn* t = twin_by_key(key);
    if (t == nullptr)
        return;
    if (is_error_frame(frame)) {
        if (t->sent.empty())
            return;
        auto [subscribing, name] = std::move(t->sent.front());
        t->sent.pop_front();
        if (!subscribing)
            return;
        // -MOVED/-ASK: the map was stale, the twin belongs on another master.
        if (frame.starts_with("-MOVED ") || frame.starts_with("-ASK "))
            restart_shadow(true);
        else
            twin_refused(name, frame);
        return;
    }
    const auto decoded = decode_push(frame);
    if (!decoded || !(*decoded)[1].is_string())
        return;
    const auto& v = *decoded;
    const auto& kind = v[0].str();
    const auto& name = v[1].str();
    const auto now = std::chrono::steady_clock::now();
    auto answered = [&](bool subscribing) {
        for (auto it = t->sent.begin(); it != t->sent.end(); ++it)
            if (it->first == subscribing && it->second == name) {
                t->sent.erase(it);
                return true;
            }
        return false;
    };
    if (kind == "message" || kind == "smessage") {
        shadow_.record_secondary({}, name, v[2].str(), now);
    } else if (kind == "pmessage" && v.size() >= 4) {
        shadow_.record_secondary(name, v[2].str(), v[3].str(), now);
    } else if (kind == "subscribe" || kind == "psubscribe" || kind == "ssubscribe") {
        answered(true);
        if (twin_refused_.erase(name) > 0) {
            obs::log().info("proxy pubsub_shadow_twin_accepted name={}", obs::quoted{name});
            shadow_.subscribe(name);
        }
    } else if (kind == "unsubscribe" || kind == "punsubscribe" || kind == "sunsubscribe") {
        // A SUNSUBSCRIBE push nobody asked for: the slot left that master (resharding,
        // failover); the twin must follow it.
        if (!answered(false) && kind == "sunsubscribe" && !key.empty())
            restart_shadow(true);
    }
}

bool pubsub_hub::subscribed_anyhow(const std::string& name) const {
    for (const auto& per_kind : entries_)
        if (per_kind.contains(name))
            return true;
    return false;
}

void pubsub_hub::publish_shadow_stats() {
    auto& totals = w_.shared().pubsub_shadow;
    const auto& now = shadow_.counters();
    totals.matched.fetch_add(now.matched - published_.matched);
    totals.unverified.fetch_add(now.unverified - published_.unverified);
    totals.late.fetch_add(now.late - published_.late);
    totals.overflow.fetch_add(now.overflow - published_.overflow);
    published_ = now;
    const auto refused = static_cast<std::int64_t>(twin_refused_.size());
    totals.refused_names.fetch_add(refused - published_refused_);
    published_refused_ = refused;
}

void pubsub_hub::twin_refused(const std::string& name, std::string_view error_frame) {
    // The serving side refused it first and its entry is gone (the twin was unsubscribed):
    // nothing to ask again.
    if (!subscribed_anyhow(name))
        return;
    const auto now = std::chrono::steady_clock::now();
    const bool first = twin_refused_.insert_or_assign(name, now).second;
    if (first)
        report(shadow_.unsubscribe(name, now));
    if (now - twin_refused_logged_ > std::chrono::seconds(10)) {
        twin_refused_logged_ = now;
        obs::log().warn(
            "proxy pubsub_shadow_twin_refused side={} name={} error=\"{}\" (its messages are not "
            "compared; asked again every 10 s)",
            side_name(other_side(side_)), obs::quoted{name},
            error_frame.substr(1, error_frame.find_first_of("\r\n") - 1));
    }
}

void pubsub_hub::restart_shadow(bool refresh_map) {
    if (!shadowing_)
        return;
    shadowing_ = false;  // records stop now; the posted shadow_on(false) closes the rest
    const side other = other_side(side_);
    if (const auto now = std::chrono::steady_clock::now();
        now - shadow_restart_logged_ > std::chrono::seconds(10)) {
        shadow_restart_logged_ = now;
        obs::log().info(
            "proxy pubsub_shadow_restart side={} (a twin subscription moved or a connection to "
            "that side was lost; messages in the window are not verified)",
            side_name(other));
    }
    if (refresh_map) {
        w_.topology_changed(other);
        if (const auto& b = w_.shared().backends[static_cast<int>(other)])
            b->refresh_topology([] {});
    }
    // Not from inside a twin connection's handler: posted (and skipped when a new session began
    // meanwhile).
    asio::post(w_.ioc(), [this, alive = std::weak_ptr<bool>(alive_), gen = shadow_gen_] {
        if (alive.expired() || gen != shadow_gen_ || shadowing_)
            return;
        report(shadow_.close(std::chrono::steady_clock::now()));
        close_twins();
    });
}

void pubsub_hub::report(std::vector<divergence> ds) {
    auto& st = w_.shared();
    if (!st.divergences)
        return;
    // The shadow records the serving side as "primary": each value goes under its real side.
    for (auto& d : ds) {
        set_values(d, side_, std::move(d.primary), std::move(d.secondary));
        st.divergences->report(d);
    }
}

void pubsub_hub::ensure_connection() {
    if (conn_ && conn_->usable())
        return;
    // Confirmations and messages arrive as pushes.
    const auto ep = w_.shared().endpoint(side_, 3);
    conn_ = std::make_shared<upstream>(w_.ioc(), ep);
    conn_->set_push_handler([this](std::string_view frame) { on_push(frame); });
    conn_->set_close_handler([this] {
        // The twins on the other side stay subscribed meanwhile: what they receive until this
        // side is subscribed again has no twin here. Messages in the window are not verified.
        restart_shadow(false);
        // Every upstream subscription of this connection is gone: subscribe again after a short
        // pause. (A cluster's shard channels live on their node's link, not here.)
        for (int k = 0; k < 3; ++k)
            if (static_cast<sub_kind>(k) != sub_kind::shard || !shards_per_node())
                for (auto& [name, e] : entries_[k])
                    e.confirmed = e.requested = false;
        unconfirmed_.clear();
        auto timer = std::make_shared<asio::steady_timer>(w_.ioc(), std::chrono::milliseconds(100));
        timer->async_wait([this, timer, alive = std::weak_ptr<bool>(alive_)](std::error_code ec) {
            if (!ec && !alive.expired())
                resubscribe_all();
        });
    });
    conn_->start();
}

void pubsub_hub::request(sub_kind k, const std::string& name, entry& e) {
    if (k != sub_kind::shard || !shards_per_node()) {
        ensure_connection();
        e.requested = true;
        unconfirmed_.emplace_back(k, name);
        send(k_sub_verb[static_cast<int>(k)], name);
        return;
    }
    // SPUBLISH reaches only the subscribers of the slot's master (and its replicas).
    const auto node = w_.master_of(side_, cluster::hash_slot(name));
    if (!node) {
        refresh_and_resubscribe();  // no slot map yet
        return;
    }
    auto& l = link(*node);
    e.requested = true;
    e.node = node->to_string();
    std::string cmd;
    resp::append_command(cmd, {"SSUBSCRIBE", name});
    l.conn->send_unreplied(cmd);
    l.sent.emplace_back(true, name);
    send_shadow("SSUBSCRIBE", name);
}

pubsub_hub::node_link& pubsub_hub::link(const cluster::node_address& node) {
    const auto key = node.to_string();
    auto& l = links_[key];
    if (l.conn && l.conn->usable())
        return l;
    l.sent.clear();
    l.conn = std::make_shared<upstream>(w_.ioc(), w_.shared().endpoint(side_, 3, &node));
    l.conn->set_push_handler([this, key](std::string_view frame) { on_node_push(key, frame); });
    l.conn->set_close_handler([this, key] { on_node_closed(key); });
    l.conn->start();
    return l;
}

void pubsub_hub::on_node_closed(const std::string& node) {
    // The node restarted, failed over or left: its shard channels go to their slots' masters
    // once the map is read again.
    for (auto& [name, e] : entries_[static_cast<int>(sub_kind::shard)])
        if (e.node == node) {
            e.confirmed = e.requested = false;
            e.node.clear();
        }
    if (auto it = links_.find(node); it != links_.end())
        it->second.sent.clear();
    refresh_and_resubscribe();
}

void pubsub_hub::replace_shard(const std::string& name) {
    auto& per_kind = entries_[static_cast<int>(sub_kind::shard)];
    auto it = per_kind.find(name);
    if (it == per_kind.end())
        return;
    obs::log().info("proxy shard_channel_moved channel={}", obs::quoted{name});
    it->second.confirmed = it->second.requested = false;
    it->second.node.clear();
    refresh_and_resubscribe();
}

void pubsub_hub::refresh_and_resubscribe() {
    if (refresh_pending_)
        return;
    refresh_pending_ = true;
    w_.topology_changed(side_);
    // A short pause first: a node that is down, or a map that still says the old owner, is not
    // asked again in a tight loop.
    auto timer = std::make_shared<asio::steady_timer>(w_.ioc(), std::chrono::milliseconds(100));
    timer->async_wait([this, timer, alive = std::weak_ptr<bool>(alive_)](std::error_code ec) {
        if (ec || alive.expired())
            return;
        auto resubscribe = [this, alive, &ioc = w_.ioc()] {
            asio::post(ioc, [this, alive] {
                if (alive.expired())
                    return;
                refresh_pending_ = false;
                w_.topology_changed(side_);
                resubscribe_all();
            });
        };
        if (const auto& b = w_.shared().backends[static_cast<int>(side_)])
            b->refresh_topology(std::move(resubscribe));
        else
            resubscribe();
    });
}

void pubsub_hub::resubscribe_all() {
    for (int k = 0; k < 3; ++k)
        for (auto& [name, e] : entries_[k])
            if (!e.requested)
                request(static_cast<sub_kind>(k), name, e);
}

void pubsub_hub::send(std::string_view verb, const std::string& name) {
    std::string cmd;
    resp::append_command(cmd, {verb, name});
    conn_->send_unreplied(cmd);
    send_shadow(verb, name);
}

void pubsub_hub::send_shadow(std::string_view verb, const std::string& name) {
    if (shadowing_) {
        const bool shard = verb == "SSUBSCRIBE" || verb == "SUNSUBSCRIBE";
        const bool subscribing = verb.find("UNSUB") == std::string_view::npos;
        if (auto* t = shadow_target(shard, name); t != nullptr) {
            std::string cmd;
            resp::append_command(cmd, {verb, name});
            t->conn->send_unreplied(cmd);
            t->sent.emplace_back(subscribing, name);
            if (subscribing && twin_active(name))
                shadow_.subscribe(name);
        }
        if (!subscribing)
            twin_refused_.erase(name);
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
    if (!e.requested)
        request(k, name, e);
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
        if (k == sub_kind::shard && shards_per_node()) {
            auto l = links_.find(e.node);
            if (e.requested && l != links_.end() && l->second.conn && l->second.conn->usable()) {
                std::string cmd;
                resp::append_command(cmd, {"SUNSUBSCRIBE", name});
                l->second.conn->send_unreplied(cmd);
                l->second.sent.emplace_back(false, name);
            }
        } else if (e.requested && conn_ && conn_->usable()) {
            std::string cmd;
            resp::append_command(cmd, {k_unsub_verb[static_cast<int>(k)], name});
            conn_->send_unreplied(cmd);
        }
        // The twin goes whatever the serving side's connection is doing (it may be between a
        // lost connection and the resubscribe).
        send_shadow(k_unsub_verb[static_cast<int>(k)], name);
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
    fail(k, name, error_frame);
}

void pubsub_hub::fail(sub_kind k, const std::string& name, std::string_view error_frame) {
    auto& per_kind = entries_[static_cast<int>(k)];
    auto it = per_kind.find(name);
    if (it == per_kind.end())
        return;
    auto subs = std::move(it->second.subscribers);
    per_kind.erase(it);
    send_shadow(k_unsub_verb[static_cast<int>(k)], name);  // its twin, if shadowing
    if (shadowing_)
        report(shadow_.unsubscribe(name, std::chrono::steady_clock::now()));
    for (auto& weak : subs)
        if (auto s = weak.lock())
            s->subscription_failed(static_cast<std::uint8_t>(k), name, error_frame);
}

void pubsub_hub::deliver(sub_kind k, const std::string& name, std::string_view frame) {
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
}

void pubsub_hub::confirm(sub_kind k, const std::string& name) {
    for (auto u = unconfirmed_.begin(); u != unconfirmed_.end(); ++u)
        if (u->first == k && u->second == name) {
            unconfirmed_.erase(u);
            break;
        }
    auto& per_kind = entries_[static_cast<int>(k)];
    auto it = per_kind.find(name);
    if (it == per_kind.end())
        return;
    it->second.confirmed = true;
    auto subs = it->second.subscribers;
    for (auto& weak : subs)
        if (auto s = weak.lock())
            s->subscription_confirmed(static_cast<std::uint8_t>(k), name);
}

void pubsub_hub::on_push(std::string_view frame) {
    if (is_error_frame(frame)) {
        // The server refused a subscription (NOPERM, unknown command ...).
        fail_oldest(frame);
        return;
    }
    const auto decoded = decode_push(frame);
    if (!decoded)
        return;
    const auto& v = *decoded;
    const auto& kind = v[0].str();
    const auto now = std::chrono::steady_clock::now();
    if (kind == "message") {
        deliver(sub_kind::channel, v[1].str(), frame);
        if (shadowing_ && twin_active(v[1].str()))
            shadow_.record_primary({}, v[1].str(), v[2].str(), now);
    } else if (kind == "pmessage" && v.size() >= 4) {
        deliver(sub_kind::pattern, v[1].str(), frame);
        if (shadowing_ && twin_active(v[1].str()))
            shadow_.record_primary(v[1].str(), v[2].str(), v[3].str(), now);
    } else if (kind == "smessage") {
        deliver(sub_kind::shard, v[1].str(), frame);
        if (shadowing_ && twin_active(v[1].str()))
            shadow_.record_primary({}, v[1].str(), v[2].str(), now);
    } else if (kind == "subscribe") {
        confirm(sub_kind::channel, v[1].str());
    } else if (kind == "psubscribe") {
        confirm(sub_kind::pattern, v[1].str());
    } else if (kind == "ssubscribe") {
        confirm(sub_kind::shard, v[1].str());
    }
}

void pubsub_hub::on_node_push(const std::string& node, std::string_view frame) {
    auto l = links_.find(node);
    if (l == links_.end())
        return;
    auto& sent = l->second.sent;
    // The entry of a shard channel still placed on this node (not re-placed since).
    auto placed_here = [&](const std::string& name) {
        auto& per_kind = entries_[static_cast<int>(sub_kind::shard)];
        auto it = per_kind.find(name);
        return it != per_kind.end() && it->second.node == node;
    };
    if (is_error_frame(frame)) {
        if (sent.empty())
            return;
        auto [subscribing, name] = std::move(sent.front());
        sent.pop_front();
        if (!subscribing || !placed_here(name))
            return;
        // -MOVED/-ASK: the slot left this node since the map was read.
        if (frame.starts_with("-MOVED ") || frame.starts_with("-ASK "))
            replace_shard(name);
        else
            fail(sub_kind::shard, name, frame);
        return;
    }
    const auto decoded = decode_push(frame);
    if (!decoded || !(*decoded)[1].is_string())
        return;
    const auto& v = *decoded;
    const auto& kind = v[0].str();
    const auto& name = v[1].str();
    auto answered = [&](bool subscribing) {
        for (auto it = sent.begin(); it != sent.end(); ++it)
            if (it->first == subscribing && it->second == name) {
                sent.erase(it);
                return true;
            }
        return false;
    };
    if (kind == "smessage") {
        deliver(sub_kind::shard, name, frame);
        if (shadowing_ && twin_active(name))
            shadow_.record_primary({}, name, v[2].str(), std::chrono::steady_clock::now());
    } else if (kind == "ssubscribe") {
        answered(true);
        if (placed_here(name))
            confirm(sub_kind::shard, name);
    } else if (kind == "sunsubscribe") {
        // Not the reply to a SUNSUBSCRIBE: the server dropped the channel because its slot
        // moved away (resharding, failover). Subscribe it where the slot is now.
        if (!answered(false) && placed_here(name))
            replace_shard(name);
    }
}

}  // namespace respite::proxy::server
