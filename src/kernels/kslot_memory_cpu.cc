#include "kernels/kslot_memory_cpu.h"

#include <algorithm>
#include <cmath>

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
    const float mx = *std::max_element(row, row + K);  // subtracted: no exp overflows
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(row[k] - mx));
    for (int64_t k = 0; k < K; ++k) {
      const double p = std::exp(static_cast<double>(row[k] - mx)) / sum;
      w[t * ldw + k] = static_cast<float>(position_encoding ? p * position_weight(t, n, k, K) : p);
    }
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
