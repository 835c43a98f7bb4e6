// Sans-I/O HTTP/1.1 request parser: bytes in, a request or an error status out.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include <respite/proxy/http.hpp>

namespace respite::proxy::http_detail {

// Decodes %XX escapes (and '+' as a space when plus_is_space); false on a malformed escape.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out);

// Fills query from "k=v&k2=v2" (a key without '=' gets an empty value); false on a bad escape.
bool parse_query(std::string_view raw, std::map<std::string, std::string, std::less<>>& query);

class request_parser {
  public:
    enum class state { need_more, complete, failed };

    request_parser(std::size_t max_header_bytes, std::size_t max_body_bytes)
        : max_header_bytes_(max_header_bytes), max_body_bytes_(max_body_bytes) {}

    // buffer holds every byte of this request received so far, from its first byte (the caller
    // appends to it between calls and may hold the next pipelined request's bytes after it). The
    // header terminator search resumes where the last call stopped, so nothing is rescanned.
    state consume(std::string_view buffer);

    // After complete: the request, how many bytes of the buffer it used, and whether the client
    // wants the connection kept open (HTTP/1.1 unless "close"; HTTP/1.0 only with "keep-alive").
    [[nodiscard]] http_request& request() noexcept { return request_; }
    [[nodiscard]] std::size_t consumed() const noexcept { return header_end_ + body_length_; }
    [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
    // After failed: the status to answer with (400, 411, 413, 505) before closing.
    [[nodiscard]] int error_status() const noexcept { return error_status_; }
    // The headers are in and asked for "100-continue" while the body is still to come.
    [[nodiscard]] bool wants_continue() const noexcept { return wants_continue_; }

    // Ready for the next request on the same connection.
    void reset();

  private:
    state fail(int status);
    state parse_head(std::string_view head);
    bool parse_request_line(std::string_view line);

    std::size_t max_header_bytes_;
    std::size_t max_body_bytes_;
    std::size_t scanned_ = 0;       // bytes searched for "\r\n\r\n" so far
    std::size_t line_scanned_ = 0;  // bytes of the request line checked for stray bytes
    bool request_line_checked_ = false;
    std::size_t header_end_ = 0;  // 0 until the head is parsed; then the body's offset
    std::size_t body_length_ = 0;
    bool keep_alive_ = true;
    bool wants_continue_ = false;
    int error_status_ = 0;
    http_request request_;
};

}  // namespace respite::proxy::http_detail
