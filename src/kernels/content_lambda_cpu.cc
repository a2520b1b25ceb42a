#include "kernels/content_lambda_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace linattn::kernels {

void content_lambda_weights(const float* k, int64_t ldk, int64_t n, int64_t dk, float* w, int64_t ldw) {
  // Per channel: its maximum over positions is subtracted, so that no exp overflows.
  std::vector<float> mx(static_cast<size_t>(dk), -std::numeric_limits<float>::infinity());
  std::vector<double> sum(static_cast<size_t>(dk), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) mx[static_cast<size_t>(i)] = std::max(mx[static_cast<size_t>(i)], k[t * ldk + i]);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) {
      const float e = std::exp(k[t * ldk + i] - mx[static_cast<size_t>(i)]);
      w[t * ldw + i] = e;
      sum[static_cast<size_t>(i)] += e;
    }
  std::vector<float> inv(static_cast<size_t>(dk));
  for (int64_t i = 0; i < dk; ++i) inv[static_cast<size_t>(i)] = static_cast<float>(1.0 / sum[static_cast<size_t>(i)]);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) w[t * ldw + i] *= inv[static_cast<size_t>(i)];
}

void content_lambda_weights_backward(const float* w, int64_t ldw, const float* dw, int64_t n, int64_t dk, float* dk_out,
                                     int64_t ld) {
  std::vector<double> wdw(static_cast<size_t>(dk), 0.0);  // sum_t w (*) dw per channel
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) wdw[static_cast<size_t>(i)] += static_cast<double>(w[t * ldw + i]) * dw[t * ld + i];
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i)
      dk_out[t * ld + i] = static_cast<float>(w[t * ldw + i] * (dw[t * ld + i] - wdw[static_cast<size_t>(i)]));
}

}  // namespace linattn::kernels
