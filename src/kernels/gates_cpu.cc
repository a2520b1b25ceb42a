#include "linattn/kernels/gates_cpu.h"

#include <algorithm>
#include <vector>

#include "linattn/kernels/gemm.h"
#include "linattn/kernels/parallel.h"
#include "linattn/kernels/simd.h"

namespace linattn::kernels {
namespace {
constexpr int64_t kRowBlock = 256;
}

void scalar_gate_cpu(CView2 h, CView1 w, float b, View1 g) {
  const int64_t N = h.shape[0], d = h.shape[1];
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, [&](int64_t blk, int) {
    const int64_t n0 = blk * kRowBlock, n1 = std::min(N, n0 + kRowBlock);
    for (int64_t n = n0; n < n1; ++n) {
      float x = simd::dot(&h(n, 0), w.data, d) + b;
      simd::sigmoid(&x, &x, 1);
      g(n) = x;
    }
  });
}

void vector_gate_cpu(CView2 h, CView2 w, CView1 b, View2 out, View2 gate) {
  const int64_t N = h.shape[0], d = h.shape[1];
  const int64_t blocks = (N + kRowBlock - 1) / kRowBlock;
  parallel_for(blocks, [&](int64_t blk, int) {
    const int64_t n0 = blk * kRowBlock, rows = std::min(N, n0 + kRowBlock) - n0;
    // Pre-activations go to scratch first, so that out may alias h.
    thread_local std::vector<float> s;  // per worker, kept across calls
    s.resize(static_cast<size_t>(rows * d));
    gemm(false, true, rows, d, d, 1.f, &h(n0, 0), h.stride[0], w.data, w.stride[0], 0.f, s.data(), d);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = s.data() + r * d;
      simd::axpy(1.f, b.data, row, d);
      simd::sigmoid(row, row, d);
      if (gate.present()) std::copy_n(row, d, &gate(n0 + r, 0));
      simd::mul(&h(n0 + r, 0), row, d);
      std::copy_n(row, d, &out(n0 + r, 0));
    }
  });
}

}  // namespace linattn::kernels
