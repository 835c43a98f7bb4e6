// Pub/Sub message decoding and the bounded, observable message queue.
#include <respite/client/message_queue.hpp>
#include <respite/obs/log.hpp>
#include <respite/obs/metrics.hpp>

namespace respite::client {

std::string_view push_kind(const resp::value& push) noexcept {
    const auto& e = push.elements();
    if (e.empty() || !e[0].is_string())
        return {};
    return e[0].str();
}

std::optional<message> to_message(resp::value&& push) {
    auto kind = push_kind(push);
    auto& e = push.elements();
    message m;
    if ((kind == "message" || kind == "smessage") && e.size() >= 3) {
        m.kind = kind == "message" ? message::kind::message : message::kind::smessage;
        m.channel = std::move(e[1].str());
        m.payload = std::move(e[2].str());
        return m;
    }
    if (kind == "pmessage" && e.size() >= 4) {
        m.kind = message::kind::pmessage;
        m.pattern = std::move(e[1].str());
        m.channel = std::move(e[2].str());
        m.payload = std::move(e[3].str());
        return m;
    }
    return std::nullopt;
}

namespace {
obs::labels labels_for(const std::string& label) {
    obs::labels l;
    if (!label.empty())
        l.emplace_back("client", label);
    return l;
}
}  // namespace

message_queue::message_queue(std::size_t capacity, obs::registry& metrics, const std::string& label)
    : capacity_(capacity == 0 ? 1 : capacity),
      dropped_metric_(metrics.get_counter(
          "respite_client_push_dropped_total",
          "Pub/Sub messages dropped because the bounded queue was full (oldest first)",
          labels_for(label))),
      size_gauge_(metrics.get_gauge("respite_client_push_queue_size",
                                    "Pub/Sub messages waiting in the queue", labels_for(label))) {}

void message_queue::deliver(message&& m) {
    ++delivered_;
    if (handler_) {
        handler_(m);
        return;
    }
    if (!receivers_.empty()) {
        auto cb = std::move(receivers_.front());
        receivers_.pop_front();
        cb(std::move(m));
        return;
    }
    if (queue_.size() >= capacity_) {
        queue_.pop_front();
        auto dropped = ++dropped_;
        dropped_metric_.inc();
        if (dropped == 1 || dropped % 10000 == 0) {
            obs::log().warn("push_queue_full capacity={} dropped_total={} (oldest dropped)",
                            capacity_, dropped);
        }
    }
    queue_.push_back(std::move(m));
    size_ = queue_.size();
    size_gauge_.set(static_cast<double>(queue_.size()));
}

void message_queue::receive(std::move_only_function<void(result<message>)> cb) {
    if (!queue_.empty()) {
        auto m = std::move(queue_.front());
        queue_.pop_front();
        size_ = queue_.size();
        size_gauge_.set(static_cast<double>(queue_.size()));
        cb(std::move(m));
        return;
    }
    if (closed_) {
        cb(std::unexpected(make_error_code(error::closed)));
        return;
    }
    receivers_.push_back(std::move(cb));
}

void message_queue::set_handler(std::function<void(const message&)> handler) {
    handler_ = std::move(handler);
    // Hand over what queued up before the handler existed.
    while (handler_ && !queue_.empty()) {
        auto m = std::move(queue_.front());
        queue_.pop_front();
        size_ = queue_.size();
        handler_(m);
    }
    size_gauge_.set(static_cast<double>(queue_.size()));
}

void message_queue::close() {
    closed_ = true;
    while (!receivers_.empty()) {
        auto cb = std::move(receivers_.front());
        receivers_.pop_front();
        cb(std::unexpected(make_error_code(error::closed)));
    }
}

push_queue_stats message_queue::stats() const noexcept {
    return {size_.load(), capacity_, delivered_.load(), dropped_.load()};
}

}  // namespace respite::client
