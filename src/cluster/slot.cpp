// CRC16-XMODEM (table-driven, as Redis's crc16.c) and hash slots with hash-tag rules.
#include <array>

#include <respite/cluster/slot.hpp>

namespace respite::cluster {

namespace {

constexpr std::array<std::uint16_t, 256> make_crc16_table() noexcept {
    std::array<std::uint16_t, 256> table{};
    for (unsigned i = 0; i < 256; ++i) {
        unsigned crc = i << 8;
        for (int bit = 0; bit < 8; ++bit)
            crc = (crc & 0x8000U) != 0 ? (crc << 1) ^ 0x1021U : crc << 1;
        table[i] = static_cast<std::uint16_t>(crc);
    }
    return table;
}

constexpr auto crc16_table = make_crc16_table();
static_assert(crc16_table[1] == 0x1021 && crc16_table[255] == 0x1ef0);

// Slice-by-2: the table for a byte that is followed by one more byte, so two bytes are folded in
// with two independent lookups (every routed command hashes its key).
constexpr std::array<std::uint16_t, 256> make_crc16_table2() noexcept {
    std::array<std::uint16_t, 256> t{};
    for (unsigned i = 0; i < 256; ++i) {
        const unsigned first = crc16_table[i];
        t[i] = static_cast<std::uint16_t>(((first << 8) & 0xffffU) ^ crc16_table[first >> 8]);
    }
    return t;
}

constexpr auto crc16_table2 = make_crc16_table2();

}  // namespace

std::uint16_t crc16(std::string_view data) noexcept {
    unsigned crc = 0;
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    std::size_t n = data.size();
    for (; n >= 2; n -= 2, p += 2) {
        crc = crc16_table2[((crc >> 8) ^ p[0]) & 0xffU] ^ crc16_table[(crc ^ p[1]) & 0xffU];
    }
    if (n == 1)
        crc = ((crc << 8) & 0xffffU) ^ crc16_table[((crc >> 8) ^ p[0]) & 0xffU];
    return static_cast<std::uint16_t>(crc);
}

std::string_view hash_tag(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos)
        return key;
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1)
        return key;
    return key.substr(open + 1, close - open - 1);
}

std::uint16_t hash_slot(std::string_view key) noexcept {
    return static_cast<std::uint16_t>(crc16(hash_tag(key)) & (slot_count - 1));
}

}  // namespace respite::cluster
