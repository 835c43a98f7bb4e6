// sentry_sink: DSN parsing, the request handed to the transport, the event JSON and the bound.
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

struct request {
    std::string url;
    sentry_sink::header_list headers;
    std::string body;
};

struct fake_transport {
    std::vector<request>* out;
    void operator()(const std::string& url, const sentry_sink::header_list& headers,
                    std::string body) const {
        out->push_back({url, headers, std::move(body)});
    }
};

std::string header(const request& r, std::string_view name) {
    for (const auto& [k, v] : r.headers) {
        if (k == name) {
            return v;
        }
    }
    return {};
}

divergence sample() {
    divergence d;
    d.kind = divergence_kind::data_mismatch;
    d.command = "hgetall";
    d.key = "user:42";
    d.primary = "{\"a\": \"1\"}";
    d.secondary = "{\"a\": \"2\"}";
    d.at = std::chrono::system_clock::time_point{} + std::chrono::seconds(1'700'000'000) +
           std::chrono::milliseconds(250);
    return d;
}

TEST(sentry_dsn, parses_the_common_form) {
    const auto dsn = parse_sentry_dsn("https://abc123@o1.ingest.sentry.io/4505");
    ASSERT_TRUE(dsn.has_value()) << dsn.error();
    EXPECT_EQ(dsn->scheme, "https");
    EXPECT_EQ(dsn->public_key, "abc123");
    EXPECT_EQ(dsn->host, "o1.ingest.sentry.io");
    EXPECT_EQ(dsn->port, 0);
    EXPECT_EQ(dsn->project_id, "4505");
    EXPECT_EQ(dsn->store_url(), "https://o1.ingest.sentry.io/api/4505/store/");
    EXPECT_EQ(dsn->envelope_url(), "https://o1.ingest.sentry.io/api/4505/envelope/");
}

TEST(sentry_dsn, parses_port_path_prefix_and_legacy_secret) {
    const auto dsn = parse_sentry_dsn("http://key:secret@sentry.local:9000/sub/path/7/");
    ASSERT_TRUE(dsn.has_value()) << dsn.error();
    EXPECT_EQ(dsn->public_key, "key");
    EXPECT_EQ(dsn->port, 9000);
    EXPECT_EQ(dsn->path, "/sub/path");
    EXPECT_EQ(dsn->store_url(), "http://sentry.local:9000/sub/path/api/7/store/");
}

TEST(sentry_dsn, parses_an_ipv6_host) {
    const auto dsn = parse_sentry_dsn("http://k@[::1]:8080/3");
    ASSERT_TRUE(dsn.has_value()) << dsn.error();
    EXPECT_EQ(dsn->host, "[::1]");
    EXPECT_EQ(dsn->origin(), "http://[::1]:8080");
}

TEST(sentry_dsn, rejects_malformed_dsns_with_a_reason) {
    const std::pair<std::string_view, std::string_view> cases[] = {
        {"", "empty"},
        {"o1.ingest.sentry.io/1", "no scheme"},
        {"ftp://k@host/1", "http or https"},
        {"https://host/1", "no public key"},
        {"https://@host/1", "empty public key"},
        {"https://k@/1", "no host"},
        {"https://k@host:0/1", "port"},
        {"https://k@host:99999/1", "port"},
        {"https://k@host:/1", "empty port"},
        {"https://k@host", "no project id"},
        {"https://k@host/", "no project id"},
        {"https://k@host/abc", "project id must be a number"},
        {"https://k@[::1/1", "IPv6"},
    };
    for (const auto& [dsn, reason] : cases) {
        const auto r = parse_sentry_dsn(dsn);
        ASSERT_FALSE(r.has_value()) << dsn;
        EXPECT_NE(r.error().find(reason), std::string::npos) << dsn << ": " << r.error();
        EXPECT_NE(r.error().find("malformed Sentry DSN"), std::string::npos);
    }
}

TEST(sentry_sink, sends_to_the_store_endpoint_with_the_auth_header) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@sentry.example/42"), fake_transport{&sent});
    sink.send(sample());
    ASSERT_EQ(sent.size(), 1U);
    EXPECT_EQ(sent[0].url, "https://sentry.example/api/42/store/");
    EXPECT_EQ(header(sent[0], "X-Sentry-Auth"),
              "Sentry sentry_version=7, sentry_client=respite-proxy/0.1, sentry_key=pub");
    EXPECT_EQ(header(sent[0], "Content-Type"), "application/json");
    EXPECT_EQ(sink.sent(), 1U);
}

TEST(sentry_sink, event_json_carries_the_divergence) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@sentry.example/42"), fake_transport{&sent},
                     options<sentry_options>([&](sentry_options& o) {
                         o.environment = "staging";
                         o.release = "respite@0.1.0";
                     }));
    sink.send(sample());
    ASSERT_EQ(sent.size(), 1U);
    const auto e = nlohmann::json::parse(sent[0].body);
    EXPECT_EQ(e["level"], "error");
    EXPECT_EQ(e["environment"], "staging");
    EXPECT_EQ(e["release"], "respite@0.1.0");
    EXPECT_FALSE(e.contains("server_name"));
    EXPECT_EQ(e["fingerprint"], nlohmann::json({"divergence", "data_mismatch", "hgetall"}));
    EXPECT_EQ(e["tags"]["kind"], "data_mismatch");
    EXPECT_EQ(e["tags"]["command"], "hgetall");
    EXPECT_FALSE(e["tags"].contains("key"));  // keys stay out of indexed tags
    EXPECT_EQ(e["extra"]["key"], "user:42");
    EXPECT_EQ(e["extra"]["primary"], "{\"a\": \"1\"}");
    EXPECT_EQ(e["extra"]["secondary"], "{\"a\": \"2\"}");
    EXPECT_EQ(e["extra"]["pattern"], "");
    EXPECT_EQ(e["timestamp"], "2023-11-14T22:13:20.250Z");
    EXPECT_EQ(e["message"]["formatted"], "shadow divergence: data_mismatch on hgetall");
    const std::string id = e["event_id"];
    EXPECT_EQ(id.size(), 32U);
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(sentry_sink, levels_and_event_ids) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@h/1"), fake_transport{&sent});
    auto d = sample();
    d.kind = divergence_kind::extra_data;
    sink.send(d);
    sink.complete();
    sink.send(d);
    ASSERT_EQ(sent.size(), 2U);
    const auto a = nlohmann::json::parse(sent[0].body);
    const auto b = nlohmann::json::parse(sent[1].body);
    EXPECT_EQ(a["level"], "warning");
    EXPECT_NE(a["event_id"], b["event_id"]);
}

TEST(sentry_sink, envelope_mode) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@h/9"), fake_transport{&sent},
                     options<sentry_options>([&](sentry_options& o) { o.use_envelope = true; }));
    sink.send(sample());
    ASSERT_EQ(sent.size(), 1U);
    EXPECT_EQ(sent[0].url, "https://h/api/9/envelope/");
    EXPECT_EQ(header(sent[0], "Content-Type"), "application/x-sentry-envelope");
    std::vector<std::string> lines;
    std::string line;
    for (const char c : sent[0].body) {
        if (c == '\n') {
            lines.push_back(line);
            line.clear();
        } else {
            line += c;
        }
    }
    ASSERT_EQ(lines.size(), 3U);
    const auto head = nlohmann::json::parse(lines[0]);
    const auto item = nlohmann::json::parse(lines[1]);
    const auto event = nlohmann::json::parse(lines[2]);
    EXPECT_EQ(head["event_id"], event["event_id"]);
    EXPECT_EQ(item["type"], "event");
    EXPECT_EQ(item["length"], lines[2].size());
}

TEST(sentry_sink, drops_and_counts_beyond_max_in_flight) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@h/1"), fake_transport{&sent},
                     options<sentry_options>([&](sentry_options& o) { o.max_in_flight = 2; }));
    for (int i = 0; i < 5; ++i) {
        sink.send(sample());
    }
    EXPECT_EQ(sent.size(), 2U);
    EXPECT_EQ(sink.dropped(), 3U);
    EXPECT_EQ(sink.in_flight(), 2U);
    sink.complete();
    sink.send(sample());
    EXPECT_EQ(sent.size(), 3U);
    sink.complete();
    sink.complete();
    sink.complete();  // an extra completion never underflows
    EXPECT_EQ(sink.in_flight(), 0U);
}

TEST(sentry_sink, a_throwing_transport_frees_its_slot) {
    sentry_sink sink(
        *parse_sentry_dsn("https://pub@h/1"),
        [](const std::string&, const sentry_sink::header_list&, std::string) {
            throw std::runtime_error("no route");
        },
        options<sentry_options>([&](sentry_options& o) { o.max_in_flight = 1; }));
    sink.send(sample());
    sink.send(sample());
    EXPECT_EQ(sink.in_flight(), 0U);
    EXPECT_EQ(sink.dropped(), 2U);
}

TEST(sentry_sink, raw_bytes_in_fields_still_give_valid_json) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@h/1"), fake_transport{&sent});
    auto d = sample();
    d.primary = "\xff\xfe";
    d.key = "k\x01";
    sink.send(d);
    ASSERT_EQ(sent.size(), 1U);
    const auto e = nlohmann::json::parse(sent[0].body);
    EXPECT_EQ(e["extra"]["key"], "k\\x01");
}

}  // namespace
}  // namespace respite::proxy

namespace respite::proxy {
namespace {

write_failure refused_write() {
    write_failure f;
    f.command = "xadd";
    f.target = "secondary";
    f.error = "ERR The ID specified in XADD is equal or smaller than the target stream top item";
    f.keys = 1;
    f.at = std::chrono::system_clock::time_point{} + std::chrono::seconds(1'700'000'000);
    return f;
}

// A write the follower's side refused: an event of its own, "secondary_write_<cmd>" as the
// original proxy, the command and target as tags, the error in extra.
TEST(sentry_sink, a_refused_follower_write_is_an_event) {
    std::vector<request> sent;
    sentry_sink sink(*parse_sentry_dsn("https://pub@sentry.example/42"), fake_transport{&sent});
    sink.send(refused_write());
    ASSERT_EQ(sent.size(), 1U);
    const auto e = nlohmann::json::parse(sent[0].body);
    EXPECT_EQ(e["fingerprint"], nlohmann::json({"secondary_write", "xadd"}));
    EXPECT_EQ(e["message"]["formatted"], "secondary write failed: xadd");
    EXPECT_EQ(e["tags"]["command"], "xadd");
    EXPECT_EQ(e["tags"]["target"], "secondary");
    EXPECT_EQ(e["extra"]["keys"], 1);
    EXPECT_EQ(e["extra"]["error"].get<std::string>().substr(0, 20), "ERR The ID specified");
    EXPECT_EQ(fingerprint(refused_write()), "secondary_write_xadd");
}

TEST(sentry_sink, the_sample_rate_leaves_events_out) {
    std::vector<request> sent;
    sentry_sink none(*parse_sentry_dsn("https://pub@sentry.example/42"), fake_transport{&sent},
                     options<sentry_options>([](sentry_options& o) { o.sample_rate = 0.0; }));
    for (int i = 0; i < 50; ++i) {
        none.send(sample());
        none.send(refused_write());
    }
    EXPECT_TRUE(sent.empty());
    EXPECT_EQ(none.sampled_out(), 100U);
    sentry_sink half(*parse_sentry_dsn("https://pub@sentry.example/42"), fake_transport{&sent},
                     options<sentry_options>([](sentry_options& o) { o.sample_rate = 0.5; }));
    for (int i = 0; i < 2000; ++i) {
        half.send(sample());
        half.complete();  // the fake transport answers at once
    }
    EXPECT_GT(sent.size(), 800U);  // ~1000; the bounds are far outside chance
    EXPECT_LT(sent.size(), 1200U);
    EXPECT_EQ(sent.size() + half.sampled_out(), 2000U);
}

// The reporter passes a refused write to the sink once per command and target per cooldown.
TEST(divergence_reporter, refused_writes_reach_the_sink_once_per_cooldown) {
    struct counting_sink final : divergence_sink {
        std::vector<write_failure> failures;
        void send(const divergence&) override {}
        void send(const write_failure& f) override { failures.push_back(f); }
    };
    auto sink = std::make_shared<counting_sink>();
    obs::registry reg;
    divergence_reporter r(reporter_options{}, sink, reg);
    const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
    auto f = refused_write();
    f.command = "XADD";  // re-bounded through the command table
    r.report(f, t0);
    r.report(f, t0 + std::chrono::seconds(1));
    f.command = "not-a-command";
    r.report(f, t0 + std::chrono::seconds(2));
    r.report(refused_write(), t0 + std::chrono::seconds(61));
    ASSERT_EQ(sink->failures.size(), 3U);
    EXPECT_EQ(sink->failures[0].command, "xadd");
    EXPECT_EQ(sink->failures[1].command, "other");
    EXPECT_EQ(r.sink_skipped(), 1U);
}

}  // namespace
}  // namespace respite::proxy
