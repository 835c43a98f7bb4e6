// The command table: sorted specs, case-insensitive lookups and the COMMAND reply reader.
#include <algorithm>
#include <string>

#include <climits>

#include <respite/commands/command_table.hpp>

#include "ascii.hpp"

namespace respite::commands {

namespace {

// Three-way comparison of a stored (lower-case) name with lower(name), or with
// lower(name) + "|" + lower(sub) when sub is not empty, without building that string.
int compare_key(std::string_view stored, std::string_view name, std::string_view sub) noexcept {
    const std::size_t key_size = sub.empty() ? name.size() : name.size() + 1 + sub.size();
    const std::size_t n = std::min(stored.size(), key_size);
    for (std::size_t i = 0; i < n; ++i) {
        char k = '|';
        if (i < name.size())
            k = detail::lower(name[i]);
        else if (i > name.size())
            k = detail::lower(sub[i - name.size() - 1]);
        const auto s = static_cast<unsigned char>(stored[i]);
        const auto u = static_cast<unsigned char>(k);
        if (s != u)
            return s < u ? -1 : 1;
    }
    if (stored.size() == key_size)
        return 0;
    return stored.size() < key_size ? -1 : 1;
}

bool is_list(const resp::value& v) noexcept {
    return v.type() == resp::type::array || v.type() == resp::type::set;
}

bool read_int(const resp::value& v, int& out) noexcept {
    std::int64_t n = 0;
    if (v.type() != resp::type::integer && !v.is_string())
        return false;
    if (!v.to_int64(n) || n < INT_MIN || n > INT_MAX)
        return false;
    out = static_cast<int>(n);
    return true;
}

// Adds the spec of one COMMAND entry and of its subcommands. Redis 7 entry:
// name, arity, flags, first, last, step, acl categories, tips, key specs, subcommands.
// Redis 6 stops after the acl categories, older servers after step.
bool read_entry(const resp::value& e, std::vector<command_spec>& out, int depth) {
    if (!is_list(e) || e.size() < 6 || !e[0].is_string() || !is_list(e[2]))
        return false;
    command_spec spec;
    spec.name = e[0].str();
    if (spec.name.empty())
        return false;
    if (!read_int(e[1], spec.arity) || !read_int(e[3], spec.first_key) ||
        !read_int(e[4], spec.last_key) || !read_int(e[5], spec.step))
        return false;
    for (const auto& f : e[2].elements()) {
        if (!f.is_string())
            return false;
        spec.flags |= flag_from_name(f.str());
    }
    if (e.size() > 7 && is_list(e[7])) {
        for (const auto& tip : e[7].elements()) {
            if (tip.is_string())
                spec.flags |= flag_from_name(tip.str());
        }
    }
    const bool has_subs = e.size() > 9 && is_list(e[9]) && !e[9].elements().empty() && depth == 0;
    if (has_subs)
        spec.flags |= flag::has_subcommands;
    out.push_back(std::move(spec));
    if (has_subs) {
        for (const auto& sub : e[9].elements()) {
            // A bad subcommand drops only itself; its container stays usable.
            const std::size_t before = out.size();
            if (!read_entry(sub, out, depth + 1))
                out.resize(before);
        }
    }
    return true;
}

}  // namespace

command_table::command_table(std::vector<command_spec> specs) : specs_(std::move(specs)) {
    for (auto& s : specs_) {
        for (auto& c : s.name)
            c = detail::lower(c);
    }
    std::stable_sort(specs_.begin(), specs_.end(),
                     [](const command_spec& a, const command_spec& b) { return a.name < b.name; });
    // Keep the last of each run of equal names.
    std::vector<command_spec> unique;
    unique.reserve(specs_.size());
    for (auto& s : specs_) {
        if (!unique.empty() && unique.back().name == s.name)
            unique.back() = std::move(s);
        else
            unique.push_back(std::move(s));
    }
    specs_ = std::move(unique);
    build_index();
}

namespace {

// FNV-1a over the lower-cased key "name" or "name|sub", without building the string.
std::uint32_t key_hash(std::string_view name, std::string_view sub) noexcept {
    std::uint32_t h = 2166136261u;
    auto mix = [&h](char c) {
        h ^= static_cast<unsigned char>(detail::lower(c));
        h *= 16777619u;
    };
    for (char c : name)
        mix(c);
    if (!sub.empty()) {
        mix('|');
        for (char c : sub)
            mix(c);
    }
    return h;
}

}  // namespace

// An open-addressing index over the sorted specs: find() is one hash and usually one compare,
// not a binary search of case-insensitive compares (it runs for every routed command).
void command_table::build_index() {
    std::size_t size = 16;
    while (size < specs_.size() * 2)
        size *= 2;
    index_.assign(size, 0);
    for (std::size_t i = 0; i < specs_.size(); ++i) {
        std::string_view name = specs_[i].name;
        auto bar = name.find('|');
        std::string_view base = name.substr(0, bar);
        std::string_view sub =
            bar == std::string_view::npos ? std::string_view{} : name.substr(bar + 1);
        auto slot = key_hash(base, sub) & (size - 1);
        while (index_[slot] != 0)
            slot = (slot + 1) & (size - 1);
        index_[slot] = static_cast<std::uint32_t>(i + 1);
    }
}

command_table command_table::from_command_reply(const resp::value& reply, std::string* error) {
    if (!is_list(reply)) {
        if (error != nullptr) {
            *error = reply.is_error()
                         ? "COMMAND failed: " + reply.str()
                         : "COMMAND reply is a " + std::string(resp::type_name(reply.type())) +
                               ", not an array";
        }
        return {};
    }
    std::vector<command_spec> specs;
    specs.reserve(reply.size() * 2);
    std::size_t skipped = 0;
    for (const auto& e : reply.elements()) {
        if (e.is_null())
            continue;  // COMMAND INFO of an unknown name
        const std::size_t before = specs.size();
        if (!read_entry(e, specs, 0)) {
            specs.resize(before);
            ++skipped;
        }
    }
    if (error != nullptr) {
        error->clear();
        if (skipped != 0)
            *error = "skipped " + std::to_string(skipped) + " malformed COMMAND entries";
    }
    return command_table(std::move(specs));
}

const command_spec* command_table::find(std::string_view name,
                                        std::string_view sub) const noexcept {
    auto exact = [this](std::string_view n, std::string_view s) -> const command_spec* {
        if (index_.empty())
            return nullptr;
        const std::size_t mask = index_.size() - 1;
        for (auto slot = key_hash(n, s) & mask; index_[slot] != 0; slot = (slot + 1) & mask) {
            const auto& spec = specs_[index_[slot] - 1];
            if (compare_key(spec.name, n, s) == 0)
                return &spec;
        }
        return nullptr;
    };
    const command_spec* spec = exact(name, {});
    if (spec == nullptr || sub.empty() || !has_flag(*spec, flag::has_subcommands))
        return spec;
    return exact(name, sub);
}

const command_spec* command_table::lookup(std::span<const std::string_view> args) const noexcept {
    if (args.empty())
        return nullptr;
    return find(args[0], args.size() > 1 ? args[1] : std::string_view{});
}

}  // namespace respite::commands
