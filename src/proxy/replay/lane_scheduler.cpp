// Sans-I/O lane ordering: the barrier rule and the per-lane FIFOs.
#include "lane_scheduler.hpp"

#include <algorithm>
#include <stdexcept>

namespace respite::proxy::replay {

lane_scheduler::lane_scheduler(std::size_t lanes) : lanes_(std::max<std::size_t>(lanes, 1)) {}

entry_id lane_scheduler::push(std::span<const std::size_t> lanes) {
    const entry_id id = next_id_++;
    node n;
    n.id = id;
    if (lanes.empty()) {
        n.lanes.resize(lanes_.size());
        for (std::size_t i = 0; i < lanes_.size(); ++i)
            n.lanes[i] = i;
    } else {
        n.lanes.assign(lanes.begin(), lanes.end());
        for (auto& l : n.lanes)
            l %= lanes_.size();
        std::ranges::sort(n.lanes);
        n.lanes.erase(std::unique(n.lanes.begin(), n.lanes.end()), n.lanes.end());
    }
    n.refs = n.lanes.size();
    ++active_;
    auto [it, inserted] = nodes_.emplace(id, std::move(n));
    for (auto l : it->second.lanes)
        lanes_[l].q.push_back(&it->second);
    return id;
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
        if (n.lanes.size() > 1) {
            bool clear = true;
            for (auto other : n.lanes)
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
        if (--n->refs == 0)
            nodes_.erase(n->id);
    }
}

void lane_scheduler::complete(entry_id id) {
    auto it = nodes_.find(id);
    if (it == nodes_.end() || it->second.st == state::done)
        return;
    it->second.st = state::done;
    --active_;
    // Copy: retire_front may erase the node.
    const auto lanes = it->second.lanes;
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
        touched.insert(touched.end(), n->lanes.begin(), n->lanes.end());
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

const std::vector<std::size_t>& lane_scheduler::lanes_of(entry_id id) const {
    auto it = nodes_.find(id);
    if (it == nodes_.end())
        throw std::out_of_range("lane_scheduler: unknown entry");
    return it->second.lanes;
}

}  // namespace respite::proxy::replay
