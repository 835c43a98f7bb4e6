// The proxy's state file: round trip, atomic replacement, clear errors on a damaged file.
#include "state_file.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace respite::proxy::server {
namespace {

TEST(proxy_state_file, round_trips) {
    persisted_state s;
    s.current = mode::secondary_primary;
    s.clean_shutdown = true;
    s.needs_sync = {true, false};
    auto back = parse_state(format_state(s));
    ASSERT_TRUE(back.has_value()) << back.error();
    EXPECT_EQ(back->current, mode::secondary_primary);
    EXPECT_TRUE(back->clean_shutdown);
    EXPECT_TRUE(back->needs_sync[0]);
    EXPECT_FALSE(back->needs_sync[1]);
}

TEST(proxy_state_file, damaged_files_get_errors_that_name_the_line) {
    auto error_of = [](std::string_view text) {
        auto r = parse_state(text);
        return r ? std::string("parsed") : r.error();
    };
    EXPECT_EQ(error_of("mode=dual-write\nclean_shutdown=2\n"),
              "line 2: clean_shutdown must be 0 or 1, got '2'");
    EXPECT_EQ(error_of("# c\nmode=tripe-write\n"), "line 2: unknown mode 'tripe-write'");
    EXPECT_EQ(error_of("mode=dual-write\ncolour=blue\n"), "line 2: unknown key 'colour'");
    EXPECT_EQ(error_of("mode dual-write\n"), "line 1: expected key=value");
    EXPECT_EQ(error_of("clean_shutdown=1\n"), "no mode= line");
    EXPECT_EQ(error_of(std::string("mode=dual-write\r\n\0\n", 19)), "line 2: expected key=value");
    EXPECT_EQ(error_of("mode=primary-only\r\nsecondary_needs_sync=1\r\n"), "parsed");
}

TEST(proxy_state_file, is_written_atomically_and_read_back) {
    const auto dir = std::filesystem::path(::testing::TempDir()) / "respite-state-test";
    std::filesystem::create_directories(dir);
    const auto path = (dir / "proxy.state").string();
    std::filesystem::remove(path);
    auto none = read_state(path);
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->has_value());
    persisted_state s;
    s.current = mode::dual_write_shadow;
    ASSERT_TRUE(write_state(path, s).has_value());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    auto got = read_state(path);
    ASSERT_TRUE(got.has_value() && got->has_value());
    EXPECT_EQ((*got)->current, mode::dual_write_shadow);
    std::ofstream(path) << "mode=??\n";
    auto bad = read_state(path);
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().find(path + ": line 1: unknown mode"), std::string::npos) << bad.error();
    EXPECT_FALSE(write_state((dir / "missing-dir" / "x").string(), s).has_value());
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace respite::proxy::server
