// string_pool: byte buffers of finished work kept for the next (a bounded number, each at most
// so large), so that a steady stream of short strings longer than std::string holds inline
// (keys, commands) allocates nothing. One thread's: no locking.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace respite::proxy {

class string_pool {
  public:
    string_pool(std::size_t max_strings, std::size_t max_bytes)
        : max_strings_(max_strings), max_bytes_(max_bytes) {}

    // A string holding `content`, in a kept buffer when there is one.
    [[nodiscard]] std::string take(std::string_view content) {
        if (kept_.empty())
            return std::string(content);
        std::string s = std::move(kept_.back());
        kept_.pop_back();
        s.assign(content);
        return s;
    }
    // Keeps `s`'s buffer when there is room and it is not too large; leaves `s` empty.
    void give(std::string& s) {
        if (kept_.size() < max_strings_ && s.capacity() <= max_bytes_)
            kept_.push_back(std::move(s));
        std::string().swap(s);
    }

  private:
    std::size_t max_strings_;
    std::size_t max_bytes_;
    std::vector<std::string> kept_;
};

}  // namespace respite::proxy
