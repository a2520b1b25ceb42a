// CPU kernel of softmax attention: one pass over key blocks with a running max (online softmax).
//
// Arguments are already validated by the operator (ops/softmax_attention.h). Per query block the
// working memory is a QB x KB score tile and QB running statistics: O(d) per query, never O(T).
//   q   [B, H, Tq, dq]   k [B, H, Tk, dk]   v [B, H, Tk, dv]   (last dimension contiguous)
//   out [B, H, Tq, dv]   lse [B, H, Tq] or absent
//   kv_len, q_len: valid lengths per batch entry (empty: all valid)
#pragma once

#include <cstdint>
#include <span>

#include "linattn/core/view.h"

namespace linattn::kernels {

// Parameters of the additive scorer s = w . tanh(W_k k + W_q q + bias).
struct AdditiveScorerView {
  CView2 w_k;   // [A, dk]
  CView2 w_q;   // [A, dq]
  CView1 bias;  // [A]
  CView1 w;     // [A]
};

// additive == nullptr: dot-product scores scale * q.k; otherwise the additive scorer.
void softmax_attention_cpu(CView4 q, CView4 k, CView4 v, View4 out, View3 lse,
                           std::span<const int64_t> kv_len, std::span<const int64_t> q_len,
                           bool causal, float scale, const AdditiveScorerView* additive);

// Gradients of the additive scorer's parameters (same shapes as AdditiveScorerView).
struct AdditiveScorerGradView {
  View2 w_k;
  View2 w_q;
  View1 bias;
  View1 w;
};

// Backward of softmax_attention_cpu. Recomputes the probabilities from the saved lse (never
// stores Tq x Tk weights). dq [B,H,Tq,dq], dk [B,H,Tk,dk], dv [B,H,Tk,dv] are overwritten
// (padded rows get 0); with the additive scorer, its parameter gradients are overwritten too.
void softmax_attention_backward_cpu(CView4 q, CView4 k, CView4 v, CView4 out, CView3 lse, CView4 dout,
                                    View4 dq, View4 dk, View4 dv, std::span<const int64_t> kv_len,
                                    std::span<const int64_t> q_len, bool causal, float scale,
                                    const AdditiveScorerView* additive, const AdditiveScorerGradView* dadditive);

}  // namespace linattn::kernels
