// Sentry-compatible divergence events: DSN parsing, the event JSON and the bounded hand-off to
// an injected HTTP transport.
#include <charconv>
#include <ctime>
#include <random>

#include <nlohmann/json.hpp>

#include <respite/proxy/divergence.hpp>

#include "text.hpp"

namespace respite::proxy {

namespace {

constexpr std::string_view dsn_shape = "expected scheme://PUBLIC_KEY@HOST[:PORT]/PROJECT_ID";
constexpr std::string_view client_name = "respite-proxy/0.1";

std::unexpected<std::string> bad_dsn(std::string_view what) {
    std::string msg = "malformed Sentry DSN: ";
    msg += what;
    msg += " (";
    msg += dsn_shape;
    msg += ')';
    return std::unexpected(std::move(msg));
}

bool all_digits(std::string_view s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// RFC 3339 in UTC with milliseconds, the form Sentry documents for "timestamp".
std::string rfc3339(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    const auto ms = duration_cast<milliseconds>(t.time_since_epoch());
    const std::time_t secs = static_cast<std::time_t>(floor<seconds>(ms).count());
    const auto frac = static_cast<int>(ms.count() - floor<seconds>(ms).count() * 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string out(buf, n);
    char ms_buf[8];
    std::snprintf(ms_buf, sizeof ms_buf, ".%03dZ", frac);
    out += ms_buf;
    return out;
}

// A real mismatch means the secondary serves wrong data; the other kinds are expected during a
// migration or are operational.
std::string_view level_for(divergence_kind k) {
    return k == divergence_kind::data_mismatch ? "error" : "warning";
}

}  // namespace

std::string sentry_dsn::origin() const {
    std::string out = scheme + "://" + host;
    if (port != 0) {
        out += ':';
        out += std::to_string(port);
    }
    return out;
}

std::string sentry_dsn::store_url() const {
    return origin() + path + "/api/" + project_id + "/store/";
}

std::string sentry_dsn::envelope_url() const {
    return origin() + path + "/api/" + project_id + "/envelope/";
}

std::expected<sentry_dsn, std::string> parse_sentry_dsn(std::string_view dsn) {
    if (dsn.empty()) {
        return bad_dsn("empty");
    }
    sentry_dsn out;
    const auto scheme_end = dsn.find("://");
    if (scheme_end == std::string_view::npos) {
        return bad_dsn("no scheme");
    }
    out.scheme = detail::lower(dsn.substr(0, scheme_end));
    if (out.scheme != "http" && out.scheme != "https") {
        return bad_dsn("scheme must be http or https, not '" + out.scheme + "'");
    }
    std::string_view rest = dsn.substr(scheme_end + 3);
    rest = rest.substr(0, rest.find_first_of("?#"));  // options after '?' are not used

    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    const std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    const auto at = authority.rfind('@');
    if (at == std::string_view::npos) {
        return bad_dsn("no public key");
    }
    const std::string_view user = authority.substr(0, at);
    out.public_key = std::string(user.substr(0, user.find(':')));  // a legacy secret is ignored
    if (out.public_key.empty()) {
        return bad_dsn("empty public key");
    }

    std::string_view host_port = authority.substr(at + 1);
    std::string_view port;
    if (host_port.starts_with('[')) {  // IPv6 literal
        const auto close = host_port.find(']');
        if (close == std::string_view::npos) {
            return bad_dsn("unterminated IPv6 host");
        }
        out.host = std::string(host_port.substr(0, close + 1));
        const std::string_view after = host_port.substr(close + 1);
        if (!after.empty()) {
            if (!after.starts_with(':')) {
                return bad_dsn("junk after the IPv6 host");
            }
            port = after.substr(1);
            if (port.empty()) {
                return bad_dsn("empty port");
            }
        }
    } else {
        const auto colon = host_port.find(':');
        out.host = std::string(host_port.substr(0, colon));
        if (colon != std::string_view::npos) {
            port = host_port.substr(colon + 1);
            if (port.empty()) {
                return bad_dsn("empty port");
            }
        }
    }
    if (out.host.empty()) {
        return bad_dsn("no host");
    }
    if (!port.empty()) {
        unsigned value = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
            return bad_dsn("port must be 1-65535, not '" + std::string(port) + "'");
        }
        out.port = static_cast<std::uint16_t>(value);
    }

    std::string_view p = path;
    while (p.ends_with('/')) {
        p.remove_suffix(1);
    }
    const auto last = p.rfind('/');
    if (p.empty() || last == std::string_view::npos) {
        return bad_dsn("no project id");
    }
    const std::string_view project = p.substr(last + 1);
    if (!all_digits(project)) {
        return bad_dsn("project id must be a number, not '" + std::string(project) + "'");
    }
    out.project_id = std::string(project);
    out.path = std::string(p.substr(0, last));
    return out;
}

sentry_sink::sentry_sink(sentry_dsn dsn, transport send, sentry_options options)
    : dsn_(std::move(dsn)),
      transport_(std::move(send)),
      options_(std::move(options)),
      id_seed_((static_cast<std::uint64_t>(std::random_device{}()) << 32) ^
               std::random_device{}()) {}

std::string sentry_sink::auth_header() const {
    return "Sentry sentry_version=7, sentry_client=" + std::string(client_name) +
           ", sentry_key=" + dsn_.public_key;
}

std::string sentry_sink::next_event_id() {
    const std::uint64_t n = id_counter_.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t hi = splitmix64(id_seed_ ^ (n * 2));
    std::uint64_t lo = splitmix64(id_seed_ ^ (n * 2 + 1));
    // Shaped like a version-4 UUID (without dashes), as Sentry's event_id is.
    hi = (hi & ~0xf000ULL) | 0x4000ULL;
    lo = (lo & ~(3ULL << 62)) | (2ULL << 62);
    char buf[33];
    std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                  static_cast<unsigned long long>(lo));
    return std::string(buf, 32);
}

std::string sentry_sink::event_json(const divergence& d, std::string_view event_id) const {
    const std::string kind(name(d.kind));
    nlohmann::json event = {
        {"event_id", event_id},
        {"timestamp", rfc3339(d.at)},
        {"platform", "other"},
        {"logger", "respite-proxy"},
        {"level", level_for(d.kind)},
        {"message", {{"formatted", "shadow divergence: " + kind + " on " + d.command}}},
        {"fingerprint", {"divergence", kind, d.command}},
        {"environment", options_.environment},
        // The key stays out of the tags: tags are indexed and every key would be a new value.
        {"tags", {{"kind", kind}, {"command", d.command}}},
        {"extra",
         {{"key", display(d.key)},
          {"pattern", display(d.pattern)},
          {"serving", d.serving},
          {"primary", d.primary},
          {"secondary", d.secondary}}},
    };
    if (!options_.release.empty()) {
        event["release"] = options_.release;
    }
    if (!options_.server_name.empty()) {
        event["server_name"] = options_.server_name;
    }
    // replace: display text is ASCII, but a caller may have put raw bytes in primary/secondary.
    return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string sentry_sink::event_json(const write_failure& f, std::string_view event_id) const {
    nlohmann::json event = {
        {"event_id", event_id},
        {"timestamp", rfc3339(f.at)},
        {"platform", "other"},
        {"logger", "respite-proxy"},
        {"level", "error"},
        {"message", {{"formatted", f.target + " write failed: " + f.command}}},
        {"fingerprint", {f.target + "_write", f.command}},
        {"environment", options_.environment},
        {"tags", {{"command", f.command}, {"target", f.target}}},
        {"extra", {{"error", display(f.error)}, {"keys", f.keys}}},
    };
    if (!options_.release.empty()) {
        event["release"] = options_.release;
    }
    if (!options_.server_name.empty()) {
        event["server_name"] = options_.server_name;
    }
    return event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool sentry_sink::sampled_in() {
    if (options_.sample_rate >= 1.0)
        return true;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    const bool in = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < options_.sample_rate;
    if (!in)
        sampled_out_.fetch_add(1, std::memory_order_relaxed);
    return in;
}

void sentry_sink::send(const divergence& d) {
    if (!sampled_in())
        return;
    const std::string id = next_event_id();
    post(id, event_json(d, id));
}

void sentry_sink::send(const write_failure& f) {
    if (!sampled_in())
        return;
    const std::string id = next_event_id();
    post(id, event_json(f, id));
}

void sentry_sink::post(const std::string& id, std::string body) {
    std::size_t busy = in_flight_.load(std::memory_order_relaxed);
    do {
        if (busy >= options_.max_in_flight) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    } while (!in_flight_.compare_exchange_weak(busy, busy + 1, std::memory_order_relaxed));

    std::string url;
    header_list headers = {{"X-Sentry-Auth", auth_header()}};
    if (options_.use_envelope) {
        const nlohmann::json envelope_header = {{"event_id", id}};
        const nlohmann::json item_header = {{"type", "event"}, {"length", body.size()}};
        body = envelope_header.dump() + "\n" + item_header.dump() + "\n" + body + "\n";
        url = dsn_.envelope_url();
        headers.emplace_back("Content-Type", "application/x-sentry-envelope");
    } else {
        url = dsn_.store_url();
        headers.emplace_back("Content-Type", "application/json");
    }
    try {
        transport_(url, headers, std::move(body));
        sent_.fetch_add(1, std::memory_order_relaxed);
    } catch (...) {
        // A transport that fails synchronously will not call complete().
        in_flight_.fetch_sub(1, std::memory_order_relaxed);
        dropped_.fetch_add(1, std::memory_order_relaxed);
    }
}

void sentry_sink::complete() noexcept {
    std::size_t busy = in_flight_.load(std::memory_order_relaxed);
    while (busy > 0 &&
           !in_flight_.compare_exchange_weak(busy, busy - 1, std::memory_order_relaxed)) {
    }
}

}  // namespace respite::proxy
