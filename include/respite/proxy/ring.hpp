// ring: a FIFO with random access over one power-of-two array that grows by doubling. The
// per-command queues of a connection (a session's reply slots, an upstream's waiters) and the
// follower's window push and pop one entry per command; std::deque allocates and frees a block
// every few entries there, this allocates only while the queue reaches a new depth. A ring that
// empties while holding more than k_keep entries' room gives it back (a client that once
// pipelined thousands of commands does not keep that memory while it stays connected).
// Growing moves the elements: unlike std::deque, references to them do not survive a push_back.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace respite::proxy {

template <typename T>
class ring {
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "ring moves its elements when it grows: their moves must not throw");

  public:
    static constexpr std::size_t k_keep = 1024;  // room kept when it empties

    ring() = default;
    ring(const ring&) = delete;
    ring& operator=(const ring&) = delete;
    ring(ring&& o) noexcept
        : store_(std::move(o.store_)),
          cap_(std::exchange(o.cap_, 0)),
          head_(std::exchange(o.head_, 0)),
          size_(std::exchange(o.size_, 0)) {}
    ring& operator=(ring&& o) noexcept {
        if (this != &o) {
            clear();
            store_ = std::move(o.store_);
            cap_ = std::exchange(o.cap_, 0);
            head_ = std::exchange(o.head_, 0);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    ~ring() { clear(); }

    [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::size_t capacity() const noexcept { return cap_; }

    T& operator[](std::size_t i) noexcept { return at(i); }
    const T& operator[](std::size_t i) const noexcept { return at(i); }
    T& front() noexcept { return at(0); }
    T& back() noexcept { return at(size_ - 1); }

    void push_back(T v) {
        if (size_ == cap_)
            grow();
        ::new (static_cast<void*>(raw(size_))) T(std::move(v));
        ++size_;
    }
    void pop_front() noexcept {
        std::destroy_at(&at(0));
        head_ = (head_ + 1) & (cap_ - 1);
        if (--size_ == 0) {
            head_ = 0;
            if (cap_ > k_keep) {
                store_.reset();
                cap_ = 0;
            }
        }
    }
    void clear() noexcept {
        while (!empty())
            pop_front();
    }

  private:
    // The storage of entry i (counted from the front), object or not.
    T* raw(std::size_t i) const noexcept {
        return reinterpret_cast<T*>(store_.get()) + ((head_ + i) & (cap_ - 1));
    }
    T& at(std::size_t i) const noexcept { return *std::launder(raw(i)); }

    void grow() {
        const std::size_t cap = cap_ == 0 ? 16 : cap_ * 2;
        auto store = std::make_unique<storage[]>(cap);
        T* to = reinterpret_cast<T*>(store.get());
        for (std::size_t i = 0; i < size_; ++i) {
            ::new (static_cast<void*>(to + i)) T(std::move(at(i)));
            std::destroy_at(&at(i));
        }
        store_ = std::move(store);
        cap_ = cap;
        head_ = 0;
    }

    struct alignas(T) storage {
        std::byte b[sizeof(T)];
    };
    std::unique_ptr<storage[]> store_;
    std::size_t cap_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

}  // namespace respite::proxy
