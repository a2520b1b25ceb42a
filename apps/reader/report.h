// `linattn-reader report`: result JSON lines (from train, study and reproduce) into a Markdown
// report with means and spreads over seeds, and PNG plots drawn by gnuplot: learning curves,
// accuracy per mechanism and task, MQAR accuracy against the number of pairs.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace linattn::reader {

// Every JSON line of every file; errors name the file and line.
std::vector<nlohmann::json> read_results(const std::vector<std::string>& paths);

// The setting a "serve" line measured, for tables: "bAbI task 4 (en)", "MQAR, 8 pairs, d = 32".
std::string serve_setting(const nlohmann::json& serve_line);

// Writes <out_dir>/report.md and, when plots is set, <out_dir>/*.png; returns the Markdown.
std::string write_report(const std::vector<nlohmann::json>& results, const std::string& out_dir, bool plots);

}  // namespace linattn::reader
