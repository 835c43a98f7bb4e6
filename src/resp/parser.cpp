// The incremental RESP2/RESP3 reply parser: a byte-driven state machine with an explicit stack.
#include <algorithm>
#include <iterator>
#include <utility>

#include <respite/resp/parser.hpp>

#include "grammar.hpp"

namespace respite::resp {

struct parser::state {
    explicit state(resp::limits l) : lim(l) {}

    enum class phase : std::uint8_t { type_byte, line, blob, blob_cr, blob_lf };

    // One open aggregate (or attribute) on the explicit stack.
    struct frame {
        value agg;               // the aggregate being filled; a map for an attribute
        std::int64_t remaining;  // elements still expected; -1 while streamed
        bool is_pairs;           // map or attribute: elements come in pairs
        bool is_attribute;
        bool has_pending = false;  // an attribute was read at this level for the next element
        std::vector<value> pending;
    };

    resp::limits lim;
    phase ph = phase::type_byte;
    char line_type = 0;
    bool line_cr = false;       // the stashed partial line ended with its CR
    std::string line;           // stashed content of a line split across feeds
    char blob_type = 0;         // '$', '!', '=' or ';' (a streamed string chunk)
    std::size_t blob_left = 0;  // payload bytes still to copy
    std::string blob;           // payload of a blob split across feeds
    bool in_stream = false;     // inside a streamed string ($?), which only takes ';' chunks
    value stream;               // the streamed string being assembled
    std::vector<frame> stack;
    bool top_has_pending = false;
    std::vector<value> top_pending;
    value result;
    std::error_code err;

    // Moves the attribute read at the current level (if any) onto v, which starts there.
    void attach_pending(value& v) {
        bool& has = stack.empty() ? top_has_pending : stack.back().has_pending;
        if (has) {
            auto& pending = stack.empty() ? top_pending : stack.back().pending;
            v.set_attributes(std::move(pending));
            pending = {};
            has = false;
        }
    }

    void add_pending(std::vector<value> attrs) {
        bool& has = stack.empty() ? top_has_pending : stack.back().has_pending;
        auto& pending = stack.empty() ? top_pending : stack.back().pending;
        if (!has) {
            pending = std::move(attrs);
            has = true;
        } else {
            // Consecutive attributes annotate the same value: merge them.
            std::move(attrs.begin(), attrs.end(), std::back_inserter(pending));
        }
    }

    // Pops the top frame. Returns true with the finished aggregate in `out`, or false when the
    // frame was an attribute (which becomes pending for the next element at the parent's level).
    bool close_frame(value& out) {
        frame& f = stack.back();
        if (f.is_attribute) {
            std::vector<value> attrs = std::move(f.agg.elements());
            stack.pop_back();
            add_pending(std::move(attrs));
            return false;
        }
        out = std::move(f.agg);
        stack.pop_back();
        return true;
    }

    // Hands a finished value to its parent, closing every aggregate it completes.
    error complete(value&& v, bool& done) {
        for (;;) {
            if (stack.empty()) {
                result = std::move(v);
                done = true;
                return error::ok;
            }
            frame& f = stack.back();
            auto& elements = f.agg.elements();
            if (f.remaining < 0) {
                if (elements.size() >= lim.max_aggregate_elements) {
                    return error::aggregate_too_large;
                }
                elements.push_back(std::move(v));
                return error::ok;
            }
            elements.push_back(std::move(v));
            if (--f.remaining > 0) {
                return error::ok;
            }
            if (!close_frame(v)) {
                return error::ok;
            }
        }
    }

    error complete_scalar(value&& v, bool& done) {
        attach_pending(v);
        return complete(std::move(v), done);
    }

    static value make_aggregate(char t) {
        switch (t) {
            case '~':
                return value::set({});
            case '>':
                return value::push({});
            case '%':
            case '|':
                return value::map({});
            default:
                return value::array({});
        }
    }

    error open_aggregate(char t, std::string_view content, std::size_t avail, bool& done) {
        detail::length_kind kind{};
        std::int64_t n = 0;
        if (const error e = detail::parse_length(content, t == '*', true, kind, n);
            e != error::ok) {
            return e;
        }
        if (kind == detail::length_kind::null) {
            return complete_scalar(value::null(null_kind::array), done);
        }
        if (stack.size() >= lim.max_depth) {
            return error::nesting_too_deep;
        }
        const bool pairs = detail::is_pair_aggregate_byte(t);
        std::size_t elements = 0;
        if (kind == detail::length_kind::count) {
            const auto count = static_cast<std::uint64_t>(n);
            // Compared before doubling, so a huge pair count cannot overflow (CVE-2021-32765).
            if (count > (pairs ? lim.max_aggregate_elements / 2 : lim.max_aggregate_elements)) {
                return error::aggregate_too_large;
            }
            elements = static_cast<std::size_t>(pairs ? count * 2 : count);
        }
        value agg = make_aggregate(t);
        const bool is_attribute = t == '|';
        if (!is_attribute) {
            attach_pending(agg);
        }
        if (kind == detail::length_kind::count && elements == 0) {
            if (is_attribute) {
                add_pending({});
                return error::ok;
            }
            return complete(std::move(agg), done);
        }
        // Trust the declared count only as far as the bytes at hand could fill it (each element
        // takes at least three bytes); the vector grows as elements really arrive.
        agg.elements().reserve(std::min(elements, avail / 3));
        stack.push_back(frame{std::move(agg),
                              kind == detail::length_kind::streamed
                                  ? std::int64_t{-1}
                                  : static_cast<std::int64_t>(elements),
                              pairs,
                              is_attribute,
                              false,
                              {}});
        return error::ok;
    }

    error end_streamed_aggregate(bool& done) {
        frame& f = stack.back();
        if (f.has_pending) {
            return error::attribute_without_value;
        }
        if (f.is_pairs && f.agg.elements().size() % 2 != 0) {
            return error::invalid_map_size;
        }
        value v;
        if (!close_frame(v)) {
            return error::ok;
        }
        return complete(std::move(v), done);
    }

    error finish_blob(char t, std::string&& payload, bool& done) {
        switch (t) {
            case '$':
                return complete_scalar(value::bulk_string(std::move(payload)), done);
            case '!':
                return complete_scalar(value::blob_error(std::move(payload)), done);
            case '=': {
                if (!detail::is_verbatim_payload(payload)) {
                    return error::invalid_verbatim;
                }
                const char format[3] = {payload[0], payload[1], payload[2]};
                payload.erase(0, 4);
                return complete_scalar(
                    value::verbatim_string(std::string_view(format, 3), std::move(payload)), done);
            }
            default:
                return error::ok;
        }
    }

    // A blob header was read: take the payload from the input at once when it is all there,
    // else start copying it.
    error open_blob(char t, std::size_t n, const char*& p, const char* end, bool& done) {
        const auto avail = static_cast<std::size_t>(end - p);
        if (avail >= 2 && n <= avail - 2) {
            if (p[n] != '\r' || p[n + 1] != '\n') {
                return error::missing_crlf;
            }
            const std::string_view payload(p, n);
            p += n + 2;
            if (t == ';') {
                stream.str().append(payload);
                return error::ok;
            }
            if (t == '=') {
                if (!detail::is_verbatim_payload(payload)) {
                    return error::invalid_verbatim;
                }
                return complete_scalar(
                    value::verbatim_string(payload.substr(0, 3), std::string(payload.substr(4))),
                    done);
            }
            return finish_blob(t, std::string(payload), done);
        }
        blob_type = t;
        blob_left = n;
        std::string& target = t == ';' ? stream.str() : blob;
        if (t != ';') {
            blob.clear();
        }
        target.reserve(target.size() + std::min(n, avail));
        ph = n > 0 ? phase::blob : phase::blob_cr;
        return error::ok;
    }

    // A complete line of type t with the given content (the bytes between type byte and CRLF).
    error on_line(char t, std::string_view c, const char*& p, const char* end, bool& done) {
        ph = phase::type_byte;
        switch (t) {
            case '+':
                return complete_scalar(value::simple_string(std::string(c)), done);
            case '-':
                return complete_scalar(value::simple_error(std::string(c)), done);
            case ':': {
                std::int64_t n = 0;
                if (!detail::parse_int64(c, n)) {
                    return error::invalid_integer;
                }
                return complete_scalar(value::integer(n), done);
            }
            case ',': {
                double d = 0;
                if (!detail::parse_double(c, d)) {
                    return error::invalid_double;
                }
                // The server's own digits: a proxy writes them back as they came (Redis prints
                // 1.1 as 1.1000000000000001, which the shortest form would not give).
                auto v = value::double_(d);
                v.str().assign(c);
                return complete_scalar(std::move(v), done);
            }
            case '#':
                if (!detail::is_boolean(c)) {
                    return error::invalid_boolean;
                }
                return complete_scalar(value::boolean(c[0] == 't'), done);
            case '(':
                if (!detail::is_big_number(c)) {
                    return error::invalid_big_number;
                }
                return complete_scalar(value::big_number(std::string(c)), done);
            case '_':
                if (!c.empty()) {
                    return error::missing_crlf;
                }
                return complete_scalar(value::null(null_kind::resp3), done);
            case '.':
                if (!c.empty()) {
                    return error::missing_crlf;
                }
                return end_streamed_aggregate(done);
            case '$':
            case '!':
            case '=': {
                detail::length_kind kind{};
                std::int64_t n = 0;
                if (const error e = detail::parse_length(c, t == '$', t == '$', kind, n);
                    e != error::ok) {
                    return e;
                }
                if (kind == detail::length_kind::null) {
                    return complete_scalar(value::null(null_kind::bulk), done);
                }
                if (kind == detail::length_kind::streamed) {
                    in_stream = true;
                    stream = value::bulk_string({});
                    attach_pending(stream);
                    return error::ok;
                }
                if (static_cast<std::uint64_t>(n) > lim.max_bulk_length) {
                    return error::bulk_too_large;
                }
                return open_blob(t, static_cast<std::size_t>(n), p, end, done);
            }
            case ';': {
                detail::length_kind kind{};
                std::int64_t n = 0;
                if (const error e = detail::parse_length(c, false, false, kind, n);
                    e != error::ok) {
                    return e;
                }
                // Each chunk, and the whole string, stay within the bulk limit.
                if (static_cast<std::uint64_t>(n) > lim.max_bulk_length - stream.str().size()) {
                    return error::bulk_too_large;
                }
                if (n == 0) {
                    in_stream = false;
                    return complete(std::move(stream), done);
                }
                return open_blob(t, static_cast<std::size_t>(n), p, end, done);
            }
            default:
                return open_aggregate(t, c, static_cast<std::size_t>(end - p), done);
        }
    }

    error check_type_byte(char c) const {
        if (in_stream) {
            return c == ';' ? error::ok : error::invalid_type_byte;
        }
        if (c == ';') {
            return error::unexpected_stream_chunk;
        }
        if (c == '.') {
            return !stack.empty() && stack.back().remaining < 0 ? error::ok
                                                                : error::unexpected_stream_chunk;
        }
        return detail::is_type_byte(c) ? error::ok : error::invalid_type_byte;
    }

    parse_result fail(error e, const char* p, const char* begin) {
        err = make_error_code(e);
        return {static_cast<std::size_t>(p - begin), false, err};
    }

    parse_result feed(std::string_view in) {
        if (err) {
            return {0, false, err};
        }
        const char* const begin = in.data();
        const char* p = begin;
        const char* const end = begin + in.size();
        bool done = false;
        while (p != end) {
            error e = error::ok;
            switch (ph) {
                case phase::type_byte: {
                    const char t = *p;
                    if (e = check_type_byte(t); e != error::ok) {
                        return fail(e, p, begin);
                    }
                    ++p;
                    const auto s = detail::scan_line(p, static_cast<std::size_t>(end - p), 0,
                                                     lim.max_line_length);
                    if (s.status == detail::line_status::complete) {
                        const std::string_view content(p, s.content);
                        p += s.content + 2;
                        e = on_line(t, content, p, end, done);
                    } else if (s.status == detail::line_status::need_more) {
                        line_type = t;
                        line.assign(p, s.content);
                        line_cr = s.ends_with_cr;
                        p = end;
                        ph = phase::line;
                    } else {
                        e = s.err;
                    }
                    break;
                }
                case phase::line: {
                    if (line_cr) {
                        if (*p != '\n') {
                            return fail(error::missing_crlf, p, begin);
                        }
                        ++p;
                        line_cr = false;
                        e = on_line(line_type, line, p, end, done);
                        line.clear();
                        break;
                    }
                    const auto s = detail::scan_line(p, static_cast<std::size_t>(end - p),
                                                     line.size(), lim.max_line_length);
                    if (s.status == detail::line_status::failed) {
                        return fail(s.err, p, begin);
                    }
                    line.append(p, s.content);
                    if (s.status == detail::line_status::complete) {
                        p += s.content + 2;
                        e = on_line(line_type, line, p, end, done);
                        line.clear();
                    } else {
                        line_cr = s.ends_with_cr;
                        p = end;
                    }
                    break;
                }
                case phase::blob: {
                    const std::size_t take = std::min(blob_left, static_cast<std::size_t>(end - p));
                    (blob_type == ';' ? stream.str() : blob).append(p, take);
                    p += take;
                    blob_left -= take;
                    if (blob_left == 0) {
                        ph = phase::blob_cr;
                    }
                    break;
                }
                case phase::blob_cr:
                    if (*p != '\r') {
                        return fail(error::missing_crlf, p, begin);
                    }
                    ++p;
                    ph = phase::blob_lf;
                    break;
                case phase::blob_lf:
                    if (*p != '\n') {
                        return fail(error::missing_crlf, p, begin);
                    }
                    ++p;
                    ph = phase::type_byte;
                    e = finish_blob(blob_type, std::move(blob), done);
                    break;
            }
            if (e != error::ok) {
                return fail(e, p, begin);
            }
            if (done) {
                return {static_cast<std::size_t>(p - begin), true, {}};
            }
        }
        return {static_cast<std::size_t>(p - begin), false, {}};
    }
};

parser::parser(resp::limits l) : st_(std::make_unique<state>(l)) {}
parser::~parser() = default;
parser::parser(parser&&) noexcept = default;
parser& parser::operator=(parser&&) noexcept = default;

parse_result parser::feed(std::string_view input) {
    return st_->feed(input);
}

value parser::take() {
    return std::move(st_->result);
}

void parser::reset() noexcept {
    *st_ = state(st_->lim);
}

bool parser::idle() const noexcept {
    return st_->ph == state::phase::type_byte && st_->stack.empty() && !st_->in_stream &&
           !st_->top_has_pending;
}

const resp::limits& parser::limits() const noexcept {
    return st_->lim;
}

}  // namespace respite::resp
