// CPU kernels of (non-causal) linear attention: encode a sequence into a fixed-size state, and
// look queries up in it. Arguments are validated by ops/linear_attention.h.
#pragma once

#include <cstdint>
#include <span>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn::kernels {

// state[b,h] (+)= sum_{t < n_b} g_t phi(k_t) v_t^T      k [B,H,T,dk], v [B,H,T,dv]
// normalizer[b,h] (+)= sum_{t < n_b} g_t phi(k_t)       state [B,H,dk,dv], normalizer [B,H,dk]
// gates [B,H,T] or absent (g_t = 1); normalizer may be absent; lengths empty: n_b = T.
void linear_attention_encode_cpu(CView4 k, CView4 v, CView3 gates, std::span<const int64_t> lengths,
                                 FeatureMap phi, bool accumulate, View4 state, View3 normalizer);

// out[b,h,i] = scale_b * state[b,h]^T phi(q_i)   [ / (normalizer[b,h] . phi(q_i) + eps) ]
//   q [B,H,Tq,dk], state [B,H,dk,dv], out [B,H,Tq,dv]
// scale_b = scale / token_counts[b] when token_counts is given (0 when that count is 0), else
// scale. normalizer present means normalise. Rows i >= q_len[b] are padding and get 0.
void linear_attention_lookup_cpu(CView4 q, CView4 state, CView3 normalizer, float eps, float scale,
                                 std::span<const int64_t> token_counts,
                                 std::span<const int64_t> q_len, FeatureMap phi, View4 out);

// Backward of linear_attention_encode_cpu, given dstate [B,H,dk,dv] and (optionally)
// dnormalizer [B,H,dk]: dk, dv [B,H,T,*] and dgates [B,H,T] (when gates are given) are
// overwritten; padded positions get 0.
void linear_attention_encode_backward_cpu(CView4 k, CView4 v, CView3 gates, std::span<const int64_t> lengths,
                                          FeatureMap phi, CView4 dstate, CView3 dnormalizer, View4 dk,
                                          View4 dv, View3 dgates);

// Backward of linear_attention_lookup_cpu: dq [B,H,Tq,dk], dstate [B,H,dk,dv] and, when
// normalising, dnormalizer [B,H,dk] are overwritten.
void linear_attention_lookup_backward_cpu(CView4 q, CView4 state, CView3 normalizer, float eps, float scale,
                                          std::span<const int64_t> token_counts, std::span<const int64_t> q_len,
                                          FeatureMap phi, CView4 dout, View4 dq, View4 dstate, View3 dnormalizer);

}  // namespace linattn::kernels
