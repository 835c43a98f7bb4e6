// Registry behaviour: exact Prometheus text, escaping, identity of series, and misuse errors.
#include <array>
#include <limits>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include <respite/obs/metrics.hpp>

namespace respite::obs {
namespace {

TEST(registry, small_registry_renders_exactly) {
    registry r;
    r.get_counter("respite_client_commands_total", "Commands sent.", {{"command", "get"}}).inc(3);
    r.get_counter("respite_client_commands_total", "Ignored: first help wins.",
                  {{"command", "set"}})
        .inc();
    r.get_gauge("respite_pool_connections", "Open connections.").set(4);
    r.get_gauge("a_ratio", "Sorted first.", {{"shard", "2"}, {"node", "a"}}).set(-0.25);
    r.get_gauge("b_unbounded", "").set(std::numeric_limits<double>::infinity());

    EXPECT_EQ(r.prometheus_text(),
              "# HELP a_ratio Sorted first.\n"
              "# TYPE a_ratio gauge\n"
              "a_ratio{node=\"a\",shard=\"2\"} -0.25\n"
              "# TYPE b_unbounded gauge\n"
              "b_unbounded +Inf\n"
              "# HELP respite_client_commands_total Commands sent.\n"
              "# TYPE respite_client_commands_total counter\n"
              "respite_client_commands_total{command=\"get\"} 3\n"
              "respite_client_commands_total{command=\"set\"} 1\n"
              "# HELP respite_pool_connections Open connections.\n"
              "# TYPE respite_pool_connections gauge\n"
              "respite_pool_connections 4\n");
}

TEST(registry, empty_registry_renders_nothing) {
    registry r;
    EXPECT_EQ(r.prometheus_text(), "");
}

TEST(registry, histogram_renders_cumulative_buckets_in_seconds) {
    registry r;
    auto& h = r.get_histogram("respite_latency_seconds", "Round trip.", {{"op", "get"}});
    h.observe_us(0);
    h.observe_us(1);
    h.observe_us(3);
    h.observe_us(1'500);
    h.observe_us(90'000'000);  // beyond the last finite bound

    constexpr std::array<const char*, 39> le = {
        "0.000001", "0.000002", "0.000003", "0.000005", "0.000007", "0.00001", "0.00002", "0.00003",
        "0.00005",  "0.00007",  "0.0001",   "0.0002",   "0.0003",   "0.0005",  "0.0007",  "0.001",
        "0.002",    "0.003",    "0.005",    "0.007",    "0.01",     "0.02",    "0.03",    "0.05",
        "0.07",     "0.1",      "0.2",      "0.3",      "0.5",      "0.7",     "1",       "2",
        "3",        "5",        "7",        "10",       "20",       "30",      "60"};
    std::string want =
        "# HELP respite_latency_seconds Round trip.\n"
        "# TYPE respite_latency_seconds histogram\n";
    for (std::size_t i = 0; i < le.size(); ++i) {
        const int cumulative = i < 2 ? 2 : i < 16 ? 3 : 4;
        want += "respite_latency_seconds_bucket{op=\"get\",le=\"" + std::string(le[i]) + "\"} " +
                std::to_string(cumulative) + "\n";
    }
    want +=
        "respite_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"
        "respite_latency_seconds_sum{op=\"get\"} 90.001504\n"
        "respite_latency_seconds_count{op=\"get\"} 5\n";
    EXPECT_EQ(r.prometheus_text(), want);
}

TEST(registry, histogram_without_labels_has_only_le) {
    registry r;
    r.get_histogram("h", "H.").observe_us(2'000'000);
    const std::string text = r.prometheus_text();
    EXPECT_NE(text.find("h_bucket{le=\"0.000001\"} 0\n"), std::string::npos);
    EXPECT_NE(text.find("h_bucket{le=\"2\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("h_bucket{le=\"+Inf\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("\nh_sum 2\nh_count 1\n"), std::string::npos);
}

TEST(registry, label_values_and_help_are_escaped) {
    registry r;
    r.get_counter("escaped_total", "Back\\slash, \"quotes\" and\nnewline.",
                  {{"path", "C:\\dir \"x\"\nnext"}})
        .inc();
    EXPECT_EQ(r.prometheus_text(),
              "# HELP escaped_total Back\\\\slash, \"quotes\" and\\nnewline.\n"
              "# TYPE escaped_total counter\n"
              "escaped_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST(registry, same_name_and_labels_return_the_same_metric) {
    registry r;
    counter& a = r.get_counter("c_total", "C.", {{"x", "1"}, {"y", "2"}});
    counter& b = r.get_counter("c_total", "C.", {{"y", "2"}, {"x", "1"}});
    counter& other = r.get_counter("c_total", "C.", {{"x", "2"}, {"y", "2"}});
    EXPECT_EQ(&a, &b);
    EXPECT_NE(&a, &other);
    // References survive later registrations.
    for (int i = 0; i < 1000; ++i) {
        r.get_counter("c_total", "C.", {{"x", std::to_string(i + 10)}});
        r.get_gauge("g_" + std::to_string(i), "G.");
    }
    EXPECT_EQ(&r.get_counter("c_total", "C.", {{"x", "1"}, {"y", "2"}}), &a);
    a.inc(7);
    EXPECT_EQ(b.value(), 7U);
}

TEST(registry, global_is_one_instance) {
    EXPECT_EQ(&registry::global(), &registry::global());
}

TEST(registry, asking_for_another_kind_throws_logic_error) {
    registry r;
    r.get_counter("m", "M.");
    EXPECT_THROW(r.get_gauge("m", "M."), std::logic_error);
    EXPECT_THROW(r.get_histogram("m", "M."), std::logic_error);
    EXPECT_THROW(r.get_gauge("m", "M.", {{"a", "b"}}), std::logic_error);
    EXPECT_NO_THROW(r.get_counter("m", "M.", {{"a", "b"}}));
}

TEST(registry, histogram_series_names_cannot_be_taken_by_other_families) {
    registry r;
    r.get_histogram("lat", "L.");
    EXPECT_THROW(r.get_counter("lat_count", "C."), std::logic_error);
    EXPECT_THROW(r.get_gauge("lat_sum", "S."), std::logic_error);
    EXPECT_THROW(r.get_counter("lat_bucket", "B."), std::logic_error);
    r.get_counter("ops_count", "C.");
    EXPECT_THROW(r.get_histogram("ops", "O."), std::logic_error);
    EXPECT_EQ(r.prometheus_text().find("# TYPE lat_count"), std::string::npos);
}

TEST(registry, invalid_metric_names_throw_invalid_argument) {
    registry r;
    for (const char* bad : {"", "1st", "has-dash", "has space", "dot.ted", "\xc3\xa9t\xc3\xa9"}) {
        EXPECT_THROW(r.get_counter(bad, "x"), std::invalid_argument) << bad;
        EXPECT_THROW(r.get_gauge(bad, "x"), std::invalid_argument) << bad;
        EXPECT_THROW(r.get_histogram(bad, "x"), std::invalid_argument) << bad;
    }
    EXPECT_NO_THROW(r.get_counter("ok:name_1", "x"));
    EXPECT_NO_THROW(r.get_counter("_under", "x"));
    EXPECT_NO_THROW(r.get_counter(":colon", "x"));
    EXPECT_EQ(r.prometheus_text().find("1st"), std::string::npos);
}

TEST(registry, invalid_label_names_throw_invalid_argument) {
    registry r;
    for (const char* bad : {"", "1a", "a:b", "a-b", "__reserved"}) {
        EXPECT_THROW(r.get_counter("c", "x", {{bad, "v"}}), std::invalid_argument) << bad;
    }
    EXPECT_THROW(r.get_counter("c", "x", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
    EXPECT_THROW(r.get_histogram("h", "x", {{"le", "1"}}), std::invalid_argument);
    EXPECT_NO_THROW(r.get_counter("c", "x", {{"le", "fine on a counter"}}));
}

}  // namespace
}  // namespace respite::obs
