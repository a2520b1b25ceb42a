// Every backward kernel against central finite differences of the double-precision reference.
// The loss is L = sum(R * output) for a random R, so the output gradient fed to the backward
// pass is R. Inputs are perturbed in place (fp32) and the quotient uses the exact perturbation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "linattn/linattn.h"
#include "reference.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

double dot(const std::vector<double>& a, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * r[i];
  return s;
}

void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic, const std::function<double()>& loss,
                     const std::string& what, double tol = 5e-4) {
  test::expect_gradient(x, analytic, loss, what, tol, 1e-3f);
}

// Keeps relu's inputs away from its kink, where finite differences are meaningless.
void away_from_zero(std::vector<float>& x) {
  for (float& v : x)
    if (std::abs(v) < 0.05f) v = v < 0 ? -0.05f : 0.05f;
}

struct SoftmaxCase {
  bool causal, ragged, additive;
};

void PrintTo(const SoftmaxCase& c, std::ostream* os) {
  *os << (c.additive ? "additive" : "dot") << (c.causal ? " causal" : "") << (c.ragged ? " ragged" : "");
}

class SoftmaxGradient : public ::testing::TestWithParam<SoftmaxCase> {};

TEST_P(SoftmaxGradient, MatchesFiniteDifferences) {
  const SoftmaxCase sc = GetParam();
  const int64_t B = 2, H = 2, T = sc.causal ? 7 : 5, Tk = 7, dq_w = sc.additive ? 5 : 4, dk_w = 4, dv_w = 3, A = 6;
  const int64_t Tq = sc.causal ? Tk : T;
  auto q = test::random_tensor<4>({B, H, Tq, dq_w}), k = test::random_tensor<4>({B, H, Tk, dk_w});
  auto v = test::random_tensor<4>({B, H, Tk, dv_w});
  auto w_k = test::random_tensor<2>({A, dk_w}), w_q = test::random_tensor<2>({A, dq_w});
  auto bias = test::random_tensor<1>({A}), w = test::random_tensor<1>({A});
  const std::vector<int64_t> kv_len = sc.ragged ? std::vector<int64_t>{7, 3} : std::vector<int64_t>{};
  const std::vector<int64_t> q_len = sc.ragged && !sc.causal ? std::vector<int64_t>{2, 5} : std::vector<int64_t>{};
  const float scale = 0.7f;
  Tensor<4> out({B, H, Tq, dv_w});
  Tensor<3> lse({B, H, Tq});
  const AdditiveScorer scorer{w_k.cview(), w_q.cview(), bias.cview(), w.cview()};
  if (sc.additive)
    additive_attention(q.cview(), k.cview(), v.cview(), scorer, out.view(), sc.causal, kv_len, q_len, lse.view());
  else
    softmax_attention(q.cview(), k.cview(), v.cview(), out.view(), {.causal = sc.causal, .scale = scale}, kv_len,
                      q_len, lse.view());
  const auto R = test::random_tensor<4>({B, H, Tq, dv_w});
  Tensor<4> dq(q.shape), dk(k.shape), dv(v.shape);
  Tensor<2> dw_k(w_k.shape), dw_q(w_q.shape);
  Tensor<1> dbias(bias.shape), dw(w.shape);
  if (sc.additive)
    additive_attention_backward(q.cview(), k.cview(), v.cview(), scorer, out.cview(), lse.cview(), R.cview(),
                                dq.view(), dk.view(), dv.view(), {dw_k.view(), dw_q.view(), dbias.view(), dw.view()},
                                sc.causal, kv_len, q_len);
  else
    softmax_attention_backward(q.cview(), k.cview(), v.cview(), out.cview(), lse.cview(), R.cview(), dq.view(),
                               dk.view(), dv.view(), {.causal = sc.causal, .scale = scale}, kv_len, q_len);
  const test::reference::Additive add{&w_k, &w_q, &bias, &w};
  auto loss = [&] {
    std::vector<double> o, l;
    test::reference::softmax_attention(q, k, v, sc.causal, scale, kv_len, q_len, sc.additive ? &add : nullptr, o, l);
    return dot(o, R.data);
  };
  expect_gradient(q.data, dq.data, loss, "dq");
  expect_gradient(k.data, dk.data, loss, "dk");
  expect_gradient(v.data, dv.data, loss, "dv");
  if (sc.additive) {
    expect_gradient(w_k.data, dw_k.data, loss, "dW_k");
    expect_gradient(w_q.data, dw_q.data, loss, "dW_q");
    expect_gradient(bias.data, dbias.data, loss, "dbias");
    expect_gradient(w.data, dw.data, loss, "dw");
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SoftmaxGradient,
                         ::testing::Values(SoftmaxCase{false, false, false}, SoftmaxCase{true, false, false},
                                           SoftmaxCase{false, true, false}, SoftmaxCase{true, true, false},
                                           SoftmaxCase{false, false, true}, SoftmaxCase{true, true, true},
                                           SoftmaxCase{false, true, true}));

struct LinearCase {
  FeatureMap map;
  bool gated, ragged, normalize, mean;
};

void PrintTo(const LinearCase& c, std::ostream* os) {
  *os << "phi=" << to_string(c.map) << (c.gated ? " gated" : "") << (c.ragged ? " ragged" : "")
      << (c.normalize ? " normalize" : "") << (c.mean ? " mean" : "");
}

class LinearGradient : public ::testing::TestWithParam<LinearCase> {};

TEST_P(LinearGradient, EncodeMatchesFiniteDifferences) {
  const LinearCase lc = GetParam();
  const int64_t B = 2, H = 2, T = 6, dk_w = 4, dv_w = 3;
  auto k = test::random_tensor<4>({B, H, T, dk_w}), v = test::random_tensor<4>({B, H, T, dv_w});
  auto g = test::random_tensor<3>({B, H, T}, 0.2f, 1.f);
  if (lc.map == FeatureMap::relu) away_from_zero(k.data);
  const std::vector<int64_t> len = lc.ragged ? std::vector<int64_t>{6, 2} : std::vector<int64_t>{};
  const auto RM = test::random_tensor<4>({B, H, dk_w, dv_w});
  const auto Rz = test::random_tensor<3>({B, H, dk_w});
  Tensor<4> dk(k.shape), dv(v.shape);
  Tensor<3> dg(g.shape);
  linear_attention_encode_backward(k.cview(), v.cview(), RM.cview(), dk.view(), dv.view(), {.feature_map = lc.map},
                                   Rz.cview(), len, lc.gated ? g.cview() : CView3{}, lc.gated ? dg.view() : View3{});
  auto loss = [&] {
    std::vector<double> M, z;
    test::reference::linear_encode(k, v, lc.gated ? &g : nullptr, len, lc.map, M, z);
    return dot(M, RM.data) + dot(z, Rz.data);
  };
  expect_gradient(k.data, dk.data, loss, "dk");
  expect_gradient(v.data, dv.data, loss, "dv");
  if (lc.gated) expect_gradient(g.data, dg.data, loss, "dgates");
}

TEST_P(LinearGradient, LookupMatchesFiniteDifferences) {
  const LinearCase lc = GetParam();
  const int64_t B = 2, H = 2, Tq = 5, dk_w = 4, dv_w = 3;
  auto q = test::random_tensor<4>({B, H, Tq, dk_w}), M = test::random_tensor<4>({B, H, dk_w, dv_w});
  // A positive normaliser keeps z . phi(q) + eps away from 0, as it is for positive feature maps.
  auto z = test::random_tensor<3>({B, H, dk_w}, 0.5f, 1.5f);
  if (lc.map == FeatureMap::relu) away_from_zero(q.data);
  const std::vector<int64_t> q_len = lc.ragged ? std::vector<int64_t>{5, 2} : std::vector<int64_t>{};
  const std::vector<int64_t> counts = {7, 3};
  const bool normalize = lc.normalize && lc.map != FeatureMap::identity;  // identity can make z.q ~ 0
  const LinearLookupOptions o{.feature_map = lc.map, .normalize = normalize, .eps = 1e-3f,
                              .mean = lc.mean && !normalize, .scale = 1.5f};
  const auto R = test::random_tensor<4>({B, H, Tq, dv_w});
  Tensor<4> dq(q.shape), dM(M.shape);
  Tensor<3> dz(z.shape);
  linear_attention_lookup_backward(q.cview(), M.cview(), R.cview(), dq.view(), dM.view(), o,
                                   normalize ? z.cview() : CView3{}, normalize ? dz.view() : View3{},
                                   o.mean ? Lengths(counts) : Lengths{}, q_len);
  auto loss = [&] {
    double L = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < (q_len.empty() ? Tq : q_len[b]); ++i) {
          double den = o.eps;
          for (int64_t c = 0; c < dk_w; ++c) den += z.at(b, h, c) * test::reference::phi(lc.map, q.at(b, h, i, c));
          for (int64_t j = 0; j < dv_w; ++j) {
            double r = 0;
            for (int64_t c = 0; c < dk_w; ++c) r += M.at(b, h, c, j) * test::reference::phi(lc.map, q.at(b, h, i, c));
            r *= o.scale;
            if (o.mean) r /= counts[b];
            if (normalize) r /= den;
            L += r * R.at(b, h, i, j);
          }
        }
    return L;
  };
  expect_gradient(q.data, dq.data, loss, "dq");
  expect_gradient(M.data, dM.data, loss, "dstate");
  if (normalize) expect_gradient(z.data, dz.data, loss, "dnormalizer");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LinearGradient,
    ::testing::Values(LinearCase{FeatureMap::identity, false, false, false, false},
                      LinearCase{FeatureMap::identity, true, true, false, true},
                      LinearCase{FeatureMap::elu_plus_one, false, false, true, false},
                      LinearCase{FeatureMap::elu_plus_one, true, true, true, false},
                      LinearCase{FeatureMap::relu, true, false, true, false},
                      LinearCase{FeatureMap::relu, false, true, false, true}));

TEST(GateGradient, ScalarAndVectorMatchFiniteDifferences) {
  const int64_t N = 6, d = 5;
  auto h = test::random_tensor<2>({N, d}), W = test::random_tensor<2>({d, d});
  auto w = test::random_tensor<1>({d}), bv = test::random_tensor<1>({d});
  float b = 0.3f;
  const auto Rg = test::random_tensor<1>({N});
  const auto Ro = test::random_tensor<2>({N, d});
  Tensor<1> g({N});
  scalar_gate(h.cview(), w.cview(), b, g.view());
  Tensor<2> dh({N, d});
  Tensor<1> dw({d});
  float db = 0;
  scalar_gate_backward(h.cview(), w.cview(), g.cview(), Rg.cview(), dh.view(), dw.view(), &db);
  auto scalar_loss = [&] {
    double L = 0;
    for (int64_t n = 0; n < N; ++n) {
      double x = b;
      for (int64_t c = 0; c < d; ++c) x += double(h.at(n, c)) * w.at(c);
      L += test::reference::sigmoid(x) * Rg.at(n);
    }
    return L;
  };
  expect_gradient(h.data, dh.data, scalar_loss, "scalar dh");
  expect_gradient(w.data, dw.data, scalar_loss, "scalar dw");
  std::vector<float> bvec = {b};
  auto bias_loss = [&] { b = bvec[0]; return scalar_loss(); };
  expect_gradient(bvec, {db}, bias_loss, "scalar db");

  Tensor<2> out({N, d}), gate({N, d}), dh2({N, d}), dW({d, d});
  Tensor<1> db2({d});
  vector_gate(h.cview(), W.cview(), bv.cview(), out.view(), gate.view());
  vector_gate_backward(h.cview(), W.cview(), gate.cview(), Ro.cview(), dh2.view(), dW.view(), db2.view());
  auto vector_loss = [&] {
    double L = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < d; ++i) {
        double x = bv.at(i);
        for (int64_t c = 0; c < d; ++c) x += double(W.at(i, c)) * h.at(n, c);
        L += test::reference::sigmoid(x) * h.at(n, i) * Ro.at(n, i);
      }
    return L;
  };
  expect_gradient(h.data, dh2.data, vector_loss, "vector dh");
  expect_gradient(W.data, dW.data, vector_loss, "vector dW");
  expect_gradient(bv.data, db2.data, vector_loss, "vector db");
}

}  // namespace
}  // namespace linattn
