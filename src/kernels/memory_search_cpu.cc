#include "kernels/memory_search_cpu.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/gemm.h"
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

// Memories per job: a thread answers a run of consecutive memories (software prefetching of the
// next state was measured and gained nothing over the hardware's). With many queries a job's
// packed states are one panel GEMM; 32 of them measured faster than 16 or 64
// (docs/benchmarks.md, "Search").
constexpr int64_t kMemoriesPerJob = 32;
// From this many queries, the states of a job are widened side by side into one fp32 panel
// [dk, sum dv] and answered by one GEMM with K = dk and N = 16 dv: a GEMM per memory has too
// small an N to reach the compute roof.
constexpr int64_t kPanelQueries = 4;
constexpr int64_t kPanelMemories = 4;

namespace {

// The quadratic score of a full or packed state needs no answer: phi(q) . (M^T phi(q)) =
// <M, w(q)> with w(q) = phi(q) phi(q)^T, or, for the packed upper triangle, w_rc = x_r x_c with
// the off-diagonal entries doubled. One multiply-add per stored number, each read once for all
// the queries: half the work of answering a packed state, and no unpacking.
bool quadratic_form(const StoredState& s) {
  return s.layout == Layout::full || s.layout == Layout::packed_symmetric;
}
int64_t stored_numbers(const StoredState& s) {
  return s.layout == Layout::full ? s.dk * s.dv : s.dk * (s.dk + 1) / 2;
}

// w(x_i) for every query, in `layout` (full or packed): [m, numbers].
std::vector<float> quadratic_weights(CView2 x, Layout layout) {
  const int64_t m = x.shape[0], d = x.shape[1];
  const int64_t numbers = layout == Layout::full ? d * d : d * (d + 1) / 2;
  std::vector<float> w(static_cast<size_t>(m * numbers));
  for (int64_t i = 0; i < m; ++i) {
    float* out = w.data() + i * numbers;
    for (int64_t r = 0; r < d; ++r) {
      const float xr = x(i, r);
      if (layout == Layout::full) {
        for (int64_t c = 0; c < d; ++c) *out++ = xr * x(i, c);
      } else {
        *out++ = xr * xr;
        for (int64_t c = r + 1; c < d; ++c) *out++ = 2.f * xr * x(i, c);
      }
    }
  }
  return w;
}

// The threads' lists merged: index, score [m, k], best first.
void merge_top_k(std::vector<std::vector<TopK>>& best, int64_t m, int64_t k, int64_t* index, float* score) {
  std::vector<Hit> all;
  for (int64_t i = 0; i < m; ++i) {
    all.clear();
    for (auto& per_thread : best)
      all.insert(all.end(), per_thread[static_cast<size_t>(i)].heap.begin(), per_thread[static_cast<size_t>(i)].heap.end());
    std::partial_sort(all.begin(), all.begin() + k, all.end(), before);
    for (int64_t c = 0; c < k; ++c) {
      index[i * k + c] = all[static_cast<size_t>(c)].index;
      score[i * k + c] = all[static_cast<size_t>(c)].score;
    }
  }
}

// Whether states j .. j + 3 (all before `end`) are bf16 of one layout and size, so that
// simd::dot_bf16_x4 scores them against one w(q).
bool four_bf16_of_one_form(std::span<const StoredState> states, int64_t j, int64_t end) {
  if (j + 4 > end) return false;
  const StoredState& s = states[static_cast<size_t>(j)];
  for (int64_t c = 0; c < 4; ++c) {
    const StoredState& o = states[static_cast<size_t>(j + c)];
    if (o.dtype != DType::bf16 || o.layout != s.layout || o.dk != s.dk || o.dv != s.dv) return false;
  }
  return true;
}

float dot_stored(const StoredState& s, const float* w, int64_t numbers) {
  return s.dtype == DType::f32 ? simd::dot(static_cast<const float*>(s.data), w, numbers)
                               : simd::dot_bf16(static_cast<const uint16_t*>(s.data), w, numbers);
}

}  // namespace

void stored_search_cpu(std::span<const StoredState> states, std::span<const float> alpha, CView2 x, float eps,
                       SearchScoreKind kind, int64_t k, int64_t* index, float* score) {
  const int64_t n = static_cast<int64_t>(states.size()), m = x.shape[0];
  k = std::min(k, n);
  if (m == 0 || k == 0) return;
  const int64_t dk = x.shape[1];
  const int threads = num_threads();
  if (kind == SearchScoreKind::quadratic) {
    bool full = false, packed = false;
    for (const StoredState& s : states) {
      full = full || s.layout == Layout::full;
      packed = packed || s.layout == Layout::packed_symmetric;
    }
    const std::vector<float> w_full =
        full && m < kPanelQueries ? quadratic_weights(x, Layout::full) : std::vector<float>{};
    const std::vector<float> w_packed = packed ? quadratic_weights(x, Layout::packed_symmetric) : std::vector<float>{};
    // The panel GEMMs' weights transposed, [numbers, m], once per search: each run's product is
    // then panel [cnt, numbers] x w_t with no transposed operand, which the GEMM runs without
    // repacking w for every job (1.33x faster at m = 64, K = 8,256 on a Zen 5).
    std::vector<float> w_packed_t;
    if (packed && m >= kPanelQueries) {
      const int64_t numbers = static_cast<int64_t>(w_packed.size()) / m;
      w_packed_t.resize(w_packed.size());
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < numbers; ++c)
          w_packed_t[static_cast<size_t>(c * m + i)] = w_packed[static_cast<size_t>(i * numbers + c)];
    }
    std::vector<std::vector<TopK>> best(static_cast<size_t>(threads), std::vector<TopK>(static_cast<size_t>(m)));
    std::vector<std::vector<float>> panels(static_cast<size_t>(threads)), raw(static_cast<size_t>(threads)),
        answers(static_cast<size_t>(threads));
    auto offer = [&](int t, int64_t j, int64_t i, float quadratic) {
      const StoredState& s = states[static_cast<size_t>(j)];
      float factor = alpha[static_cast<size_t>(j)];
      if (s.normalizer) factor /= simd::dot(&x(i, 0), s.normalizer, dk) + eps;
      best[static_cast<size_t>(t)][static_cast<size_t>(i)].offer({factor * quadratic, j}, k);
    };
    const int64_t jobs = (n + kMemoriesPerJob - 1) / kMemoriesPerJob;
    parallel_for(jobs, [&](int64_t job, int t) {
      const int64_t j0 = job * kMemoriesPerJob, j1 = std::min(n, j0 + kMemoriesPerJob);
      for (int64_t j = j0; j < j1;) {
        const StoredState& s = states[static_cast<size_t>(j)];
        // Low rank, and full states with many queries (whose quadratic form does the same d^2
        // work per query in a GEMM with K = d^2, measured slower): answer, then score the answer.
        if (!quadratic_form(s) || (s.layout == Layout::full && m >= kPanelQueries)) {
          StoredState plain = s;
          plain.normalizer = nullptr;
          auto& r = answers[static_cast<size_t>(t)];
          r.resize(static_cast<size_t>(m * s.dv));
          stored_lookup_cpu(plain, x, View2::contiguous(r.data(), {m, s.dv}), FeatureMap::identity, 1.f, eps);
          for (int64_t i = 0; i < m; ++i) offer(t, j, i, simd::dot(&x(i, 0), r.data() + i * s.dv, dk));
          ++j;
          continue;
        }
        const int64_t numbers = stored_numbers(s);
        const float* w = s.layout == Layout::full ? w_full.data() : w_packed.data();
        if (m < kPanelQueries) {  // streaming dot products: the bandwidth-bound case
          // Four bf16 states of one form side by side: w(q) is read once for the four, so the
          // states' stream is not slowed by re-reading w from cache for every state.
          if (four_bf16_of_one_form(states, j, j1)) {
            const uint16_t* four[4];
            for (int64_t c = 0; c < 4; ++c) four[c] = static_cast<const uint16_t*>(states[static_cast<size_t>(j + c)].data);
            for (int64_t i = 0; i < m; ++i) {
              float q4[4];
              simd::dot_bf16_x4(four, w + i * numbers, numbers, q4);
              for (int64_t c = 0; c < 4; ++c) offer(t, j + c, i, q4[c]);
            }
            j += 4;
            continue;
          }
          for (int64_t i = 0; i < m; ++i) offer(t, j, i, dot_stored(s, w + i * numbers, numbers));
          ++j;
          continue;
        }
        // A run of packed states, widened side by side into an fp32 panel [cnt, numbers],
        // scored by one GEMM: scores [cnt, m] = panel x w_t (GEMMs over slices of the numbers,
        // so that w's slice stays in L2, measured slower).
        int64_t j_end = j;
        while (j_end < j1 && states[static_cast<size_t>(j_end)].layout == Layout::packed_symmetric) ++j_end;
        const int64_t cnt = j_end - j;
        auto& panel = panels[static_cast<size_t>(t)];
        panel.resize(static_cast<size_t>(cnt * numbers));
        for (int64_t c = 0; c < cnt; ++c) {
          const StoredState& sc = states[static_cast<size_t>(j + c)];
          if (sc.dtype == DType::f32)
            std::copy_n(static_cast<const float*>(sc.data), numbers, panel.data() + c * numbers);
          else
            simd::bf16_to_f32(static_cast<const uint16_t*>(sc.data), panel.data() + c * numbers, numbers);
        }
        auto& out = raw[static_cast<size_t>(t)];
        out.resize(static_cast<size_t>(m * cnt));
        gemm(false, false, cnt, m, numbers, 1.f, panel.data(), numbers, w_packed_t.data(), m, 0.f, out.data(), m);
        for (int64_t c = 0; c < cnt; ++c)
          for (int64_t i = 0; i < m; ++i) offer(t, j + c, i, out[static_cast<size_t>(c * m + i)]);
        j = j_end;
      }
    });
    merge_top_k(best, m, k, index, score);
    return;
  }
  // Per thread: answers (one memory's, or a panel's), the panel, and a top-k list per query.
  std::vector<std::vector<float>> answers(static_cast<size_t>(threads)), panels(static_cast<size_t>(threads));
  std::vector<std::vector<TopK>> best(static_cast<size_t>(threads), std::vector<TopK>(static_cast<size_t>(m)));
  // Scores query i against answer row r (raw, before alpha and the normaliser).
  auto offer = [&](int t, int64_t j, int64_t i, const float* row) {
    const StoredState& s = states[static_cast<size_t>(j)];
    float factor = alpha[static_cast<size_t>(j)];
    if (s.normalizer) factor /= simd::dot(&x(i, 0), s.normalizer, dk) + eps;
    const float v = kind == SearchScoreKind::quadratic ? factor * simd::dot(&x(i, 0), row, dk)
                                                       : std::abs(factor) * std::sqrt(simd::dot(row, row, s.dv));
    best[static_cast<size_t>(t)][static_cast<size_t>(i)].offer({v, j}, k);
  };
  const int64_t jobs = (n + kMemoriesPerJob - 1) / kMemoriesPerJob;
  parallel_for(jobs, [&](int64_t job, int t) {
    const int64_t j0 = job * kMemoriesPerJob, j1 = std::min(n, j0 + kMemoriesPerJob);
    auto& r = answers[static_cast<size_t>(t)];
    // One memory at a time: low-rank states always, every state with few queries.
    auto one = [&](int64_t j) {
      const StoredState& s = states[static_cast<size_t>(j)];
      StoredState raw = s;
      raw.normalizer = nullptr;  // applied in offer()
      r.resize(static_cast<size_t>(m * s.dv));
      stored_lookup_cpu(raw, x, View2::contiguous(r.data(), {m, s.dv}), FeatureMap::identity, 1.f, eps);
      for (int64_t i = 0; i < m; ++i) offer(t, j, i, r.data() + i * s.dv);
    };
    if (m < kPanelQueries) {
      for (int64_t j = j0; j < j1; ++j) one(j);
      return;
    }
    for (int64_t p0 = j0; p0 < j1; p0 += kPanelMemories) {
      const int64_t p1 = std::min(j1, p0 + kPanelMemories);
      std::array<int64_t, kPanelMemories> column{};
      int64_t cols = 0;
      for (int64_t j = p0; j < p1; ++j) {
        const StoredState& s = states[static_cast<size_t>(j)];
        column[static_cast<size_t>(j - p0)] = s.layout == Layout::low_rank ? -1 : cols;
        if (s.layout != Layout::low_rank) cols += s.dv;
      }
      if (cols > 0) {
        auto& panel = panels[static_cast<size_t>(t)];
        panel.resize(static_cast<size_t>(dk * cols));
        for (int64_t j = p0; j < p1; ++j) {
          const StoredState& s = states[static_cast<size_t>(j)];
          const int64_t c = column[static_cast<size_t>(j - p0)];
          if (c < 0) continue;
          densify_stored(s, panel.data() + c, cols);
        }
        r.resize(static_cast<size_t>(m * cols));
        gemm(false, false, m, cols, dk, 1.f, x.data, dk, panel.data(), cols, 0.f, r.data(), cols);
        for (int64_t j = p0; j < p1; ++j)
          if (column[static_cast<size_t>(j - p0)] >= 0)
            for (int64_t i = 0; i < m; ++i) offer(t, j, i, r.data() + i * cols + column[static_cast<size_t>(j - p0)]);
      }
      for (int64_t j = p0; j < p1; ++j)
        if (column[static_cast<size_t>(j - p0)] < 0) one(j);
    }
  });
  merge_top_k(best, m, k, index, score);
}

}  // namespace linattn::kernels
