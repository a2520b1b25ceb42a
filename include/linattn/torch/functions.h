// linattn's operators as LibTorch autograd functions: forward and backward run the core
// kernels. Tensors are float32 on the CPU (others are rejected with a clear error); lengths are
// int64 [B] tensors, or undefined for "every position is valid".
//
// Shapes follow the core operators: [batch B, heads H, positions T, features d].
#pragma once

#include <torch/torch.h>

#include "linattn/core/types.h"
#include "linattn/ops/causal_linear_attention.h"

namespace linattn::torch_ext {

// softmax(scale q.k) v over the valid keys; scale <= 0 means 1/sqrt(dk).
//   q [B,H,Tq,d], k [B,H,Tk,d], v [B,H,Tk,dv] -> [B,H,Tq,dv]
torch::Tensor softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& kv_lengths = {}, bool causal = false, double scale = 0.0);

// softmax(w . tanh(W_k k + W_q q + bias)) v: the authors' additive scorer.
//   q [B,H,Tq,dq], k [B,H,Tk,dk], v [B,H,Tk,dv]; w_k [A,dk], w_q [A,dq], bias [A], w [A]
torch::Tensor additive_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& w_k, const torch::Tensor& w_q, const torch::Tensor& bias,
                                 const torch::Tensor& w, const torch::Tensor& kv_lengths = {});

// M = sum_t g_t phi(k_t) v_t^T over the valid t: k [B,H,T,dk], v [B,H,T,dv], gates [B,H,T]
// (optional) -> M [B,H,dk,dv].
torch::Tensor linear_attention_encode(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& gates = {},
                                      const torch::Tensor& lengths = {},
                                      FeatureMap feature_map = FeatureMap::identity);

// scale * M^T phi(q) [/ n_b when counts is defined]: q [B,H,Tq,dk], M [B,H,dk,dv] -> [B,H,Tq,dv]
torch::Tensor linear_attention_lookup(const torch::Tensor& q, const torch::Tensor& state,
                                      const torch::Tensor& counts = {}, double scale = 1.0,
                                      FeatureMap feature_map = FeatureMap::identity);

// Galerkin attention, q (LN(K)^T LN(V)) / n over the valid positions (docs/math.md):
//   q [B,H,Tq,dk], k [B,H,T,dk], v [B,H,T,dv] -> [B,H,Tq,dv]; lengths [B] int64 (optional).
torch::Tensor galerkin_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                 const torch::Tensor& lengths = {});

// The content lambda, out_i = lambda^T q_i with lambda = softmax_T(K)^T V (docs/math.md): the
// shapes of galerkin_attention.
torch::Tensor content_lambda_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& lengths = {});
// lambda [B,H,dk,dv] alone, for storing; no gradient (an error when one is asked for).
torch::Tensor content_lambda_encode(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& lengths = {});

// The K-slot memory (ops/kslot_memory.h), written from the scores and values and read by the
// query scores in one: query_scores [B,H,Tq,K], scores [B,H,T,K], v [B,H,T,dv] -> [B,H,Tq,dv].
torch::Tensor kslot_memory_attention(const torch::Tensor& query_scores, const torch::Tensor& scores, const torch::Tensor& v,
                                    const torch::Tensor& lengths = {}, bool position_encoding = false);
// The memory [B,H,K,dv] alone, for storing; no gradient (an error when one is asked for).
torch::Tensor kslot_memory_encode(const torch::Tensor& scores, const torch::Tensor& v, const torch::Tensor& lengths = {},
                                  bool position_encoding = false);

// sigmoid(h w + b): h [N,d], w [d], b [1] -> [N]
torch::Tensor scalar_gate(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b);
// sigmoid(h W^T + b) * h: h [N,d], W [d,d], b [d] -> [N,d]
torch::Tensor vector_gate(const torch::Tensor& h, const torch::Tensor& w, const torch::Tensor& b);

// Causal linear attention with decay: o_t = M_t^T phi(q_t), M_t = gamma_t (*) M_(t-1) + g_t phi(k_t) v_t^T.
//   q, k [B,H,T,dk], v [B,H,T,dv] -> [B,H,T,dv]
//   decay: undefined (none); [H] fixed gammas in (0, 1] (no gradient); [B,H,T] log gammas per
//   step; [B,H,T,dk] log gammas per key channel (both <= 0, both get gradients).
//   gates [B,H,T] (optional), lengths [B] int64 (optional).
torch::Tensor causal_linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& decay = {}, const torch::Tensor& gates = {},
                                      const torch::Tensor& lengths = {}, FeatureMap feature_map = FeatureMap::identity,
                                      bool normalize = false, int64_t chunk_size = kCausalChunkSize);

}  // namespace linattn::torch_ext
