// Subcommands of the linattn tool: each registers itself on the app and runs when chosen.
#pragma once

#include <CLI/CLI.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "linattn/core/error.h"

namespace linattn::cli {

// Refuses an output that is one of the command's inputs, by any path (links included): the
// atomic write of the output would replace the input.
inline void refuse_output_over_inputs(const std::string& option, const std::string& output,
                                      const std::vector<std::string>& inputs) {
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (!input.empty() && std::filesystem::equivalent(output, input, ec))
      throw Error(option + " " + output + " is the input " + input + ": write the results to another file");
  }
}

void add_demo_command(CLI::App& app);
void add_memory_commands(CLI::App& app);
void add_bank_commands(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_reader_command(CLI::App& app);
void add_serve_command(CLI::App& app);

}  // namespace linattn::cli
