#include "linattn/ops/gates.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "kernels/gates_cpu.h"

namespace linattn {

using detail::extent;

void scalar_gate(CView2 h, CView1 w, float b, View1 g) {
  const detail::Checks c("linattn::scalar_gate");
  c.view("h", h, false);
  c.view("w", w, false);
  c.view("g", g, true);
  c.positive("h", h.shape[1], "width d (dimension 1)");
  c.dim("w", w, 0, h.shape[1], "the width d of h");
  c.dim("g", g, 0, h.shape[0], "the row count N of h");
  if (!std::isfinite(b)) c.fail("b", "must be finite, got " + std::to_string(b));
  c.apart({extent("g", g)}, {extent("h", h), extent("w", w)});
  kernels::scalar_gate_cpu(h, w, b, g);
}

void vector_gate(CView2 h, CView2 w, CView1 b, View2 out, View2 gate) {
  const detail::Checks c("linattn::vector_gate");
  c.view("h", h, false);
  c.view("w", w, false);
  c.view("b", b, false);
  c.view("out", out, true);
  const int64_t N = h.shape[0], d = h.shape[1];
  c.positive("h", d, "width d (dimension 1)");
  c.dim("w", w, 0, d, "the width d of h");
  c.dim("w", w, 1, d, "the width d of h");
  c.dim("b", b, 0, d, "the width d of h");
  c.dim("out", out, 0, N, "the row count N of h");
  c.dim("out", out, 1, d, "the width d of h");
  if (gate.present()) {
    c.view("gate", gate, true);
    c.dim("gate", gate, 0, N, "the row count N of h");
    c.dim("gate", gate, 1, d, "the width d of h");
  }
  // out may be h itself (each block of rows is read whole before it is written), nothing else.
  if ((out.data != h.data || (N > 1 && out.stride[0] != h.stride[0])) && spans_meet(out, h))
    c.fail("out", "overlaps h without being h itself (not supported)");
  c.apart({extent("out", out), extent("gate", gate)}, {extent("w", w), extent("b", b)});
  c.apart({extent("gate", gate)}, {extent("h", h)});
  kernels::vector_gate_cpu(h, w, b, out, gate);
}

void scalar_gate_backward(CView2 h, CView1 w, CView1 g, CView1 dg, View2 dh, View1 dw, float* db) {
  const detail::Checks c("linattn::scalar_gate_backward");
  c.view("h", h, false);
  c.positive("h", h.shape[1], "width d (dimension 1)");
  c.same_shape("w", w, "a row of h", CView1(nullptr, {h.shape[1]}, {1}), false);
  c.same_shape("g", g, "the row count of h", CView1(nullptr, {h.shape[0]}, {1}), false);
  c.same_shape("dg", dg, "g", g, false);
  c.same_shape("dh", dh, "h", h, true);
  c.same_shape("dw", dw, "w", w, true);
  if (!db) c.fail("db", "is null");
  c.apart({extent("dh", dh), extent("dw", dw), extent("db", CView1(db, {1}, {1}))},
          {extent("h", h), extent("w", w), extent("g", g), extent("dg", dg)});
  kernels::scalar_gate_backward_cpu(h, w, g, dg, dh, dw, db);
}

void vector_gate_backward(CView2 h, CView2 w, CView2 gate, CView2 dout, View2 dh, View2 dw, View1 db) {
  const detail::Checks c("linattn::vector_gate_backward");
  c.view("h", h, false);
  const int64_t d = h.shape[1];
  c.positive("h", d, "width d (dimension 1)");
  c.view("w", w, false);
  c.dim("w", w, 0, d, "the width d of h");
  c.dim("w", w, 1, d, "the width d of h");
  c.same_shape("gate", gate, "h", h, false);
  c.same_shape("dout", dout, "h", h, false);
  c.same_shape("dh", dh, "h", h, true);
  c.same_shape("dw", dw, "w", w, true);
  c.view("db", db, true);
  c.dim("db", db, 0, d, "the width d of h");
  c.apart({extent("dh", dh), extent("dw", dw), extent("db", db)},
          {extent("h", h), extent("w", w), extent("gate", gate), extent("dout", dout)});
  kernels::vector_gate_backward_cpu(h, w, gate, dout, dh, dw, db);
}

}  // namespace linattn
