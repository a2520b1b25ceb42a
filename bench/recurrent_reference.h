// The token-by-token recurrence, the algorithm of the ggml and fast-transformers CPU kernels,
// written well (SIMD rows, threads over batch and heads) as the baseline the chunked kernels
// are measured against. Benchmark code, not library API.
#pragma once

#include "linattn/core/view.h"

namespace linattn::bench {

// o_t = M_t^T q_t, M_t = diag(gamma_t) M_(t-1) + k_t v_t^T; log_decay [B,H,T,dk] or absent.
void recurrent_forward(CView4 q, CView4 k, CView4 v, CView4 log_decay, View4 out);

// The backward as fused_recurrent kernels do it (fla, fast-transformers): dq_t = M_t do_t in a
// forward sweep; dk_t = dM_t v_t and dv_t = dM_t^T k_t in a reverse sweep, with
// dM_t = q_t do_t^T + diag(gamma_(t+1)) dM_(t+1); each step one pass over the state. With
// log_decay, dlog_decay_t = sum_(s >= t) (q_s (*) dq_s - k_s (*) dk_s) (no state needed).
void recurrent_backward(CView4 q, CView4 k, CView4 v, CView4 log_decay, CView4 dout, View4 dq, View4 dk, View4 dv,
                        View4 dlog_decay);

}  // namespace linattn::bench
