// Effect-based replay: the writes a secondary must apply for a command the primary just ran.
//
// Module boundary: effects is sans-I/O and depends only on resp and commands. It never talks to a
// server and keeps no state between calls; the clock is the caller's (effect_context::now_ms).
//
// Why not replay verbatim: a command whose outcome depends on the server (XADD *, SPOP, LPOP,
// EXPIRE's relative TTL, SET NX, INCRBYFLOAT's float formatting, ...) can do something different on
// the secondary, or the same thing later. The primary's reply says what actually happened, so the
// secondary gets that effect instead, in a form that is exact whatever the replay delay.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/commands/command_table.hpp>
#include <respite/proxy/merge_hint.hpp>
#include <respite/proxy/script_bodies.hpp>
#include <respite/resp/value.hpp>

namespace respite::proxy {

struct effect_context {
    // Unix milliseconds at which the primary ran the command (the proxy's clock when the reply
    // arrived): relative TTLs become absolute against it.
    std::int64_t now_ms = 0;
    // nullptr: commands::command_table::builtin().
    const commands::command_table* table = nullptr;
    // Scripts (EVAL, EVALSHA, FCALL) are copied by their KEYS instead of replayed, for scripts
    // that use TIME or randomness or run slowly on the secondary.
    bool copy_scripts = false;
    // Script bodies seen (SCRIPT LOAD, EVAL) and used to replay EVALSHA as EVAL; nullptr: none
    // (EVALSHA is replayed as written). The only state translate() touches, and the caller's.
    script_bodies* scripts = nullptr;
};

// What the secondary must do for one primary command (or one transaction). The caller runs
// `commands` in order and then, when `copy` is set, copies every key of `keys` from the primary
// (DUMP + RESTORE, or DEL when the primary no longer has it).
struct secondary_write {
    // Each command is its name followed by its arguments.
    std::vector<std::vector<std::string>> commands;
    // Every distinct key the primary command named, in argument order, filled even when nothing
    // is applied: it chooses the replay lane and marks keys dirty when a replay fails. For
    // PUBLISH and SPUBLISH it is the channel, so messages keep their order.
    std::vector<std::string> keys;
    // The effect cannot be derived from the reply: copy `keys` from the primary.
    bool copy = false;
    // The write reaches beyond `keys` (FLUSHALL, FLUSHDB, SWAPDB, SCRIPT FLUSH|LOAD, FUNCTION
    // LOAD|DELETE|FLUSH|RESTORE, keyless scripts, unknown commands): order it against every
    // lane. Set only when there is something to apply.
    bool global = false;
    // The integer the one command of `commands` answers on a target that holds what the primary
    // held (the primary's own reply, when the effect is the command or one with the same reply:
    // DEL, EXPIRE -> PEXPIREAT, HSETNX -> HSET ...). The follower compares: another answer means
    // the target differs on `keys` (e.g. a key expired on one side and not yet on the other),
    // which are then copied. Unset: no such check.
    std::optional<std::int64_t> expect_reply;
    // A transaction (translate_transaction): for each of `commands`, the integer it must answer
    // (as expect_reply of one command); empty when none is expected.
    std::vector<std::optional<std::int64_t>> expect_replies;

    // Nothing to run and nothing to copy.
    [[nodiscard]] bool none() const noexcept { return commands.empty() && !copy; }
};

// True when translate() may return something to apply for a request running `spec`: write
// commands, PUBLISH/SPUBLISH, non-read-only scripts, SCRIPT FLUSH|LOAD, single-key PFCOUNT (it
// rewrites the HyperLogLog's cached cardinality) and unknown commands (nullptr). Lets the caller
// skip the reply bookkeeping for plain reads.
[[nodiscard]] bool is_replayable_write(const commands::command_spec* spec) noexcept;

// args[0] is the command name in any case; `reply` is the primary's reply to it, RESP2 or RESP3.
// An error reply applies nothing (except for scripts, which may have written before failing:
// their KEYS are copied). A read applies nothing. MULTI/EXEC go through translate_transaction.
// The command's effect does not depend on its reply: any non-error reply means "replay it as
// written" (SET k v, HSET, LPUSH, INCR, DEL ...). The proxy's fast path forwards such writes'
// request bytes to the follower without decoding the reply.
[[nodiscard]] bool reply_independent(std::span<const std::string_view> args,
                                     const commands::command_table& table) noexcept;
// The same with the spec already looked up (table.lookup(args); the container of an unknown
// subcommand gives the same answer: false).
[[nodiscard]] bool reply_independent(const commands::command_spec* spec,
                                     std::span<const std::string_view> args) noexcept;

// For a write replayed as written (reply_independent): how it may merge with the next writes of
// its lane into one command: SET k v -> MSET (head 1, "MSET"); LPUSH/RPUSH/SADD/SREM/HSET/HDEL
// k ... with the same key (head 2). Anything else: head 0 (sent as it is).
[[nodiscard]] merge_hint merge_hint_of(const commands::command_spec* spec,
                                       std::span<const std::string_view> args) noexcept;

[[nodiscard]] secondary_write translate(std::span<const std::string_view> args,
                                        const resp::value& reply, const effect_context& ctx);

// A transaction: the commands queued between MULTI and EXEC and EXEC's reply. The result's
// commands are the concatenation of each command's effect (the caller wraps them in MULTI/EXEC);
// a command whose element of EXEC's reply is an error contributes nothing, and an aborted EXEC
// (nil, or an error such as EXECABORT) applies nothing. A reply that does not match the queue
// copies every key.
[[nodiscard]] secondary_write translate_transaction(
    const std::vector<std::vector<std::string>>& queued, const resp::value& exec_reply,
    const effect_context& ctx);

}  // namespace respite::proxy
