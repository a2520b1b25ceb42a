// The SIMD primitives on every instruction set this CPU supports, against scalar loops, for
// every length 0..67 (all tail sizes for 4, 8 and 16 lanes).
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/causal_linear_attention_simd.h"
#include "kernels/simd.h"
#include "kernels/simd_probe.h"
#include "test_util.h"

namespace linattn {
namespace {
namespace simd = kernels::simd;

class SimdTest : public ::testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { simd::set_targets_for_test(GetParam()); }
  void TearDown() override { simd::set_targets_for_test(0); }
};

std::vector<float> random_vector(int64_t n, float lo = -3.f, float hi = 3.f) {
  return test::random_tensor<1>({n}, lo, hi).data;
}

TEST_P(SimdTest, ReductionsMatchScalarLoops) {
  for (int64_t n = 0; n < 68; ++n) {
    const auto a = random_vector(n), b = random_vector(n);
    double dot = 0, sum = 0, mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) dot += double(a[i]) * b[i], sum += a[i], mx = std::max<double>(mx, a[i]);
    EXPECT_NEAR(simd::dot(a.data(), b.data(), n), dot, 1e-5 * (1 + n)) << n;
    EXPECT_NEAR(simd::sum(a.data(), n), sum, 1e-5 * (1 + n)) << n;
    EXPECT_EQ(simd::max(a.data(), n), static_cast<float>(mx)) << n;
  }
}

TEST_P(SimdTest, Bf16DotMatchesTheWidenedScalarLoop) {
  for (int64_t n = 0; n < 140; ++n) {  // past four unrolled vectors of 16 lanes, every tail
    const auto a = random_vector(n), b = random_vector(n);
    std::vector<uint16_t> a16(static_cast<size_t>(n));
    simd::f32_to_bf16(a.data(), a16.data(), n);
    std::vector<float> wide(static_cast<size_t>(n));
    simd::bf16_to_f32(a16.data(), wide.data(), n);
    double dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += double(wide[static_cast<size_t>(i)]) * b[static_cast<size_t>(i)];
    EXPECT_NEAR(simd::dot_bf16(a16.data(), b.data(), n), dot, 1e-5 * (1 + n)) << n;
  }
}

// Every position of every length, each bad value in turn: the tail, each of the four vectors
// of an unrolled step, and the single vectors after them.
TEST_P(SimdTest, AllWithinFindsEveryOutOfRangeValue) {
  const float lo = -std::numeric_limits<float>::max(), hi = 0.f;
  const float bad[] = {std::nanf(""), -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity(),
                       1e-30f, 1.f};
  for (int64_t n = 0; n < 68; ++n) {
    std::vector<float> x = random_vector(n, -5.f, 0.f);
    if (n) x[0] = lo, x[static_cast<size_t>(n - 1)] = hi;  // the bounds themselves are inside
    EXPECT_TRUE(simd::all_within(x.data(), n, lo, hi)) << n;
    for (int64_t i = 0; i < n; ++i)
      for (float b : bad) {
        std::vector<float> y(x);
        y[static_cast<size_t>(i)] = b;
        EXPECT_FALSE(simd::all_within(y.data(), n, lo, hi)) << n << " " << i << " " << b;
        EXPECT_TRUE(simd::all_within(y.data(), i, lo, hi)) << "only the first " << i << " are read";
      }
  }
}

TEST_P(SimdTest, ElementwiseMatchScalarLoops) {
  for (int64_t n = 0; n < 68; ++n) {
    const auto x = random_vector(n, -30.f, 30.f), w = random_vector(n), c = random_vector(n);
    std::vector<float> y(x);
    const float shift = n ? *std::max_element(x.begin(), x.end()) : 0.f;
    double expected_sum = 0;
    for (float xi : x) expected_sum += std::exp(double(xi) - shift);
    const float got_sum = simd::exp_shift_sum(y.data(), n, shift);
    EXPECT_NEAR(got_sum, expected_sum, 1e-6 * (1 + expected_sum)) << n;
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], std::exp(double(x[i]) - shift), 1e-6) << n;

    std::vector<float> s(static_cast<size_t>(n));
    simd::sigmoid(x.data(), s.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(s[i], 1 / (1 + std::exp(-double(x[i]))), 1e-6);

    for (FeatureMap map : {FeatureMap::identity, FeatureMap::relu, FeatureMap::elu_plus_one}) {
      std::vector<float> f(static_cast<size_t>(n));
      simd::feature_map(map, x.data(), f.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double e = map == FeatureMap::identity ? x[i]
                         : map == FeatureMap::relu   ? std::max(0.f, x[i])
                         : x[i] > 0                  ? x[i] + 1.0
                                                     : std::exp(double(x[i]));
        EXPECT_NEAR(f[i], e, 1e-6 * (1 + std::abs(e)));
      }
    }

    double td = 0;
    for (int64_t i = 0; i < n; ++i) td += w[i] * std::tanh(double(x[i]) * 0.1 + c[i]);
    std::vector<float> xs(x);
    for (float& e : xs) e *= 0.1f;
    EXPECT_NEAR(simd::tanh_dot(xs.data(), c.data(), w.data(), n), td, 1e-5 * (1 + n));

    std::vector<float> ax(w);
    simd::axpy(0.5f, c.data(), ax.data(), n);
    std::vector<float> mu(w);
    simd::mul(c.data(), mu.data(), n);
    std::vector<float> sc(w);
    simd::scale(sc.data(), n, -2.f);
    std::vector<float> dv(static_cast<size_t>(n));
    simd::div(c.data(), w.data(), dv.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_FLOAT_EQ(ax[i], w[i] + 0.5f * c[i]);
      EXPECT_FLOAT_EQ(mu[i], w[i] * c[i]);
      EXPECT_FLOAT_EQ(sc[i], -2.f * w[i]);
      EXPECT_EQ(dv[i], c[i] / w[i]) << n << " " << i;
    }
  }
}

// Streamed copies: every destination offset from the vectors' alignment (the element-wise head),
// every tail length, and nothing written past the end.
TEST_P(SimdTest, StreamCopyCopiesExactlyTheRange) {
  for (int64_t offset = 0; offset < 9; ++offset)
    for (int64_t n : {0, 1, 3, 7, 8, 9, 16, 31, 64, 67}) {
      const auto x = random_vector(n + 1);
      std::vector<float> y(static_cast<size_t>(offset + n + 9), -7.f);
      simd::stream_copy(x.data(), y.data() + offset, n);
      for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i)
        ASSERT_EQ(y[i], i >= offset && i < offset + n ? x[i - offset] : -7.f) << offset << " " << n << " " << i;
    }
}

// Four bf16 streams against one fp32 array, every tail length; each stream's own answer, not a
// neighbour's.
TEST_P(SimdTest, FourBf16DotsMatchOneAtATime) {
  for (int64_t n = 0; n < 68; ++n) {
    const auto b = random_vector(n);
    std::vector<std::vector<uint16_t>> a(4, std::vector<uint16_t>(static_cast<size_t>(n)));
    std::vector<double> expected(4, 0.0);
    for (int r = 0; r < 4; ++r) {
      const auto f = random_vector(n, -3.f + r, 3.f + 2 * r);  // each stream differs
      simd::f32_to_bf16(f.data(), a[r].data(), n);
      std::vector<float> wide(static_cast<size_t>(n));
      simd::bf16_to_f32(a[r].data(), wide.data(), n);
      for (int64_t i = 0; i < n; ++i) expected[r] += double(wide[i]) * b[i];
    }
    const uint16_t* four[4] = {a[0].data(), a[1].data(), a[2].data(), a[3].data()};
    float out[4] = {99.f, 99.f, 99.f, 99.f};
    simd::dot_bf16_x4(four, b.data(), n, out);
    for (int r = 0; r < 4; ++r) EXPECT_NEAR(out[r], expected[r], 1e-5 * (1 + n) * (1 + r)) << n << " stream " << r;
  }
}

TEST_P(SimdTest, GemvTransposedMatchesScalarLoops) {
  for (int64_t k : {1, 2, 3, 17, 128})
    for (int64_t n = 1; n < 300; n += (n < 40 ? 1 : n < 120 ? 13 : 44)) {
      const int64_t ldm = n + 3;  // a leading dimension wider than the row
      const auto m = random_vector(k * ldm), x = random_vector(k);
      std::vector<uint16_t> mb(m.size());
      simd::f32_to_bf16(m.data(), mb.data(), static_cast<int64_t>(m.size()));
      std::vector<float> mw(m.size());
      simd::bf16_to_f32(mb.data(), mw.data(), static_cast<int64_t>(m.size()));
      std::vector<float> y(static_cast<size_t>(n + 1), 99.f), yb(y);
      simd::gemv_t(m.data(), ldm, x.data(), k, y.data(), n);
      simd::gemv_t_bf16(mb.data(), ldm, x.data(), k, yb.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        double e = 0, eb = 0;
        for (int64_t i = 0; i < k; ++i) e += double(x[i]) * m[i * ldm + j], eb += double(x[i]) * mw[i * ldm + j];
        EXPECT_NEAR(y[j], e, 1e-5 * (1 + k)) << k << "x" << n;
        EXPECT_NEAR(yb[j], eb, 1e-5 * (1 + k)) << k << "x" << n;
      }
      EXPECT_EQ(y[n], 99.f);  // nothing written past n
      EXPECT_EQ(yb[n], 99.f);
    }
}

TEST_P(SimdTest, PackedSymmetricGemvMatchesTheFullMatrix) {
  // Every n up to 40 (every tail), every multiple of 8 and 16 up to 128 (the kernel that keeps y
  // in registers, for each block count), and widths beyond.
  std::vector<int64_t> widths;
  for (int64_t n = 1; n <= 40; ++n) widths.push_back(n);
  for (int64_t n = 48; n <= 128; n += 8) widths.push_back(n);
  for (int64_t n : {53, 96, 131, 144, 160}) widths.push_back(n);
  for (const int64_t n : widths) {
    const int64_t packed_size = n * (n + 1) / 2;
    const auto packed = random_vector(packed_size), x = random_vector(n);
    std::vector<uint16_t> pb(packed.size());
    simd::f32_to_bf16(packed.data(), pb.data(), packed_size);
    std::vector<float> pw(packed.size());
    simd::bf16_to_f32(pb.data(), pw.data(), packed_size);
    // M[i][j] = M[j][i] = packed row i, column j - i (i <= j).
    auto at = [&](const std::vector<float>& p, int64_t i, int64_t j) {
      if (i > j) std::swap(i, j);
      return p[static_cast<size_t>(i * n - i * (i - 1) / 2 + (j - i))];
    };
    std::vector<float> y(static_cast<size_t>(n + 1), 99.f), yb(y);
    simd::sym_packed_gemv(packed.data(), n, x.data(), y.data());
    simd::sym_packed_gemv_bf16(pb.data(), n, x.data(), yb.data());
    for (int64_t i = 0; i < n; ++i) {
      double e = 0, eb = 0;
      for (int64_t j = 0; j < n; ++j) e += double(at(packed, i, j)) * x[j], eb += double(at(pw, i, j)) * x[j];
      EXPECT_NEAR(y[i], e, 1e-5 * (1 + n)) << n;
      EXPECT_NEAR(yb[i], eb, 1e-5 * (1 + n)) << n;
    }
    EXPECT_EQ(y[n], 99.f);
    EXPECT_EQ(yb[n], 99.f);
  }
}

// GLA weights and their backward against exps of log-decay sums in double: the block kernel
// (whole_chunk false: n <= 8, entries above the diagonal untouched) or the whole-chunk kernel
// (any n, entries above the diagonal 0). Log decays in [log_lo, 0], a third of them -1e-4.
void expect_gla_weights_match(int64_t n, int64_t dk, float log_lo, bool whole_chunk) {
  const auto q = random_vector(n * dk), u = random_vector(n * dk), dw = random_vector(n * n);
  auto logg = random_vector(n * dk, log_lo, 0.f);
  for (int64_t i = 0; i < n * dk; i += 3) logg[static_cast<size_t>(i)] = -1e-4f;
  std::vector<float> g(logg.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = std::exp(logg[i]);
  auto E = [&](int64_t t, int64_t s, int64_t c) {
    double a = 0;
    for (int64_t k = s + 1; k <= t; ++k) a += logg[static_cast<size_t>(k * dk + c)];
    return std::exp(a);
  };
  // q and u as rows of wider matrices (an input's own rows), their padding NaN: never read.
  const int64_t ldq = dk + 3, ldu = dk + 5;
  std::vector<float> qw(static_cast<size_t>(n * ldq), std::nanf("")), uw(static_cast<size_t>(n * ldu), std::nanf(""));
  for (int64_t t = 0; t < n; ++t) {
    std::copy_n(&q[static_cast<size_t>(t * dk)], dk, &qw[static_cast<size_t>(t * ldq)]);
    std::copy_n(&u[static_cast<size_t>(t * dk)], dk, &uw[static_cast<size_t>(t * ldu)]);
  }
  std::vector<float> w(static_cast<size_t>(n * n), 99.f), dq(static_cast<size_t>(n * dk), 0.5f), du(dq);
  if (whole_chunk) {
    std::vector<float> scratch(static_cast<size_t>(simd::gla_chunk_scratch_size(n, dk)), 7.f);
    simd::gla_chunk_weights(qw.data(), ldq, uw.data(), ldu, g.data(), n, dk, w.data(), n, scratch.data());
    simd::gla_chunk_weights_backward(qw.data(), ldq, uw.data(), ldu, g.data(), dw.data(), n, n, dk, dq.data(),
                                     du.data(), scratch.data());
  } else {
    simd::gla_block_weights(qw.data(), ldq, uw.data(), ldu, g.data(), n, dk, w.data(), n);
    simd::gla_block_weights_backward(qw.data(), ldq, uw.data(), ldu, g.data(), dw.data(), n, n, dk, dq.data(),
                                     du.data());
  }
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t s = 0; s < n; ++s) {
      if (s > t) {
        EXPECT_EQ(w[t * n + s], whole_chunk ? 0.f : 99.f) << n << " " << dk << " " << t << "," << s;
        continue;
      }
      double e = 0;
      for (int64_t c = 0; c < dk; ++c) e += double(q[t * dk + c]) * u[s * dk + c] * E(t, s, c);
      EXPECT_NEAR(w[t * n + s], e, 1e-5 * (1 + dk)) << n << " " << dk << " " << t << "," << s;
    }
    for (int64_t c = 0; c < dk; ++c) {
      double eq = 0.5, eu = 0.5;
      for (int64_t s = 0; s <= t; ++s) eq += double(dw[t * n + s]) * u[s * dk + c] * E(t, s, c);
      for (int64_t r = t; r < n; ++r) eu += double(dw[r * n + t]) * q[r * dk + c] * E(r, t, c);
      EXPECT_NEAR(dq[t * dk + c], eq, 1e-5 * (1 + n)) << n << " " << dk << " " << t;
      EXPECT_NEAR(du[t * dk + c], eu, 1e-5 * (1 + n)) << n << " " << dk << " " << t;
    }
  }
}

TEST_P(SimdTest, GlaBlockWeightsMatchExpOfLogDecays) {
  // Log decays from none to strong (products reach far below 1e-30 and flush to 0).
  for (int64_t n = 1; n <= 8; ++n)
    for (int64_t dk : {1, 7, 8, 19, 64}) expect_gla_weights_match(n, dk, -30.f, false);
}

TEST_P(SimdTest, GlaChunkWeightsMatchExpOfLogDecays) {
  // Whole chunks: one partial block, full blocks with a partial last one, odd row counts; products
  // over 40 steps reach below 1e-30.
  for (int64_t n : {1, 5, 8, 9, 16, 23, 40})
    for (int64_t dk : {1, 7, 8, 19, 64}) expect_gla_weights_match(n, dk, -3.f, true);
}

TEST_P(SimdTest, GlaChunkDecaysMatchDoubleProducts) {
  // Every tail width, log rows wider than dk (ld > dk, the padding must not be read), decays that
  // underflow: products below 1e-30 are 0, every other factor within fp32 rounding of the exact one.
  for (int64_t n : {1, 2, 9, 32})
    for (int64_t dk = 1; dk <= 19; dk += (dk < 9 ? 1 : 10))
      for (bool with_queries : {false, true}) {
        const int64_t ldl = dk + 3;
        std::vector<float> logs = random_vector(n * ldl, -8.f, 0.f);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = dk; c < ldl; ++c) logs[static_cast<size_t>(r * ldl + c)] = std::nanf("");
        const auto q = random_vector(n * dk), u = random_vector(n * dk);
        // q and u as rows of wider matrices too, their padding NaN: never read.
        std::vector<float> qw(static_cast<size_t>(n * ldl), std::nanf("")), uw(qw);
        for (int64_t r = 0; r < n; ++r) {
          std::copy_n(&q[static_cast<size_t>(r * dk)], dk, &qw[static_cast<size_t>(r * ldl)]);
          std::copy_n(&u[static_cast<size_t>(r * dk)], dk, &uw[static_cast<size_t>(r * ldl)]);
        }
        std::vector<float> g(static_cast<size_t>(n * dk)), ea(g.size(), -1.f), eka(g.size()), qd(g.size(), -1.f),
            kd(g.size()), end(static_cast<size_t>(dk));
        simd::gla_chunk_decays(logs.data(), ldl, n, dk, qw.data(), ldl, uw.data(), ldl, g.data(), with_queries ? ea.data() : nullptr,
                               eka.data(), end.data(), with_queries ? qd.data() : nullptr, kd.data());
        auto expect = [&](float got, double want, const char* what, int64_t r, int64_t c) {
          if (std::abs(want / 1e-30 - 1) < 1e-4) return;  // either side of the flush threshold
          if (want < 1e-30) EXPECT_EQ(got, 0.f) << what << " n=" << n << " dk=" << dk << " " << r << "," << c;
          else EXPECT_NEAR(got, want, 1e-6 * std::abs(want) * (1 + n)) << what << " n=" << n << " dk=" << dk << " " << r << "," << c;
        };
        for (int64_t c = 0; c < dk; ++c) {
          double sum = 0;
          for (int64_t r = 0; r < n; ++r) {
            const size_t i = static_cast<size_t>(r * dk + c);
            sum += logs[static_cast<size_t>(r * ldl + c)];
            double after = 0;  // sum of the logs after r
            for (int64_t k = r + 1; k < n; ++k) after += logs[static_cast<size_t>(k * ldl + c)];
            expect(g[i], std::exp(double(logs[static_cast<size_t>(r * ldl + c)])), "g", r, c);
            expect(eka[i], std::exp(after), "eka", r, c);
            EXPECT_NEAR(kd[i], u[i] * double(eka[i]), 1e-7 * std::abs(u[i])) << r << "," << c;
            if (with_queries) {
              expect(ea[i], std::exp(sum), "ea", r, c);
              EXPECT_NEAR(qd[i], q[i] * double(ea[i]), 1e-7 * std::abs(q[i])) << r << "," << c;
            } else {
              EXPECT_EQ(ea[i], -1.f);
              EXPECT_EQ(qd[i], -1.f);
            }
          }
          EXPECT_NEAR(end[static_cast<size_t>(c)], std::exp(sum), 1e-6 * std::exp(sum) * (1 + n) + 1e-37) << c;  // fp32 underflow
        }
        // Without eka and kd nothing else changes, and gla_chunk_key_decays forms them from g alone.
        std::vector<float> g2(g.size()), end2(end.size()), eka2(g.size(), -1.f), kd2(g.size(), -1.f), ea2(g.size()),
            qd2(g.size());
        simd::gla_chunk_decays(logs.data(), ldl, n, dk, qw.data(), ldl, uw.data(), ldl, g2.data(), with_queries ? ea2.data() : nullptr,
                               nullptr, end2.data(), with_queries ? qd2.data() : nullptr, nullptr);
        EXPECT_EQ(g2, g);
        EXPECT_EQ(end2, end);
        if (with_queries) {
          EXPECT_EQ(ea2, ea);
          EXPECT_EQ(qd2, qd);
        }
        EXPECT_EQ(eka2, std::vector<float>(g.size(), -1.f));
        simd::gla_chunk_key_decays(n, dk, uw.data(), ldl, g2.data(), eka2.data(), kd2.data());
        EXPECT_EQ(eka2, eka);
        EXPECT_EQ(kd2, kd);
        if (!with_queries) continue;
        // With ku: u / ea, rounded once, in the same pass; nothing else changes.
        std::vector<float> g3(g.size()), end3(end.size()), ea3(g.size()), qd3(g.size()), ku(g.size(), -1.f);
        simd::gla_chunk_decays(logs.data(), ldl, n, dk, qw.data(), ldl, uw.data(), ldl, g3.data(), ea3.data(), nullptr,
                               end3.data(), qd3.data(), nullptr, ku.data());
        EXPECT_EQ(g3, g);
        EXPECT_EQ(end3, end);
        EXPECT_EQ(ea3, ea);
        EXPECT_EQ(qd3, qd);
        for (size_t i = 0; i < ku.size(); ++i)
          if (ea[i] > 0.f) {
            EXPECT_EQ(ku[i], u[i] / ea[i]) << "n=" << n << " dk=" << dk << " " << i;
          }
      }
}

TEST_P(SimdTest, GlaRatioGradientRowsScaleThenSumInOnePass) {
  // The same numbers as the three passes it replaces (dq *= ea, du /= ea, decay_gradient_rows),
  // bit for bit: every tail width and the 4-vector blocks, rows at their own strides (padding NaN,
  // never read nor written).
  for (int64_t n : {0, 1, 7, 32})
    for (int64_t dk : {1, 3, 8, 9, 19, 32, 33, 64, 70}) {
      auto padded = [&](int64_t pad, float lo, float hi) {
        std::vector<float> x = random_vector(n * (dk + pad), lo, hi);
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = dk; c < dk + pad; ++c) x[static_cast<size_t>(r * (dk + pad) + c)] = std::nanf("");
        return x;
      };
      const auto q = padded(1, -1.f, 1.f), u = padded(3, -1.f, 1.f), ea = padded(0, 1e-3f, 1.f), acc0 = random_vector(dk);
      const auto dq0 = padded(2, -1.f, 1.f), du0 = padded(4, -1.f, 1.f);
      auto dq_want = dq0, du_want = du0, acc_want = acc0;
      std::vector<float> out_want(static_cast<size_t>(n * (dk + 5)), -7.f), out = out_want;
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < dk; ++c) {
          const float e = ea[static_cast<size_t>(r * dk + c)];
          dq_want[static_cast<size_t>(r * (dk + 2) + c)] *= e;
          du_want[static_cast<size_t>(r * (dk + 4) + c)] /= e;
        }
      simd::decay_gradient_rows(q.data(), dk + 1, dq_want.data(), dk + 2, u.data(), dk + 3, du_want.data(), dk + 4, n, dk,
                                acc_want.data(), out_want.data(), dk + 5);
      auto dq = dq0, du = du0, acc = acc0;
      simd::gla_ratio_gradient_rows(q.data(), dk + 1, dq.data(), dk + 2, u.data(), dk + 3, du.data(), dk + 4, ea.data(), n,
                                    dk, acc.data(), out.data(), dk + 5);
      auto same = [](const std::vector<float>& a, const std::vector<float>& b) {  // NaN padding equal to NaN
        return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                          [](float x, float y) { return x == y || (std::isnan(x) && std::isnan(y)); });
      };
      EXPECT_TRUE(same(dq, dq_want)) << "n=" << n << " dk=" << dk;
      EXPECT_TRUE(same(du, du_want)) << "n=" << n << " dk=" << dk;
      EXPECT_EQ(acc, acc_want) << "n=" << n << " dk=" << dk;
      EXPECT_EQ(out, out_want) << "n=" << n << " dk=" << dk;
    }
}

TEST_P(SimdTest, DecayGradientRowsAreRunningSumsFromTheLastRow) {
  // Every tail width and the 4-vector blocks, each matrix at its own row stride (padding NaN:
  // never read), n = 0 leaving acc as it is.
  for (int64_t n : {0, 1, 7, 32})
    for (int64_t dk : {1, 3, 8, 9, 19, 32, 33, 64, 70}) {
      auto padded = [&](int64_t pad) {
        std::vector<float> x = random_vector(n * (dk + pad));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t c = dk; c < dk + pad; ++c) x[static_cast<size_t>(r * (dk + pad) + c)] = std::nanf("");
        return x;
      };
      const auto q = padded(1), dq = padded(2), u = padded(3), du = padded(0);
      const auto acc0 = random_vector(dk);
      std::vector<float> acc = acc0, out(static_cast<size_t>(n * (dk + 5)), -7.f);
      simd::decay_gradient_rows(q.data(), dk + 1, dq.data(), dk + 2, u.data(), dk + 3, du.data(), dk, n, dk, acc.data(),
                                out.data(), dk + 5);
      for (int64_t c = 0; c < dk; ++c) {
        // Up to four fp32 roundings per row (two with FMA), each within 6e-8 of the magnitude so far.
        double want = acc0[static_cast<size_t>(c)], mag = std::abs(want), tol = 0;
        for (int64_t r = n - 1; r >= 0; --r) {
          auto at = [&](const std::vector<float>& x, int64_t pad) { return double(x[static_cast<size_t>(r * (dk + pad) + c)]); };
          want += at(q, 1) * at(dq, 2) - at(u, 3) * at(du, 0);
          mag += std::abs(at(q, 1) * at(dq, 2)) + std::abs(at(u, 3) * at(du, 0));
          tol += 4 * 6e-8 * mag;
          EXPECT_NEAR(out[static_cast<size_t>(r * (dk + 5) + c)], want, tol) << "n=" << n << " dk=" << dk << " " << r << "," << c;
        }
        EXPECT_NEAR(acc[static_cast<size_t>(c)], want, tol) << "n=" << n << " dk=" << dk << " " << c;
      }
      for (int64_t r = 0; r < n; ++r)  // nothing past each output row
        for (int64_t c = dk; c < dk + 5; ++c) EXPECT_EQ(out[static_cast<size_t>(r * (dk + 5) + c)], -7.f);
    }
}

TEST_P(SimdTest, ScaleRowsScalesEachRowByItsFactor) {
  for (int64_t rows : {0, 1, 5})
    for (int64_t cols : {1, 7, 8, 17, 64}) {
      const int64_t ld = cols + 2;
      const auto x0 = random_vector(rows * ld), f = random_vector(rows);
      auto x = x0;
      simd::scale_rows(x.data(), rows, cols, ld, f.data());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < ld; ++c) {
          const size_t i = static_cast<size_t>(r * ld + c);
          EXPECT_EQ(x[i], c < cols ? x0[i] * f[static_cast<size_t>(r)] : x0[i]) << rows << "x" << cols << " " << r << "," << c;
        }
    }
}

TEST_P(SimdTest, RecurrentStepMatchesScalarLoops) {
  // Widths around the tiles and the 64-row blocks of the dots; every combination of read-outs.
  for (int64_t dk : {1, 3, 8, 19, 64, 70})
    for (int64_t dv : {1, 5, 8, 31, 32, 33, 67})
      for (int readouts = 0; readouts < 4; ++readouts)
        for (bool decayed : {false, true}) {
          const bool with_dots = readouts & 1, with_sums = readouts & 2;
          const int64_t ldm = dv + 3;
          auto m = random_vector(dk * ldm);
          const auto a = random_vector(dk), b = random_vector(dv), x = random_vector(dv), w = random_vector(dk),
                     log_gamma = random_vector(dk, -3.f, 0.f);  // both forms of the decay
          std::vector<double> em(m.begin(), m.end()), edots(static_cast<size_t>(dk), 0.0), esums(static_cast<size_t>(dv), 0.0);
          for (int64_t i = 0; i < dk; ++i)
            for (int64_t j = 0; j < dv; ++j) {
              double& e = em[static_cast<size_t>(i * ldm + j)];
              e = (decayed ? std::exp(double(log_gamma[i])) : 1.0) * e + double(a[i]) * b[j];
              edots[static_cast<size_t>(i)] += e * x[j];
              esums[static_cast<size_t>(j)] += double(w[i]) * e;
            }
          std::vector<float> dots(static_cast<size_t>(dk + 1), 99.f), sums(static_cast<size_t>(dv + 1), 99.f);
          simd::recurrent_step(m.data(), ldm, dk, dv, a.data(), b.data(), decayed ? log_gamma.data() : nullptr,
                               with_dots ? x.data() : nullptr, dots.data(), with_sums ? w.data() : nullptr, sums.data());
          const std::string where = std::to_string(dk) + "x" + std::to_string(dv) + " readouts " + std::to_string(readouts);
          for (int64_t i = 0; i < dk * ldm; ++i)
            EXPECT_NEAR(m[i], em[static_cast<size_t>(i)], 1e-5) << where << " " << i;  // padding untouched too
          for (int64_t i = 0; i < dk; ++i)
            EXPECT_NEAR(dots[i], with_dots ? edots[static_cast<size_t>(i)] : 99.0, 1e-5 * (1 + dv)) << where;
          for (int64_t j = 0; j < dv; ++j)
            EXPECT_NEAR(sums[j], with_sums ? esums[static_cast<size_t>(j)] : 99.0, 1e-5 * (1 + dk)) << where;
          EXPECT_EQ(dots[dk], 99.f);
          EXPECT_EQ(sums[dv], 99.f);
        }
  // The decay alone (a = 0) keeps its digits whatever gamma: M gamma within 1e-6 of itself.
  // (Through 1 - c, with c = 1 - gamma rounded near 1, a gamma of e^-9 would be off by 2.5e-4;
  // gammas near 1 are covered over 65,536 steps by CausalLinearAttention.LongSequencesStayAccurate.)
  const std::vector<float> logs = {0.f, -1e-7f, -1e-3f, -0.5f, -0.69f, -0.7f, -9.f, -20.f, -80.f};
  const int64_t rows = static_cast<int64_t>(logs.size()), dv = 9;
  auto m = random_vector(rows * dv, 0.5f, 1.f);
  const auto m0 = m;
  const std::vector<float> zero(static_cast<size_t>(rows), 0.f);
  const auto b = random_vector(dv);
  simd::recurrent_step(m.data(), dv, rows, dv, zero.data(), b.data(), logs.data(), nullptr, nullptr, nullptr, nullptr);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < dv; ++j) {
      const double e = std::exp(double(logs[static_cast<size_t>(i)])) * m0[static_cast<size_t>(i * dv + j)];
      EXPECT_NEAR(m[static_cast<size_t>(i * dv + j)], e, 1e-6 * e) << "log gamma " << logs[static_cast<size_t>(i)];
    }
}

TEST_P(SimdTest, GemvRowsMatchesDots) {
  // Rows of 8 to 64 numbers are whole vectors on some target (the short-row kernel, 16 rows per
  // reduction); 130 rows leave a remainder on every target.
  for (int64_t m : {0, 1, 3, 4, 7, 15, 16, 17, 33, 130})
    for (int64_t n : {1, 5, 8, 16, 17, 32, 48, 64, 128}) {
      const int64_t lda = n + 2;
      const auto a = random_vector(std::max<int64_t>(1, m) * lda), x = random_vector(n);
      std::vector<uint16_t> ab(a.size());
      simd::f32_to_bf16(a.data(), ab.data(), static_cast<int64_t>(a.size()));
      std::vector<float> aw(a.size());
      simd::bf16_to_f32(ab.data(), aw.data(), static_cast<int64_t>(a.size()));
      std::vector<float> y(static_cast<size_t>(m + 1), 99.f), yb(y);
      simd::gemv_n(a.data(), lda, x.data(), m, n, y.data());
      simd::gemv_n_bf16(ab.data(), lda, x.data(), m, n, yb.data());
      for (int64_t i = 0; i < m; ++i) {
        double e = 0, eb = 0;
        for (int64_t j = 0; j < n; ++j) e += double(a[i * lda + j]) * x[j], eb += double(aw[i * lda + j]) * x[j];
        EXPECT_NEAR(y[i], e, 1e-5 * (1 + n)) << m << "x" << n << " row " << i;
        EXPECT_NEAR(yb[i], eb, 1e-5 * (1 + n)) << m << "x" << n << " row " << i;
      }
      EXPECT_EQ(y[m], 99.f);
      EXPECT_EQ(yb[m], 99.f);
    }
}

TEST_P(SimdTest, Bf16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7: ties go to even (1); just above goes up.
  const std::vector<float> x = {1.f, 1.00390625f, std::nextafter(1.00390625f, 2.f), -2.5f, 65504.f};
  std::vector<uint16_t> b(x.size());
  simd::f32_to_bf16(x.data(), b.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(b[0], 0x3f80);
  EXPECT_EQ(b[1], 0x3f80);
  EXPECT_EQ(b[2], 0x3f81);
  std::vector<float> back(x.size());
  simd::bf16_to_f32(b.data(), back.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], std::abs(x[i]) / 256) << i;
  const float nan = std::nanf("");
  uint16_t bn;
  simd::f32_to_bf16(&nan, &bn, 1);
  float nb;
  simd::bf16_to_f32(&bn, &nb, 1);
  EXPECT_TRUE(std::isnan(nb));
}

TEST_P(SimdTest, ExtremesStayFiniteAndNaNPropagates) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {-1e30f, -200.f, -88.f, 0.f, 88.f, 200.f, 1e30f};
  std::vector<float> s(x.size());
  simd::sigmoid(x.data(), s.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(std::isfinite(s[i])) << x[i];
    EXPECT_GE(s[i], 0.f);
    EXPECT_LE(s[i], 1.f);
  }
  EXPECT_EQ(s.front(), 0.f);
  EXPECT_EQ(s.back(), 1.f);
  std::vector<float> nan = {1.f, std::nanf(""), 2.f};
  std::vector<float> out(3);
  simd::sigmoid(nan.data(), out.data(), 3);
  EXPECT_TRUE(std::isnan(out[1]));
  simd::feature_map(FeatureMap::relu, nan.data(), out.data(), 3);
  EXPECT_TRUE(std::isnan(out[1]));
  simd::feature_map(FeatureMap::elu_plus_one, nan.data(), out.data(), 3);
  EXPECT_TRUE(std::isnan(out[1]));
  EXPECT_EQ(simd::max(nullptr, 0), -inf);
  std::vector<float> e = {0.f, -200.f};
  EXPECT_EQ(simd::exp_shift_sum(e.data(), 2, 0.f), 1.f);  // exp(-200) underflows to 0
  EXPECT_EQ(e[1], 0.f);
}

std::vector<int64_t> supported_targets() {
  std::vector<int64_t> targets;
  for (int64_t bits = simd::supported_targets(); bits != 0; bits &= bits - 1)
    targets.push_back(bits & -bits);
  return targets;
}

INSTANTIATE_TEST_SUITE_P(EveryTarget, SimdTest, ::testing::ValuesIn(supported_targets()),
                         [](const ::testing::TestParamInfo<int64_t>& param) {
                           return std::string(hwy::TargetName(param.param));
                         });

}  // namespace
}  // namespace linattn
