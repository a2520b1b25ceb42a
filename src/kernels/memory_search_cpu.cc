#include "kernels/memory_search_cpu.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/simd.h"

namespace linattn::kernels {
namespace {

struct Hit {
  float score;
  int64_t index;
};

// a ranks before b: higher score, then lower index; NaN after every number.
bool before(const Hit& a, const Hit& b) {
  const bool an = std::isnan(a.score), bn = std::isnan(b.score);
  if (an != bn) return bn;
  if (!an && a.score != b.score) return a.score > b.score;
  return a.index < b.index;
}

// The k best hits seen so far for one query: a heap whose top is the worst kept.
struct TopK {
  std::vector<Hit> heap;
  void offer(const Hit& h, int64_t k) {
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.push_back(h);
      std::push_heap(heap.begin(), heap.end(), before);
    } else if (before(h, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), before);
      heap.back() = h;
      std::push_heap(heap.begin(), heap.end(), before);
    }
  }
};

}  // namespace

void stored_search_cpu(std::span<const StoredState> states, std::span<const float> alpha, CView2 x, float eps,
                       SearchScoreKind kind, int64_t k, int64_t* index, float* score) {
  const int64_t n = static_cast<int64_t>(states.size()), m = x.shape[0];
  k = std::min(k, n);
  if (m == 0 || k == 0) return;
  const int64_t dk = x.shape[1];
  const int threads = num_threads();
  // Per thread: the answers of one state to every query, and a top-k list per query.
  std::vector<std::vector<float>> answers(static_cast<size_t>(threads));
  std::vector<std::vector<TopK>> best(static_cast<size_t>(threads), std::vector<TopK>(static_cast<size_t>(m)));
  parallel_for(n, [&](int64_t j, int t) {
    const StoredState& s = states[static_cast<size_t>(j)];
    auto& r = answers[static_cast<size_t>(t)];
    r.resize(static_cast<size_t>(m * s.dv));
    stored_lookup_cpu(s, x, View2::contiguous(r.data(), {m, s.dv}), FeatureMap::identity, alpha[static_cast<size_t>(j)],
                      eps);
    for (int64_t i = 0; i < m; ++i) {
      const float* ri = r.data() + i * s.dv;
      const float v = kind == SearchScoreKind::quadratic ? simd::dot(&x(i, 0), ri, dk)
                                                         : std::sqrt(simd::dot(ri, ri, s.dv));
      best[static_cast<size_t>(t)][static_cast<size_t>(i)].offer({v, j}, k);
    }
  });
  std::vector<Hit> all;
  for (int64_t i = 0; i < m; ++i) {
    all.clear();
    for (auto& per_thread : best) all.insert(all.end(), per_thread[static_cast<size_t>(i)].heap.begin(),
                                             per_thread[static_cast<size_t>(i)].heap.end());
    std::partial_sort(all.begin(), all.begin() + k, all.end(), before);
    for (int64_t c = 0; c < k; ++c) {
      index[i * k + c] = all[static_cast<size_t>(c)].index;
      score[i * k + c] = all[static_cast<size_t>(c)].score;
    }
  }
}

}  // namespace linattn::kernels
