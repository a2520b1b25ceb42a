// Galerkin attention against a double-precision reference and finite differences, with padding,
// length-1 and empty sequences, widths off the SIMD width, and named errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::Tensor;

// out[b, h, i, :] in double: layer norm of every valid key and value row, M = sum k~ v~^T / n.
std::vector<double> reference(const Tensor<4>& q, const Tensor<4>& k, const Tensor<4>& v,
                              const std::vector<int64_t>& lengths, double eps) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3], Tq = q.shape[2];
  auto ln = [&](const Tensor<4>& x, int64_t b, int64_t h, int64_t t, int64_t d) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < d; ++i) mean += x.at(b, h, t, i);
    mean /= static_cast<double>(d);
    for (int64_t i = 0; i < d; ++i) var += (x.at(b, h, t, i) - mean) * (x.at(b, h, t, i) - mean);
    var /= static_cast<double>(d);
    std::vector<double> y(static_cast<size_t>(d));
    for (int64_t i = 0; i < d; ++i) y[static_cast<size_t>(i)] = (x.at(b, h, t, i) - mean) / std::sqrt(var + eps);
    return y;
  };
  std::vector<double> out(static_cast<size_t>(B * H * Tq * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
      std::vector<double> M(static_cast<size_t>(dk * dv), 0.0);
      for (int64_t t = 0; t < n; ++t) {
        const auto kt = ln(k, b, h, t, dk), vt = ln(v, b, h, t, dv);
        for (int64_t i = 0; i < dk; ++i)
          for (int64_t j = 0; j < dv; ++j) M[static_cast<size_t>(i * dv + j)] += kt[static_cast<size_t>(i)] * vt[static_cast<size_t>(j)];
      }
      if (n == 0) continue;
      for (int64_t r = 0; r < Tq; ++r)
        for (int64_t j = 0; j < dv; ++j) {
          double s = 0;
          for (int64_t i = 0; i < dk; ++i) s += q.at(b, h, r, i) * M[static_cast<size_t>(i * dv + j)];
          out[static_cast<size_t>(((b * H + h) * Tq + r) * dv + j)] = s / static_cast<double>(n);
        }
    }
  return out;
}

struct Case {
  int64_t T, Tq, dk, dv;
  bool ragged;
  std::string name() const {
    return "T" + std::to_string(T) + "_Tq" + std::to_string(Tq) + "_dk" + std::to_string(dk) + "_dv" + std::to_string(dv) +
           (ragged ? "_ragged" : "");
  }
};

class GalerkinAttention : public ::testing::TestWithParam<Case> {};

TEST_P(GalerkinAttention, MatchesTheReference) {
  const Case cs = GetParam();
  const int64_t B = 2, H = 3;
  const auto q = test::random_tensor<4>({B, H, cs.Tq, cs.dk}), k = test::random_tensor<4>({B, H, cs.T, cs.dk});
  auto v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  for (float& x : v.data) x = 3.f + 0.5f * x;  // a mean far from 0: the normalisation must remove it
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  Tensor<4> out({B, H, cs.Tq, cs.dv});
  galerkin_attention(q.cview(), k.cview(), v.cview(), out.view(), lengths);
  EXPECT_LE(test::relative_error(out.data, reference(q, k, v, lengths, kGalerkinEps)), 2e-5);
}

TEST_P(GalerkinAttention, GradientsMatchFiniteDifferences) {
  const Case cs = GetParam();
  if (cs.T * cs.dk > 600) GTEST_SKIP() << "finite differences on the small cases";
  const int64_t B = 2, H = 1;
  auto q = test::random_tensor<4>({B, H, cs.Tq, cs.dk}), k = test::random_tensor<4>({B, H, cs.T, cs.dk});
  auto v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  const auto R = test::random_tensor<4>({B, H, cs.Tq, cs.dv});
  Tensor<4> dq(q.shape), dk(k.shape), dv(v.shape);
  galerkin_attention_backward(q.cview(), k.cview(), v.cview(), R.cview(), dq.view(), dk.view(), dv.view(), lengths);
  test::expect_qkv_gradients(q, k, v, R, dq, dk, dv, [&](const Tensor<4>& q_, const Tensor<4>& k_, const Tensor<4>& v_) {
    return reference(q_, k_, v_, lengths, kGalerkinEps);
  });
  if (cs.ragged) {  // the second sequence's padding gets no gradient
    for (int64_t t = cs.T / 2; t < cs.T; ++t)
      for (int64_t i = 0; i < cs.dk; ++i) EXPECT_EQ(dk(1, 0, t, i), 0.f);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GalerkinAttention,
                         ::testing::Values(Case{1, 1, 4, 4, false}, Case{9, 3, 5, 3, false}, Case{9, 3, 5, 3, true},
                                           Case{40, 7, 17, 19, true}, Case{130, 16, 64, 64, false}),
                         test::CaseName());

// Length 1: one layer-normalised row. An empty sequence answers 0. A constant row normalises to
// 0 (its variance is 0; eps keeps it finite).
TEST(GalerkinAttentionEdges, EmptySequencesAndConstantRows) {
  const int64_t B = 2, H = 1, T = 3, d = 4;
  const auto q = test::random_tensor<4>({B, H, 2, d});
  Tensor<4> k({B, H, T, d}), v({B, H, T, d}), out({B, H, 2, d});
  for (float& x : k.data) x = 2.f;
  v = test::random_tensor<4>({B, H, T, d});
  const std::vector<int64_t> lengths{0, T};
  galerkin_attention(q.cview(), k.cview(), v.cview(), out.view(), lengths);
  for (float x : out.data) EXPECT_EQ(x, 0.f);
  Tensor<4> n({B, H, T, d});
  galerkin_normalize_rows(v.cview(), n.view(), lengths);
  for (int64_t t = 0; t < T; ++t) {
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < d; ++i) mean += n(1, 0, t, i), sq += double(n(1, 0, t, i)) * n(1, 0, t, i);
    EXPECT_NEAR(mean / d, 0.0, 1e-6);
    EXPECT_NEAR(sq / d, 1.0, 1e-3);
    for (int64_t i = 0; i < d; ++i) EXPECT_EQ(n(0, 0, t, i), 0.f);  // padding
  }
  // In place (out = x) equals into another buffer.
  Tensor<4> apart({B, H, T, d});
  galerkin_normalize_rows(v.cview(), apart.view());
  galerkin_normalize_rows(v.cview(), v.view());
  EXPECT_EQ(v.data, apart.data);
}

TEST(GalerkinAttentionEdges, BadArgumentsAreNamed) {
  const auto q = test::random_tensor<4>({1, 1, 2, 4}), k = test::random_tensor<4>({1, 1, 3, 4});
  const auto v = test::random_tensor<4>({1, 1, 3, 5});
  Tensor<4> out({1, 1, 2, 5}), wrong({1, 1, 2, 4});

  test::expect_argument_error([&] { galerkin_attention(q.cview(), k.cview(), v.cview(), wrong.view()); }, "out", "[B, H, Tq, dv]");
  test::expect_argument_error([&] { galerkin_attention(q.cview(), k.cview(), v.cview(), out.view(), {}, 0.f); }, "eps", "> 0");
  const std::vector<int64_t> too_long{4};
  test::expect_argument_error([&] { galerkin_attention(q.cview(), k.cview(), v.cview(), out.view(), too_long); }, "lengths", "larger than");
  const auto q5 = test::random_tensor<4>({1, 1, 2, 5});
  test::expect_argument_error([&] { galerkin_attention(q5.cview(), k.cview(), v.cview(), out.view()); }, "q", "key width");
  Tensor<4> shared({1, 1, 3, 5});
  test::expect_argument_error([&] { galerkin_attention(q.cview(), k.cview(), shared.cview(), View4(shared.data.data(), {1, 1, 2, 5}, {15, 15, 5, 1})); }, "out", "shares memory");
}

}  // namespace
}  // namespace linattn
