// Bad arguments raise ArgumentError naming the argument; nothing is computed.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

using test::expect_argument_error;

struct Inputs {
  Tensor<4> q{{2, 3, 5, 8}}, k{{2, 3, 7, 8}}, v{{2, 3, 7, 6}}, out{{2, 3, 5, 6}};
};

TEST(ArgumentErrors, SoftmaxAttention) {
  Inputs x;
  auto call = [&](CView4 q, CView4 k, CView4 v, View4 out, SoftmaxAttentionOptions o = {},
                  Lengths kv = {}, Lengths ql = {}) { softmax_attention(q, k, v, out, o, kv, ql); };
  Tensor<4> k_bad({2, 3, 7, 9}), v_bad({2, 3, 6, 6}), out_bad({2, 3, 5, 5}), q_b({3, 3, 5, 8});
  expect_argument_error([&] { call(x.q.cview(), k_bad.cview(), x.v.cview(), x.out.view()); }, "k", "query width");
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), v_bad.cview(), x.out.view()); }, "v", "key length");
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), out_bad.view()); }, "out", "value width");
  expect_argument_error([&] { call(q_b.cview(), x.k.cview(), x.v.cview(), x.out.view()); }, "k", "batch size");
  // Zero and negative sizes.
  Tensor<4> q0({2, 3, 5, 0}), k0({2, 0, 7, 8});
  expect_argument_error([&] { call(q0.cview(), x.k.cview(), x.v.cview(), x.out.view()); }, "q", "at least 1");
  CView4 neg(x.q.data.data(), {2, 3, -5, 8}, {120, 40, 8, 1});
  expect_argument_error([&] { call(neg, x.k.cview(), x.v.cview(), x.out.view()); }, "q", "negative size");
  // Null data.
  CView4 null_k(nullptr, {2, 3, 7, 8}, {168, 56, 8, 1});
  expect_argument_error([&] { call(x.q.cview(), null_k, x.v.cview(), x.out.view()); }, "k", "null");
  // Lengths.
  const std::vector<int64_t> too_long = {7, 8}, negative = {-1, 2}, wrong_count = {1, 2, 3};
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), x.out.view(), {}, too_long); }, "kv_lengths", "larger than");
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), x.out.view(), {}, negative); }, "kv_lengths", "negative");
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), x.out.view(), {}, {}, wrong_count); }, "q_lengths", "3 entries");
  // Causal needs Tq == Tk; scale must be finite.
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), x.out.view(), {.causal = true}); }, "q", "causal");
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), x.out.view(), {.scale = NAN}); }, "options.scale", "finite");
  // Layout: non-contiguous last dimension; overlapping output rows.
  CView4 strided_q(x.q.data.data(), {2, 3, 5, 4}, {120, 40, 8, 2});
  expect_argument_error([&] { call(strided_q, x.k.cview(), x.v.cview(), x.out.view()); }, "q", "contiguous");
  View4 overlapping(x.out.data.data(), {2, 3, 5, 6}, {90, 30, 3, 1});
  expect_argument_error([&] { call(x.q.cview(), x.k.cview(), x.v.cview(), overlapping); }, "out", "overlap");
}

TEST(ArgumentErrors, AdditiveAttention) {
  Inputs x;
  Tensor<2> w_k({4, 8}), w_q({4, 8}), w_q_bad({4, 7});
  Tensor<1> bias({4}), w({4}), bias_bad({5});
  expect_argument_error([&] { additive_attention(x.q.cview(), x.k.cview(), x.v.cview(), {w_k.cview(), w_q_bad.cview(), bias.cview(), w.cview()}, x.out.view()); }, "scorer.w_q", "query width");
  expect_argument_error([&] { additive_attention(x.q.cview(), x.k.cview(), x.v.cview(), {w_k.cview(), w_q.cview(), bias_bad.cview(), w.cview()}, x.out.view()); }, "scorer.bias", "MLP width");
  expect_argument_error([&] { additive_attention(x.q.cview(), x.k.cview(), x.v.cview(), {}, x.out.view()); }, "scorer.w", "at least 1");
}

TEST(ArgumentErrors, LinearAttention) {
  Tensor<4> k({2, 3, 7, 8}), v({2, 3, 7, 6}), M({2, 3, 8, 6}), M_bad({2, 3, 6, 8}), q({2, 3, 4, 8}),
      out({2, 3, 4, 6});
  Tensor<3> z({2, 3, 8}), g({2, 3, 6});
  expect_argument_error([&] { linear_attention_encode(k.cview(), v.cview(), M_bad.view()); }, "state", "key width");
  expect_argument_error([&] { linear_attention_encode(k.cview(), v.cview(), M.view(), {}, {}, {}, g.cview()); }, "gates", "length T");
  const std::vector<int64_t> too_long = {8, 1};
  expect_argument_error([&] { linear_attention_encode(k.cview(), v.cview(), M.view(), {}, {}, too_long); }, "lengths", "larger than");
  expect_argument_error([&] { linear_attention_encode(k.cview(), v.cview(), M.view(), {}, {.feature_map = static_cast<FeatureMap>(9)}); }, "options.feature_map", "unknown");
  expect_argument_error([&] { linear_attention_lookup(q.cview(), M.cview(), out.view(), {.normalize = true}); }, "normalizer", "required");
  expect_argument_error([&] { linear_attention_lookup(q.cview(), M.cview(), out.view(), {.mean = true}); }, "token_counts", "required");
  const std::vector<int64_t> counts = {1, 1};
  expect_argument_error([&] { linear_attention_lookup(q.cview(), M.cview(), out.view(), {.normalize = true, .mean = true}, z.cview(), counts); }, "options", "exclusive");
  expect_argument_error([&] { linear_attention_lookup(q.cview(), M.cview(), out.view(), {.eps = -1.f}, {}); }, "options.eps", ">= 0");
  expect_argument_error([&] { linear_attention_lookup(q.cview(), M_bad.cview(), out.view()); }, "state", "key width");
}

TEST(ArgumentErrors, Gates) {
  Tensor<2> h({5, 4}), W({4, 3}), out({5, 4});
  Tensor<1> w({3}), g({5}), b({4});
  expect_argument_error([&] { scalar_gate(h.cview(), w.cview(), 1.f, g.view()); }, "w", "width d");
  expect_argument_error([&] { vector_gate(h.cview(), W.cview(), b.cview(), out.view()); }, "w", "width d");
  Tensor<1> w4({4});
  expect_argument_error([&] { scalar_gate(h.cview(), w4.cview(), INFINITY, g.view()); }, "b", "finite");
}

// An output that shares memory with an input (or with another output) would be read after it is
// written: a clear error, never a wrong answer. The one in-place form that is supported, vector_gate
// with out = h, answers as out of place.
TEST(ArgumentErrors, OutputsSharingMemoryWithInputs) {
  // One buffer holding q, k and v side by side, so that an output can be laid over any of them.
  Tensor<4> qkv = test::random_tensor<4>({1, 1, 1, 3 * 8 * 8});
  float* base = qkv.data.data();
  const CView4 q(base, {1, 1, 8, 8}, {64, 64, 8, 1}), k(base + 64, {1, 1, 8, 8}, {64, 64, 8, 1}),
      v(base + 128, {1, 1, 8, 8}, {64, 64, 8, 1});
  auto over = [&](const CView4& x) { return View4(const_cast<float*>(x.data), x.shape, x.stride); };
  Tensor<4> out({1, 1, 8, 8}), dout = test::random_tensor<4>({1, 1, 8, 8}), M({1, 1, 8, 8});
  Tensor<3> lse({1, 1, 8});
  softmax_attention(q, k, v, out.view(), {}, {}, {}, lse.view());
  expect_argument_error([&] { softmax_attention(q, k, v, over(q)); }, "out", "shares memory with q");
  expect_argument_error([&] { softmax_attention(q, k, v, over(v)); }, "out", "shares memory with v");
  expect_argument_error([&] { softmax_attention(q, k, v, out.view(), {}, {}, {}, View3(base, {1, 1, 8}, {8, 8, 1})); },
                        "lse", "shares memory with q");
  Tensor<4> dq({1, 1, 8, 8}), dk({1, 1, 8, 8});
  expect_argument_error([&] { softmax_attention_backward(q, k, v, out.cview(), lse.cview(), dout.cview(), dq.view(), dk.view(), over(k)); },
                        "dv", "shares memory with k");
  expect_argument_error([&] { softmax_attention_backward(q, k, v, out.cview(), lse.cview(), dout.cview(), dq.view(), dk.view(), dq.view()); },
                        "dq", "shares memory with dv");
  expect_argument_error([&] { softmax_attention_backward(q, k, v, out.cview(), lse.cview(), dout.cview(), dq.view(), dk.view(), out.view()); },
                        "dv", "shares memory with out");

  // The additive scorer: its output over a scorer weight; a scorer gradient over its weight or
  // over another gradient.
  // w_k is the first 32 of 64 numbers, so that an [8, 8] output can lie over it.
  Tensor<1> w_k_buffer = test::random_tensor<1>({64});
  Tensor<2> w_q = test::random_tensor<2>({4, 8}), dw_k({4, 8}), dw_q({4, 8});
  Tensor<1> bias = test::random_tensor<1>({4}), w = test::random_tensor<1>({4}), dbias({4}), dw({4});
  const AdditiveScorer scorer{CView2(w_k_buffer.data.data(), {4, 8}, {8, 1}), w_q.cview(), bias.cview(), w.cview()};
  Tensor<4> big_out({1, 1, 8, 8});
  expect_argument_error([&] { additive_attention(q, k, v, scorer, View4(w_k_buffer.data.data(), {1, 1, 8, 8}, {64, 64, 8, 1})); },
                        "out", "shares memory with scorer.w_k");
  additive_attention(q, k, v, scorer, big_out.view(), false, {}, {}, lse.view());
  expect_argument_error([&] {
    additive_attention_backward(q, k, v, scorer, big_out.cview(), lse.cview(), dout.cview(), dq.view(), dk.view(), M.view(),
                                {dw_k.view(), View2(w_q.data.data(), {4, 8}, {8, 1}), dbias.view(), dw.view()});
  }, "dscorer.w_q", "shares memory with scorer.w_q");
  expect_argument_error([&] {
    additive_attention_backward(q, k, v, scorer, big_out.cview(), lse.cview(), dout.cview(), dq.view(), dk.view(), M.view(),
                                {dw_k.view(), dw_q.view(), dbias.view(), dbias.view()});
  }, "dscorer.bias", "shares memory with dscorer.w");

  // Linear attention: the state over a key, the answer over its query, a gradient over dout.
  expect_argument_error([&] { linear_attention_encode(k, v, over(k)); }, "state", "shares memory with k");
  for (const int64_t Tq : {1, 8}) {  // one query (a gemv) and many (a GEMM)
    const CView4 qs(base, {1, 1, Tq, 8}, {64, 64, 8, 1});
    expect_argument_error([&] { linear_attention_lookup(qs, M.cview(), View4(base, {1, 1, Tq, 8}, {64, 64, 8, 1})); },
                          "out", "shares memory with q");
  }
  expect_argument_error([&] { linear_attention_lookup(q, M.cview(), M.view()); }, "out", "shares memory with state");
  expect_argument_error([&] { linear_attention_lookup_backward(q, M.cview(), dout.cview(), over(q), dk.view()); },
                        "dq", "shares memory with q");
  expect_argument_error([&] { linear_attention_lookup_backward(q, M.cview(), dout.cview(), dq.view(), dout.view()); },
                        "dstate", "shares memory with dout");
  expect_argument_error([&] { linear_attention_encode_backward(k, v, M.cview(), dq.view(), dq.view()); },
                        "dk", "shares memory with dv");

  // Gates: out may be h itself, and then answers as out of place; any other overlap is an error.
  Tensor<2> h = test::random_tensor<2>({6, 4}), W = test::random_tensor<2>({4, 4}), apart({6, 4});
  Tensor<1> b = test::random_tensor<1>({4}), g({6});
  vector_gate(h.cview(), W.cview(), b.cview(), apart.view());
  Tensor<2> in_place = h;
  vector_gate(in_place.cview(), W.cview(), b.cview(), in_place.view());
  EXPECT_EQ(in_place.data, apart.data);
  Tensor<2> rows({7, 4});
  expect_argument_error([&] { vector_gate(CView2(rows.data.data(), {6, 4}, {4, 1}), W.cview(), b.cview(), View2(rows.data.data() + 4, {6, 4}, {4, 1})); },
                        "out", "overlaps h");
  expect_argument_error([&] { vector_gate(h.cview(), W.cview(), b.cview(), apart.view(), h.view()); }, "gate", "shares memory with h");
  expect_argument_error([&] { scalar_gate(h.cview(), b.cview(), 1.f, View1(h.data.data(), {6}, {1})); }, "g", "shares memory with h");
  Tensor<2> dh({6, 4}), dW({4, 4});
  Tensor<1> dwv({4}), gv = test::random_tensor<1>({6});
  float db = 0;
  expect_argument_error([&] { scalar_gate_backward(h.cview(), b.cview(), gv.cview(), gv.cview(), h.view(), dwv.view(), &db); },
                        "dh", "shares memory with h");
  expect_argument_error([&] { scalar_gate_backward(h.cview(), b.cview(), gv.cview(), gv.cview(), dh.view(), dwv.view(), dwv.data.data()); },
                        "dw", "shares memory with db");
  expect_argument_error([&] { vector_gate_backward(h.cview(), W.cview(), h.cview(), h.cview(), dh.view(), W.view(), dwv.view()); },
                        "dw", "shares memory with w");
}

TEST(ArgumentErrors, RequireFinite) {
  Tensor<2> x({3, 4}, 1.f);
  require_finite<2>("op", "x", x.cview());
  x(2, 1) = std::nanf("");
  expect_argument_error([&] { require_finite<2>("linattn::op", "x", x.cview()); }, "x", "NaN at [2,1]");
  x(2, 1) = -INFINITY;
  expect_argument_error([&] { require_finite<2>("linattn::op", "x", x.cview()); }, "x", "Inf at [2,1]");
}

}  // namespace
}  // namespace linattn
