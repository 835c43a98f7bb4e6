// Shadow reads: which reads to mirror to the secondary, how to compare the two replies, sampling.
//
// Module boundary (respite_proxy_shadow): sans-I/O. Depends on resp, commands and obs only; no
// Asio, no sockets, no clocks read behind the caller's back. The server module sends the reads
// and feeds the replies in.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <respite/commands/command_table.hpp>
#include <respite/proxy/divergence.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy {

// How two replies to the same read are compared once normalised (RESP2/RESP3 shapes, null
// forms, simple vs bulk strings and numbers written as text vs doubles are always unified).
enum class shadow_mode : std::uint8_t {
    skip,             // never shadowed: random, cursor, admin, mutating, blocking, scripted...
    exact,            // element by element, in order
    unordered,        // the top-level collection is a set (SMEMBERS, KEYS, HKEYS, ...)
    unordered_pairs,  // the top-level collection is field/value pairs (HGETALL, CONFIG GET)
    ttl,              // a remaining or absolute expiry: equal within a tolerance
    scored,           // holds scores: numbers compared by value ("1.5" equals the double 1.5)
    // XREAD: stream name -> entries, a map in RESP3 and an array of [name, entries] pairs in
    // RESP2; compared as flat pairs, in order (a RESP2 client's reply against a RESP3 reread).
    streams_by_key,
    // XINFO GROUPS: groups matched by name on their stable fields (name, consumers, pending,
    // last-delivered-id, entries-read); idle times and lag differ between servers and are not
    // compared. Never chosen by rule_for (XINFO is skipped); PROXY VERIFY builds it.
    consumer_groups,
    // XINFO STREAM: the stream's own state that its entries do not show (length,
    // last-generated-id, max-deleted-entry-id, entries-added, recorded-first-entry-id), the
    // fields both replies have (a Redis 6.2 side lacks the 7.0 ones); radix-tree sizes, the
    // group count and the first/last entries are not compared. Never chosen by rule_for;
    // PROXY VERIFY builds it.
    stream_info,
};

std::string_view name(shadow_mode m) noexcept;

// What a command answers for a key that does not exist, beyond nil and empty collections (which
// always count as "missing"). Used to tell a migration gap from a real mismatch.
enum class missing_form : std::uint8_t {
    nil_or_empty,  // only nil / empty array, set or map (and arrays of nils, as MGET gives)
    zero,          // also integer 0, or an array of zeros (EXISTS, SCARD, STRLEN, SMISMEMBER, ...)
    type_none,     // also the status "none" (TYPE)
    ttl_missing,   // also integer -2 (TTL, PTTL, EXPIRETIME, PEXPIRETIME)
};

struct shadow_rule {
    shadow_mode mode = shadow_mode::skip;
    missing_form missing = missing_form::nil_or_empty;
    // ttl only: the reply counts seconds (TTL, EXPIRETIME) rather than milliseconds.
    bool seconds = false;
    // skip only: a static reason for logs and tests ("nondeterministic", "not_readonly", ...).
    std::string_view reason;

    [[nodiscard]] bool shadowed() const noexcept { return mode != shadow_mode::skip; }
};

// The rule for a request (args[0] is the command, any case). Unknown commands and anything the
// table does not flag readonly are skipped; see src/proxy/shadow/README.md for the full lists.
[[nodiscard]] shadow_rule rule_for(std::span<const std::string_view> args,
                                   const commands::command_table& table);

struct compare_options {
    // ttl rules: PTTL/PEXPIRETIME may differ by this much; TTL/EXPIRETIME (whole seconds) by
    // ceil(ttl_tolerance_ms / 1000) + 1 seconds, because both sides round down independently.
    std::int64_t ttl_tolerance_ms = 2000;
    // scored rules: relative tolerance for numbers, so a score printed with 17 digits on one
    // side and parsed from a RESP3 double on the other still compares equal.
    double score_epsilon = 1e-12;
};

// nullopt when the replies agree after normalisation; otherwise the kind of divergence:
//   - the secondary replied with an error the primary did not give (or a different error code
//     such as WRONGTYPE vs ERR) -> secondary_error;
//   - the primary has data and the secondary looks missing (nil, empty, the rule's missing_form)
//     -> migration_gap;
//   - the primary looks missing and the secondary has data -> extra_data;
//   - anything else -> data_mismatch.
// consumer_groups classifies per group: a group of the primary missing on the secondary ->
// migration_gap, else a group whose stable fields differ -> data_mismatch, else a group only the
// secondary has -> extra_data.
// stream_info gives data_mismatch when a field both replies have differs.
// Two errors with the same code (first word) agree: stores word their messages differently.
// A rule in skip mode compares nothing and gives nullopt.
[[nodiscard]] std::optional<divergence_kind> compare(const shadow_rule& rule,
                                                     const resp::value& primary,
                                                     const resp::value& secondary,
                                                     const compare_options& options = {});

// The kind for a shadow read whose secondary never answered (timeout, connection lost): always
// secondary_error, never a migration gap (the original proxy's bug), nullopt for a skip rule.
[[nodiscard]] std::optional<divergence_kind> compare_transport_failure(
    const shadow_rule& rule) noexcept;

// Deterministic key-hash sampling: true for `percent` (0..100) of all keys, always the same keys
// for the same percentage, in every process and on every platform (FNV-1a then a 64-bit mixer;
// not std::hash). Raising the percentage keeps every key sampled before. Multi-key reads are
// sampled by their first key.
[[nodiscard]] bool sampled(std::string_view key, double percent) noexcept;

// Sampling for keyless reads (KEYS, DBSIZE-like commands): exactly `percent` of the calls, spread
// evenly, by a counter. Thread-safe.
class keyless_sampler {
  public:
    [[nodiscard]] bool next(double percent) noexcept;

  private:
    std::atomic<std::uint64_t> calls_{0};
};

}  // namespace respite::proxy
