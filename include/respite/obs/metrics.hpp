// One metrics registry for all of respite, exposed in the Prometheus text format.
//
// Module boundary: obs depends on the standard library, fmt and spdlog only. Metric updates are
// lock-free (atomics); registration takes a lock and returns a reference that stays valid for the
// registry's lifetime, so hot paths look a metric up once and keep the reference.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace respite::obs {

// Label pairs, e.g. {{"command", "get"}}. Keep label values bounded (no keys, no addresses of
// clients): every distinct set is a time series.
using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
  public:
    void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
    [[nodiscard]] std::uint64_t value() const noexcept {
        return v_.load(std::memory_order_relaxed);
    }

  private:
    std::atomic<std::uint64_t> v_{0};
};

class gauge {
  public:
    void set(double v) noexcept;
    void add(double d) noexcept;
    [[nodiscard]] double value() const noexcept;

  private:
    std::atomic<std::uint64_t> bits_{0};  // the double's bits
};

// Latency histogram with microsecond resolution: fixed log-linear buckets from 1 µs to ~60 s,
// exported in seconds as Prometheus expects.
class histogram {
  public:
    histogram();
    void observe_us(std::uint64_t micros) noexcept;
    [[nodiscard]] std::uint64_t count() const noexcept;
    [[nodiscard]] std::uint64_t sum_us() const noexcept;
    // Estimated quantile (0..1) in µs from the buckets (upper bound of the bucket holding it).
    // 0 when empty; a quantile in the +Inf bucket reports the highest finite bound (60 s).
    [[nodiscard]] std::uint64_t quantile_us(double q) const noexcept;
    // Upper bounds of the buckets in µs (the last bucket is +Inf and not listed).
    static const std::vector<std::uint64_t>& bounds_us();
    // Observations in bucket i (not cumulative); i == bounds_us().size() is the +Inf bucket.
    [[nodiscard]] std::uint64_t bucket_count(std::size_t i) const noexcept;

    // The bucket an observation of `micros` falls in (for histogram_batch).
    [[nodiscard]] static std::size_t bucket_of(std::uint64_t micros) noexcept;

  private:
    friend class histogram_batch;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<std::uint64_t> sum_us_{0};
};

// Observations gathered by one thread and added to a histogram together: a few atomic adds per
// flush instead of three per observation, for loops that observe every item of a batch. Not
// thread-safe itself; what it holds is invisible until flush().
class histogram_batch {
  public:
    explicit histogram_batch(histogram& h) noexcept : h_(&h) {}
    histogram_batch(const histogram_batch&) = delete;
    histogram_batch& operator=(const histogram_batch&) = delete;
    ~histogram_batch() { flush(); }

    void observe_us(std::uint64_t micros) noexcept;
    void flush() noexcept;
    [[nodiscard]] bool empty() const noexcept { return used_ == 0; }

  private:
    struct entry {
        std::uint32_t bucket;
        std::uint32_t n;
    };
    histogram* h_;
    std::array<entry, 8> entries_{};  // distinct buckets seen since the last flush
    std::size_t used_ = 0;
    std::uint64_t count_ = 0;
    std::uint64_t sum_us_ = 0;
};

class registry {
  public:
    registry();
    ~registry();
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    // The process-wide registry respite components use unless given another.
    static registry& global();

    // Returns the metric for (name, labels), creating it on first use. Names follow Prometheus
    // rules (e.g. respite_client_commands_total); `help` is kept from the first registration.
    // Asking for an existing name with another kind is a programming error and throws
    // std::logic_error. An invalid metric or label name throws std::invalid_argument. Label order
    // does not matter.
    counter& get_counter(std::string_view name, std::string_view help, const labels& l = {});
    gauge& get_gauge(std::string_view name, std::string_view help, const labels& l = {});
    histogram& get_histogram(std::string_view name, std::string_view help, const labels& l = {});

    // Prometheus text exposition format 0.0.4, families sorted by name, series by labels.
    [[nodiscard]] std::string prometheus_text() const;

  private:
    struct family;
    template <class T>
    T& find_or_create(std::string_view name, std::string_view help, const labels& l);

    mutable std::mutex mu_;
    std::map<std::string, std::unique_ptr<family>, std::less<>> families_;
};

}  // namespace respite::obs
