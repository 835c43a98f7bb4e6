// script_bodies (include/respite/proxy/script_bodies.hpp).
#include <algorithm>
#include <cctype>

#include <openssl/evp.h>

#include <respite/proxy/script_bodies.hpp>

namespace respite::proxy {

std::string script_bodies::sha1_hex(std::string_view body) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(body.data(), body.size(), md, &len, EVP_sha1(), nullptr) != 1)
        return {};
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) {
        out += hex[md[i] >> 4];
        out += hex[md[i] & 0xf];
    }
    return out;
}

void script_bodies::remember(std::string_view body) {
    if (body.size() > max_bytes_)
        return;
    auto sha = sha1_hex(body);
    if (sha.empty())
        return;
    std::lock_guard lock(mu_);
    if (by_sha_.contains(sha))
        return;
    while (!order_.empty() && bytes_ + body.size() > max_bytes_) {
        const auto it = by_sha_.find(order_.front());
        if (it != by_sha_.end()) {
            bytes_ -= it->second.size();
            by_sha_.erase(it);
        }
        order_.pop_front();
    }
    bytes_ += body.size();
    order_.push_back(sha);
    by_sha_.emplace(std::move(sha), std::string(body));
}

std::optional<std::string> script_bodies::find(std::string_view sha) const {
    std::string key(sha);
    std::ranges::transform(key, key.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::lock_guard lock(mu_);
    const auto it = by_sha_.find(key);
    if (it == by_sha_.end())
        return std::nullopt;
    return it->second;
}

void script_bodies::clear() {
    std::lock_guard lock(mu_);
    by_sha_.clear();
    order_.clear();
    bytes_ = 0;
}

std::size_t script_bodies::size() const {
    std::lock_guard lock(mu_);
    return by_sha_.size();
}

}  // namespace respite::proxy
