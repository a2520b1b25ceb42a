#include "linattn/ops/galerkin_attention.h"

#include <cmath>
#include <string>
#include <vector>

#include "core/checks.h"
#include "kernels/layer_norm_cpu.h"
#include "linattn/ops/linear_attention.h"

namespace linattn {
namespace {

void check_inputs(const detail::Checks& c, CView4 q, CView4 k, CView4 v, Lengths lengths, float eps) {
  c.view("q", q, false);
  c.view("k", k, false);
  c.view("v", v, false);
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3];
  c.positive("k", B, "batch size (dimension 0)");
  c.positive("k", H, "head count (dimension 1)");
  c.positive("k", dk, "key width dk (dimension 3)");
  c.positive("v", v.shape[3], "value width dv (dimension 3)");
  c.dim("v", v, 0, B, "the batch size of k");
  c.dim("v", v, 1, H, "the head count of k");
  c.dim("v", v, 2, T, "the length T of k");
  c.dim("q", q, 0, B, "the batch size of k");
  c.dim("q", q, 1, H, "the head count of k");
  c.dim("q", q, 3, dk, "the key width dk of k");
  c.lengths("lengths", lengths, B, T, "the sequence length T");
  if (!(eps > 0.f) || !std::isfinite(eps)) c.fail("eps", "must be finite and > 0, got " + std::to_string(eps));
}

// The layer-normalised rows of x (padding 0) and each row's 1 / std, contiguous [B, H, T, d].
struct Normalized {
  std::vector<float> rows, inv_std;
  View4 view;
};
Normalized normalize(CView4 x, Lengths lengths, float eps) {
  const int64_t B = x.shape[0], H = x.shape[1], T = x.shape[2], d = x.shape[3];
  Normalized n;
  n.rows.assign(static_cast<size_t>(B * H * T * d), 0.f);
  n.inv_std.assign(static_cast<size_t>(B * H * T), 0.f);
  n.view = View4::contiguous(n.rows.data(), {B, H, T, d});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < (lengths.empty() ? T : lengths[static_cast<size_t>(b)]); ++t)
        n.inv_std[static_cast<size_t>((b * H + h) * T + t)] = kernels::layer_norm_row(&x(b, h, t, 0), &n.view(b, h, t, 0), d, eps);
  return n;
}

std::vector<int64_t> counts_of(Lengths lengths, int64_t B, int64_t T) {
  return lengths.empty() ? std::vector<int64_t>(static_cast<size_t>(B), T) : std::vector<int64_t>(lengths.begin(), lengths.end());
}

}  // namespace

void galerkin_normalize_rows(CView4 x, View4 out, Lengths lengths, float eps) {
  const detail::Checks c("linattn::galerkin_normalize_rows");
  c.view("x", x, false);
  c.same_shape("out", out, "x", x, true);
  c.lengths("lengths", lengths, x.shape[0], x.shape[2], "the sequence length T");
  if (!(eps > 0.f) || !std::isfinite(eps)) c.fail("eps", "must be finite and > 0, got " + std::to_string(eps));
  const int64_t B = x.shape[0], H = x.shape[1], T = x.shape[2], d = x.shape[3];
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        if (t < (lengths.empty() ? T : lengths[static_cast<size_t>(b)])) kernels::layer_norm_row(&x(b, h, t, 0), &out(b, h, t, 0), d, eps);
        else
          for (int64_t i = 0; i < d; ++i) out(b, h, t, i) = 0.f;
      }
}

void galerkin_attention(CView4 q, CView4 k, CView4 v, View4 out, Lengths lengths, float eps) {
  const detail::Checks c("linattn::galerkin_attention");
  check_inputs(c, q, k, v, lengths, eps);
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3];
  c.same_shape("out", out, "[B, H, Tq, dv]", CView4(nullptr, {B, H, q.shape[2], dv}, {}), true);
  c.disjoint("out", out, "q", q);
  c.disjoint("out", out, "k", k);
  c.disjoint("out", out, "v", v);
  const Normalized kn = normalize(k, lengths, eps), vn = normalize(v, lengths, eps);
  std::vector<float> m(static_cast<size_t>(B * H * dk * dv));
  const View4 M = View4::contiguous(m.data(), {B, H, dk, dv});
  linear_attention_encode(kn.view, vn.view, M, {}, {}, lengths);
  const std::vector<int64_t> counts = counts_of(lengths, B, T);
  linear_attention_lookup(q, M, out, {.mean = true}, {}, counts);
}

void galerkin_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv,
                                 Lengths lengths, float eps) {
  const detail::Checks c("linattn::galerkin_attention_backward");
  check_inputs(c, q, k, v, lengths, eps);
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], kd = k.shape[3], vd = v.shape[3];
  detail::check_qkv_gradients(c, q, k, v, dout, dq, dk, dv);
  const Normalized kn = normalize(k, lengths, eps), vn = normalize(v, lengths, eps);
  std::vector<float> m(static_cast<size_t>(B * H * kd * vd)), dm(m.size());
  const View4 M = View4::contiguous(m.data(), {B, H, kd, vd}), dM = View4::contiguous(dm.data(), {B, H, kd, vd});
  linear_attention_encode(kn.view, vn.view, M, {}, {}, lengths);
  const std::vector<int64_t> counts = counts_of(lengths, B, T);
  linear_attention_lookup_backward(q, M, dout, dq, dM, {.mean = true}, {}, {}, counts);
  // Gradients of the normalised rows into dk and dv, then through each row's layer norm in place.
  linear_attention_encode_backward(kn.view, vn.view, dM, dk, dv, {}, {}, lengths);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < (lengths.empty() ? T : lengths[static_cast<size_t>(b)]); ++t) {
        const size_t row = static_cast<size_t>((b * H + h) * T + t);
        kernels::layer_norm_row_backward(&kn.view(b, h, t, 0), &dk(b, h, t, 0), &dk(b, h, t, 0), kd, kn.inv_std[row]);
        kernels::layer_norm_row_backward(&vn.view(b, h, t, 0), &dv(b, h, t, 0), &dv(b, h, t, 0), vd, vn.inv_std[row]);
      }
}

}  // namespace linattn
