#include "linattn/ops/gates.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "linattn/kernels/gates_cpu.h"

namespace linattn {

void scalar_gate(CView2 h, CView1 w, float b, View1 g) {
  const detail::Checks c("linattn::scalar_gate");
  c.view("h", h, false);
  c.view("w", w, false);
  c.view("g", g, true);
  c.positive("h", h.shape[1], "width d (dimension 1)");
  c.dim("w", w, 0, h.shape[1], "the width d of h");
  c.dim("g", g, 0, h.shape[0], "the row count N of h");
  if (!std::isfinite(b)) c.fail("b", "must be finite, got " + std::to_string(b));
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
  kernels::vector_gate_cpu(h, w, b, out, gate);
}

}  // namespace linattn
