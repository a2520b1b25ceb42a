#include "recurrent_reference.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "linattn/kernels/parallel.h"
#include "linattn/kernels/simd.h"

namespace linattn::bench {
namespace simd = kernels::simd;

void recurrent_forward(CView4 q, CView4 k, CView4 v, CView4 log_decay, View4 out) {
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dk = q.shape[3], dv = v.shape[3];
  kernels::parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    std::vector<float> M(static_cast<size_t>(dk * dv), 0.f), complement(static_cast<size_t>(dk));
    for (int64_t t = 0; t < T; ++t) {
      if (log_decay.present()) {
        for (int64_t i = 0; i < dk; ++i) complement[i] = log_decay(b, h, t, i);
        simd::neg_expm1(complement.data(), complement.data(), dk);  // 1 - gamma
      }
      // The update and the read-out in one pass over M (as ggml's GLA kernel loops).
      simd::recurrent_step(M.data(), dv, dk, dv, &k(b, h, t, 0), &v(b, h, t, 0),
                           log_decay.present() ? complement.data() : nullptr, nullptr, nullptr, &q(b, h, t, 0),
                           &out(b, h, t, 0));
    }
  });
}

void recurrent_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv) {
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dkw = q.shape[3], dvw = v.shape[3];
  kernels::parallel_for(B * H, [&](int64_t job, int) {
    const int64_t b = job / H, h = job % H;
    std::vector<float> M(static_cast<size_t>(dkw * dvw), 0.f);
    for (int64_t t = 0; t < T; ++t) {  // dq_t = M_t do_t
      for (int64_t i = 0; i < dkw; ++i) simd::axpy(k(b, h, t, i), &v(b, h, t, 0), &M[i * dvw], dvw);
      simd::gemv_n(M.data(), dvw, &dout(b, h, t, 0), dkw, dvw, &dq(b, h, t, 0));
    }
    std::fill(M.begin(), M.end(), 0.f);  // now dM
    for (int64_t t = T - 1; t >= 0; --t) {
      for (int64_t i = 0; i < dkw; ++i) simd::axpy(q(b, h, t, i), &dout(b, h, t, 0), &M[i * dvw], dvw);
      simd::gemv_n(M.data(), dvw, &v(b, h, t, 0), dkw, dvw, &dk(b, h, t, 0));
      simd::gemv_t(M.data(), dvw, &k(b, h, t, 0), dkw, &dv(b, h, t, 0), dvw);
    }
  });
}

}  // namespace linattn::bench
