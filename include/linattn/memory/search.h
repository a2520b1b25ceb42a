// Search: m queries against N stored memories, each memory's answer to a query reduced to one
// relevance score, the k best memories kept per query. The N x m x dv answers are never held
// at once: each thread answers one memory at a time into a scratch of m x dv numbers, scores it
// and keeps its own top k per query; the threads' lists are merged at the end.
//
// Scores (r = the memory's lookup of q, with the LookupOptions given):
//   quadratic  s = phi(q) . r  (dk = dv). For a symmetric memory C = sum_t h_t h_t^T this is
//              q^T C q = sum_t (h_t . q)^2: how strongly the document's states align with q.
//   norm       s = ||r||_2, for any dk, dv.
// Order: higher score first; equal scores by lower memory index; NaN scores last.
// Cost: each stored state is read once per call. A quadratic score of a full or packed state is
// computed without its answer, as <M, phi(q) phi(q)^T>: one multiply-add per stored number and
// query (N m d(d+1)/2 for packed states, half of answering them); other scores and low-rank
// states cost one lookup per memory and query (O(N m dk dv)).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "linattn/memory/memory.h"

namespace linattn {

enum class SearchScore : uint8_t { quadratic, norm };

struct SearchOptions {
  int64_t k = 10;  // kept per query: min(k, N) results
  SearchScore score = SearchScore::quadratic;
  LookupOptions lookup;  // mean, scale, eps of every lookup
};

struct SearchResults {
  int64_t queries = 0, k = 0;        // k = min(options.k, N)
  std::vector<int64_t> index;        // [queries, k]: positions in the searched list (or bank)
  std::vector<float> score;          // [queries, k]
};

// queries [m, dk]. Every memory must have the queries' key width, the same feature map and, with
// quadratic scores, dk = dv; any layout and dtype. ArgumentError otherwise (naming the memory's
// position). Threads over memories.
SearchResults search(std::span<const MemoryView* const> memories, CView2 queries, const SearchOptions& options = {});

std::string_view to_string(SearchScore score);
std::optional<SearchScore> parse_search_score(std::string_view name);

}  // namespace linattn
