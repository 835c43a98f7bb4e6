// Redis Cluster key hashing: CRC16-XMODEM and the hash slot of a key (with hash tags).
//
// Module boundary: the cluster core (slot, slot_map) is sans-I/O and depends only on resp and the
// standard library.
#pragma once

#include <cstdint>
#include <string_view>

namespace respite::cluster {

inline constexpr std::uint16_t slot_count = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis's crc16.c computes it.
std::uint16_t crc16(std::string_view data) noexcept;

// The hash tag of a key: the text between the first '{' and the first '}' after it, when that
// text is not empty; otherwise the whole key.
std::string_view hash_tag(std::string_view key) noexcept;

// The slot (0..16383) that owns a key: crc16(hash_tag(key)) mod 16384.
std::uint16_t hash_slot(std::string_view key) noexcept;

}  // namespace respite::cluster
