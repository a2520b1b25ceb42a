// Vectorised primitives: element-wise maths, dot products, bf16 conversions and one-query
// products against a stored state.
//
// linattn's ISA-specific code is written once with Highway, in the per-target sources
// simd_elementwise.cc, simd_bf16_gemv.cc, causal_linear_attention_simd.cc (the causal kernels'
// own primitives, declared in causal_linear_attention_simd.h) and simd_probe.cc; each compiles
// for every x86 target (SSE4, AVX2, AVX-512, ...) and Highway picks one at run time for the CPU
// at hand. Everything above calls these plain functions.
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
// a . b, a in bf16.
float dot_bf16(const uint16_t* a, const float* b, int64_t n);
// out[r] = a[r] . b for r < 4, the a[r] in bf16: b read once for four streams (a search's
// scores of four memories).
void dot_bf16_x4(const uint16_t* const a[4], const float* b, int64_t n, float out[4]);

// y[0, n) = sum_i x[i] * M[i, 0, n) (y = M^T x), M row-major with leading dimension ldm.
// One query against a state: M is streamed once, y stays in registers.
void gemv_t(const float* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n);
// As gemv_t with M stored in bfloat16.
void gemv_t_bf16(const uint16_t* m, int64_t ldm, const float* x, int64_t k, float* y, int64_t n);

// y = M x, M [n, n] symmetric and stored as its packed upper triangle (row i holds M[i, i..n),
// n(n+1)/2 numbers): one query against a packed symmetric memory, every number read once.
void sym_packed_gemv(const float* packed, int64_t n, const float* x, float* y);
void sym_packed_gemv_bf16(const uint16_t* packed, int64_t n, const float* x, float* y);

// y[i] = A[i, 0, n) . x for i < m (y = A x), A row-major with leading dimension lda: the scores
// of one query against a block of keys. Four rows per pass share the loads of x.
void gemv_n(const float* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y);
// As gemv_n with A stored in bfloat16.
void gemv_n_bf16(const uint16_t* a, int64_t lda, const float* x, int64_t m, int64_t n, float* y);

}  // namespace linattn::kernels::simd
