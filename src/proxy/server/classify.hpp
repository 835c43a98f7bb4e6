// How the proxy serves each command: answered locally, forwarded as a read or a write, on a pinned
// connection, through the pub/sub hub. Derived from the shared command table.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <respite/commands/command_table.hpp>

namespace respite::proxy::server {

enum class route : std::uint8_t {
    read,         // serving backend; may be shadowed
    write,        // serving backend; replayed on the follower
    blocking,     // dedicated connection for its duration; replayed by effect
    transaction,  // MULTI / EXEC / DISCARD / WATCH / UNWATCH
    subscribe,    // (P|S)SUBSCRIBE and (P|S)UNSUBSCRIBE: the pub/sub hub
    local,        // answered by the proxy (PING, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT ...)
    pinning,      // switches the session to a pinned connection (MONITOR, CLIENT TRACKING ...)
    admin,        // serving backend only, never replayed nor shadowed (CONFIG, INFO, SCAN ...)
};

std::string_view route_name(route r) noexcept;

struct command_class {
    route kind = route::admin;
    const commands::command_spec* spec = nullptr;  // nullptr: unknown to the table
    // Bounded metric label: the table's name of the command (container for subcommands) or
    // "other" for anything the table does not know.
    std::string_view label = "other";
    bool shadowable = false;  // a deterministic read the shadow compare understands
    // Known to the table and none of the commands session::handle treats by name (CONFIG,
    // CLUSTER, INFO, CLIENT, PROXY, the backend-wide ones ...): those checks are skipped.
    bool plain = false;
};

command_class classify(std::span<const std::string_view> args, const commands::command_table& t);

// Commands that act on the backend server as a whole, not on data or on this client: they
// stop it (SHUTDOWN), re-point or hand it over (REPLICAOF, SLAVEOF, FAILOVER, SYNC, PSYNC;
// CLUSTER commands are answered by the proxy as a standalone server), pause every
// client on it (CLIENT PAUSE/UNPAUSE: the proxy's own connections and follower too), block it
// (SAVE; DEBUG except the per-key or protocol subcommands DIGEST-VALUE, OBJECT, PROTOCOL, HELP),
// change who may use it (ACL SETUSER/DELUSER/LOAD), load code into it (MODULE LOAD/LOADEX/
// UNLOAD) or move where it listens (CONFIG SET port/bind/tls-port/unixsocket). Their display
// name (`shutdown`, `client|pause`, `debug`, `config|set port`); empty for every other command.
std::string backend_wide_command(std::span<const std::string_view> args);

// classify() with the answer precomputed per table entry: one hashed lookup per command on the
// hot path. Commands whose route depends on their arguments (INFO, XREAD, XREADGROUP) and
// commands the table does not know take the full path.
class classifier {
  public:
    explicit classifier(const commands::command_table& t);
    [[nodiscard]] command_class operator()(std::span<const std::string_view> args) const;

  private:
    const commands::command_table* table_;
    std::vector<command_class> cache_;  // by position in table_->specs()
    std::vector<bool> dynamic_;
    // Tells this classifier's entries in the per-thread last-name cache from another's.
    std::uint64_t id_;
};

}  // namespace respite::proxy::server
