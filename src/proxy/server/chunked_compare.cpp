// The chunked compare of a big key for PROXY VERIFY (see chunked_compare.hpp).
#include "chunked_compare.hpp"

#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include <respite/proxy/backend.hpp>
#include <respite/proxy/shadow.hpp>

namespace respite::proxy::server {

namespace {

// How long a key that differed may take to settle before it counts as unstable (as the shadow
// reader's re-check).
constexpr auto k_settle_limit = std::chrono::seconds(2);

class chunked_job : public std::enable_shared_from_this<chunked_job> {
  public:
    chunked_job(shared_state& st, side serving, std::string key, std::string type,
                std::size_t chunk, std::function<bool()> cancelled, shadow_reader::done_fn done)
        : st_(st),
          serving_(serving),
          key_(std::move(key)),
          type_(std::move(type)),
          chunk_(chunk),
          cancelled_(std::move(cancelled)),
          done_(std::move(done)) {}

    void start_pass() {
        ++pass_;
        offset_ = 0;
        // One character, assigned as such: GCC 12 warns falsely (-Wrestrict) on `= "0"` here.
        cursor_.assign(1, type_ == "stream" ? '-' : '0');
        last_ = false;
        std::vector<std::string> args{std::string(size_command(type_)), key_};
        read_serving(std::move(args), [self = shared_from_this()](std::vector<std::string> args,
                                                                  resp::value served) {
            self->compare_on_other(std::move(args), std::move(served));
        });
    }

  private:
    using served_fn = std::move_only_function<void(std::vector<std::string>, resp::value)>;

    // The next window of the serving side, compared with the same elements of the other side.
    void next_window() {
        if (last_) {
            finish(pass_ == 1 ? shadow_outcome::match : shadow_outcome::match_after_recheck);
            return;
        }
        if (cancelled_ && cancelled_()) {
            finish(shadow_outcome::error);
            return;
        }
        auto self = shared_from_this();
        if (type_ == "hash" || type_ == "set") {
            read_serving({type_ == "hash" ? "HSCAN" : "SSCAN", key_, cursor_, "COUNT",
                          std::to_string(chunk_)},
                         [self](std::vector<std::string>, resp::value page) {
                             self->scanned_page(std::move(page));
                         });
            return;
        }
        std::vector<std::string> args;
        if (type_ == "stream") {
            args = {"XRANGE", key_, cursor_, "+", "COUNT", std::to_string(chunk_)};
        } else if (type_ == "string") {
            args = {"GETRANGE", key_, std::to_string(offset_),
                    std::to_string(offset_ + chunk_ - 1)};
        } else {
            args = {type_ == "list" ? "LRANGE" : "ZRANGE", key_, std::to_string(offset_),
                    std::to_string(offset_ + chunk_ - 1)};
            if (type_ == "zset")
                args.emplace_back("WITHSCORES");
        }
        read_serving(std::move(args), [self](std::vector<std::string> args, resp::value served) {
            self->ordered_window(std::move(args), std::move(served));
        });
    }

    // A window of a list, sorted set, stream or string: the same read on the other side must
    // answer the same.
    void ordered_window(std::vector<std::string> args, resp::value served) {
        if (type_ == "string") {
            const std::size_t bytes = served.is_string() ? served.str().size() : 0;
            if (bytes == 0) {
                last_ = true;  // past the end (the lengths were compared)
                next_window();
                return;
            }
            offset_ += chunk_;
            last_ = bytes < chunk_;
            compare_on_other(std::move(args), std::move(served));
            return;
        }
        if (!served.is_aggregate() || served.size() == 0) {
            last_ = true;  // past the end (the sizes were compared)
            next_window();
            return;
        }
        // A sorted set's RESP2 reply is flat (member, score, ...), RESP3 has pairs.
        std::size_t elements = served.size();
        if (type_ == "zset" && !served[0].is_aggregate())
            elements /= 2;
        if (type_ == "stream") {
            const auto& entry = served.elements().back();
            if (!entry.is_aggregate() || entry.size() == 0 || !entry[0].is_string()) {
                finish(shadow_outcome::error);
                return;
            }
            cursor_ = "(" + entry[0].str();
        }
        offset_ += chunk_;
        last_ = elements < chunk_;
        compare_on_other(std::move(args), std::move(served));
    }

    // A page of HSCAN / SSCAN: looked up on the other side by HMGET / SMISMEMBER. `served` is
    // what the same lookup gives on the serving side (the page's values, or 1 per member), so
    // the shadow reader can re-check it there.
    void scanned_page(resp::value page) {
        if (!page.is_aggregate() || page.size() != 2 || !page[0].is_string() ||
            !page[1].is_aggregate()) {
            finish(shadow_outcome::error);
            return;
        }
        cursor_ = page[0].str();
        last_ = cursor_ == "0";
        auto& items = page.elements()[1].elements();
        if (items.empty()) {
            next_window();
            return;
        }
        const bool hash = type_ == "hash";
        if (hash && items.size() % 2 != 0) {
            finish(shadow_outcome::error);
            return;
        }
        std::vector<std::string> args{hash ? "HMGET" : "SMISMEMBER", key_};
        std::vector<resp::value> served;
        args.reserve(2 + (hash ? items.size() / 2 : items.size()));
        served.reserve(hash ? items.size() / 2 : items.size());
        for (std::size_t i = 0; i < items.size(); i += hash ? 2 : 1) {
            args.push_back(std::move(items[i].str()));
            served.push_back(hash ? std::move(items[i + 1]) : resp::value::integer(1));
        }
        compare_on_other(std::move(args), resp::value::array(std::move(served)));
    }

    void read_serving(std::vector<std::string> args, served_fn then) {
        client::request req;
        req.push_args(args);
        st_.backends[static_cast<int>(serving_)]->exec(
            std::move(req), [self = shared_from_this(), args = std::move(args),
                             then = std::move(then)](client::result<replies_t> res) mutable {
                if (!res || res->empty() || res->front().is_error()) {
                    // The serving side failed, or the key changed type under us.
                    self->finish(shadow_outcome::error);
                    return;
                }
                then(std::move(args), std::move(res->front()));
            });
    }

    void compare_on_other(std::vector<std::string> args, resp::value served) {
        client::request req;
        req.push_args(args);
        st_.backends[static_cast<int>(other_side(serving_))]->exec(
            std::move(req), [self = shared_from_this(), args = std::move(args),
                             served = std::move(served)](client::result<replies_t> res) mutable {
                if (!res || res->empty()) {
                    self->finish(shadow_outcome::error);
                    return;
                }
                const std::vector<std::string_view> views(args.begin(), args.end());
                const auto rule = rule_for(views, self->st_.table);
                if (!proxy::compare(rule, served, res->front())) {
                    self->next_window();
                    return;
                }
                self->mismatch(std::move(args), std::move(served));
            });
    }

    void mismatch(std::vector<std::string> args, resp::value served) {
        if (pass_ == 1) {
            // A write may be on its way to the other side: compare the key again from the
            // start once the follower applied what it held for it.
            when_settled(
                st_.control, st_.follower_of(serving_), key_,
                [self = shared_from_this()](bool settled) {
                    if (settled)
                        self->start_pass();
                    else
                        self->finish(shadow_outcome::unstable);
                },
                std::chrono::steady_clock::now() + k_settle_limit);
            return;
        }
        // Differs again: the shadow reader re-checks this window (the serving side read before
        // and after the other side, after the follower caught up) and reports it when stable.
        // A window that agrees by then was a write in flight: the pass goes on after it.
        st_.shadows->compare(serving_, std::move(args), std::move(served),
                             [self = shared_from_this()](shadow_outcome o) {
                                 if (agreed(o))
                                     self->next_window();
                                 else
                                     self->finish(o);
                             });
    }

    void finish(shadow_outcome o) {
        if (done_) {
            auto done = std::move(done_);
            done(o);
        }
    }

    shared_state& st_;
    const side serving_;
    const std::string key_;
    const std::string type_;
    const std::size_t chunk_;
    std::function<bool()> cancelled_;
    shadow_reader::done_fn done_;
    // Touched by one read's callback at a time: the reads of a key run one after the other.
    int pass_ = 0;
    std::size_t offset_ = 0;  // list, zset: the next window's first rank; string: byte
    std::string cursor_;      // stream: "-" or "(<last ID>"; hash, set: the SCAN cursor
    bool last_ = false;       // the window just read was the pass's last
};

}  // namespace

std::string_view size_command(std::string_view type) noexcept {
    if (type == "hash")
        return "HLEN";
    if (type == "list")
        return "LLEN";
    if (type == "set")
        return "SCARD";
    if (type == "zset")
        return "ZCARD";
    if (type == "stream")
        return "XLEN";
    if (type == "string")
        return "STRLEN";
    return {};
}

void compare_chunked(shared_state& st, side serving, std::string key, std::string type,
                     std::size_t chunk, std::function<bool()> cancelled,
                     shadow_reader::done_fn done) {
    if (size_command(type).empty() || chunk == 0 || !st.backends[0] || !st.backends[1] ||
        !st.shadows) {
        if (done)
            done(shadow_outcome::error);
        return;
    }
    std::make_shared<chunked_job>(st, serving, std::move(key), std::move(type), chunk,
                                  std::move(cancelled), std::move(done))
        ->start_pass();
}

}  // namespace respite::proxy::server
