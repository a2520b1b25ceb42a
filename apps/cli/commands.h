// Subcommands of the linattn tool: each registers itself on the app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

namespace linattn::cli {

void add_demo_command(CLI::App& app);
void add_memory_commands(CLI::App& app);
void add_bank_commands(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_reader_command(CLI::App& app);

}  // namespace linattn::cli
