// Which keyless commands run on every master of a Redis Cluster, how their replies combine,
// and the composite SCAN cursor (see every_master.hpp).
#include <algorithm>
#include <cctype>
#include <charconv>

#include <respite/proxy/every_master.hpp>

namespace respite::proxy {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

every_master every_master_of(std::span<const std::string_view> args) {
    if (args.empty())
        return every_master::no;
    const auto name = args[0];
    if (iequals(name, "flushall") || iequals(name, "flushdb"))
        return every_master::first_reply;
    if (iequals(name, "dbsize"))
        return every_master::sum;
    if (iequals(name, "keys"))
        return every_master::concat;
    if (iequals(name, "randomkey"))
        return every_master::any_non_nil;
    if (iequals(name, "scan"))
        return every_master::scan;
    if (args.size() < 2)
        return every_master::no;
    const auto sub = args[1];
    if (iequals(name, "script")) {
        if (iequals(sub, "load") || iequals(sub, "flush"))
            return every_master::first_reply;
        if (iequals(sub, "exists"))
            return every_master::all_of;
        return every_master::no;
    }
    if (iequals(name, "function") && (iequals(sub, "load") || iequals(sub, "flush") ||
                                      iequals(sub, "delete") || iequals(sub, "restore")))
        return every_master::first_reply;
    return every_master::no;
}

resp::value combine_replies(every_master how, std::span<const resp::value> replies,
                            std::size_t pick) {
    if (replies.empty())
        return resp::value::simple_error("ERR proxy: no master of the serving backend is known");
    for (const auto& r : replies)
        if (r.is_error())
            return r;
    switch (how) {
        case every_master::sum: {
            std::int64_t total = 0;
            for (const auto& r : replies)
                total += r.integer();
            return resp::value::integer(total);
        }
        case every_master::concat: {
            std::vector<resp::value> all;
            for (const auto& r : replies)
                for (const auto& e : r.elements())
                    all.push_back(e);
            return resp::value::array(std::move(all));
        }
        case every_master::all_of: {
            auto out = replies.front();
            for (const auto& r : replies.subspan(1))
                for (std::size_t i = 0; i < out.elements().size() && i < r.elements().size(); ++i)
                    if (r.elements()[i].integer() == 0)
                        out.elements()[i] = resp::value::integer(0);
            return out;
        }
        case every_master::any_non_nil:
            for (std::size_t i = 0; i < replies.size(); ++i) {
                const auto& r = replies[(pick + i) % replies.size()];
                if (!r.is_null())
                    return r;
            }
            return replies.front();
        default:
            return replies.front();
    }
}

std::vector<cluster::node_address> scan_order(std::vector<cluster::node_address> m) {
    std::ranges::sort(m);
    m.erase(std::unique(m.begin(), m.end()), m.end());
    return m;
}

std::optional<scan_cursor> scan_cursor::parse(std::string_view text) {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec != std::errc{} || p != end || text.empty())
        return std::nullopt;
    scan_cursor c;
    c.node_cursor = v & k_max_node_cursor;
    c.check = static_cast<std::uint8_t>((v >> k_node_bits) & ((1U << k_check_bits) - 1));
    c.index = static_cast<std::size_t>(v >> (k_node_bits + k_check_bits));
    return c;
}

std::uint64_t scan_cursor::encode() const noexcept {
    return (static_cast<std::uint64_t>(index) << (k_node_bits + k_check_bits)) |
           (static_cast<std::uint64_t>(check) << k_node_bits) | node_cursor;
}

std::uint8_t scan_cursor::address_check(const cluster::node_address& n) noexcept {
    // FNV-1a of "host:port", folded to 7 bits.
    std::uint32_t h = 2166136261U;
    auto mix = [&](unsigned char ch) {
        h ^= ch;
        h *= 16777619U;
    };
    for (char ch : n.host)
        mix(static_cast<unsigned char>(ch));
    mix(':');
    mix(static_cast<unsigned char>(n.port & 0xff));
    mix(static_cast<unsigned char>(n.port >> 8));
    return static_cast<std::uint8_t>((h ^ (h >> 7) ^ (h >> 14) ^ (h >> 21)) &
                                     ((1U << k_check_bits) - 1));
}

std::optional<scan_step> resume_scan(const scan_cursor& c,
                                     std::span<const cluster::node_address> masters) {
    if (c.index == 0 && c.check == 0 && c.node_cursor == 0)
        return masters.empty() ? std::nullopt : std::optional(scan_step{0, 0});
    if (c.index < masters.size() && scan_cursor::address_check(masters[c.index]) == c.check)
        return scan_step{c.index, c.node_cursor};
    for (std::size_t i = 0; i < masters.size(); ++i)
        if (scan_cursor::address_check(masters[i]) == c.check)
            return scan_step{i, c.node_cursor};
    if (c.index < masters.size())
        return scan_step{c.index, 0};
    return std::nullopt;
}

std::optional<std::uint64_t> next_scan_cursor(std::span<const cluster::node_address> masters,
                                              std::size_t index, std::uint64_t node_cursor) {
    if (node_cursor > scan_cursor::k_max_node_cursor)
        return std::nullopt;
    scan_cursor c;
    if (node_cursor == 0) {
        if (index + 1 >= masters.size())
            return 0;  // the last master is done
        c.index = index + 1;
    } else {
        c.index = index;
        c.node_cursor = node_cursor;
    }
    if (c.index >= scan_cursor::k_max_masters)
        return std::nullopt;
    c.check = scan_cursor::address_check(masters[c.index]);
    return c.encode();
}

}  // namespace respite::proxy
