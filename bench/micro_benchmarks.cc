// Google Benchmark micro-benchmarks of the kernels and operators, one thread.
//   ./build/bin/linattn_micro_benchmarks [--benchmark_filter=Lookup]
// Counters: FLOP/s ("flops") for each case; the roofs and targets are in `linattn bench`.
#include <benchmark/benchmark.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include <oneapi/dnnl/dnnl.h>

#include "linattn/linattn.h"
#include "kernels/gemm.h"
#include "kernels/causal_linear_attention_simd.h"
#include "kernels/simd.h"

namespace {
using namespace linattn;

std::vector<float> random_floats(int64_t n) {
  std::mt19937 g(42);
  std::normal_distribution<float> dist(0.f, 0.1f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = dist(g);
  return x;
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["flops"] = benchmark::Counter(flops_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_GemvT(benchmark::State& state) {
  const int64_t d = state.range(0);
  const auto M = random_floats(d * d), x = random_floats(d);
  std::vector<float> y(static_cast<size_t>(d));
  for (auto _ : state) {
    kernels::simd::gemv_t(M.data(), d, x.data(), d, y.data(), d);
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, 2.0 * d * d);
}
BENCHMARK(BM_GemvT)->Arg(64)->Arg(128)->Arg(256);

// One small product, as the chunked causal kernels issue them (row-major, C = op(A) op(B) +
// beta C with beta = 1, data in L1): kernels::gemm (libxsmm up to kSmallGemmMaxMultiplyAdds,
// see src/kernels/gemm.cc) against oneDNN's sgemm called directly (onednn = 1).
void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool ta = state.range(3) != 0, tb = state.range(4) != 0, onednn = state.range(5) != 0;
  const auto a = random_floats(m * k), b = random_floats(k * n);
  std::vector<float> c(static_cast<size_t>(m * n));
  const int64_t lda = ta ? m : k, ldb = tb ? k : n;
  for (auto _ : state) {
    if (onednn) dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.f, a.data(), lda, b.data(), ldb, 1.f, c.data(), n);
    else kernels::gemm(ta, tb, m, n, k, 1.f, a.data(), lda, b.data(), ldb, 1.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * m * n * k);
}
BENCHMARK(BM_Gemm)
    ->ArgNames({"M", "N", "K", "ta", "tb", "onednn"})
    ->ArgsProduct({{32}, {32}, {64, 128}, {0}, {1}, {0, 1}})
    ->ArgsProduct({{32}, {64, 65}, {32, 64}, {0}, {0}, {0, 1}})
    ->ArgsProduct({{64}, {64, 65}, {32, 64}, {1}, {0}, {0, 1}})
    ->ArgsProduct({{64}, {64}, {64}, {0}, {1}, {0, 1}})
    ->ArgsProduct({{32}, {128}, {32, 128}, {0}, {0}, {0, 1}})
    ->ArgsProduct({{128}, {128}, {32}, {1}, {0}, {0, 1}})
    // The search kernel's panels: 64 queries against 1 and 4 states side by side.
    ->ArgsProduct({{64}, {128, 512}, {128}, {0}, {0}, {0, 1}});

void BM_LinearLookupSingle(benchmark::State& state) {
  const int64_t d = state.range(0);
  const auto M = random_floats(d * d), q = random_floats(d);
  std::vector<float> out(static_cast<size_t>(d));
  for (auto _ : state) {
    linear_attention_lookup(CView4::contiguous(q.data(), {1, 1, 1, d}), CView4::contiguous(M.data(), {1, 1, d, d}),
                            View4::contiguous(out.data(), {1, 1, 1, d}));
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * d * d);
}
BENCHMARK(BM_LinearLookupSingle)->Arg(64)->Arg(128)->Arg(256);

// One query against a stored memory: full (d x d) or packed symmetric (the reader's stored
// form, d(d+1)/2 numbers), f32 or bf16.
void BM_MemoryViewLookupSingle(benchmark::State& state) {
  const int64_t d = state.range(0);
  const bool symmetric = state.range(2) != 0;
  const auto H = random_floats(64 * d), q = random_floats(d);
  Memory m({.key_dim = d, .value_dim = d, .symmetric = symmetric, .dtype = state.range(1) ? DType::bf16 : DType::f32});
  if (symmetric) m.write(CView2::contiguous(H.data(), {64, d}));
  else m.write(CView2::contiguous(H.data(), {64, d}), CView2::contiguous(H.data(), {64, d}));
  const MemoryView v = view_of_bytes(serialize(m), "bench");
  std::vector<float> out(static_cast<size_t>(d));
  for (auto _ : state) {
    v.lookup(CView2::contiguous(q.data(), {1, d}), View2::contiguous(out.data(), {1, d}));
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * d * d);
}
BENCHMARK(BM_MemoryViewLookupSingle)
    ->ArgNames({"d", "bf16", "packed"})
    ->Args({128, 0, 0})
    ->Args({128, 1, 0})
    ->Args({64, 0, 1})
    ->Args({128, 0, 1})
    ->Args({64, 1, 1})
    ->Args({128, 1, 1});

// A rank-16 memory (d = 128): one query reads U directly (two gemvs), more go through two GEMMs.
void BM_LowRankLookup(benchmark::State& state) {
  const int64_t d = 128, m = state.range(0);
  const auto H = random_floats(64 * d), q = random_floats(m * d);
  Memory mem({.key_dim = d, .value_dim = d, .symmetric = true});
  mem.write(CView2::contiguous(H.data(), {64, d}));
  const MemoryView v = compress(view_of_bytes(serialize(mem), "bench"), {.rank = 16});
  std::vector<float> out(static_cast<size_t>(m * d));
  for (auto _ : state) {
    v.lookup(CView2::contiguous(q.data(), {m, d}), View2::contiguous(out.data(), {m, d}));
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 4.0 * m * d * 16);
}
BENCHMARK(BM_LowRankLookup)->Arg(1)->Arg(3)->Arg(4)->Arg(64)->Arg(256)->Arg(1024);

void BM_LinearLookupBatched(benchmark::State& state) {
  const int64_t d = 128, m = state.range(0);
  const auto M = random_floats(d * d), q = random_floats(m * d);
  std::vector<float> out(static_cast<size_t>(m * d));
  for (auto _ : state) {
    linear_attention_lookup(CView4::contiguous(q.data(), {1, 1, m, d}), CView4::contiguous(M.data(), {1, 1, d, d}),
                            View4::contiguous(out.data(), {1, 1, m, d}));
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * m * d * d);
}
BENCHMARK(BM_LinearLookupBatched)->Arg(16)->Arg(1024);

void BM_LinearEncode(benchmark::State& state) {
  const int64_t d = 128, T = state.range(0);
  const auto H = random_floats(T * d);
  std::vector<float> M(static_cast<size_t>(d * d));
  const CView4 h = CView4::contiguous(H.data(), {1, 1, T, d});
  for (auto _ : state) {
    linear_attention_encode(h, h, View4::contiguous(M.data(), {1, 1, d, d}));
    benchmark::DoNotOptimize(M.data());
  }
  set_flops(state, 2.0 * T * d * d);
}
BENCHMARK(BM_LinearEncode)->Arg(256)->Arg(4096);

void BM_SoftmaxOneQuery(benchmark::State& state) {
  const int64_t d = 128, T = state.range(0);
  const auto H = random_floats(T * d), q = random_floats(d);
  std::vector<float> out(static_cast<size_t>(d));
  const CView4 h = CView4::contiguous(H.data(), {1, 1, T, d});
  for (auto _ : state) {
    softmax_attention(CView4::contiguous(q.data(), {1, 1, 1, d}), h, h, View4::contiguous(out.data(), {1, 1, 1, d}));
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 4.0 * T * d);
}
BENCHMARK(BM_SoftmaxOneQuery)->RangeMultiplier(4)->Range(16, 16384);

void BM_SoftmaxSelfAttention(benchmark::State& state) {
  const int64_t d = 64, T = state.range(0), B = 4, H = 8;
  const auto x = random_floats(B * H * T * d);
  std::vector<float> out(x.size());
  const CView4 v = CView4::contiguous(x.data(), {B, H, T, d});
  for (auto _ : state) {
    softmax_attention(v, v, v, View4::contiguous(out.data(), {B, H, T, d}), {.causal = true});
    benchmark::DoNotOptimize(out.data());
  }
  set_flops(state, 2.0 * B * H * T * T * d);  // the causal half of 4 T^2 d
}
BENCHMARK(BM_SoftmaxSelfAttention)->Arg(512)->Arg(2048);

// GLA's intra-chunk weights of one chunk of L positions (the per-channel decay's extra work),
// forward and backward, in L1. FLOPs: the causal half of the L x L x dk product, 2 per term
// forward and 4 backward (dq and du).
void BM_GlaChunkWeights(benchmark::State& state) {
  const int64_t L = state.range(0), dk = state.range(1);
  const bool backward = state.range(2) != 0;
  const auto q = random_floats(L * dk), u = random_floats(L * dk), dw = random_floats(L * L);
  std::vector<float> g = random_floats(L * dk);
  for (float& x : g) x = std::exp(-std::abs(x) * 0.1f);
  std::vector<float> w(static_cast<size_t>(L * L)), dq(static_cast<size_t>(L * dk)), du(dq.size());
  std::vector<float> scratch(static_cast<size_t>(kernels::simd::gla_chunk_scratch_size(L, dk)));
  for (auto _ : state) {
    if (backward)
      kernels::simd::gla_chunk_weights_backward(q.data(), dk, u.data(), dk, g.data(), dw.data(), L, L, dk, dq.data(), du.data(),
                                                scratch.data());
    else
      kernels::simd::gla_chunk_weights(q.data(), dk, u.data(), dk, g.data(), L, dk, w.data(), L, scratch.data());
    benchmark::DoNotOptimize(w.data());
    benchmark::DoNotOptimize(dq.data());
  }
  set_flops(state, (backward ? 4.0 : 2.0) * L * (L + 1) / 2 * dk);
}
BENCHMARK(BM_GlaChunkWeights)->ArgNames({"L", "dk", "bwd"})->ArgsProduct({{32, 64}, {64, 128}, {0, 1}});

// GLA's per-chunk decay factors (one exp per element, cumulative products both ways, the decayed
// queries and keys) of one chunk in L1: the rest of the per-channel decay's extra work.
void BM_GlaChunkDecays(benchmark::State& state) {
  const int64_t L = state.range(0), dk = state.range(1);
  // Eight arrays in one block, each 3 cache lines further from the last modulo 4 KiB: no two
  // start at the same 4 KiB offset (a separate cost, "4K aliasing", kept out of this figure).
  const int64_t n = L * dk, stride = (n + 1023) / 1024 * 1024 + 48;
  std::vector<float> block = random_floats(8 * stride);
  float* x[8];
  for (int i = 0; i < 8; ++i) x[i] = block.data() + i * stride;
  float *logs = x[0], *q = x[1], *u = x[2], *g = x[3], *ea = x[4], *eka = x[5], *qd = x[6], *kd = x[7];
  for (int64_t i = 0; i < n; ++i) logs[i] = -std::abs(logs[i]) * 0.1f;
  std::vector<float> end(static_cast<size_t>(dk));
  for (auto _ : state) {
    kernels::simd::gla_chunk_decays(logs, dk, L, dk, q, dk, u, dk, g, ea, eka, end.data(), qd, kd);
    benchmark::DoNotOptimize(kd);
  }
  state.counters["ns_per_element"] =
      benchmark::Counter(static_cast<double>(L * dk), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_GlaChunkDecays)->ArgNames({"L", "dk"})->ArgsProduct({{32, 64}, {64, 128}});

// Random causal inputs [B, H, T, d], log decays in (-0.1, 0] (used when gla), output and
// gradient buffers.
struct CausalCase {
  std::array<int64_t, 4> shape;
  bool gla;
  std::vector<float> q, k, v, dout, decay, o, g1, g2, g3, g4;
  CausalCase(int64_t B, int64_t H, int64_t T, int64_t d, bool gla_decay) : shape{B, H, T, d}, gla(gla_decay) {
    const int64_t n = B * H * T * d;
    q = random_floats(n), k = random_floats(n), v = random_floats(n), dout = random_floats(n), decay = random_floats(n);
    for (float& x : decay) x = -std::abs(x) * 0.1f;
    for (auto* x : {&o, &g1, &g2, &g3, &g4}) x->resize(static_cast<size_t>(n));
  }
  CView4 in(const std::vector<float>& x) const { return CView4::contiguous(x.data(), shape); }
  View4 out(std::vector<float>& x) const { return View4::contiguous(x.data(), shape); }
  Decay decay_arg() const { return gla ? Decay{.kind = DecayKind::per_channel, .per_channel = in(decay)} : Decay{}; }
  CausalLinearAttentionGrads grads() {
    CausalLinearAttentionGrads g{out(g1), out(g2), out(g3)};
    if (gla) g.dper_channel = out(g4);
    return g;
  }
};

// The causal benchmarks' algorithm argument: 0 chunked, 1 recurrent, 2 automatic (which should
// run within 5% of the better of the other two).
CausalAlgorithm algorithm_arg(int64_t a) {
  return a == 0 ? CausalAlgorithm::chunked : a == 1 ? CausalAlgorithm::recurrent : CausalAlgorithm::automatic;
}

// The forward alone (B = 4, H = 8, with initial and final states), in chunks, token by token or
// automatic, against the length and the width: where CausalAlgorithm::automatic switches for the
// forward. T = 1 is one step of token-by-token inference.

void BM_CausalForward(benchmark::State& state) {
  const int64_t d = state.range(0), T = state.range(1), B = 4, H = 8;
  const CausalLinearAttentionOptions opt{.algorithm = algorithm_arg(state.range(3))};
  CausalCase c(B, H, T, d, state.range(2) != 0);
  std::vector<float> st(static_cast<size_t>(B * H * d * d));
  const View4 S = View4::contiguous(st.data(), {B, H, d, d});
  auto run = [&] {
    causal_linear_attention(c.in(c.q), c.in(c.k), c.in(c.v), c.out(c.o), c.decay_arg(), opt, {.initial_state = S}, {.final_state = S});
  };
  run();  // untimed: automatic's first use of a kind measures its choice
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(c.o.data());
  }
  set_flops(state, 2.0 * B * H * T * (64.0 * d + 2.0 * d * d));
}
BENCHMARK(BM_CausalForward)
    ->ArgNames({"d", "T", "gla", "algorithm"})
    ->ArgsProduct({{64, 128}, {1, 4, 8, 16, 64, 128, 256, 1024}, {0, 1}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

// The backward alone (B = 4, H = 8), in chunks or token by token, against the length and the
// width: where CausalAlgorithm::automatic switches for the backward. FLOPs: 2F (docs/math.md).
void BM_CausalBackward(benchmark::State& state) {
  const int64_t d = state.range(0), T = state.range(1), B = 4, H = 8;
  const char* threads = std::getenv("LINATTN_THREADS");
  set_num_threads(threads ? std::atoi(threads) : 1);
  const CausalLinearAttentionOptions opt{.algorithm = algorithm_arg(state.range(3))};
  CausalCase c(B, H, T, d, state.range(2) != 0);
  const CausalLinearAttentionGrads grads = c.grads();
  auto run = [&] { causal_linear_attention_backward(c.in(c.q), c.in(c.k), c.in(c.v), c.in(c.dout), grads, c.decay_arg(), opt); };
  run();  // untimed: automatic's first use of a kind measures its choice
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(c.g1.data());
  }
  set_flops(state, 2.0 * 2.0 * B * H * T * (64.0 * d + 2.0 * d * d));
  set_num_threads(1);
}
BENCHMARK(BM_CausalBackward)
    ->ArgNames({"d", "T", "gla", "algorithm"})
    ->ArgsProduct({{64, 128}, {1, 8, 16, 32, 64, 256, 4096}, {0, 1}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond);

// Causal linear attention at the set-up (B = 4, H = 8, T = 4,096), forward or
// forward+backward, no decay or per-channel (GLA) decay; with saved, the forward saves its
// chunk-start states (causal_chunk_states_shape) and the backward reads them instead of
// recomputing them. Threads: LINATTN_THREADS (default 1).
// FLOPs as docs/math.md counts them: F = 2 B H T (64 d + 2 d^2), 3F with the backward.
void BM_Causal(benchmark::State& state) {
  const int64_t d = state.range(0), B = 4, H = 8, T = 4096;
  const bool backward = state.range(2) != 0, saved = state.range(3) != 0;
  const char* threads = std::getenv("LINATTN_THREADS");
  set_num_threads(threads ? std::atoi(threads) : 1);
  CausalCase c(B, H, T, d, state.range(1) != 0);
  const CausalLinearAttentionGrads grads = c.grads();
  const auto shape = causal_chunk_states_shape(c.in(c.q), c.in(c.v));
  std::vector<float> states(saved ? static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]) : 0);
  const View4 S = saved ? View4::contiguous(states.data(), shape) : View4{};
  for (auto _ : state) {
    causal_linear_attention(c.in(c.q), c.in(c.k), c.in(c.v), c.out(c.o), c.decay_arg(), {}, {}, {.chunk_states = S});
    if (backward)
      causal_linear_attention_backward(c.in(c.q), c.in(c.k), c.in(c.v), c.in(c.dout), grads, c.decay_arg(), {}, {},
                                       {.chunk_states = S});
    benchmark::DoNotOptimize(c.o.data());
  }
  set_flops(state, (backward ? 3.0 : 1.0) * 2.0 * B * H * T * (64.0 * d + 2.0 * d * d));
  set_num_threads(1);
}
BENCHMARK(BM_Causal)
    ->ArgNames({"d", "gla", "bwd", "saved"})
    ->ArgsProduct({{64, 128}, {0, 1}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

// The chunk size L against the width (B = 4, H = 8, T = 4,096, chunked, one thread unless
// LINATTN_THREADS): where CausalLinearAttentionOptions::chunk_size's default comes from.
// Chunks cost 2 L d (intra-chunk products) + 4 d^2 (state) FLOPs per position and step forward,
// so a smaller L does less work but in smaller, less efficient matrix products.
void BM_CausalChunkSize(benchmark::State& state) {
  const int64_t d = state.range(0), L = state.range(1), B = 4, H = 8, T = 4096;
  const bool backward = state.range(3) != 0;
  const char* threads = std::getenv("LINATTN_THREADS");
  set_num_threads(threads ? std::atoi(threads) : 1);
  const CausalLinearAttentionOptions opt{.chunk_size = L, .algorithm = CausalAlgorithm::chunked};
  CausalCase c(B, H, T, d, state.range(2) != 0);
  const CausalLinearAttentionGrads grads = c.grads();
  for (auto _ : state) {
    causal_linear_attention(c.in(c.q), c.in(c.k), c.in(c.v), c.out(c.o), c.decay_arg(), opt);
    if (backward) causal_linear_attention_backward(c.in(c.q), c.in(c.k), c.in(c.v), c.in(c.dout), grads, c.decay_arg(), opt);
    benchmark::DoNotOptimize(c.o.data());
  }
  set_flops(state, (backward ? 3.0 : 1.0) * 2.0 * B * H * T * (64.0 * d + 2.0 * d * d));
  set_num_threads(1);
}
BENCHMARK(BM_CausalChunkSize)
    ->ArgNames({"d", "L", "gla", "bwd"})
    ->ArgsProduct({{64, 128}, {16, 32, 48, 64, 96, 128}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  linattn::set_num_threads(1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
