#include "kernels/layer_norm_cpu.h"

#include <cmath>

namespace linattn::kernels {

// Two passes in double: a mean far from 0 (|mean| >> std) would lose the variance's digits in
// float, and rows are short (a head's width) so the cost is the reads.
float layer_norm_row(const float* x, float* y, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mean = n ? sum / static_cast<double>(n) : 0.0;
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const double var = n ? sq / static_cast<double>(n) : 0.0;
  const double inv_std = 1.0 / std::sqrt(var + static_cast<double>(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * inv_std);
  return static_cast<float>(inv_std);
}

void layer_norm_row_backward(const float* y, const float* dy, float* dx, int64_t n, float inv_std) {
  double mean_dy = 0, mean_dy_y = 0;
  for (int64_t i = 0; i < n; ++i) {
    mean_dy += dy[i];
    mean_dy_y += static_cast<double>(dy[i]) * y[i];
  }
  if (n) {
    mean_dy /= static_cast<double>(n);
    mean_dy_y /= static_cast<double>(n);
  }
  for (int64_t i = 0; i < n; ++i) dx[i] = static_cast<float>(inv_std * (dy[i] - mean_dy - y[i] * mean_dy_y));
}

}  // namespace linattn::kernels
