#include "linattn/ops/kslot_memory.h"

#include <vector>

#include "core/checks.h"
#include "kernels/kslot_memory_cpu.h"
#include "linattn/ops/linear_attention.h"

namespace linattn {
namespace {

void check_encode(const detail::Checks& c, CView4 scores, CView4 v, Lengths lengths) {
  c.view("scores", scores, false);
  c.view("v", v, false);
  c.positive("scores", scores.shape[0], "batch size (dimension 0)");
  c.positive("scores", scores.shape[1], "head count (dimension 1)");
  c.positive("scores", scores.shape[3], "slot count K (dimension 3)");
  c.positive("v", v.shape[3], "value width dv (dimension 3)");
  c.dim("v", v, 0, scores.shape[0], "the batch size of scores");
  c.dim("v", v, 1, scores.shape[1], "the head count of scores");
  c.dim("v", v, 2, scores.shape[2], "the length T of scores");
  c.lengths("lengths", lengths, scores.shape[0], scores.shape[2], "the sequence length T");
}

void check_lookup(const detail::Checks& c, CView4 query_scores, CView4 memory) {
  c.view("query_scores", query_scores, false);
  c.view("memory", memory, false);
  c.positive("memory", memory.shape[2], "slot count K (dimension 2)");
  c.positive("memory", memory.shape[3], "value width dv (dimension 3)");
  c.dim("query_scores", query_scores, 0, memory.shape[0], "the batch size of memory");
  c.dim("query_scores", query_scores, 1, memory.shape[1], "the head count of memory");
  c.dim("query_scores", query_scores, 3, memory.shape[2], "the slot count K of memory");
}

int64_t length_of(Lengths lengths, int64_t b, int64_t T) { return lengths.empty() ? T : lengths[static_cast<size_t>(b)]; }

// The write weights a [B, H, T, K] (padding 0), contiguous; `plain` (when given) receives the
// softmax without the position encoding, which the backward needs.
std::vector<float> write_weights(CView4 s, const KSlotOptions& o, Lengths lengths, std::vector<float>* plain = nullptr) {
  const int64_t B = s.shape[0], H = s.shape[1], T = s.shape[2], K = s.shape[3];
  std::vector<float> w(static_cast<size_t>(B * H * T * K), 0.f);
  if (plain) plain->assign(w.size(), 0.f);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const float* row = s.data + b * s.stride[0] + h * s.stride[1];
      const int64_t n = length_of(lengths, b, T);
      kernels::kslot_weights(row, s.stride[2], n, K, o.position_encoding, w.data() + (b * H + h) * T * K, K);
      if (plain) kernels::kslot_weights(row, s.stride[2], n, K, false, plain->data() + (b * H + h) * T * K, K);
    }
  return w;
}

// The read weights softmax_K(u) [B, H, Tq, K], contiguous.
std::vector<float> read_weights(CView4 u) {
  const int64_t B = u.shape[0], H = u.shape[1], Tq = u.shape[2], K = u.shape[3];
  std::vector<float> w(static_cast<size_t>(B * H * Tq * K));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      kernels::kslot_weights(u.data + b * u.stride[0] + h * u.stride[1], u.stride[2], Tq, K, false,
                             w.data() + (b * H + h) * Tq * K, K);
  return w;
}

}  // namespace

void kslot_memory_encode(CView4 scores, CView4 v, View4 memory, const KSlotOptions& options, Lengths lengths) {
  const detail::Checks c("linattn::kslot_memory_encode");
  check_encode(c, scores, v, lengths);
  const int64_t B = scores.shape[0], H = scores.shape[1], T = scores.shape[2], K = scores.shape[3];
  c.same_shape("memory", memory, "[B, H, K, dv]", CView4(nullptr, {B, H, K, v.shape[3]}, {}), true);
  c.disjoint("memory", memory, "scores", scores);
  c.disjoint("memory", memory, "v", v);
  const std::vector<float> a = write_weights(scores, options, lengths);
  // C = a^T V: linear attention's encode with the write weights as keys.
  linear_attention_encode(CView4::contiguous(a.data(), {B, H, T, K}), v, memory, {}, {}, lengths);
}

void kslot_memory_encode_backward(CView4 scores, CView4 v, CView4 dmemory, View4 dscores, View4 dv,
                                  const KSlotOptions& options, Lengths lengths) {
  const detail::Checks c("linattn::kslot_memory_encode_backward");
  check_encode(c, scores, v, lengths);
  const int64_t B = scores.shape[0], H = scores.shape[1], T = scores.shape[2], K = scores.shape[3];
  c.same_shape("dmemory", dmemory, "[B, H, K, dv]", CView4(nullptr, {B, H, K, v.shape[3]}, {}), false);
  c.same_shape("dscores", dscores, "scores", scores, true);
  c.same_shape("dv", dv, "v", v, true);
  for (const auto& [name, out] : {std::pair{"dscores", dscores}, std::pair{"dv", dv}}) {
    c.disjoint(name, out, "scores", scores);
    c.disjoint(name, out, "v", v);
    c.disjoint(name, out, "dmemory", dmemory);
  }
  c.disjoint("dscores", dscores, "dv", dv);
  std::vector<float> p;
  const std::vector<float> a = write_weights(scores, options, lengths, &p);
  // da and dv from the encode's backward (padding 0), then the softmax's backward into dscores.
  linear_attention_encode_backward(CView4::contiguous(a.data(), {B, H, T, K}), v, dmemory, dscores, dv, {}, {}, lengths);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* ds = dscores.data + b * dscores.stride[0] + h * dscores.stride[1];
      kernels::kslot_weights_backward(p.data() + (b * H + h) * T * K, K, ds, length_of(lengths, b, T), K,
                                      options.position_encoding, ds, dscores.stride[2]);
    }
}

void kslot_memory_lookup(CView4 query_scores, CView4 memory, View4 out) {
  const detail::Checks c("linattn::kslot_memory_lookup");
  check_lookup(c, query_scores, memory);
  const int64_t B = memory.shape[0], H = memory.shape[1], K = memory.shape[2], Tq = query_scores.shape[2];
  c.same_shape("out", out, "[B, H, Tq, dv]", CView4(nullptr, {B, H, Tq, memory.shape[3]}, {}), true);
  c.disjoint("out", out, "query_scores", query_scores);
  c.disjoint("out", out, "memory", memory);
  const std::vector<float> beta = read_weights(query_scores);
  linear_attention_lookup(CView4::contiguous(beta.data(), {B, H, Tq, K}), memory, out);
}

void kslot_memory_lookup_backward(CView4 query_scores, CView4 memory, CView4 dout, View4 dquery_scores,
                                  View4 dmemory) {
  const detail::Checks c("linattn::kslot_memory_lookup_backward");
  check_lookup(c, query_scores, memory);
  const int64_t B = memory.shape[0], H = memory.shape[1], K = memory.shape[2], Tq = query_scores.shape[2];
  c.same_shape("dout", dout, "[B, H, Tq, dv]", CView4(nullptr, {B, H, Tq, memory.shape[3]}, {}), false);
  c.same_shape("dquery_scores", dquery_scores, "query_scores", query_scores, true);
  c.same_shape("dmemory", dmemory, "memory", memory, true);
  for (const auto& [name, out] : {std::pair{"dquery_scores", dquery_scores}, std::pair{"dmemory", dmemory}}) {
    c.disjoint(name, out, "query_scores", query_scores);
    c.disjoint(name, out, "memory", memory);
    c.disjoint(name, out, "dout", dout);
  }
  c.disjoint("dquery_scores", dquery_scores, "dmemory", dmemory);
  const std::vector<float> beta = read_weights(query_scores);
  linear_attention_lookup_backward(CView4::contiguous(beta.data(), {B, H, Tq, K}), memory, dout, dquery_scores, dmemory);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* du = dquery_scores.data + b * dquery_scores.stride[0] + h * dquery_scores.stride[1];
      kernels::kslot_weights_backward(beta.data() + (b * H + h) * Tq * K, K, du, Tq, K, false, du, dquery_scores.stride[2]);
    }
}

}  // namespace linattn
