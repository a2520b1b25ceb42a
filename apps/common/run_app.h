// The one error policy of linattn's programs: --help and --version exit 0; any other failure
// exits non-zero with exactly one line on stderr, "<program>: error: <what>".
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>

namespace linattn::apps {

// A number option's value must be > 0 ("--lr 0: must be greater than 0"), without CLI11's
// "in range 0 to 1.79769e+308".
inline CLI::Validator positive() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(s, &used);
          if (used == s.size() && v > 0) return "";
        } catch (const std::exception&) {
        }
        return "must be a number greater than 0, not '" + s + "'";
      },
      "> 0");
}

// Every number option of `app` and its commands refuses an empty value (CLI11 would read "" as
// 0), whatever the option.
inline void refuse_empty_numbers(CLI::App& app) {
  for (CLI::Option* o : app.get_options()) {
    const std::string type = o->get_type_name();
    if (o->get_type_size() == 0) continue;  // a flag
    if (type.find("INT") != std::string::npos || type.find("FLOAT") != std::string::npos ||
        type.find("NUMBER") != std::string::npos)
      o->check(CLI::Validator(
          [](std::string& s) -> std::string { return s.empty() ? std::string("an empty value is not a number") : ""; },
          ""));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) refuse_empty_numbers(*sub);
}

// The word typed where a command of `app` (or of one of its commands) was expected that names
// none, with the commands there: "unknown command 'lokup' (commands: demo, lookup, ...)".
inline std::optional<std::string> unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    const auto subs = at->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty() || word.empty() || word[0] == '-') return std::nullopt;
    CLI::App* next = nullptr;
    std::string names;
    for (CLI::App* s : subs) {
      if (s->check_name(word)) next = s;
      names += (names.empty() ? "" : ", ") + s->get_name();
    }
    if (!next) return "unknown command '" + word + "' (commands: " + names + ")";
    at = next;
  }
  return std::nullopt;
}

inline int run_app(CLI::App& app, int argc, char** argv, const char* program) {
  refuse_empty_numbers(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    const std::optional<std::string> unknown = unknown_command(app, argc, argv);
    std::fprintf(stderr, "%s: error: %s (see --help)\n", program, unknown ? unknown->c_str() : e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "%s: error: not enough memory for this request (try smaller sizes)\n", program);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
  return 0;
}

}  // namespace linattn::apps
