// Divergence kinds, bounded labels and the one-line display form used in logs and Sentry.
#include <charconv>
#include <string>

#include <respite/commands/command_table.hpp>
#include <respite/proxy/divergence.hpp>

#include "text.hpp"

namespace respite::proxy {

namespace {

constexpr std::string_view ellipsis = "...";

// Renders into `out` until it holds more than `budget` bytes, so a million-element reply costs
// no more than a short one.
class renderer {
  public:
    explicit renderer(std::size_t budget) : budget_(budget) {}

    [[nodiscard]] bool full() const noexcept { return out_.size() > budget_; }

    void bytes(std::string_view s, bool quoted) {
        static constexpr char hex[] = "0123456789abcdef";
        if (quoted) {
            out_ += '"';
        }
        for (const char ch : s) {
            if (full()) {
                return;
            }
            const auto c = static_cast<unsigned char>(ch);
            switch (c) {
                case '\n':
                    out_ += "\\n";
                    break;
                case '\r':
                    out_ += "\\r";
                    break;
                case '\t':
                    out_ += "\\t";
                    break;
                case '\\':
                    out_ += "\\\\";
                    break;
                case '"':
                    out_ += quoted ? "\\\"" : "\"";
                    break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        out_ += "\\x";
                        out_ += hex[c >> 4];
                        out_ += hex[c & 0xf];
                    } else {
                        out_ += static_cast<char>(c);
                    }
            }
        }
        if (quoted) {
            out_ += '"';
        }
    }

    void value(const resp::value& v) {
        using resp::type;
        if (full()) {
            return;
        }
        switch (v.type()) {
            case type::simple_string:
                bytes(v.str(), false);
                return;
            case type::bulk_string:
            case type::verbatim_string:
                bytes(v.str(), true);
                return;
            case type::simple_error:
            case type::blob_error:
                out_ += "(error) ";
                bytes(v.str(), false);
                return;
            case type::integer:
                out_ += std::to_string(v.integer());
                return;
            case type::null:
                out_ += "(nil)";
                return;
            case type::double_: {
                char buf[32];
                const auto r = std::to_chars(buf, buf + sizeof buf, v.double_value());
                out_.append(buf, r.ptr);
                return;
            }
            case type::boolean:
                out_ += v.boolean() ? "(true)" : "(false)";
                return;
            case type::big_number:
                out_ += "(big) ";
                out_ += v.str();
                return;
            case type::array:
            case type::set:
            case type::push:
            case type::map:
                break;
        }
        const bool map = v.type() == type::map;
        out_ += map ? "{" : v.type() == type::set ? "~[" : v.type() == type::push ? ">[" : "[";
        const auto& e = v.elements();
        for (std::size_t i = 0; i < e.size() && !full(); ++i) {
            if (i > 0) {
                out_ += map && i % 2 == 1 ? ": " : ", ";
            }
            value(e[i]);
        }
        out_ += map ? "}" : "]";
    }

    std::string finish() && {
        if (out_.size() > budget_) {
            out_.resize(budget_ >= ellipsis.size() ? budget_ - ellipsis.size() : 0);
            out_ += ellipsis.substr(0, budget_ - out_.size());
        }
        return std::move(out_);
    }

  private:
    std::size_t budget_;
    std::string out_;
};

}  // namespace

std::string_view name(divergence_kind k) noexcept {
    switch (k) {
        case divergence_kind::migration_gap:
            return "migration_gap";
        case divergence_kind::data_mismatch:
            return "data_mismatch";
        case divergence_kind::extra_data:
            return "extra_data";
        case divergence_kind::secondary_error:
            return "secondary_error";
    }
    return "unknown";
}

std::string display(const resp::value& v, std::size_t limit) {
    renderer r(limit);
    r.value(v);
    return std::move(r).finish();
}

std::string display(std::string_view bytes, std::size_t limit) {
    renderer r(limit);
    r.bytes(bytes, false);
    return std::move(r).finish();
}

std::string command_label(std::string_view command) {
    const std::string_view base = command.substr(0, command.find('|'));
    if (const auto* spec = commands::command_table::builtin().find(base)) {
        return spec->name;
    }
    return "other";
}

std::string fingerprint(const write_failure& f) {
    return f.target + "_write_" + detail::lower(f.command);
}

std::string fingerprint(divergence_kind kind, std::string_view command) {
    std::string out = "divergence_";
    out += name(kind);
    out += '_';
    out += detail::lower(command);
    return out;
}

}  // namespace respite::proxy
