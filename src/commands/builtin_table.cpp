// The built-in table: every command and subcommand of Redis 7.0, generated from its COMMAND.
#include <respite/commands/command_table.hpp>

namespace respite::commands {

namespace {

// Plain rows so the generated table compiles fast; the class owns std::string copies.
struct builtin_row {
    std::string_view name;
    int arity;
    std::uint32_t flags;
    int first_key;
    int last_key;
    int step;
};

constexpr builtin_row builtin_rows[] = {
#include "builtin_table.inc"
};

}  // namespace

const command_table& command_table::builtin() {
    static const command_table table = [] {
        std::vector<command_spec> specs;
        specs.reserve(std::size(builtin_rows));
        for (const auto& r : builtin_rows) {
            specs.push_back(command_spec{std::string(r.name), r.arity, r.flags, r.first_key,
                                         r.last_key, r.step});
        }
        return command_table(std::move(specs));
    }();
    return table;
}

}  // namespace respite::commands
