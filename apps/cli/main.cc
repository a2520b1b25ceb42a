// linattn: the command-line tool. Any error ends with a non-zero exit and one line on stderr.
#include <CLI/CLI.hpp>

#include "../common/run_app.h"

#include <cstdio>
#include <exception>

#include "commands.h"
#include "linattn/core/error.h"

int main(int argc, char** argv) {
  CLI::App app{"linattn: linear attention with constant-time lookups and fixed-size memories"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "linattn 0.1.0");
  linattn::cli::add_demo_command(app);
  linattn::cli::add_memory_commands(app);
  linattn::cli::add_bench_command(app);
  linattn::cli::add_reader_command(app);
  linattn::cli::add_serve_command(app);
  return linattn::apps::run_app(app, argc, argv, "linattn");
}
