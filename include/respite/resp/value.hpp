// The RESP2/RESP3 value model: one owning type for every reply kind the protocol can carry.
//
// Module boundary: resp does no I/O and depends on nothing but the standard library. It must also
// compile with clang 14 (the fuzz build), so it does not use <expected>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace respite::resp {

enum class type : std::uint8_t {
    simple_string,    // +
    simple_error,     // -
    integer,          // :
    bulk_string,      // $
    null,             // $-1, *-1, _   (see null_kind)
    array,            // *
    double_,          // ,  NOLINT(readability-identifier-naming): "double" is a keyword
    boolean,          // #
    blob_error,       // !
    verbatim_string,  // =  (format() + str())
    big_number,       // (  (decimal digits kept as text)
    map,              // %  (elements() holds key, value, key, value, ...)
    set,              // ~
    push,             // >
};

// Where a null came from, so a RESP2 writer can reproduce the form a server would have used.
enum class null_kind : std::uint8_t { resp3, bulk, array };

std::string_view type_name(type t) noexcept;

class value {
  public:
    value() noexcept : type_(type::null) {}

    // Factories; each states the RESP type it produces.
    static value simple_string(std::string s);
    static value simple_error(std::string s);
    static value bulk_string(std::string s);
    static value integer(std::int64_t n) noexcept;
    static value null(null_kind k = null_kind::resp3) noexcept;
    static value double_(double d) noexcept;  // NOLINT(readability-identifier-naming)
    static value boolean(bool b) noexcept;
    static value blob_error(std::string s);
    // format is exactly three characters such as "txt" or "mkd".
    static value verbatim_string(std::string_view format, std::string body);
    static value big_number(std::string digits);
    static value array(std::vector<value> elements);
    static value set(std::vector<value> elements);
    static value push(std::vector<value> elements);
    // elements holds key, value, key, value, ... (size must be even).
    static value map(std::vector<value> flat_pairs);

    [[nodiscard]] resp::type type() const noexcept { return type_; }
    [[nodiscard]] bool is_null() const noexcept { return type_ == type::null; }
    [[nodiscard]] bool is_error() const noexcept {
        return type_ == type::simple_error || type_ == type::blob_error;
    }
    [[nodiscard]] bool is_string() const noexcept {
        return type_ == type::simple_string || type_ == type::bulk_string ||
               type_ == type::verbatim_string;
    }
    [[nodiscard]] bool is_aggregate() const noexcept {
        return type_ == type::array || type_ == type::map || type_ == type::set ||
               type_ == type::push;
    }
    [[nodiscard]] null_kind null_form() const noexcept { return null_; }

    // Text of strings, errors, big numbers, the body of verbatim strings and a parsed double's
    // digits as the server wrote them; empty otherwise.
    [[nodiscard]] const std::string& str() const noexcept { return str_; }
    [[nodiscard]] std::string& str() noexcept { return str_; }
    // Three-character format of a verbatim string ("txt"); empty otherwise.
    [[nodiscard]] std::string_view format() const noexcept {
        return std::string_view(format_, format_len_);
    }
    [[nodiscard]] std::int64_t integer() const noexcept { return int_; }
    [[nodiscard]] double double_value() const noexcept { return double_value_; }
    [[nodiscard]] bool boolean() const noexcept { return int_ != 0; }

    // Elements of aggregates; for a map the flat key, value, key, value, ... sequence.
    [[nodiscard]] const std::vector<value>& elements() const noexcept { return elements_; }
    [[nodiscard]] std::vector<value>& elements() noexcept { return elements_; }
    [[nodiscard]] std::size_t size() const noexcept {
        return type_ == type::map ? elements_.size() / 2 : elements_.size();
    }
    const value& operator[](std::size_t i) const { return elements_[i]; }

    // The RESP3 attribute that preceded this value on the wire (flat key, value, ... pairs), or
    // nullptr. Attributes are never replies of their own.
    [[nodiscard]] const std::vector<value>* attributes() const noexcept { return attrs_.get(); }
    void set_attributes(std::vector<value> flat_pairs);

    // Map lookup by string key (linear; maps in replies are small). nullptr when absent.
    [[nodiscard]] const value* find(std::string_view key) const noexcept;

    // Integer view of integers and of strings holding a decimal integer; false otherwise.
    [[nodiscard]] bool to_int64(std::int64_t& out) const noexcept;

    // Structural equality, including the type, null form and attributes.
    friend bool operator==(const value& a, const value& b) noexcept;

    // Debug rendering in redis-cli style, e.g. `1) "a"` lines; for logs and test failures.
    [[nodiscard]] std::string to_display() const;

    value(const value& other);
    value& operator=(const value& other);
    value(value&&) noexcept = default;
    value& operator=(value&&) noexcept = default;
    ~value() = default;

  private:
    resp::type type_;
    null_kind null_ = null_kind::resp3;
    std::uint8_t format_len_ = 0;
    char format_[3] = {0, 0, 0};
    std::int64_t int_ = 0;
    double double_value_ = 0;
    std::string str_;
    std::vector<value> elements_;
    std::unique_ptr<std::vector<value>> attrs_;
};

}  // namespace respite::resp
