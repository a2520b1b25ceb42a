// CPU kernel of search: m queries against N stored states, one relevance score per (query,
// state), the best k states per query. Arguments are validated by the memory layer.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/memory_lookup_cpu.h"

namespace linattn::kernels {

enum class SearchScoreKind : uint8_t { quadratic, norm };

// x [m, dk]: the queries with the feature map already applied. alpha[j] scales state j's
// answers (the lookup's scale, / tokens with mean). Writes index, score [m, k] (k <= N), best
// first; threads over states.
void stored_search_cpu(std::span<const StoredState> states, std::span<const float> alpha, CView2 x, float eps,
                       SearchScoreKind kind, int64_t k, int64_t* index, float* score);

}  // namespace linattn::kernels
