// compare(): RESP2/RESP3 normalisation, per-rule comparison and divergence classification.
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy {
namespace {

// Options with a few fields set (designated initialisers that skip fields warn on GCC 12).
template <class T, class F>
T options(F set) {
    T o;
    set(o);
    return o;
}

using resp::value;

value bulk(std::string s) {
    return value::bulk_string(std::move(s));
}
value arr(std::vector<value> v) {
    return value::array(std::move(v));
}

shadow_rule rule(std::vector<std::string_view> args) {
    return rule_for(args, commands::command_table::builtin());
}

std::optional<divergence_kind> cmp(std::vector<std::string_view> args, const value& p,
                                   const value& s, compare_options o = {}) {
    return compare(rule(std::move(args)), p, s, o);
}

TEST(shadow_compare, equal_strings_agree) {
    EXPECT_EQ(cmp({"GET", "k"}, bulk("v"), bulk("v")), std::nullopt);
}

TEST(shadow_compare, simple_and_bulk_strings_agree) {
    EXPECT_EQ(cmp({"TYPE", "k"}, value::simple_string("string"), bulk("string")), std::nullopt);
}

TEST(shadow_compare, null_forms_agree) {
    EXPECT_EQ(cmp({"GET", "k"}, value::null(resp::null_kind::bulk), value::null()), std::nullopt);
    EXPECT_EQ(cmp({"LPOS", "l", "x"}, value::null(resp::null_kind::array),
                  value::null(resp::null_kind::bulk)),
              std::nullopt);
}

TEST(shadow_compare, nil_and_empty_array_both_mean_missing) {
    EXPECT_EQ(cmp({"LRANGE", "l", "0", "-1"}, value::null(), arr({})), std::nullopt);
}

TEST(shadow_compare, different_values_are_a_mismatch) {
    EXPECT_EQ(cmp({"GET", "k"}, bulk("a"), bulk("b")), divergence_kind::data_mismatch);
}

TEST(shadow_compare, exact_lists_are_order_sensitive) {
    EXPECT_EQ(
        cmp({"LRANGE", "l", "0", "-1"}, arr({bulk("a"), bulk("b")}), arr({bulk("b"), bulk("a")})),
        divergence_kind::data_mismatch);
    EXPECT_EQ(
        cmp({"LRANGE", "l", "0", "-1"}, arr({bulk("a"), bulk("b")}), arr({bulk("a"), bulk("b")})),
        std::nullopt);
}

TEST(shadow_compare, smembers_array_and_set_in_any_order_agree) {
    const value resp2 = arr({bulk("a"), bulk("b"), bulk("c")});
    const value resp3 = value::set({bulk("c"), bulk("a"), bulk("b")});
    EXPECT_EQ(cmp({"SMEMBERS", "s"}, resp2, resp3), std::nullopt);
    EXPECT_EQ(cmp({"SMEMBERS", "s"}, resp3, resp2), std::nullopt);
}

TEST(shadow_compare, smembers_with_a_missing_member_is_a_mismatch) {
    EXPECT_EQ(cmp({"SMEMBERS", "s"}, arr({bulk("a"), bulk("b")}), value::set({bulk("a")})),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, hgetall_flat_array_and_map_agree_in_any_order) {
    const value resp2 = arr({bulk("f1"), bulk("v1"), bulk("f2"), bulk("v2")});
    const value resp3 = value::map({bulk("f2"), bulk("v2"), bulk("f1"), bulk("v1")});
    EXPECT_EQ(cmp({"HGETALL", "h"}, resp2, resp3), std::nullopt);
}

TEST(shadow_compare, hgetall_pairs_keep_their_values) {
    // Sorting fields and values separately would call these equal.
    const value p = arr({bulk("f1"), bulk("v1"), bulk("f2"), bulk("v2")});
    const value s = value::map({bulk("f1"), bulk("v2"), bulk("f2"), bulk("v1")});
    EXPECT_EQ(cmp({"HGETALL", "h"}, p, s), divergence_kind::data_mismatch);
}

TEST(shadow_compare, unordered_pairs_rule_serves_config_get_directly) {
    shadow_rule pairs;
    pairs.mode = shadow_mode::unordered_pairs;
    const value a = value::map({bulk("maxmemory"), bulk("0"), bulk("appendonly"), bulk("no")});
    const value b = arr({bulk("appendonly"), bulk("no"), bulk("maxmemory"), bulk("0")});
    EXPECT_EQ(compare(pairs, a, b), std::nullopt);
}

// An XINFO GROUPS entry as RESP2 sends it (RESP3 sends the same pairs as a map).
value group(std::string name, std::int64_t pending, std::string last, value lag) {
    return arr({bulk("name"), bulk(std::move(name)), bulk("consumers"), value::integer(2),
                bulk("pending"), value::integer(pending), bulk("last-delivered-id"),
                bulk(std::move(last)), bulk("entries-read"), value::integer(3), bulk("lag"),
                std::move(lag)});
}

shadow_rule groups_rule() {
    shadow_rule r;
    r.mode = shadow_mode::consumer_groups;
    return r;
}

TEST(shadow_compare, consumer_groups_ignore_lag_order_and_protocol) {
    const value p =
        arr({group("a", 2, "3-1", value::integer(0)), group("b", 0, "0-0", value::integer(3))});
    auto as_map = [](const value& g) { return value::map(g.elements()); };
    const value s = arr(
        {as_map(group("b", 0, "0-0", value::null())), as_map(group("a", 2, "3-1", value::null()))});
    EXPECT_EQ(compare(groups_rule(), p, s), std::nullopt);
}

TEST(shadow_compare, consumer_groups_classify_each_group) {
    const value both =
        arr({group("a", 2, "3-1", value::integer(0)), group("b", 0, "0-0", value::integer(0))});
    const value only_a = arr({group("a", 2, "3-1", value::integer(0))});
    EXPECT_EQ(compare(groups_rule(), both, only_a), divergence_kind::migration_gap);
    EXPECT_EQ(compare(groups_rule(), both, arr({})), divergence_kind::migration_gap);
    EXPECT_EQ(compare(groups_rule(), only_a, both), divergence_kind::extra_data);
    EXPECT_EQ(compare(groups_rule(), only_a, arr({group("a", 1, "3-1", value::integer(0))})),
              divergence_kind::data_mismatch);
    EXPECT_EQ(compare(groups_rule(), only_a, arr({group("a", 2, "0-0", value::integer(0))})),
              divergence_kind::data_mismatch);
    // XINFO is never shadowed by rule_for.
    EXPECT_FALSE(rule({"XINFO", "GROUPS", "s"}).shadowed());
}

// An XINFO STREAM reply of Redis 7.0 (RESP2 shape), with the fields a test changes.
value stream_info(std::int64_t length, std::string last_id, std::int64_t entries_added,
                  std::int64_t radix_nodes) {
    return arr({bulk("length"),
                value::integer(length),
                bulk("radix-tree-keys"),
                value::integer(1),
                bulk("radix-tree-nodes"),
                value::integer(radix_nodes),
                bulk("last-generated-id"),
                bulk(std::move(last_id)),
                bulk("max-deleted-entry-id"),
                bulk("0-0"),
                bulk("entries-added"),
                value::integer(entries_added),
                bulk("recorded-first-entry-id"),
                bulk("1-1"),
                bulk("groups"),
                value::integer(1),
                bulk("first-entry"),
                arr({bulk("1-1"), arr({bulk("f"), bulk("v")})}),
                bulk("last-entry"),
                arr({bulk("5-1"), arr({bulk("f"), bulk("v")})})});
}

shadow_rule stream_rule() {
    shadow_rule r;
    r.mode = shadow_mode::stream_info;
    return r;
}

TEST(shadow_compare, stream_info_compares_ids_and_counters_not_the_encoding) {
    const value p = stream_info(3, "5-1", 7, 2);
    // The same state as a RESP3 map, with another radix tree and group count.
    value s = stream_info(3, "5-1", 7, 9);
    s = value::map(s.elements());
    EXPECT_EQ(compare(stream_rule(), p, s), std::nullopt);
    EXPECT_EQ(compare(stream_rule(), p, stream_info(3, "6-0", 7, 2)),
              divergence_kind::data_mismatch);
    EXPECT_EQ(compare(stream_rule(), p, stream_info(3, "5-1", 8, 2)),
              divergence_kind::data_mismatch);
    EXPECT_EQ(compare(stream_rule(), p, stream_info(2, "5-1", 7, 2)),
              divergence_kind::data_mismatch);
    // XINFO is never shadowed by rule_for.
    EXPECT_FALSE(rule({"XINFO", "STREAM", "s"}).shadowed());
}

TEST(shadow_compare, stream_info_of_an_older_server_compares_the_fields_it_has) {
    // Redis 6.2 reports neither entries-added nor max-deleted-entry-id nor
    // recorded-first-entry-id.
    const value old = arr({bulk("length"), value::integer(3), bulk("last-generated-id"),
                           bulk("5-1"), bulk("groups"), value::integer(0)});
    EXPECT_EQ(compare(stream_rule(), old, stream_info(3, "5-1", 42, 2)), std::nullopt);
    EXPECT_EQ(compare(stream_rule(), stream_info(3, "5-1", 42, 2), old), std::nullopt);
    EXPECT_EQ(compare(stream_rule(), old, stream_info(3, "4-0", 42, 2)),
              divergence_kind::data_mismatch);
    // Not field/value pairs: compared exactly.
    EXPECT_EQ(compare(stream_rule(), arr({bulk("x")}), arr({bulk("x")})), std::nullopt);
    EXPECT_EQ(compare(stream_rule(), arr({bulk("x")}), arr({bulk("y")})),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, zrange_withscores_flat_and_nested_agree) {
    const value resp2 = arr({bulk("a"), bulk("1.5"), bulk("b"), bulk("2")});
    const value resp3 =
        arr({arr({bulk("a"), value::double_(1.5)}), arr({bulk("b"), value::double_(2.0)})});
    EXPECT_EQ(cmp({"ZRANGE", "z", "0", "-1", "WITHSCORES"}, resp2, resp3), std::nullopt);
}

TEST(shadow_compare, zrange_withscores_detects_a_different_score) {
    const value resp2 = arr({bulk("a"), bulk("1.5")});
    const value resp3 = arr({arr({bulk("a"), value::double_(1.25)})});
    EXPECT_EQ(cmp({"ZRANGE", "z", "0", "-1", "WITHSCORES"}, resp2, resp3),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, zscore_text_and_double_agree) {
    EXPECT_EQ(cmp({"ZSCORE", "z", "m"}, bulk("1.5"), value::double_(1.5)), std::nullopt);
    EXPECT_EQ(cmp({"ZSCORE", "z", "m"}, bulk("inf"), value::double_(1.0 / 0.0)), std::nullopt);
    EXPECT_EQ(cmp({"ZSCORE", "z", "m"}, bulk("0.1"), bulk("0.10000000000000001")), std::nullopt);
}

TEST(shadow_compare, zmscore_with_nils_agrees_across_protocols) {
    const value resp2 = arr({bulk("1"), value::null(resp::null_kind::bulk)});
    const value resp3 = arr({value::double_(1.0), value::null()});
    EXPECT_EQ(cmp({"ZMSCORE", "z", "a", "b"}, resp2, resp3), std::nullopt);
}

TEST(shadow_compare, zscore_missing_on_secondary_is_a_gap) {
    EXPECT_EQ(cmp({"ZSCORE", "z", "m"}, bulk("3"), value::null()), divergence_kind::migration_gap);
}

TEST(shadow_compare, boolean_and_integer_agree) {
    EXPECT_EQ(cmp({"SISMEMBER", "s", "m"}, value::integer(1), value::boolean(true)), std::nullopt);
}

TEST(shadow_compare, pttl_within_tolerance_agrees) {
    EXPECT_EQ(cmp({"PTTL", "k"}, value::integer(10'000), value::integer(8'500)), std::nullopt);
    EXPECT_EQ(cmp({"PTTL", "k"}, value::integer(10'000), value::integer(8'000)), std::nullopt);
}

TEST(shadow_compare, pttl_beyond_tolerance_is_a_mismatch) {
    EXPECT_EQ(cmp({"PTTL", "k"}, value::integer(10'000), value::integer(7'999)),
              divergence_kind::data_mismatch);
    EXPECT_EQ(cmp({"PTTL", "k"}, value::integer(10'000), value::integer(7'000),
                  options<compare_options>([&](compare_options& o) { o.ttl_tolerance_ms = 5000; })),
              std::nullopt);
}

TEST(shadow_compare, ttl_in_seconds_allows_rounding) {
    // 2000 ms -> 2 s + 1 s for the independent rounding down.
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(100), value::integer(97)), std::nullopt);
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(100), value::integer(96)),
              divergence_kind::data_mismatch);
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(10), value::integer(9),
                  options<compare_options>([&](compare_options& o) { o.ttl_tolerance_ms = 0; })),
              std::nullopt);
}

TEST(shadow_compare, ttl_markers_must_match_exactly) {
    // -1: no expiry. A TTL that did not migrate is a mismatch, not drift.
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(1), value::integer(-1)),
              divergence_kind::data_mismatch);
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(-1), value::integer(-1)), std::nullopt);
}

TEST(shadow_compare, ttl_minus_two_on_secondary_is_a_gap) {
    EXPECT_EQ(cmp({"PTTL", "k"}, value::integer(5000), value::integer(-2)),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(-1), value::integer(-2)),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"TTL", "k"}, value::integer(-2), value::integer(30)),
              divergence_kind::extra_data);
}

TEST(shadow_compare, nil_on_secondary_is_a_migration_gap) {
    EXPECT_EQ(cmp({"GET", "k"}, bulk("v"), value::null()), divergence_kind::migration_gap);
}

TEST(shadow_compare, empty_collection_on_secondary_is_a_migration_gap) {
    EXPECT_EQ(cmp({"SMEMBERS", "s"}, value::set({bulk("a")}), value::set({})),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"HGETALL", "h"}, arr({bulk("f"), bulk("v")}), value::map({})),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"LRANGE", "l", "0", "-1"}, arr({bulk("a")}), arr({})),
              divergence_kind::migration_gap);
}

TEST(shadow_compare, zero_for_a_missing_key_is_a_migration_gap) {
    for (const std::string_view c : {"EXISTS", "SCARD", "HLEN", "LLEN", "ZCARD", "STRLEN"}) {
        EXPECT_EQ(cmp({c, "k"}, value::integer(3), value::integer(0)),
                  divergence_kind::migration_gap)
            << c;
    }
}

TEST(shadow_compare, zero_is_data_for_commands_without_that_meaning) {
    // GETRANGE never returns an integer; LINDEX "0" is a value. INCR-like values are writes.
    EXPECT_EQ(cmp({"BITPOS", "k", "1"}, value::integer(3), value::integer(0)),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, type_none_on_secondary_is_a_gap) {
    EXPECT_EQ(cmp({"TYPE", "k"}, value::simple_string("hash"), value::simple_string("none")),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"TYPE", "k"}, value::simple_string("hash"), value::simple_string("set")),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, mget_of_missing_keys_is_a_gap_but_partial_is_a_mismatch) {
    const value p = arr({bulk("a"), bulk("b")});
    EXPECT_EQ(cmp({"MGET", "x", "y"}, p, arr({value::null(), value::null()})),
              divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"MGET", "x", "y"}, p, arr({bulk("a"), value::null()})),
              divergence_kind::data_mismatch);
}

TEST(shadow_compare, data_only_on_secondary_is_extra_data) {
    EXPECT_EQ(cmp({"GET", "k"}, value::null(), bulk("v")), divergence_kind::extra_data);
    EXPECT_EQ(cmp({"EXISTS", "k"}, value::integer(0), value::integer(1)),
              divergence_kind::extra_data);
    EXPECT_EQ(cmp({"SMEMBERS", "s"}, arr({}), value::set({bulk("a")})),
              divergence_kind::extra_data);
}

TEST(shadow_compare, empty_string_is_data_not_missing) {
    EXPECT_EQ(cmp({"GET", "k"}, bulk(""), value::null()), divergence_kind::migration_gap);
    EXPECT_EQ(cmp({"GET", "k"}, value::null(), bulk("")), divergence_kind::extra_data);
}

TEST(shadow_compare, secondary_error_reply_is_its_own_kind) {
    EXPECT_EQ(cmp({"GET", "k"}, bulk("v"), value::simple_error("ERR connection lost")),
              divergence_kind::secondary_error);
    // Not a gap even when the primary has nothing.
    EXPECT_EQ(cmp({"GET", "k"}, value::null(), value::blob_error("ERR boom")),
              divergence_kind::secondary_error);
}

TEST(shadow_compare, same_error_code_on_both_sides_agrees) {
    EXPECT_EQ(cmp({"GET", "k"},
                  value::simple_error("WRONGTYPE Operation against a key holding the wrong kind"),
                  value::simple_error("WRONGTYPE wrong type")),
              std::nullopt);
    EXPECT_EQ(cmp({"GET", "k"}, value::simple_error("WRONGTYPE x"), value::simple_error("ERR x")),
              divergence_kind::secondary_error);
}

TEST(shadow_compare, transport_failure_is_a_secondary_error_not_a_gap) {
    EXPECT_EQ(compare_transport_failure(rule({"GET", "k"})), divergence_kind::secondary_error);
    EXPECT_EQ(compare_transport_failure(rule({"RANDOMKEY"})), std::nullopt);
}

TEST(shadow_compare, skip_rule_never_diverges) {
    EXPECT_EQ(cmp({"RANDOMKEY"}, bulk("a"), bulk("b")), std::nullopt);
}

TEST(shadow_compare, integer_as_numeric_text_agrees) {
    EXPECT_EQ(cmp({"STRLEN", "k"}, value::integer(5), bulk("5")), std::nullopt);
    EXPECT_EQ(cmp({"STRLEN", "k"}, value::integer(5), bulk("5x")), divergence_kind::data_mismatch);
}

TEST(shadow_compare, exact_mode_does_not_equate_differently_written_numbers) {
    // Values are bytes: "1.0" and "1" are different strings for GET.
    EXPECT_EQ(cmp({"GET", "k"}, bulk("1.0"), bulk("1")), divergence_kind::data_mismatch);
}

TEST(shadow_compare, verbatim_and_bulk_strings_agree) {
    EXPECT_EQ(cmp({"LCS", "a", "b"}, value::verbatim_string("txt", "ab"), bulk("ab")),
              std::nullopt);
}

// XREAD: RESP3's map of streams against RESP2's array of [name, entries] pairs (a RESP2 client's
// reply against the RESP3 reread): equal when the entries are, a mismatch when they differ.
TEST(shadow_compare, xread_in_resp2_and_resp3_agree_by_stream) {
    const auto entries = [](std::string_view v) {
        return arr({arr({bulk("1-1"), arr({bulk("f"), bulk(std::string(v))})})});
    };
    const value resp2 = arr({arr({bulk("s"), entries("v")}), arr({bulk("t"), entries("w")})});
    const value resp3 = value::map({bulk("s"), entries("v"), bulk("t"), entries("w")});
    const std::vector<std::string_view> xread{"XREAD", "STREAMS", "s", "t", "0", "0"};
    EXPECT_EQ(cmp(xread, resp2, resp3), std::nullopt);
    EXPECT_EQ(cmp(xread, resp3, resp2), std::nullopt);
    const value other = value::map({bulk("s"), entries("v"), bulk("t"), entries("x")});
    EXPECT_EQ(cmp(xread, resp2, other), divergence_kind::data_mismatch);
}

}  // namespace
}  // namespace respite::proxy
