#include "linattn/kernels/softmax_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "linattn/kernels/gemm.h"
#include "linattn/kernels/parallel.h"
#include "linattn/kernels/simd.h"

namespace linattn::kernels {
namespace {

// Tile sizes: a 64 x 128 score tile (32 KiB) stays in L1/L2 next to the key and value blocks.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 128;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Below this many queries in a block, scores are dot products and P V is a gemv per query:
// a GEMM call with M = 1 costs more than the arithmetic.
constexpr int64_t kGemvRows = 4;

struct Scratch {
  std::vector<float> scores, row_max, row_sum, q_proj, k_proj, pv;
};

}  // namespace

void softmax_attention_cpu(CView4 q, CView4 k, CView4 v, View4 out, View3 lse,
                           std::span<const int64_t> kv_len, std::span<const int64_t> q_len,
                           bool causal, float scale, const AdditiveScorerView* additive) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], Tk = k.shape[2];
  const int64_t dq = q.shape[3], dk = k.shape[3], dv = v.shape[3];
  const int64_t A = additive ? additive->w.shape[0] : 0;
  const int64_t q_blocks = (Tq + kQueryBlock - 1) / kQueryBlock;
  parallel_for(B * H * q_blocks, [&](int64_t job, int) {
    const int64_t b = job / (H * q_blocks), h = (job / q_blocks) % H;
    const int64_t i0 = (job % q_blocks) * kQueryBlock, i1 = std::min(Tq, i0 + kQueryBlock);
    const int64_t n_keys = kv_len.empty() ? Tk : kv_len[static_cast<size_t>(b)];
    const int64_t n_queries = q_len.empty() ? Tq : q_len[static_cast<size_t>(b)];
    const int64_t ldo = out.stride[2];

    // Every output row of the block starts at 0 (padded rows stay so); lse at -inf.
    for (int64_t i = i0; i < i1; ++i) {
      std::fill_n(&out(b, h, i, 0), dv, 0.f);
      if (lse.present()) lse(b, h, i) = kNegInf;
    }
    const int64_t rows = std::min(i1, n_queries) - i0;
    if (rows <= 0) return;
    // Query i sees keys j < n_keys, and j <= i when causal.
    const int64_t key_end = causal ? std::min(n_keys, i0 + rows) : n_keys;

    // Per worker and kept across calls: no allocation (or zero-filling) per call.
    thread_local Scratch s;
    s.scores.resize(static_cast<size_t>(kQueryBlock * kKeyBlock));
    s.row_max.assign(static_cast<size_t>(rows), kNegInf);
    s.row_sum.assign(static_cast<size_t>(rows), 0.f);
    const float* q_ptr = &q(b, h, i0, 0);
    float* out_ptr = &out(b, h, i0, 0);
    if (additive) {  // W_q q + bias once per query block
      s.q_proj.resize(static_cast<size_t>(kQueryBlock * A));
      s.k_proj.resize(static_cast<size_t>(kKeyBlock * A));
      gemm(false, true, rows, A, dq, 1.f, q_ptr, q.stride[2], additive->w_q.data,
           additive->w_q.stride[0], 0.f, s.q_proj.data(), A);
      for (int64_t r = 0; r < rows; ++r)
        simd::axpy(1.f, additive->bias.data, s.q_proj.data() + r * A, A);
    }

    for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
      const int64_t kb = std::min(kKeyBlock, key_end - j0);
      const float* k_ptr = &k(b, h, j0, 0);
      float* S = s.scores.data();
      const bool few = rows < kGemvRows;
      if (!additive && few) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t limit = causal ? std::clamp<int64_t>(i0 + r + 1 - j0, 0, kb) : kb;
          simd::gemv_n(k_ptr, k.stride[2], q_ptr + r * q.stride[2], limit, dk, S + r * kKeyBlock);
          if (scale != 1.f) simd::scale(S + r * kKeyBlock, limit, scale);
        }
      } else if (!additive) {
        gemm(false, true, rows, kb, dk, scale, q_ptr, q.stride[2], k_ptr, k.stride[2], 0.f, S,
             kKeyBlock);
      } else {
        gemm(false, true, kb, A, dk, 1.f, k_ptr, k.stride[2], additive->w_k.data,
             additive->w_k.stride[0], 0.f, s.k_proj.data(), A);
      }
      for (int64_t r = 0; r < rows; ++r) {
        float* S_r = S + r * kKeyBlock;
        const int64_t limit = causal ? std::clamp<int64_t>(i0 + r + 1 - j0, 0, kb) : kb;
        if (additive)
          for (int64_t t = 0; t < limit; ++t)
            S_r[t] = simd::tanh_dot(s.q_proj.data() + r * A, s.k_proj.data() + t * A,
                                    additive->w.data, A);
        std::fill(S_r + limit, S_r + kb, 0.f);  // masked keys get probability 0
        if (limit == 0) continue;
        float& m = s.row_max[static_cast<size_t>(r)];
        const float m_new = std::max(m, simd::max(S_r, limit));
        // The first block a row sees has m = -inf: nothing to rescale (and no inf - inf).
        const float alpha = m == kNegInf ? 0.f : std::exp(m - m_new);
        const float block_sum = simd::exp_shift_sum(S_r, limit, m_new);
        float& l = s.row_sum[static_cast<size_t>(r)];
        l = l * alpha + block_sum;
        if (alpha != 1.f) simd::scale(out_ptr + r * ldo, dv, alpha);
        m = m_new;
      }
      // out += P V_block
      if (few) {
        s.pv.resize(static_cast<size_t>(dv));
        for (int64_t r = 0; r < rows; ++r) {
          simd::gemv_t(&v(b, h, j0, 0), v.stride[2], S + r * kKeyBlock, kb, s.pv.data(), dv);
          simd::axpy(1.f, s.pv.data(), out_ptr + r * ldo, dv);
        }
      } else {
        gemm(false, false, rows, dv, kb, 1.f, S, kKeyBlock, &v(b, h, j0, 0), v.stride[2], 1.f,
             out_ptr, ldo);
      }
    }

    for (int64_t r = 0; r < rows; ++r) {
      const float l = s.row_sum[static_cast<size_t>(r)];
      if (!(l > 0.f)) {  // no valid key (or a NaN sum, which the output already carries)
        if (std::isnan(l)) simd::scale(out_ptr + r * ldo, dv, l);
        if (lse.present() && std::isnan(l)) lse(b, h, i0 + r) = l;
        continue;
      }
      simd::scale(out_ptr + r * ldo, dv, 1.f / l);
      if (lse.present()) lse(b, h, i0 + r) = s.row_max[static_cast<size_t>(r)] + std::log(l);
    }
  });
}

}  // namespace linattn::kernels
