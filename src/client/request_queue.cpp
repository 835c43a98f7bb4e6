// FIFO matching of replies to requests, push routing and deadlines (see request_queue.hpp).
#include "request_queue.hpp"

#include <algorithm>

#include <respite/client/command_info.hpp>

namespace respite::client::detail {

void request_queue::push(std::string_view encoded, request_options opts, completion done) {
    entry e;
    e.done = std::move(done);
    e.expected = opts.replies;
    e.bytes = static_cast<std::uint32_t>(encoded.size());
    e.deadline = opts.deadline;
    e.mode = opts.mode;
    e.confirm = opts.confirm;
    e.replies.reserve(e.expected);
    staging_.append(encoded);
    entries_.push_back(std::move(e));
}

void request_queue::take_staged(std::string& out) {
    out.clear();
    out.swap(staging_);
    written_ = entries_.size();
}

bool request_queue::is_resp2_push(const resp::value& v) const noexcept {
    if (!resp2_pubsub_ || v.type() != resp::type::array || v.elements().empty())
        return false;
    const auto& head = v.elements().front();
    if (!head.is_string())
        return false;
    const auto& k = head.str();
    for (std::string_view kind : {"message", "pmessage", "smessage", "subscribe", "psubscribe",
                                  "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe"}) {
        if (iequals(k, kind))
            return true;
    }
    return false;
}

void request_queue::finish(entry& e, std::error_code ec) {
    if (e.abandoned || !e.done)
        return;
    auto done = std::move(e.done);
    if (ec)
        e.replies.clear();
    done(ec, e.replies);
}

// Redis answers an (un)subscribe with one confirmation per name, in order with the replies of the
// commands around it, so the confirmations of the oldest written request are counted here.
bool request_queue::is_confirmation_for_head(const resp::value& v) const noexcept {
    if (written_ == 0)
        return false;
    const entry& e = entries_.front();
    if (e.mode != reply_mode::confirmations || v.elements().empty())
        return false;
    const auto& kind = v.elements().front();
    return kind.is_string() && iequals(kind.str(), e.confirm);
}

request_queue::value_route request_queue::on_value(resp::value&& v) {
    if (v.type() == resp::type::push || is_resp2_push(v)) {
        if (is_confirmation_for_head(v)) {
            entry& e = entries_.front();
            if (++e.received < e.expected)
                return value_route::push;
            e.replies.push_back(resp::value::simple_string("OK"));
            entry done = std::move(e);
            entries_.pop_front();
            --written_;
            finish(done, {});
            return value_route::push;
        }
        if (push_sink_)
            push_sink_(std::move(v));
        return value_route::push;
    }
    if (written_ == 0) {
        return v.is_error() ? value_route::unsolicited_error : value_route::unexpected;
    }
    entry& e = entries_.front();
    e.replies.push_back(std::move(v));
    // An error reply ends an (un)subscribe at once: Redis sends it instead of every confirmation.
    if (e.mode != reply_mode::confirmations && ++e.received < e.expected)
        return value_route::reply;
    entry done = std::move(e);
    entries_.pop_front();
    --written_;
    finish(done, {});
    return value_route::reply;
}

std::size_t request_queue::expire(clock::time_point now, std::error_code timeout_ec) {
    std::vector<entry> expired;
    // Written entries stay (their replies will still come) but are answered now.
    for (std::size_t i = 0; i < written_; ++i) {
        entry& e = entries_[i];
        if (!e.abandoned && e.deadline <= now) {
            entry copy;
            copy.done = std::move(e.done);
            copy.expected = e.expected;
            expired.push_back(std::move(copy));
            e.abandoned = true;
        }
    }
    // Staged entries that expired are removed with their bytes, so they are never sent.
    std::size_t offset = 0;
    for (std::size_t i = written_; i < entries_.size();) {
        entry& e = entries_[i];
        if (e.deadline <= now) {
            staging_.erase(offset, e.bytes);
            expired.push_back(std::move(e));
            entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
            offset += e.bytes;
            ++i;
        }
    }
    for (auto& e : expired)
        finish(e, timeout_ec);
    return expired.size();
}

void request_queue::fail_written(std::error_code ec) {
    std::vector<entry> failed;
    failed.reserve(written_);
    for (std::size_t i = 0; i < written_; ++i)
        failed.push_back(std::move(entries_[i]));
    entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(written_));
    written_ = 0;
    for (auto& e : failed)
        finish(e, ec);
}

void request_queue::fail_all(std::error_code ec) {
    std::deque<entry> failed;
    failed.swap(entries_);
    written_ = 0;
    staging_.clear();
    for (auto& e : failed)
        finish(e, ec);
}

clock::time_point request_queue::next_deadline() const noexcept {
    auto best = clock::time_point::max();
    for (const auto& e : entries_) {
        if (!e.abandoned && e.deadline < best)
            best = e.deadline;
    }
    return best;
}

}  // namespace respite::client::detail
