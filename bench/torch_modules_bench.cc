// Forward+backward of the reader's attention modules (linattn's fused kernels) against the naive
// LibTorch formulations, at reader shapes: batch 32, T from 50 to 2,000, d from 64 to 256.
//   ./build/bin/linattn_torch_bench [--quick] [--threads N] [--json FILE]
// Fairness: both sides get the same thread count, and OpenBLAS (LibTorch's BLAS on Debian) runs
// its right kernels: on AVX-512 CPUs Debian's OpenBLAS misdetects the core, so the program
// re-executes itself once with OPENBLAS_CORETYPE=SKYLAKEX; elsewhere OpenBLAS's own detection
// is kept (SKYLAKEX kernels would fault on a CPU without AVX-512). The core used is printed.
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../apps/common/openblas_core.h"
#include "linattn/core/threads.h"
#include "linattn/torch/modules.h"
#include "naive_attention.h"

extern "C" char* openblas_get_corename(void) __attribute__((weak));

namespace {
using namespace linattn::torch_ext;
using Clock = std::chrono::steady_clock;

double median_seconds(const std::function<void()>& f, int reps) {
  f();  // warm-up
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int threads = 2;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--threads" && i + 1 < argc) threads = std::max(1, std::atoi(argv[++i]));
    else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--quick] [--threads N] [--json FILE]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  linattn::apps::select_openblas_core(argv);
  torch::set_num_threads(threads);
  linattn::set_num_threads(threads);
  const char* core = openblas_get_corename ? openblas_get_corename() : "unknown";
  std::printf("forward+backward, batch 32, %d thread(s) each; LibTorch's OpenBLAS core: %s\n\n", threads, core);
  std::printf("%-26s %6s %5s %14s %14s %9s\n", "module", "T", "d", "linattn (ms)", "naive (ms)", "speed-up");

  const std::vector<int64_t> Ts = quick ? std::vector<int64_t>{50, 200} : std::vector<int64_t>{50, 200, 500, 2000};
  const std::vector<int64_t> ds = quick ? std::vector<int64_t>{64} : std::vector<int64_t>{64, 128, 256};
  const int reps = quick ? 3 : 7;
  const int64_t B = 32, A = 100;
  nlohmann::json rows = nlohmann::json::array();
  torch::manual_seed(0);
  for (int64_t d : ds)
    for (int64_t T : Ts) {
      auto h = (torch::randn({B, T, d}) * 0.3).set_requires_grad(true);
      auto q = (torch::randn({B, d}) * 0.3).set_requires_grad(true);
      std::vector<int64_t> len(B);
      for (int64_t b = 0; b < B; ++b) len[static_cast<size_t>(b)] = T - (b * T) / (2 * B);  // ragged, as sorted batches are
      const auto lengths = torch::tensor(len, torch::kInt64);
      const auto mask = (torch::arange(T).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2).to(torch::kFloat32);
      SoftmaxAttention soft(SoftmaxAttentionModuleOptions(d, d).attention_size(A));
      LinearAttention lin;
      GatedLinearAttention gs(GatedLinearAttentionModuleOptions(d).gate(GateKind::scalar));
      GatedLinearAttention gv(GatedLinearAttentionModuleOptions(d).gate(GateKind::vector));
      struct Case {
        const char* name;
        std::function<torch::Tensor()> ours, naive;
      };
      const std::vector<Case> cases = {
          {"softmax (additive)", [&] { return soft->forward(h, q, lengths); },
           [&] { return linattn::naive::additive(h, q, mask, soft->w_h, soft->w_q, soft->bias, soft->w); }},
          {"linear", [&] { return lin->forward(h, q, lengths); },
           [&] { return linattn::naive::linear(h, q, mask, lengths); }},
          {"gated linear, scalar", [&] { return gs->forward(h, q, lengths); },
           [&] { return linattn::naive::linear(linattn::naive::scalar_gated(h, gs->w, gs->b), q, mask, lengths); }},
          {"gated linear, vector", [&] { return gv->forward(h, q, lengths); },
           [&] { return linattn::naive::linear(linattn::naive::vector_gated(h, gv->w, gv->b), q, mask, lengths); }},
      };
      for (const Case& c : cases) {
        auto step = [&](const std::function<torch::Tensor()>& f) {
          return [&f, &h, &q] {
            h.mutable_grad() = torch::Tensor();
            q.mutable_grad() = torch::Tensor();
            f().sum().backward();
          };
        };
        const double ours = median_seconds(step(c.ours), reps), naive = median_seconds(step(c.naive), reps);
        std::printf("%-26s %6lld %5lld %14.3f %14.3f %8.2fx\n", c.name, static_cast<long long>(T),
                    static_cast<long long>(d), ours * 1e3, naive * 1e3, naive / ours);
        rows.push_back({{"module", c.name}, {"T", T}, {"d", d}, {"batch", B}, {"linattn_ms", ours * 1e3},
                        {"naive_ms", naive * 1e3}, {"speedup", naive / ours}});
      }
    }
  // Causal linear attention, B = 4, H = 8, T = 4,096, without decay and with per-channel decay
  // (GLA): the chunked kernels against the PyTorch chunked formulations (chunk 64), forward and
  // forward+backward.
  std::printf("\ncausal linear attention, B = 4, H = 8, T = %d\n%-34s %5s %14s %14s %9s %12s\n", quick ? 512 : 4096,
              "pass", "d", "linattn (ms)", "naive (ms)", "speed-up", "GFLOP/s ours");
  nlohmann::json causal = nlohmann::json::array();
  for (bool gla : {false, true})
    for (int64_t d : {int64_t{64}, int64_t{128}}) {
      const int64_t Bc = 4, Hc = 8, Tc = quick ? 512 : 4096;
      auto q = (torch::randn({Bc, Hc, Tc, d}) * 0.1).set_requires_grad(true);
      auto k = (torch::randn({Bc, Hc, Tc, d}) * 0.1).set_requires_grad(true);
      auto v = torch::randn({Bc, Hc, Tc, d}).set_requires_grad(true);
      // log gammas in (-0.03, 0], as in `linattn bench`
      auto g = (-(torch::randn({Bc, Hc, Tc, d}) * 0.1).abs()).set_requires_grad(gla);
      const double F = 2.0 * Bc * Hc * Tc * (64.0 * d + 2.0 * d * d);
      for (bool backward : {false, true}) {
        auto run = [&](const std::function<torch::Tensor()>& f) {
          return [&, f] {
            if (!backward) {
              torch::NoGradGuard no_grad;
              f();
              return;
            }
            for (auto* t : {&q, &k, &v, &g}) t->mutable_grad() = torch::Tensor();
            f().sum().backward();
          };
        };
        const double ours = median_seconds(
            run([&] { return gla ? causal_linear_attention(q, k, v, g) : causal_linear_attention(q, k, v); }), reps);
        const double naive = median_seconds(run([&] {
                                              return gla ? linattn::naive::gla_chunked(q, k, v, g, 64)
                                                         : linattn::naive::causal_chunked(q, k, v, 64);
                                            }),
                                            reps);
        const double flops = backward ? 3 * F : F;
        const std::string pass = std::string(backward ? "forward+backward" : "forward") + (gla ? ", GLA" : ", no decay");
        std::printf("%-34s %5lld %14.2f %14.2f %8.2fx %12.1f\n", pass.c_str(), static_cast<long long>(d), ours * 1e3,
                    naive * 1e3, naive / ours, flops / ours / 1e9);
        causal.push_back({{"pass", pass}, {"d", d}, {"linattn_ms", ours * 1e3}, {"naive_ms", naive * 1e3},
                          {"speedup", naive / ours}, {"gflops", flops / ours / 1e9}});
      }
    }

  if (!json_path.empty()) {
    std::ofstream(json_path) << nlohmann::json{{"threads", threads}, {"openblas_core", core}, {"results", rows},
                                               {"causal", causal}}.dump(2)
                             << "\n";
    std::printf("\nwrote %s\n", json_path.c_str());
  }
  return 0;
}
