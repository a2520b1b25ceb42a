#include "linattn/kernels/linear_attention_cpu.h"

#include <algorithm>
#include <vector>

#include "linattn/kernels/gemm.h"
#include "linattn/kernels/parallel.h"
#include "linattn/kernels/simd.h"

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

}  // namespace linattn::kernels
