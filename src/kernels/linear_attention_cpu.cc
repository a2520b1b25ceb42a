#include "kernels/linear_attention_cpu.h"

#include <algorithm>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace linattn::kernels {
namespace {

// Rows of phi(k) transformed at a time: 256 x 128 floats = 128 KiB, L2-resident, and a GEMM
// with K = 256 already runs near peak.
constexpr int64_t kEncodeChunk = 256;
// Queries per job: large enough for an efficient GEMM, small enough to feed both cores.
constexpr int64_t kLookupBlock = 256;
// Below this many queries a GEMM call costs more than it computes: use row updates (a gemv).
constexpr int64_t kGemvRows = 4;

}  // namespace

void linear_attention_encode_cpu(CView4 k, CView4 v, CView3 gates, std::span<const int64_t> lengths,
                                 FeatureMap phi, bool accumulate, View4 state, View3 normalizer) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3];
  // Without a feature map or gates, keys feed the GEMM straight from the caller's memory.
  const bool direct = phi == FeatureMap::identity && !gates.present();
  parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
    float* M = &state(b, h, 0, 0);
    const int64_t ldm = state.stride[2];
    float* z = normalizer.present() ? &normalizer(b, h, 0) : nullptr;
    if (!accumulate) {
      for (int64_t i = 0; i < dk; ++i) std::fill_n(M + i * ldm, dv, 0.f);
      if (z) std::fill_n(z, dk, 0.f);
    }
    if (n == 0) return;
    if (direct) {
      const float* K = &k(b, h, 0, 0);
      gemm(true, false, dk, dv, n, 1.f, K, k.stride[2], &v(b, h, 0, 0), v.stride[2], 1.f, M, ldm);
      if (z)
        for (int64_t t = 0; t < n; ++t) simd::axpy(1.f, K + t * k.stride[2], z, dk);
      return;
    }
    thread_local std::vector<float> buf;  // per worker, kept across calls
    buf.resize(static_cast<size_t>(kEncodeChunk * dk));
    for (int64_t t0 = 0; t0 < n; t0 += kEncodeChunk) {
      const int64_t rows = std::min(kEncodeChunk, n - t0);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = buf.data() + r * dk;
        simd::feature_map(phi, &k(b, h, t0 + r, 0), row, dk);
        if (gates.present()) simd::scale(row, dk, gates(b, h, t0 + r));
        if (z) simd::axpy(1.f, row, z, dk);
      }
      gemm(true, false, dk, dv, rows, 1.f, buf.data(), dk, &v(b, h, t0, 0), v.stride[2], 1.f, M,
           ldm);
    }
  });
}

namespace {

// One block of queries [i0, i1) of sequence b, head h. buf: scratch for phi(q).
void lookup_block(CView4 q, CView4 state, CView3 normalizer, float eps, float scale,
                  std::span<const int64_t> token_counts, std::span<const int64_t> q_len, FeatureMap phi,
                  View4 out, int64_t b, int64_t h, int64_t i0, int64_t i1, std::vector<float>& buf) {
  const int64_t Tq = q.shape[2], dk = q.shape[3], dv = state.shape[3];
  const int64_t n_queries = q_len.empty() ? Tq : q_len[static_cast<size_t>(b)];
  const int64_t rows = std::max<int64_t>(0, std::min(i1, n_queries) - i0);
  const int64_t ldo = out.stride[2];
  for (int64_t i = i0 + rows; i < i1; ++i) std::fill_n(&out(b, h, i, 0), dv, 0.f);
  if (rows == 0) return;

  float alpha = scale;
  if (!token_counts.empty()) {
    const int64_t count = token_counts[static_cast<size_t>(b)];
    alpha = count > 0 ? scale / static_cast<float>(count) : 0.f;
  }
  // phi(q) rows: the caller's memory when phi is the identity, else a transformed copy.
  const float* Q = &q(b, h, i0, 0);
  int64_t ldq = q.stride[2];
  if (phi != FeatureMap::identity) {
    buf.resize(static_cast<size_t>(rows * dk));
    for (int64_t r = 0; r < rows; ++r) simd::feature_map(phi, Q + r * ldq, buf.data() + r * dk, dk);
    Q = buf.data();
    ldq = dk;
  }
  const float* M = &state(b, h, 0, 0);
  const int64_t ldm = state.stride[2];
  float* O = &out(b, h, i0, 0);
  if (rows < kGemvRows) {
    for (int64_t r = 0; r < rows; ++r) {
      simd::gemv_t(M, ldm, Q + r * ldq, dk, O + r * ldo, dv);
      if (alpha != 1.f) simd::scale(O + r * ldo, dv, alpha);
    }
  } else {
    gemm(false, false, rows, dv, dk, alpha, Q, ldq, M, ldm, 0.f, O, ldo);
  }
  if (normalizer.present()) {
    const float* z = &normalizer(b, h, 0);
    for (int64_t r = 0; r < rows; ++r)
      simd::scale(O + r * ldo, dv, 1.f / (simd::dot(Q + r * ldq, z, dk) + eps));
  }
}

}  // namespace

void linear_attention_lookup_cpu(CView4 q, CView4 state, CView3 normalizer, float eps, float scale,
                                 std::span<const int64_t> token_counts,
                                 std::span<const int64_t> q_len, FeatureMap phi, View4 out) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2];
  const int64_t blocks = (Tq + kLookupBlock - 1) / kLookupBlock;
  const int64_t jobs = B * H * blocks;
  auto job_range = [&](int64_t job, int64_t& b, int64_t& h, int64_t& i0, int64_t& i1) {
    b = job / (H * blocks);
    h = (job / blocks) % H;
    i0 = (job % blocks) * kLookupBlock;
    i1 = std::min(Tq, i0 + kLookupBlock);
  };
  parallel_for(jobs, [&](int64_t job, int) {
    thread_local std::vector<float> buf;  // phi(q), per worker, kept across calls
    int64_t b, h, i0, i1;
    job_range(job, b, h, i0, i1);
    lookup_block(q, state, normalizer, eps, scale, token_counts, q_len, phi, out, b, h, i0, i1, buf);
  });
}

void linear_attention_encode_backward_cpu(CView4 k, CView4 v, CView3 gates, std::span<const int64_t> lengths,
                                          FeatureMap phi, CView4 dstate, CView3 dnormalizer, View4 dk,
                                          View4 dv, View3 dgates) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dkw = k.shape[3], dvw = v.shape[3];
  parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
    for (int64_t t = n; t < T; ++t) {
      std::fill_n(&dk(b, h, t, 0), dkw, 0.f);
      std::fill_n(&dv(b, h, t, 0), dvw, 0.f);
      if (dgates.present()) dgates(b, h, t) = 0.f;
    }
    const float* dM = &dstate(b, h, 0, 0);
    const int64_t ldm = dstate.stride[2];
    thread_local std::vector<float> Phi, G;
    Phi.resize(static_cast<size_t>(kEncodeChunk * dkw));
    G.resize(Phi.size());
    for (int64_t t0 = 0; t0 < n; t0 += kEncodeChunk) {
      const int64_t rows = std::min(kEncodeChunk, n - t0);
      for (int64_t r = 0; r < rows; ++r) simd::feature_map(phi, &k(b, h, t0 + r, 0), Phi.data() + r * dkw, dkw);
      // G_t = dM v_t (+ dz): the gradient reaching g_t phi(k_t).
      gemm(false, true, rows, dkw, dvw, 1.f, &v(b, h, t0, 0), v.stride[2], dM, ldm, 0.f, G.data(), dkw);
      // dV_t = g_t (phi(k_t)^T dM)
      gemm(false, false, rows, dvw, dkw, 1.f, Phi.data(), dkw, dM, ldm, 0.f, &dv(b, h, t0, 0), dv.stride[2]);
      for (int64_t r = 0; r < rows; ++r) {
        float* g_row = G.data() + r * dkw;
        if (dnormalizer.present()) simd::axpy(1.f, &dnormalizer(b, h, 0), g_row, dkw);
        const float g = gates.present() ? gates(b, h, t0 + r) : 1.f;
        if (dgates.present()) dgates(b, h, t0 + r) = simd::dot(Phi.data() + r * dkw, g_row, dkw);
        if (g != 1.f) {
          simd::scale(g_row, dkw, g);
          simd::scale(&dv(b, h, t0 + r, 0), dvw, g);
        }
        simd::feature_map_grad(phi, &k(b, h, t0 + r, 0), g_row, &dk(b, h, t0 + r, 0), dkw);
      }
    }
  });
}

void linear_attention_lookup_backward_cpu(CView4 q, CView4 state, CView3 normalizer, float eps, float scale,
                                          std::span<const int64_t> token_counts, std::span<const int64_t> q_len,
                                          FeatureMap phi, CView4 dout, View4 dq, View4 dstate, View3 dnormalizer) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], dkw = q.shape[3], dvw = state.shape[3];
  // One job per (b, h): dstate sums over every query of the sequence.
  parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    const int64_t nq = q_len.empty() ? Tq : q_len[static_cast<size_t>(b)];
    float* dM = &dstate(b, h, 0, 0);
    const int64_t ldm = dstate.stride[2];
    for (int64_t i = 0; i < dkw; ++i) std::fill_n(dM + i * ldm, dvw, 0.f);
    float* dz = dnormalizer.present() ? &dnormalizer(b, h, 0) : nullptr;
    if (dz) std::fill_n(dz, dkw, 0.f);
    for (int64_t i = nq; i < Tq; ++i) std::fill_n(&dq(b, h, i, 0), dkw, 0.f);
    float alpha = scale;
    if (!token_counts.empty()) {
      const int64_t count = token_counts[static_cast<size_t>(b)];
      alpha = count > 0 ? scale / static_cast<float>(count) : 0.f;
    }
    const float* M = &state(b, h, 0, 0);
    const int64_t ldsm = state.stride[2];
    thread_local std::vector<float> X, dX, G, num;
    for (int64_t i0 = 0; i0 < nq; i0 += kLookupBlock) {
      const int64_t rows = std::min(kLookupBlock, nq - i0);
      X.resize(static_cast<size_t>(rows * dkw));
      dX.resize(X.size());
      G.resize(static_cast<size_t>(rows * dvw));
      for (int64_t r = 0; r < rows; ++r) simd::feature_map(phi, &q(b, h, i0 + r, 0), X.data() + r * dkw, dkw);
      // G_i: the gradient reaching M^T phi(q_i) (alpha, and the normalisation, folded in).
      for (int64_t r = 0; r < rows; ++r) std::copy_n(&dout(b, h, i0 + r, 0), dvw, G.data() + r * dvw);
      std::vector<float> dden;
      if (normalizer.present()) {
        const float* z = &normalizer(b, h, 0);
        num.resize(G.size());
        gemm(false, false, rows, dvw, dkw, 1.f, X.data(), dkw, M, ldsm, 0.f, num.data(), dvw);
        dden.resize(static_cast<size_t>(rows));
        for (int64_t r = 0; r < rows; ++r) {
          const float den = simd::dot(X.data() + r * dkw, z, dkw) + eps;
          float* g = G.data() + r * dvw;
          // r = alpha num / den: d num = alpha g / den, d den = -alpha (g . num) / den^2
          dden[static_cast<size_t>(r)] = -alpha * simd::dot(g, num.data() + r * dvw, dvw) / (den * den);
          simd::scale(g, dvw, alpha / den);
        }
      } else {
        for (int64_t r = 0; r < rows; ++r) simd::scale(G.data() + r * dvw, dvw, alpha);
      }
      // dX = G M^T (+ dden z^T);  dM += X^T G;  dz += sum dden X
      gemm(false, true, rows, dkw, dvw, 1.f, G.data(), dvw, M, ldsm, 0.f, dX.data(), dkw);
      gemm(true, false, dkw, dvw, rows, 1.f, X.data(), dkw, G.data(), dvw, 1.f, dM, ldm);
      if (normalizer.present())
        for (int64_t r = 0; r < rows; ++r) {
          simd::axpy(dden[static_cast<size_t>(r)], &normalizer(b, h, 0), dX.data() + r * dkw, dkw);
          simd::axpy(dden[static_cast<size_t>(r)], X.data() + r * dkw, dz, dkw);
        }
      for (int64_t r = 0; r < rows; ++r)
        simd::feature_map_grad(phi, &q(b, h, i0 + r, 0), dX.data() + r * dkw, &dq(b, h, i0 + r, 0), dkw);
    }
  });
}

}  // namespace linattn::kernels
