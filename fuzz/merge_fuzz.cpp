// libFuzzer target for the follower's command merging (src/proxy/replay/merge.hpp).
// Raw bytes: shape_of() must agree with the RESP request parser on every well-formed array and
// refuse the rest, never read past the input. Structured: commands built from the input merge
// into one command whose arguments are the head and every command's tail, in order.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <respite/resp/request_parser.hpp>

#include "fuzz_check.hpp"
#include "merge.hpp"

namespace {

using respite::proxy::replay::merge_run;
using respite::proxy::replay::shape_of;

std::string encode(const std::vector<std::string_view>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (auto a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out.append(a);
        out += "\r\n";
    }
    return out;
}

void raw(std::string_view input, std::size_t head) {
    const auto s = shape_of(input, head);
    respite::resp::request_parser p;
    std::vector<std::string_view> args;
    const auto r = p.parse(input, args);
    if (!s)
        return;
    // Accepted: exactly one array of bulks that the parser reads the same way.
    FUZZ_CHECK(s->head_begin <= s->tail && s->tail <= input.size());
    FUZZ_CHECK(r.complete && !r.is_inline && r.length == input.size());
    FUZZ_CHECK(args.size() == s->args && s->args > head);
}

void structured(std::string_view input, std::size_t head, bool rename) {
    // Commands separated by 0xFF, arguments by 0xFE; every command gets the same head.
    std::vector<std::vector<std::string_view>> cmds(1);
    std::size_t start = 0;
    for (std::size_t i = 0; i <= input.size(); ++i) {
        const bool end = i == input.size();
        const char c = end ? '\xFF' : input[i];
        if (c != '\xFF' && c != '\xFE')
            continue;
        cmds.back().push_back(input.substr(start, i - start));
        if (c == '\xFF' && !end)
            cmds.emplace_back();
        start = i + 1;
        if (cmds.size() > 32)
            break;
    }
    merge_run run;
    std::vector<std::string_view> expect;
    std::vector<std::string> sent;
    const std::vector<std::string_view> heads = {"H0", "k"};
    std::size_t added = 0;
    for (auto& tail : cmds) {
        std::vector<std::string_view> args(heads.begin(), heads.begin() + head);
        args.insert(args.end(), tail.begin(), tail.end());
        sent.push_back(encode(args));
        if (!run.add(sent.back(), static_cast<std::uint8_t>(head), rename ? "MERGED" : "", 0))
            break;
        if (added++ == 0) {
            if (rename)
                expect.push_back("MERGED");
            else
                expect.insert(expect.end(), heads.begin(), heads.begin() + head);
        }
        expect.insert(expect.end(), tail.begin(), tail.end());
    }
    if (added == 0)
        return;
    const std::string out(run.take());
    respite::resp::request_parser p;
    std::vector<std::string_view> got;
    const auto r = p.parse(out, got);
    FUZZ_CHECK(r.complete && r.length == out.size());
    if (added == 1) {
        FUZZ_CHECK(out == sent.front());
        return;
    }
    FUZZ_CHECK(got == expect);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t head = data[0] & 3;
    if ((data[0] & 4) == 0)
        raw(input, head);
    else if (head == 1 || head == 2)
        structured(input, head, (data[0] & 8) != 0);
    return 0;
}
