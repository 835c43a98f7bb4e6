// frame_scanner: the parser's state machine without the values, over a caller-held contiguous
// frame.
#include <respite/resp/frame_scanner.hpp>

#include "grammar.hpp"

namespace respite::resp {

frame_scanner::frame_scanner(resp::limits l) : limits_(l) {}

void frame_scanner::reset() noexcept {
    // Field by field, so the stack keeps its capacity from frame to frame.
    offset_ = 0;
    stack_.clear();
    phase_ = phase::type_byte;
    line_cr_ = false;
    pending_blob_ = 0;
    in_streamed_string_ = false;
    streamed_length_ = 0;
    top_has_pending_ = false;
    type_byte_ = 0;
    has_attribute_ = false;
    error_.clear();
}

scan_result frame_scanner::fail(error e) {
    error_ = make_error_code(e);
    return {false, {}, error_};
}

// Mirrors parser::state::complete: counts the finished element in its parent and closes every
// aggregate it completes.
error frame_scanner::element_done(bool& done) {
    for (;;) {
        if (stack_.empty()) {
            done = true;
            return error::ok;
        }
        level& l = stack_.back();
        if (l.remaining < 0) {
            if (l.count >= limits_.max_aggregate_elements) {
                return error::aggregate_too_large;
            }
            ++l.count;
            return error::ok;
        }
        if (--l.remaining > 0) {
            return error::ok;
        }
        const bool attribute = l.is_attribute;
        stack_.pop_back();
        if (attribute) {
            (stack_.empty() ? top_has_pending_ : stack_.back().has_pending) = true;
            return error::ok;
        }
    }
}

error frame_scanner::on_line(std::string_view c, std::size_t& pos, std::size_t size, bool& done) {
    const char t = line_type_;
    phase_ = phase::type_byte;
    switch (t) {
        case '+':
        case '-':
        case ':':
        case ',':
        case '#':
        case '(':
        case '_':
            if (const error e = detail::check_scalar_line(t, c); e != error::ok) {
                return e;
            }
            return element_done(done);
        case '.': {
            if (!c.empty()) {
                return error::missing_crlf;
            }
            const level& l = stack_.back();
            if (l.has_pending) {
                return error::attribute_without_value;
            }
            if (l.is_pairs && l.count % 2 != 0) {
                return error::invalid_map_size;
            }
            const bool attribute = l.is_attribute;
            stack_.pop_back();
            if (attribute) {
                (stack_.empty() ? top_has_pending_ : stack_.back().has_pending) = true;
                return error::ok;
            }
            return element_done(done);
        }
        case '$':
        case '!':
        case '=':
        case ';': {
            detail::length_kind kind{};
            std::int64_t n = 0;
            const bool is_bulk = t == '$';
            if (const error e = detail::parse_length(c, is_bulk, is_bulk, kind, n);
                e != error::ok) {
                return e;
            }
            if (kind == detail::length_kind::null) {
                return element_done(done);
            }
            if (kind == detail::length_kind::streamed) {
                in_streamed_string_ = true;
                streamed_length_ = 0;
                return error::ok;
            }
            const auto len = static_cast<std::uint64_t>(n);
            if (t == ';') {
                if (len > limits_.max_bulk_length - streamed_length_) {
                    return error::bulk_too_large;
                }
                if (len == 0) {
                    in_streamed_string_ = false;
                    return element_done(done);
                }
                streamed_length_ += static_cast<std::size_t>(len);
            } else if (len > limits_.max_bulk_length) {
                return error::bulk_too_large;
            }
            blob_type_ = t;
            blob_length_ = static_cast<std::size_t>(len);
            const std::size_t avail = size - pos;
            if (avail >= 2 && blob_length_ <= avail - 2) {
                // The whole payload is here: skip it at once.
                pos += blob_length_;
                pending_blob_ = 0;
                phase_ = phase::blob_cr;
            } else {
                pending_blob_ = blob_length_;
                phase_ = pending_blob_ > 0 ? phase::blob : phase::blob_cr;
            }
            return error::ok;
        }
        default: {
            detail::length_kind kind{};
            std::int64_t n = 0;
            if (const error e = detail::parse_length(c, t == '*', true, kind, n); e != error::ok) {
                return e;
            }
            if (kind == detail::length_kind::null) {
                return element_done(done);
            }
            if (stack_.size() >= limits_.max_depth) {
                return error::nesting_too_deep;
            }
            const bool pairs = detail::is_pair_aggregate_byte(t);
            const bool attribute = t == '|';
            std::int64_t remaining = -1;
            if (kind == detail::length_kind::count) {
                const auto count = static_cast<std::uint64_t>(n);
                if (count >
                    (pairs ? limits_.max_aggregate_elements / 2 : limits_.max_aggregate_elements)) {
                    return error::aggregate_too_large;
                }
                remaining = static_cast<std::int64_t>(pairs ? count * 2 : count);
                if (remaining == 0) {
                    if (attribute) {
                        (stack_.empty() ? top_has_pending_ : stack_.back().has_pending) = true;
                        return error::ok;
                    }
                    return element_done(done);
                }
            }
            stack_.push_back(level{remaining, 0, pairs, attribute, false});
            return error::ok;
        }
    }
}

scan_result frame_scanner::scan(std::string_view input) {
    if (error_) {
        return {false, {}, error_};
    }
    const char* const data = input.data();
    const std::size_t size = input.size();
    std::size_t pos = offset_;
    bool done = false;
    while (pos < size) {
        error e = error::ok;
        switch (phase_) {
            case phase::type_byte: {
                const char t = data[pos];
                if (in_streamed_string_) {
                    e = t == ';' ? error::ok : error::invalid_type_byte;
                } else if (t == ';') {
                    e = error::unexpected_stream_chunk;
                } else if (t == '.') {
                    e = !stack_.empty() && stack_.back().remaining < 0
                            ? error::ok
                            : error::unexpected_stream_chunk;
                } else if (!detail::is_type_byte(t)) {
                    e = error::invalid_type_byte;
                }
                if (e != error::ok) {
                    return fail(e);
                }
                if (t != '|' && t != ';' && t != '.') {
                    // A value starts here and takes the attribute read at its level.
                    (stack_.empty() ? top_has_pending_ : stack_.back().has_pending) = false;
                    if (stack_.empty() && !in_streamed_string_ && type_byte_ == 0) {
                        type_byte_ = t;
                    }
                } else if (t == '|' && stack_.empty()) {
                    has_attribute_ = true;
                }
                line_type_ = t;
                line_start_ = ++pos;
                line_cr_ = false;
                phase_ = phase::line;
                break;
            }
            case phase::line: {
                std::size_t content_end = 0;
                if (line_cr_) {
                    if (data[pos] != '\n') {
                        return fail(error::missing_crlf);
                    }
                    content_end = pos - 1;
                    ++pos;
                } else {
                    const auto s = detail::scan_line(data + pos, size - pos, pos - line_start_,
                                                     limits_.max_line_length);
                    if (s.status == detail::line_status::failed) {
                        return fail(s.err);
                    }
                    if (s.status == detail::line_status::need_more) {
                        line_cr_ = s.ends_with_cr;
                        pos = size;
                        break;
                    }
                    content_end = pos + s.content;
                    pos = content_end + 2;
                }
                line_cr_ = false;
                e = on_line(std::string_view(data + line_start_, content_end - line_start_), pos,
                            size, done);
                break;
            }
            case phase::blob: {
                const std::size_t take = pending_blob_ < size - pos ? pending_blob_ : size - pos;
                pos += take;
                pending_blob_ -= take;
                if (pending_blob_ == 0) {
                    phase_ = phase::blob_cr;
                }
                break;
            }
            case phase::blob_cr:
                if (data[pos] != '\r') {
                    return fail(error::missing_crlf);
                }
                ++pos;
                phase_ = phase::blob_lf;
                break;
            case phase::blob_lf:
                if (data[pos] != '\n') {
                    return fail(error::missing_crlf);
                }
                ++pos;
                phase_ = phase::type_byte;
                if (blob_type_ == '=' && !detail::is_verbatim_payload(std::string_view(
                                             data + pos - 2 - blob_length_, blob_length_))) {
                    e = error::invalid_verbatim;
                } else if (blob_type_ != ';') {
                    e = element_done(done);
                }
                break;
        }
        if (e != error::ok) {
            return fail(e);
        }
        if (done) {
            const frame f{pos, type_byte_, has_attribute_};
            reset();
            return {true, f, {}};
        }
    }
    offset_ = pos;
    return {false, {}, {}};
}

}  // namespace respite::resp
