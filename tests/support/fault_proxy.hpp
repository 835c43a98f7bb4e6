// Test fixture: a TCP fault injector between a client and a server on loopback.
//
// Runs its own thread and io_context. Faults apply to every connection, present and future, and
// may be changed at any time from the test thread. Bytes travel in chunks (what one read returned);
// each direction keeps its chunks in order whatever the faults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace respite::test {

class fault_proxy {
  public:
    // Listens on 127.0.0.1 at a free port; each accepted client gets its own connection to the
    // target. If the target refuses, the client is reset. Throws if target_host does not resolve.
    fault_proxy(const std::string& target_host, std::uint16_t target_port);
    ~fault_proxy();  // resets every open connection and joins the proxy's thread
    fault_proxy(const fault_proxy&) = delete;
    fault_proxy& operator=(const fault_proxy&) = delete;

    [[nodiscard]] std::uint16_t port() const;

    // Delay every chunk forwarded in either direction by d from when it was read (like a slow
    // link: throughput is not limited). Applies to chunks read after the call.
    void set_latency(std::chrono::microseconds d);
    // Hold bytes (both directions) until stall(false); nothing is lost.
    void stall(bool on);
    // Drop every byte silently (both directions) while on; connections stay open (a peer's close
    // is still forwarded).
    void blackhole(bool on);
    // Refuse (accept and immediately reset) new connections while on.
    void refuse(bool on);
    // Reset (RST) every open connection, client and server side; done when this returns.
    void reset_all();
    // Send these bytes to every connected client as if the server had sent them (after what the
    // server already sent; subject to latency and stall, not to blackhole). Queued when this
    // returns.
    void inject_to_clients(const std::string& bytes);
    // Forward only the first n bytes of the server's next chunk (on whichever connection reads one
    // first), then close that connection (FIN to the client, which can read the n bytes first).
    void truncate_next_reply(std::size_t n);
    // Replace the server's next chunk with garbage of the same length; its first byte is 0x01,
    // which no RESP reply starts with.
    void garble_next_reply();

    // Connections accepted and not yet closed (refused ones are never open).
    [[nodiscard]] std::size_t open_connections() const;
    // Every connection ever accepted, refused ones included.
    [[nodiscard]] std::size_t accepted_connections() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace respite::test
