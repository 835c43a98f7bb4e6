// The shared logger: its name, run-time level changes, RESPITE_LOG_LEVEL and the line format.
#include <cstdlib>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include <respite/obs/json_line.hpp>
#include <respite/obs/log.hpp>

namespace respite::obs {
namespace {

TEST(log, is_the_respite_logger) {
    EXPECT_EQ(log().name(), "respite");
    EXPECT_EQ(&log(), &log());
    EXPECT_EQ(spdlog::get("respite").get(), &log());
}

TEST(log, set_log_level_accepts_the_documented_names) {
    const auto before = log().level();
    EXPECT_TRUE(set_log_level("trace"));
    EXPECT_EQ(log().level(), spdlog::level::trace);
    EXPECT_TRUE(set_log_level("debug"));
    EXPECT_EQ(log().level(), spdlog::level::debug);
    EXPECT_TRUE(set_log_level("info"));
    EXPECT_EQ(log().level(), spdlog::level::info);
    EXPECT_TRUE(set_log_level("warn"));
    EXPECT_EQ(log().level(), spdlog::level::warn);
    EXPECT_TRUE(set_log_level("error"));
    EXPECT_EQ(log().level(), spdlog::level::err);
    EXPECT_TRUE(set_log_level("off"));
    EXPECT_EQ(log().level(), spdlog::level::off);
    log().set_level(before);
}

TEST(log, set_log_level_rejects_unknown_names_and_keeps_the_level) {
    ASSERT_TRUE(set_log_level("info"));
    EXPECT_FALSE(set_log_level("verbose"));
    EXPECT_FALSE(set_log_level("WARN"));
    EXPECT_FALSE(set_log_level(""));
    EXPECT_EQ(log().level(), spdlog::level::info);
    ASSERT_TRUE(set_log_level("warn"));
}

// The level is read when the logger is first used, so each case runs in a fresh process.
class log_death_test : public ::testing::Test {
  protected:
    void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(log_death_test, level_defaults_to_warn) {
    EXPECT_EXIT(
        {
            unsetenv("RESPITE_LOG_LEVEL");
            std::exit(log().level() == spdlog::level::warn ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST_F(log_death_test, level_comes_from_the_environment) {
    EXPECT_EXIT(
        {
            setenv("RESPITE_LOG_LEVEL", "debug", 1);
            std::exit(log().level() == spdlog::level::debug ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

TEST_F(log_death_test, unknown_environment_level_warns_and_uses_warn) {
    EXPECT_EXIT(
        {
            setenv("RESPITE_LOG_LEVEL", "loud", 1);
            std::exit(log().level() == spdlog::level::warn ? 0 : 1);
        },
        ::testing::ExitedWithCode(0),
        "warning log_level_unknown RESPITE_LOG_LEVEL=loud using=warn");
}

TEST_F(log_death_test, lines_carry_timestamp_level_and_message) {
    EXPECT_EXIT(
        {
            unsetenv("RESPITE_LOG_LEVEL");
            log().error("connect_failed host={} port={}", "localhost", 6379);
            std::exit(0);
        },
        ::testing::ExitedWithCode(0),
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}[-+][0-9]{2}:[0-9]{2} "
        "error "
        "connect_failed host=localhost port=6379\n");
}

}  // namespace
}  // namespace respite::obs

namespace respite::obs {
namespace {

nlohmann::json parsed(std::string_view message) {
    const auto line = json_log_line("2026-11-22T10:00:00.000Z", "warn", message);
    EXPECT_EQ(line.find('\n'), std::string::npos) << line;
    return nlohmann::json::parse(line);  // throws (fails the test) on invalid JSON
}

TEST(json_log, fields_become_json_fields) {
    const auto j = parsed(
        "proxy upstream_failed reason=\"reply timeout\" pending=2 connected=true lag=0.25 "
        "id=007 neg=-3 big=18446744073709551615 edge=999999999999999");
    EXPECT_EQ(j["ts"], "2026-11-22T10:00:00.000Z");
    EXPECT_EQ(j["level"], "warn");
    EXPECT_EQ(j["component"], "proxy");
    EXPECT_EQ(j["event"], "upstream_failed");
    EXPECT_EQ(j["reason"], "reply timeout");
    EXPECT_EQ(j["pending"], 2);
    EXPECT_EQ(j["connected"], true);
    EXPECT_DOUBLE_EQ(j["lag"].get<double>(), 0.25);
    EXPECT_EQ(j["id"], "007");  // no leading zeros in JSON numbers: a string
    EXPECT_EQ(j["neg"], -3);
    // Integers beyond what a double holds exactly stay strings (JavaScript would round them).
    EXPECT_EQ(j["big"], "18446744073709551615");
    EXPECT_EQ(j["edge"], 999999999999999);
    EXPECT_FALSE(j.contains("note"));
}

TEST(json_log, free_text_after_the_fields_is_a_note) {
    const auto j = parsed("replay_error_reply error=\"WRONGTYPE x\" keys=1 (keys marked dirty)");
    EXPECT_EQ(j["event"], "replay_error_reply");
    EXPECT_EQ(j["error"], "WRONGTYPE x");
    EXPECT_EQ(j["note"], "(keys marked dirty)");
}

TEST(json_log, quoted_values_keep_quotes_and_spaces_inside) {
    const auto j = parsed("e a=\"x \"y\" z\" b=\"=\" c=\"\" d=\"unterminated");
    EXPECT_EQ(j["a"], "x \"y\" z");
    EXPECT_EQ(j["b"], "=");
    EXPECT_EQ(j["c"], "");
    EXPECT_EQ(j["d"], "unterminated");
}

TEST(json_log, binary_and_control_bytes_stay_valid_json) {
    const std::string message = std::string("e key=") + std::string("\x01\xff\xc3\xa9\"\\\n", 7) +
                                " s=\xe2\x82\xac bad=\xe2\x82 sur=\xed\xa0\x80";
    const auto j = parsed(message);
    EXPECT_EQ(j["key"], std::string("\x01\xef\xbf\xbd\xc3\xa9\"\\\n"));
    EXPECT_EQ(j["s"], "\xe2\x82\xac");                            // a whole UTF-8 sequence
    EXPECT_EQ(j["bad"], "\xef\xbf\xbd\xef\xbf\xbd");              // truncated: replaced
    EXPECT_EQ(j["sur"], "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate: replaced
}

TEST(json_log, fields_do_not_shadow_the_lines_own_names) {
    const auto j = parsed("e level=debug ts=1 event=x note=y component=z");
    EXPECT_EQ(j["level"], "warn");
    EXPECT_EQ(j["event"], "e");
    EXPECT_EQ(j["field_level"], "debug");
    EXPECT_EQ(j["field_ts"], 1);
    EXPECT_EQ(j["field_event"], "x");
    EXPECT_EQ(j["field_note"], "y");
    EXPECT_EQ(j["field_component"], "z");
    EXPECT_FALSE(j.contains("component"));
}

TEST(json_log, messages_without_fields_and_odd_tokens) {
    EXPECT_EQ(parsed("")["event"], "");
    EXPECT_EQ(parsed("just words here")["event"], "just words here");
    const auto j = parsed("e =x k= weird key!=1 k2=v");
    EXPECT_EQ(j["event"], "e =x");
    EXPECT_EQ(j["k"], "");
    EXPECT_EQ(j["note"], "weird key!=1");
    EXPECT_EQ(j["k2"], "v");
}

TEST(json_log, the_logger_writes_json_lines_when_asked) {
    std::ostringstream os;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(os);
    spdlog::logger logger("json-test", sink);
    logger.set_formatter(make_json_formatter());
    logger.warn("proxy signal={} action={}", 15, "drain");
    const auto j = nlohmann::json::parse(os.str());
    EXPECT_EQ(j["level"], "warning");
    EXPECT_EQ(j["event"], "proxy");
    EXPECT_EQ(j["signal"], 15);
    EXPECT_EQ(j["action"], "drain");
    EXPECT_EQ(os.str().back(), '\n');
    EXPECT_TRUE(set_log_format("json"));
    EXPECT_TRUE(set_log_format("text"));
    EXPECT_FALSE(set_log_format("xml"));
}

}  // namespace
}  // namespace respite::obs

namespace respite::obs {
namespace {

// Values from outside go through obs::quoted: one field whatever they hold, in text and JSON.
TEST(json_log, quoted_values_survive_spaces_quotes_and_fake_fields) {
    const std::string key = "a b\" c=d\\\n\x01";
    const auto msg = fmt::format("proxy push_back_failed command={} key={} reply={}",
                                 quoted{"lpush"}, quoted{key}, quoted{"-ERR x"});
    EXPECT_EQ(msg,
              "proxy push_back_failed command=\"lpush\" key=\"a b\\\" c=d\\\\\\n\\x01\" "
              "reply=\"-ERR x\"");
    const auto j = nlohmann::json::parse(json_log_line("t", "error", msg));
    EXPECT_EQ(j["command"], "lpush");
    EXPECT_EQ(j["key"], key);
    EXPECT_EQ(j["reply"], "-ERR x");
    EXPECT_FALSE(j.contains("c"));
    EXPECT_FALSE(j.contains("note"));
    // A numeric key stays a string.
    EXPECT_EQ(nlohmann::json::parse(
                  json_log_line("t", "info", fmt::format("e key={}", quoted{"123"})))["key"],
              "123");
}

}  // namespace
}  // namespace respite::obs
