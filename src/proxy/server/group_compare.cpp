// PROXY VERIFY of a stream's consumer groups (see group_compare.hpp).
#include "group_compare.hpp"

#include <memory>
#include <utility>
#include <vector>

#include <respite/proxy/shadow.hpp>

namespace respite::proxy::server {

namespace {

// The group names of an XINFO GROUPS reply: a list of maps (RESP3) or flat field/value arrays
// (RESP2), which hold the same elements.
std::vector<std::string> group_names(const resp::value& groups) {
    std::vector<std::string> out;
    if (!groups.is_aggregate())
        return out;
    for (const auto& g : groups.elements()) {
        const auto& fields = g.elements();
        for (std::size_t n = 0; n + 1 < fields.size(); n += 2)
            if (fields[n].is_string() && fields[n].str() == "name" && fields[n + 1].is_string()) {
                out.push_back(fields[n + 1].str());
                break;
            }
    }
    return out;
}

class group_job : public std::enable_shared_from_this<group_job> {
  public:
    group_job(shared_state& st, side serving, std::string key, std::function<bool()> cancelled,
              std::function<void(shadow_outcome)> each,
              std::move_only_function<void(std::size_t)> done)
        : st_(st),
          serving_(serving),
          key_(std::move(key)),
          cancelled_(std::move(cancelled)),
          each_(std::move(each)),
          done_(std::move(done)) {}

    // XINFO STREAM first (the stream's own counters and IDs), then its groups whatever it gave:
    // the two say different things.
    void start() {
        compare_read({"XINFO", "STREAM", key_}, shadow_mode::stream_info,
                     [self = shared_from_this()](shadow_outcome) { self->groups(); });
    }

  private:
    using served_fn = std::move_only_function<void(std::vector<std::string>, resp::value)>;
    using outcome_fn = std::move_only_function<void(shadow_outcome)>;

    void groups() {
        auto self = shared_from_this();
        compare_read(
            {"XINFO", "GROUPS", key_}, shadow_mode::consumer_groups,
            [self](shadow_outcome o) {
                if (agreed(o))
                    self->next_pending();
                else
                    self->finish();
            },
            [self](const resp::value& served) {
                self->names_ = group_names(served);
                self->compared_ = self->names_.size();
            });
    }

    // The XPENDING summary of the next group, compared exactly.
    void next_pending() {
        if (next_ >= names_.size()) {
            finish();
            return;
        }
        compare_read({"XPENDING", key_, names_[next_++]}, shadow_mode::exact,
                     [self = shared_from_this()](shadow_outcome) { self->next_pending(); });
    }

    // Reads args on the serving side (`seen` looks at the answer first), compares it with the
    // other side under `mode`, counts the outcome (each_), then `then(outcome)`.
    void compare_read(std::vector<std::string> args, shadow_mode mode, outcome_fn then,
                      std::function<void(const resp::value&)> seen = {}) {
        read_serving(std::move(args), [self = shared_from_this(), mode, then = std::move(then),
                                       seen = std::move(seen)](std::vector<std::string> args,
                                                               resp::value served) mutable {
            if (seen)
                seen(served);
            shadow_rule rule;
            rule.mode = mode;
            self->st_.shadows->compare(self->serving_, std::move(args), std::move(served), rule,
                                       [self, then = std::move(then)](shadow_outcome o) mutable {
                                           self->each_(o);
                                           then(o);
                                       });
        });
    }

    // then(args, reply) with the serving side's answer. An error reply means the stream or the
    // group went away since (the value compare or XINFO GROUPS saw it): nothing to compare, the
    // next read goes on. A backend that did not answer is an error outcome and ends the job.
    void read_serving(std::vector<std::string> args, served_fn then) {
        if (cancelled_ && cancelled_()) {
            each_(shadow_outcome::error);
            finish();
            return;
        }
        client::request req;
        req.push_args(args);
        st_.backends[static_cast<int>(serving_)]->exec(
            std::move(req), [self = shared_from_this(), args = std::move(args),
                             then = std::move(then)](client::result<replies_t> res) mutable {
                if (!res || res->empty()) {
                    self->each_(shadow_outcome::error);
                    self->finish();
                    return;
                }
                if (res->front().is_error()) {
                    if (args[0] == "XPENDING")
                        self->next_pending();
                    else
                        self->finish();
                    return;
                }
                then(std::move(args), std::move(res->front()));
            });
    }

    void finish() {
        if (done_) {
            auto done = std::move(done_);
            done(compared_);
        }
    }

    shared_state& st_;
    const side serving_;
    const std::string key_;
    std::function<bool()> cancelled_;
    std::function<void(shadow_outcome)> each_;
    std::move_only_function<void(std::size_t)> done_;
    std::vector<std::string> names_;
    std::size_t next_ = 0;
    std::size_t compared_ = 0;
};

}  // namespace

void compare_groups(shared_state& st, side serving, std::string key,
                    std::function<bool()> cancelled, std::function<void(shadow_outcome)> each,
                    std::move_only_function<void(std::size_t)> done) {
    if (!st.backends[0] || !st.backends[1] || !st.shadows) {
        if (each)
            each(shadow_outcome::error);
        if (done)
            done(0);
        return;
    }
    std::make_shared<group_job>(st, serving, std::move(key), std::move(cancelled), std::move(each),
                                std::move(done))
        ->start();
}

}  // namespace respite::proxy::server
