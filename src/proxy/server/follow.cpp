// Glue to the follower and the shadow reader (see follow.hpp).
#include "follow.hpp"

namespace respite::proxy::server {

bool follow_begin(shared_state& st, side serving, const command_class& c,
                  std::span<const std::string_view> args, std::vector<std::string>& keys) {
    (void)st, (void)serving, (void)c, (void)args, (void)keys;
    return false;
}

void follow_reply(shared_state& st, side serving, const std::vector<std::string>& args,
                  const std::vector<std::string>& keys, std::string_view frame, int protocol) {
    (void)st, (void)serving, (void)args, (void)keys, (void)frame, (void)protocol;
}

void follow_transaction(shared_state& st, side serving,
                        const std::vector<std::vector<std::string>>& queued,
                        const std::vector<std::string>& keys, std::string_view frame,
                        int protocol) {
    (void)st, (void)serving, (void)queued, (void)keys, (void)frame, (void)protocol;
}

void follow_abandon(shared_state& st, side serving, const std::vector<std::string>& keys,
                    bool outcome_unknown) {
    (void)st, (void)serving, (void)keys, (void)outcome_unknown;
}

bool shadow_wanted(shared_state& st, const command_class& c,
                   std::span<const std::string_view> args) {
    (void)st, (void)c, (void)args;
    return false;
}

void shadow_read(shared_state& st, side serving, std::vector<std::string> args,
                 std::string_view frame, int protocol) {
    (void)st, (void)serving, (void)args, (void)frame, (void)protocol;
}

void push_back_popped(worker& w, side serving, const std::vector<std::string>& args,
                      std::string_view frame, int protocol) {
    (void)w, (void)serving, (void)args, (void)frame, (void)protocol;
}

std::expected<void, std::string> start_follow(shared_state& st) {
    (void)st;
    return {};
}

void stop_follow(shared_state& st, std::chrono::steady_clock::time_point deadline) {
    (void)st, (void)deadline;
}

std::string follower_backlog(shared_state& st, side serving) {
    (void)st, (void)serving;
    return {};
}

std::string follow_info(const shared_state& st) {
    (void)st;
    return {};
}

}  // namespace respite::proxy::server
