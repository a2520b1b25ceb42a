// Small enumerations shared by kernels and operators.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace linattn {

// phi in r = M^T phi(q), M = sum_t g_t phi(k_t) v_t^T (docs/math.md).
enum class FeatureMap : uint8_t {
  identity = 0,      // phi(x) = x: the paper's linear attention
  elu_plus_one = 1,  // phi(x) = elu(x) + 1 > 0: Katharopoulos et al. 2020
  relu = 2,          // phi(x) = max(x, 0)
};

// How a stored memory's numbers are kept (files, banks, frozen views). Live memories and every
// lookup accumulate in fp32.
enum class DType : uint8_t {
  f32 = 0,
  bf16 = 1,  // bfloat16: fp32's exponent, 8 bits of mantissa; half the bytes
};

// How a stored memory's state is laid out.
enum class Layout : uint8_t {
  full = 0,              // M [dk, dv] row-major
  packed_symmetric = 1,  // upper triangle of a symmetric M (dk = dv = d), row by row: d(d+1)/2
  low_rank = 2,          // M ~ U diag(lambda) U^T, U [d, r]: the top-r eigenpairs
};

// What a Memory's state is (memory.h, docs/memory.md): the paper's linear memory or one of its
// relatives, each fixed-size and mergeable.
enum class MemoryKind : uint8_t {
  linear = 0,          // M = sum_t g_t phi(k_t) v_t^T
  galerkin = 1,        // M = sum_t LN(k_t) LN(v_t)^T (rows layer-normalised on write)
  content_lambda = 2,  // lambda = softmax_T(K)^T V, kept as exp-weighted sums with per-channel maxima
  kslot = 3,           // C = sum_t softmax_K(s_t) v_t^T; queries are slot scores, softmax-ed on lookup
};

std::string_view to_string(FeatureMap map);
std::string_view to_string(MemoryKind kind);
// "linear", "galerkin", "content-lambda" (or "lambda"), "kslot"; nullopt otherwise.
std::optional<MemoryKind> parse_memory_kind(std::string_view name);
std::string_view to_string(DType dtype);
std::string_view to_string(Layout layout);
std::optional<DType> parse_dtype(std::string_view name);
constexpr int64_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }
// Parses "identity", "elu+1" (or "elu_plus_one"), "relu"; nullopt otherwise.
std::optional<FeatureMap> parse_feature_map(std::string_view name);

}  // namespace linattn
