// The paper's gates against the reference definitions.
#include <gtest/gtest.h>

#include <cmath>

#include "linattn/ops/gates.h"
#include "reference.h"
#include "test_util.h"

namespace linattn {
namespace {
using test::Tensor;

TEST(Gates, ScalarGateMatchesReference) {
  for (int64_t N : {0, 1, 7, 300, 513})
    for (int64_t d : {1, 5, 16, 100}) {
      auto h = test::random_tensor<2>({N, d});
      auto w = test::random_tensor<1>({d});
      Tensor<1> g({N});
      scalar_gate(h.cview(), w.cview(), 0.3f, g.view());
      std::vector<double> ref(static_cast<size_t>(N));
      for (int64_t n = 0; n < N; ++n) {
        double x = 0.3;
        for (int64_t c = 0; c < d; ++c) x += double(h.at(n, c)) * w.at(c);
        ref[n] = test::reference::sigmoid(x);
      }
      EXPECT_LE(test::relative_error(g.data, ref), 1e-6) << N << "x" << d;
    }
}

TEST(Gates, VectorGateMatchesReference) {
  for (int64_t N : {1, 7, 300})
    for (int64_t d : {1, 5, 33}) {
      auto h = test::random_tensor<2>({N, d});
      auto w = test::random_tensor<2>({d, d});
      auto b = test::random_tensor<1>({d});
      Tensor<2> out({N, d}), gate({N, d});
      vector_gate(h.cview(), w.cview(), b.cview(), out.view(), gate.view());
      std::vector<double> ref_out(static_cast<size_t>(N * d)), ref_gate(ref_out.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < d; ++i) {
          double x = b.at(i);
          for (int64_t c = 0; c < d; ++c) x += double(w.at(i, c)) * h.at(n, c);
          ref_gate[n * d + i] = test::reference::sigmoid(x);
          ref_out[n * d + i] = ref_gate[n * d + i] * h.at(n, i);
        }
      EXPECT_LE(test::relative_error(out.data, ref_out), 1e-6);
      EXPECT_LE(test::relative_error(gate.data, ref_gate), 1e-6);
      // In place: out is h.
      vector_gate(h.cview(), w.cview(), b.cview(), h.view());
      EXPECT_EQ(h.data, out.data);
    }
}

TEST(Gates, AuthorsInitialisationGivesSigmoidOfOne) {
  auto h = test::random_tensor<2>({10, 8});
  Tensor<1> w({8}, 0.f), g({10});
  scalar_gate(h.cview(), w.cview(), 1.f, g.view());
  for (float x : g.data) EXPECT_FLOAT_EQ(x, 1.f / (1.f + std::exp(-1.f)));
}

}  // namespace
}  // namespace linattn
