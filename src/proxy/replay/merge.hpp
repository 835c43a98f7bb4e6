// Fewer, larger writes to the secondary: consecutive commands of one lane that their callers
// marked mergeable (replayer's merge_hint) go out as one command, e.g. SET a 1, SET b 2 as
// MSET a 1 b 2 and LPUSH k x, LPUSH k y as LPUSH k x y. The caller vouches that the merged
// command has the effect of the sequence; this part only splits and joins RESP arrays.
//
// Sans-I/O, not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace respite::proxy::replay {

// Where a command (a RESP array of bulk strings) splits after its first `head` arguments.
struct command_shape {
    std::size_t args = 0;        // arguments in the array
    std::size_t head_begin = 0;  // offset of the first argument (after "*<n>\r\n")
    std::size_t tail = 0;        // offset after the first `head` arguments
};

// nullopt when `command` is not one well-formed array of more than `head` bulk strings that
// fills it exactly (then it is sent as it is, never merged).
[[nodiscard]] std::optional<command_shape> shape_of(std::string_view command,
                                                    std::size_t head) noexcept;

// The first argument (the command's name) of the first RESP array in `commands`; "" when it
// does not start with one.
[[nodiscard]] std::string_view first_name(std::string_view commands) noexcept;

// A run of commands merged into one. Each command joins with its head and the arguments after
// it; commands join a run only if they agree on `head`, `rename` and `group`, and, without a
// rename, on the head's bytes (LPUSH k ... with LPUSH k ...). With a rename the head is replaced
// by that one name (SET k v -> MSET k v ...).
class merge_run {
  public:
    // Most bytes one merged command carries (a bigger command is sent on its own).
    static constexpr std::size_t max_bytes = 256 * 1024;

    // Adds the command when it can extend this run (or start it when empty); false when it
    // cannot (not mergeable, incompatible, too big: a command over max_bytes never joins or
    // starts a run): the caller ends the run first.
    bool add(std::string_view command, std::uint8_t head, std::string_view rename,
             std::uint32_t group);
    [[nodiscard]] std::size_t size() const noexcept { return count_; }
    [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
    // The run as one command (a lone command: as it came); empties the run. The view is valid
    // until the next call.
    std::string_view take();

  private:
    std::string head_;   // the merged command's head, encoded
    std::string tails_;  // the arguments after each command's head, encoded
    std::string out_;
    std::size_t head_args_ = 0;  // arguments in head_
    std::size_t tail_args_ = 0;  // arguments in tails_
    std::size_t count_ = 0;
    std::uint8_t head_count_ = 0;  // the `head` of its commands
    std::string_view rename_;
    std::uint32_t group_ = 0;
    std::string first_;  // the first command as it came (sent as is when it stays alone)
};

}  // namespace respite::proxy::replay
