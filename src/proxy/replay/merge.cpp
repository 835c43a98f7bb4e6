#include "merge.hpp"

#include <charconv>

namespace respite::proxy::replay {

namespace {

// Reads "<digits>\r\n" at pos; the number, pos after the CRLF.
std::optional<std::size_t> read_length(std::string_view s, std::size_t& pos) noexcept {
    std::size_t n = 0;
    const char* first = s.data() + pos;
    const char* last = s.data() + s.size();
    auto [p, ec] = std::from_chars(first, last, n);
    if (ec != std::errc{} || p == first || last - p < 2 || p[0] != '\r' || p[1] != '\n')
        return std::nullopt;
    pos = static_cast<std::size_t>(p - s.data()) + 2;
    return n;
}

void append_bulk(std::string& out, std::string_view s) {
    out += '$';
    out += std::to_string(s.size());
    out += "\r\n";
    out += s;
    out += "\r\n";
}

}  // namespace

std::optional<command_shape> shape_of(std::string_view command, std::size_t head) noexcept {
    if (command.empty() || command[0] != '*')
        return std::nullopt;
    std::size_t pos = 1;
    const auto args = read_length(command, pos);
    if (!args || *args <= head)
        return std::nullopt;
    command_shape s;
    s.args = *args;
    s.head_begin = pos;
    for (std::size_t i = 0; i < *args; ++i) {
        if (i == head)
            s.tail = pos;
        if (pos >= command.size() || command[pos] != '$')
            return std::nullopt;
        ++pos;
        const auto len = read_length(command, pos);
        if (!len || command.size() - pos < *len + 2 || command[pos + *len] != '\r' ||
            command[pos + *len + 1] != '\n')
            return std::nullopt;
        pos += *len + 2;
    }
    if (pos != command.size())
        return std::nullopt;
    return s;
}

std::string_view first_name(std::string_view commands) noexcept {
    if (commands.empty() || commands[0] != '*')
        return {};
    std::size_t pos = 1;
    const auto args = read_length(commands, pos);
    if (!args || *args == 0 || pos >= commands.size() || commands[pos] != '$')
        return {};
    ++pos;
    const auto len = read_length(commands, pos);
    if (!len || commands.size() - pos < *len)
        return {};
    return commands.substr(pos, *len);
}

bool merge_run::add(std::string_view command, std::uint8_t head, std::string_view rename,
                    std::uint32_t group) {
    // A command alone over the bound is sent as it is: never copied here, never held.
    if (head == 0 || command.size() > max_bytes)
        return false;
    const auto s = shape_of(command, head);
    if (!s)
        return false;
    const std::string_view own_head = command.substr(s->head_begin, s->tail - s->head_begin);
    const std::string_view tail = command.substr(s->tail);
    if (count_ == 0) {
        head_.clear();
        if (rename.empty()) {
            head_.assign(own_head);
            head_args_ = head;
        } else {
            append_bulk(head_, rename);
            head_args_ = 1;
        }
        tails_.assign(tail);
        tail_args_ = s->args - head;
        first_.assign(command);
        head_count_ = head;
        rename_ = rename;
        group_ = group;
        count_ = 1;
        return true;
    }
    if (head != head_count_ || rename != rename_ || group != group_ ||
        head_.size() + tails_.size() + tail.size() > max_bytes)
        return false;
    if (rename.empty() && own_head != head_)
        return false;
    tails_.append(tail);
    tail_args_ += s->args - head;
    ++count_;
    return true;
}

std::string_view merge_run::take() {
    if (count_ == 0)
        return {};
    if (count_ == 1) {
        out_.swap(first_);
    } else {
        out_.clear();
        out_ += '*';
        out_ += std::to_string(head_args_ + tail_args_);
        out_ += "\r\n";
        out_ += head_;
        out_ += tails_;
    }
    count_ = 0;
    // Buffers kept for the next run stay small (a burst of large commands may have grown them).
    for (auto* b : {&head_, &tails_, &first_})
        if (b->capacity() > 4 * max_bytes)
            std::string().swap(*b);
    return out_;
}

}  // namespace respite::proxy::replay
