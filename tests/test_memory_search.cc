// linattn::search and Bank::search against the brute force: every lookup answered, scored and
// sorted in double precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "linattn/linattn.h"
#include "scratch_dir.h"

namespace linattn {
namespace {

std::vector<float> randn(int64_t n, std::mt19937& g, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(g);
  return v;
}

// Memories of every stored form: f32/bf16, full/packed, one low rank.
std::vector<MemoryView> memories(int64_t n, int64_t d, std::mt19937& g) {
  std::vector<MemoryView> out;
  for (int64_t j = 0; j < n; ++j) {
    const bool symmetric = j % 2 == 0;
    Memory m({.key_dim = d, .value_dim = d, .symmetric = symmetric, .dtype = j % 3 == 0 ? DType::bf16 : DType::f32});
    const int64_t T = 3 + j % 7;
    const auto h = randn(T * d, g);
    if (symmetric) m.write(CView2::contiguous(h.data(), {T, d}));
    else m.write(CView2::contiguous(h.data(), {T, d}), CView2::contiguous(h.data(), {T, d}));
    MemoryView v = view_of_bytes(serialize(m), "memory");
    if (j == 4) v = compress(v, {.rank = 3});
    out.push_back(std::move(v));
  }
  return out;
}

struct Expected {
  std::vector<int64_t> index;
  std::vector<double> score;
};

Expected brute_force(const std::vector<MemoryView>& mems, const std::vector<float>& q, int64_t m, int64_t d,
                     const SearchOptions& o) {
  Expected e;
  const int64_t n = static_cast<int64_t>(mems.size()), k = std::min(o.k, n);
  std::vector<float> r(static_cast<size_t>(d));
  for (int64_t i = 0; i < m; ++i) {
    std::vector<std::pair<double, int64_t>> s;
    for (int64_t j = 0; j < n; ++j) {
      mems[static_cast<size_t>(j)].lookup(CView2::contiguous(q.data() + i * d, {1, d}),
                                          View2::contiguous(r.data(), {1, d}), o.lookup);
      double v = 0;
      for (int64_t c = 0; c < d; ++c) v += o.score == SearchScore::quadratic ? double(q[i * d + c]) * r[c] : double(r[c]) * r[c];
      s.push_back({o.score == SearchScore::norm ? std::sqrt(v) : v, j});
    }
    std::stable_sort(s.begin(), s.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (int64_t c = 0; c < k; ++c) {
      e.index.push_back(s[static_cast<size_t>(c)].second);
      e.score.push_back(s[static_cast<size_t>(c)].first);
    }
  }
  return e;
}

std::vector<const MemoryView*> pointers(const std::vector<MemoryView>& v) {
  std::vector<const MemoryView*> p;
  for (const auto& x : v) p.push_back(&x);
  return p;
}

TEST(MemorySearch, EqualsTheBruteForceForEveryStoredFormAndQueryCount) {
  std::mt19937 g(7);
  const int64_t d = 19, n = 23;  // a width that is not a multiple of the SIMD width
  const auto mems = memories(n, d, g);
  for (const int64_t m : {1, 3, 4, 17}) {
    for (const SearchScore score : {SearchScore::quadratic, SearchScore::norm}) {
      for (const int64_t k : {int64_t{1}, int64_t{5}, n, n + 10}) {
        const auto q = randn(m * d, g);
        const SearchOptions o{.k = k, .score = score, .lookup = {.mean = true, .scale = 3.f}};
        const SearchResults r = search(pointers(mems), CView2::contiguous(q.data(), {m, d}), o);
        const Expected e = brute_force(mems, q, m, d, o);
        ASSERT_EQ(r.k, std::min(k, n));
        ASSERT_EQ(r.queries, m);
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t c = 0; c < r.k; ++c) {
            const size_t at = static_cast<size_t>(i * r.k + c);
            const double tol = 1e-3 * (1 + std::abs(e.score[at]));
            EXPECT_NEAR(r.score[at], e.score[at], tol) << "m " << m << " k " << k << " rank " << c;
            // fp32 scores may order near-ties unlike double: the index must match where the
            // score stands apart from its neighbours.
            const bool apart_before = c == 0 || std::abs(e.score[at] - e.score[at - 1]) > 10 * tol;
            const bool apart_after = c + 1 == r.k || std::abs(e.score[at] - e.score[at + 1]) > 10 * tol;
            if (apart_before && apart_after) {
              EXPECT_EQ(r.index[at], e.index[at]) << "m " << m << " k " << k << " rank " << c;
            }
          }
        }
      }
    }
  }
}

// Runs of one layout go through one GEMM per run of up to 16 states (the quadratic form without
// answers); normalising memories divide each score by z . q + eps. With few queries, runs of
// four bf16 states of one form are scored side by side (packed 4-14, full 27-32, normalising
// 35-39), broken runs and the rest one by one.
TEST(MemorySearch, QuadraticScoresOfLongRunsOfOneLayoutAndNormalisingMemories) {
  std::mt19937 g(11);
  const int64_t d = 21, n = 40;
  std::vector<MemoryView> mems;
  for (int64_t j = 0; j < n; ++j) {
    const bool packed = j < 25, normalize = j >= 33;
    Memory m({.key_dim = d, .value_dim = d, .normalize = normalize, .symmetric = packed,
              .dtype = (j >= 4 && j < 15) || (j >= 27 && j < 33) || j >= 35 || j % 4 == 1 ? DType::bf16 : DType::f32});
    const auto h = randn(6 * d, g);
    if (packed) m.write(CView2::contiguous(h.data(), {6, d}));
    else m.write(CView2::contiguous(h.data(), {6, d}), CView2::contiguous(h.data(), {6, d}));
    mems.push_back(view_of_bytes(serialize(m), "memory"));
  }
  for (const int64_t m : {1, 3, 8}) {
    for (const bool normalizing : {false, true}) {
      std::vector<MemoryView> group(mems.begin() + (normalizing ? 33 : 0), mems.begin() + (normalizing ? n : 33));
      const auto q = randn(m * d, g);
      const SearchOptions o{.k = 7, .score = SearchScore::quadratic, .lookup = {.scale = 2.f}};
      const SearchResults r = search(pointers(group), CView2::contiguous(q.data(), {m, d}), o);
      const Expected e = brute_force(group, q, m, d, o);
      for (size_t at = 0; at < r.score.size(); ++at)
        EXPECT_NEAR(r.score[at], e.score[at], 1e-3 * (1 + std::abs(e.score[at]))) << "m " << m << " " << at;
    }
  }
}

// A run of 70 packed states (1,275 numbers each) crosses the jobs of 32 memories; with 9
// queries each job's run is one panel GEMM, f32 and bf16 states mixed.
TEST(MemorySearch, LongRunsOfWidePackedStatesWithManyQueries) {
  std::mt19937 g(5);
  const int64_t d = 50, n = 70, m = 9;
  std::vector<MemoryView> mems;
  for (int64_t j = 0; j < n; ++j) {
    Memory mem({.key_dim = d, .value_dim = d, .symmetric = true, .dtype = j % 3 == 0 ? DType::bf16 : DType::f32});
    const auto h = randn(4 * d, g);
    mem.write(CView2::contiguous(h.data(), {4, d}));
    mems.push_back(view_of_bytes(serialize(mem), "memory"));
  }
  const auto q = randn(m * d, g);
  const SearchOptions o{.k = 6, .score = SearchScore::quadratic};
  const SearchResults r = search(pointers(mems), CView2::contiguous(q.data(), {m, d}), o);
  const Expected e = brute_force(mems, q, m, d, o);
  for (size_t at = 0; at < r.score.size(); ++at)
    EXPECT_NEAR(r.score[at], e.score[at], 1e-3 * (1 + std::abs(e.score[at]))) << at;
}

TEST(MemorySearch, SameResultsOnOneThreadAndMany) {
  std::mt19937 g(3);
  const int64_t d = 16, n = 200, m = 5;
  const auto mems = memories(n, d, g);
  const auto q = randn(m * d, g);
  const int before = num_threads();
  set_num_threads(1);
  const SearchResults one = search(pointers(mems), CView2::contiguous(q.data(), {m, d}), {.k = 7});
  set_num_threads(std::max(2, before));
  const SearchResults many = search(pointers(mems), CView2::contiguous(q.data(), {m, d}), {.k = 7});
  set_num_threads(before);
  EXPECT_EQ(one.index, many.index);
  EXPECT_EQ(one.score, many.score);
}

TEST(MemorySearch, TiesGoToTheLowerIndex) {
  const int64_t d = 4;
  Memory a({.key_dim = d, .value_dim = d, .symmetric = true});
  const std::vector<float> h{1, 0, 0, 0};
  a.write(CView2::contiguous(h.data(), {1, d}));
  const MemoryView v = view_of_bytes(serialize(a), "a");
  std::vector<MemoryView> same(5, v);
  const std::vector<float> q{2, 0, 0, 0};
  const SearchResults r = search(pointers(same), CView2::contiguous(q.data(), {1, d}), {.k = 3});
  EXPECT_EQ(r.index, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(r.score, (std::vector<float>{4, 4, 4}));  // C q = (2, 0, 0, 0), q . C q = 4
  // Non-finite queries give NaN scores, still ordered (by index) and never an out-of-range index.
  const std::vector<float> nan_q{std::numeric_limits<float>::quiet_NaN(), 0, 0, 0};
  const SearchResults rn = search(pointers(same), CView2::contiguous(nan_q.data(), {1, d}), {.k = 2});
  EXPECT_EQ(rn.index, (std::vector<int64_t>{0, 1}));
}

TEST(MemorySearch, EmptyInputsAndErrors) {
  std::mt19937 g(1);
  const auto mems = memories(3, 8, g);
  const auto q = randn(8, g);
  const SearchResults none = search({}, CView2::contiguous(q.data(), {1, 8}), {.k = 4});
  EXPECT_EQ(none.k, 0);
  const SearchResults zero = search(pointers(mems), CView2::contiguous(q.data(), {0, 8}), {.k = 4});
  EXPECT_EQ(zero.queries, 0);
  EXPECT_TRUE(zero.index.empty());
  EXPECT_THROW(search(pointers(mems), CView2::contiguous(q.data(), {1, 8}), {.k = 0}), ArgumentError);
  const auto wide = randn(9, g);
  EXPECT_THROW(search(pointers(mems), CView2::contiguous(wide.data(), {1, 9}), {}), ArgumentError);
  Memory rect({.key_dim = 8, .value_dim = 3});
  std::vector<MemoryView> rects{rect.view()};
  EXPECT_THROW(search(pointers(rects), CView2::contiguous(q.data(), {1, 8}), {.score = SearchScore::quadratic}),
               ArgumentError);
  EXPECT_NO_THROW(search(pointers(rects), CView2::contiguous(q.data(), {1, 8}), {.score = SearchScore::norm}));
  Memory relu({.key_dim = 8, .value_dim = 8, .feature_map = FeatureMap::relu});
  std::vector<MemoryView> mixed{mems[1], relu.view()};
  EXPECT_THROW(search(pointers(mixed), CView2::contiguous(q.data(), {1, 8}), {}), ArgumentError);
}

TEST(MemorySearch, BankSearchOverAllAndASelection) {
  test::ScratchDir dir("search");
  const std::string path = dir("docs.lamb");
  Bank::create(path);
  Bank bank = Bank::open(path);
  std::mt19937 g(5);
  const int64_t d = 8;
  const auto mems = memories(12, d, g);
  std::vector<std::pair<std::string, std::vector<std::byte>>> entries;
  for (size_t j = 0; j < mems.size(); ++j) {
    if (mems[j].info().layout == Layout::low_rank) continue;
    entries.push_back({"doc-" + std::to_string(j), serialize(mems[j].to_memory())});
  }
  bank.append_all(entries);
  const auto q = randn(2 * d, g);
  const SearchResults all = bank.search(CView2::contiguous(q.data(), {2, d}), {.k = 3});
  std::vector<MemoryView> views;
  for (int64_t i = 0; i < bank.size(); ++i) views.push_back(bank.memory(i));
  const SearchResults direct = search(pointers(views), CView2::contiguous(q.data(), {2, d}), {.k = 3});
  EXPECT_EQ(all.index, direct.index);
  const std::vector<int64_t> selection{7, 2, 5};
  const SearchResults some = bank.search(CView2::contiguous(q.data(), {2, d}), {.k = 2}, selection);
  for (const int64_t i : some.index) EXPECT_TRUE(i == 7 || i == 2 || i == 5) << i;
  const std::vector<int64_t> bad{99};
  EXPECT_THROW(bank.search(CView2::contiguous(q.data(), {2, d}), {}, bad), ArgumentError);
}

}  // namespace
}  // namespace linattn
