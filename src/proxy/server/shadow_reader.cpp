// The shadow reader (see shadow_reader.hpp).
#include "shadow_reader.hpp"

#include <asio/steady_timer.hpp>

#include <respite/obs/log.hpp>
#include <respite/proxy/replayer.hpp>

namespace respite::proxy::server {

struct shadow_reader::job {
    side serving;
    side other;
    // Mode switches counted when the job began: a job that straddles a switch compares a side
    // that no longer follows (or serves) with the one that does, and watches the wrong follower.
    std::uint64_t switches = 0;
    std::vector<std::string> args;
    std::string key;
    shadow_rule rule;
    resp::value served;
    resp::value served_again;
    // The follower's write generation of the key when the re-check began (see recheck()).
    std::uint64_t write_generation = 0;
    // Further keys the read names (MGET, SUNION ...): the re-check waits for each of them too.
    std::vector<std::string> more_keys;
    done_fn done;
};

namespace {
std::uint64_t switches_now(const shared_state& st) {
    return st.mode_switches != nullptr ? st.mode_switches->value() : 0;
}
client::request request_of(const std::vector<std::string>& args) {
    client::request r;
    r.push_args(args);
    return r;
}
// A read of the other side that answers within `timeout` (--shadow-timeout) or ends with
// client::error::timeout: whichever comes first calls `then`, once. The timer runs on `ioc`
// (the control thread) and is not cancelled from the backend's thread; it just finds the call
// done.
void timed_read(asio::io_context* ioc, const std::shared_ptr<backend>& b, client::request req,
                std::chrono::milliseconds timeout,
                std::move_only_function<void(client::result<replies_t>)> then) {
    struct call {
        std::atomic<bool> done{false};
        std::move_only_function<void(client::result<replies_t>)> then;
    };
    auto c = std::make_shared<call>();
    c->then = std::move(then);
    if (ioc != nullptr && timeout.count() > 0) {
        auto timer = std::make_shared<asio::steady_timer>(*ioc, timeout);
        timer->async_wait([c, timer](std::error_code) {
            if (!c->done.exchange(true))
                c->then(std::unexpected(client::make_error_code(client::error::timeout)));
        });
    }
    b->exec(std::move(req), [c](client::result<replies_t> r) {
        if (!c->done.exchange(true))
            c->then(std::move(r));
    });
}

// The write generation of the job's keys on the serving side's follower (0 without one or
// without a key): moves when a write to any of them begins.
std::uint64_t write_generation_of(replayer* r, const std::string& key,
                                  const std::vector<std::string>& more_keys) {
    if (r == nullptr || key.empty())
        return 0;
    std::uint64_t g = r->write_generation(key);
    for (const auto& k : more_keys)
        g += r->write_generation(k);
    return g;
}
}  // namespace

void when_settled(asio::io_context* ioc, replayer* r, std::string key,
                  std::move_only_function<void(bool)> fn,
                  std::chrono::steady_clock::time_point deadline) {
    if (r == nullptr || key.empty()) {
        fn(true);
        return;
    }
    if (!r->writes_in_flight(key) && !r->awaiting_repair(key)) {
        auto shared = std::make_shared<std::move_only_function<void(bool)>>(std::move(fn));
        r->when_applied(key, [ioc, r, key, shared, deadline]() mutable {
            // What was applied meanwhile may have made the key dirty (a replayed write the
            // follower refused, a write derived from a dirty key): then it is not settled until
            // its copy is applied too.
            if (!r->awaiting_repair(key)) {
                (*shared)(true);
                return;
            }
            when_settled(
                ioc, r, std::move(key), [shared](bool settled) { (*shared)(settled); }, deadline);
        });
        return;
    }
    if (ioc == nullptr || std::chrono::steady_clock::now() >= deadline) {
        fn(false);
        return;
    }
    auto timer = std::make_shared<asio::steady_timer>(*ioc, std::chrono::milliseconds(1));
    timer->async_wait([ioc, r, key = std::move(key), fn = std::move(fn), deadline,
                       timer](std::error_code ec) mutable {
        if (ec) {
            fn(false);
            return;
        }
        when_settled(ioc, r, std::move(key), std::move(fn), deadline);
    });
}

namespace {
// when_settled for every key of a job, one after the other.
void when_all_settled(asio::io_context* ioc, replayer* r,
                      std::shared_ptr<const std::vector<std::string>> keys, std::size_t i,
                      std::move_only_function<void(bool)> fn,
                      std::chrono::steady_clock::time_point deadline) {
    if (i >= keys->size()) {
        fn(true);
        return;
    }
    auto key = (*keys)[i];
    when_settled(
        ioc, r, std::move(key),
        [ioc, r, keys, i, fn = std::move(fn), deadline](bool settled) mutable {
            if (!settled) {
                fn(false);
                return;
            }
            when_all_settled(ioc, r, std::move(keys), i + 1, std::move(fn), deadline);
        },
        deadline);
}
}  // namespace

void shadow_reader::settle(const std::shared_ptr<job>& j, std::move_only_function<void(bool)> fn) {
    auto keys = std::make_shared<std::vector<std::string>>();
    keys->push_back(j->key);
    keys->insert(keys->end(), j->more_keys.begin(), j->more_keys.end());
    when_all_settled(st_.control, st_.follower_of(j->serving), std::move(keys), 0, std::move(fn),
                     std::chrono::steady_clock::now() + std::chrono::seconds(2));
}

shadow_reader::shadow_reader(shared_state& st) : st_(st) {
    const char* names[6] = {"match", "match_after_recheck", "divergence",
                            "error", "skipped_busy",        "skipped_unstable"};
    for (int i = 0; i < 6; ++i)
        results_[i] = &st_.metrics->get_counter("respite_proxy_shadow_reads_total",
                                                "Shadow reads by outcome", {{"result", names[i]}});
}

bool shadow_reader::wanted(const command_class& c, std::span<const std::string_view> args) {
    if (!c.shadowable || stopped_.load(std::memory_order_relaxed))
        return false;
    const double percent = st_.shadow_percent.load(std::memory_order_relaxed);
    if (percent <= 0)
        return false;
    thread_local std::vector<std::size_t> positions;
    positions.clear();
    if (c.spec != nullptr)
        st_.table.key_positions(*c.spec, args, positions);
    const bool sample =
        positions.empty() ? keyless_.next(percent) : sampled(args[positions.front()], percent);
    if (!sample)
        return false;
    if (in_flight_.load(std::memory_order_relaxed) >= st_.cfg.shadow_max_inflight) {
        skipped_busy_.fetch_add(1, std::memory_order_relaxed);
        results_[4]->inc();
        return false;
    }
    return rule_for(args, st_.table).shadowed();
}

void shadow_reader::compare(side serving, std::vector<std::string> args, resp::value served,
                            done_fn done) {
    const std::vector<std::string_view> views(args.begin(), args.end());
    const auto rule = rule_for(views, st_.table);
    compare(serving, std::move(args), std::move(served), rule, std::move(done));
}

void shadow_reader::compare(side serving, std::vector<std::string> args, resp::value served,
                            const shadow_rule& rule, done_fn done) {
    const side other = other_side(serving);
    auto b = st_.backends[static_cast<int>(other)];
    if (!b) {
        if (done)
            done(shadow_outcome::error);
        return;
    }
    auto j = std::make_shared<job>();
    j->serving = serving;
    j->switches = switches_now(st_);
    j->other = other;
    j->args = std::move(args);
    std::vector<std::string_view> views(j->args.begin(), j->args.end());
    j->rule = rule;
    std::vector<std::size_t> positions;
    if (auto spec = st_.table.lookup(views); spec != nullptr)
        st_.table.key_positions(*spec, views, positions);
    if (!positions.empty())
        j->key = j->args[positions.front()];
    for (std::size_t i = 1; i < positions.size(); ++i)
        if (j->args[positions[i]] != j->key)
            j->more_keys.push_back(j->args[positions[i]]);
    j->served = std::move(served);
    j->done = std::move(done);
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    compared_.fetch_add(1, std::memory_order_relaxed);
    timed_read(st_.control, b, request_of(j->args), st_.cfg.shadow_timeout,
               [self = shared_from_this(), j](client::result<replies_t> r) {
                   self->first_compare(j, std::move(r));
               });
}

void shadow_reader::first_compare(const std::shared_ptr<job>& j, client::result<replies_t> other) {
    if (!other || other->empty()) {
        results_[3]->inc();
        if (auto k = compare_transport_failure(j->rule))
            report(*j, *k, &j->served, nullptr);
        finish(*j, shadow_outcome::error);
        return;
    }
    compare_options opts;
    opts.ttl_tolerance_ms = st_.cfg.ttl_tolerance.count();
    if (!proxy::compare(j->rule, j->served, other->front(), opts)) {
        matched_.fetch_add(1, std::memory_order_relaxed);
        results_[0]->inc();
        finish(*j, shadow_outcome::match);
        return;
    }
    // A write may be on its way to the other side: look again once the follower applied what
    // was queued for this key, before calling it a divergence.
    settle(j, [self = shared_from_this(), j](bool settled) {
        if (!settled) {
            self->unstable_.fetch_add(1, std::memory_order_relaxed);
            self->results_[5]->inc();
            self->finish(*j, shadow_outcome::unstable);
            return;
        }
        self->recheck(j);
    });
}

void shadow_reader::recheck(const std::shared_ptr<job>& j) {
    // Report only what is stable: the serving side must read the same before and after the
    // follower caught up with the key, and no write to the key may begin in between; a key
    // still being written is skipped, not reported. Reading the same twice is not enough: a
    // write and its undo (APPEND then DEL) may run in between, and the other side read while
    // the follower held only the first shows a value the serving side had for a moment.
    auto self = shared_from_this();
    j->write_generation = write_generation_of(st_.follower_of(j->serving), j->key, j->more_keys);
    auto served_b = st_.backends[static_cast<int>(j->serving)];
    served_b->exec(request_of(j->args), [self, j](client::result<replies_t> again) {
        if (!again || again->empty()) {
            self->results_[3]->inc();
            self->finish(*j, shadow_outcome::error);
            return;
        }
        compare_options opts;
        opts.ttl_tolerance_ms = self->st_.cfg.ttl_tolerance.count();
        if (proxy::compare(j->rule, j->served, again->front(), opts)) {
            self->unstable_.fetch_add(1, std::memory_order_relaxed);
            self->results_[5]->inc();
            self->finish(*j, shadow_outcome::unstable);
            return;
        }
        j->served_again = std::move(again->front());
        auto then_other = [self, j] {
            auto other_b = self->st_.backends[static_cast<int>(j->other)];
            timed_read(
                self->st_.control, other_b, request_of(j->args), self->st_.cfg.shadow_timeout,
                [self, j](client::result<replies_t> o) {
                    if (!o || o->empty()) {
                        self->results_[3]->inc();
                        if (auto k = compare_transport_failure(j->rule))
                            self->report(*j, *k, &j->served_again, nullptr);
                        self->finish(*j, shadow_outcome::error);
                        return;
                    }
                    auto other_value = std::make_shared<resp::value>(std::move(o->front()));
                    auto served_b = self->st_.backends[static_cast<int>(j->serving)];
                    served_b->exec(request_of(j->args), [self, j, other_value](
                                                            client::result<replies_t> third) {
                        compare_options opts;
                        opts.ttl_tolerance_ms = self->st_.cfg.ttl_tolerance.count();
                        const bool written =
                            write_generation_of(self->st_.follower_of(j->serving), j->key,
                                                j->more_keys) != j->write_generation ||
                            switches_now(self->st_) != j->switches;
                        if (!third || third->empty() || written ||
                            proxy::compare(j->rule, j->served_again, third->front(), opts)) {
                            self->unstable_.fetch_add(1, std::memory_order_relaxed);
                            self->results_[5]->inc();
                            self->finish(*j, shadow_outcome::unstable);
                            return;
                        }
                        const auto k = proxy::compare(j->rule, j->served_again, *other_value, opts);
                        if (k) {
                            self->results_[2]->inc();
                            self->report(*j, *k, &j->served_again, other_value.get());
                        } else {
                            self->cleared_on_recheck_.fetch_add(1, std::memory_order_relaxed);
                            self->results_[1]->inc();
                        }
                        self->finish(*j, k ? shadow_outcome::divergence
                                           : shadow_outcome::match_after_recheck);
                    });
                });
        };
        self->settle(j, [self, j, then_other](bool settled) mutable {
            if (!settled) {
                self->unstable_.fetch_add(1, std::memory_order_relaxed);
                self->results_[5]->inc();
                self->finish(*j, shadow_outcome::unstable);
                return;
            }
            then_other();
        });
    });
}

void shadow_reader::report(const job& j, divergence_kind k, const resp::value* served,
                           const resp::value* other) {
    if (!st_.divergences)
        return;
    reported_.fetch_add(1, std::memory_order_relaxed);
    divergence d;
    d.kind = k;
    d.command = command_label(j.args.empty() ? std::string_view{} : j.args[0]);
    d.key = display(j.key);
    set_values(d, j.serving, served ? display(*served) : std::string("(none)"),
               other ? display(*other) : std::string("(error or timeout)"));
    d.at = std::chrono::system_clock::now();
    st_.divergences->report(d);
}

void shadow_reader::finish(job& j, shadow_outcome o) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (j.done) {
        auto done = std::move(j.done);
        done(o);
    }
}

std::string shadow_reader::info() const {
    std::string s;
    auto line = [&](std::string_view k, std::uint64_t v) {
        s.append(k);
        s += ':';
        s += std::to_string(v);
        s += "\r\n";
    };
    line("shadow_compared", compared_.load());
    line("shadow_matched", matched_.load());
    line("shadow_cleared_on_recheck", cleared_on_recheck_.load());
    line("shadow_reported", reported_.load());
    line("shadow_skipped_busy", skipped_busy_.load());
    line("shadow_skipped_unstable", unstable_.load());
    line("shadow_in_flight", in_flight_.load());
    return s;
}

}  // namespace respite::proxy::server

#include <respite/proxy/http.hpp>

namespace respite::proxy::server {

std::shared_ptr<divergence_sink> make_divergence_sink(shared_state& st) {
    if (st.cfg.sentry_dsn.empty() || st.control == nullptr)
        return nullptr;
    auto dsn = parse_sentry_dsn(st.cfg.sentry_dsn);
    if (!dsn) {
        obs::log().error("proxy sentry_dsn_invalid reason=\"{}\"", dsn.error());
        return nullptr;
    }
    auto holder = std::make_shared<std::weak_ptr<sentry_sink>>();
    auto* ioc = st.control;
    auto transport = [ioc, holder](const std::string& url, const sentry_sink::header_list& headers,
                                   std::string body) {
        http_post_options o;
        o.headers = headers;
        http_post(*ioc, url, std::move(body), std::move(o),
                  [holder](std::error_code ec, int status) {
                      if (ec || status >= 300)
                          obs::log().warn("proxy sentry_send_failed status={} error=\"{}\"", status,
                                          ec ? ec.message() : std::string());
                      if (auto s = holder->lock())
                          s->complete();
                  });
    };
    sentry_options so;
    so.environment = st.cfg.sentry_environment;
    so.sample_rate = st.cfg.sentry_sample_rate;
    auto sink = std::make_shared<sentry_sink>(*dsn, transport, so);
    *holder = sink;
    return sink;
}

}  // namespace respite::proxy::server
