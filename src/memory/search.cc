#include "linattn/memory/search.h"

#include <cmath>
#include <string>

#include "core/checks.h"
#include "kernels/memory_search_cpu.h"
#include "kernels/simd.h"

namespace linattn {

std::string_view to_string(SearchScore score) { return score == SearchScore::quadratic ? "quadratic" : "norm"; }

std::optional<SearchScore> parse_search_score(std::string_view name) {
  if (name == "quadratic") return SearchScore::quadratic;
  if (name == "norm") return SearchScore::norm;
  return std::nullopt;
}

SearchResults search(std::span<const MemoryView* const> memories, CView2 queries, const SearchOptions& options) {
  const detail::Checks c("linattn::search");
  c.view("queries", queries, false);
  if (options.k < 1) c.fail("options.k", "must be at least 1, got " + std::to_string(options.k));
  if (options.score != SearchScore::quadratic && options.score != SearchScore::norm)
    c.fail("options.score", "unknown score " + std::to_string(int(options.score)));
  const LookupOptions& lo = options.lookup;
  if (!std::isfinite(lo.scale)) c.fail("options.lookup.scale", "must be finite");
  if (!(lo.eps >= 0.f) || !std::isfinite(lo.eps)) c.fail("options.lookup.eps", "must be finite and >= 0");

  const int64_t n = static_cast<int64_t>(memories.size()), m = queries.shape[0], dk = queries.shape[1];
  std::vector<kernels::StoredState> states(static_cast<size_t>(n));
  std::vector<float> alpha(static_cast<size_t>(n));
  FeatureMap phi = FeatureMap::identity;
  for (int64_t j = 0; j < n; ++j) {
    const MemoryView* view = memories[static_cast<size_t>(j)];
    if (view == nullptr) c.fail("memories", "entry " + std::to_string(j) + " is null");
    const MemoryInfo& info = view->info();
    const std::string which = "memory " + std::to_string(j);
    // The search kernel reads states as linear memories answer; the content lambda and the
    // K-slot memory transform each query per memory first (MemoryView::lookup does).
    if (info.config.kind == MemoryKind::content_lambda || info.config.kind == MemoryKind::kslot)
      c.fail("memories", which + " is a " + std::string(to_string(info.config.kind)) +
                             " memory: search takes linear and galerkin memories (answer the others with lookups)");
    if (info.config.key_dim != dk)
      c.fail("queries", "have width " + std::to_string(dk) + ", " + which + "'s key width dk is " +
                            std::to_string(info.config.key_dim));
    if (options.score == SearchScore::quadratic && info.config.value_dim != info.config.key_dim)
      c.fail("options.score", "quadratic needs dk = dv; " + which + " has dv " + std::to_string(info.config.value_dim) +
                                  " (use the norm score)");
    if (j == 0) phi = info.config.feature_map;
    if (info.config.feature_map != phi) c.fail("memories", which + " has another feature map than memory 0");
    if (lo.mean && info.config.normalize) c.fail("options.lookup.mean", which + " normalises: it is already a weighted mean");
    kernels::StoredState& s = states[static_cast<size_t>(j)];
    s.data = view->state_data();
    s.dtype = info.config.dtype;
    s.layout = info.layout;
    s.dk = info.config.key_dim;
    s.dv = info.config.value_dim;
    s.rank = info.rank;
    s.lambda = view->lambda_data();
    s.normalizer = info.config.normalize ? view->normalizer_data() : nullptr;
    alpha[static_cast<size_t>(j)] =
        lo.mean ? (info.tokens > 0 ? lo.scale / static_cast<float>(info.tokens) : 0.f) : lo.scale;
  }

  SearchResults r;
  r.queries = m;
  r.k = std::min<int64_t>(options.k, n);
  r.index.resize(static_cast<size_t>(m * r.k));
  r.score.resize(static_cast<size_t>(m * r.k));
  if (m == 0 || n == 0) return r;
  // phi(q) once for every memory (they share the feature map), dense.
  std::vector<float> x(static_cast<size_t>(m * dk));
  for (int64_t i = 0; i < m; ++i) kernels::simd::feature_map(phi, &queries(i, 0), x.data() + i * dk, dk);
  kernels::stored_search_cpu(states, alpha, CView2::contiguous(x.data(), {m, dk}), lo.eps,
                             options.score == SearchScore::quadratic ? kernels::SearchScoreKind::quadratic
                                                                     : kernels::SearchScoreKind::norm,
                             r.k, r.index.data(), r.score.data());
  return r;
}

}  // namespace linattn
