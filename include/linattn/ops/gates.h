// The paper's gates (docs/math.md): they choose what enters the fixed-size memory.
// Rows are vectors: h [N, d] holds N hidden states (flatten batch and time into N).
//
//   scalar gate: g_n = sigmoid(w . h_n + b); the gated state is g_n h_n, so with keys = values
//                = h the memory is C = sum_n g_n^2 h_n h_n^T (encode with gates = g^2).
//   vector gate: h~_n = sigmoid(W h_n + b) (*) h_n, C = sum_n h~_n h~_n^T.
// The authors initialise w = 0 (W = 0) and b = 1: every gate starts at sigmoid(1) = 0.73.
#pragma once

#include "linattn/core/view.h"

namespace linattn {

// h [N, d], w [d] -> g [N]
void scalar_gate(CView2 h, CView1 w, float b, View1 g);

// h [N, d], w [d, d], b [d] -> out [N, d]; gate [N, d] (optional) receives sigmoid(W h + b).
// out may be h itself.
void vector_gate(CView2 h, CView2 w, CView1 b, View2 out, View2 gate = {});

// Backward of scalar_gate given its output g and dg: writes dh [N,d], dw [d], *db.
void scalar_gate_backward(CView2 h, CView1 w, CView1 g, CView1 dg, View2 dh, View1 dw, float* db);

// Backward of vector_gate given the gate values it wrote and dout: writes dh [N,d], dw [d,d],
// db [d].
void vector_gate_backward(CView2 h, CView2 w, CView2 gate, CView2 dout, View2 dh, View2 dw, View1 db);

}  // namespace linattn
