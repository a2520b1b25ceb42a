// CPU kernel of lookups on a stored memory, read straight from its bytes (a file mapping, a bank
// or a live buffer): any layout (full, packed symmetric, low rank), any dtype (f32, bf16).
// Accumulation is always fp32. Arguments are validated by the memory layer.
#pragma once

#include <cstdint>

#include "linattn/core/types.h"
#include "linattn/core/view.h"

namespace linattn::kernels {

// A memory's state as stored.
struct StoredState {
  const void* data = nullptr;      // full: [dk, dv]; packed: d(d+1)/2; low rank: U [dk, rank]
  DType dtype = DType::f32;
  Layout layout = Layout::full;
  int64_t dk = 0, dv = 0, rank = 0;
  const float* lambda = nullptr;   // low rank: the r eigenvalues
  const float* normalizer = nullptr;  // z [dk] when the memory normalises, else null
};

// out_i = alpha * M^T phi(q_i), then / (z . phi(q_i) + eps) when state.normalizer is set.
//   q [m, dk] -> out [m, dv]
void stored_lookup_cpu(const StoredState& state, CView2 q, View2 out, FeatureMap phi, float alpha,
                       float eps);

// The full or packed state as a dense fp32 [dk, dv] matrix with row stride ld >= dv.
void densify_stored(const StoredState& state, float* dst, int64_t ld);
// The bytes of the stored state (not counting z or lambda).
int64_t stored_state_bytes(const StoredState& state);

}  // namespace linattn::kernels
