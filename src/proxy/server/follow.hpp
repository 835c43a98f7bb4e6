// The glue between a session's hot path and the off-path work: the follower (effects +
// replayer) and the shadow reader. Every function is cheap when the mode does not need it.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/proxy/merge_hint.hpp>
#include <respite/resp/value.hpp>

#include "classify.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

// Before a write goes to the serving side: records its keys in flight on the follower.
// False (keys untouched) when no follower runs in this mode.
// `origin`: the upstream connection (writes of one origin reach the server in order).
// `verbatim` (optional): set when any non-error reply means "replay the request as written";
// `merge` (optional, with verbatim): how it may join the next writes of its lane.
// A follower runs for writes served by `serving` in the current mode.
bool following(shared_state& st, side serving);
// The follower is copying a key of this write's stripes under a fence (replayer::fenced): the
// session holds the write and asks again, before follow_begin. Cheap when no fence is up.
bool follow_fenced(shared_state& st, side serving, const command_class& c,
                   std::span<const std::string_view> args);
bool follow_begin(shared_state& st, side serving, const command_class& c,
                  std::span<const std::string_view> args, std::vector<std::string>& keys,
                  std::uint64_t origin, bool* verbatim = nullptr, merge_hint* merge = nullptr);
// The write's reply arrived (raw frame in `protocol`): derive its effect and queue it.
// `request`: the command as RESP bytes (empty: follow_begin returned false).
// `global`: what follow_begin began for it (keys.empty() for one command).
void follow_reply(shared_state& st, side serving, std::string_view request,
                  const std::vector<std::string>& keys, bool global, bool verbatim,
                  std::string_view frame, int protocol, merge_hint merge = {});
// A blocking command (BLPOP, BLMOVE, BZPOPMIN ...): its keys are not counted in flight while
// it waits (replayer::begin_uncounted); `gens` keeps their generations for its end.
bool follow_begin_blocking(shared_state& st, side serving, const command_class& c,
                           std::span<const std::string_view> args, std::vector<std::string>& keys,
                           std::uint64_t origin, std::vector<std::uint64_t>& gens);
// Its reply arrived: its keys turn dirty if it popped while something moved them
// (replayer::end_uncounted), then its effect is queued.
void follow_blocking_reply(shared_state& st, side serving, std::string_view request,
                           const std::vector<std::string>& keys,
                           const std::vector<std::uint64_t>& gens, std::string_view frame);
// It failed: keys dirty when it may have run.
void follow_blocking_abandon(shared_state& st, side serving, const std::vector<std::string>& keys,
                             bool outcome_unknown);
// Before EXEC goes out: begins the keys of the transaction's writes (and the keyspace once when
// a write has no key). False when nothing is followed.
bool follow_begin_transaction(shared_state& st, side serving,
                              const std::vector<std::vector<std::string>>& queued,
                              std::vector<std::string>& keys, bool& global, std::uint64_t origin);
// EXEC's reply arrived: the transaction's effect, applied atomically, only if it ran.
void follow_transaction(shared_state& st, side serving,
                        const std::vector<std::vector<std::string>>& queued,
                        const std::vector<std::string>& keys, bool global, std::string_view frame,
                        int protocol);
// Empties a finished write's key list, keeping the strings' buffers for this thread's next
// writes (follow_begin's keys).
void recycle_keys(std::vector<std::string>& keys);
// The write failed before a reply: `outcome_unknown` when it may have run.
void follow_abandon(shared_state& st, side serving, const std::vector<std::string>& keys,
                    bool global, bool outcome_unknown);
// A read reply arrived: compare it against the other side when sampled (never blocks).
bool shadow_wanted(shared_state& st, const command_class& c,
                   std::span<const std::string_view> args);
void shadow_read(shared_state& st, side serving, std::vector<std::string> args,
                 std::string_view frame, int protocol);

// A client left while blocked and its pop happened anyway: undo the pop on the serving side
// (LPUSH / RPUSH / LMOVE back / ZADD), through the follower like any write.
// The commands that undo a blocking pop (BLPOP, BLMOVE, BLMPOP, BZPOPMIN ...) whose reply, `v`,
// nobody received: they put the popped values back where they were.
std::vector<std::vector<std::string>> undo_pop(const std::vector<std::string>& args,
                                               const resp::value& v);
void push_back_popped(worker& w, side serving, const std::vector<std::string>& args,
                      std::string_view frame, int protocol);

// The side that serves now: only its follower copies keys (repairs); the other follower's copies
// would read the side that no longer serves and overwrite newer values with older ones (a forced
// cut-over leaves dirty or refused keys behind). Its keys wait until its side serves again.
void follow_serving(shared_state& st, side serving);
// Start-up and shutdown of the replayers, shadow reader and reporters.
std::expected<void, std::string> start_follow(shared_state& st);
void stop_follow(shared_state& st, std::chrono::steady_clock::time_point deadline);
// What the side about to serve still misses (queued writes, dirty keys); empty when caught up.
// `serving`: the side that serves now (its follower is the one that must be drained).
std::string follower_backlog(shared_state& st, side serving);
// The keys the side about to serve refused to copy (they are missing there), as a reason to
// refuse the switch; empty when there are none. `serving`: the side that serves now.
std::string follower_rejected(shared_state& st, side serving);
// INFO proxy lines about followers, shadows and divergences.
std::string follow_info(const shared_state& st);

}  // namespace respite::proxy::server
