// libFuzzer target: parser, frame_scanner and request_parser on the same bytes, cross-checked.
//
// Checks, beyond the sanitizers: the parser gives the same values and error whole and in pieces;
// the frame scanner finds the parser's boundaries and errors; every parsed value re-encodes
// (RESP3) to bytes that parse back to an equal value, and its RESP2 form parses as one frame;
// the request parser gives the same requests whole and in pieces.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <respite/resp/frame_scanner.hpp>
#include <respite/resp/parser.hpp>
#include <respite/resp/request_parser.hpp>
#include <respite/resp/writer.hpp>

#include "fuzz_check.hpp"

namespace {

using namespace respite::resp;

limits fuzz_limits() {
    limits l;
    l.max_bulk_length = 256;
    l.max_aggregate_elements = 32;
    l.max_depth = 8;
    l.max_line_length = 128;
    return l;
}

struct parsed {
    std::vector<value> values;
    std::vector<std::size_t> lengths;
    std::error_code error;
};

parsed parse_pieces(const std::vector<std::string_view>& pieces, const limits& l) {
    parser p(l);
    parsed out;
    std::string buffer;
    std::size_t frame_bytes = 0;
    for (const auto piece : pieces) {
        buffer.append(piece);
        for (;;) {
            const auto r = p.feed(buffer);
            FUZZ_CHECK(r.consumed <= buffer.size());
            frame_bytes += r.consumed;
            buffer.erase(0, r.consumed);
            if (r.error) {
                out.error = r.error;
                return out;
            }
            if (!r.complete) {
                FUZZ_CHECK(buffer.empty());  // everything not yet usable was consumed
                break;
            }
            out.values.push_back(p.take());
            out.lengths.push_back(frame_bytes);
            frame_bytes = 0;
        }
    }
    return out;
}

struct scanned {
    std::vector<frame> frames;
    std::error_code error;
};

scanned scan_pieces(const std::vector<std::string_view>& pieces, const limits& l) {
    frame_scanner s(l);
    scanned out;
    std::string buffer;
    for (const auto piece : pieces) {
        buffer.append(piece);
        for (;;) {
            const auto r = s.scan(buffer);
            if (r.error) {
                out.error = r.error;
                return out;
            }
            if (!r.complete) {
                break;
            }
            FUZZ_CHECK(r.frame.length > 0 && r.frame.length <= buffer.size());
            out.frames.push_back(r.frame);
            buffer.erase(0, r.frame.length);
        }
    }
    return out;
}

struct requests {
    std::vector<std::vector<std::string>> args;
    std::vector<std::size_t> lengths;
    std::error_code error;
};

// drop: after an incomplete parse, the skipped bytes leave the buffer (drop_skipped(), as the
// proxy's sessions do); each request's length still counts them, to compare with the whole.
requests parse_requests(const std::vector<std::string_view>& pieces, const limits& l,
                        bool drop = false) {
    request_parser p(l);
    requests out;
    std::string buffer;
    std::size_t dropped = 0;
    std::vector<std::string_view> args;
    for (const auto piece : pieces) {
        buffer.append(piece);
        for (;;) {
            const auto r = p.parse(buffer, args);
            if (r.error) {
                FUZZ_CHECK(!r.reason.empty());
                out.error = r.error;
                return out;
            }
            if (!r.complete) {
                if (drop) {
                    const auto n = p.drop_skipped();
                    FUZZ_CHECK(n <= buffer.size());
                    buffer.erase(0, n);
                    dropped += n;
                }
                break;
            }
            FUZZ_CHECK(r.length > 0 && r.length <= buffer.size());
            FUZZ_CHECK(!args.empty());
            out.args.emplace_back(args.begin(), args.end());
            out.lengths.push_back(r.length + dropped);
            dropped = 0;
            buffer.erase(0, r.length);
        }
    }
    return out;
}

bool same_requests(const requests& a, const requests& b) {
    return a.args == b.args && a.lengths == b.lengths && a.error == b.error;
}

char top_type_byte(const value& v) {
    switch (v.type()) {
        case type::simple_string:
            return '+';
        case type::simple_error:
            return '-';
        case type::integer:
            return ':';
        case type::bulk_string:
            return '$';
        case type::null:
            return v.null_form() == null_kind::bulk    ? '$'
                   : v.null_form() == null_kind::array ? '*'
                                                       : '_';
        case type::array:
            return '*';
        case type::double_:
            return ',';
        case type::boolean:
            return '#';
        case type::blob_error:
            return '!';
        case type::verbatim_string:
            return '=';
        case type::big_number:
            return '(';
        case type::map:
            return '%';
        case type::set:
            return '~';
        case type::push:
            return '>';
    }
    return 0;
}

void check_round_trip(const value& v) {
    std::string encoded;
    append_value(encoded, v, protocol::resp3);
    parser p;  // default limits: re-encoding may lengthen a few lines (1e5 -> 100000)
    const auto r = p.feed(encoded);
    FUZZ_CHECK(!r.error);
    FUZZ_CHECK(r.complete);
    FUZZ_CHECK(r.consumed == encoded.size());
    FUZZ_CHECK(p.take() == v);

    std::string resp2;
    append_value(resp2, v, protocol::resp2);
    parser p2;
    const auto r2 = p2.feed(resp2);
    FUZZ_CHECK(!r2.error);
    FUZZ_CHECK(r2.complete);
    FUZZ_CHECK(r2.consumed == resp2.size());
    const value down = p2.take();
    FUZZ_CHECK(down.attributes() == nullptr);
    (void)v.to_display();
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const limits l = fuzz_limits();

    // Cut points derived from the input, so every input also tests its own fragmentation.
    const std::size_t a =
        size == 0 ? 0 : (std::size_t{data[0]} * 131 + data[size - 1]) % (size + 1);
    const std::size_t b = size == 0 ? 0 : (std::size_t{data[size / 2]} * 257 + size) % (size + 1);
    const std::size_t lo = a < b ? a : b;
    const std::size_t hi = a < b ? b : a;
    const std::vector<std::string_view> whole{input};
    const std::vector<std::string_view> two{input.substr(0, a), input.substr(a)};
    const std::vector<std::string_view> three{input.substr(0, lo), input.substr(lo, hi - lo),
                                              input.substr(hi)};

    const parsed reference = parse_pieces(whole, l);
    for (const auto* pieces : {&two, &three}) {
        const parsed other = parse_pieces(*pieces, l);
        FUZZ_CHECK(other.error == reference.error);
        FUZZ_CHECK(other.lengths == reference.lengths);
        FUZZ_CHECK(other.values == reference.values);
    }

    for (const auto* pieces : {&whole, &two, &three}) {
        const scanned s = scan_pieces(*pieces, l);
        FUZZ_CHECK(s.error == reference.error);
        FUZZ_CHECK(s.frames.size() == reference.lengths.size());
        for (std::size_t i = 0; i < s.frames.size(); ++i) {
            FUZZ_CHECK(s.frames[i].length == reference.lengths[i]);
            FUZZ_CHECK(s.frames[i].type_byte == top_type_byte(reference.values[i]));
        }
    }

    for (const auto& v : reference.values) {
        check_round_trip(v);
    }

    const requests req = parse_requests(whole, l);
    FUZZ_CHECK(same_requests(parse_requests(two, l), req));
    FUZZ_CHECK(same_requests(parse_requests(three, l), req));
    FUZZ_CHECK(same_requests(parse_requests(three, l, true), req));
    return 0;
}
