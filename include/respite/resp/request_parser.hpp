// Server-side request parser: RESP arrays of bulk strings and inline commands, as views.
//
// For the proxy's zero-copy path: arguments are string_views into the caller's buffer, valid
// until that buffer changes. As with frame_scanner, the caller passes the buffer from the start of
// the current request each time and the parser resumes where it stopped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <respite/resp/error.hpp>
#include <respite/resp/limits.hpp>

namespace respite::resp {

struct request_result {
    bool complete = false;
    std::size_t length = 0;  // bytes of this request (including skipped blank inline lines)
    bool is_inline = false;
    std::error_code error;
    // With an error: Redis's wording for it ("unbalanced quotes in request", "invalid bulk
    // length", ...), valid until the next parse() call, for a "-ERR Protocol error: <reason>"
    // reply. Empty otherwise.
    std::string_view reason;
};

class request_parser {
  public:
    explicit request_parser(limits l = {});

    // On complete, `args` holds the command name and arguments. For RESP requests the views point
    // into `input`; for inline requests (which Redis splits with quotes and escapes) into storage
    // owned by the parser, valid until the next call.
    request_result parse(std::string_view input, std::vector<std::string_view>& args);

    void reset() noexcept;

    // After an incomplete parse: the bytes at the start of the input that were blank inline
    // lines or empty arrays (*0, *-1), skipped as Redis skips them, and not part of the request
    // still being read. The caller drops them from the front of its buffer (a client sending
    // only such bytes must not make it grow); the next parse() gets the input without them.
    // Returns 0 when there are none.
    std::size_t drop_skipped() noexcept;

  private:
    enum class phase : std::uint8_t {
        start,        // before the first byte of a request (or of a skipped blank line)
        inline_line,  // reading an inline command up to '\n'
        count_line,   // reading the "*N" line
        arg_type,     // expecting the '$' of the next argument
        arg_line,     // reading the "$len" line
        arg_payload,  // skipping argument bytes
        arg_cr,
        arg_lf,
    };

    request_result fail(error e, std::string_view reason);
    // The common case in one pass, without the state machine; false: not handled (args may
    // hold partial results).
    bool parse_whole(std::string_view input, std::vector<std::string_view>& args,
                     std::size_t& length);
    bool split_inline(std::string_view line);

    resp::limits limits_;
    std::size_t offset_ = 0;         // bytes of the current request already parsed
    std::size_t request_start_ = 0;  // where the request being read begins (after skipped bytes)
    phase phase_ = phase::start;
    std::size_t line_start_ = 0;  // offset of the current line's content
    bool line_cr_ = false;        // the scanned part of a RESP line ends with its CR
    std::int64_t expected_args_ = -1;
    std::size_t payload_left_ = 0;
    std::vector<std::pair<std::size_t, std::size_t>> spans_;  // offset and length of each arg
    std::vector<std::string> inline_storage_;
    std::size_t inline_args_ = 0;
    std::error_code error_;
    std::string_view reason_;
    std::string reason_storage_;  // a reason built from the input ("got ':'")
};

}  // namespace respite::resp
