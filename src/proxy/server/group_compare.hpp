// PROXY VERIFY of a stream's state beyond its entries: XINFO STREAM, XINFO GROUPS, then XPENDING
// of each group, read on the serving side one after the other and compared through the shadow
// reader (its re-check and reporter), so a group lost or moved on the other side is found like
// any other divergence.
//
// XINFO STREAM is compared on length, last-generated-id, max-deleted-entry-id, entries-added and
// recorded-first-entry-id, those both sides report (shadow_mode::stream_info): a stream whose
// entries agree but whose last-generated-id is behind would hand out IDs again after the cut-over.
// XINFO GROUPS is compared per group name on the stable fields (shadow_mode::consumer_groups:
// name, consumers, pending, last-delivered-id, entries-read; not lag); the XPENDING summary
// (count, smallest and greatest ID, per-consumer counts) exactly. The XPENDING reads run only
// when XINFO GROUPS agreed: a missing group would only repeat itself as NOGROUP errors.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "shadow_reader.hpp"
#include "worker.hpp"

namespace respite::proxy::server {

// Compares the XINFO STREAM state and the consumer groups of stream `key` with the other side,
// one read at a time.
// `cancelled` is asked before each read. each(outcome) runs once per compare handed to the
// shadow reader; done(groups) runs once at the end with the number of the serving side's groups
// that were compared. Both run on a backend's or the control thread.
void compare_groups(shared_state& st, side serving, std::string key,
                    std::function<bool()> cancelled, std::function<void(shadow_outcome)> each,
                    std::move_only_function<void(std::size_t)> done);

}  // namespace respite::proxy::server
