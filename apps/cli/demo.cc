// `linattn demo`: encode one document once, then answer many queries from its fixed-size
// memory, next to softmax attention over the same document; prints results and timings.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "commands.h"
#include "linattn/linattn.h"

namespace linattn::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Best of `reps` runs after one warm-up (the first call pays for oneDNN's JIT and page faults).
template <class F>
double best_seconds(F&& f, int reps = 5) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

struct DemoOptions {
  int64_t tokens = 4096;
  int64_t dim = 128;
  int64_t queries = 1024;
  unsigned seed = 1;
};

void run_demo(const DemoOptions& o) {
  const int64_t T = o.tokens, d = o.dim, m = o.queries;
  // The document, the queries, two sets of results and the memory, as float32.
  const double need = 4.0 * static_cast<double>(T * d + 3 * m * d + d * d);
  const double have = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (need > 0.5 * have)
    throw Error("T = " + std::to_string(T) + ", d = " + std::to_string(d) + ", m = " + std::to_string(m) + " needs " +
                std::to_string(static_cast<int64_t>(need / (1 << 30))) + " GiB, more than half of this machine's " +
                std::to_string(static_cast<int64_t>(have / (1 << 30))) + " GiB: choose smaller sizes");
  std::mt19937 rng(o.seed);
  std::normal_distribution<float> normal(0.f, 1.f / std::sqrt(static_cast<float>(d)));
  std::vector<float> h(static_cast<size_t>(T * d)), q(static_cast<size_t>(m * d));
  for (float& x : h) x = normal(rng);
  for (float& x : q) x = normal(rng);
  const CView4 hv = CView4::contiguous(h.data(), {1, 1, T, d});
  const CView4 qv = CView4::contiguous(q.data(), {1, 1, m, d});

  std::printf("linattn demo: one document of T = %lld tokens, width d = %lld, %lld queries\n",
              static_cast<long long>(T), static_cast<long long>(d), static_cast<long long>(m));
  std::printf("threads: %d\n\n", num_threads());

  // Encode once: C = H^T H, the paper's memory with keys = values = hidden states.
  std::vector<float> C(static_cast<size_t>(d * d));
  const double t_encode = best_seconds(
      [&] { linear_attention_encode(hv, hv, View4::contiguous(C.data(), {1, 1, d, d})); });

  // Every query answered from the memory alone (r = 1000 C q / n, as in the authors' code).
  std::vector<float> r_linear(static_cast<size_t>(m * d));
  const std::vector<int64_t> counts = {T};
  const double t_lookup = best_seconds([&] {
    linear_attention_lookup(qv, CView4::contiguous(C.data(), {1, 1, d, d}),
                            View4::contiguous(r_linear.data(), {1, 1, m, d}),
                            {.mean = true, .scale = 1000.f}, {}, counts);
  });

  // The same queries with softmax attention, which needs every hidden state.
  std::vector<float> r_softmax(static_cast<size_t>(m * d));
  const double t_softmax = best_seconds(
      [&] { softmax_attention(qv, hv, hv, View4::contiguous(r_softmax.data(), {1, 1, m, d})); });

  const double kib = 1024.0;
  std::printf("%-28s %14s %16s %14s\n", "mechanism", "stored (KiB)", "per query (us)", "encode (ms)");
  std::printf("%-28s %14.1f %16.3f %14s\n", "softmax attention", T * d * 4 / kib,
              t_softmax / m * 1e6, "-");
  std::printf("%-28s %14.1f %16.3f %14.3f\n", "linear attention (d x d)", d * d * 4 / kib,
              t_lookup / m * 1e6, t_encode * 1e3);
  std::printf("%-28s %14.1f\n\n", "  symmetric storage", d * (d + 1) / 2 * 4 / kib);
  // The first outputs of the first query (at most 4: d may be smaller).
  const int64_t shown = std::min<int64_t>(4, d);
  auto first_outputs = [shown](const std::vector<float>& r) {
    std::string s;
    for (int64_t i = 0; i < shown; ++i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%s%.4f", i ? " " : "", static_cast<double>(r[static_cast<size_t>(i)]));
      s += buf;
    }
    return s;
  };
  std::printf("first query, first %lld outputs: linear  [%s]\n", static_cast<long long>(shown),
              first_outputs(r_linear).c_str());
  std::printf("                               softmax [%s]\n", first_outputs(r_softmax).c_str());
  std::printf("\nlinear lookups were %.1fx faster per query than softmax at T = %lld; the memory\n"
              "costs the same to query whatever T is (O(d^2) per query, against O(T d) for softmax).\n",
              t_softmax / t_lookup, static_cast<long long>(T));
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto opts = std::make_shared<DemoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "demo", "Encode a random document once and compare lookups with softmax attention");
  cmd->add_option("--tokens,-T", opts->tokens, "document length")->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--dim,-d", opts->dim, "hidden width")->check(CLI::Range(1, 4096));
  cmd->add_option("--queries,-m", opts->queries, "number of queries")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--seed", opts->seed, "random seed");
  cmd->callback([opts] { run_demo(*opts); });
}

}  // namespace linattn::cli
