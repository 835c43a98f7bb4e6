// Sans-I/O lane ordering: the barrier rule and the per-lane FIFOs.
#include "lane_scheduler.hpp"

#include <algorithm>
#include <stdexcept>

namespace respite::proxy::replay {

lane_scheduler::lane_scheduler(std::size_t lanes) : lanes_(std::max<std::size_t>(lanes, 1)) {}

entry_id lane_scheduler::push(std::span<const std::size_t> lanes) {
    const entry_id id = next_id_++;
    node& n = nodes_.emplace_back();  // deque: the lanes' pointers to older nodes stay valid
    n.id = id;
    const std::size_t count = lanes_.size();
    if (lanes.empty()) {
        n.multi.resize(count);
        for (std::size_t i = 0; i < count; ++i)
            n.multi[i] = i;
    } else if (std::ranges::all_of(lanes,
                                   [&](std::size_t l) { return l % count == lanes[0] % count; })) {
        n.single = lanes[0] % count;
    } else {
        n.multi.assign(lanes.begin(), lanes.end());
        for (auto& l : n.multi)
            l %= count;
        std::ranges::sort(n.multi);
        n.multi.erase(std::unique(n.multi.begin(), n.multi.end()), n.multi.end());
    }
    if (n.multi.size() == 1) {
        n.single = n.multi.front();
        n.multi.clear();
    }
    n.refs = n.lanes().size();
    ++active_;
    for (auto l : n.lanes())
        lanes_[l].q.push_back(&n);
    return id;
}

lane_scheduler::node* lane_scheduler::find(entry_id id) noexcept {
    if (id < base_ || id - base_ >= nodes_.size())
        return nullptr;
    node& n = nodes_[id - base_];
    return n.refs == 0 ? nullptr : &n;
}

const lane_scheduler::node* lane_scheduler::find(entry_id id) const noexcept {
    return const_cast<lane_scheduler*>(this)->find(id);
}

// Every entry before n on `lane` completed, or was sent on n's home connection.
bool lane_scheduler::clear_before(const node& n, std::size_t lane) const noexcept {
    for (const node* p : lanes_[lane].q) {
        if (p == &n)
            return true;
        if (p->st == state::done)
            continue;
        if (p->st == state::sent && p->home() == n.home())
            continue;
        return false;
    }
    return true;
}

std::vector<entry_id> lane_scheduler::take_ready(std::size_t lane, std::size_t max) {
    std::vector<entry_id> out;
    auto& ln = lanes_[lane];
    auto& q = ln.q;
    std::size_t i = ln.clear_prefix;
    // The prefix may have grown since (entries homed elsewhere completed).
    while (i < q.size() &&
           (q[i]->st == state::done || (q[i]->st == state::sent && q[i]->home() == lane)))
        ++i;
    ln.clear_prefix = i;
    while (i < q.size() && out.size() < max) {
        node& n = *q[i];
        if (n.st == state::done || (n.st == state::sent && n.home() == lane)) {
            ++i;
            continue;
        }
        // Waiting, or sent on another connection (a barrier homed elsewhere): stop at it.
        if (n.st != state::waiting || n.home() != lane)
            break;
        if (!n.multi.empty()) {
            bool clear = true;
            for (auto other : n.multi)
                if (other != lane && !clear_before(n, other)) {
                    clear = false;
                    break;
                }
            if (!clear)
                break;
        }
        n.st = state::sent;
        out.push_back(n.id);
        ++i;
    }
    // Entries just sent extend the clear prefix when nothing blocking precedes them.
    while (ln.clear_prefix < q.size() &&
           (q[ln.clear_prefix]->st == state::done ||
            (q[ln.clear_prefix]->st == state::sent && q[ln.clear_prefix]->home() == lane)))
        ++ln.clear_prefix;
    return out;
}

void lane_scheduler::retire_front(std::size_t lane) {
    auto& ln = lanes_[lane];
    while (!ln.q.empty() && ln.q.front()->st == state::done) {
        node* n = ln.q.front();
        ln.q.pop_front();
        if (ln.clear_prefix > 0)
            --ln.clear_prefix;
        --n->refs;
    }
    while (!nodes_.empty() && nodes_.front().refs == 0) {
        nodes_.pop_front();
        ++base_;
    }
}

void lane_scheduler::complete(entry_id id) {
    node* n = find(id);
    if (n == nullptr || n->st == state::done)
        return;
    n->st = state::done;
    --active_;
    // Copy: retire_front may drop the node.
    if (n->multi.empty()) {
        retire_front(n->single);
        return;
    }
    const auto lanes = n->multi;
    for (auto l : lanes)
        retire_front(l);
}

std::vector<entry_id> lane_scheduler::cancel_waiting(std::size_t lane) {
    std::vector<entry_id> out;
    std::vector<std::size_t> touched;
    for (node* n : lanes_[lane].q) {
        if (n->st != state::waiting)
            continue;
        n->st = state::done;
        --active_;
        out.push_back(n->id);
        const auto lanes = n->lanes();
        touched.insert(touched.end(), lanes.begin(), lanes.end());
    }
    std::ranges::sort(touched);
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (auto l : touched)
        retire_front(l);
    return out;
}

bool lane_scheduler::done_through(std::size_t lane, entry_id upto) const noexcept {
    const auto& q = lanes_[lane % lanes_.size()].q;
    for (const node* n : q) {
        if (n->id > upto)
            return true;
        if (n->st != state::done)
            return false;
    }
    return true;
}

entry_id lane_scheduler::oldest() const noexcept {
    entry_id best = 0;
    for (const auto& ln : lanes_)
        for (const node* n : ln.q)
            if (n->st != state::done) {
                if (best == 0 || n->id < best)
                    best = n->id;
                break;
            }
    return best;
}

std::vector<std::size_t> lane_scheduler::lanes_of(entry_id id) const {
    const node* n = find(id);
    if (n == nullptr)
        throw std::out_of_range("lane_scheduler: unknown entry");
    const auto lanes = n->lanes();
    return {lanes.begin(), lanes.end()};
}

}  // namespace respite::proxy::replay
