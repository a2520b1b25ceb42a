// CPU kernels of the paper's gates (docs/math.md, "Gated linear attention").
// Arguments are validated by ops/gates.h. Rows of h are vectors: [N, d], last dim contiguous.
#pragma once

#include "linattn/core/view.h"

namespace linattn::kernels {

// g[n] = sigmoid(h_n . w + b)           h [N,d], w [d], g [N]
void scalar_gate_cpu(CView2 h, CView1 w, float b, View1 g);

// out_n = sigmoid(W h_n + b) (*) h_n    h [N,d], W [d,d], b [d], out [N,d]
// gate [N,d] receives sigmoid(W h_n + b) when present. out may be h itself (in place).
void vector_gate_cpu(CView2 h, CView2 w, CView1 b, View2 out, View2 gate);

// Backward of scalar_gate_cpu given g (its output) and dg: dh [N,d], dw [d] and *db overwritten.
void scalar_gate_backward_cpu(CView2 h, CView1 w, CView1 g, CView1 dg, View2 dh, View1 dw, float* db);

// Backward of vector_gate_cpu given gate (its sigmoid values) and dout: dh [N,d], dw [d,d] and
// db [d] overwritten.
void vector_gate_backward_cpu(CView2 h, CView2 w, CView2 gate, CView2 dout, View2 dh, View2 dw, View1 db);

}  // namespace linattn::kernels
