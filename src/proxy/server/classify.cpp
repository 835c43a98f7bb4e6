// Command routing for the proxy (see classify.hpp).
#include "classify.hpp"

#include <array>
#include <atomic>
#include <cstring>

#include <respite/client/command_info.hpp>

#include "text.hpp"

namespace respite::proxy::server {

namespace {

using client::iequals;

std::string_view label_of(const commands::command_spec* spec) {
    if (spec == nullptr)
        return "other";
    std::string_view n = spec->name;
    if (auto bar = n.find('|'); bar != std::string_view::npos)
        n = n.substr(0, bar);
    return n;
}

}  // namespace

std::string_view route_name(route r) noexcept {
    switch (r) {
        case route::read:
            return "read";
        case route::write:
            return "write";
        case route::blocking:
            return "blocking";
        case route::transaction:
            return "transaction";
        case route::subscribe:
            return "subscribe";
        case route::local:
            return "local";
        case route::pinning:
            return "pinning";
        case route::admin:
            return "admin";
    }
    return "admin";
}

command_class classify(std::span<const std::string_view> args, const commands::command_table& t) {
    command_class c;
    if (args.empty())
        return c;
    const auto name = args[0];
    c.spec = t.lookup(args);
    if (c.spec == nullptr && args.size() > 1)
        c.spec = t.find(name);  // unknown subcommand: still the container's label
    c.label = label_of(c.spec);
    c.plain = c.spec != nullptr &&
              !any_of(name, {"auth",    "hello",   "quit",     "ping",      "reset",    "monitor",
                             "config",  "cluster", "readonly", "readwrite", "asking",   "info",
                             "proxy",   "client",  "shutdown", "save",      "failover", "replicaof",
                             "slaveof", "sync",    "psync",    "acl",       "module",   "debug"});

    if (any_of(name, {"ping", "echo", "quit", "hello", "auth", "select", "reset", "readonly",
                      "readwrite", "asking", "proxy"})) {
        c.kind = route::local;
        return c;
    }
    if (iequals(name, "client")) {
        // Per-connection state the proxy cannot share lives on a pinned connection.
        if (args.size() > 1 && any_of(args[1], {"tracking", "caching", "no-evict", "no-touch",
                                                "trackinginfo", "getredir"}))
            c.kind = route::pinning;
        else if (args.size() > 1 && any_of(args[1], {"setname", "getname", "id", "info", "setinfo",
                                                     "unblock", "reply", "list", "kill"}))
            c.kind = route::local;
        else
            c.kind = route::admin;
        return c;
    }
    if (iequals(name, "info")) {
        c.kind = (args.size() == 2 && iequals(args[1], "proxy")) ? route::local : route::admin;
        return c;
    }
    if (any_of(name, {"multi", "exec", "discard", "watch", "unwatch"})) {
        c.kind = route::transaction;
        return c;
    }
    if (any_of(name, {"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe",
                      "sunsubscribe"})) {
        c.kind = route::subscribe;
        return c;
    }
    if (iequals(name, "monitor")) {
        c.kind = route::pinning;
        return c;
    }
    if (c.spec == nullptr) {
        // Unknown (module) commands: forwarded as writes so a follower never misses an effect.
        c.kind = route::write;
        return c;
    }
    const auto bt = client::blocking_time(args);
    if (bt.is_blocking || commands::is_blocking(*c.spec)) {
        // XREAD / XREADGROUP without BLOCK are not blocking; the table flags them anyway.
        if (bt.is_blocking || !any_of(name, {"xread", "xreadgroup"})) {
            c.kind = route::blocking;
            return c;
        }
    }
    // PUBLISH reaches the follower too, so that its subscribers (and the shadow compare) see it.
    if (any_of(name, {"eval", "evalsha", "fcall", "publish", "spublish"})) {
        c.kind = route::write;
        return c;
    }
    if (any_of(name, {"eval_ro", "evalsha_ro", "fcall_ro"})) {
        c.kind = route::read;
        return c;
    }
    if (iequals(name, "script")) {
        c.kind =
            (args.size() > 1 && any_of(args[1], {"load", "flush"})) ? route::write : route::admin;
        return c;
    }
    // PFCOUNT of one key stores the cardinality it computed inside the HyperLogLog's bytes (Redis
    // replicates it, though COMMAND flags it read-only): followed like a write. Of several keys
    // it changes nothing.
    if (iequals(name, "pfcount") && args.size() == 2) {
        c.kind = route::write;
        return c;
    }
    if (commands::is_write(*c.spec) || commands::has_flag(*c.spec, commands::flag::may_replicate)) {
        c.kind = route::write;
        return c;
    }
    if (commands::is_readonly(*c.spec) && !commands::is_admin(*c.spec)) {
        c.kind = route::read;
        c.shadowable = !commands::is_nondeterministic(*c.spec) &&
                       !any_of(name, {"scan", "sscan", "hscan", "zscan", "object", "dump", "memory",
                                      "pubsub", "lastsave", "dbsize", "keys", "randomkey", "time",
                                      "command", "lolwut", "role"});
        return c;
    }
    c.kind = route::admin;
    return c;
}

classifier::classifier(const commands::command_table& t) : table_(&t) {
    static std::atomic<std::uint64_t> next_id{1};
    id_ = next_id.fetch_add(1);
    const auto specs = t.specs();
    cache_.resize(specs.size());
    dynamic_.assign(specs.size(), false);
    for (std::size_t i = 0; i < specs.size(); ++i) {
        const std::string_view name = specs[i].name;
        const auto bar = name.find('|');
        const auto container = name.substr(0, bar);
        // classify() reads more than the name for these: the subcommand (CLIENT, SCRIPT, INFO;
        // a table from an older server's COMMAND has no subcommand entries for them), BLOCK,
        // a blocking command's timeout (a table without the `blocking` flag), PFCOUNT's key count.
        const std::array<std::string_view, 2> with_timeout{container, "0"};
        if (any_of(container, {"info", "xread", "xreadgroup", "client", "script", "pfcount"}) ||
            client::classify(with_timeout) == client::command_kind::blocking) {
            dynamic_[i] = true;
            continue;
        }
        std::vector<std::string_view> args{container};
        if (bar != std::string_view::npos)
            args.push_back(name.substr(bar + 1));
        cache_[i] = classify(args, t);
        // The cache is only valid for the entry that lookup() finds for such a request.
        if (cache_[i].spec != &specs[i])
            dynamic_[i] = true;
    }
}

command_class classifier::operator()(std::span<const std::string_view> args) const {
    if (args.empty())
        return {};
    // The name this thread classified last, spelled byte for byte the same (a pipeline of one
    // command): no table lookup. Only for entries whose class depends on the name alone.
    struct last_name {
        std::uint64_t by = 0;
        std::uint8_t length = 0;
        char name[23] = {};
        command_class c;
    };
    thread_local last_name last;
    const auto name = args[0];
    if (last.by == id_ && name.size() == last.length &&
        std::memcmp(name.data(), last.name, name.size()) == 0)
        return last.c;
    const auto* spec = table_->lookup(args);
    if (spec == nullptr)
        return classify(args, *table_);
    const auto i = static_cast<std::size_t>(spec - table_->specs().data());
    if (i >= cache_.size() || dynamic_[i])
        return classify(args, *table_);
    // A subcommand's entry (CLIENT|ID) or a container's depend on the second argument.
    if (!commands::has_flag(*spec, commands::flag::has_subcommands) &&
        std::string_view(spec->name).find('|') == std::string_view::npos &&
        name.size() <= sizeof last.name) {
        last.by = id_;
        last.length = static_cast<std::uint8_t>(name.size());
        std::memcpy(last.name, name.data(), name.size());
        last.c = cache_[i];
    }
    return cache_[i];
}

namespace {

// The first of `names` that `arg` is (case-insensitive); empty when none.
std::string_view one_of(std::string_view arg, std::span<const std::string_view> names) {
    for (auto n : names)
        if (iequals(arg, n))
            return n;
    return {};
}

}  // namespace

std::string backend_wide_command(std::span<const std::string_view> args) {
    // Whole commands, and containers with the subcommands of theirs that count.
    static constexpr std::string_view whole[] = {"shutdown", "save", "failover", "replicaof",
                                                 "slaveof",  "sync", "psync"};
    // ACL LIST and GETUSER show the users' password hashes (the proxy's backend user's too).
    static constexpr std::string_view acl[] = {"setuser", "deluser", "load",
                                               "save",    "list",    "getuser"};
    static constexpr std::string_view client[] = {"pause", "unpause"};
    static constexpr std::string_view module[] = {"load", "loadex", "unload"};
    struct container {
        std::string_view name;
        std::span<const std::string_view> subs;
    };
    static constexpr container containers[] = {
        {"acl", acl}, {"client", client}, {"module", module}};
    // DEBUG's subcommands per key or about the protocol; DIGEST (the whole dataset) is not one.
    static constexpr std::string_view debug_safe[] = {"digest-value", "object", "protocol", "help"};
    // CONFIG SET of where the backend listens, or of the limits that make it close or refuse
    // connections: the proxy's own connections (shared by every client) would lose it.
    static constexpr std::string_view listen_params[] = {"port",
                                                         "bind",
                                                         "tls-port",
                                                         "unixsocket",
                                                         "timeout",
                                                         "maxclients",
                                                         "client-output-buffer-limit",
                                                         "client-query-buffer-limit",
                                                         "proto-max-bulk-len"};

    if (args.empty() || args[0].size() < 3 || args[0].size() > 9)
        return {};  // most commands leave here or after a few length checks below
    const auto name = args[0];
    const auto sub = args.size() > 1 ? args[1] : std::string_view{};
    if (const auto w = one_of(name, whole); !w.empty())
        return std::string(w);
    for (const auto& c : containers) {
        if (!iequals(name, c.name))
            continue;
        const auto s = one_of(sub, c.subs);
        return s.empty() ? std::string{} : std::string(c.name) + "|" + std::string(s);
    }
    if (iequals(name, "debug"))  // without a subcommand: Redis answers the arity error
        return args.size() < 2 || !one_of(sub, debug_safe).empty() ? "" : "debug";
    if (iequals(name, "config") && iequals(sub, "rewrite"))
        return "config|rewrite";
    if (iequals(name, "config") && iequals(sub, "set"))
        for (std::size_t i = 2; i < args.size(); i += 2)
            if (const auto p = one_of(args[i], listen_params); !p.empty())
                return "config|set " + std::string(p);
    return {};
}

}  // namespace respite::proxy::server
