// Request encoding and the per-request facts the connection needs (blocking, pub/sub, state).
#include <algorithm>

#include <respite/client/request.hpp>
#include <respite/resp/writer.hpp>

namespace respite::client {

detail::arg_text::arg_text(double d) {
    auto [p, ec] = std::to_chars(buf_.data(), buf_.data() + buf_.size(), d);
    (void)ec;
    view_ = std::string_view(buf_.data(), static_cast<std::size_t>(p - buf_.data()));
}

request& request::push_args(std::span<const std::string_view> args) {
    ++commands_;
    if (args.empty()) {
        empty_command_ = true;
        return *this;
    }
    resp::append_command(payload_, args);
    switch (classify(args)) {
        case command_kind::blocking: {
            blocking_ = true;
            auto bt = blocking_time(args);
            if (!bt.duration) {
                unbounded_ = true;
            } else if (*bt.duration > max_block_) {
                max_block_ = *bt.duration;
            }
            break;
        }
        case command_kind::subscribe:
        case command_kind::unsubscribe:
            pubsub_ = true;
            break;
        case command_kind::connection_state:
            state_ = true;
            break;
        case command_kind::ordinary:
            break;
    }
    return *this;
}

request& request::push_args(const std::vector<std::string>& args) {
    std::vector<std::string_view> views(args.begin(), args.end());
    return push_args(std::span<const std::string_view>(views));
}

request& request::append(const request& o) {
    payload_ += o.payload_;
    commands_ += o.commands_;
    blocking_ = blocking_ || o.blocking_;
    unbounded_ = unbounded_ || o.unbounded_;
    pubsub_ = pubsub_ || o.pubsub_;
    state_ = state_ || o.state_;
    empty_command_ = empty_command_ || o.empty_command_;
    max_block_ = std::max(max_block_, o.max_block_);
    return *this;
}

request& request::append_encoded(std::string_view bytes, std::size_t commands) {
    payload_.append(bytes);
    commands_ += commands;
    return *this;
}

void request::clear() noexcept {
    payload_.clear();
    commands_ = 0;
    blocking_ = unbounded_ = pubsub_ = state_ = empty_command_ = false;
    max_block_ = std::chrono::milliseconds(0);
}

}  // namespace respite::client
