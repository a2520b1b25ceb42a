// linattn: the command-line tool. Any error ends with a non-zero exit and one line on stderr.
#include <CLI/CLI.hpp>

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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line on stderr, like every other error.
    std::fprintf(stderr, "linattn: error: %s (see --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "linattn: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
