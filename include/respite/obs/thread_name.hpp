// Thread names for top -H, perf and gdb, and the background scheduling class.
#pragma once

#include <string_view>

namespace respite::obs {

void name_this_thread(std::string_view name) noexcept;

// Marks the calling thread as background work (Linux SCHED_BATCH: the same share of the CPU at
// the same nice level, but its wake-ups do not preempt the thread that is running). For threads
// off the clients' critical path whose wake-ups would otherwise cut into the threads serving
// clients. False when the system refuses (the thread keeps its policy).
bool make_this_thread_background() noexcept;

}  // namespace respite::obs
