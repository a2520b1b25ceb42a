// LambdaNetworks' content lambda (Bello 2021, docs/math.md): the keys are normalised by a softmax
// over positions, one per key channel, and summarise the values into a fixed-size lambda that
// every query reads:
//   w[t, i] = exp(k[t, i]) / sum_s exp(k[s, i])      (a softmax over t, for each channel i)
//   lambda = w^T V   [dk, dv],      out_i = lambda^T q_i
// Fixed size (dk x dv whatever T is), constant-time lookups, and mergeable: two pieces' lambdas
// combine exactly given each channel's running maximum and exp-sum (the softmax's own state).
//
// Shapes ([batch B, heads H, positions T, features d]; last dimension contiguous):
//   q [B, H, Tq, dk]   k [B, H, T, dk]   v [B, H, T, dv]   out [B, H, Tq, dv]   lambda [B, H, dk, dv]
//   lengths [B] (optional): positions t >= n_b of k and v are padding, never read (an empty
//   sequence has lambda = 0 and answers 0).
#pragma once

#include <cstdint>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn {

// lambda = softmax_T(K)^T V (the fixed-size state). O(T dk dv).
void content_lambda_encode(CView4 k, CView4 v, View4 lambda, Lengths lengths = {});

// out = q lambda for every query: out_i = lambda^T q_i. out must not share memory with q or k,
// v. O(Tq dk dv), without the sequence.
void content_lambda_attention(CView4 q, CView4 k, CView4 v, View4 out, Lengths lengths = {});

// The gradients of content_lambda_attention given dout [B, H, Tq, dv]: dq, dk, dv of the shapes
// of q, k, v (padded positions get 0); they must not share memory with the inputs.
void content_lambda_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv,
                                       Lengths lengths = {});

}  // namespace linattn
