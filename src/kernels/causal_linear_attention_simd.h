// The vector primitives of the causal kernels (causal_linear_attention_cpu.cc): GLA's
// intra-chunk weights and decay factors, the log-decay gradient, row scaling and the
// token-by-token recurrence step. Per-target code in causal_linear_attention_simd.cc (see
// kernels/simd.h for how it is dispatched). Every function accepts any sizes >= 0 and any
// alignment.
#pragma once

#include <cstdint>

namespace linattn::kernels::simd {

// GLA's diagonal sub-blocks, n <= 8 positions (rows of q, u, g with strides ldq, ldu, dk, so q and
// u can be an input's own rows; g[k] = gamma_k, the per-channel decay factor of step k, <= 1;
// g[0] is not read; dq and du have stride dk):
//   w[t * ldw + s] = sum_c q[t, c] u[s, c] prod_{k=s+1..t} g[k, c]   for 0 <= s <= t < n
// and its backward, accumulating dq[t] += sum_{s<=t} dw[t,s] u_s (*) E_ts and
// du[s] += sum_{t>=s} dw[t,s] q_t (*) E_ts (E_ts the product above).
void gla_block_weights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                       float* w, int64_t ldw);
void gla_block_weights_backward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                                int64_t ldw, int64_t n, int64_t dk, float* dq, float* du);

// GLA's whole intra-chunk weight matrix of n positions (any n), in sub-blocks of kGlaBlock:
//   w[t * ldw + s] = sum_c q[t, c] u[s, c] prod_{k=s+1..t} g[k, c] for s <= t, and 0 for s > t,
// with every decay factor it forms <= 1 (diagonal blocks as gla_block_weights; an off-diagonal
// block of keys ending at r splits the product at r). The backward accumulates dq and du as
// gla_block_weights_backward does, for the whole matrix. scratch: gla_chunk_scratch_size floats.
constexpr int64_t kGlaBlock = 8;
constexpr int64_t kGlaPad = 16;  // scratch rows are padded to a multiple of every lane count
constexpr int64_t gla_padded_width(int64_t dk) { return (dk + kGlaPad - 1) / kGlaPad * kGlaPad; }
int64_t gla_chunk_scratch_size(int64_t n, int64_t dk);
void gla_chunk_weights(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, int64_t n, int64_t dk,
                       float* w, int64_t ldw, float* scratch);
void gla_chunk_weights_backward(const float* q, int64_t ldq, const float* u, int64_t ldu, const float* g, const float* dw,
                                int64_t ldw, int64_t n, int64_t dk, float* dq, float* du, float* scratch);

// GLA's decay factors for one chunk of n steps from its log decays (row r at logs + r * ldl, dk
// channels, each <= 0), q and u rows with strides ldq and ldu, every other row [n, dk] dense:
//   g[r] = exp(logs[r])                      ea[r] = prod_{k<=r} g[k]      (if ea and qd)
//   eka[r] = prod_{k>r} g[k] (eka[n-1] = 1)  end = exp(sum_r logs[r])      ([dk])
//   qd[r] = q[r] (*) ea[r] (if ea and qd)    kd[r] = u[r] (*) eka[r]      (if eka and kd)
//   ku[r] = u[r] / ea[r]   (if ea, qd and ku: in the same pass, so u is read while q and the
//                           logs are; where ea flushed to 0 it is inf or NaN, for the caller to
//                           discard)
// The products are flushed to 0 below 1e-30 (their terms are negligible, and denormals would slow
// the loops that follow). `end` is the exp of the summed logs rather than a product: it is carried
// from chunk to chunk, and products of fp32 gammas near 1 would compound their rounding over a
// long sequence.
void gla_chunk_decays(const float* logs, int64_t ldl, int64_t n, int64_t dk, const float* q, int64_t ldq, const float* u,
                      int64_t ldu, float* g, float* ea, float* eka, float* end, float* qd, float* kd,
                      float* ku = nullptr);
// gla_chunk_decays' eka and kd alone, from its g: for a caller that needs them only in some cases
// (the chunked kernels, when a chunk's decays are too strong for ratios of exp(A)).
void gla_chunk_key_decays(int64_t n, int64_t dk, const float* u, int64_t ldu, const float* g, float* eka, float* kd);

// GLA's log-decay gradient for n rows of dk channels, as a running sum from the last row up:
//   acc += q[r] (*) dq[r] - u[r] (*) du[r];  out[r] = acc      for r = n - 1, ..., 0
// (each matrix at its own row stride; acc [dk] is the sum carried in and the sum after row 0 out).
void decay_gradient_rows(const float* q, int64_t ldq, const float* dq, int64_t lddq, const float* u, int64_t ldu,
                         const float* du, int64_t lddu, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo);
// The same after the ratios' last steps, in one pass: dq[r] *= ea[r] and du[r] /= ea[r] in place
// (ea [n, dk] dense), then the running sum of the scaled rows, as decay_gradient_rows.
void gla_ratio_gradient_rows(const float* q, int64_t ldq, float* dq, int64_t lddq, const float* u, int64_t ldu, float* du,
                             int64_t lddu, const float* ea, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo);

// x[r * ld + c] *= factors[r] for r < rows, c < cols: one call for a matrix scaled row by row.
void scale_rows(float* x, int64_t rows, int64_t cols, int64_t ld, const float* factors);

// One token of the recurrence on a state M [dk, dv] (row stride ldm), M read and written once:
//   M_i = gamma_i M_i + a_i b              (b [dv]; gamma_i = exp(log_decay_i), nullptr: no
//                                            decay; computed as M_i + (a_i b - (1 - gamma_i) M_i)
//                                            for gamma_i >= 1/2, one rounding at M's scale per
//                                            step, so that gammas near 1 keep their digits)
//   dots_i = M_i . x      (dots [dk])      when x is given
//   sums = sum_i w_i M_i  (sums [dv])      when w is given
// The forward reads out y = M^T phi(q) (a = u, b = v, w = phi(q)); a backward's forward sweep
// dq = M do (x = do); its reverse sweep, on dM, adds q do^T and reads dk = dM v (x = v) and
// dv = dM^T k (w = k).
void recurrent_step(float* m, int64_t ldm, int64_t dk, int64_t dv, const float* a, const float* b,
                    const float* log_decay, const float* x, float* dots, const float* w, float* sums);

}  // namespace linattn::kernels::simd
