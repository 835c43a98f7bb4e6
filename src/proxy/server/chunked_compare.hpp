// PROXY VERIFY of one big collection key (or long string) in bounded chunks, so that neither
// backend nor the proxy ever handles more than about `chunk` elements (bytes) of it at once.
//
// One pass: the sizes (HLEN, LLEN, SCARD, ZCARD, XLEN, STRLEN) on both sides, then the value
// window by window, in order: lists by LRANGE and sorted sets by ZRANGE ... WITHSCORES (rank
// windows, which align on both sides), strings by GETRANGE (byte windows), streams by
// XRANGE ... COUNT continuing after the last ID, hashes
// and sets by the serving side's HSCAN / SSCAN pages, looked up on the other side with HMGET /
// SMISMEMBER (equal sizes and every serving element present and equal make equal values). The
// first window that differs ends the pass. After a differing first pass the key is compared
// again from the start once the follower applied the key's writes; a window that differs again
// goes to the shadow reader's compare, whose re-check reports it (or counts it unstable), so
// live writes do not cause false reports and divergences have one reporter.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "shadow_reader.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

// The size command of a collection type ("hash" -> HLEN, ...) or of a string (STRLEN); empty
// for other types.
[[nodiscard]] std::string_view size_command(std::string_view type) noexcept;

// Compares `key`, a collection of `type` on the serving side, with the other side in chunks of
// `chunk` elements, one read at a time. `cancelled` is asked before each window (a stopped run
// ends with error). done runs once with the key's outcome, on a backend's or the control thread.
void compare_chunked(shared_state& st, side serving, std::string key, std::string type,
                     std::size_t chunk, std::function<bool()> cancelled,
                     shadow_reader::done_fn done);

}  // namespace respite::proxy::server
