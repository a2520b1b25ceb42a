// Softmax attention (dot and additive scorers) against the double-precision reference.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "linattn/ops/softmax_attention.h"
#include "reference.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

struct Shape {
  int64_t B, H, Tq, Tk, dk, dv;
  bool causal;
  bool ragged;  // mixed lengths in one batch
};

void PrintTo(const Shape& s, std::ostream* os) {
  *os << "B=" << s.B << " H=" << s.H << " Tq=" << s.Tq << " Tk=" << s.Tk << " dk=" << s.dk
      << " dv=" << s.dv << (s.causal ? " causal" : "") << (s.ragged ? " ragged" : "");
}

std::vector<int64_t> ragged_lengths(int64_t B, int64_t T) {
  std::vector<int64_t> len(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) len[b] = b == 0 ? T : (T * (b + 1)) / (B + 1);  // includes 0 for small T
  if (B > 2) len[2] = 0;
  return len;
}

class SoftmaxAttentionTest : public ::testing::TestWithParam<Shape> {};

TEST_P(SoftmaxAttentionTest, DotMatchesReference) {
  const Shape s = GetParam();
  auto q = test::random_tensor<4>({s.B, s.H, s.Tq, s.dk});
  auto k = test::random_tensor<4>({s.B, s.H, s.Tk, s.dk});
  auto v = test::random_tensor<4>({s.B, s.H, s.Tk, s.dv});
  Tensor<4> out({s.B, s.H, s.Tq, s.dv}, 42.f);
  Tensor<3> lse({s.B, s.H, s.Tq}, 42.f);
  const auto kv_len = s.ragged ? ragged_lengths(s.B, s.Tk) : std::vector<int64_t>{};
  const auto q_len = s.ragged && !s.causal ? ragged_lengths(s.B, s.Tq) : std::vector<int64_t>{};
  const float scale = 1.f / std::sqrt(static_cast<float>(s.dk));
  softmax_attention(q.cview(), k.cview(), v.cview(), out.view(), {.causal = s.causal}, kv_len,
                    q_len, lse.view());
  std::vector<double> ref_out, ref_lse;
  test::reference::softmax_attention(q, k, v, s.causal, scale, kv_len, q_len, nullptr, ref_out, ref_lse);
  EXPECT_LE(test::relative_error(out.data, ref_out), 1e-5);
  for (size_t i = 0; i < ref_lse.size(); ++i) {
    if (std::isinf(ref_lse[i])) EXPECT_EQ(lse.data[i], -std::numeric_limits<float>::infinity());
    else EXPECT_NEAR(lse.data[i], ref_lse[i], 1e-5 * (1 + std::abs(ref_lse[i])));
  }
}

TEST_P(SoftmaxAttentionTest, AdditiveMatchesReference) {
  const Shape s = GetParam();
  if (s.Tq * s.Tk > 100000) GTEST_SKIP() << "the O(Tq Tk A (dk + dq)) reference is too slow here";
  const int64_t A = 24, dq = s.dk + 3;
  auto q = test::random_tensor<4>({s.B, s.H, s.Tq, dq});
  auto k = test::random_tensor<4>({s.B, s.H, s.Tk, s.dk});
  auto v = test::random_tensor<4>({s.B, s.H, s.Tk, s.dv});
  auto w_k = test::random_tensor<2>({A, s.dk}, -0.3f, 0.3f);
  auto w_q = test::random_tensor<2>({A, dq}, -0.3f, 0.3f);
  auto bias = test::random_tensor<1>({A});
  auto w = test::random_tensor<1>({A});
  Tensor<4> out({s.B, s.H, s.Tq, s.dv}, 42.f);
  Tensor<3> lse({s.B, s.H, s.Tq});
  const auto kv_len = s.ragged ? ragged_lengths(s.B, s.Tk) : std::vector<int64_t>{};
  const auto q_len = s.ragged && !s.causal ? ragged_lengths(s.B, s.Tq) : std::vector<int64_t>{};
  if (s.causal && s.Tq != s.Tk) GTEST_SKIP();
  additive_attention(q.cview(), k.cview(), v.cview(),
                     {w_k.cview(), w_q.cview(), bias.cview(), w.cview()}, out.view(), s.causal,
                     kv_len, q_len, lse.view());
  std::vector<double> ref_out, ref_lse;
  const test::reference::Additive add{&w_k, &w_q, &bias, &w};
  test::reference::softmax_attention(q, k, v, s.causal, 1.0, kv_len, q_len, &add, ref_out, ref_lse);
  EXPECT_LE(test::relative_error(out.data, ref_out), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SoftmaxAttentionTest,
    ::testing::Values(Shape{1, 1, 1, 1, 1, 1, false, false},        // the smallest
                      Shape{1, 1, 1, 1, 16, 16, true, false},       // T = 1, causal
                      Shape{2, 3, 5, 7, 13, 11, false, false},      // widths not a multiple of 16
                      Shape{3, 2, 70, 70, 17, 9, true, true},       // causal, ragged, > one block
                      Shape{4, 2, 65, 300, 33, 40, false, true},    // ragged, several key blocks
                      Shape{1, 2, 3, 2000, 64, 64, false, false},   // long keys, few queries
                      Shape{2, 1, 130, 130, 64, 32, true, false},   // causal across blocks
                      Shape{1, 1, 200, 5000, 24, 24, false, false}  // large T
                      ),
    [](const ::testing::TestParamInfo<Shape>& param) {
      const Shape& s = param.param;
      return "B" + std::to_string(s.B) + "H" + std::to_string(s.H) + "Tq" + std::to_string(s.Tq) +
             "Tk" + std::to_string(s.Tk) + "dk" + std::to_string(s.dk) + "dv" +
             std::to_string(s.dv) + (s.causal ? "causal" : "") + (s.ragged ? "ragged" : "");
    });

TEST(SoftmaxAttention, PaddingNeverLeaks) {
  const int64_t B = 3, H = 2, T = 40, d = 19;
  auto q = test::random_tensor<4>({B, H, T, d});
  auto k = test::random_tensor<4>({B, H, T, d});
  auto v = test::random_tensor<4>({B, H, T, d});
  const std::vector<int64_t> len = {40, 17, 1};
  for (bool causal : {false, true}) {
    Tensor<4> before({B, H, T, d}), after({B, H, T, d});
    softmax_attention(q.cview(), k.cview(), v.cview(), before.view(), {.causal = causal}, len);
    auto k2 = k, v2 = v, q2 = q;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = len[b]; t < T; ++t)
          for (int64_t c = 0; c < d; ++c) {
            k2(b, h, t, c) = std::nanf("");
            v2(b, h, t, c) = std::numeric_limits<float>::infinity();
            if (causal) q2(b, h, t, c) = std::nanf("");
          }
    softmax_attention(q2.cview(), k2.cview(), v2.cview(), after.view(), {.causal = causal}, len);
    EXPECT_EQ(before.data, after.data) << "causal=" << causal;
  }
}

TEST(SoftmaxAttention, NonFiniteStaysInItsSequence) {
  const int64_t B = 2, H = 1, T = 9, d = 8;
  auto q = test::random_tensor<4>({B, H, T, d});
  auto k = test::random_tensor<4>({B, H, T, d});
  auto v = test::random_tensor<4>({B, H, T, d});
  v(0, 0, 3, 2) = std::nanf("");
  Tensor<4> out({B, H, T, d});
  softmax_attention(q.cview(), k.cview(), v.cview(), out.view());
  EXPECT_TRUE(std::isnan(out(0, 0, 0, 2)));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < d; ++c) EXPECT_TRUE(std::isfinite(out(1, 0, t, c)));
}

TEST(SoftmaxAttention, LargeScoresDoNotOverflow) {
  // Scores near 1e4 would overflow exp() without the running max.
  const int64_t T = 300, d = 4;
  auto q = test::random_tensor<4>({1, 1, 1, d}, 90.f, 100.f);
  auto k = test::random_tensor<4>({1, 1, T, d}, 90.f, 100.f);
  auto v = test::random_tensor<4>({1, 1, T, d});
  Tensor<4> out({1, 1, 1, d});
  softmax_attention(q.cview(), k.cview(), v.cview(), out.view(), {.scale = 1.f});
  std::vector<double> ref, lse;
  test::reference::softmax_attention(q, k, v, false, 1.0, {}, {}, nullptr, ref, lse);
  EXPECT_LE(test::relative_error(out.data, ref), 1e-5);
}

TEST(SoftmaxAttention, StridedViewsMatchContiguous) {
  // Inputs stored [B, T, H, d] (heads interleaved), read through strided views.
  const int64_t B = 2, H = 3, T = 33, d = 10;
  auto q = test::random_tensor<4>({B, T, H, d});
  auto k = test::random_tensor<4>({B, T, H, d});
  auto v = test::random_tensor<4>({B, T, H, d});
  const std::array<int64_t, 4> strides = {T * H * d, d, H * d, 1};
  Tensor<4> out_strided({B, T, H, d}), out_dense({B, H, T, d});
  auto transpose = [&](const Tensor<4>& x) {
    Tensor<4> y({B, H, T, d});
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t c = 0; c < d; ++c) y(b, h, t, c) = x.at(b, t, h, c);
    return y;
  };
  softmax_attention(CView4(q.data.data(), {B, H, T, d}, strides),
                    CView4(k.data.data(), {B, H, T, d}, strides),
                    CView4(v.data.data(), {B, H, T, d}, strides),
                    View4(out_strided.data.data(), {B, H, T, d}, strides), {.causal = true});
  auto qt = transpose(q), kt = transpose(k), vt = transpose(v);
  softmax_attention(qt.cview(), kt.cview(), vt.cview(), out_dense.view(), {.causal = true});
  EXPECT_EQ(transpose(out_strided).data, out_dense.data);
}

TEST(SoftmaxAttention, EmptySequences) {
  // T = 0 keys: every query sees nothing and gets 0; lse = -inf.
  auto q = test::random_tensor<4>({2, 1, 3, 4});
  Tensor<4> k({2, 1, 0, 4}), v({2, 1, 0, 5});
  Tensor<4> out({2, 1, 3, 5}, 7.f);
  Tensor<3> lse({2, 1, 3});
  softmax_attention(q.cview(), k.cview(), v.cview(), out.view(), {}, {}, {}, lse.view());
  for (float x : out.data) EXPECT_EQ(x, 0.f);
  for (float x : lse.data) EXPECT_EQ(x, -std::numeric_limits<float>::infinity());
  // Tq = 0: nothing to do, nothing written.
  Tensor<4> q0({2, 1, 0, 4}), out0({2, 1, 0, 5});
  auto k1 = test::random_tensor<4>({2, 1, 3, 4}), v1 = test::random_tensor<4>({2, 1, 3, 5});
  softmax_attention(q0.cview(), k1.cview(), v1.cview(), out0.view());
}

}  // namespace
}  // namespace linattn
