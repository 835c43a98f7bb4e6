// Keys packed into one byte string (length-prefixed), so an item carries them in one allocation.
//
// Not thread-safe; a view is valid while the bytes it views live and do not move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <string_view>

namespace respite::proxy::replay {

// Appends one key: a 4-byte native-endian length, then the key's bytes.
inline void append_packed_key(std::string& out, std::string_view key) {
    const auto n = static_cast<std::uint32_t>(key.size());
    char len[sizeof n];
    std::memcpy(len, &n, sizeof n);
    out.append(len, sizeof n);
    out.append(key);
}

// Bytes append_packed_key() adds for `key`.
constexpr std::size_t packed_size(std::string_view key) noexcept {
    return sizeof(std::uint32_t) + key.size();
}

// The keys of packed bytes, iterated as string_views in the order they were appended.
class packed_keys {
  public:
    class iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = std::string_view;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = std::string_view;

        iterator() = default;
        explicit iterator(const char* p) : p_(p) {}
        std::string_view operator*() const noexcept {
            return {p_ + sizeof(std::uint32_t), length()};
        }
        iterator& operator++() noexcept {
            p_ += sizeof(std::uint32_t) + length();
            return *this;
        }
        iterator operator++(int) noexcept {
            auto old = *this;
            ++*this;
            return old;
        }
        friend bool operator==(const iterator&, const iterator&) = default;

      private:
        [[nodiscard]] std::size_t length() const noexcept {
            std::uint32_t n = 0;
            std::memcpy(&n, p_, sizeof n);
            return n;
        }
        const char* p_ = nullptr;
    };

    packed_keys() = default;
    packed_keys(std::string_view bytes, std::size_t count) : bytes_(bytes), count_(count) {}

    [[nodiscard]] iterator begin() const noexcept { return iterator(bytes_.data()); }
    [[nodiscard]] iterator end() const noexcept { return iterator(bytes_.data() + bytes_.size()); }
    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
    [[nodiscard]] std::string_view front() const noexcept { return *begin(); }

  private:
    std::string_view bytes_;
    std::size_t count_ = 0;
};

}  // namespace respite::proxy::replay
