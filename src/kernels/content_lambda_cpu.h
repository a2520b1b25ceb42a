// Content lambda's softmax over positions, one per key channel, and its backward, for one
// (batch, head) (ops/content_lambda.h checks the arguments; the products with V are linear
// attention's GEMMs).
#pragma once

#include <cstdint>

namespace linattn::kernels {

// w[t, i] = exp(k[t, i] - max_t k[:, i]) / sum_s exp(k[s, i] - max): k [n, dk] at row stride ldk,
// w [n, dk] at row stride ldw.
void content_lambda_weights(const float* k, int64_t ldk, int64_t n, int64_t dk, float* w, int64_t ldw);

// dk[t, i] = w[t, i] (dw[t, i] - sum_s w[s, i] dw[s, i]); dk may be dw (same stride ld).
void content_lambda_weights_backward(const float* w, int64_t ldw, const float* dw, int64_t n, int64_t dk, float* dk_out,
                                     int64_t ld);

}  // namespace linattn::kernels
