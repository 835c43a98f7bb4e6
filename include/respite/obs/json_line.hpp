// One log message ("event key=value key=\"quoted value\" ... free text") as a JSON object line.
#pragma once

#include <string>
#include <string_view>

namespace respite::obs {

// {"ts":…,"level":…,"event":<the words before the first field>,<each key=value; numbers and
// booleans bare, the rest strings>,"note":<words after the fields>}, without a newline. Always
// valid JSON: control bytes escaped, bytes that are not UTF-8 replaced by U+FFFD.
std::string json_log_line(std::string_view ts, std::string_view level, std::string_view message);

}  // namespace respite::obs
