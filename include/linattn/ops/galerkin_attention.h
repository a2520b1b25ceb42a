// Galerkin attention (Cao 2021, docs/math.md): attention without a softmax whose keys and values
// are layer-normalised, so the fixed-size state is their mean outer product:
//   K~ = LN(K), V~ = LN(V) row by row (mean 0 and variance 1 over the features, no affine part:
//   a model applies its own scale and shift around it),   M = K~^T V~ / n,   out_i = M^T q_i
// Encoding costs O(n dk dv), a lookup O(dk dv) whatever n is, like linear attention (it is linear
// attention on the normalised rows with the mean read-out).
//
// Shapes ([batch B, heads H, positions T, features d]; last dimension contiguous):
//   q [B, H, Tq, dk]   k [B, H, T, dk]   v [B, H, T, dv]   out [B, H, Tq, dv]
//   lengths [B] (optional): positions t >= n_b of k and v are padding and never read; n = n_b
//   (an empty sequence, n_b = 0, answers 0).
// eps is layer norm's: x~ = (x - mean) / sqrt(var + eps).
#pragma once

#include <cstdint>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

inline constexpr float kGalerkinEps = 1e-5f;

// out = q (K~^T V~) / n. out must not share memory with q, k or v.
void galerkin_attention(CView4 q, CView4 k, CView4 v, View4 out, Lengths lengths = {}, float eps = kGalerkinEps);

// The gradients of galerkin_attention given dout [B, H, Tq, dv]: dq, dk, dv of the shapes of q, k,
// v (padded positions get 0). The gradients must not share memory with the inputs.
void galerkin_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv,
                                 Lengths lengths = {}, float eps = kGalerkinEps);

// The layer norm of every row of x [B, H, T, d] into out (the same shape; out may be x), rows
// t >= lengths[b] set to 0: the keys and values a Galerkin memory is written from.
void galerkin_normalize_rows(CView4 x, View4 out, Lengths lengths = {}, float eps = kGalerkinEps);

}  // namespace linattn
