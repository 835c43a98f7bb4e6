// CLIENT LIST, CLIENT KILL and CLIENT INFO, answered by the proxy about its own clients.
//
// To its clients the proxy is one server: CLIENT LIST lists them (not the backend's view, which
// shows the proxy's upstream connections and their addresses), and CLIENT KILL closes them (on
// the backend it could cut the proxy's shared connections, and every client's commands on them).
// Each worker lists or closes its own sessions on its own thread; the asking session answers
// once every worker did.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/post.hpp>

#include <respite/client/command_info.hpp>
#include <respite/resp/writer.hpp>

#include "frames.hpp"
#include "session.hpp"
#include "text.hpp"

namespace respite::proxy::server {

using client::iequals;

namespace {

// CLIENT LIST lines ("id=<n> addr=...\n") gathered worker by worker, in the order Redis lists
// them: oldest connection first (by id), or for CLIENT LIST ID the order of the ids asked for
// (`order`, repeats included).
std::string by_client_id(const std::string& text, const std::vector<std::uint64_t>& order) {
    std::vector<std::pair<std::uint64_t, std::string_view>> lines;
    std::string_view rest(text);
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const auto line = rest.substr(0, nl == std::string_view::npos ? rest.size() : nl + 1);
        rest.remove_prefix(line.size());
        std::uint64_t id = 0;
        if (line.starts_with("id="))
            std::from_chars(line.data() + 3, line.data() + line.size(), id);
        lines.emplace_back(id, line);
    }
    std::ranges::stable_sort(lines, {}, &std::pair<std::uint64_t, std::string_view>::first);
    std::string out;
    out.reserve(text.size());
    if (order.empty()) {
        for (const auto& l : lines)
            out += l.second;
        return out;
    }
    for (auto id : order) {
        const auto it = std::ranges::lower_bound(
            lines, id, {}, &std::pair<std::uint64_t, std::string_view>::first);
        if (it != lines.end() && it->first == id)
            out += it->second;
    }
    return out;
}

enum class client_type : std::uint8_t { normal, pubsub, replica, master };

std::optional<client_type> type_named(std::string_view s) {
    if (iequals(s, "normal"))
        return client_type::normal;
    if (iequals(s, "pubsub"))
        return client_type::pubsub;
    if (iequals(s, "replica") || iequals(s, "slave"))
        return client_type::replica;
    if (iequals(s, "master"))
        return client_type::master;
    return std::nullopt;
}

// A proxy client is never a replica or a master; MONITOR clients count as normal (as in Redis).
client_type type_of(const session& s) {
    return s.pubsub_client() ? client_type::pubsub : client_type::normal;
}

std::optional<std::uint64_t> parse_id(std::string_view s) {
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v == 0)
        return std::nullopt;
    return v;
}

std::int64_t seconds_since(std::chrono::steady_clock::time_point t,
                           std::chrono::steady_clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::seconds>(now - t).count();
}

// CLIENT KILL's filters (the new form); every one given must match.
struct kill_filter {
    std::optional<std::uint64_t> id;
    std::optional<std::string> addr, laddr, user;
    std::optional<client_type> type;
    std::optional<std::int64_t> max_age;  // seconds: older clients match
    bool skip_me = true;
    std::uint64_t caller = 0;

    [[nodiscard]] bool matches(const session& s, std::chrono::steady_clock::time_point now) const {
        return (!id || s.id() == *id) && (!addr || s.peer_address() == *addr) &&
               (!laddr || s.local_address() == *laddr) && (!user || s.user() == *user) &&
               (!type || type_of(s) == *type) &&
               (!max_age || seconds_since(s.created(), now) >= *max_age) &&
               !(skip_me && s.id() == caller);
    }
};

}  // namespace

std::string session::client_line() const {
    const auto now = std::chrono::steady_clock::now();
    std::string flags;
    if (in_multi_)
        flags += 'x';
    if (blocked_)
        flags += 'b';
    if (subscribed())
        flags += 'P';
    if (monitor_)
        flags += 'O';
    if (closing_)
        flags += 'c';
    if (flags.empty())
        flags = "N";
    std::string line;
    line.reserve(256);
    line += "id=" + std::to_string(id_);
    line += " addr=" + addr_;
    line += " laddr=" + laddr_;
    line += " fd=" + std::to_string(socket_.descriptor());
    line += " name=" + name_;
    line += " age=" + std::to_string(seconds_since(created_, now));
    line += " idle=" + std::to_string(seconds_since(last_activity_, now));
    line += " flags=" + flags;
    line += " db=" + std::to_string(db_);
    line += " sub=" + std::to_string(channels_.size());
    line += " psub=" + std::to_string(patterns_.size());
    line += " ssub=" + std::to_string(shard_channels_.size());
    line += " multi=" + std::to_string(in_multi_ ? static_cast<long>(queued_.size()) : -1L);
    line += " qbuf=" + std::to_string(in_.size() - in_start_);
    line += " qbuf-free=0 argv-mem=0 multi-mem=0 rbs=" + std::to_string(in_.capacity());
    line += " rbp=0 obl=0 oll=" + std::to_string(slots_.size());
    line += " omem=" + std::to_string(out_.size() + writing_.size() + held_bytes_);
    line += " tot-mem=" + std::to_string(in_.capacity() + out_.capacity() + writing_.capacity());
    line += " events=r cmd=";
    line += last_cmd_;
    line += " user=";
    line += user();
    line += " redir=-1 resp=" + std::to_string(proto_);
    line += " lib-name= lib-ver=\n";
    return line;
}

void session::client_info() {
    reply(text_frame(client_line(), proto_));
}

void session::across_clients(std::function<void(session&, std::string&)> visit,
                             std::function<std::string(session&, std::string)> done) {
    struct gather {
        std::mutex mu;
        std::string out;
        std::size_t left = 0;
    };
    auto g = std::make_shared<gather>();
    g->left = st_.workers.size();
    const auto seq = alloc_slot();
    // Copies of `finish` live in other workers' handlers: a weak reference only, so that this
    // session is never destroyed on another worker's thread.
    auto finish = [weak = weak_from_this(), seq, g, done = std::move(done)] {
        // On this session's worker: every worker appended its part.
        auto self = weak.lock();
        if (!self || self->closed_)
            return;
        self->on_reply(seq, done(*self, std::move(g->out)));
    };
    if (g->left == 0) {
        finish();
        return;
    }
    auto& home = w_.ioc();
    for (worker* w : st_.workers)
        asio::post(w->ioc(), [w, g, visit, finish, &home] {
            std::string part;
            w->each_session([&](session& s) { visit(s, part); });
            bool last = false;
            {
                std::lock_guard lock(g->mu);
                g->out += part;
                last = --g->left == 0;
            }
            if (last)
                asio::post(home, finish);
        });
}

void session::client_list(std::span<const std::string_view> args) {
    // CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id [id ...]]
    std::optional<client_type> type;
    std::vector<std::uint64_t> ids;
    bool by_id = false;
    for (std::size_t i = 2; i < args.size(); ++i) {
        if (iequals(args[i], "type") && i + 1 < args.size() && !by_id) {
            type = type_named(args[++i]);
            if (!type)
                return reply_error("ERR Unknown client type '" + std::string(args[i]) + "'");
        } else if (iequals(args[i], "id") && i + 1 < args.size() && !type) {
            by_id = true;
            for (++i; i < args.size(); ++i) {
                const auto id = parse_id(args[i]);
                if (!id)
                    return reply_error("ERR Invalid client ID");
                ids.push_back(*id);
            }
        } else {
            return reply_error("ERR syntax error");
        }
    }
    across_clients(
        [type, ids, by_id](session& s, std::string& out) {
            if (type && type_of(s) != *type)
                return;
            if (by_id && std::ranges::find(ids, s.id()) == ids.end())
                return;
            out += s.client_line();
        },
        [proto = proto_, order = by_id ? ids : std::vector<std::uint64_t>{}](
            session&, std::string text) { return text_frame(by_client_id(text, order), proto); });
}

void session::client_kill(std::span<const std::string_view> args) {
    // Old form: CLIENT KILL addr:port -> +OK or an error. New form: filter pairs -> a count.
    const bool old_form = args.size() == 3;
    kill_filter f;
    f.caller = id_;
    if (old_form) {
        f.addr = std::string(args[2]);
        f.skip_me = false;
    } else {
        if (args.size() < 4 || args.size() % 2 != 0)
            return reply_error("ERR syntax error");
        for (std::size_t i = 2; i + 1 < args.size(); i += 2) {
            const auto opt = args[i];
            const auto val = args[i + 1];
            if (iequals(opt, "id")) {
                f.id = parse_id(val);
                if (!f.id)
                    return reply_error("ERR client-id should be greater than 0");
            } else if (iequals(opt, "type")) {
                f.type = type_named(val);
                if (!f.type)
                    return reply_error("ERR Unknown client type '" + std::string(val) + "'");
            } else if (iequals(opt, "addr")) {
                f.addr = std::string(val);
            } else if (iequals(opt, "laddr")) {
                f.laddr = std::string(val);
            } else if (iequals(opt, "user")) {
                f.user = std::string(val);
            } else if (iequals(opt, "skipme")) {
                if (iequals(val, "yes"))
                    f.skip_me = true;
                else if (iequals(val, "no"))
                    f.skip_me = false;
                else
                    return reply_error("ERR syntax error");
            } else if (iequals(opt, "maxage")) {
                std::int64_t age = 0;
                auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), age);
                if (ec != std::errc{} || p != val.data() + val.size())
                    return reply_error("ERR value is not an integer or out of range");
                f.max_age = age;
            } else {
                return reply_error("ERR syntax error");
            }
        }
    }
    // The caller itself (SKIPME no) is closed after its reply, as Redis does.
    auto kill_self = std::make_shared<std::atomic<bool>>(false);
    const auto caller = id_;
    across_clients(
        [f, kill_self, caller](session& s, std::string& out) {
            if (!f.matches(s, std::chrono::steady_clock::now()))
                return;
            out += 'x';  // one per client closed: the count is the length
            if (s.id() == caller)
                kill_self->store(true);
            else
                s.close_now();  // as Redis: at once, blocked or not reading (a block is
                                // cancelled upstream, a popped value put back)
        },
        [old_form, kill_self](session& self, std::string killed) {
            if (kill_self->load())
                asio::post(self.w_.ioc(), [s = self.shared_from_this()] { s->close_gracefully(); });
            if (old_form)
                return std::string(killed.empty() ? "-ERR No such client\r\n" : "+OK\r\n");
            std::string count;
            resp::append_integer(count, static_cast<std::int64_t>(killed.size()));
            return count;
        });
}

// CLIENT UNBLOCK id [TIMEOUT|ERROR]: the proxy's client `id`, blocked, is woken as Redis would
// wake it: its command's own connection gets CLIENT UNBLOCK on the backend, whose answer (the
// timeout's, or -UNBLOCKED with ERROR) reaches the client. :1 when that client was blocked.
void session::client_unblock(std::span<const std::string_view> args) {
    if (args.size() != 3 && args.size() != 4)
        return reply_error(wrong_args("client|unblock"));
    std::int64_t id = 0;
    const auto text = args[2];
    if (auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
        ec != std::errc{} || p != text.data() + text.size())
        return reply_error("ERR value is not an integer or out of range");
    bool error = false;
    if (args.size() == 4) {
        if (iequals(args[3], "error"))
            error = true;
        else if (!iequals(args[3], "timeout"))
            return reply_error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    }
    if (id <= 0)
        return reply(":0\r\n");  // no client has that id
    const auto target = static_cast<std::uint64_t>(id);
    across_clients(
        [target, error](session& s, std::string& out) {
            if (s.id() == target && s.wake(error))
                out += 'x';
        },
        [](session&, std::string woken) {
            return std::string(woken.empty() ? ":0\r\n" : ":1\r\n");
        });
}

}  // namespace respite::proxy::server
