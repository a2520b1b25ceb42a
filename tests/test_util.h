// Test helpers: owning tensors that hand out views, random data, and error measures.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include "linattn/core/error.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <numeric>
#include <random>
#include <vector>

#include "linattn/core/view.h"

namespace linattn::test {

// A dense row-major float tensor owning its data.
template <int R>
struct Tensor {
  std::array<int64_t, R> shape{};
  std::vector<float> data;

  Tensor() = default;
  explicit Tensor(std::array<int64_t, R> s, float fill = 0.f)
      : shape(s), data(static_cast<size_t>(std::accumulate(s.begin(), s.end(), int64_t{1},
                                                           std::multiplies<>())),
                       fill) {}
  View<float, R> view() { return View<float, R>::contiguous(data.data(), shape); }
  View<const float, R> cview() const { return View<const float, R>::contiguous(data.data(), shape); }
  template <typename... I>
  float& operator()(I... i) {
    return view()(i...);
  }
  template <typename... I>
  float at(I... i) const {
    return cview()(i...);
  }
};

// The test data's generator, seeded afresh for each test from its name: a test's inputs do not
// depend on which tests ran before it (a filter, a new test or the order would change them).
inline std::mt19937& rng() {
  static std::mt19937 g;
  static std::string seeded_for = "\n";  // no test's name
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = test ? std::string(test->test_suite_name()) + "." + test->name() : "";
  if (name != seeded_for) {
    g.seed(static_cast<std::mt19937::result_type>(std::hash<std::string>{}(name)));
    seeded_for = std::move(name);
  }
  return g;
}

template <int R>
Tensor<R> random_tensor(std::array<int64_t, R> shape, float lo = -1.f, float hi = 1.f) {
  Tensor<R> t(shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::mt19937& g = rng();
  for (float& x : t.data) x = dist(g);
  return t;
}

// max |a - b| / max |b|: a norm-wise relative error, meaningful where elements pass near 0.
inline double relative_error(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den == 0 ? num : num / den;
}

inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  return relative_error(a, std::vector<double>(b.begin(), b.end()));
}

// Central finite differences of `loss` (evaluated in double) over every element of x, compared
// norm-wise with `analytic`. The step is `step` * max(1, |x_i|); the quotient divides by the
// perturbation actually stored in fp32, so the step's rounding biases nothing.
inline void expect_gradient(std::vector<float>& x, const std::vector<float>& analytic,
                            const std::function<double()>& loss, const std::string& what, double tol,
                            float step) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  std::vector<double> fd(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const float orig = x[i];
    const float h = step * std::max(1.f, std::abs(orig));
    x[i] = orig + h;
    const double up = loss(), xp = x[i];
    x[i] = orig - h;
    const double down = loss(), xm = x[i];
    x[i] = orig;
    fd[i] = (up - down) / (xp - xm);
  }
  EXPECT_LE(relative_error(analytic, fd), tol) << what;
}

// Runs f and checks it throws ArgumentError about `argument` whose message mentions `words`
// (and names the operator, "linattn::...").
template <class F>
void expect_argument_error(F f, const std::string& argument, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one about '" << argument << "'";
  } catch (const ArgumentError& e) {
    EXPECT_EQ(e.argument(), argument) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("linattn::"), std::string::npos) << e.what();
  }
}

// A path for `name` in the tests' scratch directory, unique to this process (ctest runs tests
// in parallel).
inline std::string temp_path(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "linattn_tests";
  std::filesystem::create_directories(dir);
  return (dir / (name + "_" + std::to_string(::getpid()))).string();
}

// Names parameterised tests by their case's name() (gtest would print a struct's bytes,
// padding included, which differ between the discovery run and the test run).
struct CaseName {
  template <class Info>
  std::string operator()(const Info& info) const {
    return info.param.name();
  }
};

// An attention backward's dq, dk, dv against central finite differences of
// sum(reference(q, k, v) . r), the reference evaluated in double.
template <class Reference>
void expect_qkv_gradients(Tensor<4>& q, Tensor<4>& k, Tensor<4>& v, const Tensor<4>& r, const Tensor<4>& dq,
                          const Tensor<4>& dk, const Tensor<4>& dv, Reference reference) {
  auto loss = [&] {
    const std::vector<double> o = reference(q, k, v);
    double s = 0;
    for (size_t i = 0; i < o.size(); ++i) s += o[i] * r.data[i];
    return s;
  };
  expect_gradient(q.data, dq.data, loss, "dq", 1e-3, 1e-3f);
  expect_gradient(k.data, dk.data, loss, "dk", 2e-3, 1e-3f);
  expect_gradient(v.data, dv.data, loss, "dv", 2e-3, 1e-3f);
}

}  // namespace linattn::test
