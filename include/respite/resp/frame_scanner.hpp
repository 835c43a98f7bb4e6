// Finds RESP frame boundaries without building values, for zero-copy forwarding.
//
// The caller keeps the bytes of the current frame contiguous and passes them again, from the frame
// start, when more arrive; the scanner remembers how far it got and never rescans. Limits apply
// as in the parser.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <vector>

#include <respite/resp/error.hpp>
#include <respite/resp/limits.hpp>

namespace respite::resp {

struct frame {
    std::size_t length = 0;  // bytes from the frame start through its final CRLF
    char type_byte = 0;      // first byte of the value (after any leading attribute): '+', '>', ...
    bool has_attribute = false;
};

struct scan_result {
    bool complete = false;
    resp::frame frame;
    std::error_code error;
};

class frame_scanner {
  public:
    explicit frame_scanner(limits l = {});

    // `input` starts at the frame start (the same first bytes as in the previous call for a
    // partial frame). On complete, the next call starts a new frame.
    scan_result scan(std::string_view input);

    void reset() noexcept;

  private:
    struct level {
        std::int64_t remaining;  // elements still expected; -1 for a streamed aggregate
        std::size_t count;       // elements seen so far in a streamed aggregate
        bool is_pairs;           // map or attribute
        bool is_attribute;
        bool has_pending;  // an attribute was read at this level for the next element
    };
    enum class phase : std::uint8_t { type_byte, line, blob, blob_cr, blob_lf };

    scan_result fail(error e);
    error on_line(std::string_view content, std::size_t& pos, std::size_t size, bool& done);
    error element_done(bool& done);

    resp::limits limits_;
    std::size_t offset_ = 0;  // bytes of the current frame already scanned
    std::vector<level> stack_;
    phase phase_ = phase::type_byte;
    char line_type_ = 0;
    std::size_t line_start_ = 0;    // offset of the current line's content
    bool line_cr_ = false;          // the scanned part of the line ends with its CR
    std::size_t pending_blob_ = 0;  // payload bytes still to skip
    std::size_t blob_length_ = 0;
    char blob_type_ = 0;
    bool in_streamed_string_ = false;
    std::size_t streamed_length_ = 0;
    bool top_has_pending_ = false;
    char type_byte_ = 0;
    bool has_attribute_ = false;
    std::error_code error_;
};

}  // namespace respite::resp
