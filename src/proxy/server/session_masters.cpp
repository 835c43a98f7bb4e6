// A Redis Cluster serving side: the keyless commands each node answers for its own slots only
// run on every master (DBSIZE, KEYS, RANDOMKEY, SCRIPT EXISTS, FLUSHALL, FLUSHDB, SCRIPT
// LOAD/FLUSH, FUNCTION LOAD/FLUSH/DELETE/RESTORE), and SCAN walks the masters one after the
// other behind one cursor (every_master.hpp).
#include <algorithm>
#include <charconv>
#include <random>

#include <asio/post.hpp>

#include <respite/obs/log.hpp>
#include <respite/resp/writer.hpp>

#include "follow.hpp"
#include "frames.hpp"
#include "session.hpp"

namespace respite::proxy::server {
namespace {

std::size_t random_pick() {
    thread_local std::minstd_rand rng{std::random_device{}()};
    return rng();
}

}  // namespace

void session::refresh_then(std::uint64_t seq, side s, bool refreshed,
                           std::move_only_function<void()> again) {
    // No slot map yet: read it once and try again on this worker; then give up (the command
    // ran nowhere).
    const auto& be = st_.backends[static_cast<int>(s)];
    if (refreshed || !be)
        return on_failure(seq, false);
    be->refresh_topology(
        [self = shared_from_this(), s, &ioc = w_.ioc(), again = std::move(again)]() mutable {
            asio::post(ioc, [self, s, again = std::move(again)]() mutable {
                self->w_.topology_changed(s);
                again();
            });
        });
}

void session::exec_on_masters(std::uint64_t seq, side s, std::vector<std::string> args,
                              every_master how, bool refreshed) {
    const auto masters = w_.masters(s);
    if (masters.empty()) {
        return refresh_then(
            seq, s, refreshed,
            [self = shared_from_this(), seq, s, args = std::move(args), how]() mutable {
                self->exec_on_masters(seq, s, std::move(args), how, true);
            });
    }
    const auto& be = st_.client_backend(s, proto_);
    auto& ioc = w_.ioc();
    struct gather {
        std::vector<client::result<replies_t>> results;
        std::size_t left = 0;
    };
    auto g = std::make_shared<gather>();
    g->results.resize(masters.size());
    g->left = masters.size();
    for (std::size_t i = 0; i < masters.size(); ++i) {
        client::request req;
        req.push_args(args);
        be->exec_on(masters[i], std::move(req),
                    [self = shared_from_this(), g, i, seq, how, &ioc](client::result<replies_t> r) {
                        asio::post(ioc, [self, g, i, seq, how, r = std::move(r)]() mutable {
                            g->results[i] = std::move(r);
                            if (--g->left == 0)
                                self->masters_answered(seq, how, std::move(g->results));
                        });
                    });
    }
}

void session::masters_answered(std::uint64_t seq, every_master how,
                               std::vector<client::result<replies_t>> results) {
    if (seq < head_seq_ || seq >= next_seq_)
        return;
    std::vector<resp::value> replies;
    replies.reserve(results.size());
    for (auto& r : results) {
        if (!r || r->empty())
            return on_failure(seq, true);  // a master may or may not have run it
        replies.push_back(std::move(r->front()));
    }
    const auto combined = combine_replies(how, replies, random_pick());
    const bool some_ran =
        std::ranges::any_of(replies, [](const resp::value& v) { return !v.is_error(); });
    if (how == every_master::first_reply && combined.is_error() && some_ran) {
        // Some masters ran the write and others refused it: the follower cannot replay a part
        // of it, so its outcome counts as unknown (a keyspace-wide one needs a full resync).
        obs::log().warn("proxy every_master_write_partial error=\"{}\"", combined.str());
        auto& ctx = slots_[seq - head_seq_].ctx;
        if (ctx && ctx->kind == ctx_kind::write) {
            if (ctx->followed)
                follow_abandon(st_, ctx->serving, ctx->keys, ctx->global, true);
            st_.writes_in_flight.fetch_sub(1, std::memory_order_acq_rel);
            ctx->kind = ctx_kind::none;
        }
    }
    on_reply(seq, encode_value(combined, proto_));
}

void session::scan_masters(std::uint64_t seq, side s, std::vector<std::string> args,
                           bool refreshed) {
    const auto cursor = scan_cursor::parse(args[1]);
    if (!cursor)
        return on_reply(seq, "-ERR invalid cursor\r\n");
    auto masters = scan_order(w_.masters(s));
    if (masters.empty()) {
        return refresh_then(seq, s, refreshed,
                            [self = shared_from_this(), seq, s, args = std::move(args)]() mutable {
                                self->scan_masters(seq, s, std::move(args), true);
                            });
    }
    const auto step = resume_scan(*cursor, masters);
    if (!step) {
        // Past the last master (the cluster lost masters since this cursor was given): done.
        std::vector<resp::value> done;
        done.push_back(resp::value::bulk_string("0"));
        done.push_back(resp::value::array({}));
        return on_reply(seq, encode_value(resp::value::array(std::move(done)), proto_));
    }
    scan_node(seq, s, std::move(args), std::move(masters), step->index, step->node_cursor);
}

void session::scan_node(std::uint64_t seq, side s, std::vector<std::string> args,
                        std::vector<cluster::node_address> masters, std::size_t index,
                        std::uint64_t node_cursor) {
    args[1] = std::to_string(node_cursor);
    client::request req;
    req.push_args(args);
    const auto node = masters[index];
    auto& ioc = w_.ioc();
    st_.client_backend(s, proto_)->exec_on(
        node, std::move(req),
        [self = shared_from_this(), seq, s, args = std::move(args), masters = std::move(masters),
         index, &ioc](client::result<replies_t> r) mutable {
            asio::post(ioc, [self, seq, s, args = std::move(args), masters = std::move(masters),
                             index, r = std::move(r)]() mutable {
                self->scan_answered(seq, s, std::move(args), std::move(masters), index,
                                    std::move(r));
            });
        });
}

void session::scan_answered(std::uint64_t seq, side s, std::vector<std::string> args,
                            std::vector<cluster::node_address> masters, std::size_t index,
                            client::result<replies_t> r) {
    if (seq < head_seq_ || seq >= next_seq_)
        return;
    if (!r || r->empty())
        return on_failure(seq, true);
    auto& v = r->front();
    if (v.is_error())
        return on_reply(seq, encode_value(v, proto_));
    std::uint64_t node_cursor = 0;
    if (v.type() != resp::type::array || v.size() != 2 || !v.elements()[0].is_string() ||
        std::from_chars(v.elements()[0].str().data(),
                        v.elements()[0].str().data() + v.elements()[0].str().size(), node_cursor)
                .ec != std::errc{})
        return on_reply(seq, "-ERR proxy: unexpected SCAN reply from the serving backend\r\n");
    // A master that ended with an empty page: the next one answers this call (an empty
    // cluster ends SCAN 0 at once).
    if (node_cursor == 0 && v.elements()[1].size() == 0 && index + 1 < masters.size() && !closed_)
        return scan_node(seq, s, std::move(args), std::move(masters), index + 1, 0);
    const auto next = next_scan_cursor(masters, index, node_cursor);
    if (!next)
        return on_reply(seq,
                        "-ERR proxy: a Redis Cluster node's SCAN cursor does not fit the proxy's "
                        "cursor\r\n");
    v.elements()[0] = resp::value::bulk_string(std::to_string(*next));
    on_reply(seq, encode_value(v, proto_));
}

}  // namespace respite::proxy::server
