// INFO proxy and the PROXY command.
#include "admin.hpp"

#include <charconv>

#include <respite/client/command_info.hpp>
#include <respite/obs/log.hpp>
#include <respite/proxy/replayer.hpp>
#include <respite/resp/writer.hpp>

#include "frames.hpp"
#include "sync.hpp"

namespace respite::proxy::server {

namespace {

using client::iequals;

std::string error(std::string_view m) {
    std::string out;
    resp::append_error(out, m);
    return out;
}

}  // namespace

std::string info_reply(shared_state& st, int protocol) {
    return text_frame(st.info_text ? st.info_text() : std::string("# Proxy\r\n"), protocol);
}

std::string run_keyspace_job_command(bulk_sync* job, std::span<const std::string_view> args,
                                     int protocol) {
    if (job == nullptr)
        return error("ERR not available");
    if (args.empty() || iequals(args[0], "status")) {
        if (args.size() > 1)
            return error("ERR syntax error, try PROXY HELP");
        return text_frame(job->info_lines(), protocol);
    }
    if (iequals(args[0], "stop") && args.size() == 1) {
        job->stop();
        return "+OK\r\n";
    }
    if (!iequals(args[0], "start"))
        return error("ERR syntax error, try PROXY HELP");
    sync_options opt;
    for (std::size_t i = 1; i < args.size(); ++i) {
        if (iequals(args[i], "prune")) {
            opt.prune = true;
            continue;
        }
        if (i + 1 >= args.size())
            return error("ERR syntax error, try PROXY HELP");
        if (iequals(args[i], "match")) {
            opt.match = std::string(args[i + 1]);
        } else if (iequals(args[i], "count")) {
            const auto n = parse_scan_count(args[i + 1]);
            if (!n)
                return error("ERR COUNT must be an integer from 1 to 1000000");
            opt.count = *n;
        } else {
            return error("ERR syntax error, try PROXY HELP");
        }
        ++i;
    }
    auto why = job->start(std::move(opt));
    if (!why.empty())
        return error(why);
    return "+OK\r\n";
}

bool changes_the_proxy(std::span<const std::string_view> args) noexcept {
    if (args.size() < 3)
        return false;  // PROXY, PROXY HELP / INFO / MODE: read-only
    const auto sub = args[1];
    if (iequals(sub, "mode"))
        return !iequals(args[2], "get");
    if (iequals(sub, "shadow") || iequals(sub, "repair"))
        return true;
    if (iequals(sub, "sync") || iequals(sub, "verify"))
        return !iequals(args[2], "status");
    return false;
}

proxy_command_result run_proxy_command(shared_state& st, std::span<const std::string_view> args,
                                       int protocol) {
    proxy_command_result r;
    if (args.size() < 2 || iequals(args[1], "help")) {
        std::string out;
        const std::string_view lines[] = {
            "PROXY MODE GET",
            "PROXY MODE SET <primary-only|dual-write|dual-write-shadow|secondary-primary|"
            "secondary-only> [FORCE]",
            "PROXY SHADOW PERCENT <0-100>",
            "PROXY REPAIR RATE <keys per second, 0: unlimited>",
            "PROXY SYNC START [MATCH <pattern>] [COUNT <n>] [PRUNE]",
            "PROXY SYNC STATUS",
            "PROXY SYNC STOP",
            "PROXY VERIFY START [MATCH <pattern>] [COUNT <n>]",
            "PROXY VERIFY STATUS",
            "PROXY VERIFY STOP",
            "PROXY INFO",
        };
        resp::append_array_header(out, std::size(lines));
        for (auto l : lines)
            resp::append_simple_string(out, l);
        r.reply = out;
        return r;
    }
    if (iequals(args[1], "mode")) {
        if (args.size() == 2 || (args.size() == 3 && iequals(args[2], "get"))) {
            std::string out;
            resp::append_bulk(out, mode_name(st.current.load()));
            r.reply = out;
            return r;
        }
        if (iequals(args[2], "set") && (args.size() == 4 || args.size() == 5)) {
            auto m = parse_mode(args[3]);
            if (!m) {
                r.reply = error("ERR unknown mode '" + std::string(args[3]) +
                                "' (primary-only, dual-write, dual-write-shadow, "
                                "secondary-primary, secondary-only)");
                return r;
            }
            if (args.size() == 5 && !iequals(args[4], "force")) {
                r.reply = error("ERR syntax error");
                return r;
            }
            r.switch_to = m;
            r.force = args.size() == 5;
            return r;
        }
        r.reply = error("ERR syntax error, try PROXY HELP");
        return r;
    }
    if (iequals(args[1], "shadow") && args.size() == 4 && iequals(args[2], "percent")) {
        double p = -1;
        const auto s = args[3];
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), p);
        if (ec != std::errc() || ptr != s.data() + s.size() || !(p >= 0 && p <= 100)) {  // nan too
            r.reply = error("ERR percent must be a number from 0 to 100");
            return r;
        }
        const double was = st.shadow_percent.exchange(p);
        obs::log().info("proxy shadow_percent from={} to={}", was, p);
        r.reply = "+OK\r\n";
        return r;
    }
    if (iequals(args[1], "repair") && args.size() == 4 && iequals(args[2], "rate")) {
        std::size_t n = 0;
        const auto s = args[3];
        auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc() || ptr != s.data() + s.size() || n > 100'000'000) {
            r.reply = error(
                "ERR the rate must be a number of keys per second from 0 (unlimited) "
                "to 100000000");
            return r;
        }
        if (!st.replay_to[0] && !st.replay_to[1]) {
            r.reply = error("ERR no follower: the proxy has no secondary");
            return r;
        }
        const auto& any = st.replay_to[1] ? st.replay_to[1] : st.replay_to[0];
        const auto was = any->snapshot().repair_rate;
        for (auto& f : st.replay_to)
            if (f)
                f->set_repair_rate(n);
        obs::log().info("proxy repair_rate from={} to={}", was, n);
        r.reply = "+OK\r\n";
        return r;
    }
    if (iequals(args[1], "info")) {
        r.reply = info_reply(st, protocol);
        return r;
    }
    if (iequals(args[1], "sync")) {
        r.reply = run_keyspace_job_command(st.sync.get(), args.subspan(2), protocol);
        return r;
    }
    if (iequals(args[1], "verify")) {
        r.reply = run_keyspace_job_command(st.verify.get(), args.subspan(2), protocol);
        return r;
    }
    r.reply = error("ERR unknown PROXY subcommand, try PROXY HELP");
    return r;
}

}  // namespace respite::proxy::server
