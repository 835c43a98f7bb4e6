// libFuzzer target for the JSON log line (src/obs/json_line.cpp): any message, with user keys
// and values of any bytes in it, must give one line of valid JSON with an "event" string.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include <respite/obs/json_line.hpp>

#include "fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view message(reinterpret_cast<const char*>(data), size);
    const auto line = respite::obs::json_log_line("2026-01-01T00:00:00.000Z", "info", message);
    FUZZ_CHECK(line.find('\n') == std::string::npos);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    FUZZ_CHECK(!j.is_discarded() && j.is_object());
    FUZZ_CHECK(j.contains("event") && j["event"].is_string());
    FUZZ_CHECK(j["level"] == "info");
    return 0;
}
