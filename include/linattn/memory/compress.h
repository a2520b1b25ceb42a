// Rank-r compression of a symmetric memory: M ~ U diag(lambda) U^T from its r eigenpairs of
// largest magnitude (the best rank-r approximation in the Frobenius norm). Lookups then cost
// O(d r) instead of O(d^2), and the stored form holds d r + r numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "linattn/memory/memory.h"

namespace linattn {

struct CompressOptions {
  int64_t rank = 0;          // keep this many eigenpairs (1..d), or
  double max_error = -1.0;   // the smallest rank whose relative error is at most this
};

// The relative error ||M - M_r||_F / ||M||_F is in the result's info().compression_error.
// Throws ArgumentError unless the memory is symmetric and not already compressed, and exactly
// one of rank and max_error is set.
MemoryView compress(const MemoryView& memory, const CompressOptions& options);
// The same, as the stored (.lam) bytes, ready for a file or a bank.
std::vector<std::byte> compress_to_bytes(const MemoryView& memory, const CompressOptions& options);

}  // namespace linattn
