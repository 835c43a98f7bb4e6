// What the benchmarks share: running a peer program and reading its output.
#pragma once

#include <array>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace respite::bench {

// Runs a shell command (a peer such as redis-benchmark) and returns its standard output.
// The fields of one redis-benchmark --csv line (quoted, comma-separated).
inline std::vector<std::string> csv_fields(const std::string& line) {
    std::vector<std::string> f;
    std::string cur;
    bool q = false;
    for (char ch : line) {
        if (ch == '"') {
            q = !q;
        } else if (ch == ',' && !q) {
            f.push_back(cur);
            cur.clear();
        } else if (ch != '\r') {
            cur.push_back(ch);
        }
    }
    f.push_back(cur);
    return f;
}

inline std::string run_capture(const std::string& command) {
    std::string out;
    FILE* p = popen(command.c_str(), "r");
    if (!p)
        throw std::runtime_error("cannot run: " + command);
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
        out.append(buf.data(), n);
    pclose(p);
    return out;
}

}  // namespace respite::bench
