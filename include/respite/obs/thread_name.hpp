// Names the calling thread for top -H, perf and gdb (Linux keeps 15 bytes; longer is cut).
#pragma once

#include <string_view>

namespace respite::obs {

void name_this_thread(std::string_view name) noexcept;

}  // namespace respite::obs
