// `linattn bench`: every operator timed against this machine's roofs, the softmax-vs-linear
// lookup sweep, bytes stored per sequence, and the targets, as a table, JSON and plots.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace linattn::bench {

struct BenchOptions {
  bool quick = false;     // everything small: under a minute (CI's smoke test)
  int threads = 1;        // the targets are per core
  std::string json_path;  // write every figure here ("" = none)
  std::string plot_dir;   // write PNG plots here with gnuplot ("" = none)
};

// Runs the benchmarks, prints the tables to stdout and returns every figure.
nlohmann::json run_benchmarks(const BenchOptions& options);

}  // namespace linattn::bench
