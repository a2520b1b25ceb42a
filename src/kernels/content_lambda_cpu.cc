#include "kernels/content_lambda_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace linattn::kernels {

void content_lambda_forward(const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t n, int64_t dk,
                            int64_t dv, float* w, float* lambda) {
  // Per channel: subtract its maximum over positions so that no exp overflows.
  std::vector<float> mx(static_cast<size_t>(dk), -std::numeric_limits<float>::infinity());
  std::vector<double> sum(static_cast<size_t>(dk), 0.0);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) mx[static_cast<size_t>(i)] = std::max(mx[static_cast<size_t>(i)], k[t * ldk + i]);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) {
      const float e = std::exp(k[t * ldk + i] - mx[static_cast<size_t>(i)]);
      w[t * dk + i] = e;
      sum[static_cast<size_t>(i)] += e;
    }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) w[t * dk + i] = static_cast<float>(w[t * dk + i] / sum[static_cast<size_t>(i)]);
  std::fill_n(lambda, dk * dv, 0.f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i) {
      const float wi = w[t * dk + i];
      float* row = lambda + i * dv;
      const float* vt = v + t * ldv;
      for (int64_t j = 0; j < dv; ++j) row[j] += wi * vt[j];
    }
}

void content_lambda_backward(const float* v, int64_t ldv, const float* w, const float* dlambda, int64_t n, int64_t dk,
                             int64_t dv, float* dk_out, int64_t lddk, float* dv_out, int64_t lddv) {
  // dw[t, i] = dlambda[i, :] . v[t, :];  dv[t, :] = sum_i w[t, i] dlambda[i, :]
  std::vector<double> wdw(static_cast<size_t>(dk), 0.0);  // sum_t w (*) dw per channel
  for (int64_t t = 0; t < n; ++t) {
    const float* vt = v + t * ldv;
    float* dvt = dv_out + t * lddv;
    std::fill_n(dvt, dv, 0.f);
    for (int64_t i = 0; i < dk; ++i) {
      const float* dl = dlambda + i * dv;
      float dw = 0.f;
      for (int64_t j = 0; j < dv; ++j) dw += dl[j] * vt[j];
      const float wi = w[t * dk + i];
      for (int64_t j = 0; j < dv; ++j) dvt[j] += wi * dl[j];
      dk_out[t * lddk + i] = dw;  // dw for now; the softmax backward below
      wdw[static_cast<size_t>(i)] += static_cast<double>(wi) * dw;
    }
  }
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < dk; ++i)
      dk_out[t * lddk + i] = static_cast<float>(w[t * dk + i] * (dk_out[t * lddk + i] - wdw[static_cast<size_t>(i)]));
}

}  // namespace linattn::kernels
