// Row-wise layer norm without an affine part, forward and backward (Galerkin attention's keys
// and values): y = (x - mean) / sqrt(var + eps) over a row of n numbers.
#pragma once

#include <cstdint>

namespace linattn::kernels {

// y may be x. Returns 1 / sqrt(var + eps), which the backward needs.
float layer_norm_row(const float* x, float* y, int64_t n, float eps);

// dx = inv_std (dy - mean(dy) - y mean(dy (*) y)), y the forward's output. dx may be dy.
void layer_norm_row_backward(const float* y, const float* dy, float* dx, int64_t n, float inv_std);

}  // namespace linattn::kernels
