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

std::optional<FeatureMap> parse_feature_map(std::string_view name) {
  if (name == "identity") return FeatureMap::identity;
  if (name == "elu+1" || name == "elu_plus_one") return FeatureMap::elu_plus_one;
  if (name == "relu") return FeatureMap::relu;
  return std::nullopt;
}

}  // namespace linattn
