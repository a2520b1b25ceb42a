#include "recurrent_reference.h"

#include <algorithm>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/causal_linear_attention_simd.h"
#include "kernels/simd.h"

namespace linattn::bench {
namespace simd = kernels::simd;

void recurrent_forward(CView4 q, CView4 k, CView4 v, CView4 log_decay, View4 out) {
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dk = q.shape[3], dv = v.shape[3];
  kernels::parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    std::vector<float> M(static_cast<size_t>(dk * dv), 0.f);
    for (int64_t t = 0; t < T; ++t) {
      // The update and the read-out in one pass over M (as ggml's GLA kernel loops).
      simd::recurrent_step(M.data(), dv, dk, dv, &k(b, h, t, 0), &v(b, h, t, 0),
                           log_decay.present() ? &log_decay(b, h, t, 0) : nullptr, nullptr, nullptr, &q(b, h, t, 0),
                           &out(b, h, t, 0));
    }
  });
}

void recurrent_backward(CView4 q, CView4 k, CView4 v, CView4 log_decay, CView4 dout, View4 dq, View4 dk, View4 dv,
                        View4 dlog_decay) {
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dkw = q.shape[3], dvw = v.shape[3];
  const bool decayed = log_decay.present();
  kernels::parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    std::vector<float> M(static_cast<size_t>(dkw * dvw), 0.f), acc(static_cast<size_t>(dkw), 0.f);
    for (int64_t t = 0; t < T; ++t) {  // M_t, and dq_t = M_t do_t in the same pass
      simd::recurrent_step(M.data(), dvw, dkw, dvw, &k(b, h, t, 0), &v(b, h, t, 0), decayed ? &log_decay(b, h, t, 0) : nullptr,
                           &dout(b, h, t, 0), &dq(b, h, t, 0), nullptr, nullptr);
    }
    std::fill(M.begin(), M.end(), 0.f);  // now dM
    for (int64_t t = T - 1; t >= 0; --t) {
      const bool decay_next = decayed && t + 1 < T;  // dM_(T-1) starts from zero
      simd::recurrent_step(M.data(), dvw, dkw, dvw, &q(b, h, t, 0), &dout(b, h, t, 0),
                           decay_next ? &log_decay(b, h, t + 1, 0) : nullptr, &v(b, h, t, 0), &dk(b, h, t, 0), &k(b, h, t, 0),
                           &dv(b, h, t, 0));
      if (decayed)
        for (int64_t i = 0; i < dkw; ++i) {
          acc[i] += q(b, h, t, i) * dq(b, h, t, i) - k(b, h, t, i) * dk(b, h, t, i);
          dlog_decay(b, h, t, i) = acc[i];
        }
    }
  });
}

}  // namespace linattn::bench
