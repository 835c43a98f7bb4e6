// JSON log lines (no spdlog here: the fuzz target builds this file alone): respite's "event
// key=value key=\"quoted value\" ..." messages as one JSON object per line, for log pipelines that
// index fields (Loki, Elasticsearch, CloudWatch ...).
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>

#include <respite/obs/json_line.hpp>

namespace respite::obs {

namespace {

// Appends s as the inside of a JSON string: quotes, backslashes and control bytes escaped,
// bytes that are not UTF-8 replaced by U+FFFD (keys and values may be binary).
void append_escaped(std::string& out, std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c == '\n') {
            out += "\\n";
            ++i;
        } else if (c == '\r') {
            out += "\\r";
            ++i;
        } else if (c == '\t') {
            out += "\\t";
            ++i;
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // A well-formed UTF-8 sequence (no overlongs, no surrogates) is copied whole.
            std::size_t n = 0;
            std::uint32_t cp = 0;
            if (c >= 0xc2 && c <= 0xdf) {
                n = 2;
                cp = c & 0x1f;
            } else if (c >= 0xe0 && c <= 0xef) {
                n = 3;
                cp = c & 0x0f;
            } else if (c >= 0xf0 && c <= 0xf4) {
                n = 4;
                cp = c & 0x07;
            }
            bool ok = n > 0 && i + n <= s.size();
            for (std::size_t k = 1; ok && k < n; ++k) {
                const auto cc = static_cast<unsigned char>(s[i + k]);
                ok = (cc & 0xc0) == 0x80;
                cp = (cp << 6) | (cc & 0x3f);
            }
            ok = ok && !(n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) &&
                 !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
            if (ok) {
                out.append(s.substr(i, n));
                i += n;
            } else {
                out += "\\ufffd";
                ++i;
            }
        }
    }
}

void append_string(std::string& out, std::string_view s) {
    out += '"';
    append_escaped(out, s);
    out += '"';
}

// A number or a boolean as JSON has it (then written bare); anything else is a string.
bool is_literal(std::string_view v) {
    if (v == "true" || v == "false")
        return true;
    std::size_t i = v.starts_with('-') ? 1 : 0;
    if (i >= v.size() || v.size() > 20)
        return false;
    bool digits = false, dot = false;
    for (; i < v.size(); ++i) {
        if (v[i] >= '0' && v[i] <= '9') {
            digits = true;
        } else if (v[i] == '.' && !dot && digits && i + 1 < v.size()) {
            dot = true;
        } else {
            return false;
        }
    }
    // JSON has no leading zeros ("007" stays a string). An integer of more than 15 digits
    // stays a string too: JavaScript and other double-based readers would round it (2^53).
    const auto body = v.substr(v.starts_with('-') ? 1 : 0);
    if (!dot && body.size() > 15)
        return false;
    return digits && !(body.size() > 1 && body[0] == '0' && body[1] != '.');
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// The escapes obs::quoted writes (\" \\ \n \r \t \xNN); any other backslash stays as it is.
std::string unescape(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (v[i] != '\\' || i + 1 == v.size()) {
            out += v[i];
            continue;
        }
        const char n = v[i + 1];
        if (n == '"' || n == '\\') {
            out += n;
            ++i;
        } else if (n == 'n' || n == 'r' || n == 't') {
            out += n == 'n' ? '\n' : n == 'r' ? '\r' : '\t';
            ++i;
        } else if (n == 'x' && i + 3 < v.size() && hex_digit(v[i + 2]) >= 0 &&
                   hex_digit(v[i + 3]) >= 0) {
            out += static_cast<char>(hex_digit(v[i + 2]) * 16 + hex_digit(v[i + 3]));
            i += 3;
        } else {
            out += v[i];
        }
    }
    return out;
}

bool is_key(std::string_view k) {
    if (k.empty() || k.size() > 64)
        return false;
    for (char c : k)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/'))
            return false;
    return true;
}

}  // namespace

std::string json_log_line(std::string_view ts, std::string_view level, std::string_view message) {
    std::string out;
    out.reserve(message.size() + 64);
    out += "{\"ts\":";
    append_string(out, ts);
    out += ",\"level\":";
    append_string(out, level);
    std::string event, note;
    std::string fields;
    std::size_t i = 0;
    const auto skip_spaces = [&] {
        while (i < message.size() && message[i] == ' ')
            ++i;
    };
    skip_spaces();
    while (i < message.size()) {
        const std::size_t start = i;
        const std::size_t eq = message.find('=', i);
        const std::size_t sp = message.find(' ', i);
        const bool field = eq != std::string_view::npos &&
                           (sp == std::string_view::npos || eq < sp) &&
                           is_key(message.substr(i, eq - i)) && eq + 1 <= message.size();
        if (!field) {
            // A bare word: part of the event name before the first field, a note after it.
            const std::size_t end = sp == std::string_view::npos ? message.size() : sp;
            auto& into = fields.empty() ? event : note;
            if (!into.empty())
                into += ' ';
            into.append(message.substr(start, end - start));
            i = end;
            skip_spaces();
            continue;
        }
        const auto key = message.substr(i, eq - i);
        i = eq + 1;
        std::string_view value;
        bool quoted = false;
        if (i < message.size() && message[i] == '"') {
            // A quoted value ends at an unescaped quote (obs::quoted escapes) that ends the
            // message, or that a space and the next key=value (or no further quote) follow:
            // other values are not escaped, so a quote inside one is told apart by what comes
            // after it.
            std::size_t close = i + 1;
            while (true) {
                close = message.find('"', close);
                if (close == std::string_view::npos)
                    break;
                std::size_t slashes = 0;
                while (close - slashes > i + 1 && message[close - slashes - 1] == '\\')
                    ++slashes;
                if (slashes % 2 == 1) {
                    ++close;
                    continue;
                }
                if (close + 1 == message.size())
                    break;
                if (message[close + 1] == ' ') {
                    const auto rest = message.substr(close + 2);
                    const auto next_eq = rest.find('=');
                    const auto next_sp = rest.find(' ');
                    if ((next_eq != std::string_view::npos && next_eq < next_sp &&
                         is_key(rest.substr(0, next_eq))) ||
                        rest.find('"') == std::string_view::npos)
                        break;
                }
                ++close;
            }
            if (close == std::string_view::npos) {
                value = message.substr(i + 1);
                i = message.size();
            } else {
                value = message.substr(i + 1, close - i - 1);
                i = close + 1;
            }
            quoted = true;
        } else {
            const std::size_t end = message.find(' ', i);
            value =
                message.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
            i = end == std::string_view::npos ? message.size() : end;
        }
        fields += ',';
        // A field must not shadow the line's own names (a later duplicate would win).
        if (key == "ts" || key == "level" || key == "event" || key == "note" || key == "component")
            append_string(fields, "field_" + std::string(key));
        else
            append_string(fields, key);
        fields += ':';
        if (!quoted && is_literal(value))
            fields.append(value);
        else if (quoted)
            append_string(fields, unescape(value));
        else
            append_string(fields, value);
        skip_spaces();
    }
    // "proxy mode_switch": the component and the event's name, each a field of its own (an
    // event name without spaces, for log queries). Other wordings stay one event.
    if (const auto sp = event.find(' '); sp != std::string::npos &&
                                         event.find(' ', sp + 1) == std::string::npos &&
                                         is_key(std::string_view(event).substr(0, sp)) &&
                                         is_key(std::string_view(event).substr(sp + 1))) {
        out += ",\"component\":";
        append_string(out, std::string_view(event).substr(0, sp));
        event.erase(0, sp + 1);
    }
    out += ",\"event\":";
    append_string(out, event);
    out += fields;
    if (!note.empty()) {
        out += ",\"note\":";
        append_string(out, note);
    }
    out += "}";
    return out;
}

}  // namespace respite::obs
