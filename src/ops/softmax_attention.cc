#include "linattn/ops/softmax_attention.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "kernels/softmax_attention_cpu.h"

namespace linattn {

using detail::extent;
namespace {

// Checks of the inputs shared by both scorers and both directions; dq is free for the additive
// scorer (it projects the queries).
void check_inputs(const detail::Checks& c, CView4 q, CView4 k, CView4 v, bool causal, Lengths kv_lengths,
                  Lengths q_lengths, bool dot) {
  c.view("q", q, false);
  c.view("k", k, false);
  c.view("v", v, false);
  const int64_t B = q.shape[0], H = q.shape[1], Tq = q.shape[2], Tk = k.shape[2];
  c.positive("q", B, "batch size (dimension 0)");
  c.positive("q", H, "head count (dimension 1)");
  c.positive("q", q.shape[3], "query width (dimension 3)");
  c.positive("k", k.shape[3], "key width dk (dimension 3)");
  c.positive("v", v.shape[3], "value width dv (dimension 3)");
  c.dim("k", k, 0, B, "the batch size of q");
  c.dim("k", k, 1, H, "the head count of q");
  if (dot) c.dim("k", k, 3, q.shape[3], "the query width dq");
  c.dim("v", v, 0, B, "the batch size of q");
  c.dim("v", v, 1, H, "the head count of q");
  c.dim("v", v, 2, Tk, "the key length Tk");
  if (causal) {
    if (Tq != Tk)
      c.fail("q", "causal attention needs as many queries as keys, got Tq = " + std::to_string(Tq) +
                      " and Tk = " + std::to_string(Tk));
    if (!q_lengths.empty())
      c.fail("q_lengths", "must be absent with causal attention (kv_lengths applies to both)");
  }
  c.lengths("kv_lengths", kv_lengths, B, Tk, "the key length Tk");
  c.lengths("q_lengths", q_lengths, B, Tq, "the query length Tq");
}

// An attention output (out, or dout): [B, H, Tq, dv].
template <typename T>
void check_output(const detail::Checks& c, const char* name, const View<T, 4>& out, CView4 q, CView4 v, bool output) {
  c.view(name, out, output);
  c.dim(name, out, 0, q.shape[0], "the batch size of q");
  c.dim(name, out, 1, q.shape[1], "the head count of q");
  c.dim(name, out, 2, q.shape[2], "the query length Tq");
  c.dim(name, out, 3, v.shape[3], "the value width dv");
}

// The log-sum-exp statistics: [B, H, Tq].
template <typename T>
void check_lse(const detail::Checks& c, const View<T, 3>& lse, CView4 q, bool output) {
  c.view("lse", lse, output);
  c.dim("lse", lse, 0, q.shape[0], "the batch size of q");
  c.dim("lse", lse, 1, q.shape[1], "the head count of q");
  c.dim("lse", lse, 2, q.shape[2], "the query length Tq");
}

void check_scorer(const detail::Checks& c, CView4 q, CView4 k, const AdditiveScorer& scorer) {
  c.view("scorer.w_k", scorer.w_k, false);
  c.view("scorer.w_q", scorer.w_q, false);
  c.view("scorer.bias", scorer.bias, false);
  c.view("scorer.w", scorer.w, false);
  const int64_t A = scorer.w.shape[0];
  c.positive("scorer.w", A, "the attention MLP width A (dimension 0)");
  c.dim("scorer.w_k", scorer.w_k, 0, A, "the MLP width A of scorer.w");
  c.dim("scorer.w_k", scorer.w_k, 1, k.shape[3], "the key width dk");
  c.dim("scorer.w_q", scorer.w_q, 0, A, "the MLP width A of scorer.w");
  c.dim("scorer.w_q", scorer.w_q, 1, q.shape[3], "the query width dq");
  c.dim("scorer.bias", scorer.bias, 0, A, "the MLP width A of scorer.w");
}

// The backward's extra arguments: the saved out and lse, dout, and the input gradients.
void check_backward(const detail::Checks& c, CView4 q, CView4 k, CView4 v, CView4 out, CView3 lse, CView4 dout,
                    View4 dq, View4 dk, View4 dv) {
  check_output(c, "out", out, q, v, false);
  check_output(c, "dout", dout, q, v, false);
  if (!lse.present()) c.fail("lse", "is required: pass the lse the forward pass wrote");
  check_lse(c, lse, q, false);
  c.same_shape("dq", dq, "q", q, true);
  c.same_shape("dk", dk, "k", k, true);
  c.same_shape("dv", dv, "v", v, true);
  detail::check_qkv_gradients(c, q, k, v, dout, dq, dk, dv);
  c.apart({extent("dq", dq), extent("dk", dk), extent("dv", dv)}, {extent("out", out), extent("lse", lse)});
}

}  // namespace

void softmax_attention(CView4 q, CView4 k, CView4 v, View4 out,
                       const SoftmaxAttentionOptions& options, Lengths kv_lengths,
                       Lengths q_lengths, View3 lse) {
  const detail::Checks c("linattn::softmax_attention");
  check_inputs(c, q, k, v, options.causal, kv_lengths, q_lengths, true);
  check_output(c, "out", out, q, v, true);
  if (lse.present()) check_lse(c, lse, q, true);
  c.apart({extent("out", out), extent("lse", lse)}, {extent("q", q), extent("k", k), extent("v", v)});
  const float scale = options.scale.value_or(1.f / std::sqrt(static_cast<float>(k.shape[3])));
  if (!std::isfinite(scale)) c.fail("options.scale", "must be finite, got " + std::to_string(scale));
  kernels::softmax_attention_cpu(q, k, v, out, lse, kv_lengths,
                                 options.causal ? kv_lengths : q_lengths, options.causal, scale,
                                 nullptr);
}

void additive_attention(CView4 q, CView4 k, CView4 v, const AdditiveScorer& scorer, View4 out,
                        bool causal, Lengths kv_lengths, Lengths q_lengths, View3 lse) {
  const detail::Checks c("linattn::additive_attention");
  check_inputs(c, q, k, v, causal, kv_lengths, q_lengths, false);
  check_scorer(c, q, k, scorer);
  check_output(c, "out", out, q, v, true);
  if (lse.present()) check_lse(c, lse, q, true);
  c.apart({extent("out", out), extent("lse", lse)},
          {extent("q", q), extent("k", k), extent("v", v), extent("scorer.w_k", scorer.w_k),
           extent("scorer.w_q", scorer.w_q), extent("scorer.bias", scorer.bias), extent("scorer.w", scorer.w)});
  const kernels::AdditiveScorerView view{scorer.w_k, scorer.w_q, scorer.bias, scorer.w};
  kernels::softmax_attention_cpu(q, k, v, out, lse, kv_lengths, causal ? kv_lengths : q_lengths,
                                 causal, 1.f, &view);
}

void softmax_attention_backward(CView4 q, CView4 k, CView4 v, CView4 out, CView3 lse, CView4 dout, View4 dq,
                                View4 dk, View4 dv, const SoftmaxAttentionOptions& options, Lengths kv_lengths,
                                Lengths q_lengths) {
  const detail::Checks c("linattn::softmax_attention_backward");
  check_inputs(c, q, k, v, options.causal, kv_lengths, q_lengths, true);
  check_backward(c, q, k, v, out, lse, dout, dq, dk, dv);
  const float scale = options.scale.value_or(1.f / std::sqrt(static_cast<float>(k.shape[3])));
  if (!std::isfinite(scale)) c.fail("options.scale", "must be finite, got " + std::to_string(scale));
  kernels::softmax_attention_backward_cpu(q, k, v, out, lse, dout, dq, dk, dv, kv_lengths,
                                          options.causal ? kv_lengths : q_lengths, options.causal, scale, nullptr,
                                          nullptr);
}

void additive_attention_backward(CView4 q, CView4 k, CView4 v, const AdditiveScorer& scorer, CView4 out,
                                 CView3 lse, CView4 dout, View4 dq, View4 dk, View4 dv,
                                 const AdditiveScorerGrad& dscorer, bool causal, Lengths kv_lengths,
                                 Lengths q_lengths) {
  const detail::Checks c("linattn::additive_attention_backward");
  check_inputs(c, q, k, v, causal, kv_lengths, q_lengths, false);
  check_scorer(c, q, k, scorer);
  check_backward(c, q, k, v, out, lse, dout, dq, dk, dv);
  c.same_shape("dscorer.w_k", dscorer.w_k, "scorer.w_k", scorer.w_k, true);
  c.same_shape("dscorer.w_q", dscorer.w_q, "scorer.w_q", scorer.w_q, true);
  c.same_shape("dscorer.bias", dscorer.bias, "scorer.bias", scorer.bias, true);
  c.same_shape("dscorer.w", dscorer.w, "scorer.w", scorer.w, true);
  c.apart({extent("dq", dq), extent("dk", dk), extent("dv", dv), extent("dscorer.w_k", dscorer.w_k),
           extent("dscorer.w_q", dscorer.w_q), extent("dscorer.bias", dscorer.bias), extent("dscorer.w", dscorer.w)},
          {extent("q", q), extent("k", k), extent("v", v), extent("out", out), extent("lse", lse),
           extent("dout", dout), extent("scorer.w_k", scorer.w_k), extent("scorer.w_q", scorer.w_q),
           extent("scorer.bias", scorer.bias), extent("scorer.w", scorer.w)});
  const kernels::AdditiveScorerView view{scorer.w_k, scorer.w_q, scorer.bias, scorer.w};
  const kernels::AdditiveScorerGradView grad{dscorer.w_k, dscorer.w_q, dscorer.bias, dscorer.w};
  kernels::softmax_attention_backward_cpu(q, k, v, out, lse, dout, dq, dk, dv, kv_lengths,
                                          causal ? kv_lengths : q_lengths, causal, 1.f, &view, &grad);
}

}  // namespace linattn
