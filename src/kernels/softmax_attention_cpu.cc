#include "kernels/softmax_attention_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"
#include "kernels/simd.h"

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

namespace {

void zero_rows(float* p, int64_t rows, int64_t ld, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) std::fill_n(p + r * ld, cols, 0.f);
}

// Per-thread accumulators of the additive scorer's parameter gradients.
struct ParamGrads {
  std::vector<float> w_k, w_q, bias, w;
};

}  // namespace

void softmax_attention_backward_cpu(CView4 q, CView4 k, CView4 v, CView4 out, CView3 lse, CView4 dout,
                                    View4 dq, View4 dk, View4 dv, std::span<const int64_t> kv_len,
                                    std::span<const int64_t> q_len, bool causal, float scale,
                                    const AdditiveScorerView* additive, const AdditiveScorerGradView* dadditive) {
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], Tk = k.shape[2];
  const int64_t dqw = q.shape[3], dkw = k.shape[3], dvw = v.shape[3];
  const int64_t A = additive ? additive->w.shape[0] : 0;
  std::vector<ParamGrads> param_grads(static_cast<size_t>(additive ? num_threads() : 0));
  for (ParamGrads& g : param_grads) {
    g.w_k.assign(static_cast<size_t>(A * dkw), 0.f);
    g.w_q.assign(static_cast<size_t>(A * dqw), 0.f);
    g.bias.assign(static_cast<size_t>(A), 0.f);
    g.w.assign(static_cast<size_t>(A), 0.f);
  }

  // One job per (b, h): dk and dv of a sequence collect contributions from every query block.
  parallel_for(B * H, [&](int64_t job, int thread) {
    const int64_t b = job / H, h = job % H;
    const int64_t n_keys = kv_len.empty() ? Tk : kv_len[static_cast<size_t>(b)];
    const int64_t n_queries = q_len.empty() ? Tq : q_len[static_cast<size_t>(b)];
    zero_rows(&dq(b, h, 0, 0), Tq, dq.stride[2], dqw);
    zero_rows(&dk(b, h, 0, 0), Tk, dk.stride[2], dkw);
    zero_rows(&dv(b, h, 0, 0), Tk, dv.stride[2], dvw);
    thread_local std::vector<float> P, dP, D, q_proj, k_proj, dq_proj, dk_proj, tanh_cache;
    P.resize(static_cast<size_t>(kQueryBlock * kKeyBlock));
    dP.resize(P.size());
    D.resize(static_cast<size_t>(kQueryBlock));
    if (additive) {
      q_proj.resize(static_cast<size_t>(kQueryBlock * A));
      k_proj.resize(static_cast<size_t>(kKeyBlock * A));
      dq_proj.resize(q_proj.size());
      dk_proj.resize(k_proj.size());
      tanh_cache.resize(static_cast<size_t>(A));
    }
    for (int64_t i0 = 0; i0 < n_queries; i0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, n_queries - i0);
      const int64_t key_end = causal ? std::min(n_keys, i0 + rows) : n_keys;
      const float* q_ptr = &q(b, h, i0, 0);
      const float* do_ptr = &dout(b, h, i0, 0);
      // D_i = dout_i . out_i: the softmax backward's row term.
      for (int64_t r = 0; r < rows; ++r) D[r] = simd::dot(do_ptr + r * dout.stride[2], &out(b, h, i0 + r, 0), dvw);
      if (additive) {
        gemm(false, true, rows, A, dqw, 1.f, q_ptr, q.stride[2], additive->w_q.data, additive->w_q.stride[0], 0.f,
             q_proj.data(), A);
        for (int64_t r = 0; r < rows; ++r) simd::axpy(1.f, additive->bias.data, q_proj.data() + r * A, A);
        std::fill(dq_proj.begin(), dq_proj.end(), 0.f);
      }
      for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
        const int64_t kb = std::min(kKeyBlock, key_end - j0);
        const float* k_ptr = &k(b, h, j0, 0);
        const float* v_ptr = &v(b, h, j0, 0);
        if (!additive) {
          gemm(false, true, rows, kb, dkw, scale, q_ptr, q.stride[2], k_ptr, k.stride[2], 0.f, P.data(), kKeyBlock);
        } else {
          gemm(false, true, kb, A, dkw, 1.f, k_ptr, k.stride[2], additive->w_k.data, additive->w_k.stride[0], 0.f,
               k_proj.data(), A);
          std::fill(dk_proj.begin(), dk_proj.end(), 0.f);
        }
        // P = exp(S - lse) on the visible keys, 0 elsewhere.
        for (int64_t r = 0; r < rows; ++r) {
          float* p = P.data() + r * kKeyBlock;
          const int64_t limit = causal ? std::clamp<int64_t>(i0 + r + 1 - j0, 0, kb) : kb;
          if (additive)
            for (int64_t t = 0; t < limit; ++t)
              p[t] = simd::tanh_dot(q_proj.data() + r * A, k_proj.data() + t * A, additive->w.data, A);
          const float l = lse(b, h, i0 + r);
          if (limit > 0) simd::exp_shift_sum(p, limit, l);
          std::fill(p + limit, p + kb, 0.f);
        }
        // dV += P^T dO;  dP = dO V^T;  dS = P (dP - D)
        gemm(true, false, kb, dvw, rows, 1.f, P.data(), kKeyBlock, do_ptr, dout.stride[2], 1.f, &dv(b, h, j0, 0),
             dv.stride[2]);
        gemm(false, true, rows, kb, dvw, 1.f, do_ptr, dout.stride[2], v_ptr, v.stride[2], 0.f, dP.data(), kKeyBlock);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t t = 0; t < kb; ++t) {
            float& x = dP[static_cast<size_t>(r * kKeyBlock + t)];
            x = P[static_cast<size_t>(r * kKeyBlock + t)] * (x - D[r]);
          }
        if (!additive) {
          // dQ += scale dS K;  dK += scale dS^T Q
          gemm(false, false, rows, dkw, kb, scale, dP.data(), kKeyBlock, k_ptr, k.stride[2], 1.f, &dq(b, h, i0, 0),
               dq.stride[2]);
          gemm(true, false, kb, dkw, rows, scale, dP.data(), kKeyBlock, q_ptr, q.stride[2], 1.f, &dk(b, h, j0, 0),
               dk.stride[2]);
        } else {
          ParamGrads& g = param_grads[static_cast<size_t>(thread)];
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t limit = causal ? std::clamp<int64_t>(i0 + r + 1 - j0, 0, kb) : kb;
            for (int64_t t = 0; t < limit; ++t) {
              const float ds = dP[static_cast<size_t>(r * kKeyBlock + t)];
              simd::tanh_add_dot(q_proj.data() + r * A, k_proj.data() + t * A, additive->w.data, tanh_cache.data(), A);
              simd::additive_score_grad(tanh_cache.data(), additive->w.data, ds, dq_proj.data() + r * A,
                                        dk_proj.data() + t * A, g.w.data(), A);
            }
          }
          // Through W_k k: dK += dKp W_k, dW_k += dKp^T K.
          gemm(false, false, kb, dkw, A, 1.f, dk_proj.data(), A, additive->w_k.data, additive->w_k.stride[0], 1.f,
               &dk(b, h, j0, 0), dk.stride[2]);
          gemm(true, false, A, dkw, kb, 1.f, dk_proj.data(), A, k_ptr, k.stride[2], 1.f, g.w_k.data(), dkw);
        }
      }
      if (additive) {  // through W_q q + bias
        ParamGrads& g = param_grads[static_cast<size_t>(thread)];
        gemm(false, false, rows, dqw, A, 1.f, dq_proj.data(), A, additive->w_q.data, additive->w_q.stride[0], 1.f,
             &dq(b, h, i0, 0), dq.stride[2]);
        gemm(true, false, A, dqw, rows, 1.f, dq_proj.data(), A, q_ptr, q.stride[2], 1.f, g.w_q.data(), dqw);
        for (int64_t r = 0; r < rows; ++r) simd::axpy(1.f, dq_proj.data() + r * A, g.bias.data(), A);
      }
    }
  });

  if (additive) {  // reduce the per-thread parameter gradients
    for (int64_t a = 0; a < A; ++a) {
      std::fill_n(&dadditive->w_k(a, 0), dkw, 0.f);
      std::fill_n(&dadditive->w_q(a, 0), dqw, 0.f);
      dadditive->bias(a) = 0.f;
      dadditive->w(a) = 0.f;
    }
    for (const ParamGrads& g : param_grads) {
      for (int64_t a = 0; a < A; ++a) {
        simd::axpy(1.f, g.w_k.data() + a * dkw, &dadditive->w_k(a, 0), dkw);
        simd::axpy(1.f, g.w_q.data() + a * dqw, &dadditive->w_q(a, 0), dqw);
        dadditive->bias(a) += g.bias[static_cast<size_t>(a)];
        dadditive->w(a) += g.w[static_cast<size_t>(a)];
      }
    }
  }
}

}  // namespace linattn::kernels
