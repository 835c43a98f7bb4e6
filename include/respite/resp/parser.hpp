// Incremental RESP2/RESP3 pull parser that builds resp::value replies.
//
// Feed it bytes as they arrive; input may be split at any byte. It never rescans a byte it has
// consumed, never allocates from an untrusted length before the bytes are there, keeps an explicit
// stack (no recursion) and enforces resp::limits. Attributes are attached to the value they
// precede. Streamed strings ($? ;n ;0) and streamed aggregates (*? ~? %? >? |? ... .) are
// supported.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <system_error>

#include <respite/resp/error.hpp>
#include <respite/resp/limits.hpp>
#include <respite/resp/value.hpp>

namespace respite::resp {

struct parse_result {
    // Bytes of the input the parser used. The caller drops them; the parser keeps what it needs
    // (a partial line or a partial blob) internally.
    std::size_t consumed = 0;
    // True when a complete top-level value is ready in take().
    bool complete = false;
    // Protocol error: the stream can no longer be trusted; reset() before reusing the parser.
    std::error_code error;
};

class parser {
  public:
    explicit parser(resp::limits l = {});
    ~parser();
    parser(parser&&) noexcept;
    parser& operator=(parser&&) noexcept;

    // Consumes input until one top-level value completes, an error occurs, or input runs out.
    // Call again with the unconsumed rest to get the following values.
    parse_result feed(std::string_view input);

    // The completed value (valid after feed() returned complete == true).
    value take();

    // Back to the idle state, dropping any partial value.
    void reset() noexcept;

    // True between frames (nothing partial held).
    [[nodiscard]] bool idle() const noexcept;

    [[nodiscard]] const resp::limits& limits() const noexcept;

  private:
    struct state;
    std::unique_ptr<state> st_;
};

}  // namespace respite::resp
