// The shared logger: its name, run-time level changes, RESPITE_LOG_LEVEL and the line format.
#include <cstdlib>

#include <gtest/gtest.h>

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
