// Content lambda for one (batch, head): the softmax over positions per key channel, lambda, and
// the backward through both (ops/content_lambda.h checks the arguments).
#pragma once

#include <cstdint>

namespace linattn::kernels {

// k [n, dk] and v [n, dv] rows at strides ldk, ldv; w [n, dk] (contiguous) receives the softmax
// weights, lambda [dk, dv] (contiguous) the state. n = 0 gives lambda = 0.
void content_lambda_forward(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t n, int64_t dk,
                            int64_t dv, float* w, float* lambda);

// Given w and dlambda [dk, dv]: dk rows (stride lddk) and dv rows (stride lddv) for the n
// positions, with k's softmax backward dk = w (*) (dw - sum_t w (*) dw) per channel.
void content_lambda_backward(const float* v, int64_t ldv, const float* w, const float* dlambda, int64_t n, int64_t dk,
                             int64_t dv, float* dk_out, int64_t lddk, float* dv_out, int64_t lddv);

}  // namespace linattn::kernels
