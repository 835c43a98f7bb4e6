// libFuzzer target for the admin endpoint's HTTP/1.1 request parser: any bytes, split anywhere,
// must give a request, "need more" or an error status, never a crash or an overread.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "request_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // The first byte picks where the input is split (a read boundary).
    const std::size_t split = data[0] % size;
    using respite::proxy::http_detail::request_parser;
    request_parser p(4096, 8192);
    std::string buffer;
    std::size_t fed = 0;
    for (int round = 0; round < 64 && fed <= input.size(); ++round) {
        const std::size_t take = fed == 0 ? split : input.size() - fed;
        buffer.append(input.substr(fed, take));
        fed += take;
        const auto st = p.consume(buffer);
        if (st == request_parser::state::failed) {
            const int status = p.error_status();
            FUZZ_CHECK(status >= 400 && status < 600);
            return 0;
        }
        if (st == request_parser::state::complete) {
            FUZZ_CHECK(p.consumed() <= buffer.size());
            FUZZ_CHECK(!p.request().method.empty());
            buffer.erase(0, p.consumed());
            p.reset();
            continue;
        }
        if (fed >= input.size())
            break;
    }
    return 0;
}
