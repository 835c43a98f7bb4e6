// Counters, gauges, latency histograms and the registry that renders them as Prometheus text.
#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <variant>

#include <fmt/format.h>

#include <respite/obs/metrics.hpp>

namespace respite::obs {

namespace {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "metric updates must not take a lock");

// Upper bounds in µs: 1, 2, 3, 5, 7 per decade from 1 µs to 7 s, then 10, 20, 30 and 60 s.
// Integer µs keep the exported `le` values exact decimals.
constexpr std::size_t finite_bucket_count = 39;

constexpr std::array<std::uint64_t, finite_bucket_count> make_bounds() {
    constexpr std::array<std::uint64_t, 5> steps_per_decade = {1, 2, 3, 5, 7};
    constexpr std::array<std::uint64_t, 4> last_seconds = {10, 20, 30, 60};
    std::array<std::uint64_t, finite_bucket_count> out{};
    std::size_t i = 0;
    for (std::uint64_t decade = 1; decade <= 1'000'000; decade *= 10) {
        for (std::uint64_t m : steps_per_decade) {
            out[i++] = m * decade;
        }
    }
    for (std::uint64_t s : last_seconds) {
        out[i++] = s * 1'000'000;
    }
    return out;
}

constexpr auto bounds = make_bounds();
constexpr std::size_t bucket_total = finite_bucket_count + 1;  // + the +Inf bucket

// The bounds padded to 64 entries with a sentinel no value exceeds, so the search below runs a
// fixed six steps that compile to conditional moves rather than branches.
constexpr std::size_t search_width = 64;
static_assert(finite_bucket_count < search_width);

constexpr std::array<std::uint64_t, search_width> make_search_table() {
    std::array<std::uint64_t, search_width> out{};
    for (std::size_t i = 0; i < search_width; ++i) {
        out[i] = i < finite_bucket_count ? bounds[i] : std::numeric_limits<std::uint64_t>::max();
    }
    return out;
}

constexpr auto search_table = make_search_table();

static_assert(std::is_sorted(bounds.begin(), bounds.end()));
static_assert(bounds.front() == 1 && bounds.back() == 60'000'000);

// Index of the first bound >= micros (i.e. the number of bounds below it); finite_bucket_count
// means +Inf.
constexpr std::size_t bucket_index(std::uint64_t micros) noexcept {
    std::size_t i = 0;
    for (std::size_t step = search_width / 2; step > 0; step /= 2) {
        i += search_table[i + step - 1] < micros ? step : 0;
    }
    return i;
}

static_assert(bucket_index(0) == 0 && bucket_index(1) == 0 && bucket_index(2) == 1);
static_assert(bucket_index(60'000'000) == finite_bucket_count - 1);
static_assert(bucket_index(60'000'001) == finite_bucket_count);
static_assert(bucket_index(std::numeric_limits<std::uint64_t>::max()) == finite_bucket_count);

bool is_metric_name(std::string_view s) {
    auto head = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    };
    auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
    return !s.empty() && head(s.front()) && std::all_of(s.begin() + 1, s.end(), tail);
}

// Label names may not contain ':' and names starting with "__" are reserved to Prometheus.
bool is_label_name(std::string_view s) {
    auto head = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
    return !s.empty() && head(s.front()) && std::all_of(s.begin() + 1, s.end(), tail) &&
           !s.starts_with("__");
}

// Series identity must not depend on the order the caller listed the labels in.
labels canonical_labels(std::string_view metric, const labels& l, bool is_histogram) {
    labels out = l;
    std::sort(out.begin(), out.end());
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto& name = out[i].first;
        if (!is_label_name(name)) {
            throw std::invalid_argument(
                fmt::format("metric {}: invalid label name \"{}\"", metric, name));
        }
        if (is_histogram && name == "le") {
            throw std::invalid_argument(
                fmt::format("metric {}: label \"le\" is reserved for histogram buckets", metric));
        }
        if (i > 0 && out[i - 1].first == name) {
            throw std::invalid_argument(
                fmt::format("metric {}: label \"{}\" given twice", metric, name));
        }
    }
    return out;
}

void append_escaped_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
}

// HELP text escapes only backslash and newline (the format leaves quotes alone there).
void append_escaped_help(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
}

// Renders {a="x",b="y"} (nothing when there are no labels); `le`, when given, goes last.
void append_label_set(std::string& out, const labels& l, std::string_view le = {}) {
    if (l.empty() && le.empty()) {
        return;
    }
    out += '{';
    bool first = true;
    for (const auto& [name, value] : l) {
        if (!first) {
            out += ',';
        }
        first = false;
        out += name;
        out += "=\"";
        append_escaped_label_value(out, value);
        out += '"';
    }
    if (!le.empty()) {
        if (!first) {
            out += ',';
        }
        out += "le=\"";
        out += le;
        out += '"';
    }
    out += '}';
}

// Exact decimal seconds from µs: 1 -> "0.000001", 1500 -> "0.0015", 60000000 -> "60".
std::string micros_as_seconds(std::uint64_t micros) {
    const std::uint64_t whole = micros / 1'000'000;
    const std::uint64_t frac = micros % 1'000'000;
    if (frac == 0) {
        return fmt::format("{}", whole);
    }
    std::string s = fmt::format("{}.{:06}", whole, frac);
    while (s.back() == '0') {
        s.pop_back();
    }
    return s;
}

std::string format_sample_value(double v) {
    if (std::isnan(v)) {
        return "NaN";
    }
    if (std::isinf(v)) {
        return v > 0 ? "+Inf" : "-Inf";
    }
    return fmt::format("{}", v);
}

template <class T>
constexpr std::string_view type_name() {
    if constexpr (std::is_same_v<T, counter>) {
        return "counter";
    } else if constexpr (std::is_same_v<T, gauge>) {
        return "gauge";
    } else {
        return "histogram";
    }
}

constexpr std::array<std::string_view, 3> histogram_suffixes = {"_bucket", "_sum", "_count"};

}  // namespace

// ---- gauge ------------------------------------------------------------------------------------

void gauge::set(double v) noexcept {
    bits_.store(std::bit_cast<std::uint64_t>(v), std::memory_order_relaxed);
}

void gauge::add(double d) noexcept {
    std::uint64_t old = bits_.load(std::memory_order_relaxed);
    while (!bits_.compare_exchange_weak(
        old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + d),
        std::memory_order_relaxed)) {
    }
}

double gauge::value() const noexcept {
    return std::bit_cast<double>(bits_.load(std::memory_order_relaxed));
}

// ---- histogram --------------------------------------------------------------------------------

histogram::histogram() : buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bucket_total)) {}

void histogram::observe_us(std::uint64_t micros) noexcept {
    buckets_[bucket_index(micros)].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(micros, std::memory_order_relaxed);
}

std::size_t histogram::bucket_of(std::uint64_t micros) noexcept {
    return bucket_index(micros);
}

void histogram_batch::observe_us(std::uint64_t micros) noexcept {
    const auto b = static_cast<std::uint32_t>(bucket_index(micros));
    std::size_t i = 0;
    while (i < used_ && entries_[i].bucket != b)
        ++i;
    if (i == used_) {
        if (used_ == entries_.size()) {
            flush();
            i = 0;
        }
        entries_[i] = entry{b, 0};
        used_ = i + 1;
    }
    ++entries_[i].n;
    ++count_;
    sum_us_ += micros;
}

void histogram_batch::flush() noexcept {
    if (used_ == 0)
        return;
    for (std::size_t i = 0; i < used_; ++i)
        h_->buckets_[entries_[i].bucket].fetch_add(entries_[i].n, std::memory_order_relaxed);
    h_->count_.fetch_add(count_, std::memory_order_relaxed);
    h_->sum_us_.fetch_add(sum_us_, std::memory_order_relaxed);
    used_ = 0;
    count_ = sum_us_ = 0;
}

std::uint64_t histogram::count() const noexcept {
    return count_.load(std::memory_order_relaxed);
}

std::uint64_t histogram::sum_us() const noexcept {
    return sum_us_.load(std::memory_order_relaxed);
}

std::uint64_t histogram::bucket_count(std::size_t i) const noexcept {
    return i < bucket_total ? buckets_[i].load(std::memory_order_relaxed) : 0;
}

const std::vector<std::uint64_t>& histogram::bounds_us() {
    static const std::vector<std::uint64_t> v(bounds.begin(), bounds.end());
    return v;
}

std::uint64_t histogram::quantile_us(double q) const noexcept {
    // Work from one snapshot of the buckets so concurrent observations cannot push the rank past
    // the total we walk.
    std::array<std::uint64_t, bucket_total> snap{};
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < bucket_total; ++i) {
        snap[i] = buckets_[i].load(std::memory_order_relaxed);
        total += snap[i];
    }
    if (total == 0) {
        return 0;
    }
    q = std::isnan(q) ? 0.0 : std::clamp(q, 0.0, 1.0);
    const auto wanted = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
    const std::uint64_t rank = std::clamp<std::uint64_t>(wanted, 1, total);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < finite_bucket_count; ++i) {
        seen += snap[i];
        if (seen >= rank) {
            return bounds[i];
        }
    }
    // In the +Inf bucket: like Prometheus' histogram_quantile, report the highest finite bound.
    return bounds.back();
}

// ---- registry ---------------------------------------------------------------------------------

struct registry::family {
    using metric = std::variant<counter, gauge, histogram>;

    std::string help;
    std::string_view type;  // "counter", "gauge" or "histogram"
    // std::map never moves its nodes, so references handed out stay valid.
    std::map<labels, metric> series;
};

registry::registry() = default;
registry::~registry() = default;

registry& registry::global() {
    // Never destroyed: threads still running during static destruction may update metrics.
    static registry* const instance = new registry();
    return *instance;
}

template <class T>
T& registry::find_or_create(std::string_view name, std::string_view help, const labels& l) {
    if (!is_metric_name(name)) {
        throw std::invalid_argument(fmt::format("invalid metric name \"{}\"", name));
    }
    constexpr bool is_histogram = std::is_same_v<T, histogram>;
    labels key = canonical_labels(name, l, is_histogram);

    std::lock_guard lock(mu_);
    auto it = families_.find(name);
    if (it == families_.end()) {
        // A histogram "x" renders x_bucket, x_sum and x_count; no other family may own those.
        for (std::string_view suffix : histogram_suffixes) {
            if (is_histogram && families_.contains(fmt::format("{}{}", name, suffix))) {
                throw std::logic_error(fmt::format("metric {}: histogram would collide with {}{}",
                                                   name, name, suffix));
            }
            if (name.ends_with(suffix)) {
                auto base = families_.find(name.substr(0, name.size() - suffix.size()));
                if (base != families_.end() && base->second->type == type_name<histogram>()) {
                    throw std::logic_error(
                        fmt::format("metric {}: collides with histogram {}", name, base->first));
                }
            }
        }
        auto fam = std::make_unique<family>();
        fam->help = std::string(help);
        fam->type = type_name<T>();
        it = families_.emplace(std::string(name), std::move(fam)).first;
    } else if (it->second->type != type_name<T>()) {
        throw std::logic_error(fmt::format("metric {} is a {}, requested as a {}", name,
                                           it->second->type, type_name<T>()));
    }
    auto& series = it->second->series;
    auto s = series.find(key);
    if (s == series.end()) {
        s = series.try_emplace(std::move(key), std::in_place_type<T>).first;
    }
    return std::get<T>(s->second);
}

counter& registry::get_counter(std::string_view name, std::string_view help, const labels& l) {
    return find_or_create<counter>(name, help, l);
}

gauge& registry::get_gauge(std::string_view name, std::string_view help, const labels& l) {
    return find_or_create<gauge>(name, help, l);
}

histogram& registry::get_histogram(std::string_view name, std::string_view help, const labels& l) {
    return find_or_create<histogram>(name, help, l);
}

std::string registry::prometheus_text() const {
    std::string out;
    std::lock_guard lock(mu_);
    for (const auto& [name, fam] : families_) {
        if (!fam->help.empty()) {
            out += "# HELP ";
            out += name;
            out += ' ';
            append_escaped_help(out, fam->help);
            out += '\n';
        }
        fmt::format_to(std::back_inserter(out), "# TYPE {} {}\n", name, fam->type);
        for (const auto& [l, m] : fam->series) {
            if (const auto* c = std::get_if<counter>(&m)) {
                out += name;
                append_label_set(out, l);
                fmt::format_to(std::back_inserter(out), " {}\n", c->value());
            } else if (const auto* g = std::get_if<gauge>(&m)) {
                out += name;
                append_label_set(out, l);
                fmt::format_to(std::back_inserter(out), " {}\n", format_sample_value(g->value()));
            } else {
                const auto& h = std::get<histogram>(m);
                // _count is the +Inf cumulative total so the two always agree, even while
                // observations race with this read.
                std::uint64_t cumulative = 0;
                for (std::size_t i = 0; i < bucket_total; ++i) {
                    cumulative += h.bucket_count(i);
                    const std::string le =
                        i < finite_bucket_count ? micros_as_seconds(bounds[i]) : "+Inf";
                    fmt::format_to(std::back_inserter(out), "{}_bucket", name);
                    append_label_set(out, l, le);
                    fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
                }
                fmt::format_to(std::back_inserter(out), "{}_sum", name);
                append_label_set(out, l);
                fmt::format_to(std::back_inserter(out), " {}\n", micros_as_seconds(h.sum_us()));
                fmt::format_to(std::back_inserter(out), "{}_count", name);
                append_label_set(out, l);
                fmt::format_to(std::back_inserter(out), " {}\n", cumulative);
            }
        }
    }
    return out;
}

}  // namespace respite::obs
