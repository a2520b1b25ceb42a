// Causal linear attention with decay against the plain double-precision recurrence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <functional>
#include <limits>
#include <string>

#include "linattn/linattn.h"
#include "reference.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

struct Inputs {
  Tensor<4> q, k, v, log_channel, init;
  Tensor<3> gates, log_step, init_z;
  Tensor<1> head;
  std::vector<int64_t> lengths;
};

Inputs make_inputs(int64_t B, int64_t H, int64_t T, int64_t dk, int64_t dv, bool ragged) {
  Inputs x;
  x.q = test::random_tensor<4>({B, H, T, dk});
  x.k = test::random_tensor<4>({B, H, T, dk});
  x.v = test::random_tensor<4>({B, H, T, dv});
  x.gates = test::random_tensor<3>({B, H, T}, 0.2f, 1.f);
  x.log_step = test::random_tensor<3>({B, H, T}, -0.6f, -0.01f);
  x.log_channel = test::random_tensor<4>({B, H, T, dk}, -0.6f, -0.01f);
  // Strong per-channel decays on head 1: a chunk of 7 or more positions decays below 1e-15, which
  // takes the GLA sub-block kernels rather than the weights as ratios (both paths in every case).
  for (int64_t b = 0; b < B && H > 1; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < dk; ++c) x.log_channel(b, 1, t, c) = x.log_channel(b, 1, t, c) * 10.f - 3.f;
  x.head = Tensor<1>({H});
  const auto g = retnet_decays(H);
  for (int64_t h = 0; h < H; ++h) x.head(h) = g[static_cast<size_t>(h)];
  x.init = test::random_tensor<4>({B, H, dk, dv});
  x.init_z = test::random_tensor<3>({B, H, dk}, 0.5f, 1.5f);
  if (ragged)
    for (int64_t b = 0; b < B; ++b) x.lengths.push_back(b == 0 ? T : (b * T) / (B + 1));
  return x;
}

Decay decay_of(const Inputs& x, DecayKind kind) {
  Decay d;
  d.kind = kind;
  if (kind == DecayKind::per_head) d.per_head = x.head.cview();
  if (kind == DecayKind::per_step) d.per_step = x.log_step.cview();
  if (kind == DecayKind::per_channel) d.per_channel = x.log_channel.cview();
  return d;
}

// The recurrence, in double. Returns out [B,H,T,dv] flat; final M and z in `final_m`, `final_z`.
std::vector<double> recurrence(const Inputs& x, DecayKind kind, FeatureMap phi, bool normalize, bool gated, bool with_init,
                               double eps, std::vector<double>* final_m = nullptr, std::vector<double>* final_z = nullptr) {
  const int64_t B = x.q.shape[0], H = x.q.shape[1], T = x.q.shape[2], dk = x.q.shape[3], dv = x.v.shape[3];
  std::vector<double> out(static_cast<size_t>(B * H * T * dv), 0.0);
  if (final_m) final_m->assign(static_cast<size_t>(B * H * dk * dv), 0.0);
  if (final_z) final_z->assign(static_cast<size_t>(B * H * dk), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> M(static_cast<size_t>(dk * dv), 0.0), z(static_cast<size_t>(dk), 0.0);
      if (with_init) {
        for (int64_t i = 0; i < dk * dv; ++i) M[i] = x.init.at(b, h, i / dv, i % dv);
        if (normalize)
          for (int64_t i = 0; i < dk; ++i) z[i] = x.init_z.at(b, h, i);
      }
      const int64_t n = x.lengths.empty() ? T : x.lengths[b];
      for (int64_t t = 0; t < n; ++t) {
        const double g = gated ? x.gates.at(b, h, t) : 1.0;
        for (int64_t i = 0; i < dk; ++i) {
          double log_gamma = 0;
          if (kind == DecayKind::per_head) log_gamma = std::log(double(x.head.at(h)));
          if (kind == DecayKind::per_step) log_gamma = x.log_step.at(b, h, t);
          if (kind == DecayKind::per_channel) log_gamma = x.log_channel.at(b, h, t, i);
          const double gamma = std::exp(log_gamma), pk = test::reference::phi(phi, x.k.at(b, h, t, i));
          z[i] = gamma * z[i] + g * pk;
          for (int64_t j = 0; j < dv; ++j) M[i * dv + j] = gamma * M[i * dv + j] + g * pk * x.v.at(b, h, t, j);
        }
        double den = eps;
        for (int64_t i = 0; i < dk; ++i) den += z[i] * test::reference::phi(phi, x.q.at(b, h, t, i));
        for (int64_t j = 0; j < dv; ++j) {
          double o = 0;
          for (int64_t i = 0; i < dk; ++i) o += M[i * dv + j] * test::reference::phi(phi, x.q.at(b, h, t, i));
          out[((b * H + h) * T + t) * dv + j] = normalize ? o / den : o;
        }
      }
      if (final_m) std::copy(M.begin(), M.end(), final_m->begin() + (b * H + h) * dk * dv);
      if (final_z) std::copy(z.begin(), z.end(), final_z->begin() + (b * H + h) * dk);
    }
  return out;
}

struct Case {
  DecayKind decay;
  FeatureMap phi;
  bool normalize, gated, ragged, init;
  int64_t chunk, T;
};

void PrintTo(const Case& c, std::ostream* os) {
  const char* kinds[] = {"none", "per_head", "per_step", "per_channel"};
  *os << "decay=" << kinds[static_cast<int>(c.decay)] << " phi=" << to_string(c.phi) << (c.normalize ? " normalize" : "")
      << (c.gated ? " gated" : "") << (c.ragged ? " ragged" : "") << (c.init ? " initial-state" : "")
      << " chunk=" << c.chunk << " T=" << c.T;
}

class CausalLinearAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(CausalLinearAttentionTest, ForwardMatchesRecurrence) {
  const Case cs = GetParam();
  const int64_t B = 3, H = 2, dk = 5, dv = 7;
  const Inputs x = make_inputs(B, H, cs.T, dk, dv, cs.ragged);
  Tensor<4> out({B, H, cs.T, dv}, 9.f), fin({B, H, dk, dv});
  Tensor<3> fin_z({B, H, dk});
  std::vector<double> ref_m, ref_z;
  const auto ref = recurrence(x, cs.decay, cs.phi, cs.normalize, cs.gated, cs.init, 1e-3, &ref_m, &ref_z);
  for (CausalAlgorithm algorithm : {CausalAlgorithm::automatic, CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
    std::fill(out.data.begin(), out.data.end(), 9.f);
    const CausalLinearAttentionOptions o{.feature_map = cs.phi, .normalize = cs.normalize, .eps = 1e-3f,
                                         .chunk_size = cs.chunk, .algorithm = algorithm};
    causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), decay_of(x, cs.decay), o,
                            {.lengths = x.lengths,
                             .gates = cs.gated ? x.gates.cview() : CView3{},
                             .initial_state = cs.init ? x.init.cview() : CView4{},
                             .initial_normalizer = cs.init && cs.normalize ? x.init_z.cview() : CView3{}},
                            {.final_state = fin.view(), .final_normalizer = cs.normalize ? fin_z.view() : View3{}});
    const int which = static_cast<int>(algorithm);
    EXPECT_LE(test::relative_error(out.data, ref), 1e-5) << "algorithm " << which;
    EXPECT_LE(test::relative_error(fin.data, ref_m), 1e-5) << "algorithm " << which;
    if (cs.normalize) {
      EXPECT_LE(test::relative_error(fin_z.data, ref_z), 1e-5) << "algorithm " << which;
    }
    for (int64_t b = 0; b < B; ++b)  // padding outputs are 0 on every path
      for (int64_t t = x.lengths.empty() ? cs.T : x.lengths[static_cast<size_t>(b)]; t < cs.T; ++t)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t j = 0; j < dv; ++j) ASSERT_EQ(out(b, h, t, j), 0.f) << "algorithm " << which;
  }
}

TEST_P(CausalLinearAttentionTest, GradientsMatchFiniteDifferences) {
  const Case cs = GetParam();
  if (cs.T > 40) GTEST_SKIP() << "finite differences on the small cases";
  const int64_t B = 2, H = 2, dk = 3, dv = 2;
  Inputs x = make_inputs(B, H, cs.T, dk, dv, cs.ragged);
  if (cs.phi == FeatureMap::relu)
    for (auto* t : {&x.q, &x.k})
      for (float& v : t->data)
        if (std::abs(v) < 0.05f) v = v < 0 ? -0.05f : 0.05f;
  const auto R = test::random_tensor<4>({B, H, cs.T, dv});
  const auto RM = test::random_tensor<4>({B, H, dk, dv});
  const auto Rz = test::random_tensor<3>({B, H, dk});
  // L = sum R out + sum RM M_final + sum Rz z_final
  auto loss = [&] {
    std::vector<double> m, z;
    const auto out = recurrence(x, cs.decay, cs.phi, cs.normalize, cs.gated, cs.init, 1e-3, &m, &z);
    double L = 0;
    for (size_t i = 0; i < out.size(); ++i) L += out[i] * R.data[i];
    for (size_t i = 0; i < m.size(); ++i) L += m[i] * RM.data[i];
    if (cs.normalize)
      for (size_t i = 0; i < z.size(); ++i) L += z[i] * Rz.data[i];
    return L;
  };
  // Both backward algorithms (automatic picks one of them).
  for (CausalAlgorithm algorithm : {CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
    SCOPED_TRACE("algorithm " + std::to_string(static_cast<int>(algorithm)));
    const CausalLinearAttentionOptions o{.feature_map = cs.phi, .normalize = cs.normalize, .eps = 1e-3f,
                                         .chunk_size = cs.chunk, .algorithm = algorithm};
    Tensor<4> dq(x.q.shape), dk_(x.k.shape), dv_(x.v.shape), dch(x.log_channel.shape), dinit(x.init.shape);
    Tensor<3> dg(x.gates.shape), dstep(x.log_step.shape), dinit_z(x.init_z.shape);
    CausalLinearAttentionGrads g{dq.view(), dk_.view(), dv_.view()};
    if (cs.gated) g.dgates = dg.view();
    if (cs.decay == DecayKind::per_step) g.dper_step = dstep.view();
    if (cs.decay == DecayKind::per_channel) g.dper_channel = dch.view();
    if (cs.init) g.dinitial_state = dinit.view();
    if (cs.init && cs.normalize) g.dinitial_normalizer = dinit_z.view();
    causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), R.cview(), g, decay_of(x, cs.decay), o,
                                     {.lengths = x.lengths,
                                      .gates = cs.gated ? x.gates.cview() : CView3{},
                                      .initial_state = cs.init ? x.init.cview() : CView4{},
                                      .initial_normalizer = cs.init && cs.normalize ? x.init_z.cview() : CView3{}},
                                     {.dfinal_state = RM.cview(), .dfinal_normalizer = cs.normalize ? Rz.cview() : CView3{}});
    // Step 1e-4 and tolerance 1e-4: tight enough that a 0.1% error in any backward term fails.
    auto check = [&](std::vector<float>& p, const std::vector<float>& analytic, const char* what) {
      test::expect_gradient(p, analytic, loss, what, 1e-4, 1e-4f);
    };
    check(x.q.data, dq.data, "dq");
    check(x.k.data, dk_.data, "dk");
    check(x.v.data, dv_.data, "dv");
    if (cs.gated) check(x.gates.data, dg.data, "dgates");
    if (cs.decay == DecayKind::per_step) check(x.log_step.data, dstep.data, "dlog_decay (per step)");
    if (cs.decay == DecayKind::per_channel) check(x.log_channel.data, dch.data, "dlog_decay (per channel)");
    if (cs.init) check(x.init.data, dinit.data, "dinitial_state");
    if (cs.init && cs.normalize) check(x.init_z.data, dinit_z.data, "dinitial_normalizer");
    if (cs.ragged) {  // the padding gets zero gradients
      for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t t = x.lengths[static_cast<size_t>(b)]; t < cs.T; ++t)
            for (int64_t i = 0; i < dk; ++i) ASSERT_EQ(dq(b, h, t, i), 0.f);
    }
  }
}

// The forward's chunk-start states: row c is the recurrence's state after min(n, c L) positions
// (row 0 the initial state), row ceil(n / L) the final state, later rows 0. Every algorithm
// saves them, and a backward reading them gives the gradients of one that recomputes them.
TEST_P(CausalLinearAttentionTest, ChunkStatesSavedByTheForwardServeTheBackward) {
  const Case cs = GetParam();
  const int64_t B = 3, H = 2, dk = 5, dv = 4, L = cs.chunk, dva = dv + (cs.normalize ? 1 : 0);
  const Inputs x = make_inputs(B, H, cs.T, dk, dv, cs.ragged);
  const auto R = test::random_tensor<4>({B, H, cs.T, dv});
  const auto RM = test::random_tensor<4>({B, H, dk, dv});
  const Decay decay = decay_of(x, cs.decay);
  const CView3 gates = cs.gated ? x.gates.cview() : CView3{};
  const CView4 init = cs.init ? x.init.cview() : CView4{};
  const CView3 init_z = cs.init && cs.normalize ? x.init_z.cview() : CView3{};
  const CausalLinearAttentionOptions base{.feature_map = cs.phi, .normalize = cs.normalize, .eps = 1e-3f, .chunk_size = L};
  const auto shape = causal_chunk_states_shape(x.q.cview(), x.v.cview(), base);
  ASSERT_EQ(shape, (std::array<int64_t, 4>{B, H, (cs.T + L - 1) / L + 1, dk * dva}));
  // The reference states: the recurrence's final state over the first min(n, c L) positions.
  Tensor<4> expected(shape);
  for (int64_t c = 0; c < shape[2]; ++c) {
    Inputs prefix = x;
    prefix.lengths.assign(static_cast<size_t>(B), 0);
    for (int64_t b = 0; b < B; ++b) prefix.lengths[b] = std::min(c * L, x.lengths.empty() ? cs.T : x.lengths[b]);
    std::vector<double> m, z;
    recurrence(prefix, cs.decay, cs.phi, cs.normalize, cs.gated, cs.init, 1e-3, &m, &z);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = x.lengths.empty() ? cs.T : x.lengths[b];
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < dk; ++i)
          for (int64_t j = 0; j < dva; ++j) {
            const bool past_final = c > (n + L - 1) / L;
            const double value = j < dv ? m[((b * H + h) * dk + i) * dv + j] : z[(b * H + h) * dk + i];
            expected(b, h, c, i * dva + j) = past_final ? 0.f : static_cast<float>(value);
          }
    }
  }
  auto gradients = [&](const CausalLinearAttentionOptions& o, CView4 states) {
    std::vector<Tensor<4>> g4{Tensor<4>(x.q.shape), Tensor<4>(x.k.shape), Tensor<4>(x.v.shape),
                              Tensor<4>(x.log_channel.shape), Tensor<4>(x.init.shape)};
    Tensor<3> dg(x.gates.shape), dstep(x.log_step.shape);
    CausalLinearAttentionGrads g{g4[0].view(), g4[1].view(), g4[2].view()};
    if (cs.gated) g.dgates = dg.view();
    if (cs.decay == DecayKind::per_step) g.dper_step = dstep.view();
    if (cs.decay == DecayKind::per_channel) g.dper_channel = g4[3].view();
    if (cs.init) g.dinitial_state = g4[4].view();
    causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), R.cview(), g, decay, o,
                                     {.lengths = x.lengths, .gates = gates, .initial_state = init, .initial_normalizer = init_z},
                                     {.dfinal_state = RM.cview(), .chunk_states = states});
    std::vector<float> all;
    for (const auto& t : g4) all.insert(all.end(), t.data.begin(), t.data.end());
    all.insert(all.end(), dg.data.begin(), dg.data.end());
    all.insert(all.end(), dstep.data.begin(), dstep.data.end());
    return all;
  };
  CausalLinearAttentionOptions chunked = base;
  chunked.algorithm = CausalAlgorithm::chunked;
  const auto recomputed = gradients(chunked, {});
  for (CausalAlgorithm algorithm : {CausalAlgorithm::automatic, CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
    SCOPED_TRACE("forward algorithm " + std::to_string(static_cast<int>(algorithm)));
    CausalLinearAttentionOptions o = base;
    o.algorithm = algorithm;
    Tensor<4> out({B, H, cs.T, dv}), states(shape, 7.f);
    causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), decay, o,
                            {.lengths = x.lengths, .gates = gates, .initial_state = init, .initial_normalizer = init_z},
                            {.chunk_states = states.view()});
    EXPECT_LE(test::relative_error(states.data, std::vector<double>(expected.data.begin(), expected.data.end())), 1e-5);
    for (int64_t b = 0; b < B; ++b)  // past the final state: exactly 0, never stale values
      for (int64_t c = ((x.lengths.empty() ? cs.T : x.lengths[b]) + L - 1) / L + 1; c < shape[2]; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t i = 0; i < dk * dva; ++i) ASSERT_EQ(states(b, h, c, i), 0.f);
    // The chunked backward reading these states, against recomputing them.
    EXPECT_LE(test::relative_error(gradients(chunked, states.cview()), recomputed), 1e-5);
  }
}

std::vector<Case> cases() {
  std::vector<Case> c;
  for (DecayKind d : {DecayKind::none, DecayKind::per_head, DecayKind::per_step, DecayKind::per_channel}) {
    c.push_back({d, FeatureMap::identity, false, false, false, false, 64, 1});      // T = 1
    c.push_back({d, FeatureMap::identity, false, true, true, true, 7, 23});         // T not a multiple of L
    c.push_back({d, FeatureMap::elu_plus_one, true, true, false, true, 4, 17});     // normalised
    c.push_back({d, FeatureMap::relu, true, false, true, false, 1, 9});             // chunk of 1 = recurrence
    c.push_back({d, FeatureMap::identity, false, true, true, true, 64, 150});       // several 64-chunks
    c.push_back({d, FeatureMap::elu_plus_one, true, true, true, true, 32, 40});     // sub-blocks of 16 inside a chunk
  }
  return c;
}

INSTANTIATE_TEST_SUITE_P(Cases, CausalLinearAttentionTest, ::testing::ValuesIn(cases()));

TEST(CausalLinearAttention, PiecesEqualTheWholeAndStepsEqualTheChunks) {
  const int64_t B = 2, H = 2, T = 50, dk = 6, dv = 5;
  const Inputs x = make_inputs(B, H, T, dk, dv, false);
  const Decay decay = decay_of(x, DecayKind::per_channel);
  const CausalLinearAttentionOptions o{.feature_map = FeatureMap::elu_plus_one, .normalize = true, .chunk_size = 16};
  Tensor<4> whole({B, H, T, dv}), fin({B, H, dk, dv});
  Tensor<3> fin_z({B, H, dk});
  causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), whole.view(), decay, o, {.gates = x.gates.cview()},
                          {.final_state = fin.view(), .final_normalizer = fin_z.view()});
  // Two pieces, 19 + 31, the second starting from the first's final state.
  Tensor<4> parts({B, H, T, dv}), mid({B, H, dk, dv}), fin2({B, H, dk, dv});
  Tensor<3> mid_z({B, H, dk}), fin2_z({B, H, dk});
  auto slice4 = [&](const Tensor<4>& t, int64_t t0, int64_t len) {
    return CView4(t.data.data() + t0 * t.shape[3], {B, H, len, t.shape[3]}, {H * T * t.shape[3], T * t.shape[3], t.shape[3], 1});
  };
  auto slice3 = [&](const Tensor<3>& t, int64_t t0, int64_t len) {
    return CView3(t.data.data() + t0, {B, H, len}, {H * T, T, 1});
  };
  for (auto [t0, len] : {std::pair<int64_t, int64_t>{0, 19}, {19, 31}}) {
    Decay d = decay;
    d.per_channel = slice4(x.log_channel, t0, len);
    const CView4 o_view = slice4(parts, t0, len);
    causal_linear_attention(slice4(x.q, t0, len), slice4(x.k, t0, len), slice4(x.v, t0, len),
                            View4(const_cast<float*>(o_view.data), o_view.shape, o_view.stride), d, o,
                            {.gates = slice3(x.gates, t0, len),
                             .initial_state = t0 ? mid.cview() : CView4{},
                             .initial_normalizer = t0 ? mid_z.cview() : CView3{}},
                            {.final_state = t0 ? fin2.view() : mid.view(), .final_normalizer = t0 ? fin2_z.view() : mid_z.view()});
  }
  EXPECT_LE(test::relative_error(parts.data, whole.data), 1e-5);
  EXPECT_LE(test::relative_error(fin2.data, fin.data), 1e-5);
  // Token by token with the step API, the state updated in place.
  Tensor<4> state({B, H, dk, dv});
  Tensor<3> z({B, H, dk});
  for (int64_t t = 0; t < T; ++t) {
    auto at = [&](const Tensor<4>& a) { return CView3(a.data.data() + t * a.shape[3], {B, H, a.shape[3]}, {H * T * a.shape[3], T * a.shape[3], 1}); };
    Tensor<3> o_t({B, H, dv});
    Decay d = decay;
    d.per_channel = slice4(x.log_channel, t, 1);
    causal_linear_attention_step(at(x.q), at(x.k), at(x.v), state.view(), o_t.view(), d, o, slice3(x.gates, t, 1), z.view());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t j = 0; j < dv; ++j) EXPECT_NEAR(o_t(b, h, j), whole(b, h, t, j), 1e-4 * (1 + std::abs(whole(b, h, t, j))));
  }
  EXPECT_LE(test::relative_error(state.data, fin.data), 1e-5);
}

// Inputs and outputs laid out [B, T, H, d] (heads interleaved, as a projection's output is), so
// the rows of one (b, h) are not contiguous: the results equal those from the dense [B, H, T, d]
// layout, forward and backward, in chunks and token by token. With the identity feature map the
// chunks read q, k, v in place and write out and dv in place, with the row stride H d.
TEST(CausalLinearAttention, InterleavedHeadsEqualTheDenseLayout) {
  const int64_t B = 2, H = 3, T = 45, dk = 5, dv = 4;
  const Inputs x = make_inputs(B, H, T, dk, dv, true);
  // [B, H, T, w] copied into [B, T, H, w], viewed back as [B, H, T, w] with strides.
  auto interleave = [&](const Tensor<4>& t, std::vector<float>& store) {
    const int64_t w = t.shape[3];
    store.assign(t.data.size(), 0.f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t s = 0; s < T; ++s)
          for (int64_t c = 0; c < w; ++c)
            store[static_cast<size_t>(((b * T + s) * H + h) * w + c)] = t.data[static_cast<size_t>(((b * H + h) * T + s) * w + c)];
    return View4(store.data(), {B, H, T, w}, {T * H * w, w, H * w, 1});
  };
  for (FeatureMap phi : {FeatureMap::identity, FeatureMap::elu_plus_one})
  for (bool normalize : {false, true})
    for (CausalAlgorithm algorithm : {CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
      const CausalLinearAttentionOptions o{.feature_map = phi, .normalize = normalize, .chunk_size = 8,
                                           .algorithm = algorithm};
      Tensor<4> dense_out({B, H, T, dv}), dout = test::random_tensor<4>({B, H, T, dv});
      Tensor<4> gq({B, H, T, dk}), gk({B, H, T, dk}), gv({B, H, T, dv}), gd({B, H, T, dk});
      const Decay dense_decay = decay_of(x, DecayKind::per_channel);
      causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), dense_out.view(), dense_decay, o, {.lengths = x.lengths});
      causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), dout.cview(),
                                       {.dq = gq.view(), .dk = gk.view(), .dv = gv.view(), .dper_channel = gd.view()},
                                       dense_decay, o, {.lengths = x.lengths});
      std::vector<float> sq, sk, sv, sd, so, sdo, sgq, sgk, sgv, sgd;
      const View4 q = interleave(x.q, sq), k = interleave(x.k, sk), v = interleave(x.v, sv), d = interleave(x.log_channel, sd);
      const View4 out = interleave(dense_out, so), dout_i = interleave(dout, sdo);
      const View4 iq = interleave(gq, sgq), ik = interleave(gk, sgk), iv = interleave(gv, sgv), id = interleave(gd, sgd);
      const Decay decay{.kind = DecayKind::per_channel, .per_channel = d};
      std::vector<float> want_out = so, want_q = sgq, want_k = sgk, want_v = sgv, want_d = sgd;
      std::fill(so.begin(), so.end(), -7.f);
      for (auto* g : {&sgq, &sgk, &sgv, &sgd}) std::fill(g->begin(), g->end(), -7.f);
      causal_linear_attention(q, k, v, out, decay, o, {.lengths = x.lengths});
      causal_linear_attention_backward(q, k, v, dout_i, {.dq = iq, .dk = ik, .dv = iv, .dper_channel = id}, decay, o,
                                       {.lengths = x.lengths});
      const std::string what = std::string(to_string(phi)) + ", " + std::string(normalize ? "normalised, " : "") +
                                (algorithm == CausalAlgorithm::chunked ? "chunked" : "recurrent");
      EXPECT_LE(test::relative_error(so, want_out), 1e-6) << what;
      EXPECT_LE(test::relative_error(sgq, want_q), 1e-6) << what;
      EXPECT_LE(test::relative_error(sgk, want_k), 1e-6) << what;
      EXPECT_LE(test::relative_error(sgv, want_v), 1e-6) << what;
      EXPECT_LE(test::relative_error(sgd, want_d), 1e-6) << what;
    }
}

// An output written over an input's own buffer (out = q, k or v; dv = v or dout) gives the same
// results as separate buffers: the chunks write such an output only after their last read of it.
TEST(CausalLinearAttention, OutputsMayShareAnInputsBuffer) {
  const int64_t B = 2, H = 2, T = 70, d = 6;
  const Inputs x = make_inputs(B, H, T, d, d, false);
  const Tensor<4> dout = test::random_tensor<4>({B, H, T, d});
  for (DecayKind kind : {DecayKind::none, DecayKind::per_channel}) {
    const Decay decay = decay_of(x, kind);
    const CausalLinearAttentionOptions o{.chunk_size = 16, .algorithm = CausalAlgorithm::chunked};
    Tensor<4> want({B, H, T, d}), gq({B, H, T, d}), gk(gq), want_dv(gq), gd(gq);
    const View4 dlog = kind == DecayKind::per_channel ? gd.view() : View4{};
    causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), want.view(), decay, o);
    causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), dout.cview(),
                                     {.dq = gq.view(), .dk = gk.view(), .dv = want_dv.view(), .dper_channel = dlog}, decay,
                                     o);
    for (CausalAlgorithm algorithm : {CausalAlgorithm::chunked, CausalAlgorithm::recurrent})
      for (int which = 0; which < 4; ++which) {  // out over q, k, v; and a separate out
        Tensor<4> buf = which == 0 ? x.q : which == 1 ? x.k : which == 2 ? x.v : Tensor<4>({B, H, T, d});
        const CView4 q = which == 0 ? buf.cview() : x.q.cview(), k = which == 1 ? buf.cview() : x.k.cview(),
                     v = which == 2 ? buf.cview() : x.v.cview();
        causal_linear_attention(q, k, v, buf.view(), decay, {.chunk_size = 16, .algorithm = algorithm});
        EXPECT_LE(test::relative_error(buf.data, want.data), 1e-6)
            << "out over input " << which << (algorithm == CausalAlgorithm::recurrent ? ", token by token" : "");
      }
    for (int which = 0; which < 2; ++which) {  // dv over v, dout
      Tensor<4> buf = which == 0 ? x.v : dout;
      causal_linear_attention_backward(x.q.cview(), x.k.cview(), which == 0 ? buf.cview() : x.v.cview(),
                                       which == 1 ? buf.cview() : dout.cview(),
                                       {.dq = gq.view(), .dk = gk.view(), .dv = buf.view(), .dper_channel = dlog}, decay,
                                       o);
      EXPECT_LE(test::relative_error(buf.data, want_dv.data), 1e-6) << "dv over " << (which ? "dout" : "v");
    }
    for (int which = 0; which < 4; ++which) {  // dq over q, dout; dk over k, dout
      const bool over_q = which < 2, over_dout = which % 2 == 1;
      Tensor<4> buf = over_dout ? dout : over_q ? x.q : x.k, other({B, H, T, d}), dv_({B, H, T, d});
      const CView4 q = over_q && !over_dout ? buf.cview() : x.q.cview(), k = !over_q && !over_dout ? buf.cview() : x.k.cview();
      causal_linear_attention_backward(q, k, x.v.cview(), over_dout ? buf.cview() : dout.cview(),
                                       {.dq = over_q ? buf.view() : other.view(), .dk = over_q ? other.view() : buf.view(),
                                        .dv = dv_.view(), .dper_channel = dlog},
                                       decay, o);
      EXPECT_LE(test::relative_error(buf.data, over_q ? gq.data : gk.data), 1e-6) << "gradient over input, case " << which;
    }
  }
}

// Inputs broadcast over the positions (row stride 0: one k, v and dout row for every t) give the
// results of their dense copies: such rows cannot be a GEMM operand in place and are copied.
TEST(CausalLinearAttention, InputsBroadcastOverPositions) {
  const int64_t B = 2, H = 2, T = 40, d = 5;
  const Inputs x = make_inputs(B, H, T, d, d, false);
  const Tensor<4> row = test::random_tensor<4>({B, H, 1, d}), drow = test::random_tensor<4>({B, H, 1, d});
  Tensor<4> dense({B, H, T, d}), ddense({B, H, T, d});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < d; ++c) dense(b, h, t, c) = row.at(b, h, 0, c), ddense(b, h, t, c) = drow.at(b, h, 0, c);
  const CView4 broadcast(row.data.data(), {B, H, T, d}, {H * d, d, 0, 1});
  const CView4 dbroadcast(drow.data.data(), {B, H, T, d}, {H * d, d, 0, 1});
  for (DecayKind kind : {DecayKind::none, DecayKind::per_channel}) {
    const Decay decay = decay_of(x, kind);
    const CausalLinearAttentionOptions o{.chunk_size = 16, .algorithm = CausalAlgorithm::chunked};
    Tensor<4> want({B, H, T, d}), got(want), gq(want), gk(want), gv(want), gd(want), hq(want), hk(want), hv(want), hd(want);
    const bool gla = kind == DecayKind::per_channel;
    causal_linear_attention(x.q.cview(), dense.cview(), dense.cview(), want.view(), decay, o);
    causal_linear_attention(x.q.cview(), broadcast, broadcast, got.view(), decay, o);
    EXPECT_LE(test::relative_error(got.data, want.data), 1e-6) << "forward, decay " << static_cast<int>(kind);
    causal_linear_attention_backward(x.q.cview(), dense.cview(), dense.cview(), ddense.cview(),
                                     {.dq = gq.view(), .dk = gk.view(), .dv = gv.view(), .dper_channel = gla ? gd.view() : View4{}},
                                     decay, o);
    causal_linear_attention_backward(x.q.cview(), broadcast, broadcast, dbroadcast,
                                     {.dq = hq.view(), .dk = hk.view(), .dv = hv.view(), .dper_channel = gla ? hd.view() : View4{}},
                                     decay, o);
    for (auto [got_g, want_g] : {std::pair{&hq, &gq}, {&hk, &gk}, {&hv, &gv}, {&hd, &gd}})
      EXPECT_LE(test::relative_error(got_g->data, want_g->data), 1e-6) << "backward, decay " << static_cast<int>(kind);
  }
}

// T = 65,536 with decays near 0 and near 1: no overflow, no NaN, and within 1e-4 of the
// recurrence in double everywhere (documented bound, README), whichever the algorithm.
TEST(CausalLinearAttention, LongSequencesStayAccurate) {
  const int64_t T = 65536, dk = 8, dv = 8;
  test::rng().seed(2026);  // the same inputs whichever tests ran before
  for (float log_gamma : {-20.f, -1e-6f, -0.05f}) {
    for (DecayKind kind : {DecayKind::per_step, DecayKind::per_channel}) {
      Inputs x = make_inputs(1, 1, T, dk, dv, false);
      std::fill(x.log_step.data.begin(), x.log_step.data.end(), log_gamma);
      for (size_t i = 0; i < x.log_channel.data.size(); ++i)
        x.log_channel.data[i] = i % 2 ? log_gamma : log_gamma * 0.5f;  // channels that differ
      Tensor<4> out({1, 1, T, dv}), fin({1, 1, dk, dv});
      std::vector<double> ref_m;
      const auto ref = recurrence(x, kind, FeatureMap::identity, false, false, false, 0.0, &ref_m);
      for (CausalAlgorithm algorithm : {CausalAlgorithm::automatic, CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
        causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), decay_of(x, kind),
                                {.chunk_size = 64, .algorithm = algorithm}, {}, {.final_state = fin.view()});
        for (float v : out.data) ASSERT_TRUE(std::isfinite(v)) << log_gamma;
        // With decay near 1 the state sums up to 65,536 terms: relative error grows like sqrt(T) eps.
        const int which = static_cast<int>(algorithm);
        EXPECT_LE(test::relative_error(out.data, ref), 1e-4) << "log gamma " << log_gamma << " algorithm " << which;
        EXPECT_LE(test::relative_error(fin.data, ref_m), 1e-4) << "log gamma " << log_gamma << " algorithm " << which;
      }
    }
  }
}

TEST(CausalLinearAttention, BadArgumentsAreNamed) {
  const Inputs x = make_inputs(1, 2, 4, 3, 3, false);
  Tensor<4> out({1, 2, 4, 3});
  Tensor<3> positive({1, 2, 4}, 0.1f);
  Decay d{.kind = DecayKind::per_step, .per_step = positive.cview()};
  EXPECT_THROW(causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), d), ArgumentError);
  Tensor<1> bad_head({2}, 1.5f);
  EXPECT_THROW(causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(),
                                       {.kind = DecayKind::per_head, .per_head = bad_head.cview()}),
               ArgumentError);
  EXPECT_THROW(causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), {}, {.chunk_size = 0}), ArgumentError);
  EXPECT_THROW(causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), {},
                                       {.algorithm = static_cast<CausalAlgorithm>(7)}),
               ArgumentError);
  EXPECT_THROW(causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), {.kind = DecayKind::per_channel}),
               ArgumentError);
  // Chunk states of another shape (here: for chunks of 32 where the options say 2) are named.
  {
    Tensor<4> states(causal_chunk_states_shape(x.q.cview(), x.v.cview()));
    Tensor<4> dq(x.q.shape), dk(x.k.shape), dv(x.v.shape);
    const CausalLinearAttentionOptions o{.chunk_size = 2};
    for (int pass = 0; pass < 2; ++pass) {
      try {
        if (pass == 0)
          causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out.view(), {}, o, {},
                                  {.chunk_states = states.view()});
        else
          causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), out.cview(),
                                           {dq.view(), dk.view(), dv.view()}, {}, o, {},
                                           {.chunk_states = states.cview()});
        ADD_FAILURE() << "no error for chunk states of the wrong shape, pass " << pass;
      } catch (const ArgumentError& e) {
        EXPECT_EQ(e.argument(), "chunk_states");
        EXPECT_NE(std::string(e.what()).find("causal_chunk_states_shape's [1,2,3,9]"), std::string::npos) << e.what();
      }
    }
  }
  // Chunk states that share memory with another argument: the forward writes them while it reads
  // q, k, v and writes out; the backward reads them while it writes every gradient.
  {
    const CausalLinearAttentionOptions o{.chunk_size = 2};
    const auto shape = causal_chunk_states_shape(x.q.cview(), x.v.cview(), o);
    std::vector<float> shared(static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3] + 24));
    const View4 states = View4::contiguous(shared.data(), shape);
    const View4 out_in_states = View4::contiguous(shared.data() + 5, {1, 2, 4, 3});
    Tensor<4> dk(x.k.shape), dv(x.v.shape);
    try {
      causal_linear_attention(x.q.cview(), x.k.cview(), x.v.cview(), out_in_states, {}, o, {}, {.chunk_states = states});
      ADD_FAILURE() << "no error for chunk states over out";
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), "chunk_states");
      EXPECT_NE(std::string(e.what()).find("shares memory with out"), std::string::npos) << e.what();
    }
    try {
      causal_linear_attention_backward(x.q.cview(), x.k.cview(), x.v.cview(), out.cview(),
                                       {out_in_states, dk.view(), dv.view()}, {}, o, {}, {.chunk_states = states});
      ADD_FAILURE() << "no error for dq over the chunk states";
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.argument(), "grads.dq");
      EXPECT_NE(std::string(e.what()).find("shares memory with chunk_states"), std::string::npos) << e.what();
    }
    // Over an input (q) and over the initial state: named the same way.
    const CView4 q_in_states = CView4::contiguous(shared.data() + 7, x.q.shape);
    const CView4 initial_in_states = CView4::contiguous(shared.data() + 3, {1, 2, 3, 3});
    Tensor<4> fresh_out(x.v.shape);
    for (int which = 0; which < 2; ++which) {
      try {
        causal_linear_attention(which == 0 ? q_in_states : x.q.cview(), x.k.cview(), x.v.cview(), fresh_out.view(), {}, o,
                                {.initial_state = which == 1 ? initial_in_states : CView4{}}, {.chunk_states = states});
        ADD_FAILURE() << "no error for chunk states over " << (which ? "initial_state" : "q");
      } catch (const ArgumentError& e) {
        EXPECT_EQ(e.argument(), "chunk_states");
        EXPECT_NE(std::string(e.what()).find(which ? "shares memory with initial_state" : "shares memory with q"),
                  std::string::npos)
            << e.what();
      }
    }
  }
  // Per-channel log decays: one value that is positive, NaN or infinite anywhere in a valid
  // position is named, with dense rows (checked in one pass per head) and rows with a gap between
  // them (checked row by row); the same value in padding past a sequence's length is not read.
  {
    const int64_t B = 2, H = 2, T = 9, dk = 5;
    const Inputs y = make_inputs(B, H, T, dk, dk, false);
    Tensor<4> o({B, H, T, dk});
    const std::vector<int64_t> lengths = {T, 4};
    for (int64_t gap : {0, 3}) {
      std::vector<float> logs(static_cast<size_t>(B * H * T * (dk + gap)), -0.1f);
      const CView4 logs_view(logs.data(), {B, H, T, dk}, {H * T * (dk + gap), T * (dk + gap), dk + gap, 1});
      auto at = [&](int64_t b, int64_t h, int64_t t, int64_t c) -> float& {
        return logs[static_cast<size_t>(((b * H + h) * T + t) * (dk + gap) + c)];
      };
      const Decay decay{.kind = DecayKind::per_channel, .per_channel = logs_view};
      for (float bad : {0.5f, std::nanf(""), -std::numeric_limits<float>::infinity()}) {
        for (auto [b, h, t, c] : {std::array<int64_t, 4>{0, 0, 0, 0}, {1, 1, 3, 4}, {0, 1, 8, 2}}) {
          at(b, h, t, c) = bad;
          try {
            causal_linear_attention(y.q.cview(), y.k.cview(), y.v.cview(), o.view(), decay, {}, {.lengths = lengths});
            ADD_FAILURE() << "no error for " << bad << " at " << b << "," << h << "," << t << "," << c << " gap " << gap;
          } catch (const ArgumentError& e) {
            EXPECT_EQ(e.argument(), "decay.per_channel");
            EXPECT_NE(std::string(e.what()).find("finite and <= 0"), std::string::npos) << e.what();
          }
          at(b, h, t, c) = -0.1f;
        }
        at(1, 0, 6, 1) = bad;  // batch entry 1 has length 4: position 6 is padding
        EXPECT_NO_THROW(causal_linear_attention(y.q.cview(), y.k.cview(), y.v.cview(), o.view(), decay, {}, {.lengths = lengths}));
        at(1, 0, 6, 1) = -0.1f;
      }
    }
  }
  const auto g = retnet_decays(3);
  EXPECT_FLOAT_EQ(g[0], 1.f - 1.f / 32.f);
  EXPECT_FLOAT_EQ(g[2], 1.f - 1.f / 128.f);
}

}  // namespace
}  // namespace linattn

namespace linattn {
namespace {

// Lightning Attention (Qin et al. 2024) is linear attention with a fixed decay lambda per head,
// computed tile by tile: within a tile of b positions O_intra = [(Q K^T) (*) D] V with
// D_ij = lambda^(i-j) for i >= j; across tiles O_inter = Lambda Q KV with
// Lambda = diag(lambda^1 .. lambda^b), and KV = lambda^b KV + (lambda^b Lambda^-1 K)^T V. That is
// the per-head decay of causal_linear_attention: its own tiled formulation, in double, here.
std::vector<double> lightning_attention(const Tensor<4>& q, const Tensor<4>& k, const Tensor<4>& v,
                                        const std::vector<float>& lambdas, int64_t tile) {
  const int64_t B = q.shape[0], H = q.shape[1], T = q.shape[2], dk = q.shape[3], dv = v.shape[3];
  std::vector<double> out(static_cast<size_t>(B * H * T * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const double lambda = lambdas[static_cast<size_t>(h)];
      std::vector<double> kv(static_cast<size_t>(dk * dv), 0.0);
      for (int64_t t0 = 0; t0 < T; t0 += tile) {
        const int64_t n = std::min(tile, T - t0);
        for (int64_t i = 0; i < n; ++i) {
          double* o = &out[static_cast<size_t>(((b * H + h) * T + t0 + i) * dv)];
          for (int64_t j = 0; j <= i; ++j) {  // intra-tile, masked and decayed
            double s = 0;
            for (int64_t c = 0; c < dk; ++c) s += double(q.at(b, h, t0 + i, c)) * k.at(b, h, t0 + j, c);
            s *= std::pow(lambda, static_cast<double>(i - j));
            for (int64_t e = 0; e < dv; ++e) o[e] += s * v.at(b, h, t0 + j, e);
          }
          const double li = std::pow(lambda, static_cast<double>(i + 1));  // inter-tile: Lambda Q KV
          for (int64_t c = 0; c < dk; ++c)
            for (int64_t e = 0; e < dv; ++e) o[e] += li * q.at(b, h, t0 + i, c) * kv[static_cast<size_t>(c * dv + e)];
        }
        const double ln = std::pow(lambda, static_cast<double>(n));  // the tile's decay on KV
        for (double& x : kv) x *= ln;
        for (int64_t j = 0; j < n; ++j) {
          const double w = std::pow(lambda, static_cast<double>(n - 1 - j));  // lambda^n Lambda^-1
          for (int64_t c = 0; c < dk; ++c)
            for (int64_t e = 0; e < dv; ++e)
              kv[static_cast<size_t>(c * dv + e)] += w * k.at(b, h, t0 + j, c) * v.at(b, h, t0 + j, e);
        }
      }
    }
  return out;
}

TEST(CausalLinearAttention, PerHeadDecayIsLightningAttention) {
  const int64_t B = 2, H = 4, T = 100, dk = 12, dv = 10;  // T not a multiple of either tile
  const auto q = test::random_tensor<4>({B, H, T, dk}), k = test::random_tensor<4>({B, H, T, dk});
  const auto v = test::random_tensor<4>({B, H, T, dv});
  const std::vector<float> lambdas = retnet_decays(H);
  Tensor<1> gammas({H});
  for (int64_t h = 0; h < H; ++h) gammas(h) = lambdas[static_cast<size_t>(h)];
  const Decay decay{.kind = DecayKind::per_head, .per_head = gammas.cview()};
  for (int64_t tile : {16, 64}) {
    const std::vector<double> want = lightning_attention(q, k, v, lambdas, tile);
    for (CausalAlgorithm algorithm : {CausalAlgorithm::chunked, CausalAlgorithm::recurrent}) {
      Tensor<4> out({B, H, T, dv});
      causal_linear_attention(q.cview(), k.cview(), v.cview(), out.view(), decay, {.algorithm = algorithm});
      EXPECT_LE(test::relative_error(out.data, want), 1e-5) << "tile " << tile << ", algorithm " << static_cast<int>(algorithm);
    }
  }
}

}  // namespace
}  // namespace linattn
