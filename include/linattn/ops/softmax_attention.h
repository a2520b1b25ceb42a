// Softmax attention, the baseline (docs/math.md): scaled dot-product and additive (MLP)
// scorers, per-sequence lengths, causal or not, computed in one pass with a running max.
//
// Shapes ([batch B, heads H, positions T, features d]; the last dimension contiguous):
//   q    [B, H, Tq, dq]   queries (dq = dk for the dot scorer)
//   k    [B, H, Tk, dk]   keys
//   v    [B, H, Tk, dv]   values
//   out  [B, H, Tq, dv]   r_i = sum_j softmax_j(score(q_i, k_j)) v_j over the valid keys
//   lse  [B, H, Tq]       optional output: log sum_j exp(score_ij), saved for the backward pass
//   kv_lengths [B]        optional: keys j >= kv_lengths[b] are padding and never read
//   q_lengths  [B]        optional: query rows i >= q_lengths[b] are padding; their output is 0
//
// Causal attention is self-attention: Tq == Tk, query i sees keys j <= i, and kv_lengths
// applies to the queries too (q_lengths must then be absent).
// A query with no valid key (length 0) gets out = 0 and lse = -inf.
// Non-finite inputs are not checked (see linattn/ops/validate.h): a NaN or Inf in a valid
// position makes the affected outputs non-finite, and never any other sequence's; values in
// padded positions are never read.
#pragma once

#include <cstdint>
#include <optional>

#include "linattn/core/view.h"

namespace linattn {

struct SoftmaxAttentionOptions {
  bool causal = false;
  // Scores are scale * q.k; default 1 / sqrt(dk).
  std::optional<float> scale;
};

// Dot-product scores: score(q_i, k_j) = scale * q_i . k_j.
void softmax_attention(CView4 q, CView4 k, CView4 v, View4 out,
                       const SoftmaxAttentionOptions& options = {}, Lengths kv_lengths = {},
                       Lengths q_lengths = {}, View3 lse = {});

// Parameters of the additive scorer (attention MLP of width A).
struct AdditiveScorer {
  CView2 w_k;   // [A, dk]
  CView2 w_q;   // [A, dq]
  CView1 bias;  // [A]
  CView1 w;     // [A]
};

// Additive scores: score(q_i, k_j) = w . tanh(W_k k_j + W_q q_i + bias), the authors' scorer.
// The parameters are shared by all heads.
void additive_attention(CView4 q, CView4 k, CView4 v, const AdditiveScorer& scorer, View4 out,
                        bool causal = false, Lengths kv_lengths = {}, Lengths q_lengths = {},
                        View3 lse = {});

// Gradients of the parameters of an additive scorer (same shapes as AdditiveScorer).
struct AdditiveScorerGrad {
  View2 w_k;
  View2 w_q;
  View1 bias;
  View1 w;
};

// Backward of softmax_attention: given the forward's inputs, its out and lse, and dout (the
// gradient of the loss with respect to out), writes dq, dk, dv (same shapes as q, k, v; padded
// rows get 0). The probabilities are recomputed from lse, block by block: no Tq x Tk storage.
void softmax_attention_backward(CView4 q, CView4 k, CView4 v, CView4 out, CView3 lse, CView4 dout, View4 dq,
                                View4 dk, View4 dv, const SoftmaxAttentionOptions& options = {},
                                Lengths kv_lengths = {}, Lengths q_lengths = {});

// Backward of additive_attention; also writes the scorer's parameter gradients.
void additive_attention_backward(CView4 q, CView4 k, CView4 v, const AdditiveScorer& scorer, CView4 out,
                                 CView3 lse, CView4 dout, View4 dq, View4 dk, View4 dv,
                                 const AdditiveScorerGrad& dscorer, bool causal = false,
                                 Lengths kv_lengths = {}, Lengths q_lengths = {});

}  // namespace linattn
