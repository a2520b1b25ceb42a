// Linear attention (docs/math.md): drop the softmax and attention becomes a fixed-size state.
//   r = sum_t (q . k_t) v_t = (sum_t v_t k_t^T) q = M^T q
// Encode builds M (and the normaliser z) once per sequence, in O(T dk dv); every lookup then
// costs O(dk dv) whatever T is. The kernelised form of Katharopoulos et al. (2020) replaces
// q and k by phi(q) and phi(k) and may normalise by z . phi(q).
//
// Shapes ([batch B, heads H, positions T, features d]; the last dimension contiguous):
//   k      [B, H, T, dk]    keys          v [B, H, T, dv] values
//   gates  [B, H, T]        optional per-step weights g_t (e.g. the paper's g_t^2, ops/gates.h)
//   state  [B, H, dk, dv]   M = sum_{t < n_b} g_t phi(k_t) v_t^T
//   normalizer [B, H, dk]   z = sum_{t < n_b} g_t phi(k_t)
//   lengths [B]             optional: positions t >= n_b are padding and never read
//   q      [B, H, Tq, dk]   queries       out [B, H, Tq, dv]
#pragma once

#include <cstdint>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

struct LinearEncodeOptions {
  FeatureMap feature_map = FeatureMap::identity;
  // Add to the state (and normaliser) already there instead of overwriting it: incremental
  // encoding, so encoding [0, t) then [t, T) equals encoding [0, T).
  bool accumulate = false;
};

// M (+)= sum_t g_t phi(k_t) v_t^T and, when normalizer is given, z (+)= sum_t g_t phi(k_t).
void linear_attention_encode(CView4 k, CView4 v, View4 state, View3 normalizer = {},
                             const LinearEncodeOptions& options = {}, Lengths lengths = {},
                             CView3 gates = {});

struct LinearLookupOptions {
  FeatureMap feature_map = FeatureMap::identity;
  // r / (z . phi(q) + eps): needs the normaliser.
  bool normalize = false;
  float eps = 1e-6f;
  // r * scale / n_b with n_b = token_counts[b], the authors' r = 1000 C q / n (scale = 1000).
  // An empty memory (n_b = 0) gives r = 0.
  bool mean = false;
  float scale = 1.f;
};

// out_i = scale * M^T phi(q_i) [/ n_b] [/ (z . phi(q_i) + eps)], any number of queries per state.
//   normalizer [B, H, dk]: required with normalize.   token_counts [B]: required with mean.
//   q_lengths [B] optional: query rows i >= q_lengths[b] are padding and get 0.
// normalize and mean are exclusive: the normalised form is already a weighted mean.
void linear_attention_lookup(CView4 q, CView4 state, View4 out,
                             const LinearLookupOptions& options = {}, CView3 normalizer = {},
                             Lengths token_counts = {}, Lengths q_lengths = {});

// Backward of linear_attention_encode: given dstate [B,H,dk,dv] (and dnormalizer [B,H,dk] when
// the loss depends on z), writes dk, dv (shapes of k, v) and, with gates, dgates [B,H,T].
// Padded positions get 0. `accumulate` has no effect on gradients.
void linear_attention_encode_backward(CView4 k, CView4 v, CView4 dstate, View4 dk, View4 dv,
                                      const LinearEncodeOptions& options = {}, CView3 dnormalizer = {},
                                      Lengths lengths = {}, CView3 gates = {}, View3 dgates = {});

// Backward of linear_attention_lookup: given dout [B,H,Tq,dv], writes dq (shape of q), dstate
// [B,H,dk,dv] and, when normalising, dnormalizer [B,H,dk].
void linear_attention_lookup_backward(CView4 q, CView4 state, CView4 dout, View4 dq, View4 dstate,
                                      const LinearLookupOptions& options = {}, CView3 normalizer = {},
                                      View3 dnormalizer = {}, Lengths token_counts = {}, Lengths q_lengths = {});

}  // namespace linattn
