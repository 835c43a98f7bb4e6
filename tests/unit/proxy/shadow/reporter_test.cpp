// divergence_reporter: counters, bounded labels, rate-limited logs, recent ring, cooled sink.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <respite/obs/log.hpp>
#include <respite/proxy/divergence.hpp>

namespace respite::proxy {
namespace {

// Options with a few fields set (designated initialisers that skip fields warn on GCC 12).
template <class T, class F>
T options(F set) {
    T o;
    set(o);
    return o;
}

using namespace std::chrono_literals;
using tp = std::chrono::steady_clock::time_point;

constexpr tp t0 = tp{} + 1h;

struct fake_sink : divergence_sink {
    void send(const divergence& d) override {
        const std::scoped_lock lock(mu);
        got.push_back(d);
    }
    std::mutex mu;
    std::vector<divergence> got;
};

// Captures the respite logger's lines for one test, at debug level.
class captured_log {
  public:
    captured_log()
        : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)),
          level_(obs::log().level()) {
        sink_->set_pattern("%l %v");
        obs::log().sinks().push_back(sink_);
        obs::log().set_level(spdlog::level::debug);
    }
    ~captured_log() {
        auto& sinks = obs::log().sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
        obs::log().set_level(level_);
    }
    captured_log(const captured_log&) = delete;
    captured_log& operator=(const captured_log&) = delete;

    [[nodiscard]] std::vector<std::string> lines() const {
        std::vector<std::string> out;
        std::istringstream in(out_.str());
        for (std::string line; std::getline(in, line);) {
            out.push_back(line);
        }
        return out;
    }

  private:
    std::ostringstream out_;
    std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
    spdlog::level::level_enum level_;
};

divergence make(divergence_kind kind, std::string command = "get", std::string key = "k") {
    divergence d;
    d.kind = kind;
    d.command = std::move(command);
    d.key = std::move(key);
    d.primary = "\"a\"";
    d.secondary = "\"b\"";
    return d;
}

TEST(shadow_reporter, counts_by_kind_and_exports_the_counter) {
    obs::registry metrics;
    divergence_reporter r({}, nullptr, metrics);
    r.report(make(divergence_kind::data_mismatch), t0);
    r.report(make(divergence_kind::data_mismatch), t0);
    r.report(make(divergence_kind::extra_data, "smembers"), t0);
    EXPECT_EQ(r.count(divergence_kind::data_mismatch), 2U);
    EXPECT_EQ(r.counts()[static_cast<std::size_t>(divergence_kind::extra_data)], 1U);
    EXPECT_EQ(r.count(divergence_kind::migration_gap), 0U);
    const std::string text = metrics.prometheus_text();
    EXPECT_NE(
        text.find("respite_proxy_divergences_total{command=\"get\",kind=\"data_mismatch\"} 2"),
        std::string::npos)
        << text;
    EXPECT_NE(text.find("command=\"smembers\",kind=\"extra_data\"} 1"), std::string::npos);
}

TEST(shadow_reporter, command_label_is_bounded) {
    obs::registry metrics;
    divergence_reporter r({}, nullptr, metrics);
    r.report(make(divergence_kind::data_mismatch, "GET"), t0);
    r.report(make(divergence_kind::data_mismatch, "x-client-made-this-up"), t0);
    const std::string text = metrics.prometheus_text();
    EXPECT_NE(text.find("command=\"get\""), std::string::npos);
    EXPECT_NE(text.find("command=\"other\""), std::string::npos);
    EXPECT_EQ(text.find("made-this-up"), std::string::npos);
    EXPECT_EQ(r.recent().back().command, "other");
    EXPECT_EQ(command_label("OBJECT|encoding"), "object");
    EXPECT_EQ(command_label(""), "other");
}

TEST(shadow_reporter, recent_ring_keeps_the_newest) {
    obs::registry metrics;
    divergence_reporter r(
        options<reporter_options>([&](reporter_options& o) { o.recent_capacity = 3; }), nullptr,
        metrics);
    for (int i = 0; i < 5; ++i) {
        r.report(make(divergence_kind::data_mismatch, "get", "k" + std::to_string(i)), t0);
    }
    const auto recent = r.recent();
    ASSERT_EQ(recent.size(), 3U);
    EXPECT_EQ(recent.front().key, "k2");
    EXPECT_EQ(recent.back().key, "k4");
}

TEST(shadow_reporter, long_display_fields_are_truncated) {
    obs::registry metrics;
    divergence_reporter r({}, nullptr, metrics);
    auto d = make(divergence_kind::data_mismatch);
    d.primary = std::string(10'000, 'x');
    r.report(std::move(d), t0);
    EXPECT_EQ(r.recent().back().primary.size(), divergence_display_limit);
    EXPECT_TRUE(r.recent().back().primary.ends_with("..."));
}

TEST(shadow_reporter, log_lines_are_rate_limited_and_the_suppressed_count_is_logged_later) {
    captured_log log;
    obs::registry metrics;
    divergence_reporter r(
        options<reporter_options>([&](reporter_options& o) { o.log_lines_per_second = 3; }),
        nullptr, metrics);
    for (int i = 0; i < 10; ++i) {
        r.report(make(divergence_kind::data_mismatch), t0 + std::chrono::milliseconds(i));
    }
    EXPECT_EQ(r.logged_lines(), 3U);
    EXPECT_EQ(r.suppressed_lines(), 7U);
    EXPECT_EQ(log.lines().size(), 3U);

    r.report(make(divergence_kind::data_mismatch), t0 + 1500ms);
    const auto lines = log.lines();
    ASSERT_EQ(lines.size(), 5U);
    EXPECT_NE(lines[3].find("shadow_divergence_logs_suppressed count=7"), std::string::npos)
        << lines[3];
    EXPECT_NE(lines[4].find("shadow_divergence kind=data_mismatch command=\"get\" key=\"k\""),
              std::string::npos)
        << lines[4];
    EXPECT_TRUE(lines[4].starts_with("warning")) << lines[4];
}

TEST(shadow_reporter, migration_gaps_are_logged_at_debug_and_sampled) {
    captured_log log;
    obs::registry metrics;
    divergence_reporter r(options<reporter_options>([&](reporter_options& o) {
                              o.log_lines_per_second = 1000;
                              o.gap_log_every = 100;
                          }),
                          nullptr, metrics);
    for (int i = 0; i < 250; ++i) {
        r.report(make(divergence_kind::migration_gap), t0);
    }
    const auto lines = log.lines();
    ASSERT_EQ(lines.size(), 3U);  // the 1st, 101st and 201st
    EXPECT_TRUE(lines[0].starts_with("debug")) << lines[0];
    EXPECT_EQ(r.count(divergence_kind::migration_gap), 250U);
    EXPECT_EQ(r.suppressed_lines(), 0U);
}

TEST(shadow_reporter, lines_below_the_log_level_use_no_budget) {
    captured_log log;
    obs::log().set_level(spdlog::level::warn);
    obs::registry metrics;
    divergence_reporter r(options<reporter_options>([&](reporter_options& o) {
                              o.log_lines_per_second = 1;
                              o.gap_log_every = 1;
                          }),
                          nullptr, metrics);
    r.report(make(divergence_kind::migration_gap), t0);
    r.report(make(divergence_kind::data_mismatch), t0);
    EXPECT_EQ(log.lines().size(), 1U);
    EXPECT_EQ(r.suppressed_lines(), 0U);
}

TEST(shadow_reporter, sink_gets_each_fingerprint_once_per_cooldown) {
    obs::registry metrics;
    auto sink = std::make_shared<fake_sink>();
    divergence_reporter r(
        options<reporter_options>([&](reporter_options& o) { o.sink_cooldown = 60s; }), sink,
        metrics);
    r.report(make(divergence_kind::data_mismatch, "get"), t0);
    r.report(make(divergence_kind::data_mismatch, "get", "other-key"), t0 + 1s);
    r.report(make(divergence_kind::data_mismatch, "hget"), t0 + 2s);
    r.report(make(divergence_kind::extra_data, "get"), t0 + 3s);
    r.report(make(divergence_kind::data_mismatch, "get"), t0 + 61s);
    ASSERT_EQ(sink->got.size(), 4U);
    EXPECT_EQ(sink->got[1].command, "hget");
    EXPECT_EQ(r.sink_skipped(), 1U);
    EXPECT_NE(metrics.prometheus_text().find("respite_proxy_divergence_sink_skipped_total 1"),
              std::string::npos);
}

TEST(shadow_reporter, migration_gaps_stay_out_of_the_sink_unless_asked) {
    obs::registry metrics;
    auto sink = std::make_shared<fake_sink>();
    divergence_reporter quiet({}, sink, metrics);
    quiet.report(make(divergence_kind::migration_gap), t0);
    EXPECT_TRUE(sink->got.empty());
    divergence_reporter loud(
        options<reporter_options>([&](reporter_options& o) { o.sink_migration_gaps = true; }), sink,
        metrics);
    loud.report(make(divergence_kind::migration_gap), t0);
    EXPECT_EQ(sink->got.size(), 1U);
}

TEST(shadow_reporter, concurrent_reports_are_all_counted) {
    obs::registry metrics;
    auto sink = std::make_shared<fake_sink>();
    divergence_reporter r(options<reporter_options>([&](reporter_options& o) {
                              o.recent_capacity = 16;
                              o.log_lines_per_second = 0;
                          }),
                          sink, metrics);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&r] {
            for (int i = 0; i < 500; ++i) {
                r.report(make(divergence_kind::data_mismatch));
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    EXPECT_EQ(r.count(divergence_kind::data_mismatch), 2000U);
    EXPECT_EQ(r.recent().size(), 16U);
    EXPECT_EQ(sink->got.size(), 1U);  // one fingerprint, one cooldown period
}

TEST(shadow_reporter, kind_names) {
    EXPECT_EQ(name(divergence_kind::migration_gap), "migration_gap");
    EXPECT_EQ(name(divergence_kind::data_mismatch), "data_mismatch");
    EXPECT_EQ(name(divergence_kind::extra_data), "extra_data");
    EXPECT_EQ(name(divergence_kind::secondary_error), "secondary_error");
}

TEST(shadow_reporter, display_is_one_ascii_line) {
    using resp::value;
    const value v = value::array({value::bulk_string("a\nb"), value::integer(3), value::null(),
                                  value::map({value::bulk_string("f"), value::double_(1.5)}),
                                  value::set({value::simple_string("\xff")})});
    EXPECT_EQ(display(v), R"(["a\nb", 3, (nil), {"f": 1.5}, ~[\xff]])");
    EXPECT_EQ(display(value::simple_error("ERR x")), "(error) ERR x");
}

TEST(shadow_reporter, display_truncates_huge_replies_cheaply) {
    std::vector<resp::value> many(100'000, resp::value::bulk_string("member"));
    const std::string s = display(resp::value::array(std::move(many)), 64);
    EXPECT_EQ(s.size(), 64U);
    EXPECT_TRUE(s.ends_with("..."));
    EXPECT_EQ(display(std::string_view("abc"), 2), "..");
}

}  // namespace
}  // namespace respite::proxy
