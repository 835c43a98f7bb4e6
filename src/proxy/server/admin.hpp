// The proxy's own commands: INFO proxy and PROXY (MODE, INFO, SHADOW, HELP).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "worker.hpp"

namespace respite::proxy::server {

// The reply to INFO proxy (a bulk / verbatim string of the section).
std::string info_reply(shared_state& st, int protocol);

class bulk_sync;
// PROXY SYNC|VERIFY START|STATUS|STOP (args after "SYNC"/"VERIFY"); the reply bytes.
std::string run_keyspace_job_command(bulk_sync* job, std::span<const std::string_view> args,
                                     int protocol);

struct proxy_command_result {
    std::string reply;                // when no switch is asked for
    std::optional<mode> switch_to{};  // PROXY MODE SET <mode> [FORCE]
    bool force = false;
};
// True for the PROXY subcommands that change the proxy (MODE SET, SHADOW PERCENT, SYNC/VERIFY
// START and STOP), false for those that only read (HELP, MODE [GET], INFO, SYNC/VERIFY STATUS).
bool changes_the_proxy(std::span<const std::string_view> args) noexcept;

proxy_command_result run_proxy_command(shared_state& st, std::span<const std::string_view> args,
                                       int protocol);

}  // namespace respite::proxy::server
