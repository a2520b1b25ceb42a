#include "kernels/kslot_memory_cpu.h"

#include <algorithm>
#include <cmath>

#include "kernels/simd.h"

namespace linattn::kernels {
namespace {

// l_tk for t = t0 + 1 of n, k = k0 + 1 of K.
double position_weight(int64_t t0, int64_t n, int64_t k0, int64_t K) {
  const double a = static_cast<double>(k0 + 1) / static_cast<double>(K), b = static_cast<double>(t0 + 1) / static_cast<double>(n);
  return (1 - a) * (1 - b) + a * b;
}

}  // namespace

void kslot_weights(const float* s, int64_t lds, int64_t n, int64_t K, bool position_encoding, float* w, int64_t ldw) {
  for (int64_t t = 0; t < n; ++t) {
    const float* row = s + t * lds;
    float* out = w + t * ldw;
    const float mx = *std::max_element(row, row + K);  // subtracted: no exp overflows
    std::copy(row, row + K, out);
    // The vectorised exp: scalar std::exp dominated the encode (docs/math.md has the figures).
    const float inv = 1.f / simd::exp_shift_sum(out, K, mx);
    for (int64_t k = 0; k < K; ++k)
      out[k] = position_encoding ? static_cast<float>(out[k] * inv * position_weight(t, n, k, K)) : out[k] * inv;
  }
}

void kslot_weights_backward(const float* p, int64_t ldp, const float* dw, int64_t n, int64_t K, bool position_encoding,
                            float* ds, int64_t ld) {
  for (int64_t t = 0; t < n; ++t) {
    double pg = 0;
    for (int64_t k = 0; k < K; ++k) {
      const double g = position_encoding ? dw[t * ld + k] * position_weight(t, n, k, K) : dw[t * ld + k];
      pg += p[t * ldp + k] * g;
    }
    for (int64_t k = 0; k < K; ++k) {
      const double g = position_encoding ? dw[t * ld + k] * position_weight(t, n, k, K) : dw[t * ld + k];
      ds[t * ld + k] = static_cast<float>(p[t * ldp + k] * (g - pg));
    }
  }
}

}  // namespace linattn::kernels
