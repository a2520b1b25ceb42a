// Small enumerations shared by kernels and operators.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace linattn {

// phi in r = M^T phi(q), M = sum_t g_t phi(k_t) v_t^T (BRIEF section 2).
enum class FeatureMap : uint8_t {
  identity = 0,      // phi(x) = x: the paper's linear attention
  elu_plus_one = 1,  // phi(x) = elu(x) + 1 > 0: Katharopoulos et al. 2020
  relu = 2,          // phi(x) = max(x, 0)
};

std::string_view to_string(FeatureMap map);
// Parses "identity", "elu+1" (or "elu_plus_one"), "relu"; nullopt otherwise.
std::optional<FeatureMap> parse_feature_map(std::string_view name);

}  // namespace linattn
