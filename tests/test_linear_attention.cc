// Linear attention encode and lookup against the double-precision reference, and the
// properties the paper relies on: it is attention without the softmax, and it is incremental.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "linattn/ops/linear_attention.h"
#include "reference.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

struct Case {
  int64_t B, H, T, Tq, dk, dv;
  FeatureMap map;
  bool gated, ragged, normalize, mean;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "B=" << c.B << " H=" << c.H << " T=" << c.T << " Tq=" << c.Tq << " dk=" << c.dk
      << " dv=" << c.dv << " phi=" << to_string(c.map) << (c.gated ? " gated" : "")
      << (c.ragged ? " ragged" : "") << (c.normalize ? " normalize" : "") << (c.mean ? " mean" : "");
}

std::string case_name(const ::testing::TestParamInfo<Case>& param) {
  const Case& c = param.param;
  std::string map = c.map == FeatureMap::identity ? "id" : c.map == FeatureMap::relu ? "relu" : "elu";
  return "B" + std::to_string(c.B) + "H" + std::to_string(c.H) + "T" + std::to_string(c.T) + "Tq" +
         std::to_string(c.Tq) + "dk" + std::to_string(c.dk) + "dv" + std::to_string(c.dv) + map +
         (c.gated ? "gated" : "") + (c.ragged ? "ragged" : "") + (c.normalize ? "norm" : "") +
         (c.mean ? "mean" : "");
}

class LinearAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(LinearAttentionTest, EncodeAndLookupMatchReference) {
  const Case c = GetParam();
  auto k = test::random_tensor<4>({c.B, c.H, c.T, c.dk});
  auto v = test::random_tensor<4>({c.B, c.H, c.T, c.dv});
  auto q = test::random_tensor<4>({c.B, c.H, c.Tq, c.dk});
  auto g = test::random_tensor<3>({c.B, c.H, c.T}, 0.f, 1.f);
  std::vector<int64_t> len;
  if (c.ragged)
    for (int64_t b = 0; b < c.B; ++b) len.push_back(b == 1 ? 0 : (c.T * (b + 1)) / c.B);
  Tensor<4> M({c.B, c.H, c.dk, c.dv}, 5.f);  // overwritten, not accumulated
  Tensor<3> z({c.B, c.H, c.dk}, 5.f);
  linear_attention_encode(k.cview(), v.cview(), M.view(), z.view(), {.feature_map = c.map}, len,
                          c.gated ? g.cview() : CView3{});
  std::vector<double> ref_M, ref_z;
  test::reference::linear_encode(k, v, c.gated ? &g : nullptr, len, c.map, ref_M, ref_z);
  EXPECT_LE(test::relative_error(M.data, ref_M), 1e-5);
  EXPECT_LE(test::relative_error(z.data, ref_z), 1e-5);

  // Lookup, checked against attention without softmax computed the slow way (no M at all).
  std::vector<int64_t> counts;
  for (int64_t b = 0; b < c.B; ++b) counts.push_back(len.empty() ? c.T : len[b]);
  const float scale = c.mean ? 1000.f : 1.f;
  Tensor<4> out({c.B, c.H, c.Tq, c.dv}, 9.f);
  linear_attention_lookup(q.cview(), M.cview(), out.view(),
                          {.feature_map = c.map, .normalize = c.normalize, .eps = 1e-3f,
                           .mean = c.mean, .scale = scale},
                          c.normalize ? z.cview() : CView3{}, c.mean ? Lengths(counts) : Lengths{});
  const auto direct = test::reference::linear_attention_direct(
      q, k, v, c.gated ? &g : nullptr, len, c.map, c.normalize, 1e-3, c.mean, scale);
  EXPECT_LE(test::relative_error(out.data, direct), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LinearAttentionTest,
    ::testing::Values(
        Case{1, 1, 1, 1, 1, 1, FeatureMap::identity, false, false, false, false},
        Case{1, 1, 1, 1, 16, 16, FeatureMap::identity, false, false, false, true},
        Case{2, 3, 37, 5, 13, 11, FeatureMap::identity, false, false, false, false},
        Case{2, 3, 37, 5, 13, 11, FeatureMap::identity, true, true, false, true},
        Case{3, 2, 300, 2, 17, 19, FeatureMap::elu_plus_one, false, true, true, false},
        Case{3, 2, 300, 9, 17, 19, FeatureMap::relu, true, false, true, false},
        Case{2, 2, 520, 300, 33, 7, FeatureMap::elu_plus_one, true, true, false, false},
        Case{1, 1, 5000, 3, 40, 40, FeatureMap::identity, false, false, false, true},
        Case{4, 8, 64, 64, 64, 64, FeatureMap::relu, false, true, false, true}),
    case_name);

TEST(LinearAttention, IncrementalEncodingEqualsOneShot) {
  const int64_t B = 2, H = 2, T = 100, dk = 21, dv = 15;
  for (FeatureMap map : {FeatureMap::identity, FeatureMap::elu_plus_one}) {
    auto k = test::random_tensor<4>({B, H, T, dk});
    auto v = test::random_tensor<4>({B, H, T, dv});
    auto g = test::random_tensor<3>({B, H, T}, 0.f, 1.f);
    Tensor<4> whole({B, H, dk, dv}), pieces({B, H, dk, dv});
    Tensor<3> z_whole({B, H, dk}), z_pieces({B, H, dk});
    linear_attention_encode(k.cview(), v.cview(), whole.view(), z_whole.view(), {.feature_map = map},
                            {}, g.cview());
    // Pieces of 1, 30 and 69 positions, as views into the same arrays.
    int64_t t0 = 0;
    for (int64_t len : {1, 30, 69}) {
      auto part = [&](const Tensor<4>& x) {
        return CView4(x.data.data() + t0 * x.shape[3], {B, H, len, x.shape[3]},
                      {H * T * x.shape[3], T * x.shape[3], x.shape[3], 1});
      };
      CView3 gp(g.data.data() + t0, {B, H, len}, {H * T, T, 1});
      linear_attention_encode(part(k), part(v), pieces.view(), z_pieces.view(),
                              {.feature_map = map, .accumulate = t0 > 0}, {}, gp);
      t0 += len;
    }
    EXPECT_LE(test::relative_error(pieces.data, whole.data), 1e-6);
    EXPECT_LE(test::relative_error(z_pieces.data, z_whole.data), 1e-6);
  }
}

TEST(LinearAttention, PaddingNeverLeaks) {
  const int64_t B = 3, H = 2, T = 50, d = 12;
  auto k = test::random_tensor<4>({B, H, T, d});
  auto v = test::random_tensor<4>({B, H, T, d});
  auto g = test::random_tensor<3>({B, H, T});
  auto q = test::random_tensor<4>({B, H, 6, d});
  const std::vector<int64_t> len = {50, 3, 0}, q_len = {6, 2, 0};
  auto run = [&](const Tensor<4>& kk, const Tensor<4>& vv, const Tensor<3>& gg, const Tensor<4>& qq) {
    Tensor<4> M({B, H, d, d});
    Tensor<3> z({B, H, d});
    Tensor<4> out({B, H, 6, d});
    linear_attention_encode(kk.cview(), vv.cview(), M.view(), z.view(),
                            {.feature_map = FeatureMap::elu_plus_one}, len, gg.cview());
    linear_attention_lookup(qq.cview(), M.cview(), out.view(),
                            {.feature_map = FeatureMap::elu_plus_one, .normalize = true}, z.cview(),
                            {}, q_len);
    return out.data;
  };
  const auto before = run(k, v, g, q);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t t = len[b]; t < T; ++t) {
        g(b, h, t) = std::nanf("");
        for (int64_t c = 0; c < d; ++c) k(b, h, t, c) = v(b, h, t, c) = std::nanf("");
      }
      for (int64_t t = q_len[b]; t < 6; ++t)
        for (int64_t c = 0; c < d; ++c) q(b, h, t, c) = std::numeric_limits<float>::infinity();
    }
  EXPECT_EQ(run(k, v, g, q), before);
}

TEST(LinearAttention, LookupCostIndependentOfLengthMeansSameStateSameAnswer) {
  // Two sequences of very different length with the same state answer identically: the lookup
  // reads only M (and z), never the sequence.
  const int64_t d = 16;
  auto M = test::random_tensor<4>({1, 1, d, d});
  auto q = test::random_tensor<4>({1, 1, 4, d});
  Tensor<4> a({1, 1, 4, d}), b({1, 1, 4, d});
  const std::vector<int64_t> n1 = {10}, n2 = {10};
  linear_attention_lookup(q.cview(), M.cview(), a.view(), {.mean = true}, {}, n1);
  linear_attention_lookup(q.cview(), M.cview(), b.view(), {.mean = true}, {}, n2);
  EXPECT_EQ(a.data, b.data);
}

TEST(LinearAttention, EmptyMemoryGivesZeros) {
  Tensor<4> k({1, 1, 0, 8}), v({1, 1, 0, 8});
  Tensor<4> M({1, 1, 8, 8}, 3.f);
  Tensor<3> z({1, 1, 8}, 3.f);
  linear_attention_encode(k.cview(), v.cview(), M.view(), z.view());
  for (float x : M.data) EXPECT_EQ(x, 0.f);
  auto q = test::random_tensor<4>({1, 1, 2, 8});
  Tensor<4> out({1, 1, 2, 8}, 1.f);
  const std::vector<int64_t> zero = {0};
  linear_attention_lookup(q.cview(), M.cview(), out.view(), {.mean = true}, {}, zero);
  for (float x : out.data) EXPECT_EQ(x, 0.f);
}

}  // namespace
}  // namespace linattn
