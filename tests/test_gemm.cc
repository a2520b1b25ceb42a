// kernels::gemm against a double-precision loop, on both of its back ends (libxsmm for small
// products, oneDNN above kSmallGemmMaxMultiplyAdds or for alpha != 1 or beta not in {0, 1}):
// every transpose, leading dimensions wider than the matrices, beta = 0 over NaN garbage.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "kernels/gemm.h"

namespace linattn {
namespace {

std::vector<float> random_matrix(size_t n, std::mt19937& g) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(g);
  return x;
}

void check_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta) {
  std::mt19937 g(static_cast<unsigned>(m * 1000003 + n * 1009 + k * 7 + ta * 2 + tb));
  const int64_t pad = 3;  // leading dimensions wider than the rows
  const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  const auto a = random_matrix(static_cast<size_t>((ta ? k : m) * lda), g);
  const auto b = random_matrix(static_cast<size_t>((tb ? n : k) * ldb), g);
  std::vector<float> c = random_matrix(static_cast<size_t>(m * ldc), g);
  if (beta == 0.f) std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());  // must not be read
  const std::vector<float> c0 = c;
  kernels::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t at = static_cast<size_t>(i * ldc + j);
      if (j >= n) {  // the padding between rows is left alone
        ASSERT_TRUE(std::isnan(c0[at]) ? std::isnan(c[at]) : c[at] == c0[at]) << "padding written at " << i << "," << j;
        continue;
      }
      double want = 0;
      for (int64_t p = 0; p < k; ++p)
        want += double(ta ? a[p * lda + i] : a[i * lda + p]) * double(tb ? b[j * ldb + p] : b[p * ldb + j]);
      want *= alpha;
      if (beta != 0.f) want += double(beta) * c0[at];
      ASSERT_NEAR(c[at], want, 1e-5 * (k + 1)) << (ta ? "T" : "N") << (tb ? "T" : "N") << " m=" << m << " n=" << n
                                               << " k=" << k << " alpha=" << alpha << " beta=" << beta << " at " << i
                                               << "," << j;
    }
}

TEST(Gemm, MatchesDoubleLoopsOnEveryBackEndAndTranspose) {
  // Small (libxsmm), around the causal kernels' shapes, odd sizes, and large enough for oneDNN.
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> shapes = {
      {1, 1, 1}, {3, 5, 7}, {8, 8, 8}, {32, 32, 64}, {32, 65, 32}, {64, 64, 65}, {17, 70, 33}, {64, 128, 128}, {130, 3, 90}};
  for (auto [m, n, k] : shapes)
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{1.f, 1.f}, std::pair{0.5f, 1.f}, std::pair{1.f, -2.f}})
          check_gemm(ta, tb, m, n, k, alpha, beta);
}

TEST(Gemm, EmptySumScalesC) {
  std::vector<float> c = {1.f, 2.f, 3.f, 4.f};
  kernels::gemm(false, false, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1.f, 1.5f, 2.f}));
  c.assign(4, std::numeric_limits<float>::quiet_NaN());
  kernels::gemm(true, true, 2, 2, 0, 1.f, nullptr, 1, nullptr, 2, 0.f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>(4, 0.f)));
}

}  // namespace
}  // namespace linattn
