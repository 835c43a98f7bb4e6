// The "respite.resp" std::error_category and its messages.
#include <respite/resp/error.hpp>

namespace respite::resp {
namespace {

class resp_error_category final : public std::error_category {
  public:
    [[nodiscard]] const char* name() const noexcept override { return "respite.resp"; }

    [[nodiscard]] std::string message(int ev) const override {
        switch (static_cast<error>(ev)) {
            case error::ok:
                return "success";
            case error::invalid_type_byte:
                return "invalid RESP type byte";
            case error::invalid_length:
                return "invalid RESP length (expected a decimal number >= -1)";
            case error::invalid_integer:
                return "invalid RESP integer (expected a signed 64-bit decimal)";
            case error::invalid_double:
                return "invalid RESP double";
            case error::invalid_boolean:
                return "invalid RESP boolean (expected 't' or 'f')";
            case error::invalid_big_number:
                return "invalid RESP big number (expected an optional sign and digits)";
            case error::invalid_verbatim:
                return "invalid RESP verbatim string (missing the 'fmt:' prefix)";
            case error::missing_crlf:
                return "RESP line or payload not terminated by CRLF";
            case error::bulk_too_large:
                return "RESP bulk string longer than the configured limit";
            case error::aggregate_too_large:
                return "RESP aggregate has more elements than the configured limit";
            case error::nesting_too_deep:
                return "RESP aggregates nested deeper than the configured limit";
            case error::line_too_long:
                return "RESP line longer than the configured limit";
            case error::unexpected_stream_chunk:
                return "RESP stream chunk or end marker outside a streamed value";
            case error::invalid_map_size:
                return "RESP streamed map or attribute ended after a key without its value";
            case error::invalid_request:
                return "invalid request (expected an array of bulk strings or an inline command)";
            case error::attribute_without_value:
                return "RESP attribute not followed by the value it annotates";
        }
        return "unknown respite.resp error";
    }
};

}  // namespace

const std::error_category& resp_category() noexcept {
    static const resp_error_category category;
    return category;
}

std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), resp_category()};
}

}  // namespace respite::resp
