// CPU kernels of causal linear attention with decay (docs/math.md):
// o_t = M_t^T phi(q_t), M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T, computed chunk
// by chunk or token by token, as CausalArgs::token_by_token says for each sequence.
// Arguments are validated, and the algorithm chosen, by ops/causal_linear_attention.cc.
//
// Decay is given in log space, a_t = log gamma_t <= 0, one value per key channel: every decay
// kind reduces to this (none: 0; per head or per step: the same value on every channel).
// Inside a chunk the cumulative log decay A_t = a_t0 + ... + a_t is used only through
// exp(A_t - A_s) with s <= t and exp(A_t), all <= 1: nothing overflows, and products of many
// gammas never underflow to a wrong value (they underflow to the 0 they nearly are).
#pragma once

#include <cstdint>
#include <span>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn::kernels {

// The log decays as a strided view [B, H, T, dk]: stride 0 along dk (and T, B) broadcasts a
// scalar per step (per head, or none). data == nullptr means no decay.
struct LogDecayView {
  const float* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_t = 0, stride_c = 0;
  bool per_channel = false;  // values differ across channels (GLA): no GEMM for the intra-chunk part;
                             // channels then contiguous (stride_c 1, as every view's last dimension)
  float at(int64_t b, int64_t h, int64_t t, int64_t c) const {
    return data ? data[offset(b, h, t) + c * stride_c] : 0.f;
  }
  int64_t offset(int64_t b, int64_t h, int64_t t) const { return b * stride_b + h * stride_h + t * stride_t; }
};

struct CausalArgs {
  CView4 q, k, v;                 // [B,H,T,dk], [B,H,T,dk], [B,H,T,dv]
  CView3 gates;                   // [B,H,T] or absent
  LogDecayView log_decay;
  std::span<const int64_t> lengths;
  FeatureMap phi = FeatureMap::identity;
  bool normalize = false;
  float eps = 1e-6f;
  int64_t chunk = 32;               // L, the operator's CausalLinearAttentionOptions::chunk_size
  std::span<const uint8_t> token_by_token;  // [B]: sequence b runs token by token (else in chunks)
  CView4 initial_state;           // [B,H,dk,dv] or absent (zeros)
  CView3 initial_normalizer;      // [B,H,dk] or absent (zeros)
};

// out [B,H,T,dv]; final_state / final_normalizer (optional) receive M and z after each
// sequence's last valid token. final_state may alias initial_state (a stream continued in place).
// chunk_states [B,H,C+1,dk*dva] (optional, C = ceil(T / chunk)): row c receives the augmented
// state [dk, dva] before position c * chunk, row ceil(n / chunk) the final one, later rows 0.
void causal_linear_attention_cpu(const CausalArgs& a, View4 out, View4 final_state, View3 final_normalizer,
                                 View4 chunk_states = {});

struct CausalGrads {
  View4 dq, dk, dv;               // same shapes as q, k, v
  View3 dgates;                   // [B,H,T] when gates are given
  View4 dlog_decay;               // [B,H,T,dk] per-channel log-decay gradient, or absent
  View4 dinitial_state;           // [B,H,dk,dv] or absent
  View3 dinitial_normalizer;      // [B,H,dk] or absent
};

// Backward: given dout [B,H,T,dv] and the gradients reaching the final state and normaliser
// (absent: 0), writes every gradient in `g`. The chunk-start states are the forward's
// chunk_states when given, else recomputed forward; never reconstructed by subtraction.
void causal_linear_attention_backward_cpu(const CausalArgs& a, CView4 dout, CView4 dfinal_state,
                                          CView3 dfinal_normalizer, const CausalGrads& g,
                                          CView4 chunk_states = {});

}  // namespace linattn::kernels
