// The one error policy of linattn's programs: --help and --version exit 0; any other failure
// exits non-zero with exactly one line on stderr, "<program>: error: <what>".
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

namespace linattn::apps {

inline int run_app(CLI::App& app, int argc, char** argv, const char* program) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "%s: error: %s (see --help)\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
  return 0;
}

}  // namespace linattn::apps
