#include "linattn/core/types.h"

namespace linattn {

std::string_view to_string(FeatureMap map) {
  switch (map) {
    case FeatureMap::identity: return "identity";
    case FeatureMap::elu_plus_one: return "elu+1";
    case FeatureMap::relu: return "relu";
  }
  return "unknown";
}

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
  }
  return "unknown";
}

std::string_view to_string(Layout layout) {
  switch (layout) {
    case Layout::full: return "full";
    case Layout::packed_symmetric: return "packed-symmetric";
    case Layout::low_rank: return "low-rank";
  }
  return "unknown";
}

std::string_view to_string(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::linear: return "linear";
    case MemoryKind::galerkin: return "galerkin";
    case MemoryKind::content_lambda: return "content-lambda";
    case MemoryKind::kslot: return "kslot";
  }
  return "unknown";
}

std::optional<MemoryKind> parse_memory_kind(std::string_view name) {
  if (name == "linear") return MemoryKind::linear;
  if (name == "galerkin") return MemoryKind::galerkin;
  if (name == "content-lambda" || name == "content_lambda" || name == "lambda") return MemoryKind::content_lambda;
  if (name == "kslot") return MemoryKind::kslot;
  return std::nullopt;
}

std::optional<DType> parse_dtype(std::string_view name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  return std::nullopt;
}

std::optional<FeatureMap> parse_feature_map(std::string_view name) {
  if (name == "identity") return FeatureMap::identity;
  if (name == "elu+1" || name == "elu_plus_one") return FeatureMap::elu_plus_one;
  if (name == "relu") return FeatureMap::relu;
  return std::nullopt;
}

}  // namespace linattn
