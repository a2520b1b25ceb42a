// Content lambda against a double-precision reference and finite differences, with padding,
// empty and length-1 sequences, keys large enough to overflow a naive exp, and named errors.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "linattn/linattn.h"
#include "test_util.h"

namespace linattn {
namespace {

using test::Tensor;

std::vector<double> reference(const Tensor<4>& q, const Tensor<4>& k, const Tensor<4>& v,
                              const std::vector<int64_t>& lengths) {
  const int64_t B = k.shape[0], H = k.shape[1], T = k.shape[2], dk = k.shape[3], dv = v.shape[3], Tq = q.shape[2];
  std::vector<double> out(static_cast<size_t>(B * H * Tq * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t n = lengths.empty() ? T : lengths[static_cast<size_t>(b)];
      std::vector<double> lambda(static_cast<size_t>(dk * dv), 0.0);
      for (int64_t i = 0; i < dk; ++i) {
        double mx = -1e300, sum = 0;
        for (int64_t t = 0; t < n; ++t) mx = std::max(mx, double(k.at(b, h, t, i)));
        for (int64_t t = 0; t < n; ++t) sum += std::exp(k.at(b, h, t, i) - mx);
        for (int64_t t = 0; t < n; ++t)
          for (int64_t j = 0; j < dv; ++j)
            lambda[static_cast<size_t>(i * dv + j)] += std::exp(k.at(b, h, t, i) - mx) / sum * v.at(b, h, t, j);
      }
      for (int64_t r = 0; r < Tq; ++r)
        for (int64_t j = 0; j < dv; ++j) {
          double s = 0;
          for (int64_t i = 0; i < dk; ++i) s += q.at(b, h, r, i) * lambda[static_cast<size_t>(i * dv + j)];
          out[static_cast<size_t>(((b * H + h) * Tq + r) * dv + j)] = s;
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

class ContentLambda : public ::testing::TestWithParam<Case> {};

TEST_P(ContentLambda, MatchesTheReferenceAndTheEncodedLambda) {
  const Case cs = GetParam();
  const int64_t B = 2, H = 3;
  const auto q = test::random_tensor<4>({B, H, cs.Tq, cs.dk}), v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  auto k = test::random_tensor<4>({B, H, cs.T, cs.dk});
  for (float& x : k.data) x *= 200.f;  // exp(|k| up to ~100): overflows without the running maximum
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  Tensor<4> out({B, H, cs.Tq, cs.dv}), lambda({B, H, cs.dk, cs.dv}), looked({B, H, cs.Tq, cs.dv});
  content_lambda_attention(q.cview(), k.cview(), v.cview(), out.view(), lengths);
  for (float x : out.data) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LE(test::relative_error(out.data, reference(q, k, v, lengths)), 1e-5);
  // The stored lambda answers the same through a plain linear lookup (its fixed-size state).
  content_lambda_encode(k.cview(), v.cview(), lambda.view(), lengths);
  linear_attention_lookup(q.cview(), lambda.cview(), looked.view());
  EXPECT_EQ(looked.data, out.data);
}

TEST_P(ContentLambda, GradientsMatchFiniteDifferences) {
  const Case cs = GetParam();
  if (cs.T * cs.dk > 600) GTEST_SKIP() << "finite differences on the small cases";
  const int64_t B = 2, H = 1;
  auto q = test::random_tensor<4>({B, H, cs.Tq, cs.dk}), k = test::random_tensor<4>({B, H, cs.T, cs.dk});
  auto v = test::random_tensor<4>({B, H, cs.T, cs.dv});
  const std::vector<int64_t> lengths = cs.ragged ? std::vector<int64_t>{cs.T, cs.T / 2} : std::vector<int64_t>{};
  const auto R = test::random_tensor<4>({B, H, cs.Tq, cs.dv});
  Tensor<4> dq(q.shape), dk(k.shape, 7.f), dv(v.shape, 7.f);  // padding must be overwritten with 0
  content_lambda_attention_backward(q.cview(), k.cview(), v.cview(), R.cview(), dq.view(), dk.view(), dv.view(), lengths);
  test::expect_qkv_gradients(q, k, v, R, dq, dk, dv, [&](const Tensor<4>& q_, const Tensor<4>& k_, const Tensor<4>& v_) {
    return reference(q_, k_, v_, lengths);
  });
  if (cs.ragged) {
    for (int64_t t = cs.T / 2; t < cs.T; ++t) {
      for (int64_t i = 0; i < cs.dk; ++i) EXPECT_EQ(dk(1, 0, t, i), 0.f);
      for (int64_t j = 0; j < cs.dv; ++j) EXPECT_EQ(dv(1, 0, t, j), 0.f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ContentLambda,
                         ::testing::Values(Case{1, 1, 4, 4, false}, Case{9, 3, 5, 3, false}, Case{9, 3, 5, 3, true},
                                           Case{40, 7, 17, 19, true}, Case{130, 16, 64, 64, false}),
                         test::CaseName());

TEST(ContentLambdaEdges, EmptySequencesAnswerZeroAndErrorsAreNamed) {
  const auto q = test::random_tensor<4>({2, 1, 2, 4}), k = test::random_tensor<4>({2, 1, 3, 4});
  const auto v = test::random_tensor<4>({2, 1, 3, 5});
  Tensor<4> out({2, 1, 2, 5});
  const std::vector<int64_t> lengths{0, 3};
  content_lambda_attention(q.cview(), k.cview(), v.cview(), out.view(), lengths);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(out(0, 0, i, j), 0.f);

  Tensor<4> wrong({2, 1, 2, 4}), lambda({2, 1, 4, 4});
  test::expect_argument_error([&] { content_lambda_attention(q.cview(), k.cview(), v.cview(), wrong.view()); }, "out", "[B, H, Tq, dv]");
  test::expect_argument_error([&] { content_lambda_encode(k.cview(), v.cview(), lambda.view()); }, "lambda", "[B, H, dk, dv]");
  const std::vector<int64_t> bad{1, 4};
  test::expect_argument_error([&] { content_lambda_attention(q.cview(), k.cview(), v.cview(), out.view(), bad); }, "lengths", "larger than");
  const auto v_short = test::random_tensor<4>({2, 1, 2, 5});
  test::expect_argument_error([&] { content_lambda_attention(q.cview(), k.cview(), v_short.cview(), out.view()); }, "v", "length T");
}

}  // namespace
}  // namespace linattn
