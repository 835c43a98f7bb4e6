// Packed keys: one string, iterated back in order, binary-safe.
#include "packed_keys.hpp"

#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

using respite::proxy::replay::append_packed_key;
using respite::proxy::replay::packed_keys;
using respite::proxy::replay::packed_size;

TEST(packed_keys, round_trip_in_order) {
    const std::vector<std::string> keys{"a", "", std::string("b\0c", 3), std::string(300, 'x')};
    std::string bytes = "prefix";
    const std::size_t start = bytes.size();
    std::size_t expected = 0;
    for (const auto& k : keys) {
        append_packed_key(bytes, k);
        expected += packed_size(k);
    }
    EXPECT_EQ(bytes.size() - start, expected);
    const packed_keys view(std::string_view(bytes).substr(start), keys.size());
    EXPECT_EQ(view.size(), keys.size());
    EXPECT_FALSE(view.empty());
    EXPECT_EQ(view.front(), "a");
    std::vector<std::string> back;
    for (auto k : view)
        back.emplace_back(k);
    EXPECT_EQ(back, keys);
}

TEST(packed_keys, empty) {
    const packed_keys none;
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(none.begin(), none.end());
}
