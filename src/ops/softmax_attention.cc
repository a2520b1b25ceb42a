#include "linattn/ops/softmax_attention.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "linattn/kernels/softmax_attention_cpu.h"

namespace linattn {
namespace {

// Checks shared by both scorers; dq is free (the additive scorer projects it).
void check_common(const detail::Checks& c, CView4 q, CView4 k, CView4 v, View4 out, View3 lse,
                  bool causal, Lengths kv_lengths, Lengths q_lengths, bool dot) {
  c.view("q", q, false);
  c.view("k", k, false);
  c.view("v", v, false);
  c.view("out", out, true);
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
  c.dim("out", out, 0, B, "the batch size of q");
  c.dim("out", out, 1, H, "the head count of q");
  c.dim("out", out, 2, Tq, "the query length Tq");
  c.dim("out", out, 3, v.shape[3], "the value width dv");
  if (lse.present()) {
    c.view("lse", lse, true);
    c.dim("lse", lse, 0, B, "the batch size of q");
    c.dim("lse", lse, 1, H, "the head count of q");
    c.dim("lse", lse, 2, Tq, "the query length Tq");
  }
  if (causal) {
    if (Tq != Tk)
      c.fail("q", "causal attention needs as many queries as keys, got Tq = " +
                      std::to_string(Tq) + " and Tk = " + std::to_string(Tk));
    if (!q_lengths.empty())
      c.fail("q_lengths", "must be absent with causal attention (kv_lengths applies to both)");
  }
  c.lengths("kv_lengths", kv_lengths, B, Tk, "the key length Tk");
  c.lengths("q_lengths", q_lengths, B, Tq, "the query length Tq");
}

}  // namespace

void softmax_attention(CView4 q, CView4 k, CView4 v, View4 out,
                       const SoftmaxAttentionOptions& options, Lengths kv_lengths,
                       Lengths q_lengths, View3 lse) {
  const detail::Checks c("linattn::softmax_attention");
  check_common(c, q, k, v, out, lse, options.causal, kv_lengths, q_lengths, true);
  const float scale = options.scale.value_or(1.f / std::sqrt(static_cast<float>(k.shape[3])));
  if (!std::isfinite(scale)) c.fail("options.scale", "must be finite, got " + std::to_string(scale));
  kernels::softmax_attention_cpu(q, k, v, out, lse, kv_lengths,
                                 options.causal ? kv_lengths : q_lengths, options.causal, scale,
                                 nullptr);
}

void additive_attention(CView4 q, CView4 k, CView4 v, const AdditiveScorer& scorer, View4 out,
                        bool causal, Lengths kv_lengths, Lengths q_lengths, View3 lse) {
  const detail::Checks c("linattn::additive_attention");
  check_common(c, q, k, v, out, lse, causal, kv_lengths, q_lengths, false);
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
  const kernels::AdditiveScorerView view{scorer.w_k, scorer.w_q, scorer.bias, scorer.w};
  kernels::softmax_attention_cpu(q, k, v, out, lse, kv_lengths, causal ? kv_lengths : q_lengths,
                                 causal, 1.f, &view);
}

}  // namespace linattn
