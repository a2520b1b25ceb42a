#include "kernels/gates_cpu.h"

#include <algorithm>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

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

void scalar_gate_backward_cpu(CView2 h, CView1 w, CView1 g, CView1 dg, View2 dh, View1 dw, float* db) {
  const int64_t N = h.shape[0], d = h.shape[1];
  std::fill_n(dw.data, d, 0.f);
  double db_sum = 0;
  // Sequential over rows: dw sums over all of them (N d work, small next to the GEMMs).
  for (int64_t n = 0; n < N; ++n) {
    const float gn = g(n);
    const float dpre = dg(n) * gn * (1.f - gn);  // sigmoid' = g (1 - g)
    std::fill_n(&dh(n, 0), d, 0.f);
    simd::axpy(dpre, w.data, &dh(n, 0), d);
    simd::axpy(dpre, &h(n, 0), dw.data, d);
    db_sum += dpre;
  }
  *db = static_cast<float>(db_sum);
}

void vector_gate_backward_cpu(CView2 h, CView2 w, CView2 gate, CView2 dout, View2 dh, View2 dw, View1 db) {
  const int64_t N = h.shape[0], d = h.shape[1];
  // out = s (*) h with s = sigmoid(W h + b):
  //   dpre = dout (*) h (*) s (1 - s);  dh = dout (*) s + dpre W;  dW = dpre^T h;  db = sum dpre
  std::vector<float> dpre(static_cast<size_t>(N * d));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < d; ++i) {
      const float s = gate(n, i);
      dpre[static_cast<size_t>(n * d + i)] = dout(n, i) * h(n, i) * s * (1.f - s);
      dh(n, i) = dout(n, i) * s;
    }
  gemm(false, false, N, d, d, 1.f, dpre.data(), d, w.data, w.stride[0], 1.f, dh.data, dh.stride[0]);
  gemm(true, false, d, d, N, 1.f, dpre.data(), d, h.data, h.stride[0], 0.f, dw.data, dw.stride[0]);
  std::fill_n(db.data, d, 0.f);
  for (int64_t n = 0; n < N; ++n) simd::axpy(1.f, dpre.data() + n * d, db.data, d);
}

}  // namespace linattn::kernels
