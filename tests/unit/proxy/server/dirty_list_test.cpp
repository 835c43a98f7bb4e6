// The dirty-key list: binary keys survive, damage and a list for the other side are errors.
#include "dirty_list.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "state_file.hpp"

namespace respite::proxy::server {
namespace {

std::vector<std::string> binary_keys() {
    return {"plain", std::string("nul\0in\0it", 10), "crlf\r\nkey\r\n",
            "",      "12:looks-like-a-len\n",        std::string(3000, 'x')};
}

TEST(proxy_dirty_list, round_trips_binary_keys) {
    const auto keys = binary_keys();
    auto back = parse_dirty_list(format_dirty_list("secondary", keys), "secondary");
    ASSERT_TRUE(back.has_value()) << back.error();
    EXPECT_EQ(*back, keys);
    auto none = parse_dirty_list(format_dirty_list("primary", {}), "primary");
    ASSERT_TRUE(none.has_value()) << none.error();
    EXPECT_TRUE(none->empty());
}

TEST(proxy_dirty_list, every_truncation_is_an_error) {
    const auto text = format_dirty_list("secondary", binary_keys());
    for (std::size_t n = 0; n < text.size(); ++n) {
        auto r = parse_dirty_list(std::string_view(text).substr(0, n), "secondary");
        EXPECT_FALSE(r.has_value()) << "cut at " << n << " of " << text.size();
    }
    auto longer = parse_dirty_list(text + "x", "secondary");
    EXPECT_FALSE(longer.has_value());
}

TEST(proxy_dirty_list, damage_and_the_wrong_side_get_clear_errors) {
    const auto text = format_dirty_list("secondary", binary_keys());
    auto wrong = parse_dirty_list(text, "primary");
    ASSERT_FALSE(wrong.has_value());
    EXPECT_EQ(wrong.error(), "the list is for the secondary, not the primary");
    auto flipped = text;
    flipped[text.find("plain")] = 'P';  // same length: only the checksum sees it
    auto r = parse_dirty_list(flipped, "secondary");
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find("checksum mismatch"), std::string::npos) << r.error();
    auto cut = parse_dirty_list(text.substr(0, text.find("crlf")), "secondary");
    ASSERT_FALSE(cut.has_value());
    EXPECT_EQ(cut.error(), "truncated or damaged at key 3 of 6");
    EXPECT_EQ(parse_dirty_list("mode=dual-write\n", "secondary").error(),
              "not a respite-proxy dirty key list (bad header)");
}

TEST(proxy_dirty_list, is_written_atomically_next_to_the_state_file) {
    const auto dir = std::filesystem::path(::testing::TempDir()) / "respite-dirty-list-test";
    std::filesystem::create_directories(dir);
    const auto path = dirty_list_path((dir / "proxy.state").string());
    EXPECT_EQ(path, (dir / "proxy.state.dirty").string());
    std::filesystem::remove(path);
    auto none = read_dirty_list(path, "secondary");
    ASSERT_TRUE(none.has_value());
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(write_dirty_list(path, "secondary", binary_keys()).has_value());
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
    auto got = read_dirty_list(path, "secondary");
    ASSERT_TRUE(got.has_value() && got->has_value());
    EXPECT_EQ(**got, binary_keys());
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 5);
    auto bad = read_dirty_list(path, "secondary");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().find(path + ": "), std::string::npos) << bad.error();
    std::filesystem::remove_all(dir);
}

TEST(proxy_dirty_list, the_state_file_records_how_many_keys_were_saved) {
    persisted_state s;
    s.current = mode::dual_write;
    s.clean_shutdown = true;
    s.dirty_saved = {0, 42};
    auto back = parse_state(format_state(s));
    ASSERT_TRUE(back.has_value()) << back.error();
    EXPECT_EQ(back->dirty_saved[0], 0U);
    EXPECT_EQ(back->dirty_saved[1], 42U);
    auto bad = parse_state("mode=dual-write\nsecondary_dirty_keys_saved=4x\n");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), "line 2: secondary_dirty_keys_saved must be a count, got '4x'");
    // A state file of an older version has no such line: nothing saved.
    auto old = parse_state("mode=dual-write\nclean_shutdown=1\n");
    ASSERT_TRUE(old.has_value());
    EXPECT_EQ(old->dirty_saved[1], 0U);
}

}  // namespace
}  // namespace respite::proxy::server
