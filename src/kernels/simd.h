// Vectorised element-wise primitives, the only ISA-specific code in linattn.
//
// Implemented once with Highway in src/kernels/simd.cc, compiled there for every x86 target
// (SSE4, AVX2, AVX-512, ...) and chosen at run time for the CPU at hand: that file is the one
// dispatch point. Everything above calls these plain functions.
// Every function accepts any n >= 0 and any alignment.
#pragma once

#include <cstdint>

#include "linattn/core/types.h"

namespace linattn::kernels::simd {

// max_i x[i]; -inf when n == 0.
float max(const float* x, int64_t n);
// Whether every x[i] lies in [lo, hi] (false on any NaN): a validation pass at memory speed.
bool all_within(const float* x, int64_t n, float lo, float hi);
// x[i] = exp(x[i] - shift) in place; returns the sum of the results. Needs x[i] - shift <= 0.
float exp_shift_sum(float* x, int64_t n, float shift);
// x[i] *= a.
void scale(float* x, int64_t n, float a);
// y[i] += a * x[i].
void axpy(float a, const float* x, float* y, int64_t n);
// y[i] *= x[i].
void mul(const float* x, float* y, int64_t n);
// out[i] = x[i] / y[i] (out may be x or y).
void div(const float* x, const float* y, float* out, int64_t n);
// y[i] = x[i], with non-temporal stores for y: a write-once stream that is read back only much
// later (the forward's chunk-start states) skips reading its lines first and leaves the cache.
void stream_copy(const float* x, float* y, int64_t n);
// sum_i a[i] * b[i].
float dot(const float* a, const float* b, int64_t n);
// sum_i x[i].
float sum(const float* x, int64_t n);
// y[i] = phi(x[i]); x and y may be the same array.
void feature_map(FeatureMap phi, const float* x, float* y, int64_t n);
// dx[i] = dy[i] * phi'(x[i]) (identity: 1; relu: x > 0; elu+1: 1 for x > 0, exp(x) below).
void feature_map_grad(FeatureMap phi, const float* x, const float* dy, float* dx, int64_t n);
// y[i] = 1 / (1 + exp(-x[i])), stable for large |x|; x and y may be the same array.
void sigmoid(const float* x, float* y, int64_t n);
// sum_i w[i] * tanh(a[i] + b[i]): the additive (MLP) attention score.
float tanh_dot(const float* a, const float* b, const float* w, int64_t n);

// t[i] = tanh(a[i] + b[i]); returns sum_i w[i] t[i] (the additive score, keeping tanh for backward).
float tanh_add_dot(const float* a, const float* b, const float* w, float* t, int64_t n);
// Backward of one additive score s = w . t, t = tanh(u), given ds: du = ds * w * (1 - t^2);
// dq[i] += du[i], dk[i] += du[i], dw[i] += ds * t[i].
void additive_score_grad(const float* t, const float* w, float ds, float* dq, float* dk, float* dw,
                         int64_t n);

// bfloat16 <-> fp32. bf16 values are the upper 16 bits of an fp32; rounding is to nearest even,
// NaN stays NaN.
void bf16_to_f32(const uint16_t* x, float* y, int64_t n);
void f32_to_bf16(const float* x, uint16_t* y, int64_t n);
// y[i] += a * float(x[i]) with x in bfloat16.
void axpy_bf16(float a, const uint16_t* x, float* y, int64_t n);

// y[0, n) = sum_i x[i] * M[i, 0, n) (y = M^T x), M row-major with leading dimension ldm.
// One query against a state: M is streamed once, y stays in registers.
void gemv_t(const float* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n);
// As gemv_t with M stored in bfloat16.
void gemv_t_bf16(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n);

// y = M x, M [n, n] symmetric and stored as its packed upper triangle (row i holds M[i, i..n),
// n(n+1)/2 numbers): one query against a packed symmetric memory, every number read once.
void sym_packed_gemv(const float* packed, int64_t n, const float* x, float* y);
void sym_packed_gemv_bf16(const uint16_t* packed, int64_t n, const float* x, float* y);

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
// The products are flushed to 0 below 1e-30 (their terms are negligible, and denormals would slow
// the loops that follow). `end` is the exp of the summed logs rather than a product: it is carried
// from chunk to chunk, and products of fp32 gammas near 1 would compound their rounding over a
// long sequence.
void gla_chunk_decays(const float* logs, int64_t ldl, int64_t n, int64_t dk, const float* q, int64_t ldq, const float* u,
                      int64_t ldu, float* g, float* ea, float* eka, float* end, float* qd, float* kd);
// gla_chunk_decays' eka and kd alone, from its g: for a caller that needs them only in some cases
// (the chunked kernels, when a chunk's decays are too strong for ratios of exp(A)).
void gla_chunk_key_decays(int64_t n, int64_t dk, const float* u, int64_t ldu, const float* g, float* eka, float* kd);

// GLA's log-decay gradient for n rows of dk channels, as a running sum from the last row up:
//   acc += q[r] (*) dq[r] - u[r] (*) du[r];  out[r] = acc      for r = n - 1, ..., 0
// (each matrix at its own row stride; acc [dk] is the sum carried in and the sum after row 0 out).
void decay_gradient_rows(const float* q, int64_t ldq, const float* dq, int64_t lddq, const float* u, int64_t ldu,
                         const float* du, int64_t lddu, int64_t n, int64_t dk, float* acc, float* out, int64_t ldo);

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

// y[i] = A[i, 0, n) . x for i < m (y = A x), A row-major with leading dimension lda: the scores
// of one query against a block of keys. Four rows per pass share the loads of x.
void gemv_n(const float* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y);

// A register-only FMA loop (no memory traffic): returns the floating-point operations it
// performed (2 per lane per FMA). Timing it gives the compute roof of one core.
double fma_loop(int64_t iterations);

// The instruction set chosen for this CPU, e.g. "AVX2" or "AVX3" (AVX-512).
const char* target_name();
// Restricts dispatch to the targets in `mask` (Highway's HWY_* target bits; 0 restores the
// default). For tests that compare every target a CPU supports.
void set_targets_for_test(int64_t mask);
// Every target this CPU supports and linattn was compiled for, as Highway target bits.
int64_t supported_targets();

}  // namespace linattn::kernels::simd
