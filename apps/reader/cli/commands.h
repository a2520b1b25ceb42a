// Subcommands of linattn-reader (also reached as `linattn reader ...`); each registers itself.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "checkpoint.h"

namespace linattn::reader::cli {

void add_train_command(CLI::App& app);
void add_use_commands(CLI::App& app);    // eval, encode, answer
void add_study_commands(CLI::App& app);  // report, study, reproduce

// Shared by the commands: the --threads setting for LibTorch and linattn's kernels.
void set_threads(int threads);

}  // namespace linattn::reader::cli
