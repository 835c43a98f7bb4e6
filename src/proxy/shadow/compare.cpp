// Shadow-read comparison: both replies are normalised to one protocol-neutral form, then
// compared under the command's rule and classified.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy {

namespace {

// A reply with the RESP2/RESP3 differences removed: every null form is nil, every string type
// is text, booleans are integers, maps are flat lists (the RESP2 shape), sets are lists.
struct canon {
    enum class kind : std::uint8_t { nil, integer, number, text, error, list };
    kind k = kind::nil;
    std::int64_t i = 0;
    double d = 0;
    std::string text;
    std::vector<canon> items;
};

canon normalise(const resp::value& v) {
    using resp::type;
    canon c;
    switch (v.type()) {
        case type::null:
            break;
        case type::simple_string:
        case type::bulk_string:
        case type::verbatim_string:
        case type::big_number:  // RESP2 servers send big numbers as bulk strings
            c.k = canon::kind::text;
            c.text = v.str();
            break;
        case type::simple_error:
        case type::blob_error:
            c.k = canon::kind::error;
            c.text = v.str();
            break;
        case type::integer:
            c.k = canon::kind::integer;
            c.i = v.integer();
            break;
        case type::boolean:  // RESP2 has no boolean; servers send 1 / 0
            c.k = canon::kind::integer;
            c.i = v.boolean() ? 1 : 0;
            break;
        case type::double_:
            c.k = canon::kind::number;
            c.d = v.double_value();
            break;
        case type::array:
        case type::set:
        case type::push:
        case type::map:
            c.k = canon::kind::list;
            c.items.reserve(v.elements().size());
            for (const auto& e : v.elements()) {
                c.items.push_back(normalise(e));
            }
            break;
    }
    return c;
}

// RESP3 nests score pairs ([[member, score], ...]) where RESP2 sends them flat.
void flatten_pairs(canon& c) {
    if (c.k != canon::kind::list || c.items.empty()) {
        return;
    }
    for (const auto& e : c.items) {
        if (e.k != canon::kind::list || e.items.size() != 2) {
            return;
        }
    }
    std::vector<canon> flat;
    flat.reserve(c.items.size() * 2);
    for (auto& e : c.items) {
        flat.push_back(std::move(e.items[0]));
        flat.push_back(std::move(e.items[1]));
    }
    c.items = std::move(flat);
}

bool parse_number(std::string_view s, double& out) {
    if (!s.empty() && s.front() == '+') {
        s.remove_prefix(1);  // Redis accepts "+inf"; from_chars does not
    }
    if (s.empty()) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

bool parse_integer(std::string_view s, std::int64_t& out) {
    if (s.empty()) {
        return false;
    }
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
}

bool close(double a, double b, double epsilon) {
    if (a == b) {
        return true;  // also equal infinities
    }
    if (std::isnan(a) || std::isnan(b) || std::isinf(a) || std::isinf(b)) {
        return std::isnan(a) && std::isnan(b);
    }
    return std::fabs(a - b) <= epsilon * std::max(std::fabs(a), std::fabs(b));
}

std::string_view error_code(std::string_view message) {
    return message.substr(0, message.find(' '));
}

struct comparer {
    bool scored;
    double epsilon;

    // A number may arrive as a RESP3 double on one side and as text on the other; an integer
    // reply may come back as a numeric string from a store that is not Redis.
    [[nodiscard]] bool equal(const canon& a, const canon& b) const {
        using k = canon::kind;
        if (a.k == b.k) {
            switch (a.k) {
                case k::nil:
                    return true;
                case k::integer:
                    return a.i == b.i;
                case k::number:
                    return close(a.d, b.d, epsilon);
                case k::error:
                    return a.text == b.text;
                case k::text: {
                    if (a.text == b.text) {
                        return true;
                    }
                    double x = 0;
                    double y = 0;
                    return scored && parse_number(a.text, x) && parse_number(b.text, y) &&
                           close(x, y, epsilon);
                }
                case k::list:
                    if (a.items.size() != b.items.size()) {
                        return false;
                    }
                    for (std::size_t n = 0; n < a.items.size(); ++n) {
                        if (!equal(a.items[n], b.items[n])) {
                            return false;
                        }
                    }
                    return true;
            }
            return false;
        }
        if (b.k == k::text && (a.k == k::number || a.k == k::integer)) {
            return equal(b, a);
        }
        if (a.k == k::text && b.k == k::number) {
            double x = 0;
            return parse_number(a.text, x) && close(x, b.d, epsilon);
        }
        if (a.k == k::text && b.k == k::integer) {
            std::int64_t x = 0;
            return parse_integer(a.text, x) && x == b.i;
        }
        if ((a.k == k::integer && b.k == k::number) || (a.k == k::number && b.k == k::integer)) {
            const double x = a.k == k::integer ? static_cast<double>(a.i) : a.d;
            const double y = b.k == k::integer ? static_cast<double>(b.i) : b.d;
            return close(x, y, epsilon);
        }
        return false;
    }
};

// A total order used only to put set members and hash pairs in a canonical order.
bool less(const canon& a, const canon& b) {
    if (a.k != b.k) {
        return a.k < b.k;
    }
    switch (a.k) {
        case canon::kind::nil:
            return false;
        case canon::kind::integer:
            return a.i < b.i;
        case canon::kind::number:
            return a.d < b.d;
        case canon::kind::text:
        case canon::kind::error:
            return a.text < b.text;
        case canon::kind::list:
            return std::lexicographical_compare(a.items.begin(), a.items.end(), b.items.begin(),
                                                b.items.end(), less);
    }
    return false;
}

void sort_members(canon& c) {
    if (c.k == canon::kind::list) {
        std::sort(c.items.begin(), c.items.end(), less);
    }
}

// Regroups a flat field, value, ... list into [field, value] pairs and sorts them.
void sort_pairs(canon& c) {
    if (c.k != canon::kind::list || c.items.size() % 2 != 0) {
        return;  // not a pair list; compared as is
    }
    std::vector<canon> grouped;
    grouped.reserve(c.items.size() / 2);
    for (std::size_t n = 0; n < c.items.size(); n += 2) {
        canon pair;
        pair.k = canon::kind::list;
        pair.items.push_back(std::move(c.items[n]));
        pair.items.push_back(std::move(c.items[n + 1]));
        grouped.push_back(std::move(pair));
    }
    std::sort(grouped.begin(), grouped.end(), less);
    c.items = std::move(grouped);
}

bool as_integer(const canon& c, std::int64_t& out) {
    if (c.k == canon::kind::integer) {
        out = c.i;
        return true;
    }
    return c.k == canon::kind::text && parse_integer(c.text, out);
}

// Both sides are TTLs: -1 (no expiry) and -2 (no key) must match exactly; remaining times may
// drift by the tolerance because the two reads happen at different instants.
bool ttl_equal(const canon& a, const canon& b, const shadow_rule& rule,
               const compare_options& options) {
    std::int64_t x = 0;
    std::int64_t y = 0;
    if (!as_integer(a, x) || !as_integer(b, y)) {
        return false;
    }
    if (x < 0 || y < 0) {
        return x == y;
    }
    const std::int64_t ms = std::max<std::int64_t>(options.ttl_tolerance_ms, 0);
    const std::int64_t tolerance = rule.seconds ? (ms + 999) / 1000 + 1 : ms;
    return (x > y ? x - y : y - x) <= tolerance;
}

bool is_missing_scalar(const canon& c, missing_form form) {
    switch (form) {
        case missing_form::nil_or_empty:
            return false;
        case missing_form::zero:
            return c.k == canon::kind::integer && c.i == 0;
        case missing_form::type_none:
            return c.k == canon::kind::text && c.text == "none";
        case missing_form::ttl_missing: {
            std::int64_t n = 0;
            return as_integer(c, n) && n == -2;
        }
    }
    return false;
}

// What a missing key looks like: nil, an empty collection, a collection of nils (MGET of
// missing keys) or the command's own marker (0, "none", -2), alone or per element.
bool looks_missing(const canon& c, missing_form form) {
    if (c.k == canon::kind::nil || is_missing_scalar(c, form)) {
        return true;
    }
    if (c.k != canon::kind::list) {
        return false;
    }
    return std::all_of(c.items.begin(), c.items.end(), [form](const canon& e) {
        return e.k == canon::kind::nil || is_missing_scalar(e, form);
    });
}

// One consumer group of an XINFO GROUPS reply: its name and the fields two servers holding the
// same stream agree on, sorted by field name. Idle times and lag are left out: idle times tick,
// and lag is nil on a server that cannot compute it (after deletions, a RESTORE).
struct group_state {
    std::string name;
    std::vector<std::pair<std::string, canon>> fields;
};

bool stable_group_field(std::string_view field) {
    return field == "name" || field == "consumers" || field == "pending" ||
           field == "last-delivered-id" || field == "entries-read";
}

// nullopt when the reply is not a list of field/value lists (then it is compared exactly).
std::optional<std::vector<group_state>> groups_of(const canon& reply) {
    if (reply.k != canon::kind::list) {
        return std::nullopt;
    }
    std::vector<group_state> out;
    out.reserve(reply.items.size());
    for (const auto& g : reply.items) {
        if (g.k != canon::kind::list || g.items.size() % 2 != 0) {
            return std::nullopt;
        }
        group_state s;
        bool named = false;
        for (std::size_t n = 0; n < g.items.size(); n += 2) {
            const canon& field = g.items[n];
            if (field.k != canon::kind::text || !stable_group_field(field.text)) {
                continue;
            }
            if (field.text == "name") {
                if (g.items[n + 1].k != canon::kind::text) {
                    return std::nullopt;
                }
                s.name = g.items[n + 1].text;
                named = true;
            }
            s.fields.emplace_back(field.text, g.items[n + 1]);
        }
        if (!named) {
            return std::nullopt;
        }
        std::sort(s.fields.begin(), s.fields.end(),
                  [](const auto& x, const auto& y) { return x.first < y.first; });
        out.push_back(std::move(s));
    }
    return out;
}

// Per group name: missing on the secondary first (the consumer's position is lost), then
// different state, then groups only the secondary has.
std::optional<divergence_kind> compare_groups(const canon& primary, const canon& secondary,
                                              const comparer& eq) {
    auto a = groups_of(primary);
    auto b = groups_of(secondary);
    if (!a || !b) {
        return eq.equal(primary, secondary) ? std::nullopt
                                            : std::optional(divergence_kind::data_mismatch);
    }
    const auto find = [](const std::vector<group_state>& in, std::string_view name) {
        return std::find_if(in.begin(), in.end(),
                            [name](const group_state& g) { return g.name == name; });
    };
    bool differ = false;
    for (const auto& g : *a) {
        const auto other = find(*b, g.name);
        if (other == b->end()) {
            return divergence_kind::migration_gap;
        }
        differ = differ || g.fields.size() != other->fields.size() ||
                 !std::equal(g.fields.begin(), g.fields.end(), other->fields.begin(),
                             [&eq](const auto& x, const auto& y) {
                                 return x.first == y.first && eq.equal(x.second, y.second);
                             });
    }
    if (differ) {
        return divergence_kind::data_mismatch;
    }
    for (const auto& g : *b) {
        if (find(*a, g.name) == a->end()) {
            return divergence_kind::extra_data;
        }
    }
    return std::nullopt;
}

bool stable_stream_field(std::string_view field) {
    return field == "length" || field == "last-generated-id" || field == "max-deleted-entry-id" ||
           field == "entries-added" || field == "recorded-first-entry-id";
}

// The stable fields of an XINFO STREAM reply (a map, or flat field/value pairs in RESP2), sorted
// by name; nullopt when it is not field/value pairs.
std::optional<std::vector<std::pair<std::string, canon>>> stream_fields(const canon& reply) {
    if (reply.k != canon::kind::list || reply.items.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<std::pair<std::string, canon>> out;
    for (std::size_t n = 0; n < reply.items.size(); n += 2) {
        const canon& field = reply.items[n];
        if (field.k != canon::kind::text) {
            return std::nullopt;
        }
        if (stable_stream_field(field.text)) {
            out.emplace_back(field.text, reply.items[n + 1]);
        }
    }
    std::sort(out.begin(), out.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    return out;
}

// The fields both sides report must agree (a server that predates a field does not report it).
std::optional<divergence_kind> compare_stream_info(const canon& primary, const canon& secondary,
                                                   const comparer& eq) {
    auto a = stream_fields(primary);
    auto b = stream_fields(secondary);
    if (!a || !b) {
        return eq.equal(primary, secondary) ? std::nullopt
                                            : std::optional(divergence_kind::data_mismatch);
    }
    for (const auto& [field, value] : *a) {
        const auto other =
            std::find_if(b->begin(), b->end(), [&](const auto& f) { return f.first == field; });
        if (other != b->end() && !eq.equal(value, other->second)) {
            return divergence_kind::data_mismatch;
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<divergence_kind> compare(const shadow_rule& rule, const resp::value& primary,
                                       const resp::value& secondary,
                                       const compare_options& options) {
    if (rule.mode == shadow_mode::skip) {
        return std::nullopt;
    }
    if (secondary.is_error()) {
        if (primary.is_error() && error_code(primary.str()) == error_code(secondary.str())) {
            return std::nullopt;
        }
        return divergence_kind::secondary_error;
    }
    if (primary.is_error()) {
        // Callers shadow only successful primary reads; if they do not, data on the secondary
        // where the primary refused is a mismatch.
        return divergence_kind::data_mismatch;
    }

    canon a = normalise(primary);
    canon b = normalise(secondary);
    if (rule.mode == shadow_mode::consumer_groups) {
        return compare_groups(a, b, comparer{false, options.score_epsilon});
    }
    if (rule.mode == shadow_mode::stream_info) {
        return compare_stream_info(a, b, comparer{false, options.score_epsilon});
    }
    bool same = false;
    switch (rule.mode) {
        case shadow_mode::skip:
        case shadow_mode::consumer_groups:
        case shadow_mode::stream_info:
            return std::nullopt;
        case shadow_mode::exact:
            same = comparer{false, options.score_epsilon}.equal(a, b);
            break;
        case shadow_mode::unordered:
            sort_members(a);
            sort_members(b);
            same = comparer{false, options.score_epsilon}.equal(a, b);
            break;
        case shadow_mode::unordered_pairs:
            sort_pairs(a);
            sort_pairs(b);
            same = comparer{false, options.score_epsilon}.equal(a, b);
            break;
        case shadow_mode::ttl:
            same = ttl_equal(a, b, rule, options);
            break;
        case shadow_mode::scored:
            flatten_pairs(a);
            flatten_pairs(b);
            same = comparer{true, options.score_epsilon}.equal(a, b);
            break;
        case shadow_mode::streams_by_key:
            flatten_pairs(a);
            flatten_pairs(b);
            same = comparer{false, options.score_epsilon}.equal(a, b);
            break;
    }
    if (same) {
        return std::nullopt;
    }

    const bool primary_missing = looks_missing(a, rule.missing);
    const bool secondary_missing = looks_missing(b, rule.missing);
    if (primary_missing && secondary_missing) {
        return std::nullopt;  // e.g. nil vs an empty array: both say "no such key"
    }
    if (secondary_missing) {
        return divergence_kind::migration_gap;
    }
    if (primary_missing) {
        return divergence_kind::extra_data;
    }
    return divergence_kind::data_mismatch;
}

std::optional<divergence_kind> compare_transport_failure(const shadow_rule& rule) noexcept {
    if (rule.mode == shadow_mode::skip) {
        return std::nullopt;
    }
    return divergence_kind::secondary_error;
}

}  // namespace respite::proxy
