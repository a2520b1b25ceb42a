#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "linattn/core/error.h"

namespace linattn::reader {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> kMechanisms = {"none",    "linear",   "gated-scalar", "gated-vector",
                                              "galerkin", "lambda", "kslot",    "softmax"};

struct Stats {
  std::vector<double> values;
  double mean() const {
    double s = 0;
    for (double v : values) s += v;
    return values.empty() ? 0 : s / static_cast<double>(values.size());
  }
  // Sample standard deviation (0 for one value).
  double spread() const {
    if (values.size() < 2) return 0;
    const double m = mean();
    double s = 0;
    for (double v : values) s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(values.size() - 1));
  }
  std::string cell() const {
    if (values.empty()) return "";
    char buf[64];
    if (values.size() == 1) std::snprintf(buf, sizeof buf, "%.3f", mean());
    else std::snprintf(buf, sizeof buf, "%.3f ± %.3f", mean(), spread());
    return buf;
  }
};

std::string kind_of(const json& r) { return r.value("kind", std::string("babi")); }

std::vector<std::string> present_mechanisms(const std::set<std::string>& seen) {
  std::vector<std::string> out;
  for (const auto& m : kMechanisms)
    if (seen.count(m)) out.push_back(m);
  return out;
}

void run_gnuplot(const std::string& script_path) {
  const std::string cmd = "gnuplot '" + script_path + "'";
  if (std::system(cmd.c_str()) != 0)
    throw Error("gnuplot failed or is not installed (apt-get install gnuplot-nox): " + cmd);
}

const char* kTerminal = "set terminal pngcairo size 900,540 font 'sans,11' background rgb 'white'\n";

}  // namespace

std::vector<json> read_results(const std::vector<std::string>& paths) {
  std::vector<json> out;
  for (const auto& path : paths) {
    std::ifstream in(path);
    if (!in) throw Error("cannot open results file '" + path + "'");
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        out.push_back(json::parse(line));
      } catch (const json::exception& e) {
        throw FormatError(path + ":" + std::to_string(n) + ": not a JSON results line (" + e.what() + ")");
      }
      if (!out.back().is_object()) throw FormatError(path + ":" + std::to_string(n) + ": not a JSON object");
    }
  }
  return out;
}

std::string serve_setting(const json& r) {
  if (r.value("data", std::string("en")) == "mqar")
    return "MQAR, " + std::to_string(r.value("pairs", int64_t{0})) + " pairs, d = " + std::to_string(r.value("hidden", int64_t{0}));
  if (r.value("data", std::string("en")) == "cnn") return "CNN";
  return "bAbI task " + std::to_string(r.value("task", 0)) + " (" + r.value("data", std::string("en")) + ")";
}

std::string write_report(const std::vector<json>& results, const std::string& out_dir, bool plots) {
  fs::create_directories(out_dir);
  std::ostringstream md;
  md << "# Reader results\n\n"
     << "Test accuracy at the epoch of best validation accuracy; mean ± sample standard deviation over seeds "
        "(no ± when one seed). bAbI stands in for the paper's CNN data.\n";

  // bAbI: (data, task) x mechanism.
  std::map<std::string, std::map<int, std::map<std::string, Stats>>> babi;
  std::map<std::string, std::map<std::string, Stats>> babi_overall;  // data -> mechanism -> per-task means
  std::set<std::string> babi_mechanisms;
  // data -> mechanism -> epochs each run trained, and the learning rates it used.
  std::map<std::string, std::map<std::string, std::vector<int>>> epochs_run;
  std::map<std::string, std::map<std::string, std::set<double>>> rates;
  // Learning curves: (data, task, mechanism) -> epoch -> valid accuracies over seeds.
  std::map<std::string, std::map<int, std::map<std::string, std::map<int, Stats>>>> curves;
  for (const auto& r : results) {
    if (kind_of(r) != "babi" || !r.contains("test_accuracy")) continue;
    const std::string data = r.value("data", std::string("en"));
    const int task = r.value("task", 0);
    const std::string m = r.value("mechanism", std::string("?"));
    babi[data][task][m].values.push_back(r["test_accuracy"].get<double>());
    babi_mechanisms.insert(m);
    // Runs from before early stopping trained every epoch of "epochs".
    epochs_run[data][m].push_back(r.value("epochs_run", r.value("epochs", 0)));
    if (r.contains("lr")) rates[data][m].insert(r["lr"].get<double>());
    if (r.contains("curve"))
      for (const auto& e : r["curve"]) curves[data][task][m][e.value("epoch", 0)].values.push_back(e.value("valid_accuracy", 0.0));
  }
  const auto mechs = present_mechanisms(babi_mechanisms);
  for (const auto& [data, tasks] : babi) {
    md << "\n## bAbI (" << data << "): test accuracy\n\n| task |";
    for (const auto& m : mechs) md << " " << m << " |";
    md << "\n|---|";
    for (size_t i = 0; i < mechs.size(); ++i) md << "---|";
    md << "\n";
    size_t complete = 0;
    for (const auto& [task, by_mech] : tasks) {
      md << "| " << task << " |";
      for (const auto& m : mechs) {
        const auto it = by_mech.find(m);
        md << " " << (it == by_mech.end() ? "" : it->second.cell()) << " |";
      }
      md << "\n";
      if (by_mech.size() < mechs.size()) continue;  // the mean compares like with like
      ++complete;
      for (const auto& m : mechs) babi_overall[data][m].values.push_back(by_mech.at(m).mean());
    }
    if (complete > 1) {
      md << "| mean over the " << complete << " tasks with every mechanism |";
      for (const auto& m : mechs) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3f", babi_overall[data][m].mean());
        md << " " << (babi_overall[data][m].values.empty() ? "" : buf) << " |";
      }
      md << "\n";
    }
    size_t fewest = SIZE_MAX, most = 0;
    for (const auto& [task, by_mech] : tasks)
      for (const auto& [m, st] : by_mech) fewest = std::min(fewest, st.values.size()), most = std::max(most, st.values.size());
    md << "\nSeeds per cell: " << (fewest == most ? std::to_string(most) : std::to_string(fewest) + " to " + std::to_string(most))
       << ".\n\nEpochs trained per run (early stopping ends a run after --patience epochs without a better "
          "validation accuracy), and learning rates:\n\n| mechanism | epochs: mean (fewest-most) | learning rate |\n|---|---|---|\n";
    for (const auto& m : mechs) {
      const std::vector<int>& e = epochs_run[data][m];
      if (e.empty()) continue;
      double sum = 0;
      for (int x : e) sum += x;
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.1f (%d-%d)", sum / static_cast<double>(e.size()), *std::min_element(e.begin(), e.end()),
                    *std::max_element(e.begin(), e.end()));
      std::string lr;
      for (double x : rates[data][m]) {
        char b2[32];
        std::snprintf(b2, sizeof b2, "%g", x);
        lr += (lr.empty() ? "" : ", ") + std::string(b2);
      }
      md << "| " << m << " | " << buf << " | " << (lr.empty() ? "not recorded" : lr) << " |\n";
    }
  }

  // CNN: mechanism -> test accuracies (and epochs) over seeds.
  std::map<std::string, Stats> cnn, cnn_epochs;
  for (const auto& r : results) {
    if (kind_of(r) != "cnn" || !r.contains("test_accuracy")) continue;
    const std::string m = r.value("mechanism", std::string("?"));
    cnn[m].values.push_back(r["test_accuracy"].get<double>());
    cnn_epochs[m].values.push_back(r.value("epochs_run", r.value("epochs", 0)));
  }
  if (!cnn.empty()) {
    std::set<std::string> seen;
    for (const auto& [m, st] : cnn) seen.insert(m);
    md << "\n## CNN: test accuracy\n\n| mechanism | test accuracy | runs | epochs trained (mean) |\n|---|---|---|---|\n";
    for (const auto& m : present_mechanisms(seen)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f", cnn_epochs[m].mean());
      md << "| " << m << " | " << cnn[m].cell() << " | " << cnn[m].values.size() << " | " << buf << " |\n";
    }
  }

  // MQAR: (hidden) x pairs x mechanism.
  std::map<int64_t, std::map<int64_t, std::map<std::string, Stats>>> mqar;
  std::set<std::string> mqar_mechanisms;
  for (const auto& r : results) {
    if (kind_of(r) != "mqar" || !r.contains("test_accuracy")) continue;
    const std::string m = r.value("mechanism", std::string("?"));
    mqar[r.value("hidden", int64_t{0})][r.value("pairs", int64_t{0})][m].values.push_back(r["test_accuracy"].get<double>());
    mqar_mechanisms.insert(m);
  }
  const auto mqar_mechs = present_mechanisms(mqar_mechanisms);

  // Stored memories and costs.
  std::vector<json> serve;
  for (const auto& r : results)
    if (kind_of(r) == "serve") serve.push_back(r);
  if (!serve.empty()) {
    md << "\n## The comparison: accuracy, lookup cost, bytes per stored story\n\n"
       << "Test questions answered one at a time from each mechanism's stored form of the test stories "
          "(seed-1 model; accuracy over all seeds). Lookup: the read-out from the stored form; questions/s: "
          "question encoder + read-out + output layer.\n\n"
       << "| setting | mechanism | test accuracy | stored per story | bytes per story | lookup (us/question) | "
          "questions/s | answers equal to the in-graph pass |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : serve) {
      const std::string data = r.value("data", std::string("en")), m = r.value("mechanism", std::string());
      std::string acc;
      if (data == "cnn") {
        if (cnn.count(m)) acc = cnn.at(m).cell();
      } else if (data == "mqar") {
        const int64_t width = r.value("hidden", int64_t{0}), pairs = r.value("pairs", int64_t{0});
        if (mqar.count(width) && mqar.at(width).count(pairs) && mqar.at(width).at(pairs).count(m))
          acc = mqar.at(width).at(pairs).at(m).cell();
      } else {
        const int task = r.value("task", 0);
        if (babi.count(data) && babi.at(data).count(task) && babi.at(data).at(task).count(m))
          acc = babi.at(data).at(task).at(m).cell();
      }
      char buf[512];
      std::snprintf(buf, sizeof buf, "| %s | %s | %s | %s | %.0f | %.2f | %.0f | %lld/%lld |\n", serve_setting(r).c_str(),
                    m.c_str(), acc.c_str(), r.value("store", std::string()).c_str(), r.value("bytes_per_story", 0.0),
                    r.value("lookup_us", 0.0), r.value("questions_per_second", 0.0),
                    static_cast<long long>(r.value("agree", 0)), static_cast<long long>(r.value("questions", 0)));
      md << buf;
    }
  }

  if (!mqar.empty()) {
    md << "\n## MQAR: test accuracy against the number of key-value pairs\n\n| width | pairs |";
    for (const auto& m : mqar_mechs) md << " " << m << " |";
    md << "\n|---|---|";
    for (size_t i = 0; i < mqar_mechs.size(); ++i) md << "---|";
    md << "\n";
    for (const auto& [width, by_pairs] : mqar)
      for (const auto& [pairs, by_mech] : by_pairs) {
        md << "| " << width << " | " << pairs << " |";
        for (const auto& m : mqar_mechs) {
          const auto it = by_mech.find(m);
          md << " " << (it == by_mech.end() ? "" : it->second.cell()) << " |";
        }
        md << "\n";
      }
  }

  if (plots) {
    std::vector<std::string> images;
    std::ofstream gp(out_dir + "/plots.gp");
    gp << kTerminal << "set grid\nset key outside right top\n";
    for (const auto& [data, tasks] : curves)
      for (const auto& [task, by_mech] : tasks) {
        const std::string stem = "curves_" + data + "_task" + std::to_string(task);
        std::ofstream dat(out_dir + "/" + stem + ".dat");
        std::vector<std::string> plotted;
        for (const auto& m : mechs) {
          const auto it = by_mech.find(m);
          if (it == by_mech.end()) continue;
          dat << "# " << m << "\n";
          for (const auto& [epoch, s] : it->second) dat << epoch << " " << s.mean() << "\n";
          dat << "\n\n";
          plotted.push_back(m);
        }
        images.push_back(stem + ".png");
        gp << "set output '" << out_dir << "/" << stem << ".png'\nset title 'bAbI task " << task << " (" << data
           << "): validation accuracy while training (mean over seeds)'\nset xlabel 'epoch'\nset ylabel 'validation accuracy'\n"
           << "set yrange [0:1]\nplot ";
        for (size_t i = 0; i < plotted.size(); ++i)
          gp << (i ? ", " : "") << "'" << out_dir << "/" << stem << ".dat' index " << i << " using 1:2 with linespoints lw 2 title '"
             << plotted[i] << "'";
        gp << "\n";
      }
    for (const auto& [data, tasks] : babi) {
      const std::string stem = "accuracy_" + data;
      std::ofstream dat(out_dir + "/" + stem + ".dat");
      for (const auto& [task, by_mech] : tasks) {
        dat << task;
        for (const auto& m : mechs) {
          const auto it = by_mech.find(m);
          dat << " " << (it == by_mech.end() ? std::string("-") : std::to_string(it->second.mean())) << " "
              << (it == by_mech.end() ? std::string("-") : std::to_string(it->second.spread()));
        }
        dat << "\n";
      }
      images.push_back(stem + ".png");
      gp << "set output '" << out_dir << "/" << stem << ".png'\nset title 'bAbI (" << data
         << "): test accuracy per task and mechanism (mean, bars: spread over seeds)'\n"
         << "set style data histograms\nset style histogram errorbars gap 1 lw 1\nset style fill solid 0.8 border -1\n"
         << "set xlabel 'task'\nset ylabel 'test accuracy'\nset yrange [0:1.05]\nset datafile missing '-'\nplot ";
      for (size_t i = 0; i < mechs.size(); ++i)
        gp << (i ? ", " : "") << "'" << out_dir << "/" << stem << ".dat' using " << 2 + 2 * i << ":" << 3 + 2 * i
           << (i ? "" : ":xtic(1)") << " title '" << mechs[i] << "'";
      gp << "\nunset style\nset style data linespoints\n";
    }
    if (!mqar.empty()) {
      std::ofstream dat(out_dir + "/mqar.dat");
      std::vector<std::string> titles, styles;  // one colour per mechanism, one dash type per width
      int width_index = 0;
      for (const auto& [width, by_pairs] : mqar) {
        ++width_index;
        for (size_t mi = 0; mi < mqar_mechs.size(); ++mi) {
          const std::string& m = mqar_mechs[mi];
          dat << "# " << m << " width " << width << "\n";
          for (const auto& [pairs, by_mech] : by_pairs) {
            const auto it = by_mech.find(m);
            if (it != by_mech.end()) dat << pairs << " " << it->second.mean() << "\n";
          }
          dat << "\n\n";
          titles.push_back(m + ", d = " + std::to_string(width));
          styles.push_back("lc " + std::to_string(mi + 1) + " pt " + std::to_string(mi + 4) + " dt " + std::to_string(width_index));
        }
      }
      images.push_back("mqar.png");
      gp << "set output '" << out_dir << "/mqar.png'\nset title 'MQAR: recall against the number of key-value pairs'\n"
         << "set logscale x 2\nset xlabel 'key-value pairs in the story'\nset ylabel 'test accuracy'\nset yrange [0:1.05]\nplot ";
      for (size_t i = 0; i < titles.size(); ++i)
        gp << (i ? ", " : "") << "'" << out_dir << "/mqar.dat' index " << i << " using 1:2 with linespoints lw 2 "
           << styles[i] << " title '" << titles[i] << "'";
      gp << "\nunset logscale\n";
    }
    gp.close();
    if (!images.empty()) {
      run_gnuplot(out_dir + "/plots.gp");
      md << "\n## Plots\n\n";
      for (const auto& i : images) md << "![" << i << "](" << i << ")\n";
    }
  }
  const std::string text = md.str();
  std::ofstream(out_dir + "/report.md") << text;
  return text;
}

}  // namespace linattn::reader
