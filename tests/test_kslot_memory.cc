// The K-slot memory against a double-precision reference and finite differences, with padding,
// empty and length-1 sequences, scores large enough to overflow a naive exp, the position
// encoding, pieces that add up to the whole, and named errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::Tensor;

// out = softmax_K(u)^T sum_t (softmax_K(s_t) (*) l_t) v_t^T, in double.
std::vector<double> reference(const Tensor<4>& u, const Tensor<4>& s, const Tensor<4>& v, const std::vector<int64_t>& lengths,
                              bool position_encoding) {
  const int64_t B = s.shape[0], H = s.shape[1], T = s.shape[2], K = s.shape[3], dv = v.shape[3], Tq = u.shape[2];
  auto softmax = [&](const Tensor<4>& x, int64_t b, int64_t h, int64_t t) {
    std::vector<double> p(static_cast<size_t>(K));
    double mx = -1e300, sum = 0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, double(x.at(b, h, t, k)));
    for (int64_t k = 0; k < K; ++k) sum += p[static_cast<size_t>(k)] = std::exp(x.at(b, h, t, k) - mx);
    for (double& e : p) e /= sum;
    return p;
  };
  std::vector<double> out(static_cast<size_t>(B * H * Tq * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
      std::vector<double> C(static_cast<size_t>(K * dv), 0.0);
      for (int64_t t = 0; t < n; ++t) {
        const auto p = softmax(s, b, h, t);
        for (int64_t k = 0; k < K; ++k) {
          const double a = double(k + 1) / K, c = double(t + 1) / n;
          const double w = p[static_cast<size_t>(k)] * (position_encoding ? (1 - a) * (1 - c) + a * c : 1.0);
          for (int64_t e = 0; e < dv; ++e) C[static_cast<size_t>(k * dv + e)] += w * v.at(b, h, t, e);
        }
      }
      for (int64_t i = 0; i < Tq; ++i) {
        const auto beta = softmax(u, b, h, i);
        for (int64_t e = 0; e < dv; ++e) {
          double r = 0;
          for (int64_t k = 0; k < K; ++k) r += beta[static_cast<size_t>(k)] * C[static_cast<size_t>(k * dv + e)];
          out[static_cast<size_t>(((b * H + h) * Tq + i) * dv + e)] = r;
        }
      }
    }
  return out;
}

struct Case {
  int64_t T, Tq, K, dv;
  bool ragged, position_encoding;
  std::string name() const {
    return "T" + std::to_string(T) + "_Tq" + std::to_string(Tq) + "_K" + std::to_string(K) + "_dv" + std::to_string(dv) +
           (ragged ? "_ragged" : "") + (position_encoding ? "_positions" : "");
  }
};

class KSlotMemory : public ::testing::TestWithParam<Case> {};

TEST_P(KSlotMemory, MatchesTheReference) {
  const Case cs = GetParam();
  const int64_t B = 2, H = 3;
  auto u = test::random_tensor<4>({B, H, cs.Tq, cs.K}), s = test::random_tensor<4>({B, H, cs.T, cs.K});
  const auto v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  for (float& x : s.data) x *= 200.f;  // exp(|s| up to ~100): overflows without the maximum subtracted
  for (float& x : u.data) x *= 200.f;
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  Tensor<4> C({B, H, cs.K, cs.dv}), out({B, H, cs.Tq, cs.dv});
  const KSlotOptions o{.position_encoding = cs.position_encoding};
  kslot_memory_encode(s.cview(), v.cview(), C.view(), o, lengths);
  kslot_memory_lookup(u.cview(), C.cview(), out.view());
  for (float x : out.data) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LE(test::relative_error(out.data, reference(u, s, v, lengths, cs.position_encoding)), 1e-5);
}

TEST_P(KSlotMemory, GradientsMatchFiniteDifferences) {
  const Case cs = GetParam();
  if (cs.T * cs.K > 600) GTEST_SKIP() << "finite differences on the small cases";
  const int64_t B = 2, H = 1;
  auto u = test::random_tensor<4>({B, H, cs.Tq, cs.K}), s = test::random_tensor<4>({B, H, cs.T, cs.K});
  auto v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  const KSlotOptions o{.position_encoding = cs.position_encoding};
  const auto R = test::random_tensor<4>({B, H, cs.Tq, cs.dv});
  Tensor<4> C({B, H, cs.K, cs.dv}), dC({B, H, cs.K, cs.dv}), du(u.shape), ds(s.shape, 7.f), dv(v.shape, 7.f);
  kslot_memory_encode(s.cview(), v.cview(), C.view(), o, lengths);
  kslot_memory_lookup_backward(u.cview(), C.cview(), R.cview(), du.view(), dC.view());
  kslot_memory_encode_backward(s.cview(), v.cview(), dC.cview(), ds.view(), dv.view(), o, lengths);  // padding: 7 -> 0
  test::expect_qkv_gradients(u, s, v, R, du, ds, dv, [&](const Tensor<4>& u_, const Tensor<4>& s_, const Tensor<4>& v_) {
    return reference(u_, s_, v_, lengths, cs.position_encoding);
  });
  if (cs.ragged)
    for (int64_t t = cs.T / 2; t < cs.T; ++t) {
      for (int64_t k = 0; k < cs.K; ++k) EXPECT_EQ(ds(1, 0, t, k), 0.f);
      for (int64_t e = 0; e < cs.dv; ++e) EXPECT_EQ(dv(1, 0, t, e), 0.f);
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, KSlotMemory,
                         ::testing::Values(Case{1, 1, 1, 4, false, false}, Case{1, 2, 3, 5, false, true},
                                           Case{9, 3, 5, 3, false, false}, Case{9, 3, 5, 3, true, true},
                                           Case{40, 7, 17, 19, true, false}, Case{130, 16, 32, 64, false, true}),
                         test::CaseName());

// Without the position encoding a memory is a sum over positions: two pieces add up to the
// whole. With it, the weights depend on the whole length, and they do not.
TEST(KSlotMemoryEdges, PiecesAddUpWithoutThePositionEncoding) {
  const int64_t T = 20, K = 6, dv = 5;
  const auto s = test::random_tensor<4>({1, 2, T, K}), v = test::random_tensor<4>({1, 2, T, dv});
  Tensor<4> whole({1, 2, K, dv}), first({1, 2, K, dv}), second({1, 2, K, dv});
  kslot_memory_encode(s.cview(), v.cview(), whole.view());
  auto piece = [&](const Tensor<4>& x, int64_t t0, int64_t n) {
    CView4 w = x.cview();
    return CView4(w.data + t0 * w.stride[2], {1, 2, n, w.shape[3]}, w.stride);
  };
  kslot_memory_encode(piece(s, 0, 7), piece(v, 0, 7), first.view());
  kslot_memory_encode(piece(s, 7, T - 7), piece(v, 7, T - 7), second.view());
  std::vector<double> sum(whole.data.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = double(first.data[i]) + second.data[i];
  EXPECT_LE(test::relative_error(whole.data, sum), 1e-6);
  kslot_memory_encode(s.cview(), v.cview(), whole.view(), {.position_encoding = true});
  kslot_memory_encode(piece(s, 0, 7), piece(v, 0, 7), first.view(), {.position_encoding = true});
  kslot_memory_encode(piece(s, 7, T - 7), piece(v, 7, T - 7), second.view(), {.position_encoding = true});
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = double(first.data[i]) + second.data[i];
  EXPECT_GT(test::relative_error(whole.data, sum), 1e-3);
}

TEST(KSlotMemoryEdges, EmptySequencesAnswerZeroAndErrorsAreNamed) {
  const auto u = test::random_tensor<4>({2, 1, 2, 4}), s = test::random_tensor<4>({2, 1, 3, 4});
  const auto v = test::random_tensor<4>({2, 1, 3, 5});
  Tensor<4> C({2, 1, 4, 5}), out({2, 1, 2, 5});
  const std::vector<int64_t> lengths{0, 3};
  kslot_memory_encode(s.cview(), v.cview(), C.view(), {}, lengths);
  kslot_memory_lookup(u.cview(), C.cview(), out.view());
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t e = 0; e < 5; ++e) EXPECT_EQ(out(0, 0, i, e), 0.f);

  Tensor<4> wrong({2, 1, 5, 5}), wrong_out({2, 1, 2, 4});
  test::expect_argument_error([&] { kslot_memory_encode(s.cview(), v.cview(), wrong.view()); }, "memory", "[B, H, K, dv]");
  test::expect_argument_error([&] { kslot_memory_lookup(u.cview(), C.cview(), wrong_out.view()); }, "out", "[B, H, Tq, dv]");
  const auto u_wide = test::random_tensor<4>({2, 1, 2, 3});
  test::expect_argument_error([&] { kslot_memory_lookup(u_wide.cview(), C.cview(), out.view()); }, "query_scores",
                              "slot count K");
  const std::vector<int64_t> bad{1, 4};
  test::expect_argument_error([&] { kslot_memory_encode(s.cview(), v.cview(), C.view(), {}, bad); }, "lengths", "larger than");
  const auto v_short = test::random_tensor<4>({2, 1, 2, 5});
  test::expect_argument_error([&] { kslot_memory_encode(s.cview(), v_short.cview(), C.view()); }, "v", "length T");
  Tensor<4> shared({2, 1, 4, 5});  // a memory written over its own values
  const CView4 v_in_shared(shared.data.data(), {2, 1, 3, 5}, {20, 20, 5, 1});
  test::expect_argument_error([&] { kslot_memory_encode(s.cview(), v_in_shared, shared.view()); }, "memory", "v");
}

}  // namespace
}  // namespace linattn
