#include "linattn/ops/content_lambda.h"

#include <string>
#include <vector>

#include "core/checks.h"
#include "kernels/content_lambda_cpu.h"
#include "linattn/ops/linear_attention.h"

namespace linattn {
namespace {

void check_kv(const detail::Checks& c, CView4 k, CView4 v, Lengths lengths) {
  c.view("k", k, false);
  c.view("v", v, false);
  c.positive("k", k.shape[0], "batch size (dimension 0)");
  c.positive("k", k.shape[1], "head count (dimension 1)");
  c.positive("k", k.shape[3], "key width dk (dimension 3)");
  c.positive("v", v.shape[3], "value width dv (dimension 3)");
  c.dim("v", v, 0, k.shape[0], "the batch size of k");
  c.dim("v", v, 1, k.shape[1], "the head count of k");
  c.dim("v", v, 2, k.shape[2], "the length T of k");
  c.lengths("lengths", lengths, k.shape[0], k.shape[2], "the sequence length T");
}

void check_q(const detail::Checks& c, CView4 q, CView4 k) {
  c.view("q", q, false);
  c.dim("q", q, 0, k.shape[0], "the batch size of k");
  c.dim("q", q, 1, k.shape[1], "the head count of k");
  c.dim("q", q, 3, k.shape[3], "the key width dk of k");
}

int64_t length_of(Lengths lengths, int64_t b, int64_t T) { return lengths.empty() ? T : lengths[static_cast<size_t>(b)]; }

// The softmax weights of every (b, h), contiguous [B, H, T, dk] (padding 0).
std::vector<float> weights_of(CView4 k, Lengths lengths) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3];
  std::vector<float> w(static_cast<size_t>(B * H * T * dk), 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      kernels::content_lambda_weights(k.data + b * k.stride[0] + h * k.stride[1], k.stride[2], length_of(lengths, b, T), dk,
                                      w.data() + (b * H + h) * T * dk, dk);
  return w;
}

// lambda = w^T V: linear attention's encode with the weights as keys (one GEMM per head).
std::vector<float> lambdas(const std::vector<float>& w, CView4 k, CView4 v, Lengths lengths) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3];
  std::vector<float> out(static_cast<size_t>(B * H * dk * dv));
  linear_attention_encode(CView4::contiguous(w.data(), {B, H, T, dk}), v, View4::contiguous(out.data(), {B, H, dk, dv}),
                          {}, {}, lengths);
  return out;
}

}  // namespace

void content_lambda_encode(CView4 k, CView4 v, View4 lambda, Lengths lengths) {
  const detail::Checks c("linattn::content_lambda_encode");
  check_kv(c, k, v, lengths);
  const int64_t B = k.shape[0], H = k.shape[1], dk = k.shape[3], dv = v.shape[3];
  c.same_shape("lambda", lambda, "[B, H, dk, dv]", CView4(nullptr, {B, H, dk, dv}, {}), true);
  c.disjoint("lambda", lambda, "k", k);
  c.disjoint("lambda", lambda, "v", v);
  const std::vector<float> l = lambdas(weights_of(k, lengths), k, v, lengths);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < dk; ++i)
        for (int64_t j = 0; j < dv; ++j) lambda(b, h, i, j) = l[static_cast<size_t>(((b * H + h) * dk + i) * dv + j)];
}

void content_lambda_attention(CView4 q, CView4 k, CView4 v, View4 out, Lengths lengths) {
  const detail::Checks c("linattn::content_lambda_attention");
  check_kv(c, k, v, lengths);
  check_q(c, q, k);
  const int64_t B = k.shape[0], H = k.shape[1], dk = k.shape[3], dv = v.shape[3];
  c.same_shape("out", out, "[B, H, Tq, dv]", CView4(nullptr, {B, H, q.shape[2], dv}, {}), true);
  c.disjoint("out", out, "q", q);
  c.disjoint("out", out, "k", k);
  c.disjoint("out", out, "v", v);
  const std::vector<float> l = lambdas(weights_of(k, lengths), k, v, lengths);
  linear_attention_lookup(q, CView4::contiguous(l.data(), {B, H, dk, dv}), out);
}

void content_lambda_attention_backward(CView4 q, CView4 k, CView4 v, CView4 dout, View4 dq, View4 dk, View4 dv,
                                       Lengths lengths) {
  const detail::Checks c("linattn::content_lambda_attention_backward");
  check_kv(c, k, v, lengths);
  check_q(c, q, k);
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], kd = k.shape[3], vd = v.shape[3];
  detail::check_qkv_gradients(c, q, k, v, dout, dq, dk, dv);
  const std::vector<float> w = weights_of(k, lengths);
  const std::vector<float> l = lambdas(w, k, v, lengths);
  std::vector<float> dl(l.size());
  linear_attention_lookup_backward(q, CView4::contiguous(l.data(), {B, H, kd, vd}), dout, dq,
                                   View4::contiguous(dl.data(), {B, H, kd, vd}));
  // dw and dv from the encode's backward (padding 0), then the softmax's backward into dk.
  linear_attention_encode_backward(CView4::contiguous(w.data(), {B, H, T, kd}), v, CView4::contiguous(dl.data(), {B, H, kd, vd}),
                                   dk, dv, {}, {}, lengths);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      kernels::content_lambda_weights_backward(w.data() + (b * H + h) * T * kd, kd, dk.data + b * dk.stride[0] + h * dk.stride[1],
                                               length_of(lengths, b, T), kd, dk.data + b * dk.stride[0] + h * dk.stride[1],
                                               dk.stride[2]);
}

}  // namespace linattn
