// `linattn bench`: the cost model measured on this machine (bench/report.h).
#include <filesystem>
#include <memory>

#include "commands.h"
#include "report.h"

namespace linattn::cli {

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<bench::BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure every kernel against this machine's roofs and the baselines");
  cmd->add_flag("--quick", o->quick, "everything small, in under a minute (a smoke test)");
  cmd->add_option("--threads", o->threads, "threads (the targets are per core: 1)")->check(CLI::Range(1, 1024));
  cmd->add_option("--json", o->json_path, "write every figure and the machine description here");
  cmd->add_option("--plots", o->plot_dir, "write PNG plots into this directory (needs gnuplot)");
  cmd->add_option("--only", o->sections, "run only these sections (comma-separated): kernels (with the targets), "
                                         "causal, lookup, storage, search")
      ->delimiter(',')
      ->check(CLI::IsMember(bench::bench_sections()));
  cmd->callback([o] {
    if (!o->plot_dir.empty() && !(o->runs("kernels") && o->runs("lookup")))
      throw CLI::ValidationError("--plots", "the plots need the kernels and lookup sections (add them to --only)");
    // The FAISS baseline is a program of its own, installed beside this one.
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec && std::filesystem::exists(self.parent_path() / "linattn-bench-faiss"))
      o->faiss_baseline = (self.parent_path() / "linattn-bench-faiss").string();
    bench::run_benchmarks(*o);
  });
}

}  // namespace linattn::cli
