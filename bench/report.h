// `linattn bench`: every operator timed against this machine's roofs, the softmax-vs-linear
// lookup sweep, bytes stored per sequence, and the targets, as a table, JSON and plots.
#pragma once

#include <nlohmann/json.hpp>
#include <algorithm>
#include <string>
#include <vector>

namespace linattn::bench {

struct BenchOptions {
  bool quick = false;     // everything small: under a minute (CI's smoke test)
  int threads = 1;        // the targets are per core
  std::string json_path;  // write every figure here ("" = none)
  std::string plot_dir;   // write PNG plots here with gnuplot ("" = none)
  std::string faiss_baseline;  // the linattn-bench-faiss program, for the search section ("" = not run)
  // Sections to run (empty = all): kernels (with the targets), causal, lookup, storage.
  std::vector<std::string> sections;
  bool runs(const std::string& section) const {
    return sections.empty() || std::find(sections.begin(), sections.end(), section) != sections.end();
  }
};

// The section names, in the order they run.
inline const std::vector<std::string>& bench_sections() {
  static const std::vector<std::string> names = {"kernels", "causal", "lookup", "storage", "search"};
  return names;
}

// Runs the benchmarks, prints the tables to stdout and returns every figure.
nlohmann::json run_benchmarks(const BenchOptions& options);

}  // namespace linattn::bench
