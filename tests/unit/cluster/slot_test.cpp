// CRC16 and hash slots against the Redis cluster spec and values from a real server.
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include <respite/cluster/slot.hpp>

namespace {

using respite::cluster::crc16;
using respite::cluster::hash_slot;
using respite::cluster::hash_tag;

TEST(Crc16, MatchesXmodemCheckValue) {
    EXPECT_EQ(crc16("123456789"), 0x31C3);
    EXPECT_EQ(crc16(""), 0);
    EXPECT_EQ(crc16(std::string_view("\0", 1)), 0);
    EXPECT_EQ(crc16("A"), 0x58E5);
}

TEST(HashSlot, KnownValues) {
    EXPECT_EQ(hash_slot("foo"), 12182);
    EXPECT_EQ(hash_slot("bar"), 5061);
    EXPECT_EQ(hash_slot("hello"), 866);
    EXPECT_EQ(hash_slot("123456789"), 12739);
    EXPECT_EQ(hash_slot(""), 0);
}

TEST(HashSlot, SpecHashTags) {
    EXPECT_EQ(hash_slot("{user1000}.following"), hash_slot("{user1000}.followers"));
    EXPECT_EQ(hash_slot("{user1000}.following"), hash_slot("user1000"));
    // An empty tag hashes the whole key.
    EXPECT_EQ(hash_tag("foo{}{bar}"), "foo{}{bar}");
    EXPECT_EQ(hash_slot("foo{}{bar}"), 8363);
    // The tag ends at the first '}' after the first '{'.
    EXPECT_EQ(hash_tag("foo{{bar}}zap"), "{bar");
    EXPECT_EQ(hash_slot("foo{{bar}}zap"), hash_slot("{bar"));
    EXPECT_EQ(hash_tag("foo{bar}{zap}"), "bar");
    EXPECT_EQ(hash_slot("foo{bar}{zap}"), hash_slot("bar"));
}

// Each value is what CLUSTER KEYSLOT answered on redis-server 7.0.15.
TEST(HashSlot, AgreesWithServer) {
    struct case_t {
        std::string_view key;
        std::uint16_t slot;
    };
    const case_t cases[] = {
        {"foo{}{bar}", 8363},
        {"foo{{bar}}zap", 4015},
        {"foo{bar}{zap}", 5061},
        {"{bar", 4015},
        {"{}", 15257},
        {"{", 4092},
        {"}", 12090},
        {"a{b}c", 3300},
        {"{a}{b}", 15495},
        {"user:{42}:profile", 8000},
        {"42", 8000},
        {"}{x}", 16287},
        {"x{y", 2740},
        {"{user1000}.following", 3443},
        {std::string_view("\x00\xff\x80{\x01}", 6), 4129},
        {std::string_view("\x00\xff\x80", 3), 4727},
    };
    for (const auto& c : cases)
        EXPECT_EQ(hash_slot(c.key), c.slot) << c.key;
}

TEST(HashSlot, AlwaysInRange) {
    std::string key;
    for (int i = 0; i < 5000; ++i) {
        key = "key:" + std::to_string(i);
        EXPECT_LT(hash_slot(key), respite::cluster::slot_count);
    }
}

}  // namespace
